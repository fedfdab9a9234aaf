//! Configuration pieces both tracing plugins share: Kong's `propagation` block and the
//! collector client's timeouts.

use std::time::Duration;

use pingway_plugin::ConfigError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::propagation::{Format, Inject, Propagation, ALL_FORMATS};

/// Kong's `propagation` block (Kong 3.7+): which formats are read and written.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PropagationConfig {
    /// Formats read from the request, in order; the first found wins. Default: `w3c`,
    /// `b3`, `jaeger`, `ot`. An empty list ignores incoming contexts.
    #[serde(default)]
    pub extract: Option<Vec<String>>,
    /// Formats written to the upstream request; `preserve` writes the one the request
    /// came in (`default_format` when none). Default: `[preserve]`.
    #[serde(default)]
    pub inject: Option<Vec<String>>,
    /// Header names removed from the upstream request.
    #[serde(default)]
    pub clear: Vec<String>,
    /// The format `preserve` writes when the request carried no context.
    #[serde(default)]
    pub default_format: Option<String>,
}

/// Kong's `propagation` list entries per field, at most (a config cannot make them
/// grow further).
const MAX_LIST: usize = 16;

impl PropagationConfig {
    /// Compiles the block; `default` is the plugin's default format.
    pub fn compile(&self, default: Format) -> Result<Propagation, ConfigError> {
        let default_format = match &self.default_format {
            Some(f) => Format::parse("propagation.default_format", f)?,
            None => default,
        };
        let extract = match &self.extract {
            None => ALL_FORMATS.to_vec(),
            Some(list) => {
                if list.len() > MAX_LIST {
                    return Err(ConfigError::new(
                        "propagation.extract",
                        format!("at most {MAX_LIST} entries"),
                    ));
                }
                list.iter()
                    .map(|f| Format::parse("propagation.extract", f))
                    .collect::<Result<_, _>>()?
            }
        };
        let inject = match &self.inject {
            None => vec![Inject::Preserve],
            Some(list) => {
                if list.len() > MAX_LIST {
                    return Err(ConfigError::new(
                        "propagation.inject",
                        format!("at most {MAX_LIST} entries"),
                    ));
                }
                list.iter()
                    .map(|f| match f.as_str() {
                        "preserve" => Ok(Inject::Preserve),
                        other => Format::parse("propagation.inject", other).map(Inject::Format),
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        if self.clear.len() > MAX_LIST {
            return Err(ConfigError::new(
                "propagation.clear",
                format!("at most {MAX_LIST} entries"),
            ));
        }
        let clear = self
            .clear
            .iter()
            .map(|n| {
                http::HeaderName::from_bytes(n.as_bytes()).map_err(|_| {
                    ConfigError::new(format!("propagation.clear.{n}"), "not a valid header name")
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Propagation {
            extract,
            inject,
            clear,
            default_format,
        })
    }
}

/// The collector client: connect timeout, and the whole exchange bounded by the three
/// timeouts together (milliseconds, Kong's fields).
pub fn client(
    connect_timeout: u64,
    send_timeout: u64,
    read_timeout: u64,
) -> Result<(reqwest::Client, Duration), ConfigError> {
    let connect = crate::loggers::config::millis("connect_timeout", connect_timeout)?;
    let send = crate::loggers::config::millis("send_timeout", send_timeout)?;
    let read = crate::loggers::config::millis("read_timeout", read_timeout)?;
    let total = connect + send + read;
    let client = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(connect)
        .timeout(total)
        .build()
        .map_err(|e| ConfigError::new("", format!("cannot create the HTTP client: {e}")))?;
    Ok((client, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagation_block_is_checked_and_compiled() {
        let c = PropagationConfig {
            extract: Some(vec!["b3".into(), "w3c".into()]),
            inject: Some(vec!["preserve".into(), "jaeger".into()]),
            clear: vec!["x-old-trace".into()],
            default_format: None,
        };
        let p = c.compile(Format::W3c).unwrap();
        assert_eq!(p.extract, vec![Format::B3, Format::W3c]);
        assert_eq!(p.inject_formats(None), vec![Format::W3c, Format::Jaeger]);
        assert_eq!(p.clear[0], "x-old-trace");
        let bad = PropagationConfig {
            extract: Some(vec!["datadog".into()]),
            ..c.clone()
        };
        let e = bad.compile(Format::W3c).unwrap_err().to_string();
        assert!(
            e.contains("propagation.extract") && e.contains("not supported"),
            "{e}"
        );
        let bad = PropagationConfig {
            default_format: Some("morse".into()),
            ..c
        };
        let e = bad.compile(Format::W3c).unwrap_err().to_string();
        assert!(e.contains("propagation.default_format"), "{e}");
    }
}

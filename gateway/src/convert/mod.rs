//! `pingway convert`: a Kong declarative file (`kong.yml`, decK state, YAML or JSON)
//! into a Pingway configuration.
//!
//! The conversion is a pure function of the file's text (no DNS, no file reads): the
//! Kong file is parsed with the configuration loader's YAML reader, which keeps every
//! value's line and column; [`kong`] maps each Kong entity onto Pingway's sections and
//! reports what has no equivalent; [`check`] runs the result through the gateway's own
//! loading and compiling (what `pingway validate` does) and turns each problem into a
//! report item at its place in the Kong file, leaving out what Pingway refuses, so the
//! configuration produced is always one the gateway accepts. docs/coming-from-kong.md
//! lists what maps and what differs.

mod check;
mod emit;
mod kong;
mod node;
mod output;
mod report;

pub use report::{Report, ReportItem, Severity};

use crate::config::{self, Diagnostic};
use crate::plugins::Registry;

/// Where the converted configuration listens.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// The plain HTTP listener (default `0.0.0.0:8000`, Kong's proxy port).
    pub listen: String,
    /// The HTTPS listener, written when the Kong file has certificates (default
    /// `0.0.0.0:8443`, Kong's).
    pub https_listen: String,
    /// The admin API (default `127.0.0.1:8001`, Kong's and Pingway's).
    pub admin_listen: String,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            listen: "0.0.0.0:8000".into(),
            https_listen: "0.0.0.0:8443".into(),
            admin_listen: config::defaults::admin_listen(),
        }
    }
}

/// A finished conversion.
#[derive(Debug)]
pub struct Conversion {
    /// The Pingway configuration, as YAML.
    pub yaml: String,
    /// What could not be carried over, and documented differences.
    pub report: Report,
}

/// Why no configuration could be produced.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The text is not YAML or JSON.
    #[error("not a YAML or JSON file")]
    Syntax(Vec<Diagnostic>),
    /// The document is not a Kong declarative configuration.
    #[error("not a Kong declarative configuration: {0}")]
    NotKong(String),
    /// The converter produced something the gateway refuses and could not fix: a bug
    /// in the converter. The problems are the gateway's, in the converted file.
    #[error("the converted configuration is refused by the gateway (a converter bug)")]
    Refused(Vec<Diagnostic>),
}

/// Converts the Kong declarative configuration `text`. `registry` is the set of plugins
/// the gateway will run with (a Kong plugin it lacks is reported).
pub fn convert_kong(
    text: &str,
    options: &ConvertOptions,
    registry: &Registry,
) -> Result<Conversion, ConvertError> {
    let doc = config::yaml::parse(text).map_err(ConvertError::Syntax)?;
    if !matches!(doc.value, pingway_plugins::config::NodeValue::Map(_)) {
        return Err(ConvertError::NotKong(
            "the top level is not a mapping".into(),
        ));
    }
    if node::str_field(&doc, "_format_version").is_none() {
        return Err(ConvertError::NotKong(
            "no `_format_version` (Kong's declarative files start with `_format_version: \"3.0\"`)"
                .into(),
        ));
    }
    let (mut out, mut report) = kong::Mapper::new(&doc, registry).map();
    let listeners = output::Listeners {
        http: options.listen.clone(),
        https: options.https_listen.clone(),
        admin: options.admin_listen.clone(),
    };
    check::settle(&mut out, &listeners, registry, &doc, &mut report)
        .map_err(ConvertError::Refused)?;
    let yaml = format!(
        "# Converted from a Kong declarative configuration by `pingway convert`.\n# What could not be carried over was reported when converting; see docs/coming-from-kong.md.\n{}",
        emit::to_yaml(&out.render(&listeners, false))
    );
    Ok(Conversion { yaml, report })
}

#[cfg(test)]
mod tests;

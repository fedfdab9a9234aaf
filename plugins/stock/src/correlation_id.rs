//! `correlation-id`: a unique id on every request, as Kong's plugin does it.
//!
//! In the access phase a request without the header (or with it empty) gets a new id,
//! which goes upstream; a request that brings one keeps it. With `echo_downstream` the
//! response carries the id too, read back from the request in the response phase, so a
//! response that never went through the access phase (a 404 for an unknown route, with
//! the plugin global) gets a fresh one, as Kong's header filter does.
//!
//! Generators, as Kong names them: `uuid` (a random version-4 UUID), `uuid#counter` (the
//! default: one random UUID per plugin instance, then `#` and a counter that increases
//! with every id) and `tracker`. Kong's `tracker` joins nginx's server address and port,
//! worker pid, connection number, request count on the connection and the time; the
//! plugin contract exposes no connection numbers, so Pingway's joins the client's
//! address and port, the process id, a counter and the time in milliseconds
//! (`203.0.113.7-50412-4242-17-1764681600123`): unique per process and readable the same
//! way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::registry::{BuildContext, BuildPlugin, ConfigError};
use crate::{Flow, Plugin, Request, RequestCtx, ResponseView};

/// Kong's `correlation-id` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrelationIdConfig {
    /// The header that carries the id (default `Kong-Request-ID`, Kong's).
    #[serde(default = "default_header")]
    pub header_name: String,
    /// How ids are made: `uuid`, `uuid#counter` (default) or `tracker`.
    #[serde(default = "default_generator")]
    pub generator: String,
    /// Also send the id back to the client on the response (default false).
    #[serde(default)]
    pub echo_downstream: bool,
}

fn default_header() -> String {
    "Kong-Request-ID".into()
}

fn default_generator() -> String {
    "uuid#counter".into()
}

/// How ids are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Generator {
    Uuid,
    UuidCounter,
    Tracker,
}

/// The `correlation-id` plugin.
#[derive(Debug)]
pub struct CorrelationId {
    header: HeaderName,
    generator: Generator,
    echo: bool,
    /// This instance's UUID, for `uuid#counter`.
    instance: String,
    counter: AtomicU64,
}

/// A random version-4 UUID in its usual text form.
fn uuid_v4() -> String {
    let mut v = fastrand::u128(..);
    v = (v & !(0xf << 76)) | (0x4 << 76); // version 4
    v = (v & !(0x3 << 62)) | (0x2 << 62); // RFC 4122 variant
    let hex = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl CorrelationId {
    /// A new id by the configured generator.
    fn generate(&self, ctx: &RequestCtx) -> Option<HeaderValue> {
        let text = match self.generator {
            Generator::Uuid => uuid_v4(),
            Generator::UuidCounter => {
                let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
                format!("{}#{n}", self.instance)
            }
            Generator::Tracker => {
                let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
                let ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                let port = ctx.peer_addr.map_or(0, |a| a.port());
                format!("{}-{port}-{}-{n}-{ms}", ctx.client_ip, std::process::id())
            }
        };
        HeaderValue::from_str(&text).ok()
    }
}

#[async_trait::async_trait]
impl Plugin for CorrelationId {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        let present = req.header(&self.header).is_some_and(|v| !v.is_empty());
        if !present {
            if let Some(id) = self.generate(req.ctx()) {
                req.insert_header(self.header.clone(), id);
            }
        }
        Flow::Continue
    }

    fn on_response(&self, resp: &mut ResponseView<'_>) {
        if !self.echo {
            return;
        }
        let id = resp
            .request()
            .headers
            .get(&self.header)
            .filter(|v| !v.is_empty())
            .cloned()
            .or_else(|| self.generate(resp.ctx()));
        if let Some(id) = id {
            resp.insert_header(self.header.clone(), id);
        }
    }
}

impl BuildPlugin for CorrelationId {
    const NAME: &'static str = "correlation-id";
    const PRIORITY: i32 = 100_001;
    type Config = CorrelationIdConfig;

    fn build(c: CorrelationIdConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let header = HeaderName::from_bytes(c.header_name.as_bytes())
            .map_err(|_| ConfigError::new("header_name", "not a valid header name"))?;
        let generator = match c.generator.as_str() {
            "uuid" => Generator::Uuid,
            "uuid#counter" => Generator::UuidCounter,
            "tracker" => Generator::Tracker,
            _ => {
                return Err(ConfigError::new(
                    "generator",
                    "expected one of: uuid, uuid#counter, tracker",
                ))
            }
        };
        Ok(CorrelationId {
            header,
            generator,
            echo: c.echo_downstream,
            instance: uuid_v4(),
            counter: AtomicU64::new(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PluginScope;
    use crate::testkit::TestRequest;
    use http::{Method, StatusCode};

    fn build(generator: &str, echo: bool) -> Result<CorrelationId, ConfigError> {
        CorrelationId::build(
            CorrelationIdConfig {
                header_name: default_header(),
                generator: generator.into(),
                echo_downstream: echo,
            },
            &BuildContext::new(PluginScope::Global),
        )
    }

    fn id_of(parts: &http::request::Parts) -> String {
        parts
            .headers
            .get("kong-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    #[tokio::test]
    async fn a_request_without_an_id_gets_one_by_uuid_counter() {
        let p = build("uuid#counter", false).expect("valid");
        let mut a = TestRequest::new(Method::GET, "/");
        assert!(a.access(&p).await.is_none());
        let mut b = TestRequest::new(Method::GET, "/");
        assert!(b.access(&p).await.is_none());
        let (ida, idb) = (id_of(a.parts()), id_of(b.parts()));
        let (ua, na) = ida.split_once('#').expect("uuid#counter");
        let (ub, nb) = idb.split_once('#').expect("uuid#counter");
        assert_eq!(ua, ub, "one UUID per instance");
        assert_eq!(ua.len(), 36);
        assert_eq!(na.parse::<u64>().unwrap() + 1, nb.parse::<u64>().unwrap());
    }

    #[tokio::test]
    async fn an_incoming_id_is_kept_and_an_empty_one_replaced() {
        let p = build("uuid", false).expect("valid");
        let mut r = TestRequest::new(Method::GET, "/").header("Kong-Request-ID", "abc");
        r.access(&p).await;
        assert_eq!(id_of(r.parts()), "abc");
        let mut e = TestRequest::new(Method::GET, "/").header("Kong-Request-ID", "");
        e.access(&p).await;
        let id = id_of(e.parts());
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(&id[14..15], "4");
    }

    #[tokio::test]
    async fn echo_downstream_returns_the_requests_id_or_a_new_one() {
        let p = build("uuid", true).expect("valid");
        let mut r = TestRequest::new(Method::GET, "/").header("Kong-Request-ID", "abc");
        r.access(&p).await;
        let resp = r.response(&p, StatusCode::OK, &[]);
        assert_eq!(resp.headers.get("kong-request-id").unwrap(), "abc");
        // No access phase (a 404 for an unknown route): a fresh id.
        let mut n = TestRequest::new(Method::GET, "/");
        let resp = n.response(&p, StatusCode::NOT_FOUND, &[]);
        assert_eq!(resp.headers.get("kong-request-id").unwrap().len(), 36);
        let quiet = build("uuid", false).expect("valid");
        let resp = n.response(&quiet, StatusCode::OK, &[]);
        assert!(resp.headers.get("kong-request-id").is_none());
    }

    #[tokio::test]
    async fn tracker_ids_name_the_client_and_differ() {
        let p = build("tracker", false).expect("valid");
        let mut a = TestRequest::new(Method::GET, "/");
        a.access(&p).await;
        let mut b = TestRequest::new(Method::GET, "/");
        b.access(&p).await;
        let (ida, idb) = (id_of(a.parts()), id_of(b.parts()));
        assert!(ida.starts_with("192.0.2.1-"), "{ida}");
        assert_ne!(ida, idb);
    }

    #[test]
    fn bad_fields_are_refused_with_their_names() {
        let e = build("snowflake", false).unwrap_err();
        assert!(e.to_string().contains("generator"), "{e}");
        let e = CorrelationId::build(
            CorrelationIdConfig {
                header_name: "bad name".into(),
                generator: default_generator(),
                echo_downstream: false,
            },
            &BuildContext::new(PluginScope::Global),
        )
        .unwrap_err();
        assert!(e.to_string().contains("header_name"), "{e}");
    }
}

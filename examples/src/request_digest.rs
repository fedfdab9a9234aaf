//! `request-digest`: adds a header computed from the request to what the upstream
//! receives, and optionally returns it to the client.

use pingway::plugins::http::{HeaderName, HeaderValue};
use pingway::plugins::{
    BuildContext, BuildPlugin, ConfigError, Plugin, ResponseView, UpstreamRequest,
};
use schemars::JsonSchema;
use serde::Deserialize;

/// What the request digest covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// The method (`GET`).
    Method,
    /// The path and query (`/a?b=1`).
    Path,
    /// The client IP the gateway determined.
    ClientIp,
}

/// `request-digest` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestDigestConfig {
    /// Header sent upstream (default `x-request-digest`).
    #[serde(default = "default_header")]
    pub header: String,
    /// Parts of the request that the digest covers, in order (default method and path).
    #[serde(default = "default_parts")]
    pub parts: Vec<Part>,
    /// Also return the digest to the client.
    #[serde(default)]
    pub echo_downstream: bool,
}

fn default_header() -> String {
    "x-request-digest".into()
}

fn default_parts() -> Vec<Part> {
    vec![Part::Method, Part::Path]
}

/// The plugin instance: configuration checked and header name parsed once, at load.
pub struct RequestDigest {
    header: HeaderName,
    parts: Vec<Part>,
    echo: bool,
}

/// The digest: FNV-1a 64 over the chosen parts separated by spaces, as 16 hex digits.
pub fn digest(parts: &[Part], req: &UpstreamRequest<'_>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            feed(b" ");
        }
        match part {
            Part::Method => feed(req.method().as_str().as_bytes()),
            Part::Path => feed(
                req.uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .as_bytes(),
            ),
            Part::ClientIp => feed(req.client_ip().to_string().as_bytes()),
        }
    }
    format!("{hash:016x}")
}

/// The digest computed for this request, kept for the response phase.
#[derive(Clone)]
struct Computed(HeaderValue);

impl Plugin for RequestDigest {
    fn on_upstream_request(&self, upstream: &mut UpstreamRequest<'_>) {
        let Ok(value) = HeaderValue::from_str(&digest(&self.parts, upstream)) else {
            return;
        };
        if self.echo {
            upstream
                .ctx_mut()
                .extensions
                .insert(Computed(value.clone()));
        }
        upstream.insert_header(self.header.clone(), value);
    }

    fn on_response(&self, response: &mut ResponseView<'_>) {
        let computed = response.ctx().extensions.get::<Computed>().cloned();
        if let Some(Computed(value)) = computed {
            response.insert_header(self.header.clone(), value);
        }
    }
}

impl BuildPlugin for RequestDigest {
    const NAME: &'static str = "request-digest";
    /// After auth and rate limiting, before the transformers.
    const PRIORITY: i32 = 850;
    type Config = RequestDigestConfig;

    fn build(config: RequestDigestConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let header = HeaderName::from_bytes(config.header.as_bytes()).map_err(|_| {
            ConfigError::new(
                "header",
                format!("{:?} is not a valid header name", config.header),
            )
        })?;
        if config.parts.is_empty() {
            return Err(ConfigError::new(
                "parts",
                "name at least one part of the request",
            ));
        }
        Ok(RequestDigest {
            header,
            parts: config.parts,
            echo: config.echo_downstream,
        })
    }
}

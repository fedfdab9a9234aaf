//! `basic-auth`: authenticate with a username and password (RFC 7617), as Kong does.
//!
//! - Reads `Proxy-Authorization`, then `Authorization`. When the first names a known
//!   username, that credential is the one judged (a wrong password there is not retried
//!   with the other header).
//! - Every failure is 401 `{"message":"Unauthorized"}` with
//!   `WWW-Authenticate: Basic realm="service"` (the configured `realm`).
//! - `hide_credentials` removes the header(s) read, and nothing else.
//! - `anonymous` behaves as described in `stock::auth`.
//! - `X-Credential-Identifier` carries the basic-auth username, as in Kong.
//!
//! Passwords: see [`ConsumerSet::basic_auth`](crate::ConsumerSet::basic_auth) for
//! constant-time comparison, stored hashes and caching.

use base64::Engine as _;
use http::HeaderValue;
use schemars::JsonSchema;
use serde::Deserialize;

use super::auth;
use crate::registry::{BuildContext, BuildPlugin, ConfigError};
use crate::{Flow, Plugin, Request, Response};

fn default_realm() -> String {
    "service".to_string()
}

/// Kong's `basic-auth` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// The realm in `WWW-Authenticate: Basic realm="..."`.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Remove the `Authorization`/`Proxy-Authorization` header before the request goes
    /// upstream.
    #[serde(default)]
    pub hide_credentials: bool,
    /// A consumer (id or username) to let failed requests through as.
    #[serde(default)]
    pub anonymous: Option<String>,
}

/// The `basic-auth` plugin.
#[derive(Debug)]
pub struct BasicAuth {
    hide_credentials: bool,
    anonymous: Option<String>,
    www_authenticate: HeaderValue,
}

const PROXY_AUTHORIZATION: http::HeaderName = http::header::PROXY_AUTHORIZATION;
const AUTHORIZATION: http::HeaderName = http::header::AUTHORIZATION;

/// Username and password from a header value such as `Basic dXNlcjpwYXNz`: Kong finds
/// `[Bb]asic` followed by the base64 text, and splits the decoded text at its first
/// colon (a username cannot be empty, a password can).
fn parse_basic(value: &[u8]) -> Option<(String, Vec<u8>)> {
    let text = std::str::from_utf8(value).ok()?;
    let at = text.find("Basic").or_else(|| text.find("basic"))?;
    let encoded = text[at + 5..].trim();
    if encoded.is_empty() {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded))
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    if colon == 0 {
        return None;
    }
    let username = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((username, decoded[colon + 1..].to_vec()))
}

impl BasicAuth {
    /// The credentials in header `name`; removes the header when hiding credentials.
    fn retrieve(&self, req: &mut Request<'_>, name: http::HeaderName) -> Option<(String, Vec<u8>)> {
        let parsed = req
            .headers()
            .get(&name)
            .and_then(|v| parse_basic(v.as_bytes()));
        if self.hide_credentials {
            req.remove_header(&name);
        }
        parsed
    }

    async fn authenticate(&self, req: &mut Request<'_>) -> Result<(), Response> {
        let unauthorized = || auth::unauthorized("Unauthorized", &self.www_authenticate);
        let headers = &req.headers();
        if !headers.contains_key(&AUTHORIZATION) && !headers.contains_key(&PROXY_AUTHORIZATION) {
            return Err(unauthorized());
        }
        let consumers = auth::consumers(req);
        if let Some((user, password)) = self.retrieve(req, PROXY_AUTHORIZATION) {
            if consumers.has_basic_auth_user(&user) {
                return match consumers.basic_auth(&user, &password).await {
                    Some(found) => {
                        auth::set_consumer(req, found.consumer, Some(found.credential));
                        Ok(())
                    }
                    None => Err(unauthorized()),
                };
            }
        }
        let Some((user, password)) = self.retrieve(req, AUTHORIZATION) else {
            return Err(unauthorized());
        };
        match consumers.basic_auth(&user, &password).await {
            Some(found) => {
                auth::set_consumer(req, found.consumer, Some(found.credential));
                Ok(())
            }
            None => Err(unauthorized()),
        }
    }
}

#[async_trait::async_trait]
impl Plugin for BasicAuth {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        let anonymous = self.anonymous.as_deref();
        if auth::already_authenticated(req, anonymous) {
            return Flow::Continue;
        }
        let result = self.authenticate(req).await;
        auth::outcome(req, result, anonymous)
    }
}

impl BuildPlugin for BasicAuth {
    const NAME: &'static str = "basic-auth";
    const PRIORITY: i32 = 1100;
    const USES_CONSUMERS: bool = true;
    type Config = BasicAuthConfig;

    fn build(config: BasicAuthConfig, cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let www = format!("Basic realm=\"{}\"", config.realm);
        Ok(BasicAuth {
            hide_credentials: config.hide_credentials,
            anonymous: auth::check_anonymous(config.anonymous, cx)?,
            www_authenticate: auth::header_value("realm", www)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_basic_credentials_like_kong() {
        // user:pass
        assert_eq!(
            parse_basic(b"Basic dXNlcjpwYXNz"),
            Some(("user".into(), b"pass".to_vec()))
        );
        // password containing a colon; lower-case scheme
        assert_eq!(
            parse_basic(b"basic dXNlcjpwYTpzcw=="),
            Some(("user".into(), b"pa:ss".to_vec()))
        );
        // "user:" has an empty password; ":pass" has no username
        assert_eq!(
            parse_basic(b"Basic dXNlcjo="),
            Some(("user".into(), vec![]))
        );
        assert_eq!(parse_basic(b"Basic OnBhc3M="), None);
        assert_eq!(parse_basic(b"Bearer dXNlcjpwYXNz"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
        assert_eq!(parse_basic(b"Basic"), None);
    }
}

//! `jwt`: authenticate with a signed JSON Web Token, as Kong does.
//!
//! - Tokens are collected from the query parameters `uri_param_names`, the cookies
//!   `cookie_names`, and the headers `header_names` (`Bearer <token>`). None: 401
//!   "Unauthorized" with `WWW-Authenticate: Bearer`; more than one distinct token:
//!   "Multiple tokens provided".
//! - The credential is the consumer's `jwt_secrets` entry whose `key` equals the token's
//!   `key_claim_name` claim (`iss`), looked up in the claims, then in the header.
//! - The token's `alg` must equal the credential's `algorithm` (so a token cannot pick
//!   `none` or turn an RSA public key into an HMAC secret), then the signature must
//!   verify, then `claims_to_verify` and `maximum_expiration` are checked; claim
//!   failures answer a map such as `{"exp":"token expired"}`.
//! - Every failure after the token was found carries
//!   `WWW-Authenticate: Bearer error="invalid_token"` (with `realm="...", ` first when
//!   set: `Bearer realm="api", error="invalid_token"`).
//! - `anonymous` and `run_on_preflight` behave as described in `stock::auth`.
//!
//! Supported algorithms: HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA.

mod token;

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::auth::{self, urlencoded};
use crate::consumers::VerifyError;
use crate::registry::{BuildContext, BuildPlugin, ConfigError};
use crate::{Flow, Plugin, Request, Response};
pub use token::Claim;

fn default_uri_params() -> Vec<String> {
    vec!["jwt".to_string()]
}

fn default_headers() -> Vec<String> {
    vec!["authorization".to_string()]
}

fn default_key_claim() -> String {
    "iss".to_string()
}

fn yes() -> bool {
    true
}

/// Kong's `jwt` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Query parameters that may carry the token.
    #[serde(default = "default_uri_params")]
    pub uri_param_names: Vec<String>,
    /// Cookies that may carry the token.
    #[serde(default)]
    pub cookie_names: Vec<String>,
    /// Headers that may carry the token as `Bearer <token>`.
    #[serde(default = "default_headers")]
    pub header_names: Vec<String>,
    /// The claim (or, failing that, header field) naming the credential's `key`.
    #[serde(default = "default_key_claim")]
    pub key_claim_name: String,
    /// HMAC secrets are base64 in the consumer's credential.
    #[serde(default)]
    pub secret_is_base64: bool,
    /// Registered claims to verify: `exp`, `nbf`.
    #[serde(default)]
    pub claims_to_verify: Vec<Claim>,
    /// The longest a token may live, in seconds from now to its `exp` (0: no limit).
    /// Requires `exp` in `claims_to_verify`.
    #[serde(default)]
    pub maximum_expiration: f64,
    /// Authenticate OPTIONS requests too; `false` lets them through unauthenticated.
    #[serde(default = "yes")]
    pub run_on_preflight: bool,
    /// A consumer (id or username) to let failed requests through as.
    #[serde(default)]
    pub anonymous: Option<String>,
    /// The realm in `WWW-Authenticate: Bearer realm="..."`.
    #[serde(default)]
    pub realm: Option<String>,
}

/// The `jwt` plugin.
#[derive(Debug)]
pub struct Jwt {
    uri_param_names: Vec<String>,
    cookie_names: Vec<String>,
    /// Each header name, with its dashed spelling when it has underscores (Kong, through
    /// nginx, reads `x_token` from an `x-token` header).
    header_names: Vec<(http::HeaderName, Option<http::HeaderName>)>,
    key_claim_name: String,
    secret_is_base64: bool,
    claims_to_verify: Vec<Claim>,
    maximum_expiration: f64,
    run_on_preflight: bool,
    anonymous: Option<String>,
    www_base: HeaderValue,
    www_error: HeaderValue,
    no_key_message: String,
    invalid_key_message: String,
    no_credentials_message: String,
}

/// `[Bb]earer\s+(.+)`, anywhere in the header value (Kong's unanchored regex).
fn bearer(value: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(pos) = value[from..].find("earer") {
        let at = from + pos;
        from = at + 5;
        if at == 0 || !matches!(value.as_bytes()[at - 1], b'B' | b'b') {
            continue;
        }
        let rest = &value[at + 5..];
        let trimmed = rest.trim_start();
        if trimmed.len() < rest.len() && !trimmed.is_empty() {
            return Some(trimmed);
        }
    }
    None
}

/// The value of cookie `name` in a `Cookie` header.
fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs() as f64)
}

impl Jwt {
    /// Every distinct non-empty token in the request.
    fn tokens(&self, req: &Request<'_>) -> Vec<String> {
        let mut set: Vec<String> = Vec::new();
        let mut add = |t: &str| {
            if !t.is_empty() && !set.iter().any(|x| x == t) {
                set.push(t.to_string());
            }
        };
        if let Some(q) = req.query() {
            for name in &self.uri_param_names {
                for v in urlencoded::values(q.as_bytes(), name) {
                    add(&String::from_utf8_lossy(&v));
                }
            }
        }
        let headers = &req.headers();
        for name in &self.cookie_names {
            // nginx's `$cookie_<name>`: the first cookie of that name.
            let value = headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|h| h.to_str().ok())
                .find_map(|h| cookie(h, name));
            if let Some(v) = value {
                add(v);
            }
        }
        for (name, dashed) in &self.header_names {
            // The first header of that name, as Kong reads it.
            let value = headers
                .get(name)
                .or_else(|| dashed.as_ref().and_then(|d| headers.get(d)))
                .and_then(|v| v.to_str().ok());
            if let Some(t) = value.and_then(bearer) {
                add(t);
            }
        }
        set
    }

    fn invalid(&self, message: impl Into<std::borrow::Cow<'static, str>>) -> Response {
        Response::error(StatusCode::UNAUTHORIZED, message)
            .with_header(http::header::WWW_AUTHENTICATE, self.www_error.clone())
    }

    fn claim_errors(&self, errors: serde_json::Map<String, Value>) -> Response {
        Response::json(StatusCode::UNAUTHORIZED, Value::Object(errors))
            .with_header(http::header::WWW_AUTHENTICATE, self.www_error.clone())
    }

    fn authenticate(&self, req: &mut Request<'_>) -> Result<(), Response> {
        let tokens = self.tokens(req);
        let token = match tokens.as_slice() {
            [] => {
                return Err(auth::unauthorized("Unauthorized", &self.www_base));
            }
            [one] => one,
            _ => return Err(self.invalid("Multiple tokens provided")),
        };
        let jwt = token::decode(token).map_err(|e| self.invalid(format!("Bad token; {e}")))?;
        let key = jwt
            .claims
            .get(&self.key_claim_name)
            .filter(|v| !v.is_null())
            .or_else(|| {
                jwt.header
                    .get(&self.key_claim_name)
                    .filter(|v| !v.is_null())
            });
        let key = match key {
            None => return Err(self.invalid(self.no_key_message.clone())),
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            Some(_) => return Err(self.invalid(self.invalid_key_message.clone())),
        };
        let consumers = auth::consumers(req);
        let Some((consumer, credential)) = consumers.jwt(key) else {
            return Err(self.invalid(self.no_credentials_message.clone()));
        };
        if jwt.alg != Some(credential.algorithm) {
            return Err(self.invalid("Invalid algorithm"));
        }
        match credential.verifier.verify(
            self.secret_is_base64,
            jwt.signing_input.as_bytes(),
            &jwt.signature,
        ) {
            Ok(()) => {}
            Err(VerifyError::InvalidKey) => return Err(self.invalid("Invalid key/secret")),
            Err(VerifyError::InvalidSignature) => return Err(self.invalid("Invalid signature")),
        }
        let now = unix_now();
        if let Some(errors) = token::verify_claims(&jwt.claims, &self.claims_to_verify, now) {
            return Err(self.claim_errors(errors));
        }
        if let Some(errors) =
            token::check_maximum_expiration(&jwt.claims, self.maximum_expiration, now)
        {
            return Err(self.claim_errors(errors));
        }
        auth::set_consumer(req, consumer, Some(&credential.credential));
        Ok(())
    }
}

#[async_trait::async_trait]
impl Plugin for Jwt {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        if auth::skip_preflight(req, self.run_on_preflight) {
            return Flow::Continue;
        }
        let anonymous = self.anonymous.as_deref();
        if auth::already_authenticated(req, anonymous) {
            return Flow::Continue;
        }
        let result = self.authenticate(req);
        auth::outcome(req, result, anonymous)
    }
}

impl BuildPlugin for Jwt {
    const NAME: &'static str = "jwt";
    const PRIORITY: i32 = 1450;
    const USES_CONSUMERS: bool = true;
    type Config = JwtConfig;

    fn build(config: JwtConfig, cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let mut header_names = Vec::with_capacity(config.header_names.len());
        for (i, h) in config.header_names.iter().enumerate() {
            let name = http::HeaderName::from_bytes(h.as_bytes()).map_err(|_| {
                ConfigError::new(
                    format!("header_names[{i}]"),
                    format!("bad header name {h:?}"),
                )
            })?;
            let dashed = h
                .contains('_')
                .then(|| http::HeaderName::from_bytes(h.replace('_', "-").as_bytes()).ok())
                .flatten();
            header_names.push((name, dashed));
        }
        if !(0.0..=31_536_000.0).contains(&config.maximum_expiration) {
            return Err(ConfigError::new(
                "maximum_expiration",
                "value should be between 0 and 31536000",
            ));
        }
        let mut claims: Vec<Claim> = Vec::new();
        for c in config.claims_to_verify {
            if !claims.contains(&c) {
                claims.push(c);
            }
        }
        if config.maximum_expiration > 0.0 && !claims.contains(&Claim::Exp) {
            return Err(ConfigError::new(
                "claims_to_verify",
                "expected to contain: exp (required with maximum_expiration)",
            ));
        }
        if config.key_claim_name.is_empty() {
            return Err(ConfigError::new("key_claim_name", "must not be empty"));
        }
        let base = match &config.realm {
            Some(r) => format!("Bearer realm=\"{r}\""),
            None => "Bearer".to_string(),
        };
        // RFC 7235: the scheme is followed by a space, auth-params by a comma (as Kong
        // sends it: `Bearer realm="api", error="invalid_token"`).
        let with_error = match &config.realm {
            Some(_) => format!("{base}, error=\"invalid_token\""),
            None => format!("{base} error=\"invalid_token\""),
        };
        let k = &config.key_claim_name;
        let mut cookies: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for c in config.cookie_names {
            if seen.insert(c.clone()) {
                cookies.push(c);
            }
        }
        Ok(Jwt {
            uri_param_names: config.uri_param_names,
            cookie_names: cookies,
            header_names,
            no_key_message: format!("No mandatory '{k}' in claims"),
            invalid_key_message: format!("Invalid '{k}' in claims"),
            no_credentials_message: format!("No credentials found for given '{k}'"),
            key_claim_name: config.key_claim_name,
            secret_is_base64: config.secret_is_base64,
            claims_to_verify: claims,
            maximum_expiration: config.maximum_expiration,
            run_on_preflight: config.run_on_preflight,
            anonymous: auth::check_anonymous(config.anonymous, cx)?,
            www_base: auth::header_value("realm", base)?,
            www_error: auth::header_value("realm", with_error)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bearer_tokens_and_cookies() {
        assert_eq!(bearer("Bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer("bearer   x"), Some("x"));
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("BEARER x"), None);
        assert_eq!(cookie("a=1; jwt=tok; b=2", "jwt"), Some("tok"));
        assert_eq!(cookie("a=1", "jwt"), None);
    }
}

//! `key-auth`: authenticate with an API key, as Kong does.
//!
//! - For each of `key_names` in order, the key is looked for in a header
//!   (`key_in_header`), then the query string (`key_in_query`), then a form, multipart
//!   or JSON body (`key_in_body`). The first key found is the one judged. A name with underscores
//!   also matches the header spelled with dashes, and `?name` without `=` holds no key
//!   but ends the search for that name (both as Kong, through nginx, does).
//! - A name given twice (two headers, `?apikey=a&apikey=b`, a JSON array) answers
//!   "Duplicate API key found"; a missing or empty key "No API key found in request"; an
//!   unknown key "Unauthorized". All are 401 with `WWW-Authenticate: Key` (plus
//!   `realm="..."` when `realm` is set).
//! - `hide_credentials` removes the key: the header; the query parameter, the rest of
//!   the query string being re-encoded as Kong's `clear_query_arg` does (order kept,
//!   encoding normalized: see [`urlencoded::clear_query_arg`]); and the body field or
//!   multipart part (the rest of the body keeps its bytes).
//! - `anonymous` and `run_on_preflight` behave as described in `stock::auth`.
//!
//! Keys are looked up by a keyed hash and compared in constant time (see
//! [`ConsumerSet`](crate::ConsumerSet)).

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;

use super::auth::{self, json_body, multipart, urlencoded};
use crate::context::BufferedBody;
use crate::registry::{BuildContext, BuildPlugin, ConfigError};
use crate::{Flow, Plugin, Request, Response};

fn default_key_names() -> Vec<String> {
    vec!["apikey".to_string()]
}

fn yes() -> bool {
    true
}

/// Kong's `key-auth` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyAuthConfig {
    /// Names under which the key may be sent (header names, query parameters, body
    /// fields), tried in order.
    #[serde(default = "default_key_names")]
    pub key_names: Vec<String>,
    /// Look for the key in request headers.
    #[serde(default = "yes")]
    pub key_in_header: bool,
    /// Look for the key in the query string.
    #[serde(default = "yes")]
    pub key_in_query: bool,
    /// Look for the key in a form (`application/x-www-form-urlencoded`),
    /// `multipart/form-data` or JSON body of up to 64 KiB.
    #[serde(default)]
    pub key_in_body: bool,
    /// Remove the key from the request before it goes upstream.
    #[serde(default)]
    pub hide_credentials: bool,
    /// A consumer (id or username) to let failed requests through as.
    #[serde(default)]
    pub anonymous: Option<String>,
    /// Authenticate OPTIONS requests too; `false` lets them through unauthenticated.
    #[serde(default = "yes")]
    pub run_on_preflight: bool,
    /// The realm in `WWW-Authenticate: Key realm="..."`.
    #[serde(default)]
    pub realm: Option<String>,
}

/// A key name, and the header names it is read from.
#[derive(Debug)]
struct KeyName {
    /// As configured: the query parameter and body field name.
    name: String,
    /// The header of that name.
    header: HeaderName,
    /// For a name with underscores, the same with dashes: Kong (nginx) finds
    /// `api_key` in an `api-key` header.
    dashed: Option<HeaderName>,
}

/// The `key-auth` plugin.
#[derive(Debug)]
pub struct KeyAuth {
    key_names: Vec<KeyName>,
    key_in_header: bool,
    key_in_query: bool,
    key_in_body: bool,
    hide_credentials: bool,
    anonymous: Option<String>,
    run_on_preflight: bool,
    www_authenticate: HeaderValue,
}

/// What a source held for a key name.
enum Found<'a> {
    Key(Cow<'a, [u8]>),
    Duplicate,
    /// Present but not a string (`?apikey` without `=`): no key, and the later sources
    /// are not searched for this name (as in Kong).
    NotAKey,
}

const NO_KEY: &str = "No API key found in request";
const DUPLICATE: &str = "Duplicate API key found";
const UNAUTHORIZED: &str = "Unauthorized";

/// Parsed form of a buffered body, for the fields Kong reads.
enum BodyKind {
    Form,
    Json(serde_json::Map<String, serde_json::Value>),
    /// `multipart/form-data`, with its boundary.
    Multipart(String),
    Other,
}

fn body_kind(req: &Request<'_>, body: &[u8]) -> BodyKind {
    let full = req.header_str("content-type").unwrap_or_default();
    let ct = full
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "application/x-www-form-urlencoded" => BodyKind::Form,
        "application/json" => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(map)) => BodyKind::Json(map),
            _ => BodyKind::Other,
        },
        "multipart/form-data" => match multipart::boundary(full) {
            Ok(b) => BodyKind::Multipart(b.into_owned()),
            Err(_) => BodyKind::Other,
        },
        _ => BodyKind::Other,
    }
}

impl KeyAuth {
    fn in_header<'a>(&self, req: &'a Request<'_>, name: &KeyName) -> Option<Found<'a>> {
        let headers = &req.headers();
        let dashed = name.dashed.iter().flat_map(|d| headers.get_all(d));
        let mut values = headers.get_all(&name.header).iter().chain(dashed);
        let first = values.next()?;
        if values.next().is_some() {
            return Some(Found::Duplicate);
        }
        Some(Found::Key(Cow::Borrowed(first.as_bytes())))
    }

    fn in_query<'a>(&self, req: &'a Request<'_>, name: &str) -> Option<Found<'a>> {
        from_param(urlencoded::find(req.query()?.as_bytes(), name))
    }

    fn in_body<'a>(req: &Request<'_>, body: &'a [u8], name: &str) -> Option<Found<'a>> {
        match body_kind(req, body) {
            BodyKind::Form => from_param(urlencoded::find(body, name)),
            BodyKind::Json(map) => match map.get(name)? {
                serde_json::Value::String(s) => {
                    Some(Found::Key(Cow::Owned(s.clone().into_bytes())))
                }
                // A table in Kong's terms: "duplicate".
                serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                    Some(Found::Duplicate)
                }
                _ => None,
            },
            BodyKind::Multipart(boundary) => match multipart::field(body, &boundary, name) {
                Ok(multipart::Field::One(v)) => Some(Found::Key(Cow::Borrowed(v))),
                Ok(multipart::Field::Many) => Some(Found::Duplicate),
                // A malformed body holds no key (and is forwarded as it is).
                Ok(multipart::Field::Absent) | Err(_) => None,
            },
            BodyKind::Other => None,
        }
    }

    /// Reads the body when it may be looked at; `Ok(None)` when there is none to use.
    async fn body(req: &mut Request<'_>) -> Result<Option<Bytes>, Response> {
        match req.read_body().await {
            Ok(BufferedBody::Complete(b)) => Ok(Some(b)),
            Ok(BufferedBody::TooLarge) => Ok(None),
            Err(e) => Err(e.response()),
        }
    }

    /// Strips the key named `name` from the headers, the query and (when read) the body.
    async fn hide(&self, req: &mut Request<'_>, key_name: &KeyName) -> Result<(), Response> {
        let name = key_name.name.as_str();
        req.remove_header(&key_name.header);
        if let Some(dashed) = &key_name.dashed {
            req.remove_header(dashed);
        }
        // Kong's `clear_query_arg`: the query is rebuilt (normalized) whenever a key was
        // found and hidden, wherever it was found.
        let new_query = req
            .query()
            .filter(|q| !q.is_empty())
            .map(|q| urlencoded::clear_query_arg(q.as_bytes(), name));
        if let Some(q) = new_query {
            let path = req.path().to_string();
            let mut target = path.into_bytes();
            if !q.is_empty() {
                target.push(b'?');
                target.extend_from_slice(&q);
            }
            if let Ok(uri) = http::Uri::try_from(target) {
                req.set_uri(uri);
            }
        }
        if self.key_in_body {
            if let Some(body) = Self::body(req).await? {
                let stripped = match body_kind(req, &body) {
                    BodyKind::Form => urlencoded::remove(&body, name),
                    BodyKind::Json(_) => json_body::remove_member(&body, name),
                    BodyKind::Multipart(boundary) => multipart::remove(&body, &boundary, name),
                    BodyKind::Other => None,
                };
                if let Some(b) = stripped {
                    req.set_upstream_body(Bytes::from(b));
                }
            }
        }
        Ok(())
    }

    async fn authenticate(&self, req: &mut Request<'_>) -> Result<(), Response> {
        let unauthorized = |m| auth::unauthorized(m, &self.www_authenticate);
        // The usual case, a key in the first name's header with nothing to hide, is
        // judged where it lies: the search below would pick the same key, but copies it
        // so the request can be edited while it is in hand.
        if self.key_in_header && !self.hide_credentials {
            if let Some(Found::Key(key)) = self
                .key_names
                .first()
                .and_then(|first| self.in_header(req, first))
            {
                if key.is_empty() {
                    return Err(unauthorized(NO_KEY));
                }
                let consumers = auth::consumers(req);
                let Some(found) = consumers.key_auth(&key) else {
                    return Err(unauthorized(UNAUTHORIZED));
                };
                auth::set_consumer(req, found.consumer, Some(found.credential));
                return Ok(());
            }
        }
        let mut key: Option<Vec<u8>> = None;
        let mut body: Option<Option<Bytes>> = None;
        for key_name in &self.key_names {
            let name = key_name.name.as_str();
            let mut found = None;
            if self.key_in_header {
                found = self.in_header(req, key_name).map(own);
            }
            if found.is_none() && self.key_in_query {
                found = self.in_query(req, name).map(own);
            }
            if found.is_none() && self.key_in_body {
                if body.is_none() {
                    body = Some(Self::body(req).await?);
                }
                if let Some(Some(b)) = &body {
                    found = Self::in_body(req, b, name).map(own);
                }
            }
            match found {
                Some(Found::Key(k)) => {
                    if self.hide_credentials {
                        self.hide(req, key_name).await?;
                    }
                    key = Some(k.into_owned());
                    break;
                }
                Some(Found::Duplicate) => return Err(unauthorized(DUPLICATE)),
                Some(Found::NotAKey) | None => {}
            }
        }
        let key = match key {
            Some(k) if !k.is_empty() => k,
            _ => return Err(unauthorized(NO_KEY)),
        };
        let consumers = auth::consumers(req);
        let Some(found) = consumers.key_auth(&key) else {
            return Err(unauthorized(UNAUTHORIZED));
        };
        auth::set_consumer(req, found.consumer, Some(found.credential));
        Ok(())
    }
}

fn own(f: Found<'_>) -> Found<'static> {
    match f {
        Found::Key(k) => Found::Key(Cow::Owned(k.into_owned())),
        Found::Duplicate => Found::Duplicate,
        Found::NotAKey => Found::NotAKey,
    }
}

fn from_param(p: urlencoded::Param<'_>) -> Option<Found<'_>> {
    match p {
        urlencoded::Param::Absent => None,
        urlencoded::Param::Flag => Some(Found::NotAKey),
        urlencoded::Param::One(v) => Some(Found::Key(v)),
        urlencoded::Param::Many => Some(Found::Duplicate),
    }
}

#[async_trait::async_trait]
impl Plugin for KeyAuth {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        if auth::skip_preflight(req, self.run_on_preflight) {
            return Flow::Continue;
        }
        let anonymous = self.anonymous.as_deref();
        if auth::already_authenticated(req, anonymous) {
            return Flow::Continue;
        }
        let result = self.authenticate(req).await;
        auth::outcome(req, result, anonymous)
    }
}

impl BuildPlugin for KeyAuth {
    const NAME: &'static str = "key-auth";
    const PRIORITY: i32 = 1250;
    const USES_CONSUMERS: bool = true;
    type Config = KeyAuthConfig;

    fn build(config: KeyAuthConfig, cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let mut key_names = Vec::with_capacity(config.key_names.len());
        let mut err: Option<ConfigError> = None;
        if config.key_names.is_empty() {
            err = Some(ConfigError::new(
                "key_names",
                "at least one key name is required",
            ));
        }
        for (i, name) in config.key_names.iter().enumerate() {
            // Kong's `typedefs.header_name`: letters, digits, '_' and '-' only.
            let kong_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            match HeaderName::from_bytes(name.as_bytes())
                .ok()
                .filter(|_| kong_name)
            {
                Some(header) => {
                    let dashed = name
                        .contains('_')
                        .then(|| HeaderName::from_bytes(name.replace('_', "-").as_bytes()).ok())
                        .flatten();
                    key_names.push(KeyName {
                        name: name.clone(),
                        header,
                        dashed,
                    })
                }
                None => {
                    let (f, m) = (
                        format!("key_names[{i}]"),
                        format!(
                            "bad header name {name:?}, allowed characters are A-Z, a-z, 0-9, '_', and '-'"
                        ),
                    );
                    err = Some(match err {
                        None => ConfigError::new(f, m),
                        Some(e) => e.and(f, m),
                    });
                }
            }
        }
        if let Some(e) = err {
            return Err(e);
        }
        let www = match &config.realm {
            Some(realm) => format!("Key realm=\"{realm}\""),
            None => "Key".to_string(),
        };
        Ok(KeyAuth {
            key_names,
            key_in_header: config.key_in_header,
            key_in_query: config.key_in_query,
            key_in_body: config.key_in_body,
            hide_credentials: config.hide_credentials,
            anonymous: auth::check_anonymous(config.anonymous, cx)?,
            run_on_preflight: config.run_on_preflight,
            www_authenticate: auth::header_value("realm", www)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PluginScope;

    fn build(names: &[&str]) -> Result<KeyAuth, ConfigError> {
        let config: KeyAuthConfig = serde_json::from_value(serde_json::json!({
            "key_names": names,
        }))
        .unwrap();
        KeyAuth::build(config, &BuildContext::new(PluginScope::Global))
    }

    /// The plugin's access phase as the gateway runs it, with the consumers offered as
    /// the configuration's shared service.
    #[tokio::test]
    async fn authenticates_through_the_test_kit() {
        use crate::config::{from_node, ConfigNode};
        use crate::consumers::ConsumerConfig;
        use crate::testkit::TestRequest;
        use crate::ConsumerSet;
        use std::sync::Arc;

        let configs: Vec<ConsumerConfig> = from_node(
            &ConfigNode::from_json(&serde_json::json!([
                {"username": "alice", "keyauth_credentials": [{"key": "k-alice", "id": "cred-1"}]}
            ])),
            "consumers",
        )
        .expect("consumers parse");
        let consumers = Arc::new(ConsumerSet::build(&configs, "consumers").expect("valid"));
        let config: KeyAuthConfig =
            serde_json::from_value(serde_json::json!({"hide_credentials": true})).unwrap();
        let services = {
            let mut s = crate::Services::new();
            s.insert(consumers.clone());
            s
        };
        let plugin = KeyAuth::build(
            config,
            &BuildContext::new(PluginScope::Global).with_services(&services),
        )
        .expect("valid");

        let mut req = TestRequest::get("/p?apikey=k-alice&x=1")
            .header("x-consumer-username", "mallory")
            .service(consumers.clone());
        assert!(req.access(&plugin).await.is_none(), "a right key passes");
        let parts = req.parts();
        assert_eq!(parts.uri.query(), Some("x=1"), "the key is hidden");
        assert_eq!(parts.headers["x-consumer-username"], "alice");
        assert_eq!(parts.headers["x-credential-identifier"], "cred-1");
        assert_eq!(req.ctx().consumer().map(|c| &*c.id), Some("alice"));
        assert!(req.ctx().is_authenticated());

        let mut wrong = TestRequest::get("/p")
            .header("apikey", "nope")
            .service(consumers);
        let answer = wrong.access(&plugin).await.expect("a 401");
        assert_eq!(answer.status, http::StatusCode::UNAUTHORIZED);
        assert!(wrong.ctx().consumer().is_none());
    }

    #[test]
    fn key_names_are_kong_header_names() {
        let k = build(&["apikey", "X-API-Key", "api_key"]).unwrap();
        assert_eq!(k.key_names[2].dashed.as_ref().unwrap(), "api-key");
        assert!(k.key_names[0].dashed.is_none());
        for bad in ["api.key", "api key", "", "k!"] {
            let e = build(&["apikey", bad]).unwrap_err();
            let shown = format!("{e:?}");
            assert!(shown.contains("key_names[1]"), "{bad}: {shown}");
        }
        assert!(build(&[]).is_err());
    }
}

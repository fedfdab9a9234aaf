//! What the authentication plugins share: attaching a consumer to a request (Kong's
//! `set_consumer`), the `anonymous` fallback, and the readers for query strings, form,
//! multipart and JSON bodies that find and strip credentials.
//!
//! # AND and OR
//!
//! Without `anonymous`, an auth plugin always authenticates and refuses the request
//! when that fails: several auth plugins on a route must all succeed (AND). With
//! `anonymous`, a plugin is skipped when an earlier one already authenticated the
//! request with a credential, and a failure lets the request through as the anonymous
//! consumer: several such plugins on a route mean any one suffices (OR).

pub mod json_body;
pub mod multipart;
pub mod urlencoded;

use std::sync::Arc;

use http::{HeaderName, HeaderValue, StatusCode};

use crate::context::{Consumer, CredentialId};
use crate::registry::{BuildContext, ConfigError};
use crate::ConsumerSet;
use crate::{Flow, Request, Response};

/// `X-Consumer-ID`.
pub const CONSUMER_ID: HeaderName = HeaderName::from_static("x-consumer-id");
/// `X-Consumer-Custom-ID`.
pub const CONSUMER_CUSTOM_ID: HeaderName = HeaderName::from_static("x-consumer-custom-id");
/// `X-Consumer-Username`.
pub const CONSUMER_USERNAME: HeaderName = HeaderName::from_static("x-consumer-username");
/// `X-Credential-Identifier`.
pub const CREDENTIAL_IDENTIFIER: HeaderName = HeaderName::from_static("x-credential-identifier");
/// `X-Anonymous-Consumer`.
pub const ANONYMOUS: HeaderName = HeaderName::from_static("x-anonymous-consumer");
/// `X-Consumer-Groups` (set by `acl`).
pub const CONSUMER_GROUPS: HeaderName = HeaderName::from_static("x-consumer-groups");

/// Every identity header (lower case), cleared before an auth plugin sets its own so
/// that a client cannot send them itself.
const IDENTITY_HEADERS: [&str; 6] = [
    "x-consumer-id",
    "x-consumer-custom-id",
    "x-consumer-username",
    "x-credential-identifier",
    "x-anonymous-consumer",
    "x-consumer-groups",
];

/// Whether `name` (a lower-case header name) is an identity header in any spelling:
/// CGI-style upstreams (PHP, WSGI, Rack...) read `x_consumer_id` and `x-consumer-id` as
/// the same variable, so underscores count as dashes.
fn is_identity_header(name: &str) -> bool {
    IDENTITY_HEADERS.iter().any(|h| {
        h.len() == name.len()
            && h.bytes()
                .zip(name.bytes())
                .all(|(a, b)| a == b || (a == b'-' && b == b'_'))
    })
}

/// The consumers of the configuration a request runs on (none when the host offers
/// none). The reference outlives the borrow of `req`, so the request can be edited while
/// a consumer found here is in hand.
pub fn consumers<'a>(req: &Request<'a>) -> &'a ConsumerSet {
    req.services()
        .get::<ConsumerSet>()
        .unwrap_or_else(|| ConsumerSet::empty())
}

/// The consumers of the configuration being built.
pub fn consumers_at_build<'a>(cx: &BuildContext<'a>) -> &'a ConsumerSet {
    cx.services
        .get::<ConsumerSet>()
        .unwrap_or_else(|| ConsumerSet::empty())
}

/// Removes every identity header the client sent, in any spelling (see
/// [`is_identity_header`]), so that nothing the client claims reaches the upstream.
pub fn clear_identity_headers(req: &mut Request<'_>) {
    let spoofed: Vec<HeaderName> = req
        .headers()
        .keys()
        .filter(|n| is_identity_header(n.as_str()))
        .cloned()
        .collect();
    for name in spoofed {
        req.remove_header(&name);
    }
}

/// Attaches `consumer` to the request (Kong's `set_consumer`): sets the context's
/// consumer and credential, removes any identity headers the client sent, and sets the
/// upstream headers `X-Consumer-ID`, `X-Consumer-Custom-ID`, `X-Consumer-Username`,
/// `X-Credential-Identifier`, or `X-Anonymous-Consumer: true` when there is no
/// credential (the anonymous consumer).
pub fn set_consumer(
    req: &mut Request<'_>,
    consumer: &Arc<Consumer>,
    credential: Option<&CredentialId>,
) {
    req.ctx_mut()
        .set_identity(consumer.clone(), credential.map(|c| c.id.clone()));
    clear_identity_headers(req);
    let h = consumer.headers();
    let values = [
        (CONSUMER_ID, h.id.as_ref()),
        (CONSUMER_CUSTOM_ID, h.custom_id.as_ref()),
        (CONSUMER_USERNAME, h.username.as_ref()),
        (CREDENTIAL_IDENTIFIER, credential.map(|c| &c.header)),
    ];
    for (name, value) in values {
        if let Some(v) = value {
            req.insert_header(name, v.clone());
        }
    }
    if credential.is_none() {
        req.insert_header(ANONYMOUS, HeaderValue::from_static("true"));
    }
}

/// The `anonymous` setting of an auth plugin, checked at load: it must name an
/// existing consumer (by id or username). An empty value counts as unset.
pub fn check_anonymous(
    anonymous: Option<String>,
    cx: &BuildContext<'_>,
) -> Result<Option<String>, ConfigError> {
    match anonymous {
        None => Ok(None),
        Some(a) if a.is_empty() => Ok(None),
        Some(a) => {
            if consumers_at_build(cx).find(&a).is_none() {
                return Err(ConfigError::new(
                    "anonymous",
                    format!("no consumer with id or username {a:?} is defined"),
                ));
            }
            Ok(Some(a))
        }
    }
}

/// Kong's OR: an auth plugin with `anonymous` set does nothing when another plugin has
/// already authenticated the request with a credential.
pub fn already_authenticated(req: &Request<'_>, anonymous: Option<&str>) -> bool {
    anonymous.is_some() && req.ctx().credential().is_some()
}

/// What an authentication result means: pass; without `anonymous`, answer with the
/// failure (plugins combine as AND); with it, go on as the anonymous consumer (OR).
pub fn outcome(
    req: &mut Request<'_>,
    result: Result<(), Response>,
    anonymous: Option<&str>,
) -> Flow {
    match (result, anonymous) {
        (Ok(()), _) => Flow::Continue,
        (Err(_), Some(anonymous)) => continue_as_anonymous(req, anonymous),
        (Err(resp), None) => Flow::Respond(resp),
    }
}

/// After a failed authentication with `anonymous` set: continue as that consumer.
pub fn continue_as_anonymous(req: &mut Request<'_>, anonymous: &str) -> Flow {
    match consumers(req).find(anonymous) {
        Some(consumer) => {
            set_consumer(req, consumer, None);
            Flow::Continue
        }
        // Checked at load against the same consumer set; kept as Kong's answer.
        None => Flow::Respond(Response::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error occurred",
        )),
    }
}

/// Kong skips auth for OPTIONS requests when `run_on_preflight` is false. Such a request
/// goes upstream unauthenticated, so unless an earlier auth plugin identified a
/// consumer, the identity headers the client sent are removed.
pub fn skip_preflight(req: &mut Request<'_>, run_on_preflight: bool) -> bool {
    let skip = !run_on_preflight && req.method() == http::Method::OPTIONS;
    if skip && req.ctx().consumer().is_none() {
        clear_identity_headers(req);
    }
    skip
}

/// A 401 with `WWW-Authenticate`.
pub fn unauthorized(message: &'static str, www_authenticate: &HeaderValue) -> Response {
    Response::error(StatusCode::UNAUTHORIZED, message)
        .with_header(http::header::WWW_AUTHENTICATE, www_authenticate.clone())
}

/// `value` as a header value, or a config error for `field`.
pub fn header_value(field: &str, value: String) -> Result<HeaderValue, ConfigError> {
    HeaderValue::try_from(value)
        .map_err(|_| ConfigError::new(field, "must not contain control characters"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_in_every_spelling() {
        for name in [
            "x-consumer-id",
            "x_consumer_id",
            "x-consumer_custom-id",
            "x_credential_identifier",
            "x-anonymous-consumer",
            "x_consumer_groups",
            "x-consumer-username",
        ] {
            assert!(is_identity_header(name), "{name}");
        }
        for name in [
            "x-consumer",
            "x-consumer-ids",
            "x-consumer-idx",
            "apikey",
            "x-credential",
            // Only underscores stand for dashes, not the reverse.
            "x-consumer-custom-id-",
        ] {
            assert!(!is_identity_header(name), "{name}");
        }
    }
}

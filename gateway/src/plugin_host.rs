//! The gateway's side of the plugin contract: Pingora's request and response heads and
//! the client session behind the contract's host traits, so that plugins see
//! `pingway_plugin` views and never a Pingora type.
//!
//! A head is edited in one of two forms: Pingora's, whose own methods keep the case map
//! of header names in step with the header map, or taken apart into `http` parts for a
//! whole phase, each edit one map operation (the default; see [`UpstreamHead`]).

use crate::headers::Known;
use async_trait::async_trait;
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use pingway_plugins::{BodyError, BufferedBody, RequestBodySource, RequestHead, ResponseHead};

/// A request head about to go upstream, in one of two forms.
///
/// `Cased` is Pingora's head, which keeps the spelling of every header name in a case
/// map beside the header map; every edit goes through Pingora's methods, which parse the
/// name again and keep both maps in step. `Plain` is the same head taken apart into
/// `http` parts for the whole phase (the gateway's and the plugins' edits), each edit one
/// operation on the header map, and put back together after: names then go upstream in
/// lower case, as HTTP/2, Envoy and HAProxy send them (`proxy.preserve_header_case:
/// false`, the default).
pub enum UpstreamHead<'a> {
    /// Pingora's head, keeping the case of names.
    Cased(&'a mut RequestHeader),
    /// The head's parts; names in lower case.
    Plain(&'a mut http::request::Parts),
}

impl UpstreamHead<'_> {
    /// Sets a header the gateway adds, replacing any of that name.
    pub fn insert_known(&mut self, name: &Known, value: HeaderValue) {
        match self {
            UpstreamHead::Cased(h) => {
                let _ = h.insert_header(name.titled, value);
            }
            UpstreamHead::Plain(p) => {
                p.headers.insert(name.name.clone(), value);
            }
        }
    }

    /// Adds a header the gateway adds after any of that name.
    pub fn append_known(&mut self, name: &Known, value: HeaderValue) {
        match self {
            UpstreamHead::Cased(h) => {
                let _ = h.append_header(name.titled, value);
            }
            UpstreamHead::Plain(p) => {
                p.headers.append(name.name.clone(), value);
            }
        }
    }
}

/// Runs `edit` over `head` taken apart into `http` parts (see [`UpstreamHead::Plain`]),
/// its header map grown once by `extra` entries, and puts the head back together. A
/// request-target that only Pingora's raw bytes hold (not UTF-8) would not survive the
/// trip: such a head is edited as it is ([`UpstreamHead::Cased`]).
pub fn edit_upstream_plain<R>(
    head: &mut RequestHeader,
    extra: usize,
    edit: impl FnOnce(&mut UpstreamHead<'_>) -> R,
) -> R {
    if !head.raw_path_is_utf8() {
        return edit(&mut UpstreamHead::Cased(head));
    }
    let placeholder = RequestHeader::from(placeholder_parts());
    let mut parts: http::request::Parts = std::mem::replace(head, placeholder).into();
    parts.headers.reserve(extra);
    let out = edit(&mut UpstreamHead::Plain(&mut parts));
    *head = RequestHeader::from(parts);
    out
}

impl RequestHead for UpstreamHead<'_> {
    fn parts(&self) -> &http::request::Parts {
        match self {
            UpstreamHead::Cased(h) => h,
            UpstreamHead::Plain(p) => p,
        }
    }

    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        match self {
            UpstreamHead::Cased(h) => {
                let _ = h.insert_header(name, value);
            }
            UpstreamHead::Plain(p) => {
                p.headers.insert(name, value);
            }
        }
    }

    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        match self {
            UpstreamHead::Cased(h) => {
                let _ = h.append_header(name, value);
            }
            UpstreamHead::Plain(p) => {
                p.headers.append(name, value);
            }
        }
    }

    fn remove_header(&mut self, name: &HeaderName) -> Option<HeaderValue> {
        match self {
            UpstreamHead::Cased(h) => h.remove_header(name),
            UpstreamHead::Plain(p) => p.headers.remove(name),
        }
    }

    fn set_uri(&mut self, uri: Uri) {
        match self {
            UpstreamHead::Cased(h) => h.set_uri(uri),
            UpstreamHead::Plain(p) => p.uri = uri,
        }
    }

    fn set_method(&mut self, method: Method) {
        match self {
            UpstreamHead::Cased(h) => h.set_method(method),
            UpstreamHead::Plain(p) => p.method = method,
        }
    }
}

#[async_trait]
impl RequestBodySource for UpstreamHead<'_> {
    async fn read_body(&mut self, _limit: usize) -> Result<BufferedBody, BodyError> {
        Err(BodyError::Unavailable)
    }
}

/// The client's request during the access phases (pre-routing, routing, `on_request`,
/// `choose_upstream`): its head as edited so far, and its body.
///
/// `Cased` edits Pingora's head in the session (`proxy.preserve_header_case`). `Plain`
/// holds the head taken apart into `http` parts for the whole access phase, so that a
/// plugin's header edits (key-auth's `X-Consumer-*`, say) are one map operation each;
/// the proxy puts the head back into the session when the phase ends, before anything
/// else reads it.
pub enum ClientRequest<'a> {
    /// Pingora's head, in the session.
    Cased(&'a mut Session),
    /// The head's parts, and the session (whose head is a placeholder meanwhile).
    Plain {
        /// The client's head.
        parts: &'a mut http::request::Parts,
        /// The session, for the body.
        session: &'a mut Session,
    },
}

/// An empty head, to stand in for one taken apart.
fn placeholder_parts() -> http::request::Parts {
    http::Request::new(()).into_parts().0
}

/// Takes the client's head out of the session as `http` parts for the access phase (see
/// [`ClientRequest::Plain`]); [`restore_client_parts`] must put it back before anything
/// else reads the session. `None`, leaving the head in place, when the request-target
/// is one only Pingora's raw bytes hold (not UTF-8), which would not survive the trip.
pub fn take_client_parts(session: &mut Session) -> Option<http::request::Parts> {
    if !session.req_header().raw_path_is_utf8() {
        return None;
    }
    let placeholder = RequestHeader::from(placeholder_parts());
    Some(std::mem::replace(session.req_header_mut(), placeholder).into())
}

/// Puts a head taken by [`take_client_parts`] back into the session.
pub fn restore_client_parts(session: &mut Session, parts: http::request::Parts) {
    *session.req_header_mut() = RequestHeader::from(parts);
}

impl ClientRequest<'_> {
    /// Makes room for `n` more header lines at once when the head is taken apart (a
    /// header map that grows an entry at a time rehashes at each doubling).
    pub fn reserve_headers(&mut self, n: usize) {
        if let ClientRequest::Plain { parts, .. } = self {
            parts.headers.reserve(n);
        }
    }
}

impl RequestHead for ClientRequest<'_> {
    fn parts(&self) -> &http::request::Parts {
        match self {
            ClientRequest::Cased(s) => s.req_header(),
            ClientRequest::Plain { parts, .. } => parts,
        }
    }

    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        match self {
            ClientRequest::Cased(s) => {
                let _ = s.req_header_mut().insert_header(name, value);
            }
            ClientRequest::Plain { parts, .. } => {
                parts.headers.insert(name, value);
            }
        }
    }

    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        match self {
            ClientRequest::Cased(s) => {
                let _ = s.req_header_mut().append_header(name, value);
            }
            ClientRequest::Plain { parts, .. } => {
                parts.headers.append(name, value);
            }
        }
    }

    fn remove_header(&mut self, name: &HeaderName) -> Option<HeaderValue> {
        match self {
            ClientRequest::Cased(s) => s.req_header_mut().remove_header(name),
            ClientRequest::Plain { parts, .. } => parts.headers.remove(name),
        }
    }

    fn set_uri(&mut self, uri: Uri) {
        match self {
            ClientRequest::Cased(s) => s.req_header_mut().set_uri(uri),
            ClientRequest::Plain { parts, .. } => parts.uri = uri,
        }
    }

    fn set_method(&mut self, method: Method) {
        match self {
            ClientRequest::Cased(s) => s.req_header_mut().set_method(method),
            ClientRequest::Plain { parts, .. } => parts.method = method,
        }
    }
}

#[async_trait]
impl RequestBodySource for ClientRequest<'_> {
    /// Reads the body into Pingora's retry buffer, which replays it upstream. Pingora
    /// frames the body by the head in the session, so a head taken apart goes back for
    /// the read.
    async fn read_body(&mut self, limit: usize) -> Result<BufferedBody, BodyError> {
        match self {
            ClientRequest::Cased(session) => read_body(session, limit).await,
            ClientRequest::Plain { parts, session } => {
                let taken = std::mem::replace(&mut **parts, placeholder_parts());
                *session.req_header_mut() = RequestHeader::from(taken);
                let read = read_body(session, limit).await;
                let placeholder = RequestHeader::from(placeholder_parts());
                **parts = std::mem::replace(session.req_header_mut(), placeholder).into();
                read
            }
        }
    }
}

/// Reads the client's body (up to `limit` bytes) from a session whose head is in place.
async fn read_body(session: &mut Session, limit: usize) -> Result<BufferedBody, BodyError> {
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let downstream = session.as_downstream_mut();
    if expects_continue {
        // The client waits for this before it sends the body; the upstream will not
        // see the Expect header, as the body is already here.
        downstream
            .write_continue_response()
            .await
            .map_err(|e| BodyError::Read(e.to_string()))?;
        downstream
            .req_header_mut()
            .remove_header(&http::header::EXPECT);
    }
    downstream.enable_retry_buffering();
    let mut body = bytes::BytesMut::new();
    loop {
        match downstream.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(BodyError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(BodyError::Read(e.to_string())),
        }
    }
    Ok(BufferedBody::Complete(body.freeze()))
}

/// A response head: the upstream's, or the one going to the client; in Pingora's form,
/// keeping the case of names, or taken apart (see [`UpstreamHead`]).
pub enum ResponseHeadOf<'a> {
    /// Pingora's head, keeping the case of names.
    Cased(&'a mut ResponseHeader),
    /// The head's parts; names in lower case but for the dozen Pingora titles.
    Plain(&'a mut http::response::Parts),
}

impl ResponseHeadOf<'_> {
    /// Sets a header the gateway adds, replacing any of that name.
    pub fn insert_known(&mut self, name: &Known, value: HeaderValue) {
        match self {
            ResponseHeadOf::Cased(h) => {
                let _ = h.insert_header(name.titled, value);
            }
            ResponseHeadOf::Plain(p) => {
                p.headers.insert(name.name.clone(), value);
            }
        }
    }

    /// Adds a header the gateway adds after any of that name.
    pub fn append_known(&mut self, name: &Known, value: HeaderValue) {
        match self {
            ResponseHeadOf::Cased(h) => {
                let _ = h.append_header(name.titled, value);
            }
            ResponseHeadOf::Plain(p) => {
                p.headers.append(name.name.clone(), value);
            }
        }
    }

    /// Sets a header a plugin queued under a name known when it was written.
    pub fn insert_static(&mut self, name: &'static str, value: HeaderValue) {
        match self {
            ResponseHeadOf::Cased(h) => {
                let _ = h.insert_header(name, value);
            }
            ResponseHeadOf::Plain(p) => {
                if let Some(name) = crate::headers::static_name(name) {
                    p.headers.insert(name, value);
                }
            }
        }
    }
}

/// Runs `edit` over `head` taken apart into `http` parts, its header map grown once by
/// `extra` entries, and puts the head back together without Pingora's case map (and with
/// the status's standard reason phrase).
pub fn edit_response_plain<R>(
    head: &mut ResponseHeader,
    extra: usize,
    edit: impl FnOnce(&mut ResponseHeadOf<'_>) -> R,
) -> R {
    let placeholder = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts: http::response::Parts = std::mem::replace(head, placeholder).into();
    parts.headers.reserve(extra);
    let out = edit(&mut ResponseHeadOf::Plain(&mut parts));
    *head = ResponseHeader::from(parts);
    out
}

impl ResponseHead for ResponseHeadOf<'_> {
    fn parts(&self) -> &http::response::Parts {
        match self {
            ResponseHeadOf::Cased(h) => h,
            ResponseHeadOf::Plain(p) => p,
        }
    }

    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        match self {
            ResponseHeadOf::Cased(h) => {
                let _ = match crate::headers::titled(&name) {
                    Some(titled) => h.insert_header(titled, value),
                    None => h.insert_header(name, value),
                };
            }
            ResponseHeadOf::Plain(p) => {
                p.headers.insert(name, value);
            }
        }
    }

    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        match self {
            ResponseHeadOf::Cased(h) => {
                let _ = match crate::headers::titled(&name) {
                    Some(titled) => h.append_header(titled, value),
                    None => h.append_header(name, value),
                };
            }
            ResponseHeadOf::Plain(p) => {
                p.headers.append(name, value);
            }
        }
    }

    fn remove_header(&mut self, name: &HeaderName) -> Option<HeaderValue> {
        match self {
            ResponseHeadOf::Cased(h) => h.remove_header(name),
            ResponseHeadOf::Plain(p) => p.headers.remove(name),
        }
    }

    fn set_status(&mut self, status: StatusCode) {
        match self {
            ResponseHeadOf::Cased(h) => {
                let _ = h.set_status(status);
            }
            ResponseHeadOf::Plain(p) => p.status = status,
        }
    }
}

//! The gateway's side of the plugin contract: Pingora's request and response heads and
//! the client session behind the contract's host traits, so that plugins see
//! `pingway_plugin` views and never a Pingora type.
//!
//! Writes go through Pingora's own methods, which keep the case map of header names in
//! step with the header map. Headers a plugin adds travel in lower case (as HTTP/2 and
//! HAProxy send every name); names the gateway sets itself keep their usual spelling.

use async_trait::async_trait;
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use pingway_plugins::{BodyError, BufferedBody, RequestBodySource, RequestHead, ResponseHead};

/// A request head about to go upstream.
pub struct UpstreamHead<'a>(pub &'a mut RequestHeader);

impl RequestHead for UpstreamHead<'_> {
    fn parts(&self) -> &http::request::Parts {
        self.0
    }

    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = self.0.insert_header(name, value);
    }

    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = self.0.append_header(name, value);
    }

    fn remove_header(&mut self, name: &HeaderName) -> Option<HeaderValue> {
        self.0.remove_header(name)
    }

    fn set_uri(&mut self, uri: Uri) {
        self.0.set_uri(uri)
    }

    fn set_method(&mut self, method: Method) {
        self.0.set_method(method)
    }
}

#[async_trait]
impl RequestBodySource for UpstreamHead<'_> {
    async fn read_body(&mut self, _limit: usize) -> Result<BufferedBody, BodyError> {
        Err(BodyError::Unavailable)
    }
}

/// The client's request: its head (as edited so far) and its body.
pub struct ClientRequest<'a>(pub &'a mut Session);

impl RequestHead for ClientRequest<'_> {
    fn parts(&self) -> &http::request::Parts {
        self.0.req_header()
    }

    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = self.0.req_header_mut().insert_header(name, value);
    }

    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = self.0.req_header_mut().append_header(name, value);
    }

    fn remove_header(&mut self, name: &HeaderName) -> Option<HeaderValue> {
        self.0.req_header_mut().remove_header(name)
    }

    fn set_uri(&mut self, uri: Uri) {
        self.0.req_header_mut().set_uri(uri)
    }

    fn set_method(&mut self, method: Method) {
        self.0.req_header_mut().set_method(method)
    }
}

#[async_trait]
impl RequestBodySource for ClientRequest<'_> {
    /// Reads the body into Pingora's retry buffer, which replays it upstream.
    async fn read_body(&mut self, limit: usize) -> Result<BufferedBody, BodyError> {
        let expects_continue = self
            .0
            .req_header()
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let downstream = self.0.as_downstream_mut();
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
}

/// A response head: the upstream's, or the one going to the client.
pub struct ResponseHeadOf<'a>(pub &'a mut ResponseHeader);

impl ResponseHead for ResponseHeadOf<'_> {
    fn parts(&self) -> &http::response::Parts {
        self.0
    }

    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = match crate::headers::titled(&name) {
            Some(titled) => self.0.insert_header(titled, value),
            None => self.0.insert_header(name, value),
        };
    }

    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = match crate::headers::titled(&name) {
            Some(titled) => self.0.append_header(titled, value),
            None => self.0.append_header(name, value),
        };
    }

    fn remove_header(&mut self, name: &HeaderName) -> Option<HeaderValue> {
        self.0.remove_header(name)
    }

    fn set_status(&mut self, status: StatusCode) {
        let _ = self.0.set_status(status);
    }
}

//! The proxy's cache hooks, kept here so that `proxy.rs` only calls them.

use std::sync::Arc;

use pingora_cache::{CacheKey, NoCacheReason, RespCacheable};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use pingway_plugins::RequestCtx;

use super::{RequestCache, RouteCache};

/// `request_cache_filter` on a route with a cache: computes the key and enables
/// Pingora's cache for an eligible request; an ineligible one is left disabled (and
/// answered with `X-Cache-Status: Bypass`).
pub fn enable(
    session: &mut Session,
    policy: &Arc<RouteCache>,
    req: &RequestCtx,
) -> Box<RequestCache> {
    let header = session.req_header();
    let key = policy.request_eligible(header).then(|| {
        let route = req.route.as_ref().map_or("", |r| &*r.name);
        let consumer = req.consumer().map(|c| &*c.id);
        policy.key(header, route, consumer)
    });
    if key.is_some() {
        let store = policy.store();
        session
            .cache
            .enable(store.storage(), Some(store.eviction()), None, None, None);
        // A body over the whole store's bound is not kept (the response still streams).
        session
            .cache
            .set_max_file_size_bytes(policy.max_entry_bytes());
    }
    Box::new(RequestCache {
        policy: policy.clone(),
        key,
    })
}

/// `cache_key_callback`: the key `enable` computed.
pub fn cache_key(cache: Option<&RequestCache>) -> Result<CacheKey> {
    match cache.and_then(|c| c.key.as_deref().map(|k| c.policy.store().cache_key(k))) {
        Some(key) => Ok(key),
        None => Error::e_explain(ErrorType::InternalError, "cache enabled without a key"),
    }
}

/// `response_cache_filter`: the route's rules.
pub fn response_cacheable(cache: Option<&RequestCache>, resp: &ResponseHeader) -> RespCacheable {
    match cache {
        Some(c) => c.policy.response_cacheable(resp),
        None => RespCacheable::Uncacheable(NoCacheReason::NeverEnabled),
    }
}

//! The response cache a route enables with the `proxy-cache` plugin (Kong's fields),
//! served on Pingora's cache (`pingora-cache`) from bounded in-memory stores.
//!
//! The seam: the stock crate's `proxy-cache` plugin checks the `config:` block with the
//! other plugins and has no phases; at load, [`RouteCache::for_route`] compiles the same
//! block (the route's entry, else the global one) into the route's [`RouteCache`], which
//! the proxy's cache hooks read. A route without one enables nothing: Pingora's cache
//! stays disabled for its requests and no hook does more than look at an empty field.
//!
//! The key is Kong's: a SHA-256 (hex, sent as `X-Cache-Key`) over the route, the
//! consumer, the method (`HEAD` shares `GET`'s entry, as Pingora fetches a `GET` to fill
//! it), the path, the query parameters (all of them, or `vary_query_params`) and the
//! `vary_headers`. Responses are cached by status, media type and, with
//! `cache_control`, by RFC 7234's rules; `X-Cache-Status` says `Miss`, `Hit`, `Refresh`
//! or `Bypass`.

pub mod hooks;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{header, HeaderName, HeaderValue, Method};
use pingora_cache::cache_control::CacheControl;
use pingora_cache::{CacheMeta, CachePhase, ForcedFreshness, NoCacheReason, RespCacheable};
use pingora_http::{RequestHeader, ResponseHeader};
use pingway_plugins::config::{from_node, PluginConfig};
use pingway_plugins::proxy_cache::ProxyCacheConfig;

pub use store::{Store, StoreId, StoreStats};

/// The plugin name whose entry enables the cache.
pub const PLUGIN: &str = "proxy-cache";

/// `X-Cache-Status`.
pub const X_CACHE_STATUS: HeaderName = HeaderName::from_static("x-cache-status");
/// `X-Cache-Key`.
pub const X_CACHE_KEY: HeaderName = HeaderName::from_static("x-cache-key");

/// A media type of a configured list, lower-case; `*` matches anything.
#[derive(Debug, Clone)]
pub(crate) struct MediaType {
    kind: String,
    subtype: String,
}

impl MediaType {
    pub(crate) fn parse(s: &str) -> Option<MediaType> {
        let s = s.split(';').next()?.trim().to_ascii_lowercase();
        let (kind, subtype) = s.split_once('/')?;
        Some(MediaType {
            kind: kind.trim().to_string(),
            subtype: subtype.trim().to_string(),
        })
    }

    pub(crate) fn matches(&self, other: &MediaType) -> bool {
        (self.kind == "*" || self.kind == other.kind)
            && (self.subtype == "*" || self.subtype == other.subtype)
    }
}

/// A route's compiled `proxy-cache` policy.
#[derive(Debug)]
pub struct RouteCache {
    methods: Vec<Method>,
    codes: Vec<u16>,
    types: Vec<MediaType>,
    ttl: Duration,
    storage_ttl: Option<Duration>,
    cache_control: bool,
    ignore_uri_case: bool,
    /// Sorted; empty means every parameter.
    vary_query: Vec<String>,
    /// Sorted.
    vary_headers: Vec<HeaderName>,
    store: &'static Store,
}

impl RouteCache {
    /// The cache of a route with plugin entries `route` under top-level `global` ones:
    /// the route's enabled `proxy-cache` entry, else the global one. A block that does
    /// not parse yields none; the plugin's own build reports it.
    pub fn for_route(route: &[PluginConfig], global: &[PluginConfig]) -> Option<Arc<RouteCache>> {
        let entry = route
            .iter()
            .find(|p| p.name == PLUGIN)
            .or_else(|| global.iter().find(|p| p.name == PLUGIN))?;
        if !entry.enabled {
            return None;
        }
        let config: ProxyCacheConfig = from_node(&entry.config, "config").ok()?;
        RouteCache::compile(&config).map(Arc::new)
    }

    /// Compiles a checked configuration (none if it has problems).
    pub fn compile(c: &ProxyCacheConfig) -> Option<RouteCache> {
        if !c.problems().is_empty() {
            return None;
        }
        let mut vary_query = c.vary_query_params.clone();
        vary_query.sort();
        vary_query.dedup();
        let mut vary_headers: Vec<HeaderName> = c
            .vary_headers
            .iter()
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect();
        vary_headers.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        vary_headers.dedup();
        Some(RouteCache {
            methods: c
                .request_method
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect(),
            codes: c.response_code.clone(),
            types: c
                .content_type
                .iter()
                .filter_map(|t| MediaType::parse(t))
                .collect(),
            ttl: Duration::from_secs(c.cache_ttl),
            storage_ttl: c.storage_ttl.map(Duration::from_secs),
            cache_control: c.cache_control,
            ignore_uri_case: c.ignore_uri_case,
            vary_query,
            vary_headers,
            store: store::store(StoreId {
                name: c.memory.dictionary_name.clone(),
                max_bytes: c.memory.max_bytes,
                max_entries: c.memory.max_entries,
            }),
        })
    }

    /// The store the route's entries go to.
    pub fn store(&self) -> &'static Store {
        self.store
    }

    /// The largest body one entry may hold: the store's whole bound.
    pub fn max_entry_bytes(&self) -> usize {
        usize::try_from(self.store.id().max_bytes).unwrap_or(usize::MAX)
    }

    /// Whether this request may use the cache at all (else `Bypass`).
    pub fn request_eligible(&self, req: &RequestHeader) -> bool {
        if !self.methods.contains(&req.method) {
            return false;
        }
        if self.cache_control {
            if let Some(cc) = CacheControl::from_req_headers(req) {
                if cc.no_store() || cc.no_cache() {
                    return false;
                }
            }
            // RFC 7234 §3.2: a shared cache does not answer authorized requests.
            if req.headers.contains_key(header::AUTHORIZATION) {
                return false;
            }
        }
        true
    }

    /// Kong's cache key of a request, as lower-case hex SHA-256.
    pub fn key(&self, req: &RequestHeader, route: &str, consumer: Option<&str>) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut part = |bytes: &[u8]| {
            ctx.update(&(bytes.len() as u64).to_be_bytes());
            ctx.update(bytes);
        };
        part(route.as_bytes());
        part(consumer.unwrap_or("").as_bytes());
        let method = if req.method == Method::HEAD {
            &Method::GET
        } else {
            &req.method
        };
        part(method.as_str().as_bytes());
        let path = req.uri.path();
        if self.ignore_uri_case {
            part(path.to_ascii_lowercase().as_bytes());
        } else {
            part(path.as_bytes());
        }
        let mut params: Vec<(&str, &str)> = req
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .filter(|(name, _)| {
                self.vary_query.is_empty() || self.vary_query.iter().any(|v| v == name)
            })
            .collect();
        params.sort();
        part(&(params.len() as u64).to_be_bytes());
        for (name, value) in params {
            part(name.as_bytes());
            part(value.as_bytes());
        }
        for name in &self.vary_headers {
            part(name.as_str().as_bytes());
            for value in req.headers.get_all(name) {
                part(value.as_bytes());
            }
            part(b"\n");
        }
        let digest = ctx.finish();
        let mut hex = String::with_capacity(64);
        for b in digest.as_ref() {
            hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        hex
    }

    /// Whether an upstream response is stored, and for how long.
    pub fn response_cacheable(&self, resp: &ResponseHeader) -> RespCacheable {
        let uncacheable = |why| RespCacheable::Uncacheable(NoCacheReason::Custom(why));
        if !self.codes.contains(&resp.status.as_u16()) {
            return uncacheable("response_code");
        }
        let media = resp
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(MediaType::parse);
        match media {
            Some(m) if self.types.iter().any(|t| t.matches(&m)) => {}
            _ => return uncacheable("content_type"),
        }
        let mut ttl = self.ttl;
        if self.cache_control {
            match control_ttl(resp) {
                Control::Uncacheable => return uncacheable("cache_control"),
                Control::Ttl(t) => ttl = t,
                Control::Default => {}
            }
        }
        let now = SystemTime::now();
        RespCacheable::Cacheable(CacheMeta::new(now + ttl, now, 0, 0, resp.clone()))
    }

    /// Whether a found entry is used: past `storage_ttl` it counts as absent (`Miss`);
    /// with `cache_control`, older than the request's `max-age` it is fetched again
    /// (`Refresh`).
    pub fn hit_freshness(&self, req: &RequestHeader, meta: &CacheMeta) -> Option<ForcedFreshness> {
        let age = meta.age();
        if self.storage_ttl.is_some_and(|s| age >= s) {
            return Some(ForcedFreshness::ForceMiss);
        }
        if self.cache_control {
            let max_age =
                CacheControl::from_req_headers(req).and_then(|cc| cc.max_age().ok().flatten());
            if max_age.is_some_and(|m| age > Duration::from_secs(u64::from(m))) {
                return Some(ForcedFreshness::ForceExpired);
            }
        }
        None
    }
}

/// What a response's `Cache-Control` (and `Expires`) say about storing it.
enum Control {
    Uncacheable,
    Ttl(Duration),
    Default,
}

fn control_ttl(resp: &ResponseHeader) -> Control {
    if let Some(cc) = CacheControl::from_resp_headers(resp) {
        if cc.no_store() || cc.private() || cc.no_cache() {
            return Control::Uncacheable;
        }
        let age = cc
            .s_maxage()
            .ok()
            .flatten()
            .or_else(|| cc.max_age().ok().flatten());
        match age {
            Some(0) => return Control::Uncacheable,
            Some(secs) => return Control::Ttl(Duration::from_secs(u64::from(secs))),
            None => {}
        }
    }
    let expires = resp
        .headers
        .get(header::EXPIRES)
        .and_then(|v| v.to_str().ok())
        .map(httpdate::parse_http_date);
    match expires {
        Some(Ok(at)) => match at.duration_since(SystemTime::now()) {
            Ok(ttl) if !ttl.is_zero() => Control::Ttl(ttl),
            _ => Control::Uncacheable,
        },
        // RFC 7234 §5.3: an invalid date means already expired.
        Some(Err(_)) => Control::Uncacheable,
        None => Control::Default,
    }
}

/// A request on a route with a cache: its key, once it was found eligible.
#[derive(Debug)]
pub struct RequestCache {
    /// The route's policy.
    pub policy: Arc<RouteCache>,
    /// The `X-Cache-Key`; none when the request bypasses the cache.
    pub key: Option<String>,
}

impl RequestCache {
    /// Kong's `X-Cache-Status` for where the response came from.
    pub fn status(&self, phase: CachePhase) -> &'static str {
        if self.key.is_none() {
            return "Bypass";
        }
        match phase {
            CachePhase::Hit => "Hit",
            CachePhase::Miss => "Miss",
            CachePhase::Expired
            | CachePhase::Stale
            | CachePhase::StaleUpdating
            | CachePhase::Revalidated
            | CachePhase::RevalidatedNoCache(_) => "Refresh",
            _ => "Bypass",
        }
    }

    /// Adds `X-Cache-Status` (and `X-Cache-Key`) to a response.
    pub fn add_headers(&self, phase: CachePhase, resp: &mut ResponseHeader) {
        let status = HeaderValue::from_static(self.status(phase));
        // Inserting a known name with a valid value cannot fail.
        let _ = resp.insert_header(X_CACHE_STATUS, status);
        if let Some(key) = self
            .key
            .as_deref()
            .and_then(|k| HeaderValue::from_str(k).ok())
        {
            let _ = resp.insert_header(X_CACHE_KEY, key);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config;
    use crate::runtime::Runtime;

    fn build(plugins: &str) -> Result<Runtime, Vec<String>> {
        let yaml = format!(
            "listeners: [{{address: 127.0.0.1:1}}]
upstreams: [{{name: u, targets: [127.0.0.1:2]}}]
routes:
  - name: r
    upstream: u
    paths: [/r]
{plugins}
  - name: other
    upstream: u
    paths: [/o]
"
        );
        let loaded = config::load_str(&yaml).expect("parses");
        Runtime::build(&loaded, &pingway_plugins::registry(), None).map_err(|d| {
            d.into_iter()
                .map(|d| format!("{}: {}", d.path, d.message))
                .collect()
        })
    }

    #[test]
    fn only_routes_with_the_plugin_get_a_cache() {
        let rt = build("    plugins: [{name: proxy-cache, config: {cache_ttl: 5}}]").unwrap();
        assert!(rt.routes[0].cache.is_some());
        assert!(
            rt.routes[1].cache.is_none(),
            "no cache hooks on other routes"
        );
        let off = build("    plugins: [{name: proxy-cache, enabled: false}]").unwrap();
        assert!(off.routes[0].cache.is_none());
    }

    #[test]
    fn a_bad_field_is_a_load_error_naming_it() {
        let problems = build(
            "    plugins: [{name: proxy-cache, config: {strategy: redis, memory: {max_bytes: 0}}}]",
        )
        .unwrap_err();
        let text = problems.join("\n");
        assert!(
            text.contains("routes[0].plugins[0].config.strategy"),
            "{text}"
        );
        assert!(
            text.contains("routes[0].plugins[0].config.memory.max_bytes"),
            "{text}"
        );
        let unknown = build("    plugins: [{name: proxy-cache, config: {cache_tll: 5}}]")
            .unwrap_err()
            .join("\n");
        assert!(unknown.contains("cache_tll"), "{unknown}");
    }

    #[test]
    fn a_consumer_cannot_hold_it() {
        let yaml = "listeners: [{address: 127.0.0.1:1}]
upstreams: [{name: u, targets: [127.0.0.1:2]}]
routes: [{name: r, upstream: u}]
consumers:
  - username: ann
    plugins: [{name: proxy-cache}]
";
        let loaded = config::load_str(yaml).expect("parses");
        let problems = Runtime::build(&loaded, &pingway_plugins::registry(), None).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|d| d.path.starts_with("consumers[0].plugins[0]")
                    && d.message.contains("not to a consumer")),
            "{problems:?}"
        );
    }

    #[test]
    fn keys_follow_kongs_rules() {
        let rt = build(
            "    plugins: [{name: proxy-cache, config: {vary_headers: [X-Lang], ignore_uri_case: true}}]",
        )
        .unwrap();
        let cache = rt.routes[0].cache.as_ref().unwrap();
        let req = |method: &str, uri: &str, lang: Option<&str>| {
            let mut r = pingora_http::RequestHeader::build(method, uri.as_bytes(), None).unwrap();
            if let Some(l) = lang {
                r.insert_header("x-lang", l).unwrap();
            }
            r
        };
        let k = |r: &pingora_http::RequestHeader, consumer| cache.key(r, "r", consumer);
        let base = k(&req("GET", "/r/A?x=1&y=2", Some("en")), None);
        assert_eq!(base.len(), 64);
        assert_eq!(base, k(&req("HEAD", "/r/a?y=2&x=1", Some("en")), None));
        assert_ne!(base, k(&req("GET", "/r/a?x=1&y=2", Some("fr")), None));
        assert_ne!(base, k(&req("GET", "/r/a?x=1", Some("en")), None));
        assert_ne!(base, k(&req("GET", "/r/a?x=1&y=2", Some("en")), Some("c1")));
        assert_ne!(base, k(&req("POST", "/r/a?x=1&y=2", Some("en")), None));
    }
}

//! proxy-cache as clients see it: Kong's `X-Cache-Status` values, the backend reached
//! only on a miss, variants kept apart, Cache-Control honoured, purges through the
//! admin API, and the memory bound evicting (counted).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

/// A backend whose answers the client controls through request headers, counting every
/// request it serves:
/// - `x-want-status` (200), `x-want-type` (`text/plain`), `x-want-cache-control`;
/// - `x-want-size`: bytes of padding added to the body.
///
/// The body is `<serial> <request line>\n` then the padding, so each answer differs
/// from the one before.
struct CountingBackend {
    addr: std::net::SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingBackend {
    async fn start() -> CountingBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let h = h.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, &h).await;
                });
            }
        });
        CountingBackend { addr, hits, task }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for CountingBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, hits: &AtomicUsize) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_string();
        let header = |name: &str| {
            head.split("\r\n").skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let serial = hits.fetch_add(1, Ordering::SeqCst) + 1;
        let status: u16 = header("x-want-status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(200);
        let ctype = header("x-want-type").unwrap_or_else(|| "text/plain".into());
        let size: usize = header("x-want-size")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut body = format!("{serial} {request_line}\n").into_bytes();
        body.extend((0..size).map(|i| b'a' + (i % 26) as u8));
        let mut resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n",
            body.len()
        );
        if let Some(cc) = header("x-want-cache-control") {
            resp.push_str(&format!("cache-control: {cc}\r\n"));
        }
        resp.push_str("\r\n");
        stream.write_all(resp.as_bytes()).await?;
        if !request_line.starts_with("HEAD ") {
            stream.write_all(&body).await?;
        }
    }
}

fn yaml(backend: &CountingBackend, admin_port: u16, cache_config: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
admin:
  listen: 127.0.0.1:{admin_port}
upstreams: [{{name: up, targets: [\"{}\"]}}]
routes:
  - name: cached
    paths: [/c]
    upstream: up
    plugins:
      - name: proxy-cache
        config: {cache_config}
  - name: plain
    paths: [/p]
    upstream: up
",
        backend.addr
    )
}

struct Setup {
    gw: GatewayProcess,
    backend: CountingBackend,
    admin_port: u16,
}

async fn start(cache_config: &str) -> Setup {
    let backend = CountingBackend::start().await;
    let admin_port = free_port();
    let gw = GatewayProcess::start(&yaml(&backend, admin_port, cache_config)).await;
    let c = client();
    let url = format!("http://127.0.0.1:{admin_port}/status");
    let up = wait_until(Duration::from_secs(10), || {
        let (c, url) = (c.clone(), url.clone());
        async move { c.get(url).send().await.is_ok() }
    })
    .await;
    assert!(up, "the admin API did not come up:\n{}", gw.log());
    Setup {
        gw,
        backend,
        admin_port,
    }
}

impl Setup {
    fn admin(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }
}

/// Status, `X-Cache-Status`, `X-Cache-Key` and body of one request.
async fn get(req: reqwest::RequestBuilder) -> (u16, String, String, Vec<u8>) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let h = |n: &str| {
        r.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (cache, key) = (h("x-cache-status"), h("x-cache-key"));
    (status, cache, key, r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_miss_then_hits_with_the_same_bytes_and_the_backend_hit_once() {
    let s = start("{}").await;
    let c = client();
    let url = s.gw.url("/c/doc?b=2&a=1");
    let (status, cache, key, first) = get(c.get(&url).header("x-want-size", "5000")).await;
    assert_eq!((status, cache.as_str()), (200, "Miss"));
    assert_eq!(key.len(), 64, "a sha256 hex key: {key:?}");
    for _ in 0..3 {
        let r = c
            .get(&url)
            .header("x-want-size", "5000")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-cache-status"], "Hit");
        assert_eq!(r.headers()["x-cache-key"], key.as_str());
        assert!(r.headers().contains_key("age"), "a hit has Age");
        assert_eq!(
            r.bytes().await.unwrap().to_vec(),
            first,
            "a hit's body is the original's"
        );
    }
    assert_eq!(s.backend.hits(), 1, "only the miss reached the backend");
    // The query's order does not matter (parameters are sorted into the key).
    let (_, cache, key2, _) = get(c.get(s.gw.url("/c/doc?a=1&b=2"))).await;
    assert_eq!((cache.as_str(), key2.as_str()), ("Hit", key.as_str()));
    // HEAD shares the GET's entry.
    let r = c.head(&url).send().await.unwrap();
    assert_eq!(r.headers()["x-cache-status"], "Hit");
    assert_eq!(s.backend.hits(), 1);
    // A route without proxy-cache has no cache headers and always reaches the backend.
    let r = c.get(s.gw.url("/p/doc")).send().await.unwrap();
    assert!(r.headers().get("x-cache-status").is_none());
    c.get(s.gw.url("/p/doc")).send().await.unwrap();
    assert_eq!(s.backend.hits(), 3);
}

#[tokio::test]
async fn methods_statuses_and_types_not_configured_bypass() {
    let s = start("{}").await;
    let c = client();
    // POST is not in request_method.
    for _ in 0..2 {
        let (_, cache, key, _) = get(c.post(s.gw.url("/c/post"))).await;
        assert_eq!(cache, "Bypass");
        assert!(key.is_empty(), "no key for a bypassed method");
    }
    assert_eq!(s.backend.hits(), 2);
    // 500 is not in response_code.
    for _ in 0..2 {
        let (status, cache, _, _) =
            get(c.get(s.gw.url("/c/err")).header("x-want-status", "500")).await;
        assert_eq!((status, cache.as_str()), (500, "Bypass"));
    }
    assert_eq!(s.backend.hits(), 4);
    // text/html is not in content_type; application/json with parameters is.
    for _ in 0..2 {
        let (_, cache, _, _) = get(c
            .get(s.gw.url("/c/html"))
            .header("x-want-type", "text/html"))
        .await;
        assert_eq!(cache, "Bypass");
    }
    assert_eq!(s.backend.hits(), 6);
    let json = |c: &reqwest::Client| {
        c.get(s.gw.url("/c/json"))
            .header("x-want-type", "application/json; charset=utf-8")
    };
    assert_eq!(get(json(&c)).await.1, "Miss");
    assert_eq!(get(json(&c)).await.1, "Hit");
    // 404 is cached by default.
    let nf = |c: &reqwest::Client| c.get(s.gw.url("/c/nf")).header("x-want-status", "404");
    assert_eq!(get(nf(&c)).await.1, "Miss");
    assert_eq!(get(nf(&c)).await.1, "Hit");
    assert_eq!(s.backend.hits(), 8);
}

#[tokio::test]
async fn an_expired_entry_is_refreshed() {
    let s = start("{cache_ttl: 1}").await;
    let c = client();
    let url = s.gw.url("/c/ttl");
    let (_, cache, _, first) = get(c.get(&url)).await;
    assert_eq!(cache, "Miss");
    // Poll until the entry is no longer fresh: the next answer is a Refresh from the
    // backend, with a new body.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let refreshed = loop {
        let got = get(c.get(&url)).await;
        if got.1 != "Hit" {
            break got;
        }
        assert_eq!(got.3, first, "a hit's body is the original's");
        assert!(
            std::time::Instant::now() < deadline,
            "the entry never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (_, cache, _, body) = refreshed;
    assert_eq!(cache, "Refresh");
    assert_ne!(body, first, "a refresh fetches a new answer");
    assert_eq!(s.backend.hits(), 2);
    // The refreshed answer is stored again.
    let (_, cache, _, again) = get(c.get(&url)).await;
    assert_eq!((cache.as_str(), again), ("Hit", body));
}

#[tokio::test]
async fn vary_headers_and_vary_query_params_keep_variants_apart() {
    let s = start("{vary_headers: [x-lang], vary_query_params: [page]}").await;
    let c = client();
    let url = |q: &str| s.gw.url(&format!("/c/list?{q}"));
    let (_, st, k_en, en) = get(c.get(url("page=1")).header("x-lang", "en")).await;
    assert_eq!(st, "Miss");
    let (_, st, k_fr, fr) = get(c.get(url("page=1")).header("x-lang", "fr")).await;
    assert_eq!(st, "Miss");
    assert_ne!(k_en, k_fr);
    assert_ne!(en, fr);
    let (_, st, _, again) = get(c.get(url("page=1")).header("x-lang", "en")).await;
    assert_eq!((st.as_str(), again), ("Hit", en));
    // Another page is another entry; a parameter not listed is not part of the key.
    let (_, st, _, _) = get(c.get(url("page=2")).header("x-lang", "en")).await;
    assert_eq!(st, "Miss");
    let (_, st, key, _) = get(c.get(url("page=1&utm=x")).header("x-lang", "en")).await;
    assert_eq!((st.as_str(), key.as_str()), ("Hit", k_en.as_str()));
    assert_eq!(s.backend.hits(), 3);
}

#[tokio::test]
async fn cache_control_is_honoured_when_asked() {
    let s = start("{cache_control: true, cache_ttl: 300}").await;
    let c = client();
    // Responses marked no-store or private are not stored.
    for cc in ["no-store", "private", "no-cache", "max-age=0"] {
        let path = format!("/c/resp-{}", cc.replace('=', "-"));
        for _ in 0..2 {
            let req = c.get(s.gw.url(&path)).header("x-want-cache-control", cc);
            assert_eq!(get(req).await.1, "Bypass", "{cc}");
        }
    }
    assert_eq!(s.backend.hits(), 8);
    // A cacheable one is stored; a request with no-store or no-cache bypasses it.
    let url = s.gw.url("/c/ok");
    let ok = |c: &reqwest::Client| {
        c.get(&url)
            .header("x-want-cache-control", "public, max-age=300")
    };
    assert_eq!(get(ok(&c)).await.1, "Miss");
    assert_eq!(get(ok(&c)).await.1, "Hit");
    let (_, st, _, _) = get(ok(&c).header("cache-control", "no-store")).await;
    assert_eq!(st, "Bypass");
    assert_eq!(s.backend.hits(), 10);
    // A response's max-age is its TTL: one second, then a Refresh.
    let short = s.gw.url("/c/short");
    let short_req = |c: &reqwest::Client| c.get(&short).header("x-want-cache-control", "max-age=1");
    assert_eq!(get(short_req(&c)).await.1, "Miss");
    let refreshed = wait_until(Duration::from_secs(10), || {
        let c = c.clone();
        let req = short_req(&c);
        async move { get(req).await.1 == "Refresh" }
    })
    .await;
    assert!(
        refreshed,
        "the response's max-age did not end its freshness"
    );
    // The request's max-age: an entry older than it is fetched again.
    let old = wait_until(Duration::from_secs(10), || {
        let c = c.clone();
        let req = ok(&c).header("cache-control", "max-age=0");
        async move { get(req).await.1 == "Refresh" }
    })
    .await;
    assert!(
        old,
        "a request's max-age=0 did not refresh an entry older than that"
    );
    // Without cache_control, the same response is cached whatever it says.
    drop(s);
    let s = start("{}").await;
    let req = || {
        client()
            .get(s.gw.url("/c/x"))
            .header("x-want-cache-control", "no-store")
    };
    assert_eq!(get(req()).await.1, "Miss");
    assert_eq!(get(req()).await.1, "Hit");
}

#[tokio::test]
async fn purging_through_the_admin_api_makes_the_next_request_a_miss() {
    let s = start("{}").await;
    let c = client();
    let a = s.gw.url("/c/a");
    let b = s.gw.url("/c/b");
    let (_, _, key_a, _) = get(c.get(&a)).await;
    get(c.get(&b)).await;
    assert_eq!(get(c.get(&a)).await.1, "Hit");
    // The entry can be read, then deleted by its key.
    let r = c
        .get(s.admin(&format!("/proxy-cache/{key_a}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let entry: serde_json::Value = r.json().await.unwrap();
    assert_eq!(entry["status"], 200);
    let r = c
        .delete(s.admin(&format!("/proxy-cache/{key_a}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(c.get(&a)).await.1, "Miss");
    assert_eq!(get(c.get(&b)).await.1, "Hit", "other entries stay");
    // An unknown key is Kong's 404.
    let r = c
        .delete(s.admin("/proxy-cache/0123abcd"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["message"],
        "Not found"
    );
    // Everything.
    let r = c.delete(s.admin("/proxy-cache")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(c.get(&a)).await.1, "Miss");
    assert_eq!(get(c.get(&b)).await.1, "Miss");
    let r = c
        .get(s.admin(&format!("/proxy-cache/{key_a}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the new entry is readable");
    assert_eq!(s.backend.hits(), 5);
}

#[tokio::test]
async fn the_memory_bound_evicts_least_recently_used_entries() {
    // Room for two 4000-byte bodies, not three.
    let s = start("{memory: {dictionary_name: small, max_bytes: 10000}}").await;
    let c = client();
    let req = |p: &str| c.get(s.gw.url(p)).header("x-want-size", "4000");
    assert_eq!(get(req("/c/1")).await.1, "Miss");
    assert_eq!(get(req("/c/2")).await.1, "Miss");
    assert_eq!(get(req("/c/1")).await.1, "Hit");
    // A third entry evicts the least recently used (/c/2); eviction is asynchronous,
    // so wait for the counter.
    assert_eq!(get(req("/c/3")).await.1, "Miss");
    let evicted = wait_until(Duration::from_secs(10), || {
        let c = c.clone();
        let url = s.admin("/proxy-cache");
        async move {
            let stats: serde_json::Value = c.get(url).send().await.unwrap().json().await.unwrap();
            stats["stores"][0]["evicted_entries"] == 1
        }
    })
    .await;
    assert!(
        evicted,
        "the bound did not evict, or the eviction was not counted"
    );
    assert_eq!(get(req("/c/1")).await.1, "Hit");
    assert_eq!(get(req("/c/3")).await.1, "Hit");
    assert_eq!(get(req("/c/2")).await.1, "Miss");
    // A body over the whole bound is served in full and not stored.
    let big = |c: &reqwest::Client| c.get(s.gw.url("/c/big")).header("x-want-size", "20000");
    let (status, _, _, body) = get(big(&c)).await;
    assert_eq!(status, 200);
    assert!(body.len() > 20000);
    assert_ne!(get(big(&c)).await.1, "Hit");
}

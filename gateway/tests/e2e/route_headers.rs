//! A route's header edits (`request_headers`, `response_headers`) through the real
//! binary: what the upstream receives and what the client gets; bad edits refused at
//! load with their fields.

use crate::common::*;

#[tokio::test]
async fn routes_edit_request_and_response_headers() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: up, targets: [\"{}\"]}}]
routes:
  - name: api
    upstream: up
    request_headers:
      remove: [x-internal]
      set: {{x-env: prod}}
      add: {{x-tag: gateway}}
    response_headers:
      remove: [x-backend]
      set: {{cache-control: no-store}}
",
        backend.addr
    );
    let gw = GatewayProcess::start(&yaml).await;
    let r = client()
        .get(gw.url("/"))
        .header("x-internal", "secret")
        .header("x-env", "dev")
        .header("x-tag", "client")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("x-backend").is_none(),
        "removed from the response"
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
    let seen = Echo::parse(&r.text().await.unwrap());
    assert_eq!(seen.header("x-internal"), None);
    assert_eq!(seen.header("x-env"), Some("prod"));
    let tags: Vec<_> = seen
        .headers
        .iter()
        .filter(|(k, _)| k == "x-tag")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(tags, ["client", "gateway"]);
}

#[test]
fn bad_edits_are_refused_with_their_fields() {
    let yaml = "listeners: [{address: \"127.0.0.1:{PORT}\"}]
upstreams: [{name: up, targets: [\"127.0.0.1:9\"]}]
routes:
  - name: api
    upstream: up
    request_headers: {set: {content-length: \"5\"}}
    response_headers: {remove: [\"bad name\"]}
";
    let (ok, out) = crate::auth_fixtures::validate(yaml);
    assert!(!ok, "{out}");
    assert!(
        out.contains("routes[0].request_headers.set.content-length"),
        "{out}"
    );
    assert!(
        out.contains("routes[0].response_headers.remove[0]"),
        "{out}"
    );
}

/// `path_rewrite`: the upstream receives the rewritten path, captures moved into the
/// path and the query; a path the pattern does not match goes unchanged; a replacement
/// naming a missing group is refused at load.
#[tokio::test]
async fn a_regex_rewrite_moves_captures_into_path_and_query() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: up, targets: [\"{}\"]}}]
routes:
  - name: api
    upstream: up
    path_rewrite: {{regex: \"^/api/v(\\\\d+)/(.*)\", replacement: \"/$2?version=$1\"}}
",
        backend.addr
    );
    let gw = GatewayProcess::start(&yaml).await;
    let c = client();
    let seen = |r: reqwest::Response| async move { Echo::parse(&r.text().await.unwrap()) };
    let r = c
        .get(gw.url("/api/v2/users/7?page=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(seen(r).await.target(), "/users/7?version=2&page=3");
    let r = c.get(gw.url("/other/v2/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let echo = seen(r).await;
    assert_eq!(echo.target(), "/other/v2/x", "{echo:?}");

    let (ok, out) = crate::auth_fixtures::validate(
        "listeners: [{address: \"127.0.0.1:{PORT}\"}]
upstreams: [{name: up, targets: [\"127.0.0.1:9\"]}]
routes:
  - name: api
    upstream: up
    path_rewrite: {regex: \"^/(\\\\w+)$\", replacement: \"/$3\"}
",
    );
    assert!(!ok, "{out}");
    assert!(out.contains("routes[0].path_rewrite.replacement"), "{out}");
}

//! key-auth, black-box, in the style of Kong's `spec/03-plugins/09-key-auth` tests.

use crate::auth_fixtures::*;

const CONSUMERS: &str = r#"
consumers:
  - username: alice
    custom_id: alice-42
    keyauth_credentials:
      - key: alice-key
        id: alice-cred
  - username: bob
    keyauth_credentials: [{key: bob-key}]
  - username: anon
"#;

fn route(name: &str, path: &str, config: &str) -> String {
    format!(
        "  - name: {name}\n    paths: [\"{path}\"]\n    upstream: echo\n    plugins:\n      - name: key-auth\n        config: {config}\n"
    )
}

async fn gateway(config: &str) -> AuthGateway {
    AuthGateway::start(&route("r", "/", config), CONSUMERS).await
}

#[tokio::test]
async fn missing_key_is_401_with_www_authenticate_key() {
    let g = gateway("{}").await;
    let h = expect_error(g.get("/", &[]).await, 401, "No API key found in request").await;
    assert_eq!(www(&h), "Key");
    assert_eq!(g.backend.hits(), 0);
}

#[tokio::test]
async fn empty_key_counts_as_missing() {
    let g = gateway("{}").await;
    expect_error(
        g.get("/", &[("apikey", "")]).await,
        401,
        "No API key found in request",
    )
    .await;
    expect_error(
        g.get("/?apikey=", &[]).await,
        401,
        "No API key found in request",
    )
    .await;
}

#[tokio::test]
async fn unknown_key_is_unauthorized() {
    let g = gateway("{realm: kong}").await;
    let h = expect_error(g.get("/", &[("apikey", "nope")]).await, 401, "Unauthorized").await;
    assert_eq!(www(&h), "Key realm=\"kong\"");
    // Close to a real key is still wrong.
    expect_error(g.get("/?apikey=alice-ke", &[]).await, 401, "Unauthorized").await;
}

#[tokio::test]
async fn right_key_in_header_sets_consumer_headers() {
    let g = gateway("{}").await;
    let e = expect_echo(g.get("/", &[("apikey", "alice-key")]).await).await;
    assert_eq!(e.header("x-consumer-id"), Some("alice"));
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    assert_eq!(e.header("x-consumer-custom-id"), Some("alice-42"));
    assert_eq!(e.header("x-credential-identifier"), Some("alice-cred"));
    assert_eq!(e.header("x-anonymous-consumer"), None);
    // Not hidden by default.
    assert_eq!(e.header("apikey"), Some("alice-key"));
    // A credential without an id gets a non-secret default identifier.
    let e = expect_echo(g.get("/", &[("apikey", "bob-key")]).await).await;
    assert_eq!(e.header("x-credential-identifier"), Some("bob-key-0"));
    assert_eq!(e.header("x-consumer-custom-id"), None);
}

#[tokio::test]
async fn right_key_in_query() {
    let g = gateway("{}").await;
    let e = expect_echo(g.get("/p?x=1&apikey=bob-key", &[]).await).await;
    assert_eq!(e.header("x-consumer-username"), Some("bob"));
    assert_eq!(e.target(), "/p?x=1&apikey=bob-key");
}

#[tokio::test]
async fn duplicate_keys_are_refused() {
    let g = gateway("{}").await;
    let resp = g
        .req("GET", "/")
        .header("apikey", "alice-key")
        .header("apikey", "bob-key")
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "Duplicate API key found").await;
    expect_error(
        g.get("/?apikey=alice-key&apikey=bob-key", &[]).await,
        401,
        "Duplicate API key found",
    )
    .await;
}

#[tokio::test]
async fn sources_can_be_switched_off_and_names_changed() {
    let g = AuthGateway::start(
        &(route("h", "/h", "{key_in_header: false}")
            + &route("q", "/q", "{key_in_query: false}")
            + &route("n", "/n", "{key_names: [x-api-key, token]}")),
        CONSUMERS,
    )
    .await;
    expect_error(
        g.get("/h", &[("apikey", "alice-key")]).await,
        401,
        "No API key found in request",
    )
    .await;
    expect_echo(g.get("/h?apikey=alice-key", &[]).await).await;
    expect_error(
        g.get("/q?apikey=alice-key", &[]).await,
        401,
        "No API key found in request",
    )
    .await;
    expect_echo(g.get("/q", &[("apikey", "alice-key")]).await).await;
    // Names are tried in order; the first key found is the one judged.
    let e = expect_echo(
        g.get("/n?token=bob-key", &[("x-api-key", "alice-key")])
            .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    expect_error(
        g.get("/n?token=bob-key", &[("x-api-key", "wrong")]).await,
        401,
        "Unauthorized",
    )
    .await;
}

#[tokio::test]
async fn hide_credentials_strips_the_key_and_normalizes_the_query_as_kong() {
    let g = gateway("{hide_credentials: true}").await;
    let e = expect_echo(
        g.get("/p", &[("apikey", "alice-key"), ("x-other", "kept")])
            .await,
    )
    .await;
    assert_eq!(e.header("apikey"), None);
    assert_eq!(e.header("x-other"), Some("kept"));
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    // The rest of the query string keeps its order but is re-encoded as Kong's
    // clear_query_arg does: decoded, then escaped again, spaces as %20.
    let e = expect_echo(g.get("/p?a=%2F1&apikey=alice-key&b=x+y&c", &[]).await).await;
    assert_eq!(e.target(), "/p?a=%2F1&b=x%20y&c=");
    let e = expect_echo(g.get("/p?z=1&apikey=alice-key&c=valu%651", &[]).await).await;
    assert_eq!(e.target(), "/p?z=1&c=value1");
    let e = expect_echo(g.get("/p?apikey=alice-key", &[]).await).await;
    assert_eq!(e.target(), "/p");
    // Kong rewrites the query whenever it hides a key, wherever the key was.
    let e = expect_echo(g.get("/p?b=x+y&d=%7e", &[("apikey", "alice-key")]).await).await;
    assert_eq!(e.target(), "/p?b=x%20y&d=%7E");
    // Without hide_credentials the query is forwarded as sent.
    let plain = gateway("{}").await;
    let e = expect_echo(plain.get("/p?apikey=alice-key&b=x+y&c=valu%651", &[]).await).await;
    assert_eq!(e.target(), "/p?apikey=alice-key&b=x+y&c=valu%651");
}

#[tokio::test]
async fn key_in_form_body_is_found_and_the_body_still_reaches_upstream() {
    let g = gateway("{key_in_body: true}").await;
    let body = "a=1&apikey=alice-key&b=%20two";
    let resp = g
        .req("POST", "/form")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let e = expect_echo(resp).await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    assert_eq!(e.body, body);
    assert_eq!(
        e.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    // A body without the key is forwarded as well after the 401 check passes via header.
    let resp = g
        .req("POST", "/form")
        .header("apikey", "bob-key")
        .header("content-type", "text/plain")
        .body("plain text")
        .send()
        .await
        .unwrap();
    assert_eq!(expect_echo(resp).await.body, "plain text");
}

#[tokio::test]
async fn key_in_json_body_hidden_byte_for_byte() {
    let g = gateway("{key_in_body: true, hide_credentials: true}").await;
    let body = r#"{"a": 1.50,  "apikey": "bob-key", "nested": {"apikey": "x"}, "z": [1, 2]}"#;
    let resp = g
        .req("POST", "/json")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let e = expect_echo(resp).await;
    assert_eq!(e.header("x-consumer-username"), Some("bob"));
    let expected = r#"{"a": 1.50,  "nested": {"apikey": "x"}, "z": [1, 2]}"#;
    assert_eq!(e.body, expected);
    assert_eq!(
        e.header("content-length"),
        Some(expected.len().to_string().as_str())
    );
    // Form bodies too; the key name appears nowhere else.
    let resp = g
        .req("POST", "/form?q=1")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("x=%41&apikey=alice-key&y=2")
        .send()
        .await
        .unwrap();
    let e = expect_echo(resp).await;
    assert_eq!(e.body, "x=%41&y=2");
    assert_eq!(e.target(), "/form?q=1");
    // A JSON array under the key name is a "table" in Kong's terms: duplicate.
    let resp = g
        .req("POST", "/json")
        .header("content-type", "application/json")
        .body(r#"{"apikey": ["a", "b"]}"#)
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "Duplicate API key found").await;
}

#[tokio::test]
async fn anonymous_alone_maps_failures_to_the_anonymous_consumer() {
    let g = gateway("{anonymous: anon}").await;
    let e = expect_echo(g.get("/", &[]).await).await;
    assert_eq!(e.header("x-anonymous-consumer"), Some("true"));
    assert_eq!(e.header("x-consumer-username"), Some("anon"));
    assert_eq!(e.header("x-credential-identifier"), None);
    let e = expect_echo(g.get("/", &[("apikey", "wrong")]).await).await;
    assert_eq!(e.header("x-anonymous-consumer"), Some("true"));
    let e = expect_echo(g.get("/", &[("apikey", "alice-key")]).await).await;
    assert_eq!(e.header("x-anonymous-consumer"), None);
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
}

#[tokio::test]
async fn clients_cannot_spoof_identity_headers() {
    let g = gateway("{}").await;
    let e = expect_echo(
        g.get(
            "/",
            &[
                ("apikey", "bob-key"),
                ("x-consumer-id", "admin"),
                ("x-consumer-custom-id", "admin-1"),
                ("x-anonymous-consumer", "false"),
                ("x-credential-identifier", "forged"),
                ("x-consumer-groups", "admins"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-id"), Some("bob"));
    assert_eq!(e.header("x-consumer-custom-id"), None);
    assert_eq!(e.header("x-anonymous-consumer"), None);
    assert_eq!(e.header("x-credential-identifier"), Some("bob-key-0"));
    assert_eq!(e.header("x-consumer-groups"), None);
}

/// Many upstream stacks (CGI, PHP, WSGI, Rack) read `X_Consumer_ID` and `X-Consumer-ID`
/// as the same variable, and a client may send a header twice: every spelling goes.
#[tokio::test]
async fn spoofed_identity_headers_are_removed_in_every_spelling() {
    let g = gateway("{anonymous: anon}").await;
    let spoof: &[(&str, &str)] = &[
        ("X-Consumer-ID", "admin"),
        ("x-consumer-id", "admin2"),
        ("X_Consumer_ID", "admin3"),
        ("x_consumer_username", "admin"),
        ("X-Consumer_Custom-ID", "admin-1"),
        ("x_credential_identifier", "forged"),
        ("X_Anonymous_Consumer", "false"),
        ("x_consumer_groups", "admins"),
    ];
    for key in [Some("bob-key"), None] {
        let mut headers = spoof.to_vec();
        if let Some(k) = key {
            headers.push(("apikey", k));
        }
        let e = expect_echo(g.get("/", &headers).await).await;
        let identity: Vec<_> = e
            .headers
            .iter()
            .filter(|(k, _)| {
                let k = k.replace('_', "-");
                k.starts_with("x-consumer-")
                    || k == "x-credential-identifier"
                    || k == "x-anonymous-consumer"
            })
            .cloned()
            .collect();
        let expected: Vec<(String, String)> = match key {
            Some(_) => vec![
                ("x-consumer-id".into(), "bob".into()),
                ("x-consumer-username".into(), "bob".into()),
                ("x-credential-identifier".into(), "bob-key-0".into()),
            ],
            None => vec![
                ("x-consumer-id".into(), "anon".into()),
                ("x-consumer-username".into(), "anon".into()),
                ("x-anonymous-consumer".into(), "true".into()),
            ],
        };
        let mut identity = identity;
        identity.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(identity, expected, "{key:?}");
    }
}

/// With `run_on_preflight: false` an OPTIONS request passes unauthenticated; it must
/// not carry a client's claimed identity upstream either.
#[tokio::test]
async fn unauthenticated_preflights_carry_no_claimed_identity() {
    let g = gateway("{run_on_preflight: false}").await;
    let resp = g
        .req("OPTIONS", "/")
        .header("origin", "http://example.com")
        .header("access-control-request-method", "GET")
        .header("x-consumer-username", "admin")
        .header("x_consumer_id", "admin")
        .header("x-credential-identifier", "forged")
        .header("x-other", "kept")
        .send()
        .await
        .unwrap();
    let e = expect_echo(resp).await;
    assert_eq!(e.header("x-consumer-username"), None);
    assert_eq!(e.header("x_consumer_id"), None);
    assert_eq!(e.header("x-credential-identifier"), None);
    assert_eq!(e.header("x-other"), Some("kept"));
}

#[tokio::test]
async fn preflight_requests() {
    let g = AuthGateway::start(
        &(route("on", "/on", "{}") + &route("off", "/off", "{run_on_preflight: false}")),
        CONSUMERS,
    )
    .await;
    expect_error(g.preflight("/on").await, 401, "No API key found in request").await;
    let e = expect_echo(g.preflight("/off").await).await;
    assert!(
        e.request_line.starts_with("OPTIONS /off"),
        "{}",
        e.request_line
    );
    assert_eq!(e.header("x-consumer-id"), None);
    // Other methods still need a key.
    expect_error(g.get("/off", &[]).await, 401, "No API key found in request").await;
}

#[tokio::test]
async fn anonymous_must_name_an_existing_consumer() {
    let backend = crate::common::Backend::start("echo", crate::common::Behaviour::Echo).await;
    let yaml = config(&backend, &route("r", "/", "{anonymous: ghost}"), CONSUMERS);
    let (ok, out) = validate(&yaml);
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "routes[0].plugins[0].config.anonymous: no consumer with id or username \"ghost\""
        ),
        "{out}"
    );
}

#[tokio::test]
async fn the_header_is_judged_before_the_query_and_hiding_strips_both() {
    let g = AuthGateway::start(
        &(route("r", "/", "{}") + &route("h", "/h", "{hide_credentials: true}")),
        CONSUMERS,
    )
    .await;
    // A key in the header and one in the query: not a duplicate; the header's is final.
    let e = expect_echo(g.get("/?apikey=bob-key", &[("apikey", "alice-key")]).await).await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    expect_error(
        g.get("/?apikey=bob-key", &[("apikey", "wrong")]).await,
        401,
        "Unauthorized",
    )
    .await;
    // Hiding removes the name from every place, whichever held the judged key.
    let e = expect_echo(
        g.get("/h?x=1&apikey=bob-key", &[("apikey", "alice-key")])
            .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    assert_eq!(e.header("apikey"), None);
    assert_eq!(e.target(), "/h?x=1");
    // The encoded path comes through untouched; odd query bytes are re-encoded as Kong
    // does (a stray '%' becomes %25).
    let e = expect_echo(g.get("/h/a%20b/c?z=%zz&apikey=bob-key&=e&f=", &[]).await).await;
    assert_eq!(e.target(), "/h/a%20b/c?z=%25zz&=e&f=");
}

#[tokio::test]
async fn a_key_name_with_underscores_matches_the_dashed_header() {
    // Kong (nginx) finds key name `api_key` in an `api-key` header.
    let g = gateway("{key_names: [api_key], hide_credentials: true}").await;
    let e = expect_echo(g.get("/", &[("api-key", "alice-key"), ("x-y", "1")]).await).await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    assert_eq!(e.header("api-key"), None);
    assert_eq!(e.header("x-y"), Some("1"));
    let e = expect_echo(g.get("/?api_key=bob-key", &[]).await).await;
    assert_eq!(e.header("x-consumer-username"), Some("bob"));
    assert_eq!(e.target(), "/");
    expect_error(
        g.get("/", &[("api-key", "alice-key"), ("api_key", "bob-key")])
            .await,
        401,
        "Duplicate API key found",
    )
    .await;
}

#[tokio::test]
async fn a_query_name_without_value_is_no_key_and_ends_the_search_for_that_name() {
    // `?apikey` is Kong's boolean `true`: not a key, and the body is not searched for it.
    let g = gateway("{key_in_body: true}").await;
    let resp = g
        .req("POST", "/?apikey")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("apikey=alice-key")
        .send()
        .await
        .unwrap();
    expect_error(resp, 401, "No API key found in request").await;
    let resp = g
        .req("POST", "/?other")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("apikey=alice-key")
        .send()
        .await
        .unwrap();
    expect_echo(resp).await;
    expect_error(
        g.get("/?apikey&apikey=bob-key", &[]).await,
        401,
        "Duplicate API key found",
    )
    .await;
}

#[tokio::test]
async fn json_body_values_that_are_not_strings() {
    let g = gateway("{key_in_body: true, key_names: [apikey, token]}").await;
    let post = |body: &'static str| {
        g.req("POST", "/")
            .header("content-type", "application/json; charset=utf-8")
            .body(body)
            .send()
    };
    // An object is a "table" in Kong's terms: duplicate.
    expect_error(
        post(r#"{"apikey": {"k": "alice-key"}}"#).await.unwrap(),
        401,
        "Duplicate API key found",
    )
    .await;
    // A number or null is no key; the next name is tried.
    let e = expect_echo(post(r#"{"apikey": 12, "token": "bob-key"}"#).await.unwrap()).await;
    assert_eq!(e.header("x-consumer-username"), Some("bob"));
    expect_error(
        post(r#"{"apikey": null}"#).await.unwrap(),
        401,
        "No API key found in request",
    )
    .await;
    // Not JSON at all: no key.
    expect_error(
        post(r#"{"apikey": "alice-key""#).await.unwrap(),
        401,
        "No API key found in request",
    )
    .await;
}

#[tokio::test]
async fn bodies_over_64_kib_are_not_searched_and_pass_unchanged() {
    let g = gateway("{key_in_body: true, hide_credentials: true}").await;
    let big = format!("apikey=alice-key&pad={}", "x".repeat(70 * 1024));
    let post = |body: String, key: Option<&str>| {
        let mut r = g
            .req("POST", "/")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(k) = key {
            r = r.header("apikey", k.to_string());
        }
        r.send()
    };
    expect_error(
        post(big.clone(), None).await.unwrap(),
        401,
        "No API key found in request",
    )
    .await;
    // With the key in a header, the large body is forwarded as it came (it was not
    // read, so its own `apikey` field is not stripped).
    let e = expect_echo(post(big.clone(), Some("bob-key")).await.unwrap()).await;
    assert_eq!(e.header("x-consumer-username"), Some("bob"));
    assert_eq!(e.body, big);
}

/// A multipart body with a text field, the key field (unless `key` is `None`) and a
/// file, with CRLF line ends and boundary `XyZ`.
fn multipart_body(key: Option<&str>) -> String {
    let key_part = key.map_or(String::new(), |k| {
        format!("--XyZ\r\nContent-Disposition: form-data; name=\"apikey\"\r\n\r\n{k}\r\n")
    });
    format!(
        "preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\none\r\n\
         {key_part}\
         --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nline 1\r\nline 2\r\n--XyZ--\r\n"
    )
}

async fn post_multipart(g: &AuthGateway, content_type: &str, body: String) -> reqwest::Response {
    g.req("POST", "/upload")
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn key_in_a_multipart_body_authenticates() {
    let g = gateway("{key_in_body: true}").await;
    let body = multipart_body(Some("alice-key"));
    let e =
        expect_echo(post_multipart(&g, "multipart/form-data; boundary=XyZ", body.clone()).await)
            .await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    // Not hiding: the body reaches the upstream as sent.
    assert_eq!(e.body, body);
    // A quoted boundary is the same boundary.
    let e =
        expect_echo(post_multipart(&g, "Multipart/Form-Data; boundary=\"XyZ\"", body).await).await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    // A wrong key, two key parts, no key part, a body without its closing delimiter.
    let wrong = multipart_body(Some("nope"));
    expect_error(
        post_multipart(&g, "multipart/form-data; boundary=XyZ", wrong).await,
        401,
        "Unauthorized",
    )
    .await;
    let twice = multipart_body(Some("alice-key")).replace(
        "--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; name=apikey\r\n\r\nbob-key\r\n--XyZ--",
    );
    expect_error(
        post_multipart(&g, "multipart/form-data; boundary=XyZ", twice).await,
        401,
        "Duplicate API key found",
    )
    .await;
    expect_error(
        post_multipart(
            &g,
            "multipart/form-data; boundary=XyZ",
            multipart_body(None),
        )
        .await,
        401,
        "No API key found in request",
    )
    .await;
    let unterminated = multipart_body(Some("alice-key")).replace("--XyZ--\r\n", "");
    expect_error(
        post_multipart(&g, "multipart/form-data; boundary=XyZ", unterminated).await,
        401,
        "No API key found in request",
    )
    .await;
    // key_in_body off: multipart bodies are not searched.
    let off = gateway("{}").await;
    expect_error(
        post_multipart(
            &off,
            "multipart/form-data; boundary=XyZ",
            multipart_body(Some("alice-key")),
        )
        .await,
        401,
        "No API key found in request",
    )
    .await;
}

#[tokio::test]
async fn a_multipart_key_is_hidden_and_the_rest_of_the_body_kept() {
    let g = gateway("{key_in_body: true, hide_credentials: true}").await;
    let e = expect_echo(
        post_multipart(
            &g,
            "multipart/form-data; boundary=XyZ",
            multipart_body(Some("bob-key")),
        )
        .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-username"), Some("bob"));
    // Exactly the key's part is gone: preamble, other parts and file byte for byte.
    let expected = multipart_body(None);
    assert_eq!(e.body, expected);
    assert_eq!(
        e.header("content-length"),
        Some(expected.len().to_string().as_str())
    );
    // With the key in a header, a multipart body without the key passes unchanged.
    let resp = g
        .req("POST", "/upload")
        .header("apikey", "alice-key")
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(multipart_body(None))
        .send()
        .await
        .unwrap();
    let e = expect_echo(resp).await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    assert_eq!(e.body, multipart_body(None));
}

//! basic-auth, black-box, in the style of Kong's `spec/03-plugins/10-basic-auth` tests.

use base64::Engine as _;

use crate::auth_fixtures::*;

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash_with_salt(password, 4, [9u8; 16])
        .unwrap()
        .format_for_version(bcrypt::Version::TwoB)
}

fn argon2_hash(password: &str) -> String {
    use argon2::PasswordHasher;
    let salt = argon2::password_hash::SaltString::from_b64("c29tZXNhbHQ").unwrap();
    let params = argon2::Params::new(64, 1, 1, None).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

fn consumers() -> String {
    format!(
        r#"
consumers:
  - username: alice
    custom_id: a-1
    basicauth_credentials:
      - username: alice-user
        password: "s3cret:with:colons"
  - username: bob
    basicauth_credentials:
      - username: bob-bcrypt
        password: "{}"
      - username: bob-argon
        password: "{}"
  - username: anon
"#,
        bcrypt_hash("bob-pw"),
        argon2_hash("bob-pw2")
    )
}

fn route(name: &str, path: &str, config: &str) -> String {
    format!(
        "  - name: {name}\n    paths: [\"{path}\"]\n    upstream: echo\n    plugins:\n      - name: basic-auth\n        config: {config}\n"
    )
}

async fn gateway(config: &str) -> AuthGateway {
    AuthGateway::start(&route("r", "/", config), &consumers()).await
}

#[tokio::test]
async fn missing_credentials_are_401_with_basic_realm() {
    let g = gateway("{}").await;
    let h = expect_error(g.get("/", &[]).await, 401, "Unauthorized").await;
    assert_eq!(www(&h), "Basic realm=\"service\"");
    assert_eq!(g.backend.hits(), 0);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_401() {
    let g = gateway("{realm: kong}").await;
    let h = expect_error(
        g.get("/", &[("authorization", &basic("alice-user", "nope"))])
            .await,
        401,
        "Unauthorized",
    )
    .await;
    assert_eq!(www(&h), "Basic realm=\"kong\"");
    expect_error(
        g.get(
            "/",
            &[("authorization", &basic("nobody", "s3cret:with:colons"))],
        )
        .await,
        401,
        "Unauthorized",
    )
    .await;
    // An empty password is a (wrong) password.
    expect_error(
        g.get("/", &[("authorization", &basic("alice-user", ""))])
            .await,
        401,
        "Unauthorized",
    )
    .await;
}

#[tokio::test]
async fn malformed_headers_are_401() {
    let g = gateway("{}").await;
    for value in [
        "Basic !!!notbase64",
        "Bearer abc",
        "Basic",
        "Basic OnBhc3M=",
    ] {
        expect_error(
            g.get("/", &[("authorization", value)]).await,
            401,
            "Unauthorized",
        )
        .await;
    }
}

#[tokio::test]
async fn right_plain_password_sets_consumer_headers() {
    let g = gateway("{}").await;
    // The password itself contains colons: only the first one separates.
    let e = expect_echo(
        g.get(
            "/",
            &[("authorization", &basic("alice-user", "s3cret:with:colons"))],
        )
        .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-id"), Some("alice"));
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    assert_eq!(e.header("x-consumer-custom-id"), Some("a-1"));
    // Kong sends the basic-auth username as the credential identifier.
    assert_eq!(e.header("x-credential-identifier"), Some("alice-user"));
    assert!(e.header("authorization").is_some());
}

#[tokio::test]
async fn lowercase_scheme_is_accepted() {
    let g = gateway("{}").await;
    let v = basic("alice-user", "s3cret:with:colons").replace("Basic", "basic");
    expect_echo(g.get("/", &[("authorization", &v)]).await).await;
}

#[tokio::test]
async fn bcrypt_and_argon2_hashes_verify_and_cache() {
    let g = gateway("{}").await;
    for _ in 0..3 {
        let e = expect_echo(
            g.get("/", &[("authorization", &basic("bob-bcrypt", "bob-pw"))])
                .await,
        )
        .await;
        assert_eq!(e.header("x-consumer-username"), Some("bob"));
        expect_error(
            g.get("/", &[("authorization", &basic("bob-bcrypt", "bob-px"))])
                .await,
            401,
            "Unauthorized",
        )
        .await;
    }
    let e = expect_echo(
        g.get("/", &[("authorization", &basic("bob-argon", "bob-pw2"))])
            .await,
    )
    .await;
    assert_eq!(e.header("x-credential-identifier"), Some("bob-argon"));
    expect_error(
        g.get("/", &[("authorization", &basic("bob-argon", "bob-pw"))])
            .await,
        401,
        "Unauthorized",
    )
    .await;
}

#[tokio::test]
async fn proxy_authorization_is_read_first() {
    let g = gateway("{}").await;
    let e = expect_echo(
        g.get(
            "/",
            &[(
                "proxy-authorization",
                &basic("alice-user", "s3cret:with:colons"),
            )],
        )
        .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    // A known user in Proxy-Authorization is the one judged.
    let resp = g
        .get(
            "/",
            &[
                ("proxy-authorization", &basic("alice-user", "wrong")),
                ("authorization", &basic("bob-bcrypt", "bob-pw")),
            ],
        )
        .await;
    expect_error(resp, 401, "Unauthorized").await;
    // An unknown one falls through to Authorization.
    let e = expect_echo(
        g.get(
            "/",
            &[
                ("proxy-authorization", &basic("nobody", "x")),
                ("authorization", &basic("bob-bcrypt", "bob-pw")),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-username"), Some("bob"));
}

#[tokio::test]
async fn hide_credentials_removes_only_the_authorization_header() {
    let g = gateway("{hide_credentials: true}").await;
    let e = expect_echo(
        g.get(
            "/q?authorization=stays",
            &[
                ("authorization", &basic("alice-user", "s3cret:with:colons")),
                ("x-other", "kept"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(e.header("authorization"), None);
    assert_eq!(e.header("x-other"), Some("kept"));
    assert_eq!(e.target(), "/q?authorization=stays");
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
}

#[tokio::test]
async fn anonymous_alone() {
    let g = gateway("{anonymous: anon}").await;
    let e = expect_echo(g.get("/", &[]).await).await;
    assert_eq!(e.header("x-anonymous-consumer"), Some("true"));
    assert_eq!(e.header("x-consumer-username"), Some("anon"));
    let e = expect_echo(
        g.get("/", &[("authorization", &basic("alice-user", "bad"))])
            .await,
    )
    .await;
    assert_eq!(e.header("x-anonymous-consumer"), Some("true"));
    let e = expect_echo(
        g.get(
            "/",
            &[("authorization", &basic("alice-user", "s3cret:with:colons"))],
        )
        .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    assert_eq!(e.header("x-anonymous-consumer"), None);
}

const KEYS: &str = r#"
  - username: carol
    keyauth_credentials: [{key: carol-key}]
"#;

fn two_plugins(anonymous: bool) -> String {
    let anon = if anonymous { "{anonymous: anon}" } else { "{}" };
    format!(
        "  - name: r\n    paths: [\"/\"]\n    upstream: echo\n    plugins:\n      - name: key-auth\n        config: {anon}\n      - name: basic-auth\n        config: {anon}\n"
    )
}

#[tokio::test]
async fn with_anonymous_several_auth_plugins_combine_as_or() {
    let g = AuthGateway::start(&two_plugins(true), &(consumers() + KEYS)).await;
    // key-auth (1250) runs before basic-auth (1100).
    let e = expect_echo(g.get("/", &[("apikey", "carol-key")]).await).await;
    assert_eq!(e.header("x-consumer-username"), Some("carol"));
    assert_eq!(e.header("x-anonymous-consumer"), None);
    let e = expect_echo(
        g.get(
            "/",
            &[("authorization", &basic("alice-user", "s3cret:with:colons"))],
        )
        .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    assert_eq!(e.header("x-anonymous-consumer"), None);
    let e = expect_echo(g.get("/", &[]).await).await;
    assert_eq!(e.header("x-consumer-username"), Some("anon"));
    assert_eq!(e.header("x-anonymous-consumer"), Some("true"));
}

#[tokio::test]
async fn without_anonymous_several_auth_plugins_combine_as_and() {
    let g = AuthGateway::start(&two_plugins(false), &(consumers() + KEYS)).await;
    expect_error(
        g.get("/", &[("apikey", "carol-key")]).await,
        401,
        "Unauthorized",
    )
    .await;
    expect_error(
        g.get(
            "/",
            &[("authorization", &basic("alice-user", "s3cret:with:colons"))],
        )
        .await,
        401,
        "No API key found in request",
    )
    .await;
    // Both: the last plugin to authenticate sets the consumer.
    let e = expect_echo(
        g.get(
            "/",
            &[
                ("apikey", "carol-key"),
                ("authorization", &basic("alice-user", "s3cret:with:colons")),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
}

#[tokio::test]
async fn stored_hashes_and_passwords_never_show_in_errors() {
    let backend = crate::common::Backend::start("echo", crate::common::Behaviour::Echo).await;
    let yaml = config(
        &backend,
        &route("r", "/", "{}"),
        r#"
consumers:
  - username: x
    basicauth_credentials:
      - {username: u, password: "$2b$10$tooShortToBeAHash"}
      - {username: v, password: "hunter2-visible?"}
      - {username: v, password: "hunter2-visible?"}
"#,
    );
    let (ok, out) = validate(&yaml);
    assert!(!ok, "{out}");
    assert!(
        out.contains("consumers[0].basicauth_credentials[0].password"),
        "{out}"
    );
    assert!(
        out.contains("consumers[0].basicauth_credentials[2].username"),
        "{out}"
    );
    assert!(
        !out.contains("tooShort") && !out.contains("hunter2"),
        "{out}"
    );
}

#[tokio::test]
async fn hide_credentials_removes_the_headers_that_were_read() {
    let g = gateway("{hide_credentials: true}").await;
    let alice = basic("alice-user", "s3cret:with:colons");
    // Proxy-Authorization authenticated: it goes; Authorization was never read, so it
    // stays (as in Kong).
    let e = expect_echo(
        g.get(
            "/",
            &[
                ("proxy-authorization", &alice),
                ("authorization", "Bearer for-the-upstream"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    assert_eq!(e.header("proxy-authorization"), None);
    assert_eq!(e.header("authorization"), Some("Bearer for-the-upstream"));
    // An unknown user in Proxy-Authorization: both headers were read, both go.
    let e = expect_echo(
        g.get(
            "/",
            &[
                ("proxy-authorization", &basic("nobody", "x")),
                ("authorization", &alice),
                ("x-kept", "1"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    assert_eq!(e.header("proxy-authorization"), None);
    assert_eq!(e.header("authorization"), None);
    assert_eq!(e.header("x-kept"), Some("1"));
}

#[tokio::test]
async fn header_parsing_edge_cases() {
    let g = gateway("{}").await;
    let encoded = base64::engine::general_purpose::STANDARD.encode("alice-user:s3cret:with:colons");
    // Kong's `\s*[Bb]asic\s*(.+)`: no space needed after the scheme; padding optional.
    expect_echo(
        g.get("/", &[("authorization", &format!("Basic{encoded}"))])
            .await,
    )
    .await;
    let unpadded =
        base64::engine::general_purpose::STANDARD_NO_PAD.encode("alice-user:s3cret:with:colons");
    expect_echo(
        g.get("/", &[("authorization", &format!("Basic {unpadded}"))])
            .await,
    )
    .await;
    // A malformed Proxy-Authorization does not hide a good Authorization.
    expect_echo(
        g.get(
            "/",
            &[
                ("proxy-authorization", "Basic %%%"),
                ("authorization", &format!("Basic {encoded}")),
            ],
        )
        .await,
    )
    .await;
    // No colon at all, an empty username, a user name with a trailing space.
    for text in [
        "alice-user",
        ":s3cret:with:colons",
        "alice-user :s3cret:with:colons",
    ] {
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(text)
        );
        let h = expect_error(
            g.get("/", &[("authorization", &v)]).await,
            401,
            "Unauthorized",
        )
        .await;
        assert_eq!(www(&h), "Basic realm=\"service\"");
    }
    // The password is compared exactly: a prefix or a longer one is wrong.
    for pw in [
        "s3cret:with:colon",
        "s3cret:with:colons ",
        "s3cret:with:colons\n",
    ] {
        expect_error(
            g.get("/", &[("authorization", &basic("alice-user", pw))])
                .await,
            401,
            "Unauthorized",
        )
        .await;
    }
}

#[tokio::test]
async fn anonymous_on_one_plugin_only() {
    // key-auth may fall back to anon; basic-auth (no anonymous) must always succeed.
    let routes = "  - name: r\n    paths: [\"/\"]\n    upstream: echo\n    plugins:\n      - name: key-auth\n        config: {anonymous: anon}\n      - name: basic-auth\n";
    let g = AuthGateway::start(routes, &(consumers() + KEYS)).await;
    let alice = basic("alice-user", "s3cret:with:colons");
    let h = expect_error(
        g.get("/", &[("apikey", "carol-key")]).await,
        401,
        "Unauthorized",
    )
    .await;
    assert_eq!(www(&h), "Basic realm=\"service\"");
    let e = expect_echo(g.get("/", &[("authorization", &alice)]).await).await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    assert_eq!(e.header("x-anonymous-consumer"), None);
    assert_eq!(e.header("x-credential-identifier"), Some("alice-user"));
    expect_error(g.get("/", &[]).await, 401, "Unauthorized").await;
}

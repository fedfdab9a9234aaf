//! KongConsumers end to end: the stand-in API server (no kube-apiserver can run on these
//! machines) → the `pingway-k8s` watcher, which lists credential Secrets by their
//! `konghq.com/credential` label → the file → the real `pingway run` gateway → HTTP
//! requests with and without the Secret's key.

mod support;

use std::path::Path;

use serde_json::json;
use support::apiserver::{labels_selected, ApiServer};
use support::objects::*;
use support::processes::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_auth_credential_from_a_secret_reaches_the_gateway() {
    let echo = header_echo("x-consumer-username").await;
    let api = ApiServer::start().await;
    api.apply(service("shop", "web"));
    api.apply(slice("shop", "web", &[echo]));
    api.apply(kong_plugin("shop", "auth", "key-auth", json!({})));
    api.apply(ingress(
        "shop",
        "front",
        "shop.test",
        "/",
        "web",
        json!({"konghq.com/plugins": "auth"}),
    ));
    api.apply(credential_secret(
        "shop",
        "alice-key",
        "key-auth",
        &[("key", "alice-s3cret-key")],
    ));
    // An unlabelled Secret the consumer names: the watcher must not hold it.
    api.apply(plain_secret("shop", "unlabelled"));
    api.apply(kong_consumer(
        "shop",
        "alice",
        "pingway",
        "alice",
        &["alice-key", "unlabelled"],
    ));
    // Another class's consumer, with a key of its own: not ours, so not served.
    api.apply(credential_secret(
        "shop",
        "bob-key",
        "key-auth",
        &[("key", "bob-key-value")],
    ));
    api.apply(kong_consumer("shop", "bob", "other", "bob", &["bob-key"]));

    let pair = WatcherAndGateway::start(&api.url(), &["--no-https", "--debounce-ms", "50"]).await;
    let (port, logs) = (pair.port, pair.logs());

    until("the route answers", &logs, async || {
        get_with(port, "shop.test", "/", &[]).await.map(|r| r.0) == Some(401)
    })
    .await;
    assert_eq!(
        get_with(port, "shop.test", "/", &[("apikey", "alice-s3cret-key")]).await,
        Some((200, "alice".into()))
    );
    assert_eq!(
        get_with(port, "shop.test", "/", &[("apikey", "bob-key-value")])
            .await
            .map(|r| r.0),
        Some(401),
        "a consumer of another class is not served"
    );
    // The unlabelled Secret is not watched: the consumer is kept without it, and the
    // problem names the consumer and the Secret, never a value.
    until("the problem is logged", &logs, async || {
        std::fs::read_to_string(&pair.watcher_log)
            .unwrap_or_default()
            .contains("KongConsumer shop/alice: credential Secret shop/unlabelled left out")
    })
    .await;
    let wlog = std::fs::read_to_string(&pair.watcher_log).unwrap();
    assert!(!wlog.contains("alice-s3cret-key"), "{wlog}");
    assert!(!std::fs::read_to_string(&pair.gateway_log)
        .unwrap()
        .contains("alice-s3cret-key"));

    // The Secret deleted: the key no longer opens the route.
    api.delete("Secret", "shop", "alice-key");
    until("401 after the Secret is deleted", &logs, async || {
        get_with(port, "shop.test", "/", &[("apikey", "alice-s3cret-key")])
            .await
            .map(|r| r.0)
            == Some(401)
    })
    .await;

    // And back, under a new key.
    api.apply(credential_secret(
        "shop",
        "alice-key",
        "key-auth",
        &[("key", "alice-new-key")],
    ));
    until("200 with the new key", &logs, async || {
        get_with(port, "shop.test", "/", &[("apikey", "alice-new-key")]).await
            == Some((200, "alice".into()))
    })
    .await;
}

#[test]
fn the_stand_in_reads_label_selectors() {
    let obj = json!({"metadata": {"labels": {"konghq.com/credential": "key-auth", "app": "web"}}});
    let none = json!({"metadata": {}});
    let cases = [
        ("konghq.com/credential", true, false),
        ("!konghq.com/credential", false, true),
        ("konghq.com/credential=key-auth", true, false),
        ("konghq.com/credential==jwt", false, false),
        ("konghq.com/credential!=jwt", true, true),
        ("konghq.com/credential in (jwt, key-auth)", true, false),
        ("konghq.com/credential notin (jwt,acl)", true, true),
        ("konghq.com/credential,app=web", true, false),
        (
            "konghq.com/credential in (jwt,key-auth),app=db",
            false,
            false,
        ),
        ("", true, true),
    ];
    for (sel, on_obj, on_none) in cases {
        assert_eq!(labels_selected(&obj, sel), on_obj, "{sel}");
        assert_eq!(labels_selected(&none, sel), on_none, "{sel} (no labels)");
    }
}

/// The fixture tests/fixtures/consumers.yaml translated with `--ingress-class kong`.
#[test]
fn kong_consumers_and_their_credential_secrets() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/consumers.yaml");
    let mut s = pingway_k8s::Snapshot::default();
    pingway_k8s::load::add_manifests(&mut s, &std::fs::read_to_string(path).unwrap()).unwrap();
    let opts = pingway_k8s::Options {
        ingress_class: "kong".into(),
        ..pingway_k8s::Options::default()
    };
    let t = pingway_k8s::translate(&s, &opts);
    pingway_k8s::translate::check(&t.yaml).expect("the gateway takes the file");

    let names: Vec<&str> = t
        .config
        .consumers
        .iter()
        .filter_map(|c| c.username.as_deref())
        .collect();
    assert_eq!(names, ["alice", "bob"], "{}", t.yaml);
    let alice = &t.config.consumers[0];
    assert_eq!(alice.custom_id.as_deref(), Some("customer-0001"));
    let keys: Vec<(&str, Option<&str>)> = alice
        .keyauth_credentials
        .iter()
        .map(|k| (k.key.expose(), k.id.as_deref()))
        .collect();
    assert_eq!(
        keys,
        [
            ("alice-SECRET-key-value", Some("alice-key")),
            ("legacy-SECRET-key", Some("legacy"))
        ]
    );
    assert_eq!(alice.basicauth_credentials[0].username, "alice-login");
    assert_eq!(
        alice.basicauth_credentials[0].password.expose(),
        "alice-SECRET-password"
    );
    let jwt: Vec<&str> = alice.jwt_secrets.iter().map(|j| j.key.as_str()).collect();
    assert_eq!(jwt, ["alice-issuer"], "the broken key is left out alone");
    assert_eq!(alice.acls[0].group, "admins");
    assert_eq!(alice.plugins[0].name, "rate-limiting");
    let bob = &t.config.consumers[1];
    assert!(
        bob.keyauth_credentials.is_empty(),
        "the duplicate key is left out"
    );
    assert_eq!(bob.acls[0].group, "readers");

    let problems: Vec<String> = t.problems.iter().map(|p| p.to_string()).collect();
    for want in [
        "KongConsumer team/alice: credential Secret team/broken-jwt left out: ",
        "KongConsumer team/alice: credential Secret team/no-key left out: field `key` is missing or empty",
        "KongConsumer team/alice: credential Secret team/hmac left out: credential type `hmac-auth` is not supported",
        "KongConsumer team/alice: credential Secret team/missing left out: not found",
        "KongConsumer team/bob: credential Secret team/bob-key left out: key: duplicate key",
        "KongConsumer team/nobody: left out: it needs a `username` or a `custom_id`",
        "KongConsumer team/bob: consumerGroups [gold, beta-testers] not carried over: Pingway has no consumer groups",
    ] {
        assert!(problems.iter().any(|p| p.starts_with(want)), "{want}\n{problems:#?}");
    }
    assert_eq!(problems.len(), 7, "{problems:#?}");
    for p in &problems {
        assert!(!p.contains("SECRET"), "a secret in a problem: {p}");
    }

    // Our class as the default one: the class-less consumer is ours too.
    let class: k8s_openapi::api::networking::v1::IngressClass = serde_json::from_value(json!(
        {"metadata": {"name": "kong", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}}}
    ))
    .unwrap();
    s.ingress_classes.push(std::sync::Arc::new(class));
    let t = pingway_k8s::translate(&s, &opts);
    let names: Vec<&str> = t
        .config
        .consumers
        .iter()
        .filter_map(|c| c.username.as_deref())
        .collect();
    assert_eq!(names, ["alice", "bob", "erin"]);
}

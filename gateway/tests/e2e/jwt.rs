//! jwt, black-box, in the style of Kong's `spec/03-plugins/16-jwt` tests. Every key is
//! generated here: HMAC secrets, EC and Ed25519 keys per test (with ring), and two RSA
//! key pairs once per test binary (with the `rsa` crate, as ring cannot generate RSA
//! keys; see [`rsa_keys`]).

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{json, Value};

use crate::auth_fixtures::*;

/// An RSA key pair made for these tests: the private key as PKCS#8 DER (for ring's
/// signer) and the public key in both PEM forms a credential may use.
struct RsaKey {
    pkcs8: Vec<u8>,
    /// `BEGIN PUBLIC KEY` (SubjectPublicKeyInfo).
    public_pem: String,
    /// `BEGIN RSA PUBLIC KEY` (PKCS#1).
    public_pkcs1_pem: String,
}

/// Two RSA-2048 key pairs, generated once per test binary (a 2048-bit key takes a
/// second or two in the test profile, so every test shares these two, made in
/// parallel).
fn rsa_keys() -> &'static [RsaKey; 2] {
    static KEYS: OnceLock<[RsaKey; 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        let generate = || {
            use rsa::pkcs1::EncodeRsaPublicKey;
            use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
            let public = key.to_public_key();
            let spki = public.to_public_key_der().unwrap();
            let pkcs1 = public.to_pkcs1_der().unwrap();
            RsaKey {
                pkcs8: key.to_pkcs8_der().unwrap().as_bytes().to_vec(),
                public_pem: pem("PUBLIC KEY", spki.as_bytes()),
                public_pkcs1_pem: pem("RSA PUBLIC KEY", pkcs1.as_bytes()),
            }
        };
        std::thread::scope(|s| {
            let first = s.spawn(generate);
            let second = generate();
            [first.join().unwrap(), second]
        })
    })
}

fn pem(label: &str, der: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn spki_pem(prefix: &[u8], key: &[u8]) -> String {
    let mut der = prefix.to_vec();
    der.extend_from_slice(key);
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PUBLIC KEY-----\n{b}\n-----END PUBLIC KEY-----\n")
}

const P256_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08, 0x2A,
    0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const P384_PREFIX: &[u8] = &[
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x05, 0x2B,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];
const ED25519_PREFIX: &[u8] = &[
    0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Keys made for one test.
struct Keys {
    rsa: RsaKeyPair,
    rsa2: RsaKeyPair,
    es256: EcdsaKeyPair,
    es384: EcdsaKeyPair,
    ed: Ed25519KeyPair,
}

impl Keys {
    fn new() -> Keys {
        let rng = SystemRandom::new();
        let ec = |alg: &'static signature::EcdsaSigningAlgorithm| {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
            EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap()
        };
        let ed = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        Keys {
            rsa: RsaKeyPair::from_pkcs8(&rsa_keys()[0].pkcs8).unwrap(),
            rsa2: RsaKeyPair::from_pkcs8(&rsa_keys()[1].pkcs8).unwrap(),
            es256: ec(&signature::ECDSA_P256_SHA256_FIXED_SIGNING),
            es384: ec(&signature::ECDSA_P384_SHA384_FIXED_SIGNING),
            ed: Ed25519KeyPair::from_pkcs8(ed.as_ref()).unwrap(),
        }
    }

    fn consumers(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap();
        let es256 = spki_pem(P256_PREFIX, self.es256.public_key().as_ref());
        let es384 = spki_pem(P384_PREFIX, self.es384.public_key().as_ref());
        let ed = spki_pem(ED25519_PREFIX, self.ed.public_key().as_ref());
        format!(
            r#"
consumers:
  - username: alice
    custom_id: a-1
    jwt_secrets:
      - {{key: hs256-key, secret: hs-secret}}
      - {{key: hs384-key, algorithm: HS384, secret: hs-secret-384}}
      - {{key: hs512-key, algorithm: HS512, secret: hs-secret-512}}
      - {{key: b64-key, secret: {b64secret}}}
  - username: bob
    jwt_secrets:
      - {{key: rs256-key, algorithm: RS256, rsa_public_key: {rsa}}}
      - {{key: rs384-key, algorithm: RS384, rsa_public_key: {rsa_pkcs1}}}
      - {{key: rs512-key, algorithm: RS512, rsa_public_key: {rsa}}}
      - {{key: ps256-key, algorithm: PS256, rsa_public_key: {rsa}}}
      - {{key: ps384-key, algorithm: PS384, rsa_public_key: {rsa}}}
      - {{key: ps512-key, algorithm: PS512, rsa_public_key: {rsa}}}
      - {{key: es256-key, algorithm: ES256, rsa_public_key: {es256}}}
      - {{key: es384-key, algorithm: ES384, rsa_public_key: {es384}}}
      - {{key: ed-key, algorithm: EdDSA, rsa_public_key: {ed}}}
  - username: anon
"#,
            b64secret = base64::engine::general_purpose::STANDARD.encode("raw secret bytes"),
            rsa = q(&rsa_keys()[0].public_pem),
            rsa_pkcs1 = q(&rsa_keys()[0].public_pkcs1_pem),
            es256 = q(&es256),
            es384 = q(&es384),
            ed = q(&ed),
        )
    }

    /// A token with header `{"alg": alg, "typ": "JWT"}` and `claims`, signed the way
    /// `alg` says (with the first RSA key unless `other_rsa`).
    fn sign(&self, alg: &str, claims: &Value, secret: &[u8], other_rsa: bool) -> String {
        let header = json!({"alg": alg, "typ": "JWT"});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let rsa = if other_rsa { &self.rsa2 } else { &self.rsa };
        let mut rsa_sig = vec![0u8; rsa.public().modulus_len()];
        let sig: Vec<u8> = match alg {
            "HS256" | "HS384" | "HS512" => {
                let a = match alg {
                    "HS256" => ring::hmac::HMAC_SHA256,
                    "HS384" => ring::hmac::HMAC_SHA384,
                    _ => ring::hmac::HMAC_SHA512,
                };
                ring::hmac::sign(&ring::hmac::Key::new(a, secret), input.as_bytes())
                    .as_ref()
                    .to_vec()
            }
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
                let enc: &dyn signature::RsaEncoding = match alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    _ => &signature::RSA_PSS_SHA512,
                };
                rsa.sign(enc, &rng, input.as_bytes(), &mut rsa_sig).unwrap();
                rsa_sig
            }
            "ES256" => self
                .es256
                .sign(&rng, input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            "ES384" => self
                .es384
                .sign(&rng, input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            "EdDSA" => self.ed.sign(input.as_bytes()).as_ref().to_vec(),
            _ => Vec::new(),
        };
        format!("{input}.{}", b64(&sig))
    }

    fn hs256(&self, claims: Value) -> String {
        self.sign("HS256", &claims, b"hs-secret", false)
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn route(name: &str, path: &str, config: &str) -> String {
    format!(
        "  - name: {name}\n    paths: [\"{path}\"]\n    upstream: echo\n    plugins:\n      - name: jwt\n        config: {config}\n"
    )
}

async fn gateway(keys: &Keys, config: &str) -> AuthGateway {
    AuthGateway::start(&route("r", "/", config), &keys.consumers()).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The 401's body (a message or a claims map) and `WWW-Authenticate`.
async fn refused(resp: reqwest::Response) -> (Value, String) {
    assert_eq!(resp.status().as_u16(), 401);
    let www = www(resp.headers()).to_string();
    (resp.json().await.unwrap(), www)
}

#[tokio::test]
async fn no_token_is_401_bearer() {
    let keys = Keys::new();
    let g = gateway(&keys, "{}").await;
    let (body, www) = refused(g.get("/", &[]).await).await;
    assert_eq!(body["message"], "Unauthorized");
    assert_eq!(www, "Bearer");
    // Not a bearer token.
    let (body, _) = refused(g.get("/", &[("authorization", "Basic abc")]).await).await;
    assert_eq!(body["message"], "Unauthorized");
}

#[tokio::test]
async fn hs256_from_each_source_sets_consumer_headers() {
    let keys = Keys::new();
    let g = gateway(&keys, "{cookie_names: [session], realm: api}").await;
    let t = keys.hs256(json!({"iss": "hs256-key", "sub": "x"}));
    let e = expect_echo(g.get("/", &[("authorization", &bearer(&t))]).await).await;
    assert_eq!(e.header("x-consumer-id"), Some("alice"));
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    assert_eq!(e.header("x-consumer-custom-id"), Some("a-1"));
    assert_eq!(e.header("x-credential-identifier"), Some("hs256-key"));
    let e = expect_echo(g.get(&format!("/?jwt={t}"), &[]).await).await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    let e = expect_echo(
        g.get("/", &[("cookie", &format!("a=b; session={t}"))])
            .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    // The same token twice is one token.
    expect_echo(
        g.get(&format!("/?jwt={t}"), &[("authorization", &bearer(&t))])
            .await,
    )
    .await;
}

#[tokio::test]
async fn multiple_tokens_are_refused() {
    let keys = Keys::new();
    let g = gateway(&keys, "{}").await;
    let a = keys.hs256(json!({"iss": "hs256-key"}));
    let b = keys.hs256(json!({"iss": "hs256-key", "n": 2}));
    let (body, www) = refused(
        g.get(&format!("/?jwt={a}"), &[("authorization", &bearer(&b))])
            .await,
    )
    .await;
    assert_eq!(body["message"], "Multiple tokens provided");
    assert_eq!(www, "Bearer error=\"invalid_token\"");
}

#[tokio::test]
async fn bad_tokens_get_kongs_messages() {
    let keys = Keys::new();
    let g = gateway(&keys, "{realm: api}").await;
    let cases = [
        ("not-a-token".to_string(), "Bad token; invalid JSON"),
        (
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none"}"#),
                b64(br#"{"iss":"hs256-key"}"#)
            ),
            "Bad token; invalid alg",
        ),
        (
            keys.hs256(json!({"sub": "x"})),
            "No mandatory 'iss' in claims",
        ),
        (keys.hs256(json!({"iss": ""})), "Invalid 'iss' in claims"),
        (
            keys.hs256(json!({"iss": "nobody"})),
            "No credentials found for given 'iss'",
        ),
        (
            keys.sign(
                "HS256",
                &json!({"iss": "hs256-key"}),
                b"wrong-secret",
                false,
            ),
            "Invalid signature",
        ),
    ];
    for (token, message) in cases {
        let (body, www) = refused(g.get("/", &[("authorization", &bearer(&token))]).await).await;
        assert_eq!(body["message"], message, "{token}");
        assert_eq!(www, "Bearer realm=\"api\", error=\"invalid_token\"");
    }
    assert_eq!(g.backend.hits(), 0);
}

#[tokio::test]
async fn algorithm_must_match_the_credential() {
    let keys = Keys::new();
    let g = gateway(&keys, "{}").await;
    // An HS256 token naming an RS256 credential: no HMAC with the public key.
    let rsa_pub = rsa_keys()[0].public_pem.as_bytes();
    let t = keys.sign("HS256", &json!({"iss": "rs256-key"}), rsa_pub, false);
    let (body, _) = refused(g.get("/", &[("authorization", &bearer(&t))]).await).await;
    assert_eq!(body["message"], "Invalid algorithm");
    // RS512 signature against the RS256 credential.
    let t = keys.sign("RS512", &json!({"iss": "rs256-key"}), b"", false);
    let (body, _) = refused(g.get("/", &[("authorization", &bearer(&t))]).await).await;
    assert_eq!(body["message"], "Invalid algorithm");
    // HS384 token for the HS256 credential.
    let t = keys.sign("HS384", &json!({"iss": "hs256-key"}), b"hs-secret", false);
    let (body, _) = refused(g.get("/", &[("authorization", &bearer(&t))]).await).await;
    assert_eq!(body["message"], "Invalid algorithm");
}

#[tokio::test]
async fn every_algorithm_family_verifies() {
    let keys = Keys::new();
    let g = gateway(&keys, "{}").await;
    let cases: [(&str, &str, &[u8], &str); 12] = [
        ("HS256", "hs256-key", b"hs-secret", "alice"),
        ("HS384", "hs384-key", b"hs-secret-384", "alice"),
        ("HS512", "hs512-key", b"hs-secret-512", "alice"),
        ("RS256", "rs256-key", b"", "bob"),
        ("RS384", "rs384-key", b"", "bob"),
        ("RS512", "rs512-key", b"", "bob"),
        ("PS256", "ps256-key", b"", "bob"),
        ("PS384", "ps384-key", b"", "bob"),
        ("PS512", "ps512-key", b"", "bob"),
        ("ES256", "es256-key", b"", "bob"),
        ("ES384", "es384-key", b"", "bob"),
        ("EdDSA", "ed-key", b"", "bob"),
    ];
    for (alg, key, secret, user) in cases {
        let t = keys.sign(alg, &json!({"iss": key, "exp": now() + 60}), secret, false);
        let e = expect_echo(g.get("/", &[("authorization", &bearer(&t))]).await).await;
        assert_eq!(e.header("x-consumer-username"), Some(user), "{alg}");
        assert_eq!(e.header("x-credential-identifier"), Some(key), "{alg}");
    }
}

#[tokio::test]
async fn signatures_from_other_keys_are_refused() {
    let keys = Keys::new();
    let g = gateway(&keys, "{}").await;
    let t = keys.sign("RS256", &json!({"iss": "rs256-key"}), b"", true);
    let (body, _) = refused(g.get("/", &[("authorization", &bearer(&t))]).await).await;
    assert_eq!(body["message"], "Invalid signature");
    let other = Keys::new();
    for (alg, key) in [("ES256", "es256-key"), ("EdDSA", "ed-key")] {
        let t = other.sign(alg, &json!({"iss": key}), b"", false);
        let (body, _) = refused(g.get("/", &[("authorization", &bearer(&t))]).await).await;
        assert_eq!(body["message"], "Invalid signature", "{alg}");
    }
}

#[tokio::test]
async fn expired_not_yet_valid_and_too_long_tokens() {
    let keys = Keys::new();
    let g = AuthGateway::start(
        &(route("c", "/c", "{claims_to_verify: [exp, nbf]}")
            + &route(
                "m",
                "/m",
                "{claims_to_verify: [exp], maximum_expiration: 300}",
            )
            + &route("n", "/n", "{}")),
        &keys.consumers(),
    )
    .await;
    let get = |path: &'static str, claims: Value| {
        let t = keys.hs256(claims);
        let g = &g;
        async move { g.get(path, &[("authorization", &bearer(&t))]).await }
    };
    let (body, www) = refused(
        get(
            "/c",
            json!({"iss": "hs256-key", "exp": now() - 10, "nbf": 0}),
        )
        .await,
    )
    .await;
    assert_eq!(body, json!({"exp": "token expired"}));
    // Every claim to verify must be there.
    let (body, _) = refused(get("/c", json!({"iss": "hs256-key", "exp": now() - 10})).await).await;
    assert_eq!(
        body,
        json!({"exp": "token expired", "nbf": "must be a number"})
    );
    assert_eq!(www, "Bearer error=\"invalid_token\"");
    let (body, _) = refused(
        get(
            "/c",
            json!({"iss": "hs256-key", "exp": now() + 60, "nbf": now() + 600}),
        )
        .await,
    )
    .await;
    assert_eq!(body, json!({"nbf": "token not valid yet"}));
    let (body, _) = refused(
        get(
            "/c",
            json!({"iss": "hs256-key", "exp": "tomorrow", "nbf": 0}),
        )
        .await,
    )
    .await;
    assert_eq!(body, json!({"exp": "must be a number"}));
    expect_echo(
        get(
            "/c",
            json!({"iss": "hs256-key", "exp": now() + 60, "nbf": now() - 1}),
        )
        .await,
    )
    .await;

    let (body, _) =
        refused(get("/m", json!({"iss": "hs256-key", "exp": now() + 3600})).await).await;
    assert_eq!(body, json!({"exp": "exceeds maximum allowed expiration"}));
    expect_echo(get("/m", json!({"iss": "hs256-key", "exp": now() + 200})).await).await;

    // Without claims_to_verify, an expired token passes (as in Kong).
    expect_echo(get("/n", json!({"iss": "hs256-key", "exp": now() - 10})).await).await;
}

#[tokio::test]
async fn secret_is_base64_and_custom_key_claim() {
    let keys = Keys::new();
    let g = AuthGateway::start(
        &(route("b", "/b", "{secret_is_base64: true}")
            + &route("k", "/k", "{key_claim_name: kid}")),
        &keys.consumers(),
    )
    .await;
    let t = keys.sign(
        "HS256",
        &json!({"iss": "b64-key"}),
        b"raw secret bytes",
        false,
    );
    expect_echo(g.get("/b", &[("authorization", &bearer(&t))]).await).await;
    // Signed with the base64 text itself: wrong when the secret is base64.
    let text = base64::engine::general_purpose::STANDARD.encode("raw secret bytes");
    let t = keys.sign("HS256", &json!({"iss": "b64-key"}), text.as_bytes(), false);
    let (body, _) = refused(g.get("/b", &[("authorization", &bearer(&t))]).await).await;
    assert_eq!(body["message"], "Invalid signature");
    // The key claim may come from the claims or, failing that, the header.
    let t = keys.hs256(json!({"kid": "hs256-key"}));
    expect_echo(g.get("/k", &[("authorization", &bearer(&t))]).await).await;
    let t = keys.hs256(json!({"iss": "hs256-key"}));
    let (body, _) = refused(g.get("/k", &[("authorization", &bearer(&t))]).await).await;
    assert_eq!(body["message"], "No mandatory 'kid' in claims");
}

#[tokio::test]
async fn anonymous_and_preflight() {
    let keys = Keys::new();
    let g = AuthGateway::start(
        &(route("a", "/a", "{anonymous: anon}") + &route("p", "/p", "{run_on_preflight: false}")),
        &keys.consumers(),
    )
    .await;
    let e = expect_echo(g.get("/a", &[("authorization", "Bearer garbage")]).await).await;
    assert_eq!(e.header("x-anonymous-consumer"), Some("true"));
    assert_eq!(e.header("x-consumer-username"), Some("anon"));
    let t = keys.hs256(json!({"iss": "hs256-key"}));
    let e = expect_echo(g.get("/a", &[("authorization", &bearer(&t))]).await).await;
    assert_eq!(e.header("x-anonymous-consumer"), None);
    assert_eq!(e.header("x-consumer-username"), Some("alice"));

    let resp = g.preflight("/p").await;
    expect_echo(resp).await;
    let (body, _) = refused(g.get("/p", &[]).await).await;
    assert_eq!(body["message"], "Unauthorized");
}

#[tokio::test]
async fn credentials_are_checked_at_load() {
    let backend = crate::common::Backend::start("echo", crate::common::Behaviour::Echo).await;
    let q = |s: &str| serde_json::to_string(s).unwrap();
    let rsa = &rsa_keys()[0];
    let private = pem("PRIVATE KEY", &rsa.pkcs8);
    let yaml = config(
        &backend,
        &route("r", "/", "{maximum_expiration: 60}"),
        &format!(
            r#"
consumers:
  - username: x
    jwt_secrets:
      - {{key: a, algorithm: RS256, rsa_public_key: "not a pem"}}
      - {{key: b, algorithm: HS256}}
      - {{key: c, algorithm: ES256, secret: "only-for-hmac"}}
      - {{key: d, algorithm: RS256, rsa_public_key: {crlf}}}
      - {{key: e, algorithm: RS256, rsa_public_key: {two_keys}}}
      - {{key: f, algorithm: RS256, rsa_public_key: {private}}}
"#,
            // CRLF line endings are fine.
            crlf = q(&rsa.public_pem.replace('\n', "\r\n")),
            two_keys = q(&format!("{}{}", rsa.public_pem, rsa.public_pkcs1_pem)),
            private = q(&private),
        ),
    );
    let (ok, out) = validate(&yaml);
    assert!(!ok, "{out}");
    for needle in [
        "consumers[0].jwt_secrets[0].rsa_public_key: not a PEM-encoded public key",
        "consumers[0].jwt_secrets[1].secret: required for algorithm HS256",
        "consumers[0].jwt_secrets[2].rsa_public_key",
        "consumers[0].jwt_secrets[4].rsa_public_key: unexpected text after the PEM block's END line",
        "consumers[0].jwt_secrets[5].rsa_public_key: expected a PEM public key",
        "routes[0].plugins[0].config.claims_to_verify",
    ] {
        assert!(out.contains(needle), "{needle} missing in:\n{out}");
    }
    assert!(!out.contains("jwt_secrets[3]"), "{out}");
    assert!(!out.contains("only-for-hmac"), "{out}");
    // No line of the private key is echoed.
    let secret_line = private.lines().nth(2).unwrap();
    assert!(!out.contains(secret_line), "{out}");
}

#[tokio::test]
async fn custom_header_and_uri_param_names() {
    let keys = Keys::new();
    let g = gateway(&keys, "{header_names: [x-token], uri_param_names: [t]}").await;
    let tok = keys.sign("EdDSA", &json!({"iss": "ed-key"}), b"", false);
    let e = expect_echo(g.get("/", &[("x-token", &format!("bearer {tok}"))]).await).await;
    assert_eq!(e.header("x-consumer-username"), Some("bob"));
    expect_echo(g.get(&format!("/?t={tok}"), &[]).await).await;
    // The default places are no longer read.
    let (body, _) = refused(g.get("/", &[("authorization", &bearer(&tok))]).await).await;
    assert_eq!(body["message"], "Unauthorized");
    let (body, _) = refused(g.get(&format!("/?jwt={tok}"), &[]).await).await;
    assert_eq!(body["message"], "Unauthorized");
}

#[tokio::test]
async fn clients_cannot_spoof_identity_headers() {
    let keys = Keys::new();
    let g = gateway(&keys, "{}").await;
    let tok = keys.sign("ES384", &json!({"iss": "es384-key"}), b"", false);
    let e = expect_echo(
        g.get(
            "/",
            &[
                ("authorization", &bearer(&tok)),
                ("x-consumer-username", "alice"),
                ("x-consumer-custom-id", "a-1"),
                ("x-anonymous-consumer", "true"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-username"), Some("bob"));
    assert_eq!(e.header("x-consumer-custom-id"), None);
    assert_eq!(e.header("x-anonymous-consumer"), None);
    assert_eq!(e.header("x-credential-identifier"), Some("es384-key"));
}

#[tokio::test]
async fn malformed_tokens_and_algorithms_kong_knows() {
    let keys = Keys::new();
    let g = gateway(&keys, "{}").await;
    let t = keys.hs256(json!({"iss": "hs256-key"}));
    let (h, c, _) = {
        let mut p = t.splitn(3, '.');
        (p.next().unwrap(), p.next().unwrap(), p.next().unwrap())
    };
    let alg = |a: &str| b64(json!({"alg": a, "typ": "JWT"}).to_string().as_bytes());
    let cases = [
        // Two segments: the missing signature fails Kong's JSON step.
        (format!("{h}.{c}"), "Bad token; invalid JSON"),
        (
            format!("{}.{c}.x", b64(b"not json")),
            "Bad token; invalid JSON",
        ),
        (
            format!("{h}.{}.x", b64(b"{\"iss\":")),
            "Bad token; invalid JSON",
        ),
        (format!("{}.{c}.x", alg("hs256")), "Bad token; invalid alg"),
        (
            format!("{}.{c}.x", b64(br#"{"typ":"JWT"}"#)),
            "Bad token; invalid alg",
        ),
        (
            format!("{h}.{c}.not*base64"),
            "Bad token; invalid signature",
        ),
        // ES512 is an algorithm Kong knows: a mismatch, not a bad token.
        (format!("{}.{c}.AAAA", alg("ES512")), "Invalid algorithm"),
        // An RS256 token for an HS256 credential.
        (
            keys.sign("RS256", &json!({"iss": "hs256-key"}), b"", false),
            "Invalid algorithm",
        ),
        (keys.hs256(json!({"iss": 42})), "Invalid 'iss' in claims"),
        // Alice's secret, but naming another HS256 credential.
        (keys.hs256(json!({"iss": "b64-key"})), "Invalid signature"),
        // The right signature with the claims changed afterwards.
        (
            format!(
                "{h}.{}.{}",
                b64(br#"{"iss":"hs256-key","admin":true}"#),
                t.rsplit('.').next().unwrap()
            ),
            "Invalid signature",
        ),
    ];
    for (token, message) in cases {
        let (body, www) = refused(g.get("/", &[("authorization", &bearer(&token))]).await).await;
        assert_eq!(body["message"], message, "{token}");
        assert_eq!(www, "Bearer error=\"invalid_token\"", "{token}");
    }
    assert_eq!(g.backend.hits(), 0);
}

#[tokio::test]
async fn token_places_bearer_spelling_and_duplicates() {
    let keys = Keys::new();
    let g = gateway(&keys, "{cookie_names: [jwt, other]}").await;
    let a = keys.hs256(json!({"iss": "hs256-key"}));
    let b = keys.hs256(json!({"iss": "hs256-key", "n": 2}));
    // `Bearer` or `bearer`; other spellings are no token at all (Kong's `[Bb]earer`).
    expect_echo(
        g.get("/", &[("authorization", &format!("bearer {a}"))])
            .await,
    )
    .await;
    let (body, www) = refused(
        g.get("/", &[("authorization", &format!("BEARER {a}"))])
            .await,
    )
    .await;
    assert_eq!(body["message"], "Unauthorized");
    assert_eq!(www, "Bearer");
    // The same token in the query twice is one token; two different ones are not.
    expect_echo(g.get(&format!("/?jwt={a}&jwt={a}"), &[]).await).await;
    let (body, _) = refused(g.get(&format!("/?jwt={a}&jwt={b}"), &[]).await).await;
    assert_eq!(body["message"], "Multiple tokens provided");
    // Query and cookie, or two cookie names, with different tokens.
    let (body, _) = refused(
        g.get(&format!("/?jwt={a}"), &[("cookie", &format!("jwt={b}"))])
            .await,
    )
    .await;
    assert_eq!(body["message"], "Multiple tokens provided");
    let (body, _) = refused(
        g.get("/", &[("cookie", &format!("jwt={a}; other={b}"))])
            .await,
    )
    .await;
    assert_eq!(body["message"], "Multiple tokens provided");
    // nginx's `$cookie_jwt` is the first cookie of that name.
    let e = expect_echo(
        g.get("/", &[("cookie", &format!("x=1; jwt={a}; jwt={b}"))])
            .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    // Only the first Authorization header is read.
    let resp = g
        .req("GET", "/")
        .header("authorization", "Basic Zm9vOmJhcg==")
        .header("authorization", bearer(&a))
        .send()
        .await
        .unwrap();
    let (body, _) = refused(resp).await;
    assert_eq!(body["message"], "Unauthorized");
    // An empty cookie or query value is no token.
    let (body, _) = refused(g.get("/?jwt=", &[("cookie", "jwt=")]).await).await;
    assert_eq!(body["message"], "Unauthorized");
}

#[tokio::test]
async fn maximum_expiration_needs_an_exp_claim() {
    let keys = Keys::new();
    let g = gateway(&keys, "{claims_to_verify: [exp], maximum_expiration: 300}").await;
    // Without `exp` the claim check fails first, as in Kong.
    let t = keys.hs256(json!({"iss": "hs256-key"}));
    let (body, _) = refused(g.get("/", &[("authorization", &bearer(&t))]).await).await;
    assert_eq!(body, json!({"exp": "must be a number"}));
    let t = keys.hs256(json!({"iss": "hs256-key", "exp": now() + 290}));
    expect_echo(g.get("/", &[("authorization", &bearer(&t))]).await).await;
    let t = keys.hs256(json!({"iss": "hs256-key", "exp": now() + 400}));
    let (body, www) = refused(g.get("/", &[("authorization", &bearer(&t))]).await).await;
    assert_eq!(body, json!({"exp": "exceeds maximum allowed expiration"}));
    assert_eq!(www, "Bearer error=\"invalid_token\"");
}

#[tokio::test]
async fn a_header_name_with_underscores_matches_the_dashed_header() {
    let keys = Keys::new();
    let g = gateway(&keys, "{header_names: [x_token]}").await;
    let t = keys.hs256(json!({"iss": "hs256-key"}));
    let e = expect_echo(g.get("/", &[("x-token", &bearer(&t))]).await).await;
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
}

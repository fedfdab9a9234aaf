//! mtls-auth through the contract's test kit: certificates made with rcgen, the chain
//! handed to the plugin as the gateway hands it.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;

use super::*;
use crate::config::{from_node, ConfigNode};
use crate::consumers::ConsumerConfig;
use crate::registry::PluginScope;
use crate::testkit::TestRequest;
use crate::{ConsumerSet, Services};

/// A CA that signs client certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A client certificate with common name `cn` (none if empty) and `sans`.
    fn client(&self, cn: &str, sans: &[&str], expired: bool) -> Bytes {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        if !cn.is_empty() {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Bytes::copy_from_slice(cert.der())
    }
}

struct Setup {
    services: Services,
}

impl Setup {
    fn new(consumers: serde_json::Value, cas: &[(&str, &Ca)]) -> Setup {
        let configs: Vec<ConsumerConfig> =
            from_node(&ConfigNode::from_json(&consumers), "consumers").expect("consumers parse");
        let set = Arc::new(ConsumerSet::build(&configs, "consumers").expect("valid"));
        let mut services = Services::new();
        // The mtls_auth_credentials entries, through the registered credential kind.
        let registry = crate::registry();
        let kind = registry
            .credential_kind("mtls_auth_credentials")
            .expect("registered");
        let mut nodes = Vec::new();
        for (i, c) in consumers.as_array().unwrap().iter().enumerate() {
            let consumer = set.iter().nth(i).unwrap().clone();
            if let Some(list) = c.get("mtls_auth_credentials").and_then(|l| l.as_array()) {
                for (j, entry) in list.iter().enumerate() {
                    nodes.push((
                        consumer.clone(),
                        ConfigNode::from_json(entry),
                        format!("consumers[{i}].mtls_auth_credentials[{j}]"),
                    ));
                }
            }
        }
        let entries = nodes
            .iter()
            .map(|(c, n, p)| (c.clone(), n, p.clone()))
            .collect();
        kind.build(entries)
            .expect("index")
            .insert_into(&mut services);
        let mut store = CaCertificates::new();
        for (id, ca) in cas {
            store.insert(*id, ca.cert.der().to_vec());
        }
        services.insert(Arc::new(store));
        services.insert(set);
        Setup { services }
    }

    fn plugin(&self, config: serde_json::Value) -> Result<MtlsAuth, ConfigError> {
        let config: MtlsAuthConfig = serde_json::from_value(config).expect("config parses");
        MtlsAuth::build(
            config,
            &BuildContext::new(PluginScope::Global).with_services(&self.services),
        )
    }

    fn request(&self, chain: Option<Vec<Bytes>>) -> TestRequest {
        let mut req = TestRequest::get("/")
            .service(self.services.get_arc::<ConsumerSet>().unwrap())
            .service(self.services.get_arc::<MtlsCredentials>().unwrap());
        if let Some(chain) = chain {
            req = req.client_certificate_chain(chain);
        }
        req
    }
}

fn message(resp: &Response) -> String {
    match &resp.body {
        crate::Body::Message(m) => m.to_string(),
        other => panic!("not a message: {other:?}"),
    }
}

fn consumers() -> serde_json::Value {
    serde_json::json!([
        {"username": "alice", "groups": ["staff"]},
        {"username": "svc", "custom_id": "billing.internal"},
        {"username": "mapped", "mtls_auth_credentials": [
            {"id": "cred-9", "subject_name": "robot@example.com"}
        ]},
        {"username": "guest"}
    ])
}

#[tokio::test]
async fn finds_consumers_in_kongs_order_and_refuses_like_kong() {
    let (ca, other) = (Ca::new("Test CA"), Ca::new("Other CA"));
    let setup = Setup::new(consumers(), &[("ca-1", &ca)]);
    let plugin = setup
        .plugin(serde_json::json!({"ca_certificates": ["ca-1"]}))
        .expect("builds");

    // No certificate (or plain HTTP).
    let resp = setup.request(None).access(&plugin).await.expect("refused");
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert_eq!(message(&resp), NO_CERTIFICATE);

    // The CN names a consumer's username.
    let mut req = setup.request(Some(vec![ca.client("alice", &[], false)]));
    assert!(req.access(&plugin).await.is_none());
    assert_eq!(req.parts().headers["x-consumer-username"], "alice");
    assert!(req.ctx().is_authenticated());

    // A SAN names a consumer's custom_id (the CN names nobody).
    let mut req = setup.request(Some(vec![ca.client(
        "nobody",
        &["billing.internal"],
        false,
    )]));
    assert!(req.access(&plugin).await.is_none());
    assert_eq!(req.parts().headers["x-consumer-username"], "svc");

    // An mtls_auth_credentials mapping wins over consumer_by, and names the credential.
    let mapped = ca.client("", &["robot@example.com"], false);
    let mut req = setup.request(Some(vec![mapped]));
    assert!(req.access(&plugin).await.is_none());
    assert_eq!(req.parts().headers["x-consumer-username"], "mapped");
    assert_eq!(req.parts().headers["x-credential-identifier"], "cred-9");

    // Another CA, an expired certificate, a certificate matching nobody, garbage.
    for chain in [
        vec![other.client("alice", &[], false)],
        vec![ca.client("alice", &[], true)],
        vec![ca.client("stranger", &[], false)],
        vec![Bytes::from_static(b"not DER")],
    ] {
        let resp = setup
            .request(Some(chain))
            .access(&plugin)
            .await
            .expect("refused");
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
        assert_eq!(message(&resp), FAILED);
    }
}

#[tokio::test]
async fn consumer_by_empty_matches_only_mappings_and_default_consumer_catches_the_rest() {
    let ca = Ca::new("Test CA");
    let setup = Setup::new(consumers(), &[("ca-1", &ca)]);
    let only_mappings = setup
        .plugin(serde_json::json!({"ca_certificates": ["ca-1"], "consumer_by": []}))
        .unwrap();
    let resp = setup
        .request(Some(vec![ca.client("alice", &[], false)]))
        .access(&only_mappings)
        .await
        .expect("no consumer");
    assert_eq!(message(&resp), FAILED);

    let with_default = setup
        .plugin(serde_json::json!({"ca_certificates": ["ca-1"], "default_consumer": "guest"}))
        .unwrap();
    let mut req = setup.request(Some(vec![ca.client("stranger", &[], false)]));
    assert!(req.access(&with_default).await.is_none());
    assert_eq!(req.parts().headers["x-consumer-username"], "guest");

    let anonymous = setup
        .plugin(serde_json::json!({"ca_certificates": ["ca-1"], "anonymous": "guest"}))
        .unwrap();
    let mut req = setup.request(None);
    assert!(req.access(&anonymous).await.is_none());
    assert_eq!(req.parts().headers["x-anonymous-consumer"], "true");
}

#[tokio::test]
async fn skip_consumer_lookup_vouches_for_the_cn_as_a_group() {
    let ca = Ca::new("Test CA");
    let setup = Setup::new(consumers(), &[("ca-1", &ca)]);
    let plugin = setup
        .plugin(serde_json::json!({"ca_certificates": ["ca-1"], "skip_consumer_lookup": true}))
        .unwrap();
    let mut req = setup
        .request(Some(vec![ca.client(
            "device-7",
            &["d7.example.com"],
            false,
        )]))
        .header("x-consumer-username", "spoofed");
    assert!(req.access(&plugin).await.is_none());
    let groups: Vec<&str> = req
        .ctx()
        .authenticated_groups()
        .unwrap()
        .iter()
        .map(|g| &**g)
        .collect();
    assert_eq!(groups, ["device-7"]);
    let h = &req.parts().headers;
    assert_eq!(h["x-client-cert-dn"], "CN=device-7");
    assert_eq!(h["x-client-cert-san"], "d7.example.com");
    assert!(h.get("x-consumer-username").is_none());

    // acl judges the authenticated group.
    let acl = crate::acl::Acl::build(
        serde_json::from_value(serde_json::json!({"allow": ["device-7"]})).unwrap(),
        &BuildContext::new(PluginScope::Global),
    )
    .unwrap();
    assert!(req.access(&acl).await.is_none());
    let deny = crate::acl::Acl::build(
        serde_json::from_value(serde_json::json!({"allow": ["device-8"]})).unwrap(),
        &BuildContext::new(PluginScope::Global),
    )
    .unwrap();
    let resp = req.access(&deny).await.expect("refused");
    assert_eq!(resp.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn partial_chains_need_allow_partial_chain() {
    let root = Ca::new("Root");
    // An intermediate CA signed by the root.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Intermediate");
    let cert = params.signed_by(&key, &root.cert, &root.key).unwrap();
    let inter = Ca { cert, key };
    let leaf = inter.client("alice", &[], false);
    let inter_der = Bytes::copy_from_slice(inter.cert.der());

    let setup = Setup::new(consumers(), &[("root", &root), ("inter", &inter)]);
    // Trusting the root: the client sends its intermediate.
    let by_root = setup
        .plugin(serde_json::json!({"ca_certificates": ["root"]}))
        .unwrap();
    let chain = vec![leaf.clone(), inter_der.clone()];
    assert!(setup.request(Some(chain)).access(&by_root).await.is_none());
    let resp = setup
        .request(Some(vec![leaf.clone()]))
        .access(&by_root)
        .await;
    assert_eq!(message(&resp.expect("no intermediate")), FAILED);

    // Trusting only the intermediate: refused unless partial chains are allowed.
    let by_inter = setup
        .plugin(serde_json::json!({"ca_certificates": ["inter"]}))
        .unwrap();
    let resp = setup
        .request(Some(vec![leaf.clone()]))
        .access(&by_inter)
        .await;
    assert_eq!(message(&resp.expect("partial chain")), FAILED);
    let partial = setup
        .plugin(serde_json::json!({"ca_certificates": ["inter"], "allow_partial_chain": true}))
        .unwrap();
    assert!(setup
        .request(Some(vec![leaf]))
        .access(&partial)
        .await
        .is_none());
}

#[test]
fn config_problems_name_their_field() {
    let ca = Ca::new("Test CA");
    let setup = Setup::new(consumers(), &[("ca-1", &ca)]);
    let problems = |config| {
        setup
            .plugin(config)
            .expect_err("refused")
            .problems()
            .to_vec()
    };
    assert_eq!(
        problems(serde_json::json!({"ca_certificates": ["ca-1", "nope"]})),
        [(
            "ca_certificates[1]".to_string(),
            "no CA certificate with id \"nope\" in the top-level `ca_certificates`".to_string()
        )]
    );
    assert_eq!(
        problems(
            serde_json::json!({"ca_certificates": ["ca-1"], "revocation_check_mode": "STRICT"})
        )[0]
        .0,
        "revocation_check_mode"
    );
    assert_eq!(
        problems(serde_json::json!({"ca_certificates": []}))[0].0,
        "ca_certificates"
    );
    assert_eq!(
        problems(serde_json::json!({"ca_certificates": ["ca-1"], "anonymous": "ghost"}))[0].0,
        "anonymous"
    );
}

#[test]
fn verified_chains_are_cached_within_the_bound() {
    let ca = Ca::new("Test CA");
    let ca_der = ca.cert.der().to_vec();
    let trust = TrustSet::new(
        [("ca-1", ca_der.as_slice())],
        false,
        Duration::from_secs(60),
    )
    .unwrap();
    let chain = vec![ca.client("alice", &[], false)];
    let now = SystemTime::now();
    let first = trust.verify(&chain, now).unwrap();
    let again = trust.verify(&chain, now).unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "the second verdict comes from the cache"
    );
    // Past the TTL the chain is verified again.
    let later = trust.verify(&chain, now + Duration::from_secs(61)).unwrap();
    assert!(!Arc::ptr_eq(&first, &later));
    assert_eq!(trust.cache_drops(), 0);
}

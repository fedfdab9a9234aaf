//! One test per mapping rule: the converted YAML (always checked by the gateway's own
//! validation), and the report lines with their places in the Kong file.

use super::*;

struct Converted {
    yaml: String,
    json: serde_json::Value,
    report: Vec<String>,
    unsupported: bool,
}

fn convert(text: &str) -> Converted {
    let registry = crate::stock::registry();
    let c = convert_kong(text, &ConvertOptions::default(), &registry).unwrap();
    // Whatever was reported, the result is a configuration the gateway accepts.
    let problems = check::problems(&c.yaml, &registry);
    assert!(problems.is_empty(), "{problems:#?}\n{}", c.yaml);
    let json = config::yaml::parse(&c.yaml).unwrap().to_json();
    Converted {
        report: c
            .report
            .items()
            .iter()
            .map(|i| i.display_in("kong.yml").to_string())
            .collect(),
        unsupported: c.report.has_unsupported(),
        yaml: c.yaml,
        json,
    }
}

fn has(report: &[String], needle: &str) -> bool {
    report.iter().any(|l| l.contains(needle))
}

#[test]
fn a_service_url_becomes_an_upstream_with_kongs_timeouts_and_retries() {
    let c = convert(
        r#"_format_version: "3.0"
services:
  - name: orders
    url: http://127.0.0.1:9001
    connect_timeout: 1500
    read_timeout: 30000
    routes:
      - name: r
        paths: [/orders]
"#,
    );
    let u = &c.json["upstreams"][0];
    assert_eq!(u["name"], "orders");
    assert_eq!(u["targets"][0]["address"], "127.0.0.1:9001");
    assert_eq!(u["connect_timeout"], "1500ms");
    assert_eq!(u["read_timeout"], "30s");
    assert_eq!(u["write_timeout"], "60s");
    assert_eq!(u["retries"], 5);
    assert_eq!(c.json["listeners"][0]["address"], "0.0.0.0:8000");
    assert_eq!(c.json["admin"]["listen"], "127.0.0.1:8001");
    assert!(c.report.is_empty(), "{:#?}", c.report);
    assert!(!c.unsupported);
}

#[test]
fn strip_path_defaults_to_true_and_regex_paths_lose_their_tilde() {
    let c = convert(
        r#"_format_version: "3.0"
services:
  - name: s
    host: 127.0.0.1
    port: 9001
    routes:
      - name: plain
        paths: [/a]
      - name: kept
        paths: [/b]
        strip_path: false
        preserve_host: true
        methods: [GET, POST]
        hosts: [api.example.com]
      - name: re
        paths: ["~/items/(?<id>\\d+)$"]
"#,
    );
    let routes = c.json["routes"].as_array().unwrap();
    let by = |n: &str| routes.iter().find(|r| r["name"] == n).unwrap().clone();
    assert_eq!(by("plain")["strip_prefix"], true);
    assert_eq!(by("plain")["paths"][0], "/a");
    assert_eq!(by("kept")["strip_prefix"], false);
    assert_eq!(by("kept")["preserve_host"], true);
    assert_eq!(by("kept")["methods"], serde_json::json!(["GET", "POST"]));
    assert_eq!(by("kept")["hosts"][0], "api.example.com");
    assert_eq!(by("re")["paths"][0]["regex"], "/items/(?<id>\\d+)$");
    assert_eq!(
        c.json["upstreams"][0]["targets"][0]["address"],
        "127.0.0.1:9001"
    );
}

#[test]
fn a_service_path_is_joined_as_kongs_v0_path_handling_does() {
    let c = convert(
        r#"_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:9001/base/
    routes:
      - name: r
        paths: [/r]
"#,
    );
    let rw = &c.json["routes"][0]["path_rewrite"];
    assert_eq!(rw["regex"], "^/$|^");
    assert_eq!(rw["replacement"], "/base");
    // The rewrite does what Kong's v0 join does on the stripped path.
    let re = regex::Regex::new("^/$|^").unwrap();
    assert_eq!(re.replace("/", "/base"), "/base");
    assert_eq!(re.replace("/x/y", "/base"), "/base/x/y");
}

#[test]
fn a_service_naming_an_upstream_gets_its_targets_with_kongs_default_port() {
    let c = convert(
        r#"_format_version: "3.0"
upstreams:
  - name: orders.svc
    algorithm: least-connections
    healthchecks:
      active:
        http_path: /health
        healthy: {interval: 5, successes: 2}
        unhealthy: {interval: 5, http_failures: 3}
    targets:
      - target: 127.0.0.1:9001
        weight: 50
      - target: 127.0.0.2
  - name: unused
services:
  - name: orders
    host: orders.svc
    routes: [{name: r, paths: [/]}]
"#,
    );
    let u = &c.json["upstreams"][0];
    assert_eq!(u["balancer"], "least_connections");
    assert_eq!(
        u["targets"][0],
        serde_json::json!({"address": "127.0.0.1:9001", "weight": 50})
    );
    assert_eq!(
        u["targets"][1],
        serde_json::json!({"address": "127.0.0.2:8000", "weight": 100})
    );
    let hc = &u["health_check"];
    assert_eq!(hc["path"], "/health");
    assert_eq!(hc["interval"], "5s");
    assert_eq!(hc["healthy_threshold"], 2);
    assert_eq!(hc["unhealthy_threshold"], 3);
    assert!(
        has(
            &c.report,
            "kong.yml:14:5: upstreams[1]: note: no service uses this upstream"
        ),
        "{:#?}",
        c.report
    );
}

#[test]
fn top_level_routes_targets_plugins_and_credentials_follow_their_references() {
    let c = convert(
        r#"_format_version: "3.0"
services:
  - {name: s, id: 5b1484f2-5209-49d9-b43e-92ba09dd9d52, url: "http://127.0.0.1:9001"}
routes:
  - {name: top, service: s, paths: [/top]}
  - {name: by-id, service: {id: 5b1484f2-5209-49d9-b43e-92ba09dd9d52}, paths: [/id]}
  - {name: orphan, paths: [/o]}
plugins:
  - {name: rate-limiting, route: top, config: {minute: 5}}
consumers:
  - username: alice
keyauth_credentials:
  - {consumer: alice, key: alice-key}
"#,
    );
    let routes = c.json["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0]["plugins"][0]["name"], "rate-limiting");
    assert_eq!(routes[1]["name"], "by-id");
    assert!(routes[1].get("plugins").is_none());
    assert_eq!(
        c.json["consumers"][0]["keyauth_credentials"][0]["key"],
        "alice-key"
    );
    assert!(
        has(
            &c.report,
            "kong.yml:7:5: routes[2]: route without a service"
        ),
        "{:#?}",
        c.report
    );
    assert!(c.unsupported);
}

#[test]
fn plugins_are_scoped_as_kong_scopes_them() {
    let c = convert(
        r#"_format_version: "3.0"
plugins:
  - name: correlation-id
services:
  - name: s
    url: http://127.0.0.1:9001
    plugins:
      - {name: rate-limiting, config: {minute: 10}}
      - {name: cors}
    routes:
      - name: own
        paths: [/own]
        plugins:
          - {name: rate-limiting, config: {minute: 99}}
      - name: inherits
        paths: [/inherits]
      - name: disabled
        paths: [/disabled]
        plugins:
          - {name: cors, enabled: false}
consumers:
  - username: bob
    plugins:
      - {name: rate-limiting, config: {minute: 1}}
"#,
    );
    let routes = c.json["routes"].as_array().unwrap();
    let by = |n: &str| routes.iter().find(|r| r["name"] == n).unwrap().clone();
    let minute = |r: &serde_json::Value| {
        r["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "rate-limiting")
            .unwrap()["config"]["minute"]
            .clone()
    };
    assert_eq!(minute(&by("own")), 99);
    assert_eq!(minute(&by("inherits")), 10);
    // A disabled route plugin is ignored by Kong, so the service's cors applies.
    assert!(by("disabled")["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "cors"));
    assert!(
        has(
            &c.report,
            "services[0].routes[2].plugins[0].enabled: note: disabled in Kong"
        ),
        "{:#?}",
        c.report
    );
    assert_eq!(c.json["plugins"][0]["name"], "correlation-id");
    assert_eq!(c.json["consumers"][0]["plugins"][0]["config"]["minute"], 1);
    assert!(!c.unsupported, "{:#?}", c.report);
}

#[test]
fn unknown_plugins_and_fields_are_reported_at_their_place_and_access_plugins_fail_closed() {
    let c = convert(
        r#"_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:9001
    routes:
      - name: r
        paths: [/]
        plugins:
          - name: statsd
          - name: hmac-auth
          - name: rate-limiting
            config:
              minute: 5
              policy: local
              redis_host: null
              made_up_field: 3
"#,
    );
    let plugins = c.json["routes"][0]["plugins"].as_array().unwrap();
    let names: Vec<&str> = plugins
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["request-termination", "rate-limiting"],
        "{}",
        c.yaml
    );
    assert_eq!(plugins[0]["config"]["status_code"], 503);
    assert!(plugins[1]["config"].get("made_up_field").is_none());
    assert_eq!(plugins[1]["config"]["minute"], 5);
    assert!(has(&c.report, "kong.yml:9:13: services[0].routes[0].plugins[0]: Pingway has no statsd plugin; left out"), "{:#?}", c.report);
    assert!(has(&c.report, "kong.yml:10:13: services[0].routes[0].plugins[1]: Pingway has no hmac-auth plugin; where it applied, requests are answered 503"), "{:#?}", c.report);
    assert!(
        has(&c.report, "kong.yml:16:15: services[0].routes[0].plugins[2].config.made_up_field: Pingway's rate-limiting has no `made_up_field`; left out"),
        "{:#?}",
        c.report
    );
    assert!(
        has(&c.report, "1 plugin config field(s) set to null left out"),
        "{:#?}",
        c.report
    );
    assert!(c.unsupported);
}

#[test]
fn a_plugin_config_pingway_refuses_leaves_the_plugin_out_or_closes_the_route() {
    let c = convert(
        r#"_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:9001
    routes:
      - name: r
        paths: [/]
        plugins:
          - {name: rate-limiting, config: {minute: lots}}
          - {name: key-auth, config: {key_names: 7}}
"#,
    );
    let plugins = c.json["routes"][0]["plugins"].as_array().unwrap();
    let names: Vec<&str> = plugins
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["request-termination"], "{}", c.yaml);
    assert!(
        has(
            &c.report,
            "services[0].routes[0].plugins[0].config.minute: Pingway refuses it"
        ),
        "{:#?}",
        c.report
    );
    assert!(
        has(
            &c.report,
            "services[0].routes[0].plugins[1].config.key_names: Pingway refuses it"
        ),
        "{:#?}",
        c.report
    );
}

#[test]
fn consumers_carry_their_credentials_and_acl_groups() {
    let c = convert(
        r#"_format_version: "3.0"
consumers:
  - username: alice
    custom_id: a-1
    id: 8f1e6d2a-0000-4000-8000-000000000001
    tags: [team-a, gold]
    keyauth_credentials:
      - {key: alice-key, id: k1, ttl: 3600}
    basicauth_credentials:
      - {username: alice, password: secret}
    acls:
      - {group: admins}
    jwt_secrets:
      - {key: alice-iss, algorithm: HS256, secret: s3cr3t}
"#,
    );
    let a = &c.json["consumers"][0];
    assert_eq!(a["id"], "8f1e6d2a-0000-4000-8000-000000000001");
    assert_eq!(a["custom_id"], "a-1");
    assert_eq!(
        a["keyauth_credentials"][0],
        serde_json::json!({"id": "k1", "key": "alice-key"})
    );
    assert_eq!(a["basicauth_credentials"][0]["password"], "secret");
    assert_eq!(a["acls"][0]["group"], "admins");
    assert_eq!(a["jwt_secrets"][0]["key"], "alice-iss");
    assert!(
        has(
            &c.report,
            "kong.yml:8:34: consumers[0].keyauth_credentials[0].ttl: Kong credential field `ttl`"
        ),
        "{:#?}",
        c.report
    );
    assert!(
        has(&c.report, "kong.yml: note: 2 tag(s) ignored"),
        "{:#?}",
        c.report
    );
}

#[test]
fn hashed_basic_auth_passwords_cannot_be_carried_over() {
    let c = convert(
        r#"_format_version: "3.0"
_transform: false
consumers:
  - username: alice
    basicauth_credentials:
      - {username: alice, password: 9bbc7ecd6e8bd6f3f3d9d0f4b5e1c5c1a2b3c4d5}
"#,
    );
    assert!(c.json["consumers"][0]
        .get("basicauth_credentials")
        .is_none());
    assert!(
        has(
            &c.report,
            "consumers[0].basicauth_credentials[0].password: with `_transform: false`"
        ),
        "{:#?}",
        c.report
    );
}

#[test]
fn hosts_headers_and_protocols_map_with_their_differences_reported() {
    let c = convert(
        r#"_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:9001
    routes:
      - name: r
        hosts: ["*.example.com", "api.example.com:8443", "example.*", "shop*"]
        headers: {x-tenant: [a, B.c]}
        protocols: [https]
        https_redirect_status_code: 308
        paths: ["~/v(1|2)/(?=x)", /ok]
      - name: bad
        paths: ["~/(a)\\1"]
      - name: g
        protocols: [grpc]
        paths: [/g]
"#,
    );
    let r = &c.json["routes"][0];
    assert_eq!(
        r["hosts"],
        serde_json::json!(["*.example.com", "api.example.com", "example.*"])
    );
    assert_eq!(r["headers"][0]["name"], "x-tenant");
    assert_eq!(r["headers"][0]["regex"], "(?i)^(?:a|B\\.c)$");
    assert_eq!(r["protocols"], serde_json::json!(["https"]));
    assert_eq!(r["https_redirect_status_code"], 308);
    assert_eq!(c.json["routes"].as_array().unwrap().len(), 1);
    for needle in [
        "services[0].routes[0].hosts[1]: Pingway ignores the request's port",
        "services[0].routes[0].hosts[3]: a wildcard must be a whole label",
        "services[0].routes[0].paths[0]: the regex does not compile",
        "services[0].routes[1]: none of its paths could be carried over; route left out",
        "services[0].routes[2].protocols: protocol \"grpc\" routes are not carried over",
    ] {
        assert!(has(&c.report, needle), "{needle}\n{:#?}", c.report);
    }
    // Leftmost and rightmost wildcards mean what Kong means by them: nothing to report.
    for quiet in [
        "services[0].routes[0].hosts[0]",
        "services[0].routes[0].hosts[2]",
    ] {
        assert!(!has(&c.report, quiet), "{quiet}\n{:#?}", c.report);
    }
}

#[test]
fn unknown_entities_and_fields_are_reported_not_dropped_silently() {
    let c = convert(
        r#"_format_version: "3.0"
_info: {select_tags: [a]}
vaults:
  - {name: env, prefix: my-env}
ca_certificates:
  - {cert: "x"}
services:
  - name: s
    url: http://127.0.0.1:9001
    tls_verify_depth: 3
    routes:
      - {name: r, paths: [/], regex_priority: 4, snis: [a.example]}
"#,
    );
    for needle in [
        "kong.yml:2:1: _info: decK's `_info` has no Pingway equivalent",
        "kong.yml:3:1: vaults: Kong's `vaults` has no Pingway equivalent",
        "kong.yml:6:5: ca_certificates[0]: CA certificates are not carried over",
        "kong.yml:10:5: services[0].tls_verify_depth: Kong service field `tls_verify_depth`",
        "services[0].routes[0].snis: Pingway routes on the Host header",
        "services[0].routes[0].regex_priority: note:",
    ] {
        assert!(has(&c.report, needle), "{needle}\n{:#?}", c.report);
    }
}

#[test]
fn json_input_converts_like_yaml() {
    let c = convert(
        r#"{"_format_version": "3.0", "services": [{"name": "s", "url": "http://127.0.0.1:9001",
  "routes": [{"name": "r", "paths": ["/x"], "bogus": 1}]}]}"#,
    );
    assert_eq!(c.json["routes"][0]["paths"][0], "/x");
    assert!(
        has(&c.report, "kong.yml:2:45: services[0].routes[0].bogus"),
        "{:#?}",
        c.report
    );
}

#[test]
fn certificates_become_an_https_listener_with_their_snis() {
    let cert = rcgen::generate_simple_self_signed(vec!["a.example".to_string()]).unwrap();
    let text = format!(
        "_format_version: \"3.0\"\ncertificates:\n  - id: c1\n    cert: {:?}\n    key: {:?}\n    snis: [{{name: a.example}}]\nsnis:\n  - {{name: b.example, certificate: {{id: c1}}}}\n",
        cert.cert.pem(),
        cert.key_pair.serialize_pem()
    );
    let c = convert(&text);
    let l = &c.json["listeners"][1];
    assert_eq!(l["address"], "0.0.0.0:8443");
    assert_eq!(
        l["tls"]["certificates"][0]["snis"],
        serde_json::json!(["a.example", "b.example"])
    );
    assert!(c.report.is_empty(), "{:#?}", c.report);
}

#[test]
fn not_a_kong_file_is_an_error() {
    let registry = crate::stock::registry();
    let opts = ConvertOptions::default();
    assert!(matches!(
        convert_kong("listeners: []", &opts, &registry),
        Err(ConvertError::NotKong(_))
    ));
    assert!(matches!(
        convert_kong("a: [", &opts, &registry),
        Err(ConvertError::Syntax(_))
    ));
}

#[test]
fn a_stand_in_closes_every_route_its_scope_covered_whatever_else_is_there() {
    let c = convert(
        r#"_format_version: "3.0"
plugins:
  - name: openid-connect
services:
  - name: s
    url: http://127.0.0.1:9001
    plugins:
      - name: oauth2
    routes:
      - name: a
        paths: [/a]
        plugins:
          - {name: request-termination, config: {status_code: 418, trigger: x-teapot}}
      - name: b
        paths: [/b]
"#,
    );
    assert_eq!(c.json["plugins"][0]["name"], "request-termination");
    for route in c.json["routes"].as_array().unwrap() {
        let terminations: Vec<_> = route["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == "request-termination")
            .collect();
        assert_eq!(terminations.len(), 1, "{}", c.yaml);
        assert_eq!(terminations[0]["config"]["status_code"], 503, "{}", c.yaml);
    }
    assert!(
        has(
            &c.report,
            "services[0].routes[0].plugins[0]: replaced by the 503 request-termination"
        ),
        "{:#?}",
        c.report
    );
}

#[test]
fn expression_routes_are_left_out_rather_than_matching_everything() {
    let c = convert(
        r#"_format_version: "3.0"
services:
  - name: s
    url: http://127.0.0.1:9001
    routes:
      - {name: e, expression: 'http.path == "/x"'}
"#,
    );
    assert_eq!(c.json["routes"], serde_json::json!([]));
    assert!(
        has(
            &c.report,
            "kong.yml:6:9: services[0].routes[0]: routes of Kong's expressions router"
        ),
        "{:#?}",
        c.report
    );
}

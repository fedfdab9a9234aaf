//! The committed manifests: the CRDs must be what `pingway-k8s crds` prints now; every
//! manifest parses as YAML with the kinds expected; the Deployment, RBAC and Dockerfile
//! agree with what the watcher does.

use serde_json::Value;

fn manifest(name: &str) -> String {
    let path = format!("{}/manifests/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The documents of a multi-document YAML file, as JSON.
fn documents(name: &str) -> Vec<Value> {
    let text = manifest(name);
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in text.lines().chain(std::iter::once("---")) {
        if line.trim_end() == "---" {
            let node = pingway::config::yaml::parse(&current)
                .unwrap_or_else(|d| panic!("{name}: {d:?}\n{current}"));
            let value = node.to_json();
            if !value.is_null() {
                docs.push(value);
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs
}

fn kinds(docs: &[Value]) -> Vec<&str> {
    docs.iter().map(|d| d["kind"].as_str().unwrap()).collect()
}

#[test]
fn committed_crds_are_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/crds.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == pingway_k8s::crd::crds(),
        "k8s/manifests/crds.yaml is stale: run `cargo run -q -p pingway-k8s -- crds > k8s/manifests/crds.yaml`"
    );
}

#[test]
fn every_manifest_parses_with_the_kinds_expected() {
    let expected: &[(&str, &[&str])] = &[
        ("deployment.yaml", &["Namespace", "Deployment"]),
        (
            "rbac.yaml",
            &[
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
            ],
        ),
        ("service.yaml", &["Service"]),
        ("ingressclass.yaml", &["IngressClass"]),
    ];
    for (file, want) in expected {
        let docs = documents(file);
        assert_eq!(kinds(&docs), *want, "{file}");
        for d in &docs {
            assert!(d["apiVersion"].is_string(), "{file}: {d}");
            assert!(d["metadata"]["name"].is_string(), "{file}: {d}");
        }
    }
    let crds = documents("crds.yaml");
    assert!(!crds.is_empty());
    assert!(kinds(&crds)
        .iter()
        .all(|k| *k == "CustomResourceDefinition"));
}

fn deployment() -> Value {
    documents("deployment.yaml")
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap()
}

#[test]
fn the_deployment_probes_status_runs_in_process_and_is_locked_down() {
    let d = deployment();
    let pod = &d["spec"]["template"];
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["sidecar.istio.io/inject"], "true");
    assert_eq!(
        annotations["traffic.sidecar.istio.io/includeInboundPorts"],
        ""
    );
    assert_eq!(annotations["linkerd.io/inject"], "ingress");
    let spec = &pod["spec"];
    assert_eq!(spec["securityContext"]["runAsUser"], 65532);
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    let containers = spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    let command: Vec<&str> = c["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(&command[..2], ["pingway-k8s", "serve"]);
    assert!(command.contains(&"--publish-service=pingway/pingway-proxy"));
    // The readiness probe asks the admin API's /status, where the admin API listens.
    let probe: Vec<&str> = c["readinessProbe"]["exec"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(&probe[..2], ["pingway-k8s", "probe"]);
    let url = probe[2].strip_prefix("--url=").unwrap();
    assert!(url.ends_with("/status"), "{url}");
    let admin = command
        .iter()
        .find_map(|a| a.strip_prefix("--admin-listen="))
        .unwrap();
    assert_eq!(url, format!("http://{admin}/status"));
    // The Lease identity and namespace from the downward API.
    let env = c["env"].as_array().unwrap();
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let e = env.iter().find(|e| e["name"] == name).unwrap();
        assert_eq!(e["valueFrom"]["fieldRef"]["fieldPath"], field);
    }
    // The generated file goes to a writable emptyDir.
    let mounts = c["volumeMounts"].as_array().unwrap();
    assert!(mounts.iter().any(|m| m["mountPath"] == "/etc/pingway"));
    // The published Service exists.
    let svc = &documents("service.yaml")[0];
    assert_eq!(
        format!(
            "{}/{}",
            svc["metadata"]["namespace"].as_str().unwrap(),
            svc["metadata"]["name"].as_str().unwrap()
        ),
        "pingway/pingway-proxy"
    );
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
}

/// The rules granting `verb` on `group`/`resource`.
fn grants(role: &Value, group: &str, resource: &str, verb: &str) -> bool {
    role["rules"].as_array().unwrap().iter().any(|r| {
        let has = |field: &str, want: &str| {
            r[field]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == want))
        };
        has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
    })
}

#[test]
fn rbac_grants_what_the_watcher_writes_and_no_more() {
    let docs = documents("rbac.yaml");
    let cluster = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
    let role = docs.iter().find(|d| d["kind"] == "Role").unwrap();
    assert_eq!(role["metadata"]["namespace"], "pingway");
    assert!(grants(
        cluster,
        "networking.k8s.io",
        "ingresses/status",
        "patch"
    ));
    assert!(grants(cluster, "events.k8s.io", "events", "create"));
    assert!(grants(cluster, "events.k8s.io", "events", "patch"));
    for verb in ["create", "get", "update"] {
        assert!(
            grants(role, "coordination.k8s.io", "leases", verb),
            "{verb}"
        );
    }
    // Leases only in the namespace; nothing deletes; no write on what is translated.
    assert!(!grants(cluster, "coordination.k8s.io", "leases", "get"));
    for d in docs
        .iter()
        .filter(|d| d["kind"].as_str().unwrap().ends_with("Role"))
    {
        for r in d["rules"].as_array().unwrap() {
            let verbs = r["verbs"].as_array().unwrap();
            assert!(!verbs.iter().any(|v| v == "delete" || v == "*"), "{r}");
        }
    }
    assert!(!grants(cluster, "networking.k8s.io", "ingresses", "update"));
    assert!(!grants(cluster, "networking.k8s.io", "ingresses", "patch"));
}

#[test]
fn the_dockerfile_builds_both_binaries_into_a_non_root_image() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("cargo build --release --locked -p pingway -p pingway-k8s"));
    assert!(text.contains("USER 65532:65532"));
    // The image the Deployment names is what the Dockerfile says it builds.
    let image = deployment()["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains(&format!("-t {image}")), "{image}");
}

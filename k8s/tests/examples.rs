//! The cluster walkthroughs in k8s/examples/ (the seeds' manifests): every YAML file
//! of each folder is loaded (several documents each, as `kubectl apply -f` takes them),
//! translated with `--ingress-class kong` as the seeds name class `kong`, and the routes
//! and plugins checked against what the seed describes, through the gateway's router.
//! The seeds' KongPlugin + annotation manifests translate unchanged, without a problem.

use std::path::{Path, PathBuf};

use pingway::router::{RouteRequest, Router};
use pingway_k8s::{translate, Options, Snapshot, Translation, UpstreamMode};
use serde_json::json;

fn load(paths: &[PathBuf]) -> Snapshot {
    let mut s = Snapshot::default();
    for p in paths {
        let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        pingway_k8s::load::add_manifests(&mut s, &text)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
    s
}

/// Every `.yaml` file of `k8s/examples/<name>/`.
fn example(name: &str) -> Snapshot {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    load(&files)
}

/// Translates as `pingway-k8s run --ingress-class kong --upstreams dns` would (the
/// files hold no EndpointSlices: the mesh's DNS names are the targets).
fn kong(s: &Snapshot) -> Translation {
    let opts = Options {
        ingress_class: "kong".into(),
        upstreams: UpstreamMode::Dns,
        ..Options::default()
    };
    let t = translate(s, &opts);
    if let Err(d) = pingway_k8s::translate::check(&t.yaml) {
        panic!("the gateway refuses the output: {d:?}\n{}", t.yaml);
    }
    assert!(t.problems.is_empty(), "{:#?}\n{}", t.problems, t.yaml);
    t
}

/// The route a `GET path` (any host) reaches.
fn route_for<'a>(t: &'a Translation, path: &str) -> Option<&'a pingway::config::RouteConfig> {
    let router = Router::build(&t.config.routes).unwrap();
    let m = router.find(&RouteRequest {
        host: Some("203.0.113.7"),
        path,
        method: &http::Method::GET,
        headers: &http::HeaderMap::new(),
        query: None,
    })?;
    t.config.routes.get(m.route)
}

fn targets<'a>(t: &'a Translation, upstream: &str) -> Vec<&'a str> {
    t.config
        .upstreams
        .iter()
        .find(|u| u.name == upstream)
        .unwrap_or_else(|| panic!("no upstream {upstream}"))
        .targets
        .iter()
        .map(|t| t.address.as_str())
        .collect()
}

#[test]
fn echo_v1_v2() {
    let t = kong(&example("echo-v1-v2"));
    // `/` to v1 with the one-a-minute rate limit.
    let v1 = route_for(&t, "/").expect("/ is routed");
    assert_eq!(v1.upstream, "echo.http-echo.8080");
    assert_eq!(
        targets(&t, "echo.http-echo.8080"),
        ["http-echo.echo.svc.cluster.local:8080"]
    );
    assert_eq!(v1.plugins.len(), 1);
    assert_eq!(v1.plugins[0].name, "rate-limiting");
    let c = v1.plugins[0].config.to_json();
    assert_eq!(
        (c["minute"].clone(), c["policy"].clone()),
        (json!(1), json!("local"))
    );
    assert_eq!(route_for(&t, "/anything").map(|r| &r.name), Some(&v1.name));
    // `/v2` (and below, not `/v2x`) to v2 with the allow-list.
    let v2 = route_for(&t, "/v2").expect("/v2 is routed");
    assert_eq!(v2.upstream, "echo.http-echo-2.8080");
    assert_eq!(v2.plugins.len(), 1);
    assert_eq!(v2.plugins[0].name, "ip-restriction");
    assert_eq!(
        v2.plugins[0].config.to_json()["allow"],
        json!(["54.13.21.1"])
    );
    assert_eq!(route_for(&t, "/v2/x").map(|r| &r.name), Some(&v2.name));
    assert_eq!(route_for(&t, "/v2x").map(|r| &r.name), Some(&v1.name));
    // Kong's default: the client's Host goes upstream; the path is not stripped.
    assert!(v1.preserve_host && !v1.strip_prefix);
    assert_eq!(t.config.routes.len(), 2);
    assert!(t.config.plugins.is_empty(), "no global plugin");

    // Served only for class `kong`: under our default class nothing of it is.
    let other = translate(&example("echo-v1-v2"), &Options::default());
    assert!(other.config.routes.is_empty());
}

#[test]
fn bookinfo() {
    let t = kong(&example("bookinfo"));
    let r = route_for(&t, "/productpage").expect("routed");
    assert_eq!(r.upstream, "bookinfo.productpage.9080");
    assert_eq!(
        targets(&t, "bookinfo.productpage.9080"),
        ["productpage.bookinfo.svc.cluster.local:9080"]
    );
    assert_eq!(r.plugins.len(), 1);
    assert_eq!(r.plugins[0].name, "rate-limiting");
    assert_eq!(r.plugins[0].config.to_json()["minute"], json!(30));
    assert_eq!(t.config.routes.len(), 1);
}

/// The seed's http-log KongPlugin and its Ingress, verbatim.
#[test]
fn seed_http_log_manifest() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seeds/http-log.yaml");
    let t = kong(&load(&[path]));
    let r = route_for(&t, "/").expect("routed");
    assert_eq!(r.plugins[0].name, "http-log");
    assert_eq!(
        r.plugins[0].config.to_json()["http_endpoint"],
        json!("http://mockbin.org/bin/:id")
    );
}

/// The translation the `translate` command prints for a folder is the library's.
#[test]
fn translate_command_prints_the_same_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bookinfo");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pingway-k8s"))
        .arg("translate")
        .args(["--ingress-class", "kong"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        kong(&load(&files)).yaml
    );
}

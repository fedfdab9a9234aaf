//! The committed manifests: the CRDs must be what `pingway-k8s crds` prints now.

#[test]
fn committed_crds_are_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/crds.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == pingway_k8s::crd::crds(),
        "k8s/manifests/crds.yaml is stale: run `cargo run -q -p pingway-k8s -- crds > k8s/manifests/crds.yaml`"
    );
}

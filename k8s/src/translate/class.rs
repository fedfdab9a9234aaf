//! Which Ingresses this gateway serves: its class by `spec.ingressClassName`, else by
//! the legacy `kubernetes.io/ingress.class` annotation, else (a class-less Ingress) only
//! when our IngressClass is marked the cluster's default.

use std::sync::Arc;

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

/// The legacy annotation that named an Ingress's class before `ingressClassName`.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// The annotation that makes an IngressClass the default for class-less Ingresses.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// Whether `ingress` belongs to the class named `ours`.
pub fn serves(ingress: &Ingress, classes: &[Arc<IngressClass>], ours: &str) -> bool {
    if let Some(name) = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
    {
        return name == ours;
    }
    if let Some(name) = ingress
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
    {
        return name == ours;
    }
    is_default(classes, ours)
}

/// Whether a Kong resource that names its class only by annotation (a `KongConsumer`)
/// belongs to `ours`: the `kubernetes.io/ingress.class` annotation equals it, or there
/// is none and our IngressClass is the default (Kong's controller's rule).
pub fn serves_annotated(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    classes: &[Arc<IngressClass>],
    ours: &str,
) -> bool {
    match meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
    {
        Some(name) => name.trim() == ours,
        None => is_default(classes, ours),
    }
}

/// Whether our IngressClass carries the default-class annotation.
fn is_default(classes: &[Arc<IngressClass>], ours: &str) -> bool {
    classes.iter().any(|c| {
        c.metadata.name.as_deref() == Some(ours)
            && c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .is_some_and(|v| v == "true")
    })
}

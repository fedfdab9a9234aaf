//! Objects from manifest files (what `kubectl apply -f` takes: YAML, several documents
//! separated by `---`) into a [`Snapshot`], for `pingway-k8s translate` and the tests:
//! what a set of manifests becomes without a cluster. Kinds the translation does not
//! read (Deployments, Namespaces, ...) are skipped and listed.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::translate::Snapshot;

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A document is not YAML.
    #[error("document {document}: {message}")]
    Yaml {
        /// 1-based document number in the text.
        document: usize,
        /// The parser's messages.
        message: String,
    },
    /// A document of a kind we read does not have that kind's shape.
    #[error("document {document} ({kind} {name}): {message}")]
    Shape {
        /// 1-based document number.
        document: usize,
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// Adds every object of `text` to `snapshot`; returns the `Kind name` of the objects
/// skipped because the translation does not read their kind.
pub fn add_manifests(snapshot: &mut Snapshot, text: &str) -> Result<Vec<String>, LoadError> {
    let mut skipped = Vec::new();
    for (i, doc) in documents(text).into_iter().enumerate() {
        let blank = doc.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#')
        });
        if blank {
            continue;
        }
        let node = pingway::config::yaml::parse(&doc).map_err(|d| LoadError::Yaml {
            document: i + 1,
            message: d
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        })?;
        let value = node.to_json();
        if value.is_null() {
            continue;
        }
        if value["kind"].as_str() == Some("List") {
            for item in value["items"].as_array().into_iter().flatten() {
                add_object(snapshot, item.clone(), i + 1, &mut skipped)?;
            }
        } else {
            add_object(snapshot, value, i + 1, &mut skipped)?;
        }
    }
    Ok(skipped)
}

fn add_object(
    s: &mut Snapshot,
    value: Value,
    document: usize,
    skipped: &mut Vec<String>,
) -> Result<(), LoadError> {
    let kind = value["kind"].as_str().unwrap_or("").to_string();
    let name = value["metadata"]["name"].as_str().unwrap_or("").to_string();
    fn obj<K: DeserializeOwned>(
        v: Value,
        document: usize,
        kind: &str,
        name: &str,
    ) -> Result<Arc<K>, LoadError> {
        serde_json::from_value(v)
            .map(Arc::new)
            .map_err(|e| LoadError::Shape {
                document,
                kind: kind.to_string(),
                name: name.to_string(),
                message: e.to_string(),
            })
    }
    let (k, n) = (kind.as_str(), name.as_str());
    match k {
        "Ingress" => s.ingresses.push(obj(value, document, k, n)?),
        "IngressClass" => s.ingress_classes.push(obj(value, document, k, n)?),
        "Service" => s.services.push(obj(value, document, k, n)?),
        "EndpointSlice" => s.endpoint_slices.push(obj(value, document, k, n)?),
        "Secret" => s.secrets.push(obj(value, document, k, n)?),
        "GatewayPlugin" => s.gateway_plugins.push(obj(value, document, k, n)?),
        "ClusterGatewayPlugin" => s.cluster_gateway_plugins.push(obj(value, document, k, n)?),
        "KongPlugin" => s.kong_plugins.push(obj(value, document, k, n)?),
        "KongClusterPlugin" => {
            // Cluster-scoped: a `namespace:` written on it (the seeds do) is ignored
            // by the API server, and so here.
            let mut value = value;
            if let Some(m) = value["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            s.kong_cluster_plugins.push(obj(value, document, k, n)?)
        }
        "KongConsumer" => s.kong_consumers.push(obj(value, document, k, n)?),
        _ => skipped.push(format!("{kind} {name}")),
    }
    Ok(())
}

/// The documents of a YAML stream: split at `---` lines (a `...` line ends one).
fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        let t = line.trim_end();
        let marker = t == "---" || t.starts_with("--- ") || t.starts_with("---#");
        if marker {
            docs.push(String::new());
        } else if t == "..." {
            continue;
        } else if let Some(d) = docs.last_mut() {
            d.push_str(line);
            d.push('\n');
        }
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_manifests() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: n}\n---\n# only a comment\n---\nkind: Deployment\nmetadata: {name: d}\n---\nkind: KongClusterPlugin\nmetadata: {name: c, namespace: x}\nplugin: cors\n";
        let mut s = Snapshot::default();
        let skipped = add_manifests(&mut s, text).unwrap();
        assert_eq!(s.services.len(), 1);
        assert_eq!(s.kong_cluster_plugins.len(), 1);
        assert_eq!(s.kong_cluster_plugins[0].metadata.namespace, None);
        assert_eq!(skipped, ["Deployment d"]);
        let err = add_manifests(&mut s, "kind: Service\nspec: [1").unwrap_err();
        assert!(err.to_string().starts_with("document 1"), "{err}");
    }
}

//! JSON objects as an API server holds them, for the tests.

#![allow(dead_code)]

use serde_json::{json, Value};

/// An Ingress of class `pingway` routing `host` + prefix `path` to Service `svc` port 80.
pub fn ingress(
    ns: &str,
    name: &str,
    host: &str,
    path: &str,
    svc: &str,
    annotations: Value,
) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"namespace": ns, "name": name, "annotations": annotations},
        "spec": {"ingressClassName": "pingway", "rules": [{"host": host, "http": {"paths": [
            {"path": path, "pathType": "Prefix", "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}}]}})
}

/// A Service with port 80 named `http`.
pub fn service(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": ns, "name": name},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}], "selector": {"app": name}}})
}

/// The EndpointSlice of Service `svc` with ready endpoints at `addrs` (`IP:PORT`, one port).
pub fn slice(ns: &str, svc: &str, addrs: &[std::net::SocketAddr]) -> Value {
    let port = addrs.first().map_or(8080, |a| a.port());
    let endpoints: Vec<Value> = addrs
        .iter()
        .map(|a| json!({"addresses": [a.ip().to_string()], "conditions": {"ready": true}}))
        .collect();
    // Endpoint ports are per slice: one slice per distinct port.
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": ns, "name": format!("{svc}-abc"), "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}], "endpoints": endpoints})
}

/// A KongPlugin.
pub fn kong_plugin(ns: &str, name: &str, plugin: &str, config: Value) -> Value {
    json!({"apiVersion": "configuration.konghq.com/v1", "kind": "KongPlugin",
        "metadata": {"namespace": ns, "name": name}, "plugin": plugin, "config": config})
}

/// Our GatewayClass `pingway` (controller `pingway.io/gateway-controller`).
pub fn gateway_class() -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "pingway", "generation": 1},
        "spec": {"controllerName": "pingway.io/gateway-controller"}})
}

/// A Gateway of class `pingway` with one HTTP listener `http` taking routes from every
/// namespace.
pub fn gateway(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"namespace": ns, "name": name, "generation": 1},
        "spec": {"gatewayClassName": "pingway", "listeners": [
            {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}]}})
}

/// An HTTPRoute attached to Gateway `gw_ns/gw` for `host`, with `rules` as written.
pub fn http_route(ns: &str, name: &str, gw_ns: &str, gw: &str, host: &str, rules: Value) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"namespace": ns, "name": name, "generation": 1},
        "spec": {"parentRefs": [{"name": gw, "namespace": gw_ns}], "hostnames": [host], "rules": rules}})
}

/// A KongConsumer of class `class` with credential Secrets `credentials`.
pub fn kong_consumer(
    ns: &str,
    name: &str,
    class: &str,
    username: &str,
    credentials: &[&str],
) -> Value {
    json!({"apiVersion": "configuration.konghq.com/v1", "kind": "KongConsumer",
        "metadata": {"namespace": ns, "name": name, "annotations": {"kubernetes.io/ingress.class": class}},
        "username": username, "credentials": credentials})
}

/// A Secret labelled `konghq.com/credential: <ty>` with `fields` (plain text, stored
/// base64 in `data` as the API server returns it).
pub fn credential_secret(ns: &str, name: &str, ty: &str, fields: &[(&str, &str)]) -> Value {
    use base64::Engine as _;
    let data: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                json!(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"namespace": ns, "name": name, "labels": {"konghq.com/credential": ty}},
        "data": data})
}

/// A Secret of type `Opaque` with no label (one the watcher must not hold).
pub fn plain_secret(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"namespace": ns, "name": name}, "data": {"password": "aHVudGVyMg=="}})
}

//! The stand-in's single-object verbs, for every kind it serves: GET, POST (create;
//! `409 AlreadyExists`), PUT (replace; `409 Conflict` on a stale `resourceVersion`),
//! PATCH (`application/merge-patch+json`; strategic merge and server-side apply are
//! approximated by a merge patch, apply creating a missing object) and DELETE, each on
//! the object and, for kinds with a status subresource, on `/status`: a main-resource
//! write keeps the stored `.status`, a status write changes only `.status`. Every write
//! that changes an object bumps the resourceVersion and emits a watch event, exactly
//! as [`ApiServer::apply`] does; a write that changes nothing bumps nothing (as the
//! real server).

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::{all_kinds, prefix, status, ApiServer, Body, Event, Kind, State};

/// A request for one object: `.../[namespaces/NS/]PLURAL/NAME[/status]`.
struct Target {
    kind: Kind,
    ns: String,
    name: String,
    status: bool,
}

/// Kinds whose status is a subresource (a main write ignores `.status`). Plurals of
/// kinds other helpers add (Gateway API) are listed so that they behave the same.
fn has_status_subresource(kind: &Kind) -> bool {
    matches!(
        kind.plural,
        "ingresses" | "services" | "gateways" | "httproutes" | "gatewayclasses"
    )
}

fn route_object(path: &str) -> Option<Target> {
    for k in all_kinds() {
        let Some(rest) = path.strip_prefix(&prefix(k.api_version)) else {
            continue;
        };
        let (ns, rest) = match rest.strip_prefix("/namespaces/") {
            Some(r) if k.namespaced => {
                let (ns, rest) = r.split_once('/')?;
                (ns.to_string(), format!("/{rest}"))
            }
            Some(_) => continue,
            None if k.namespaced => continue,
            None => (String::new(), rest.to_string()),
        };
        let Some(rest) = rest.strip_prefix(&format!("/{}/", k.plural)) else {
            continue;
        };
        let (name, status) = match rest.split_once('/') {
            Some((name, "status")) => (name, true),
            Some(_) => return None,
            None => (rest, false),
        };
        if name.is_empty() {
            return None;
        }
        return Some(Target {
            kind: *k,
            ns,
            name: name.to_string(),
            status,
        });
    }
    None
}

/// The collection a POST goes to: `.../[namespaces/NS/]PLURAL`.
fn route_collection(path: &str) -> Option<(Kind, String)> {
    let (kind, ns) = super::route(path)?;
    Some((kind, ns.unwrap_or_default()))
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().expect("an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn rv_of(object: &Value) -> Option<&str> {
    object["metadata"]["resourceVersion"]
        .as_str()
        .filter(|s| !s.is_empty())
}

impl ApiServer {
    /// Serves one request: the single-object and write verbs here, lists and watches in
    /// [`ApiServer::handle`].
    pub(super) async fn serve(&self, req: Request<hyper::body::Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let object = route_object(&path);
        if *req.method() == Method::GET && object.is_none() {
            return self.handle(req);
        }
        let method = req.method().clone();
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let plural = object
            .as_ref()
            .map(|t| t.kind.plural)
            .or_else(|| route_collection(&path).map(|(k, _)| k.plural));
        if let Some(p) = plural {
            if self.state.lock().unwrap().absent.contains(p) {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "the server could not find the requested resource",
                );
            }
        }
        if object
            .as_ref()
            .is_some_and(|t| t.status && !has_status_subresource(&t.kind))
        {
            return not_found(&path);
        }
        let status_write = object.as_ref().is_some_and(|t| t.status)
            && matches!(method, Method::PUT | Method::PATCH);
        if status_write {
            self.while_status_writes_held().await;
        }
        if status_write && self.refuses_status_write() {
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "etcdserver: request timed out (the stand-in's ApiServer::refuse_status_writes)",
            );
        }
        let parsed = || serde_json::from_slice::<Value>(&body);
        match (method, object) {
            (Method::GET, Some(t)) => self.get_object(&t),
            (Method::POST, None) => match (route_collection(&path), parsed()) {
                (Some((kind, ns)), Ok(obj)) => self.create(kind, ns, obj),
                (None, _) => not_found(&path),
                (_, Err(e)) => bad_request(&e.to_string()),
            },
            (Method::PUT, Some(t)) => match parsed() {
                Ok(obj) => self.replace(&t, obj),
                Err(e) => bad_request(&e.to_string()),
            },
            (Method::PATCH, Some(t)) => {
                let ct = content_type.split(';').next().unwrap_or("").trim();
                match ct {
                    "application/merge-patch+json"
                    | "application/strategic-merge-patch+json"
                    | "application/apply-patch+yaml" => match parsed() {
                        Ok(patch) => self.patch(&t, &patch, ct == "application/apply-patch+yaml"),
                        Err(e) => bad_request(&e.to_string()),
                    },
                    other => status(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaType",
                        &format!("the stand-in does not take {other} patches"),
                    ),
                }
            }
            (Method::DELETE, Some(t)) => self.delete_object(&t),
            (_, None) => not_found(&path),
            _ => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "the stand-in does not serve this verb here",
            ),
        }
    }

    /// The stored object, if any (for tests).
    pub fn get(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let kind = super::kind_by_name(kind);
        let st = self.state.lock().unwrap();
        st.objects
            .get(&(kind.plural, ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Every stored object of a kind (for tests).
    pub fn list(&self, kind: &str) -> Vec<Value> {
        let kind = super::kind_by_name(kind);
        let st = self.state.lock().unwrap();
        st.objects
            .iter()
            .filter(|((p, _, _), _)| *p == kind.plural)
            .map(|(_, o)| o.clone())
            .collect()
    }

    fn get_object(&self, t: &Target) -> Response<Body> {
        let st = self.state.lock().unwrap();
        match st
            .objects
            .get(&(t.kind.plural, t.ns.clone(), t.name.clone()))
        {
            Some(o) => super::json_response(StatusCode::OK, o),
            None => missing(t),
        }
    }

    /// Stores `object` under a new resourceVersion and emits `ty`.
    fn commit(
        &self,
        st: &mut State,
        kind: Kind,
        ns: String,
        name: String,
        mut object: Value,
        ty: &'static str,
    ) -> Value {
        st.rv += 1;
        let rv = st.rv;
        object["apiVersion"] = json!(kind.api_version);
        object["kind"] = json!(kind.kind);
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = (kind.plural, ns, name);
        if ty == "DELETED" {
            st.objects.remove(&key);
        } else {
            st.objects.insert(key, object.clone());
        }
        self.counters.writes.fetch_add(1, Ordering::Relaxed);
        self.record(
            st,
            Event {
                rv,
                plural: kind.plural,
                kind: kind.kind,
                ty,
                object: object.clone(),
            },
        );
        object
    }

    fn create(&self, kind: Kind, ns: String, mut obj: Value) -> Response<Body> {
        let mut st = self.state.lock().unwrap();
        let name = match obj["metadata"]["name"].as_str() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match obj["metadata"]["generateName"].as_str() {
                Some(g) => format!("{g}{:x}", st.rv + 1),
                None => return bad_request("metadata.name or generateName is required"),
            },
        };
        if let Some(body_ns) = obj["metadata"]["namespace"].as_str() {
            if kind.namespaced && !body_ns.is_empty() && body_ns != ns {
                return bad_request("the namespace of the object does not match the request");
            }
        }
        let key = (kind.plural, ns.clone(), name.clone());
        if st.objects.contains_key(&key) {
            return status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                &format!("{} \"{name}\" already exists", kind.plural),
            );
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        obj["metadata"]["name"] = json!(name);
        if kind.namespaced {
            obj["metadata"]["namespace"] = json!(ns);
        }
        obj["metadata"]["uid"] = json!(format!("uid-{}-{ns}-{name}", kind.plural));
        obj["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        if has_status_subresource(&kind) {
            // As the real server: status is not set by a create.
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        let stored = self.commit(&mut st, kind, ns, name, obj, "ADDED");
        super::json_response(StatusCode::CREATED, &stored)
    }

    fn replace(&self, t: &Target, mut obj: Value) -> Response<Body> {
        let mut st = self.state.lock().unwrap();
        let key = (t.kind.plural, t.ns.clone(), t.name.clone());
        let Some(old) = st.objects.get(&key).cloned() else {
            return missing(t);
        };
        if obj["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n != t.name)
        {
            return bad_request("the name of the object does not match the request");
        }
        if let Some(conflict) = stale(t, &obj, &old) {
            return conflict;
        }
        let new = if t.status {
            let mut new = old.clone();
            new["status"] = obj["status"].take();
            new
        } else {
            let mut new = obj;
            for keep in ["uid", "creationTimestamp", "name", "namespace"] {
                new["metadata"][keep] = old["metadata"][keep].clone();
            }
            if has_status_subresource(&t.kind) {
                new["status"] = old["status"].clone();
            }
            new
        };
        self.finish_update(&mut st, t, old, new)
    }

    fn patch(&self, t: &Target, patch: &Value, apply: bool) -> Response<Body> {
        let mut st = self.state.lock().unwrap();
        let key = (t.kind.plural, t.ns.clone(), t.name.clone());
        let Some(old) = st.objects.get(&key).cloned() else {
            if apply && !t.status {
                drop(st);
                let mut obj = patch.clone();
                obj["metadata"]["name"] = json!(t.name);
                return self.create(t.kind, t.ns.clone(), obj);
            }
            return missing(t);
        };
        if let Some(conflict) = stale(t, patch, &old) {
            return conflict;
        }
        let mut merged = old.clone();
        merge_patch(&mut merged, patch);
        let new = if t.status {
            let mut new = old.clone();
            new["status"] = merged["status"].take();
            new
        } else {
            for keep in ["uid", "creationTimestamp", "name", "namespace"] {
                merged["metadata"][keep] = old["metadata"][keep].clone();
            }
            if has_status_subresource(&t.kind) {
                merged["status"] = old["status"].clone();
            }
            merged
        };
        self.finish_update(&mut st, t, old, new)
    }

    fn finish_update(
        &self,
        st: &mut State,
        t: &Target,
        old: Value,
        mut new: Value,
    ) -> Response<Body> {
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        drop_nulls(&mut new);
        let mut old_cmp = old.clone();
        drop_nulls(&mut old_cmp);
        if new == old_cmp {
            return super::json_response(StatusCode::OK, &old);
        }
        let stored = self.commit(st, t.kind, t.ns.clone(), t.name.clone(), new, "MODIFIED");
        super::json_response(StatusCode::OK, &stored)
    }

    fn delete_object(&self, t: &Target) -> Response<Body> {
        let mut st = self.state.lock().unwrap();
        let key = (t.kind.plural, t.ns.clone(), t.name.clone());
        let Some(old) = st.objects.get(&key).cloned() else {
            return missing(t);
        };
        let stored = self.commit(
            &mut st,
            t.kind,
            t.ns.clone(),
            t.name.clone(),
            old,
            "DELETED",
        );
        super::json_response(StatusCode::OK, &stored)
    }
}

/// `409 Conflict` when `body` names a resourceVersion other than the stored one.
fn stale(t: &Target, body: &Value, old: &Value) -> Option<Response<Body>> {
    let want = rv_of(body)?;
    if Some(want) == rv_of(old) {
        return None;
    }
    Some(status(
        StatusCode::CONFLICT,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {} \"{}\": the object has been modified; \
             please apply your changes to the latest version and try again",
            t.kind.plural, t.name
        ),
    ))
}

/// Removes `null` members (a typed client serializes absent fields as nothing, a merge
/// patch deletes with `null`): two objects that differ only so are the same.
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

fn missing(t: &Target) -> Response<Body> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{} \"{}\" not found", t.kind.plural, t.name),
    )
}

fn not_found(path: &str) -> Response<Body> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("no handler for {path}"),
    )
}

fn bad_request(message: &str) -> Response<Body> {
    status(StatusCode::BAD_REQUEST, "BadRequest", message)
}

//! A stand-in Kubernetes API server for the watcher's tests. No kube-apiserver can be
//! installed on the machines these tests run on, so this in-process HTTP server speaks
//! the part of the API the watcher uses, as kube-rs 5 expects it (see
//! shared/notes/kube-stand-in.md): list and watch for each kind, resourceVersions,
//! list-then-watch and streaming lists (`sendInitialEvents=true` ending with the
//! `k8s.io/initial-events-end` bookmark), `410 Expired` as a watch ERROR event (not an
//! HTTP status) for a resourceVersion older than the kept history, field selectors on
//! top-level fields (`type=kubernetes.io/tls`), label selectors (`key`, `!key`,
//! `key=value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`), 404 for kinds whose CRD is "not
//! installed", and dropping every open watch on demand. Objects are JSON, as the real
//! server sends them, so the typed k8s-openapi structs deserialize them.
//!
//! Writes (apiserver/writes.rs): GET, POST, PUT, PATCH (merge) and DELETE on single
//! objects and their `/status`, for every kind, with `409 AlreadyExists` / `409 Conflict`;
//! besides the watched kinds it serves Leases and `events.k8s.io/v1` Events.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch};

mod writes;

#[allow(unused_imports)] // not every test binary that includes the stand-in uses it
pub use writes::merge_patch;

type Body = BoxBody<Bytes, Infallible>;

/// A kind the stand-in serves.
#[derive(Debug, Clone, Copy)]
struct Kind {
    api_version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
}

const KINDS: &[Kind] = &[
    Kind {
        api_version: "v1",
        kind: "Service",
        plural: "services",
        namespaced: true,
    },
    Kind {
        api_version: "v1",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
    },
    Kind {
        api_version: "networking.k8s.io/v1",
        kind: "Ingress",
        plural: "ingresses",
        namespaced: true,
    },
    Kind {
        api_version: "networking.k8s.io/v1",
        kind: "IngressClass",
        plural: "ingressclasses",
        namespaced: false,
    },
    Kind {
        api_version: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        namespaced: true,
    },
    Kind {
        api_version: "pingway.io/v1",
        kind: "GatewayPlugin",
        plural: "gatewayplugins",
        namespaced: true,
    },
    Kind {
        api_version: "pingway.io/v1",
        kind: "ClusterGatewayPlugin",
        plural: "clustergatewayplugins",
        namespaced: false,
    },
    Kind {
        api_version: "configuration.konghq.com/v1",
        kind: "KongPlugin",
        plural: "kongplugins",
        namespaced: true,
    },
    Kind {
        api_version: "configuration.konghq.com/v1",
        kind: "KongClusterPlugin",
        plural: "kongclusterplugins",
        namespaced: false,
    },
    Kind {
        api_version: "gateway.networking.k8s.io/v1",
        kind: "GatewayClass",
        plural: "gatewayclasses",
        namespaced: false,
    },
    Kind {
        api_version: "gateway.networking.k8s.io/v1",
        kind: "Gateway",
        plural: "gateways",
        namespaced: true,
    },
    Kind {
        api_version: "gateway.networking.k8s.io/v1",
        kind: "HTTPRoute",
        plural: "httproutes",
        namespaced: true,
    },
    Kind {
        api_version: "gateway.networking.k8s.io/v1beta1",
        kind: "ReferenceGrant",
        plural: "referencegrants",
        namespaced: true,
    },
    Kind {
        api_version: "configuration.konghq.com/v1",
        kind: "KongConsumer",
        plural: "kongconsumers",
        namespaced: true,
    },
];

/// Kinds the watcher writes but does not watch: leader-election Leases and the Events
/// kube-runtime's `Recorder` posts (`events.k8s.io/v1`).
const WRITE_KINDS: &[Kind] = &[
    Kind {
        api_version: "coordination.k8s.io/v1",
        kind: "Lease",
        plural: "leases",
        namespaced: true,
    },
    Kind {
        api_version: "events.k8s.io/v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
    },
];

/// Every kind served: the watched ones and the written ones.
fn all_kinds() -> impl Iterator<Item = &'static Kind> {
    KINDS.iter().chain(WRITE_KINDS.iter())
}

fn kind_by_name(kind: &str) -> Kind {
    *all_kinds()
        .find(|k| k.kind == kind)
        .unwrap_or_else(|| panic!("stand-in does not serve {kind}"))
}

fn prefix(api_version: &str) -> String {
    if api_version == "v1" {
        "/api/v1".into()
    } else {
        format!("/apis/{api_version}")
    }
}

#[derive(Debug, Clone)]
struct Event {
    rv: u64,
    plural: &'static str,
    kind: &'static str,
    ty: &'static str,
    object: Value,
}

struct State {
    rv: u64,
    objects: BTreeMap<(&'static str, String, String), Value>,
    history: Vec<Event>,
    /// Watches from a resourceVersion below this get `410 Expired`.
    oldest: u64,
    absent: BTreeSet<&'static str>,
}

/// Requests served, by type.
#[derive(Debug, Default)]
pub struct Counters {
    /// List requests.
    pub lists: AtomicU64,
    /// Watch requests.
    pub watches: AtomicU64,
    /// Watches answered with a 410 Expired ERROR event.
    pub expired: AtomicU64,
    /// Watches that asked for a streaming list (`sendInitialEvents=true`).
    pub streaming: AtomicU64,
    /// Writes that changed an object (create, replace, patch, delete through the API).
    pub writes: AtomicU64,
}

/// The running stand-in.
#[derive(Clone)]
pub struct ApiServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<Event>,
    drop_watches: Arc<watch::Sender<u64>>,
    /// Status writes still to refuse (see [`ApiServer::refuse_status_writes`]).
    refused_status_writes: Arc<AtomicU64>,
    /// Whether status writes are left unanswered (see [`ApiServer::hold_status_writes`]).
    held_status_writes: Arc<std::sync::atomic::AtomicBool>,
    /// What it served.
    pub counters: Arc<Counters>,
}

impl ApiServer {
    /// Starts on 127.0.0.1 (an ephemeral port), serving every kind.
    pub async fn start() -> ApiServer {
        Self::start_without(&[]).await
    }

    /// Starts with the kinds in `absent` unserved (404), as when their CRD is missing.
    pub async fn start_without(absent: &[&str]) -> ApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (events, _) = broadcast::channel(4096);
        let server = ApiServer {
            addr,
            state: Arc::new(Mutex::new(State {
                rv: 100,
                objects: BTreeMap::new(),
                history: Vec::new(),
                oldest: 0,
                absent: absent.iter().map(|k| kind_by_name(k).plural).collect(),
            })),
            events,
            drop_watches: Arc::new(watch::channel(0).0),
            refused_status_writes: Arc::default(),
            held_status_writes: Arc::default(),
            counters: Arc::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(s.serve(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates or replaces an object (its `apiVersion`/`kind` say which store).
    pub fn apply(&self, mut object: Value) {
        let kind = kind_by_name(object["kind"].as_str().expect("kind"));
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        let mut st = self.state.lock().unwrap();
        st.rv += 1;
        let rv = st.rv;
        let key = (kind.plural, ns, name.clone());
        let ty = if st.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        object["apiVersion"] = json!(kind.api_version);
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        object["metadata"]["uid"] = json!(format!("uid-{}-{name}", kind.plural));
        st.objects.insert(key, object.clone());
        self.record(
            &mut st,
            Event {
                rv,
                plural: kind.plural,
                kind: kind.kind,
                ty,
                object,
            },
        );
    }

    /// Deletes an object.
    pub fn delete(&self, kind: &str, ns: &str, name: &str) {
        let kind = kind_by_name(kind);
        let mut st = self.state.lock().unwrap();
        let Some(mut object) = st
            .objects
            .remove(&(kind.plural, ns.to_string(), name.to_string()))
        else {
            return;
        };
        st.rv += 1;
        let rv = st.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record(
            &mut st,
            Event {
                rv,
                plural: kind.plural,
                kind: kind.kind,
                ty: "DELETED",
                object,
            },
        );
    }

    fn record(&self, st: &mut State, ev: Event) {
        st.history.push(ev.clone());
        let _ = self.events.send(ev);
    }

    /// Forgets the event history (like etcd compaction): a watch resumed from any
    /// resourceVersion seen so far gets `410 Expired` and must relist.
    pub fn compact(&self) {
        let mut st = self.state.lock().unwrap();
        st.oldest = st.rv + 1;
        st.history.clear();
    }

    /// Answers the next `n` writes to a `/status` subresource with `500 InternalError`,
    /// as a real API server does when etcd times out. (Not a 503 or 429: kube's client
    /// waits those out itself, up to fifteen times.)
    pub fn refuse_status_writes(&self, n: u64) {
        self.refused_status_writes.store(n, Ordering::SeqCst);
    }

    /// Leaves writes to a `/status` subresource unanswered while `hold` is true, as an
    /// API server that accepted the connection and stalls.
    pub fn hold_status_writes(&self, hold: bool) {
        self.held_status_writes.store(hold, Ordering::SeqCst);
    }

    /// Waits while status writes are held.
    async fn while_status_writes_held(&self) {
        while self.held_status_writes.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Whether this status write is one to refuse (counting it down).
    fn refuses_status_write(&self) -> bool {
        self.refused_status_writes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Ends every open watch stream (the connection stays usable).
    pub fn drop_watches(&self) {
        self.drop_watches.send_modify(|g| *g += 1);
    }

    fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let params: BTreeMap<String, String> =
            req.uri().query().map(form_pairs).unwrap_or_default();
        let Some((kind, ns)) = route(&path) else {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("no handler for {path}"),
            );
        };
        if self.state.lock().unwrap().absent.contains(kind.plural) {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
        let selector = Selector {
            fields: params.get("fieldSelector").cloned().unwrap_or_default(),
            labels: params.get("labelSelector").cloned().unwrap_or_default(),
        };
        if matches!(params.get("watch").map(String::as_str), Some("true" | "1")) {
            self.counters.watches.fetch_add(1, Ordering::Relaxed);
            self.watch(kind, ns, selector, &params)
        } else {
            self.counters.lists.fetch_add(1, Ordering::Relaxed);
            let st = self.state.lock().unwrap();
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|((p, o_ns, _), o)| {
                    *p == kind.plural
                        && ns.as_ref().is_none_or(|n| n == o_ns)
                        && selected(o, &selector)
                })
                .map(|(_, o)| o.clone())
                .collect();
            let body = json!({
                "apiVersion": kind.api_version,
                "kind": format!("{}List", kind.kind),
                "metadata": {"resourceVersion": st.rv.to_string()},
                "items": items,
            });
            json_response(StatusCode::OK, &body)
        }
    }

    fn watch(
        &self,
        kind: Kind,
        ns: Option<String>,
        selector: Selector,
        params: &BTreeMap<String, String>,
    ) -> Response<Body> {
        let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(256);
        let mut drop_rx = self.drop_watches.subscribe();
        let wants = move |e: &Event| {
            e.plural == kind.plural
                && ns
                    .as_ref()
                    .is_none_or(|n| e.object["metadata"]["namespace"].as_str() == Some(n.as_str()))
                && selected(&e.object, &selector)
        };
        // Under the lock: subscribe, and decide what to send first, so nothing falls
        // between the replay and the live events.
        let (mut sub, initial, mut last) = {
            let st = self.state.lock().unwrap();
            let sub = self.events.subscribe();
            let mut initial = Vec::new();
            let rv_param = params
                .get("resourceVersion")
                .map(String::as_str)
                .unwrap_or("");
            if params.get("sendInitialEvents").map(String::as_str) == Some("true") {
                self.counters.streaming.fetch_add(1, Ordering::Relaxed);
                for ((p, _, _), o) in &st.objects {
                    let ev = Event {
                        rv: 0,
                        plural: p,
                        kind: kind.kind,
                        ty: "ADDED",
                        object: o.clone(),
                    };
                    if wants(&ev) {
                        initial.push(json!({"type": "ADDED", "object": o}));
                    }
                }
                initial.push(json!({"type": "BOOKMARK", "object": {
                    "apiVersion": kind.api_version, "kind": kind.kind,
                    "metadata": {"resourceVersion": st.rv.to_string(),
                                 "annotations": {"k8s.io/initial-events-end": "true"}}}}));
            } else if let Ok(from) = rv_param.parse::<u64>().map_err(|_| ()).and_then(|v| {
                if v == 0 {
                    Err(())
                } else {
                    Ok(v)
                }
            }) {
                if from < st.oldest {
                    self.counters.expired.fetch_add(1, Ordering::Relaxed);
                    let line = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                        "metadata": {}, "status": "Failure", "reason": "Expired", "code": 410,
                        "message": format!("too old resource version: {from} ({})", st.oldest)}});
                    return json_lines(vec![line]);
                }
                for e in st.history.iter().filter(|e| e.rv > from && wants(e)) {
                    initial.push(json!({"type": e.ty, "object": e.object}));
                }
            }
            (sub, initial, st.rv)
        };
        tokio::spawn(async move {
            for line in initial {
                if tx.send(Ok(Frame::data(line_bytes(&line)))).await.is_err() {
                    return;
                }
            }
            loop {
                tokio::select! {
                    ev = sub.recv() => match ev {
                        Ok(e) if e.rv > last && wants(&e) => {
                            last = e.rv;
                            let line = json!({"type": e.ty, "object": e.object});
                            if tx.send(Ok(Frame::data(line_bytes(&line)))).await.is_err() { return; }
                        }
                        Ok(_) => {}
                        // Lagged or closed: end the stream; the client resumes from
                        // its last resourceVersion and the history fills the gap.
                        Err(_) => return,
                    },
                    _ = drop_rx.changed() => return,
                }
            }
        });
        Response::builder()
            .header("content-type", "application/json")
            .body(StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed())
            .unwrap()
    }
}

/// The kind and namespace of `/api/v1/[namespaces/NS/]PLURAL` or
/// `/apis/GROUP/VERSION/[namespaces/NS/]PLURAL`.
fn route(path: &str) -> Option<(Kind, Option<String>)> {
    for k in all_kinds() {
        let p = prefix(k.api_version);
        let Some(rest) = path.strip_prefix(&p) else {
            continue;
        };
        if rest == format!("/{}", k.plural) {
            return Some((*k, None));
        }
        if let Some(ns_rest) = rest.strip_prefix("/namespaces/") {
            if let Some((ns, plural)) = ns_rest.split_once('/') {
                if plural == k.plural && k.namespaced {
                    return Some((*k, Some(ns.to_string())));
                }
            }
        }
    }
    None
}

/// A request's field and label selectors.
#[derive(Debug, Clone, Default)]
struct Selector {
    fields: String,
    labels: String,
}

/// Whether `object` passes both selectors.
fn selected(object: &Value, selector: &Selector) -> bool {
    fields_selected(object, &selector.fields) && labels_selected(object, &selector.labels)
}

/// `field=value` selectors, comma-separated, on dotted field paths.
fn fields_selected(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let Some((field, want)) = term.split_once('=') else {
            return true;
        };
        let mut v = object;
        for part in field.split('.') {
            v = &v[part];
        }
        v.as_str() == Some(want)
    })
}

/// Label selector terms, comma-separated outside parentheses, all of which must hold:
/// `key`, `!key`, `key=value` (or `==`), `key!=value`, `key in (a,b)`, `key notin (a,b)`.
/// A term the stand-in cannot read panics: a test must not pass on a selector ignored.
pub fn labels_selected(object: &Value, selector: &str) -> bool {
    let labels = &object["metadata"]["labels"];
    let label = |k: &str| labels[k].as_str();
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            let set = |rest: &str| -> Vec<String> {
                let inner = rest
                    .trim()
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .unwrap_or_else(|| panic!("bad set in label selector {term:?}"));
                inner.split(',').map(|v| v.trim().to_string()).collect()
            };
            if let Some(key) = term.strip_prefix('!') {
                return label(key.trim()).is_none();
            }
            if let Some((k, v)) = term.split_once("!=") {
                return label(k.trim()) != Some(v.trim());
            }
            if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                return label(k.trim()) == Some(v.trim());
            }
            if let Some((k, rest)) = term.split_once(" notin ") {
                return label(k.trim()).is_none_or(|v| !set(rest).iter().any(|s| s == v));
            }
            if let Some((k, rest)) = term.split_once(" in ") {
                return label(k.trim()).is_some_and(|v| set(rest).iter().any(|s| s == v));
            }
            assert!(
                term.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b)),
                "label selector term the stand-in cannot read: {term:?}"
            );
            label(term).is_some()
        })
}

fn form_pairs(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn line_bytes(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap()
}

fn json_lines(lines: Vec<Value>) -> Response<Body> {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)).boxed())
        .unwrap()
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "reason": reason, "message": message, "code": code.as_u16()}),
    )
}

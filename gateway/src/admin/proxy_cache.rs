//! Kong's `proxy-cache` admin endpoints: `DELETE /proxy-cache` (every entry),
//! `DELETE /proxy-cache/{cache_key}` and `GET /proxy-cache/{cache_key}` (one entry, in
//! every store), with Kong's `204` and `404 {"message":"Not found"}`; and
//! `GET /proxy-cache`, Pingway's: each store's bounds and counters.

use std::time::SystemTime;

use http::{Method, StatusCode};
use serde_json::json;

use super::Answer;
use crate::cache::store;

/// The endpoint's path.
pub const PATH: &str = "/proxy-cache";

/// Whether `path` is one of these endpoints.
pub fn matches(path: &str) -> bool {
    path == PATH
        || path
            .strip_prefix(PATH)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|key| !key.is_empty() && !key.contains('/'))
}

/// Answers one request to these endpoints (the method already checked).
pub async fn answer(method: &Method, path: &str) -> Answer {
    let key = path
        .strip_prefix(PATH)
        .and_then(|rest| rest.strip_prefix('/'));
    match (method, key) {
        (&Method::DELETE, None) => {
            for s in store::all_stores() {
                s.purge_all();
            }
            Answer::empty(StatusCode::NO_CONTENT)
        }
        (_, None) => {
            let mut stores: Vec<_> = store::all_stores()
                .into_iter()
                .map(|s| {
                    let stats = s.stats();
                    json!({
                        "dictionary_name": s.id().name,
                        "max_bytes": s.id().max_bytes,
                        "max_entries": s.id().max_entries,
                        "evicted_entries": stats.evicted_entries,
                        "evicted_bytes": stats.evicted_bytes,
                        "purged_entries": stats.purged_entries,
                    })
                })
                .collect();
            stores.sort_by(|a, b| {
                a["dictionary_name"]
                    .to_string()
                    .cmp(&b["dictionary_name"].to_string())
            });
            Answer::json(StatusCode::OK, &json!({ "stores": stores }))
        }
        (&Method::DELETE, Some(key)) => {
            let mut purged = false;
            for s in store::all_stores() {
                purged |= s.purge(key).await;
            }
            if purged {
                Answer::empty(StatusCode::NO_CONTENT)
            } else {
                Answer::error(StatusCode::NOT_FOUND, "Not found")
            }
        }
        (_, Some(key)) => {
            for s in store::all_stores() {
                if let Some(meta) = s.lookup(key).await {
                    let ttl = meta
                        .fresh_until()
                        .duration_since(SystemTime::now())
                        .map_or(0, |d| d.as_secs());
                    let header = meta.response_header();
                    return Answer::json(
                        StatusCode::OK,
                        &json!({
                            "key": key,
                            "dictionary_name": s.id().name,
                            "status": header.status.as_u16(),
                            "age": meta.age().as_secs(),
                            "ttl": ttl,
                            "fresh": meta.is_fresh(SystemTime::now()),
                        }),
                    );
                }
            }
            Answer::error(StatusCode::NOT_FOUND, "Not found")
        }
    }
}

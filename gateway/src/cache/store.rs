//! The `memory` strategy's stores: Pingora's in-memory storage behind an LRU eviction
//! manager bounded in bytes and in entries, one store per `memory.dictionary_name`
//! (and bounds).
//!
//! Pingora's cache takes its storage and eviction manager as `&'static` references, so a
//! store lives for the process: a reload that keeps a dictionary keeps its entries. The
//! number of stores is bounded by the distinct `(dictionary_name, max_bytes,
//! max_entries)` an operator ever configures, never by traffic.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use async_trait::async_trait;
use pingora_cache::eviction::simple_lru;
use pingora_cache::eviction::EvictionManager;
use pingora_cache::key::CacheKey;
use pingora_cache::storage::{
    HitHandler, MissHandler, PurgeOutcome, PurgeTarget, PurgeType, Storage,
};
use pingora_cache::trace::{Span, SpanHandle};
use pingora_cache::{CacheMeta, MemCache};
use pingora_error::Result;

/// What names a store: entries are shared by every route whose `proxy-cache` names the
/// same dictionary with the same bounds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreId {
    /// `memory.dictionary_name`.
    pub name: String,
    /// `memory.max_bytes`.
    pub max_bytes: u64,
    /// `memory.max_entries`.
    pub max_entries: u64,
}

/// One in-memory store with its LRU bound.
pub struct Store {
    id: StoreId,
    storage: Memory,
    lru: simple_lru::Manager,
    /// Folded into every key: `DELETE /proxy-cache` moves it on, so every older entry is
    /// unreachable at once; they leave memory as the LRU evicts them.
    generation: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("id", &self.id).finish()
    }
}

/// Counters of a store, for the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Entries the LRU bound evicted.
    pub evicted_entries: u64,
    /// Body bytes the LRU bound evicted.
    pub evicted_bytes: u64,
    /// Entries purged through the admin API.
    pub purged_entries: u64,
}

impl Store {
    fn new(id: StoreId) -> Store {
        let bytes = usize::try_from(id.max_bytes).unwrap_or(usize::MAX);
        let entries = usize::try_from(id.max_entries).unwrap_or(usize::MAX);
        Store {
            lru: simple_lru::Manager::new_with_watermark(bytes, Some(entries)),
            storage: Memory {
                inner: MemCache::new(),
                purged: AtomicU64::new(0),
            },
            generation: AtomicU64::new(0),
            id,
        }
    }

    /// The store's name and bounds.
    pub fn id(&self) -> &StoreId {
        &self.id
    }

    /// The Pingora cache key of the entry whose `X-Cache-Key` is `key`.
    pub fn cache_key(&self, key: &str) -> CacheKey {
        let generation = self.generation.load(Ordering::Acquire);
        CacheKey::new(format!("{generation}:{key}"), "")
    }

    /// The storage, as Pingora's cache takes it.
    pub fn storage(&'static self) -> &'static (dyn Storage + Sync) {
        &self.storage
    }

    /// The eviction manager, as Pingora's cache takes it.
    pub fn eviction(&'static self) -> &'static (dyn EvictionManager + Sync) {
        &self.lru
    }

    /// The entry stored under `key`, if any.
    pub async fn lookup(&'static self, key: &str) -> Option<CacheMeta> {
        let span = Span::inactive().handle();
        match self.storage.lookup(&self.cache_key(key), &span).await {
            Ok(Some((meta, _body))) => Some(meta),
            _ => None,
        }
    }

    /// Deletes the entry stored under `key`; whether there was one.
    pub async fn purge(&'static self, key: &str) -> bool {
        let compact = self.cache_key(key).to_compact();
        let span = Span::inactive().handle();
        let target = PurgeTarget::Active(&compact);
        match self
            .storage
            .purge(target, PurgeType::Invalidation, &span)
            .await
        {
            Ok(PurgeOutcome::Purged(id)) => {
                self.lru.remove(target.removed_entry(id));
                true
            }
            Ok(_) => false,
            Err(e) => {
                log::warn!("proxy-cache: purging from {:?} failed: {e}", self.id.name);
                false
            }
        }
    }

    /// Makes every entry unreachable (`DELETE /proxy-cache`); they are freed as the
    /// LRU evicts them.
    pub fn purge_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The store's counters.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            evicted_entries: self.lru.evicted_items() as u64,
            evicted_bytes: self.lru.evicted_size() as u64,
            purged_entries: self.storage.purged.load(Ordering::Relaxed),
        }
    }
}

/// Every store of the process, by id.
fn stores() -> &'static Mutex<HashMap<StoreId, &'static Store>> {
    static STORES: OnceLock<Mutex<HashMap<StoreId, &'static Store>>> = OnceLock::new();
    STORES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The store named by `id`, made (and kept for the process) the first time it is named.
pub fn store(id: StoreId) -> &'static Store {
    let mut map = stores().lock().unwrap_or_else(|e| e.into_inner());
    map.entry(id.clone())
        .or_insert_with(|| Box::leak(Box::new(Store::new(id))))
}

/// Every store made so far.
pub fn all_stores() -> Vec<&'static Store> {
    let map = stores().lock().unwrap_or_else(|e| e.into_inner());
    map.values().copied().collect()
}

/// Pingora's `MemCache`, with three changes: a response is not streamed to other
/// readers while it is being stored (so a body that outgrows the entry bound only stops
/// being cached, instead of failing the request), an entry still being written is not
/// offered to lookups, and purges are counted.
struct Memory {
    inner: MemCache,
    purged: AtomicU64,
}

#[async_trait]
impl Storage for Memory {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let inner: &'static MemCache = &self.inner;
        // MemCache offers an entry still being written (a partial hit) before a complete
        // one. Its fill may yet be abandoned (a body over the bound), which would cut
        // the reader's response short: such an entry is not offered (only partial hits
        // cannot seek), and the request goes upstream instead.
        match inner.lookup(key, trace).await? {
            Some((_, hit)) if !hit.can_seek() => Ok(None),
            found => Ok(found),
        }
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let inner: &'static MemCache = &self.inner;
        inner
            .lookup_streaming_write(key, streaming_write_tag, trace)
            .await
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let inner: &'static MemCache = &self.inner;
        inner.get_miss_handler(key, meta, trace).await
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        purge_type: PurgeType,
        trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let inner: &'static MemCache = &self.inner;
        let outcome = inner.purge(target, purge_type, trace).await?;
        if matches!(purge_type, PurgeType::Invalidation)
            && matches!(outcome, PurgeOutcome::Purged(_))
        {
            self.purged.fetch_add(1, Ordering::Relaxed);
        }
        Ok(outcome)
    }

    async fn expire(
        &'static self,
        target: PurgeTarget<'_>,
        trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let inner: &'static MemCache = &self.inner;
        inner.expire(target, trace).await
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &SpanHandle,
    ) -> Result<bool> {
        let inner: &'static MemCache = &self.inner;
        inner.update_meta(key, meta, trace).await
    }

    fn support_streaming_partial_write(&self) -> bool {
        false
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

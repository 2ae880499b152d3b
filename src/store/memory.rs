//! MemoryStore: sessions in this process, shared by every Lua state that names the same store.
//!
//! Expiry is exact to the millisecond on every read. Expired entries are reclaimed in expiry
//! order from an index, a bounded number per call, so no request waits for a sweep of the
//! whole store; `length()` and `all()` reclaim the rest first, each entry once (amortised O(1)).
//!
//! The owner index ("log out everywhere"): a session whose record names an owner (`__meta.owner`,
//! the `index` option's field) is listed under that owner with the time the store last wrote or
//! touched it, kept in step with every put, touch, removal and reclaim under the same lock. Its
//! entry carries a flag bit, so sessions without an owner cost nothing more and never have
//! their record parsed for it.

use crate::clock;
use crate::codec::meta::{self, META_KEY, Meta};
use crate::codec::{self, Changes, Record};
use crate::keyed::Keyed;
use crate::lifetime::{Assumed, Ttl};
use crate::store::{
    Id, Lifetime, Listed, Loaded, MAX_ID_LEN, Merged, Store, StoreError, StoreResult, Touched,
};
use hashbrown::HashTable;
use mlua::prelude::*;
use parking_lot::{Mutex, MutexGuard};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

/// At most this many expired entries are reclaimed by one get/set/touch/destroy: enough to
/// keep up (every session costs at least one set), small enough that no request waits long.
const RECLAIM_PER_CALL: usize = 8;

/// `length()` and `all()` reclaim every expired entry, this many at a time, letting other
/// threads of a shared store in between: a million expired entries take about 0.4 s to sweep.
const RECLAIM_CHUNK: usize = 4096;

/// One session in one allocation, `[expiry: i64 LE][id length: u16 LE][id][record]`, so a
/// session costs its id and payload plus one allocation header, a 16-byte table slot and an
/// expiry index entry. The id length's top bit says the session is in the owner index.
struct Entry {
    bytes: Box<[u8]>,
}

const HEAD: usize = 10;
/// The id length's top bit: this entry is listed under the owner its record names. Ids are at
/// most `MAX_ID_LEN` (4096) bytes, so the bit is free.
const OWNED: u16 = 0x8000;
const _: () = assert!(MAX_ID_LEN < OWNED as usize);

impl Entry {
    /// Allocated fallibly: `data` is as large as a session gets.
    fn new(id: &[u8], data: &[u8], expires_ms: i64, owned: bool) -> Result<Entry, codec::NoMemory> {
        let mut bytes = Vec::new();
        codec::reserve(&mut bytes, HEAD + id.len() + data.len())?;
        bytes.extend_from_slice(&expires_ms.to_le_bytes());
        let len = id.len() as u16 & !OWNED | if owned { OWNED } else { 0 };
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(id);
        bytes.extend_from_slice(data);
        Ok(Entry {
            bytes: bytes.into_boxed_slice(),
        })
    }

    fn expires_ms(&self) -> i64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.bytes[..8]);
        i64::from_le_bytes(b)
    }

    fn set_expires_ms(&mut self, ms: i64) {
        self.bytes[..8].copy_from_slice(&ms.to_le_bytes());
    }

    fn id_len(&self) -> usize {
        (u16::from_le_bytes([self.bytes[8], self.bytes[9]]) & !OWNED) as usize
    }

    fn owned(&self) -> bool {
        u16::from_le_bytes([self.bytes[8], self.bytes[9]]) & OWNED != 0
    }

    fn id(&self) -> &[u8] {
        &self.bytes[HEAD..HEAD + self.id_len()]
    }

    fn data(&self) -> &[u8] {
        &self.bytes[HEAD + self.id_len()..]
    }
}

/// owner -> (id -> when the store last wrote or touched that session, ms).
type Owners = HashMap<String, HashMap<Box<[u8]>, i64, Keyed>, Keyed>;

/// The owner an entry is listed under: only a flagged entry has one, and only then is its
/// record read for it.
fn owner_of(e: &Entry) -> Option<String> {
    if e.owned() {
        Meta::of_record(e.data()).owner
    } else {
        None
    }
}

fn list(owners: &mut Owners, owner: &str, id: &[u8], seen: i64) {
    match owners.get_mut(owner) {
        Some(ids) => match ids.get_mut(id) {
            Some(at) => *at = seen,
            None => {
                ids.insert(id.into(), seen);
            }
        },
        None => {
            let mut ids = HashMap::with_hasher(owners.hasher().clone());
            ids.insert(id.into(), seen);
            owners.insert(owner.to_string(), ids);
        }
    }
}

/// Takes `id` off `owner`'s list; an owner with no sessions left is dropped (memory stays
/// bounded by the live sessions).
fn unlist(owners: &mut Owners, owner: &str, id: &[u8]) {
    if let Some(ids) = owners.get_mut(owner) {
        ids.remove(id);
        if ids.is_empty() {
            owners.remove(owner);
        }
    }
}

struct Inner {
    table: HashTable<Entry>,
    /// (expiry, id hash), in expiry order: what to reclaim next without a scan.
    by_expiry: BTreeSet<(i64, u64)>,
    hasher: Keyed,
    /// The owner index: exactly the flagged entries, under the owner their record names.
    owners: Owners,
}

impl Inner {
    /// Fails only when the OS random source does (the hash key).
    fn new() -> Result<Inner, String> {
        let hasher = Keyed::new()?;
        Ok(Inner {
            table: HashTable::new(),
            by_expiry: BTreeSet::new(),
            owners: HashMap::with_hasher(hasher.clone()),
            hasher,
        })
    }

    fn hash(&self, id: &[u8]) -> u64 {
        self.hasher.hash_one(id)
    }

    /// Reclaims up to `limit` expired entries; whether none is left.
    fn reclaim(&mut self, now: i64, limit: usize) -> bool {
        for _ in 0..limit {
            let (exp, h) = match self.by_expiry.first() {
                Some(&(exp, h)) if exp <= now => (exp, h),
                _ => return true,
            };
            self.by_expiry.pop_first();
            // Every entry under this index key (two ids with one 64-bit hash and one expiry
            // share it). The table only pre-filters by 7 bits of the hash, so the hash itself
            // is part of the match.
            let hasher = &self.hasher;
            while let Ok(e) = self
                .table
                .find_entry(h, |e| e.expires_ms() == exp && hasher.hash_one(e.id()) == h)
            {
                let (old, _) = e.remove();
                if let Some(owner) = owner_of(&old) {
                    unlist(&mut self.owners, &owner, old.id());
                }
            }
        }
        !matches!(self.by_expiry.first(), Some(&(exp, _)) if exp <= now)
    }

    #[cfg(test)]
    fn find(&self, id: &[u8]) -> Option<&Entry> {
        self.table.find(self.hash(id), |e| e.id() == id)
    }

    fn live(&self, id: &[u8], now: i64) -> Option<&Entry> {
        self.live_hashed(self.hash(id), id, now)
    }

    /// `live`, with `h` the id's hash, for a caller that writes the id next (`put_hashed`).
    fn live_hashed(&self, h: u64, id: &[u8], now: i64) -> Option<&Entry> {
        self.table
            .find(h, |e| e.id() == id)
            .filter(|e| e.expires_ms() > now)
    }

    /// Stores `merged` under `id` (hash `h`) for `ttl` seconds as a merge does, once
    /// `merge_fits` passed it: listed under its owner, which is read (`reads_owner`) only when
    /// the session had one or the write changed its bookkeeping (a login, a logout).
    fn put_merged(
        &mut self,
        h: u64,
        id: &[u8],
        merged: &Record,
        ttl: u64,
        reads_owner: bool,
        now: i64,
    ) -> StoreResult<()> {
        let owner = if reads_owner {
            Meta::of_record(&merged.0).owner
        } else {
            None
        };
        self.put_hashed(h, id, &merged.0, expiry(now, ttl), owner.as_deref(), now)
            .map_err(|_| no_memory("merge", merged.0.len()))
    }

    /// Drops the index key (exp, h) unless another id with that very hash still needs it.
    fn unindex(&mut self, exp: i64, h: u64, id: &[u8]) {
        let hasher = &self.hasher;
        let shared = self.table.find(h, |e| {
            e.expires_ms() == exp && e.id() != id && hasher.hash_one(e.id()) == h
        });
        if shared.is_none() {
            self.by_expiry.remove(&(exp, h));
        }
    }

    /// Stores `data` under `id`, listed under `owner` (seen `now`) when it has one; an owner the
    /// entry had before and no longer has stops listing it.
    fn put(
        &mut self,
        id: &[u8],
        data: &[u8],
        expires_ms: i64,
        owner: Option<&str>,
        now: i64,
    ) -> Result<(), codec::NoMemory> {
        self.put_hashed(self.hash(id), id, data, expires_ms, owner, now)
    }

    /// `put`, with `h` the id's hash (`hash(id)`), for a caller that looked the id up first.
    fn put_hashed(
        &mut self,
        h: u64,
        id: &[u8],
        data: &[u8],
        expires_ms: i64,
        owner: Option<&str>,
        now: i64,
    ) -> Result<(), codec::NoMemory> {
        let entry = Entry::new(id, data, expires_ms, owner.is_some())?;
        let before = match self.table.find_mut(h, |e| e.id() == id) {
            Some(slot) => {
                let old = std::mem::replace(slot, entry);
                let before = owner_of(&old);
                self.unindex(old.expires_ms(), h, id);
                before
            }
            None => {
                let hasher = &self.hasher;
                self.table
                    .insert_unique(h, entry, |e| hasher.hash_one(e.id()));
                None
            }
        };
        self.by_expiry.insert((expires_ms, h));
        if let Some(before) = before.as_deref()
            && Some(before) != owner
        {
            unlist(&mut self.owners, before, id);
        }
        if let Some(owner) = owner {
            list(&mut self.owners, owner, id, now);
        }
        Ok(())
    }

    /// Removes the entry; returns its expiry (ms) when there was one.
    fn remove(&mut self, id: &[u8]) -> Option<i64> {
        let h = self.hash(id);
        let e = self.table.find_entry(h, |e| e.id() == id).ok()?;
        let (old, _) = e.remove();
        let expires = old.expires_ms();
        self.unindex(expires, h, id);
        if let Some(owner) = owner_of(&old) {
            unlist(&mut self.owners, &owner, id);
        }
        Some(expires)
    }

    /// A new expiry; an owned session is also seen `now`.
    fn retime(&mut self, id: &[u8], expires_ms: i64, now: i64) {
        let h = self.hash(id);
        if let Some(e) = self.table.find_mut(h, |e| e.id() == id) {
            let old = e.expires_ms();
            e.set_expires_ms(expires_ms);
            let owner = owner_of(e);
            self.unindex(old, h, id);
            self.by_expiry.insert((expires_ms, h));
            if let Some(owner) = owner {
                list(&mut self.owners, &owner, id, now);
            }
        }
    }

    /// `owner`'s live sessions, most recently seen first; ids `regenerate` retired are left
    /// out (they stay listed for `destroy_all`). An expired one still here is reclaimed now.
    fn sessions_of(&mut self, owner: &str, now: i64) -> Vec<Listed> {
        let Some(ids) = self.owners.get(owner) else {
            return Vec::new();
        };
        let ids: Vec<(Box<[u8]>, i64)> = ids.iter().map(|(id, at)| (id.clone(), *at)).collect();
        let mut out = Vec::with_capacity(ids.len());
        for (id, seen) in ids {
            match self.live(&id, now) {
                Some(e) => {
                    let meta = Meta::of_record(e.data());
                    if meta.stale.is_none() {
                        out.push(Listed {
                            id: id.into_vec(),
                            created_ms: meta.created,
                            last_seen_ms: seen,
                        });
                    }
                }
                None => {
                    if self.remove(&id).is_none() {
                        unlist(&mut self.owners, owner, &id);
                    }
                }
            }
        }
        Listed::order(&mut out);
        out
    }

    /// Removes every session of `owner` but `except` (retired ids too); returns how many live
    /// ones it removed.
    fn destroy_all(&mut self, owner: &str, except: Option<&[u8]>, now: i64) -> usize {
        let Some(ids) = self.owners.get(owner) else {
            return 0;
        };
        let doomed: Vec<Box<[u8]>> = ids
            .keys()
            .filter(|id| Some(&***id) != except)
            .cloned()
            .collect();
        doomed
            .iter()
            .filter(|id| self.remove(id).is_some_and(|expires| expires > now))
            .count()
    }
}

/// A handle to one in-process store; clones share it.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

fn no_memory(method: &'static str, bytes: usize) -> StoreError {
    StoreError::new(
        "MemoryStore",
        method,
        format!("not enough memory for a session of {bytes} bytes"),
    )
}

/// A merged session within `max` (maxSize; see `MemoryStore::merge_record`), or the merge's
/// refusal.
fn merge_fits(merged: &Record, max: usize) -> StoreResult<()> {
    if meta::within_max(&merged.0, max) {
        return Ok(());
    }
    Err(StoreError::new(
        "MemoryStore",
        "merge",
        codec::merged_larger_than_max(merged.0.len(), max),
    ))
}

fn expiry(now: i64, ttl: u64) -> i64 {
    now.saturating_add((ttl as i64).saturating_mul(1000))
}

impl MemoryStore {
    /// Fails only when the OS random source does (its hash key), with the reason.
    pub fn new() -> Result<Self, String> {
        Ok(MemoryStore {
            inner: Arc::new(Mutex::new(Inner::new()?)),
        })
    }

    /// The store registered under `name` in this process, made on first use, so several Lua
    /// states (threads) can share sessions. It lives as long as the process: a thread (Lua
    /// state) that exits and drops every handle it had does not take the sessions with it.
    /// Names are compared byte for byte (a Lua string need not be UTF-8).
    pub fn shared(name: &[u8]) -> Result<Self, String> {
        /// Name (bytes) -> store. A few names: ordered, so no hash key is needed.
        type Named = BTreeMap<Vec<u8>, MemoryStore>;
        static NAMED: OnceLock<Mutex<Named>> = OnceLock::new();
        let mut named = NAMED.get_or_init(Default::default).lock();
        if let Some(store) = named.get(name) {
            return Ok(store.clone());
        }
        let store = MemoryStore::new()?;
        named.insert(name.to_vec(), store.clone());
        Ok(store)
    }

    /// A copy of the live session's record, allocated fallibly (it is as large as a
    /// session gets).
    pub fn get_record(&self, id: &str) -> StoreResult<Option<Record>> {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, RECLAIM_PER_CALL);
        match inner.live(id.as_bytes(), now) {
            Some(e) => match codec::try_copy(e.data()) {
                Ok(bytes) => Ok(Some(Record(bytes))),
                Err(_) => Err(no_memory("get", e.data().len())),
            },
            None => Ok(None),
        }
    }

    /// Stores a whole session; `owner` is the one its record names (`__meta.owner`).
    pub fn set_record(
        &self,
        id: &str,
        record: &Record,
        ttl: u64,
        owner: Option<&str>,
    ) -> StoreResult<()> {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, RECLAIM_PER_CALL);
        inner
            .put(id.as_bytes(), &record.0, expiry(now, ttl), owner, now)
            .map_err(|_| no_memory("set", record.0.len()))
    }

    /// Merges `changes` into the live session; `Gone` when it is gone or retired. A merged
    /// session larger than `max` (maxSize; a retirement's mark not counted, see
    /// `meta::within_max`) is refused and nothing is written: other requests' writes since
    /// this one's load made it too large, and stored it could not be loaded again (the engine
    /// refuses a record past maxSize) until it expired. It lives `ttl` seconds, or, where the
    /// stored bookkeeping is not what the merge assumed (`assumed`: another request changed
    /// the session's lifetime since this one loaded it), for the lifetime it keeps.
    pub fn merge_record(
        &self,
        id: &str,
        changes: &Changes,
        ttl: u64,
        assumed: Option<&Assumed>,
        max: usize,
    ) -> StoreResult<Merged> {
        let rewrites_meta = changes.touches(META_KEY.as_bytes());
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, RECLAIM_PER_CALL);
        // One hash of the id for the lookup and the write.
        let h = inner.hash(id.as_bytes());
        let (merged, owned, kept) = match inner.live_hashed(h, id.as_bytes(), now) {
            Some(e) => {
                // One walk for the retirement and the lifetime.
                let stored = Meta::of_record(e.data());
                // An id `regenerate` retired is never written again.
                if stored.stale.is_some() {
                    return Ok(Merged::Gone);
                }
                // A merge that assumed a lifetime keeps the stored one, also inside a `__meta`
                // it rewrites for another field.
                let (merged, rewritten) =
                    meta::merged(e.data(), &stored, changes, assumed.is_some()).map_err(|e| {
                        StoreError::new("MemoryStore", "merge", crate::error::message(&e))
                    })?;
                let after = rewritten.as_ref().unwrap_or(&stored);
                (
                    merged,
                    e.owned(),
                    assumed.and_then(|a| a.kept(after.max_age, after.created, now)),
                )
            }
            None => return Ok(Merged::Gone),
        };
        merge_fits(&merged, max)?;
        let ttl = kept.map_or(ttl, |k| k.ttl);
        inner.put_merged(h, id.as_bytes(), &merged, ttl, owned || rewrites_meta, now)?;
        Ok(Merged::Written(None, kept))
    }

    /// `full` over the live session when it still holds exactly `loaded` (see
    /// `Store::write_if_unchanged`): `Some(true)` written, `Some(false)` gone or retired, `None`
    /// when it holds something else (the caller merges). What `merge_record` would store and
    /// index, since merging the changes from `loaded` to `full` into `loaded` gives `full`.
    pub fn write_if_holds(
        &self,
        id: &str,
        loaded: &[u8],
        full: &Record,
        ttl: u64,
        max: usize,
    ) -> StoreResult<Option<bool>> {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, RECLAIM_PER_CALL);
        // One hash of the id for the lookup and the write.
        let h = inner.hash(id.as_bytes());
        let owned = match inner.live_hashed(h, id.as_bytes(), now) {
            None => return Ok(Some(false)),
            Some(e) if e.data() != loaded => return Ok(None),
            Some(e) => e.owned(),
        };
        let stored_meta = meta::meta_value(loaded);
        // An id `regenerate` retired is never written again.
        if stored_meta.is_some_and(|m| Meta::from_value(m).stale.is_some()) {
            return Ok(Some(false));
        }
        // The engine's encoder kept `full` within maxSize; checked as a merge checks.
        merge_fits(full, max)?;
        let rewrites_meta = stored_meta != meta::meta_value(&full.0);
        inner.put_merged(h, id.as_bytes(), full, ttl, owned || rewrites_meta, now)?;
        Ok(Some(true))
    }

    /// Removes a session; true when a live one was there.
    pub fn destroy_id(&self, id: &str) -> bool {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, RECLAIM_PER_CALL);
        inner
            .remove(id.as_bytes())
            .is_some_and(|expires| expires > now)
    }

    /// Refreshes a live session's expiry for `ttl` seconds, or, where the stored bookkeeping is
    /// not what the touch assumed (`assumed`), for the lifetime the session keeps; an expired
    /// or unknown id stays gone.
    pub fn touch_id(&self, id: &str, ttl: u64, assumed: Option<&Assumed>) -> Touched {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, RECLAIM_PER_CALL);
        let kept = match inner.live(id.as_bytes(), now) {
            None => return Touched::Gone,
            Some(e) => {
                let stored = Meta::of_record(e.data());
                // Its stale grace must not grow.
                if stored.stale.is_some() {
                    return Touched::Gone;
                }
                assumed.and_then(|a| a.kept(stored.max_age, stored.created, now))
            }
        };
        let ttl = kept.map_or(ttl, |k| k.ttl);
        inner.retime(id.as_bytes(), expiry(now, ttl), now);
        Touched::Alive(kept)
    }

    /// `owner`'s live sessions, most recently seen first (see `Inner::sessions_of`).
    pub fn sessions_of_owner(&self, owner: &str) -> Vec<Listed> {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, RECLAIM_PER_CALL);
        inner.sessions_of(owner, now)
    }

    /// Removes every session of `owner` but `except`; returns how many live ones it removed.
    pub fn destroy_owner(&self, owner: &str, except: Option<&str>) -> usize {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, RECLAIM_PER_CALL);
        inner.destroy_all(owner, except.map(str::as_bytes), now)
    }

    pub fn exists(&self, id: &str) -> bool {
        let now = clock::now_ms();
        self.inner.lock().live(id.as_bytes(), now).is_some()
    }

    /// The lock, once no entry is left expired (see `RECLAIM_CHUNK`).
    fn swept(&self) -> MutexGuard<'_, Inner> {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        while !inner.reclaim(now, RECLAIM_CHUNK) {
            MutexGuard::bump(&mut inner);
        }
        inner
    }

    pub fn ids(&self) -> Vec<Vec<u8>> {
        self.swept().table.iter().map(|e| e.id().to_vec()).collect()
    }

    pub fn len(&self) -> usize {
        self.swept().table.len()
    }

    pub fn clear(&self) {
        let mut inner = self.inner.lock();
        inner.table.clear();
        inner.by_expiry.clear();
        inner.owners.clear();
    }
}

impl Store for MemoryStore {
    fn name(&self) -> &'static str {
        "MemoryStore"
    }
    // `max`: the engine checks the record's size; MemoryStore holds records, nothing to parse.
    fn get(&self, id: Id, _max: usize) -> StoreResult<Option<Loaded>> {
        Ok(self.get_record(id.as_str())?.map(|record| Loaded {
            record,
            version: None,
        }))
    }
    fn set(&self, id: Id, record: &Record, life: &Lifetime) -> StoreResult<Option<String>> {
        // The engine's owner is the one it wrote into the record's bookkeeping.
        self.set_record(id.as_str(), record, life.ttl.seconds(), life.owner)?;
        Ok(None)
    }
    fn merge(
        &self,
        id: Id,
        changes: &Changes,
        _full: &Record,
        _base: Option<&str>,
        life: &Lifetime,
        max: usize,
    ) -> StoreResult<Merged> {
        self.merge_record(id.as_str(), changes, life.ttl.seconds(), life.assumed, max)
    }
    fn write_if_unchanged(
        &self,
        id: Id,
        loaded: &[u8],
        full: &Record,
        life: &Lifetime,
        max: usize,
    ) -> StoreResult<Option<Merged>> {
        let written = self.write_if_holds(id.as_str(), loaded, full, life.ttl.seconds(), max)?;
        Ok(written.map(|w| match w {
            true => Merged::Written(None, None),
            false => Merged::Gone,
        }))
    }
    fn destroy(&self, id: Id) -> StoreResult<bool> {
        Ok(self.destroy_id(id.as_str()))
    }
    fn touch(&self, id: Id, life: &Lifetime) -> StoreResult<Touched> {
        Ok(self.touch_id(id.as_str(), life.ttl.seconds(), life.assumed))
    }
    fn sessions_of(&self, owner: &str) -> StoreResult<Vec<Listed>> {
        Ok(self.sessions_of_owner(owner))
    }
    fn destroy_all(&self, owner: &str, except: Option<&str>) -> StoreResult<usize> {
        Ok(self.destroy_owner(owner, except))
    }
}

/// An id argument from Lua, checked once here: a UTF-8 string (a number is taken as Lua
/// would print it) of 1 to MAX_ID_LEN bytes.
fn id_arg(lua: &Lua, v: LuaValue) -> LuaResult<String> {
    let what = crate::codec::a_type(&v);
    let Some(s) = lua.coerce_string(v)? else {
        return Err(LuaError::runtime(format!(
            "honeymoon_session: MemoryStore ids must be strings of 1 to {MAX_ID_LEN} bytes, got {what}"
        )));
    };
    let Ok(id) = s.to_str().map(|id| id.to_string()) else {
        return Err(LuaError::runtime(
            "honeymoon_session: MemoryStore ids must be UTF-8, got a string that is not",
        ));
    };
    if Id::new(&id).is_none() {
        return Err(LuaError::runtime(format!(
            "honeymoon_session: MemoryStore ids must be 1 to {MAX_ID_LEN} bytes long, got {} bytes",
            id.len()
        )));
    }
    Ok(id)
}

/// The data argument of `set`: a table (its values are checked as it is encoded).
fn data_arg(v: LuaValue) -> LuaResult<LuaTable> {
    crate::store::data_arg("MemoryStore", v)
}

/// A TTL argument from Lua, checked once here: whole seconds; nil means a day.
fn ttl_arg(v: LuaValue) -> LuaResult<u64> {
    crate::store::ttl_arg("MemoryStore", v).map(Ttl::seconds)
}

impl LuaUserData for MemoryStore {
    fn add_methods<M: LuaUserDataMethods<Self>>(m: &mut M) {
        m.add_method("get", |lua, s, id: LuaValue| {
            match s.get_record(&id_arg(lua, id)?)? {
                Some(r) => r.data_table(lua).map(LuaValue::Table),
                None => Ok(LuaValue::Nil),
            }
        });
        m.add_method(
            "set",
            |lua, s, (id, data, ttl): (LuaValue, LuaValue, LuaValue)| {
                let id = id_arg(lua, id)?;
                let record = Record::from_table(lua, &data_arg(data)?)?;
                // Called directly, the owner is whatever `data.__meta.owner` says.
                let owner = Meta::of_record(&record.0).owner;
                Ok(s.set_record(&id, &record, ttl_arg(ttl)?, owner.as_deref())?)
            },
        );
        m.add_method("destroy", |lua, s, id: LuaValue| {
            s.destroy_id(&id_arg(lua, id)?);
            Ok(())
        });
        m.add_method("touch", |lua, s, (id, ttl): (LuaValue, LuaValue)| {
            let touched = s.touch_id(&id_arg(lua, id)?, ttl_arg(ttl)?, None);
            Ok(matches!(touched, Touched::Alive(_)))
        });
        m.add_method("exists", |lua, s, id: LuaValue| {
            Ok(s.exists(&id_arg(lua, id)?))
        });
        m.add_method("all", |lua, s, ()| {
            let ids = s.ids();
            let t = lua.create_table_with_capacity(ids.len(), 0)?;
            for (i, id) in ids.iter().enumerate() {
                t.raw_set(i + 1, lua.create_string(id)?)?;
            }
            Ok(t)
        });
        m.add_method("length", |_, s, ()| Ok(s.len()));
        m.add_method("clear", |_, s, ()| {
            s.clear();
            Ok(())
        });
        m.add_method("sessionsOf", |lua, s, owner: LuaValue| {
            let owner = crate::store::owner_arg("MemoryStore", "sessionsOf", &owner)?;
            crate::store::listed_table(lua, Store::sessions_of(s, &owner)?)
        });
        m.add_method(
            "destroyAll",
            |_, s, (owner, except): (LuaValue, LuaValue)| {
                let owner = crate::store::owner_arg("MemoryStore", "destroyAll", &owner)?;
                let except = crate::store::except_arg("MemoryStore", &except)?;
                Ok(Store::destroy_all(s, &owner, except.as_deref())?)
            },
        );
    }
}

/// `MemoryStore(opts?)`: `{ shared = "name" }` joins the process-wide store of that name.
pub fn from_options(opts: Option<LuaTable>) -> LuaResult<MemoryStore> {
    let Some(opts) = opts else {
        return MemoryStore::new().map_err(LuaError::runtime);
    };
    // Read raw, as session()'s options are: an inherited `shared` would silently make a store
    // of this state's own.
    if let Some(msg) = crate::options::not_plain(&opts, "MemoryStore options")? {
        return Err(LuaError::runtime(format!("honeymoon_session: {msg}")));
    }
    let mut shared = None;
    for pair in opts.pairs::<LuaValue, LuaValue>() {
        match pair? {
            (LuaValue::String(k), LuaValue::String(v)) if k.as_bytes() == b"shared" => {
                shared = Some(v.as_bytes().to_vec());
            }
            (k, v) => {
                return Err(LuaError::runtime(format!(
                    "honeymoon_session: MemoryStore takes only {{ shared = \"name\" }}, got {} = {}",
                    crate::options::option_key("", &k),
                    crate::codec::a_type(&v)
                )));
            }
        }
    }
    match shared {
        Some(name) => MemoryStore::shared(&name),
        None => MemoryStore::new(),
    }
    .map_err(LuaError::runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: i64) -> Vec<u8> {
        let mut v = vec![b'I'];
        v.extend_from_slice(&n.to_le_bytes());
        v
    }

    /// A session record naming `owner` (created at 1000 ms), retired when `stale` is set.
    fn session(owner: Option<&str>, stale: Option<i64>) -> Vec<u8> {
        let empty = codec::Entries::default().into_record().unwrap();
        let meta = Meta {
            created: Some(1000),
            owner: owner.map(String::from),
            stale,
            ..Meta::default()
        };
        codec::meta::with_meta(&empty.0, &meta).unwrap().0
    }

    fn listed_ids(inner: &mut Inner, owner: &str, now: i64) -> Vec<Vec<u8>> {
        inner
            .sessions_of(owner, now)
            .into_iter()
            .map(|l| l.id)
            .collect()
    }

    #[test]
    fn owner_index_follows_puts_owner_changes_and_removal() {
        let mut inner = Inner::new().unwrap();
        let ann = session(Some("ann"), None);
        inner.put(b"a", &ann, 10_000, Some("ann"), 1).unwrap();
        inner.put(b"b", &ann, 10_000, Some("ann"), 2).unwrap();
        // No owner: never flagged, never in the index.
        inner
            .put(b"c", &session(None, None), 10_000, None, 3)
            .unwrap();
        assert!(!inner.find(b"c").unwrap().owned());
        assert_eq!(inner.owners.len(), 1);
        assert_eq!(
            listed_ids(&mut inner, "ann", 5),
            vec![b"b".to_vec(), b"a".to_vec()]
        );
        // A logout (no owner), then another user's login on the same id.
        inner
            .put(b"a", &session(None, None), 10_000, None, 6)
            .unwrap();
        assert!(!inner.find(b"a").unwrap().owned());
        assert_eq!(listed_ids(&mut inner, "ann", 7), vec![b"b".to_vec()]);
        inner
            .put(b"b", &session(Some("bob"), None), 10_000, Some("bob"), 8)
            .unwrap();
        assert!(
            !inner.owners.contains_key("ann"),
            "an owner with no sessions is dropped"
        );
        assert_eq!(listed_ids(&mut inner, "bob", 9), vec![b"b".to_vec()]);
        inner.remove(b"b");
        assert!(inner.owners.is_empty());
        assert_eq!(
            inner.find(b"a").map(|e| e.id().to_vec()),
            Some(b"a".to_vec())
        );
    }

    #[test]
    fn sessions_of_lists_by_last_seen_without_retired_or_expired_ids() {
        let mut inner = Inner::new().unwrap();
        let ann = session(Some("ann"), None);
        inner.put(b"old", &ann, 500, Some("ann"), 100).unwrap();
        inner.put(b"mid", &ann, 10_000, Some("ann"), 200).unwrap();
        inner.put(b"new", &ann, 10_000, Some("ann"), 300).unwrap();
        inner
            .put(
                b"retired",
                &session(Some("ann"), Some(9_000)),
                9_000,
                Some("ann"),
                400,
            )
            .unwrap();
        let list = inner.sessions_of("ann", 450);
        assert_eq!(
            list.iter().map(|l| l.id.clone()).collect::<Vec<_>>(),
            vec![b"new".to_vec(), b"mid".to_vec(), b"old".to_vec()]
        );
        assert_eq!(
            (list[0].created_ms, list[0].last_seen_ms),
            (Some(1000), 300)
        );
        // A touch is a sighting: "mid" moves to the front.
        inner.retime(b"mid", 10_000, 460);
        assert_eq!(listed_ids(&mut inner, "ann", 470)[0], b"mid".to_vec());
        // "old" expired at 500: not listed, and reclaimed (table, expiry index, owner index).
        assert_eq!(
            listed_ids(&mut inner, "ann", 600),
            vec![b"mid".to_vec(), b"new".to_vec()]
        );
        assert!(inner.find(b"old").is_none());
        assert_eq!(inner.owners["ann"].len(), 3, "the retired id stays listed");
        assert_eq!(inner.by_expiry.len(), inner.table.len());
    }

    #[test]
    fn destroy_all_ends_retired_ids_and_spares_the_one_kept() {
        let mut inner = Inner::new().unwrap();
        let ann = session(Some("ann"), None);
        inner.put(b"a", &ann, 10_000, Some("ann"), 1).unwrap();
        inner.put(b"b", &ann, 10_000, Some("ann"), 2).unwrap();
        inner
            .put(
                b"r",
                &session(Some("ann"), Some(5_000)),
                5_000,
                Some("ann"),
                3,
            )
            .unwrap();
        inner.put(b"gone", &ann, 50, Some("ann"), 4).unwrap();
        inner
            .put(b"bob", &session(Some("bob"), None), 10_000, Some("bob"), 5)
            .unwrap();
        // "gone" expired (not counted), "r" is retired (counted), "b" is kept.
        assert_eq!(inner.destroy_all("ann", Some(b"b"), 100), 2);
        assert_eq!(listed_ids(&mut inner, "ann", 100), vec![b"b".to_vec()]);
        assert!(inner.find(b"r").is_none() && inner.find(b"a").is_none());
        assert!(inner.find(b"bob").is_some());
        assert_eq!(inner.destroy_all("ann", None, 100), 1);
        assert_eq!(inner.destroy_all("nobody", None, 100), 0);
        assert!(!inner.owners.contains_key("ann"));
    }

    #[test]
    fn reclaim_takes_expired_sessions_off_their_owner() {
        let mut inner = Inner::new().unwrap();
        for i in 0..100u8 {
            let owner = if i % 2 == 0 { "ann" } else { "bob" };
            inner
                .put(
                    &[b's', i],
                    &session(Some(owner), None),
                    1000 + i64::from(i),
                    Some(owner),
                    0,
                )
                .unwrap();
        }
        inner.reclaim(1049, usize::MAX);
        assert_eq!(inner.owners["ann"].len() + inner.owners["bob"].len(), 50);
        inner.reclaim(i64::MAX, usize::MAX);
        assert!(inner.owners.is_empty(), "no owner outlives its sessions");
        assert!(inner.table.is_empty());
    }

    #[test]
    fn the_store_lists_by_owner_through_its_methods() {
        let store = MemoryStore::new().unwrap();
        let ann = Record(session(Some("ann"), None));
        store.set_record("x", &ann, 60, Some("ann")).unwrap();
        store.set_record("y", &ann, 60, Some("ann")).unwrap();
        // A merge that removes the bookkeeping (a logout) unlists.
        let logout = Changes {
            set: Vec::new(),
            removed: vec![META_KEY.as_bytes().to_vec()],
            keep_owner: false,
        };
        let written = |m: StoreResult<Merged>| matches!(m, Ok(Merged::Written(None, None)));
        assert!(written(store.merge_record(
            "x",
            &logout,
            60,
            None,
            usize::MAX
        )));
        let listed = Store::sessions_of(&store, "ann").unwrap();
        assert_eq!(
            listed.iter().map(|l| l.id.clone()).collect::<Vec<_>>(),
            vec![b"y".to_vec()]
        );
        // A merge that does not touch the bookkeeping keeps the owner.
        let write = Changes {
            set: vec![(b"k".to_vec(), vec![b'T'])], // true
            removed: Vec::new(),
            keep_owner: false,
        };
        assert!(written(store.merge_record(
            "y",
            &write,
            60,
            None,
            usize::MAX
        )));
        assert_eq!(Store::sessions_of(&store, "ann").unwrap().len(), 1);
        assert_eq!(Store::destroy_all(&store, "ann", Some("y")).unwrap(), 0);
        assert_eq!(Store::destroy_all(&store, "ann", None).unwrap(), 1);
        assert!(store.exists("x") && !store.exists("y"));
        store.clear();
        assert!(store.inner.lock().owners.is_empty());
    }

    /// A merge or touch that finds another lifetime stored than it assumed (another request
    /// set it since) keeps the session for that one, and says so, also a merge that rewrites
    /// the bookkeeping for another field; one without the assumption stores its own.
    #[test]
    fn merges_and_touches_keep_the_stored_lifetime() {
        use crate::lifetime::{Assumed, MaxAge, Rule};
        let store = MemoryStore::new().unwrap();
        let rule = Rule {
            ttl: 60,
            max_age: Some(60),
            absolute: None,
        };
        let assumed = Assumed::new(rule, None, None);
        let month = Meta {
            max_age: Some(MaxAge::Ms(2_592_000_000)),
            ..Meta::default()
        };
        let empty = codec::Entries::default().into_record().unwrap();
        let remembered = meta::with_meta(&empty.0, &month).unwrap();
        store.set_record("x", &remembered, 60, None).unwrap();
        let expires = |id: &str| {
            store
                .inner
                .lock()
                .find(id.as_bytes())
                .map(Entry::expires_ms)
        };
        let write = Changes {
            set: vec![(b"k".to_vec(), vec![b'T'])],
            removed: Vec::new(),
            keep_owner: false,
        };
        let before = clock::now_ms();
        let Ok(Merged::Written(None, Some(kept))) =
            store.merge_record("x", &write, 60, Some(&assumed), usize::MAX)
        else {
            panic!("the merge keeps the month");
        };
        assert_eq!(kept.max_age, Some(2_592_000));
        assert!(expires("x").unwrap() >= before + 2_592_000_000);
        let Touched::Alive(Some(kept)) = store.touch_id("x", 60, Some(&assumed)) else {
            panic!("the touch keeps the month");
        };
        assert_eq!(kept.ttl, 2_592_000);
        // As assumed: the TTL handed over, nothing kept.
        let as_stored = Assumed::new(rule, month.max_age, month.created);
        assert!(matches!(
            store.touch_id("x", 60, Some(&as_stored)),
            Touched::Alive(None)
        ));
        assert!(expires("x").unwrap() <= clock::now_ms() + 60_000);
        // A merge that rewrites the bookkeeping for another field (a creation time stamped),
        // assuming the lifetime it loaded, keeps the stored one inside the merged `__meta`.
        let stamped = Meta {
            created: Some(5),
            ..Meta::default()
        };
        let stamp = codec::diff(&empty.0, &meta::with_meta(&empty.0, &stamped).unwrap()).unwrap();
        let Ok(Merged::Written(None, Some(kept))) =
            store.merge_record("x", &stamp, 60, Some(&assumed), usize::MAX)
        else {
            panic!("the rewriting merge keeps the month");
        };
        assert_eq!(kept.max_age, Some(2_592_000));
        let stored =
            |id: &str| Meta::of_record(store.inner.lock().find(id.as_bytes()).unwrap().data());
        assert_eq!(
            (stored("x").max_age, stored("x").created),
            (month.max_age, Some(5))
        );
        // One whose request set the lifetime itself (here: none of its own; the engine drops
        // the assumption then) stores its own.
        let rewrite = codec::diff(&remembered.0, &empty).unwrap();
        assert!(matches!(
            store.merge_record("x", &rewrite, 60, None, usize::MAX),
            Ok(Merged::Written(None, None))
        ));
        assert_eq!(stored("x").max_age, None);
        assert!(matches!(
            store.touch_id("y", 60, Some(&assumed)),
            Touched::Gone
        ));
    }

    /// A record with `keys` (each true) and bookkeeping naming `owner`, retired when `stale`.
    fn record_of(keys: &[&str], owner: Option<&str>, stale: Option<i64>) -> Record {
        let mut entries = codec::Entries::default();
        for k in keys {
            entries.push(k.as_bytes(), b"T").unwrap();
        }
        let data = entries.into_record().unwrap();
        let meta = Meta {
            created: Some(1000),
            owner: owner.map(String::from),
            stale,
            ..Meta::default()
        };
        codec::meta::with_meta(&data.0, &meta).unwrap()
    }

    #[test]
    fn a_write_over_what_was_loaded_stores_what_a_merge_would() {
        // (loaded, full): a data write, a login (an owner added), a logout (removed), a write
        // under an owner, a key removed.
        let cases = [
            (
                record_of(&["a"], None, None),
                record_of(&["a", "b"], None, None),
            ),
            (
                record_of(&["a"], None, None),
                record_of(&["a"], Some("ann"), None),
            ),
            (
                record_of(&["a"], Some("ann"), None),
                record_of(&["a"], None, None),
            ),
            (
                record_of(&["a"], Some("ann"), None),
                record_of(&["a", "b"], Some("ann"), None),
            ),
            (
                record_of(&["a", "b"], Some("ann"), None),
                record_of(&["b"], Some("ann"), None),
            ),
        ];
        for (i, (loaded, full)) in cases.iter().enumerate() {
            let (merged, written) = (MemoryStore::new().unwrap(), MemoryStore::new().unwrap());
            for store in [&merged, &written] {
                let owner = Meta::of_record(&loaded.0).owner;
                store.set_record("s", loaded, 60, owner.as_deref()).unwrap();
            }
            let changes = codec::diff(&loaded.0, full).unwrap();
            assert!(matches!(
                merged.merge_record("s", &changes, 60, None, usize::MAX),
                Ok(Merged::Written(None, None))
            ));
            assert_eq!(
                written
                    .write_if_holds("s", &loaded.0, full, 60, usize::MAX)
                    .unwrap(),
                Some(true),
                "case {i}"
            );
            let held = |s: &MemoryStore| s.get_record("s").unwrap();
            assert_eq!(held(&written), held(&merged), "case {i}");
            assert_eq!(held(&written).as_ref(), Some(full), "case {i}");
            for owner in ["ann", "bob"] {
                assert_eq!(
                    Store::sessions_of(&written, owner).unwrap().len(),
                    Store::sessions_of(&merged, owner).unwrap().len(),
                    "case {i}, owner {owner}"
                );
            }
        }
    }

    #[test]
    fn a_write_over_what_was_loaded_leaves_other_versions_to_the_merge() {
        let store = MemoryStore::new().unwrap();
        let loaded = record_of(&["a"], None, None);
        let full = record_of(&["a", "b"], None, None);
        // Absent: gone, nothing written.
        assert_eq!(
            store
                .write_if_holds("s", &loaded.0, &full, 60, usize::MAX)
                .unwrap(),
            Some(false)
        );
        assert!(!store.exists("s"));
        // Another request wrote since the load: not this shortcut's to decide.
        let other = record_of(&["a", "c"], None, None);
        store.set_record("s", &other, 60, None).unwrap();
        assert_eq!(
            store
                .write_if_holds("s", &loaded.0, &full, 60, usize::MAX)
                .unwrap(),
            None
        );
        assert_eq!(store.get_record("s").unwrap(), Some(other));
        // Retired since (or when) loaded: never written again.
        let retired = record_of(&["a"], None, Some(5_000));
        store.set_record("s", &retired, 60, None).unwrap();
        assert_eq!(
            store
                .write_if_holds("s", &retired.0, &full, 60, usize::MAX)
                .unwrap(),
            Some(false)
        );
        assert_eq!(store.get_record("s").unwrap(), Some(retired));
        // Past maxSize: refused as a merge refuses, nothing written.
        store.set_record("s", &loaded, 60, None).unwrap();
        let err = store
            .write_if_holds("s", &loaded.0, &full, 60, 4)
            .unwrap_err();
        assert!(err.to_string().contains("MemoryStore"), "{err}");
        assert_eq!(store.get_record("s").unwrap(), Some(loaded));
    }

    #[test]
    fn index_follows_puts_retimes_and_removes() {
        let mut inner = Inner::new().unwrap();
        inner.put(b"a", &rec(1), 100, None, 0).unwrap();
        inner.put(b"b", &rec(2), 200, None, 0).unwrap();
        inner.put(b"a", &rec(3), 300, None, 0).unwrap(); // replace: old index key goes
        inner.retime(b"b", 400, 0);
        assert_eq!(inner.table.len(), 2);
        assert_eq!(inner.by_expiry.len(), 2);
        assert_eq!(inner.find(b"a").map(|e| e.data().to_vec()), Some(rec(3)));
        inner.remove(b"a");
        assert_eq!(inner.by_expiry.len(), 1);
        assert!(inner.find(b"a").is_none());
    }

    #[test]
    fn index_stays_one_to_one_when_ids_share_an_expiry() {
        // Many ids, one expiry instant, then all moved: 7-bit tag collisions between them must
        // not leave stale index keys behind (they did, growing memory under rolling sessions).
        let mut inner = Inner::new().unwrap();
        for i in 0..5000u32 {
            inner.put(&i.to_le_bytes(), &rec(1), 1000, None, 0).unwrap();
        }
        for round in 0..4 {
            for i in 0..5000u32 {
                inner.retime(&i.to_le_bytes(), 2000 + round, 0);
            }
        }
        assert_eq!(inner.by_expiry.len(), inner.table.len());
        inner.reclaim(i64::MAX, usize::MAX);
        assert_eq!(inner.table.len(), 0);
        assert!(inner.by_expiry.is_empty());
    }

    #[test]
    fn reclaims_in_expiry_order_and_at_most_the_limit() {
        let mut inner = Inner::new().unwrap();
        for i in 0..100u8 {
            inner
                .put(&[b'x', i], &rec(i as i64), 1000 + i as i64, None, 0)
                .unwrap();
        }
        assert!(!inner.reclaim(1049, 10), "40 expired entries are left");
        assert_eq!(inner.table.len(), 90);
        assert!(inner.find(&[b'x', 0]).is_none());
        assert!(inner.find(&[b'x', 10]).is_some());
        assert!(inner.reclaim(1049, 40), "the last 40: none left");
        assert_eq!(inner.table.len(), 50);
        assert!(inner.reclaim(1049, usize::MAX));
        assert!(inner.live(&[b'x', 50], 1049).is_some());
        assert!(
            inner.live(&[b'x', 50], 1050).is_none(),
            "expired at its instant"
        );
    }
}

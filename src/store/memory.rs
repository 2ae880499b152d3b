//! MemoryStore: sessions in this process, shared by every Lua state that names the same store.
//!
//! Expiry is exact to the millisecond on every read. Expired entries are reclaimed in expiry
//! order from an index, a bounded number per call, so no request waits for a sweep of the
//! whole store; `length()` and `all()` reclaim the rest first, each entry once (amortised O(1)).

use crate::clock;
use crate::codec::meta::Meta;
use crate::codec::{self, Changes, Record};
use crate::store::{Id, Lifetime, Loaded, MAX_ID_LEN, Merged, Store, StoreError, StoreResult, Ttl};
use hashbrown::HashTable;
use mlua::prelude::*;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, OnceLock};

/// At most this many expired entries are reclaimed by one get/set/touch/destroy: enough to
/// keep up (every session costs at least one set), small enough that no request waits long.
const RECLAIM_PER_CALL: usize = 8;

/// One session in one allocation, `[expiry: i64 LE][id length: u16 LE][id][record]`, so a
/// session costs its id and payload plus one allocation header, a 16-byte table slot and an
/// expiry index entry.
struct Entry {
    bytes: Box<[u8]>,
}

const HEAD: usize = 10;

impl Entry {
    /// Allocated fallibly: `data` is as large as a session gets.
    fn new(id: &[u8], data: &[u8], expires_ms: i64) -> Result<Entry, codec::NoMemory> {
        let mut bytes = Vec::new();
        codec::reserve(&mut bytes, HEAD + id.len() + data.len())?;
        bytes.extend_from_slice(&expires_ms.to_le_bytes());
        bytes.extend_from_slice(&(id.len() as u16).to_le_bytes());
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
        u16::from_le_bytes([self.bytes[8], self.bytes[9]]) as usize
    }

    fn id(&self) -> &[u8] {
        &self.bytes[HEAD..HEAD + self.id_len()]
    }

    fn data(&self) -> &[u8] {
        &self.bytes[HEAD + self.id_len()..]
    }
}

#[derive(Default)]
struct Inner {
    table: HashTable<Entry>,
    /// (expiry, id hash), in expiry order: what to reclaim next without a scan.
    by_expiry: BTreeSet<(i64, u64)>,
    hasher: RandomState,
}

impl Inner {
    fn hash(&self, id: &[u8]) -> u64 {
        self.hasher.hash_one(id)
    }

    fn reclaim(&mut self, now: i64, limit: usize) {
        for _ in 0..limit {
            let (exp, h) = match self.by_expiry.first() {
                Some(&(exp, h)) if exp <= now => (exp, h),
                _ => return,
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
                e.remove();
            }
        }
    }

    fn find(&self, id: &[u8]) -> Option<&Entry> {
        self.table.find(self.hash(id), |e| e.id() == id)
    }

    fn live(&self, id: &[u8], now: i64) -> Option<&Entry> {
        self.find(id).filter(|e| e.expires_ms() > now)
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

    fn put(&mut self, id: &[u8], data: &[u8], expires_ms: i64) -> Result<(), codec::NoMemory> {
        let h = self.hash(id);
        let entry = Entry::new(id, data, expires_ms)?;
        match self.table.find_mut(h, |e| e.id() == id) {
            Some(slot) => {
                let old = std::mem::replace(slot, entry).expires_ms();
                self.unindex(old, h, id);
            }
            None => {
                let hasher = &self.hasher;
                self.table
                    .insert_unique(h, entry, |e| hasher.hash_one(e.id()));
            }
        }
        self.by_expiry.insert((expires_ms, h));
        Ok(())
    }

    /// Removes the entry; returns its expiry (ms) when there was one.
    fn remove(&mut self, id: &[u8]) -> Option<i64> {
        let h = self.hash(id);
        let e = self.table.find_entry(h, |e| e.id() == id).ok()?;
        let (old, _) = e.remove();
        let expires = old.expires_ms();
        self.unindex(expires, h, id);
        Some(expires)
    }

    fn retime(&mut self, id: &[u8], expires_ms: i64) {
        let h = self.hash(id);
        if let Some(e) = self.table.find_mut(h, |e| e.id() == id) {
            let old = e.expires_ms();
            e.set_expires_ms(expires_ms);
            self.unindex(old, h, id);
            self.by_expiry.insert((expires_ms, h));
        }
    }
}

/// A handle to one in-process store; clones share it.
#[derive(Clone, Default)]
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

/// Whether a record is an id `regenerate` retired (readable during its stale grace only).
fn retired(record: &[u8]) -> bool {
    Meta::of_record(record).stale.is_some()
}

fn expiry(now: i64, ttl: u64) -> i64 {
    now.saturating_add((ttl as i64).saturating_mul(1000))
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The store registered under `name` in this process, made on first use, so several Lua
    /// states (threads) can share sessions. It lives as long as the process: a thread (Lua
    /// state) that exits and drops every handle it had does not take the sessions with it.
    pub fn shared(name: &str) -> Self {
        static NAMED: OnceLock<Mutex<HashMap<String, Arc<Mutex<Inner>>>>> = OnceLock::new();
        let mut named = NAMED.get_or_init(Default::default).lock();
        let inner = named.entry(name.to_string()).or_default();
        MemoryStore {
            inner: Arc::clone(inner),
        }
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

    pub fn set_record(&self, id: &str, record: &Record, ttl: u64) -> StoreResult<()> {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, RECLAIM_PER_CALL);
        inner
            .put(id.as_bytes(), &record.0, expiry(now, ttl))
            .map_err(|_| no_memory("set", record.0.len()))
    }

    pub fn merge_record(&self, id: &str, changes: &Changes, ttl: u64) -> StoreResult<bool> {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, RECLAIM_PER_CALL);
        let merged = match inner.live(id.as_bytes(), now) {
            // An id `regenerate` retired is never written again.
            Some(e) if retired(e.data()) => return Ok(false),
            Some(e) => Record::merged(e.data(), changes)
                .map_err(|e| StoreError::new("MemoryStore", "set", crate::engine::message(&e)))?,
            None => return Ok(false),
        };
        inner
            .put(id.as_bytes(), &merged.0, expiry(now, ttl))
            .map_err(|_| no_memory("merge", merged.0.len()))?;
        Ok(true)
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

    /// Refreshes a live session's expiry; an expired or unknown id stays gone.
    pub fn touch_id(&self, id: &str, ttl: u64) -> bool {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, RECLAIM_PER_CALL);
        match inner.live(id.as_bytes(), now) {
            None => return false,
            // Its stale grace must not grow.
            Some(e) if retired(e.data()) => return false,
            Some(_) => {}
        }
        inner.retime(id.as_bytes(), expiry(now, ttl));
        true
    }

    pub fn exists(&self, id: &str) -> bool {
        let now = clock::now_ms();
        self.inner.lock().live(id.as_bytes(), now).is_some()
    }

    pub fn ids(&self) -> Vec<Vec<u8>> {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, usize::MAX);
        inner.table.iter().map(|e| e.id().to_vec()).collect()
    }

    pub fn len(&self) -> usize {
        let mut inner = self.inner.lock();
        inner.reclaim(clock::now_ms(), usize::MAX);
        inner.table.len()
    }

    pub fn clear(&self) {
        let mut inner = self.inner.lock();
        inner.table.clear();
        inner.by_expiry.clear();
    }
}

impl Store for MemoryStore {
    fn name(&self) -> &'static str {
        "MemoryStore"
    }
    fn get(&self, id: Id) -> StoreResult<Option<Loaded>> {
        Ok(self.get_record(id.as_str())?.map(|record| Loaded {
            record,
            version: None,
        }))
    }
    fn set(&self, id: Id, record: &Record, life: &Lifetime) -> StoreResult<Option<String>> {
        self.set_record(id.as_str(), record, life.ttl.seconds())?;
        Ok(None)
    }
    fn merge(
        &self,
        id: Id,
        changes: &Changes,
        _full: &Record,
        _base: Option<&str>,
        life: &Lifetime,
    ) -> StoreResult<Merged> {
        Ok(
            match self.merge_record(id.as_str(), changes, life.ttl.seconds())? {
                true => Merged::Written(None),
                false => Merged::Gone,
            },
        )
    }
    fn destroy(&self, id: Id) -> StoreResult<bool> {
        Ok(self.destroy_id(id.as_str()))
    }
    fn touch(&self, id: Id, life: &Lifetime) -> StoreResult<bool> {
        Ok(self.touch_id(id.as_str(), life.ttl.seconds()))
    }
}

/// An id argument from Lua, checked once here: 1 to MAX_ID_LEN bytes.
fn id_arg(id: String) -> LuaResult<String> {
    if Id::new(&id).is_none() {
        return Err(LuaError::runtime(format!(
            "honeymoon_session: MemoryStore ids must be 1 to {MAX_ID_LEN} bytes long, got {} bytes",
            id.len()
        )));
    }
    Ok(id)
}

/// A TTL argument from Lua, checked once here: whole seconds; nil means a day.
fn ttl_arg(v: LuaValue) -> LuaResult<u64> {
    let n = match v {
        LuaValue::Nil => return Ok(Ttl::DAY.seconds()),
        LuaValue::Integer(i) => i as f64,
        LuaValue::Number(n) => n,
        _ => f64::NAN,
    };
    if n.fract() == 0.0
        && let Some(ttl) = (n >= 1.0 && n <= Ttl::MAX as f64)
            .then(|| Ttl::new(n as u64))
            .flatten()
    {
        return Ok(ttl.seconds());
    }
    let got = match v {
        LuaValue::Integer(_) | LuaValue::Number(_) => n.to_string(),
        other => crate::codec::a_type(&other).to_string(),
    };
    Err(LuaError::runtime(format!(
        "honeymoon_session: MemoryStore ttl must be a whole number of seconds from 1 to 3153600000, got {got}"
    )))
}

impl LuaUserData for MemoryStore {
    fn add_methods<M: LuaUserDataMethods<Self>>(m: &mut M) {
        m.add_method("get", |lua, s, id: String| {
            match s.get_record(&id_arg(id)?)? {
                Some(r) => r.data_table(lua).map(LuaValue::Table),
                None => Ok(LuaValue::Nil),
            }
        });
        m.add_method(
            "set",
            |lua, s, (id, data, ttl): (String, LuaTable, LuaValue)| {
                let record = Record::from_table(lua, &data)?;
                Ok(s.set_record(&id_arg(id)?, &record, ttl_arg(ttl)?)?)
            },
        );
        m.add_method("destroy", |_, s, id: String| {
            s.destroy_id(&id_arg(id)?);
            Ok(())
        });
        m.add_method("touch", |_, s, (id, ttl): (String, LuaValue)| {
            Ok(s.touch_id(&id_arg(id)?, ttl_arg(ttl)?))
        });
        m.add_method("exists", |_, s, id: String| Ok(s.exists(&id_arg(id)?)));
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
    }
}

/// `MemoryStore(opts?)`: `{ shared = "name" }` joins the process-wide store of that name.
pub fn from_options(opts: Option<LuaTable>) -> LuaResult<MemoryStore> {
    let Some(opts) = opts else {
        return Ok(MemoryStore::new());
    };
    let mut shared = None;
    for pair in opts.pairs::<LuaValue, LuaValue>() {
        match pair? {
            (LuaValue::String(k), LuaValue::String(v)) if k.as_bytes() == b"shared" => {
                shared = Some(v.to_string_lossy());
            }
            (k, v) => {
                return Err(LuaError::runtime(format!(
                    "honeymoon_session: MemoryStore takes only {{ shared = \"name\" }}, got {} = {}",
                    k.to_string().unwrap_or_default(),
                    crate::codec::a_type(&v)
                )));
            }
        }
    }
    Ok(shared.map_or_else(MemoryStore::new, |n| MemoryStore::shared(&n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: i64) -> Vec<u8> {
        let mut v = vec![b'I'];
        v.extend_from_slice(&n.to_le_bytes());
        v
    }

    #[test]
    fn index_follows_puts_retimes_and_removes() {
        let mut inner = Inner::default();
        inner.put(b"a", &rec(1), 100).unwrap();
        inner.put(b"b", &rec(2), 200).unwrap();
        inner.put(b"a", &rec(3), 300).unwrap(); // replace: old index key goes
        inner.retime(b"b", 400);
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
        let mut inner = Inner::default();
        for i in 0..5000u32 {
            inner.put(&i.to_le_bytes(), &rec(1), 1000).unwrap();
        }
        for round in 0..4 {
            for i in 0..5000u32 {
                inner.retime(&i.to_le_bytes(), 2000 + round);
            }
        }
        assert_eq!(inner.by_expiry.len(), inner.table.len());
        inner.reclaim(i64::MAX, usize::MAX);
        assert_eq!(inner.table.len(), 0);
        assert!(inner.by_expiry.is_empty());
    }

    #[test]
    fn reclaims_in_expiry_order_and_at_most_the_limit() {
        let mut inner = Inner::default();
        for i in 0..100u8 {
            inner
                .put(&[b'x', i], &rec(i as i64), 1000 + i as i64)
                .unwrap();
        }
        inner.reclaim(1049, 10);
        assert_eq!(inner.table.len(), 90);
        assert!(inner.find(&[b'x', 0]).is_none());
        assert!(inner.find(&[b'x', 10]).is_some());
        inner.reclaim(1049, usize::MAX);
        assert_eq!(inner.table.len(), 50);
        assert!(inner.live(&[b'x', 50], 1049).is_some());
        assert!(
            inner.live(&[b'x', 50], 1050).is_none(),
            "expired at its instant"
        );
    }
}

//! MemoryStore: sessions in this process, shared by every Lua state that names the same store.
//!
//! Expiry is exact to the millisecond on every read. Expired entries are reclaimed in expiry
//! order from an index, a bounded number per call, so no request waits for a sweep of the
//! whole store; `length()` and `all()` reclaim the rest first, each entry once (amortised O(1)).

use crate::clock;
use crate::codec::{Changes, Record};
use crate::store::{Lifetime, Loaded, Merged, Store};
use mlua::prelude::*;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock, Weak};

/// At most this many expired entries are reclaimed by one get/set/touch/destroy.
const RECLAIM_PER_CALL: usize = 32;

struct Entry {
    expires_ms: i64,
    data: Box<[u8]>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Arc<str>, Entry>,
    by_expiry: BTreeSet<(i64, Arc<str>)>,
}

impl Inner {
    fn reclaim(&mut self, now: i64, limit: usize) {
        for _ in 0..limit {
            match self.by_expiry.first() {
                Some((exp, _)) if *exp <= now => {}
                _ => return,
            }
            if let Some((_, id)) = self.by_expiry.pop_first() {
                self.map.remove(&id);
            }
        }
    }

    fn live(&self, id: &str, now: i64) -> Option<&Entry> {
        self.map.get(id).filter(|e| e.expires_ms > now)
    }

    fn put(&mut self, id: &str, data: Box<[u8]>, expires_ms: i64) {
        match self.map.get_key_value(id) {
            Some((key, old)) => {
                let key = key.clone();
                let old_exp = old.expires_ms;
                self.by_expiry.remove(&(old_exp, key.clone()));
                self.by_expiry.insert((expires_ms, key.clone()));
                self.map.insert(key, Entry { expires_ms, data });
            }
            None => {
                let key: Arc<str> = Arc::from(id);
                self.by_expiry.insert((expires_ms, key.clone()));
                self.map.insert(key, Entry { expires_ms, data });
            }
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some((key, e)) = self.map.remove_entry(id) {
            self.by_expiry.remove(&(e.expires_ms, key));
        }
    }

    fn retime(&mut self, id: &str, expires_ms: i64) {
        if let Some((key, e)) = self.map.get_key_value(id) {
            let key = key.clone();
            let old = e.expires_ms;
            self.by_expiry.remove(&(old, key.clone()));
            self.by_expiry.insert((expires_ms, key.clone()));
            if let Some(e) = self.map.get_mut(id) {
                e.expires_ms = expires_ms;
            }
        }
    }
}

/// A handle to one in-process store; clones share it.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

fn expiry(now: i64, ttl: u64) -> i64 {
    now.saturating_add((ttl as i64).saturating_mul(1000))
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The store registered under `name` in this process, made on first use, so several Lua
    /// states (threads) can share sessions.
    pub fn shared(name: &str) -> Self {
        static NAMED: OnceLock<Mutex<HashMap<String, Weak<Mutex<Inner>>>>> = OnceLock::new();
        let mut named = NAMED.get_or_init(Default::default).lock();
        if let Some(inner) = named.get(name).and_then(Weak::upgrade) {
            return MemoryStore { inner };
        }
        let store = MemoryStore::new();
        named.insert(name.to_string(), Arc::downgrade(&store.inner));
        store
    }

    pub fn get_record(&self, id: &str) -> Option<Record> {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, RECLAIM_PER_CALL);
        inner.live(id, now).map(|e| Record(e.data.to_vec()))
    }

    pub fn set_record(&self, id: &str, record: &Record, ttl: u64) {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, RECLAIM_PER_CALL);
        inner.put(id, record.0.clone().into_boxed_slice(), expiry(now, ttl));
    }

    pub fn merge_record(&self, id: &str, changes: &Changes, ttl: u64) -> LuaResult<bool> {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, RECLAIM_PER_CALL);
        let merged = match inner.live(id, now) {
            Some(e) => Record(e.data.to_vec()).merge(changes)?,
            None => return Ok(false),
        };
        inner.put(id, merged.0.into_boxed_slice(), expiry(now, ttl));
        Ok(true)
    }

    pub fn destroy_id(&self, id: &str) {
        let mut inner = self.inner.lock();
        inner.reclaim(clock::now_ms(), RECLAIM_PER_CALL);
        inner.remove(id);
    }

    /// Refreshes a live session's expiry; an expired or unknown id stays gone.
    pub fn touch_id(&self, id: &str, ttl: u64) -> bool {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, RECLAIM_PER_CALL);
        if inner.live(id, now).is_none() {
            return false;
        }
        inner.retime(id, expiry(now, ttl));
        true
    }

    pub fn exists(&self, id: &str) -> bool {
        let now = clock::now_ms();
        self.inner.lock().live(id, now).is_some()
    }

    pub fn ids(&self) -> Vec<Arc<str>> {
        let now = clock::now_ms();
        let mut inner = self.inner.lock();
        inner.reclaim(now, usize::MAX);
        inner.map.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        let mut inner = self.inner.lock();
        inner.reclaim(clock::now_ms(), usize::MAX);
        inner.map.len()
    }

    pub fn clear(&self) {
        let mut inner = self.inner.lock();
        inner.map.clear();
        inner.by_expiry.clear();
    }
}

impl Store for MemoryStore {
    fn get(&self, _: &Lua, id: &str) -> LuaResult<Option<Loaded>> {
        Ok(self.get_record(id).map(|record| Loaded {
            record,
            version: None,
        }))
    }
    fn set(
        &self,
        _: &Lua,
        id: &str,
        record: &Record,
        life: &Lifetime,
    ) -> LuaResult<Option<String>> {
        self.set_record(id, record, life.ttl);
        Ok(None)
    }
    fn merge(
        &self,
        _: &Lua,
        id: &str,
        changes: &Changes,
        _full: &Record,
        _base: Option<&str>,
        life: &Lifetime,
    ) -> LuaResult<Merged> {
        Ok(match self.merge_record(id, changes, life.ttl)? {
            true => Merged::Written(None),
            false => Merged::Gone,
        })
    }
    fn destroy(&self, _: &Lua, id: &str) -> LuaResult<()> {
        self.destroy_id(id);
        Ok(())
    }
    fn touch(&self, _: &Lua, id: &str, life: &Lifetime) -> LuaResult<bool> {
        Ok(self.touch_id(id, life.ttl))
    }
}

/// A TTL argument from Lua: whole seconds >= 1; nil means the session default of a day.
fn ttl_arg(v: LuaValue) -> LuaResult<u64> {
    let n = match v {
        LuaValue::Nil => return Ok(86_400),
        LuaValue::Integer(i) => i as f64,
        LuaValue::Number(n) => n,
        _ => f64::NAN,
    };
    if n >= 1.0 && n.fract() == 0.0 && n <= 3_153_600_000.0 {
        return Ok(n as u64);
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
        m.add_method("get", |lua, s, id: String| match s.get_record(&id) {
            Some(r) => r.to_table(lua).map(LuaValue::Table),
            None => Ok(LuaValue::Nil),
        });
        m.add_method(
            "set",
            |_, s, (id, data, ttl): (String, LuaTable, LuaValue)| {
                let record = Record::from_table(&data)?;
                s.set_record(&id, &record, ttl_arg(ttl)?);
                Ok(())
            },
        );
        m.add_method("destroy", |_, s, id: String| {
            s.destroy_id(&id);
            Ok(())
        });
        m.add_method("touch", |_, s, (id, ttl): (String, LuaValue)| {
            Ok(s.touch_id(&id, ttl_arg(ttl)?))
        });
        m.add_method("exists", |_, s, id: String| Ok(s.exists(&id)));
        m.add_method("all", |lua, s, ()| {
            let ids = s.ids();
            let t = lua.create_table_with_capacity(ids.len(), 0)?;
            for (i, id) in ids.iter().enumerate() {
                t.raw_set(i + 1, &**id)?;
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

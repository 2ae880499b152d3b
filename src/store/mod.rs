//! The store contract the session core speaks, and the stores behind it.
//!
//! Stores hold [`Record`]s (the codec's stored form). Every failure leaves a store as a Lua
//! error that names the store and the method, so nothing is reported saved that was not.

pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

use crate::codec::{Changes, Record};
use crate::cookie::Attributes;
use mlua::prelude::*;
use std::rc::Rc;

/// A session as a store returned it: the record, and the store's token for that version of
/// it (for stores that merge optimistically; `None` for the others).
pub struct Loaded {
    pub record: Record,
    pub version: Option<String>,
}

/// How long to keep a session, and the cookie it travels with (stores that keep
/// express-session's `cookie` object write it from this).
pub struct Lifetime<'a> {
    pub ttl: u64,
    pub cookie: Option<&'a Attributes>,
}

/// What a merge did.
pub enum Merged {
    /// Written; the new version token.
    Written(Option<String>),
    /// The session is gone (destroyed or expired meanwhile); nothing was written, because a
    /// destroyed id must never come back.
    Gone,
}

pub trait Store {
    fn get(&self, id: &str) -> LuaResult<Option<Loaded>>;
    /// Stores a whole session; returns its version token.
    fn set(&self, id: &str, record: &Record, life: &Lifetime) -> LuaResult<Option<String>>;
    /// Applies a request's top-level changes to the store's current version, atomically, and
    /// refreshes the TTL. `base` is the version the request loaded. `full` is the whole session
    /// as the request left it, for stores that can only replace (they lose concurrent writes to
    /// other keys; their docs say so).
    fn merge(
        &self,
        id: &str,
        changes: &Changes,
        full: &Record,
        base: Option<&str>,
        life: &Lifetime,
    ) -> LuaResult<Merged>;
    fn destroy(&self, id: &str) -> LuaResult<()>;
    /// Refreshes the TTL; false when the session is gone.
    fn touch(&self, id: &str, life: &Lifetime) -> LuaResult<bool>;
}

/// `honeymoon_session: store:set failed: <why>`, the one shape of a store error.
pub fn failed(store: &str, method: &str, why: impl std::fmt::Display) -> LuaError {
    LuaError::runtime(format!("honeymoon_session: {store}:{method} failed: {why}"))
}

/// The methods every store written in Lua must have (the Sessions page's Store Interface).
pub const LUA_METHODS: [&str; 8] = [
    "get", "set", "destroy", "touch", "exists", "all", "length", "clear",
];

/// The native store behind `opts.store` (nil means a new MemoryStore), or None for a store
/// written in Lua.
pub fn native(value: &LuaValue) -> Option<Rc<dyn Store>> {
    match value {
        LuaValue::Nil => Some(Rc::new(memory::MemoryStore::new())),
        // The Lua object `MemoryStore()`/`RedisStore()` return, over the userdata.
        LuaValue::Table(t) => match t.raw_get::<LuaValue>("_native") {
            Ok(inner @ LuaValue::UserData(_)) => native(&inner),
            _ => None,
        },
        LuaValue::UserData(ud) => {
            if let Ok(m) = ud.borrow::<memory::MemoryStore>() {
                return Some(Rc::new(m.clone()));
            }
            #[cfg(feature = "redis")]
            if let Ok(r) = ud.borrow::<redis::RedisStore>() {
                return Some(Rc::new(r.clone()));
            }
            None
        }
        _ => None,
    }
}

/// A Lua store's shape: whether its `format` field is `"record"` (it takes and returns encoded
/// records; absent means the Sessions page's contract, plain tables), and whether it has a
/// `merge` method.
pub fn lua_store_format(value: &LuaValue) -> LuaResult<(bool, bool)> {
    let field = |name: &str| -> LuaValue {
        match value {
            LuaValue::Table(t) => t.get::<LuaValue>(name).unwrap_or(LuaValue::Nil),
            LuaValue::UserData(u) => u.get::<LuaValue>(name).unwrap_or(LuaValue::Nil),
            _ => LuaValue::Nil,
        }
    };
    let merge = matches!(field("merge"), LuaValue::Function(_));
    let format = match value {
        LuaValue::Table(_) | LuaValue::UserData(_) => field("format"),
        other => {
            return Err(LuaError::runtime(format!(
                "honeymoon_session: store must be a table with the store methods, got {}",
                crate::codec::a_type(other)
            )));
        }
    };
    match format {
        LuaValue::Nil => Ok((false, merge)),
        LuaValue::String(s) if s.as_bytes() == b"record" => Ok((true, merge)),
        other => Err(LuaError::runtime(format!(
            "honeymoon_session: store.format must be \"record\" or absent, got {}",
            crate::codec::a_type(&other)
        ))),
    }
}

//! The store contract the session core speaks, and the stores behind it.
//!
//! Stores hold [`Record`]s (the codec's stored form). Every failure leaves a store as a Lua
//! error that names the store and the method, so nothing is reported saved that was not.

pub mod lua;
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
    fn get(&self, lua: &Lua, id: &str) -> LuaResult<Option<Loaded>>;
    /// Stores a whole session; returns its version token.
    fn set(
        &self,
        lua: &Lua,
        id: &str,
        record: &Record,
        life: &Lifetime,
    ) -> LuaResult<Option<String>>;
    /// Applies a request's top-level changes to the store's current version, atomically, and
    /// refreshes the TTL. `base` is the version the request loaded. `full` is the whole session
    /// as the request left it, for stores that can only replace (they lose concurrent writes to
    /// other keys; their docs say so).
    fn merge(
        &self,
        lua: &Lua,
        id: &str,
        changes: &Changes,
        full: &Record,
        base: Option<&str>,
        life: &Lifetime,
    ) -> LuaResult<Merged>;
    fn destroy(&self, lua: &Lua, id: &str) -> LuaResult<()>;
    /// Refreshes the TTL; false when the session is gone.
    fn touch(&self, lua: &Lua, id: &str, life: &Lifetime) -> LuaResult<bool>;
}

/// `honeymoon_session: store:set failed: <why>`, the one shape of a store error.
pub fn failed(store: &str, method: &str, why: impl std::fmt::Display) -> LuaError {
    LuaError::runtime(format!("honeymoon_session: {store}:{method} failed: {why}"))
}

/// The store given as `opts.store`: a native store, or any Lua table with the store methods.
pub fn from_option(value: LuaValue) -> LuaResult<Rc<dyn Store>> {
    match value {
        LuaValue::Nil => Ok(Rc::new(memory::MemoryStore::new())),
        LuaValue::UserData(ud) => {
            if let Ok(m) = ud.borrow::<memory::MemoryStore>() {
                return Ok(Rc::new(m.clone()));
            }
            #[cfg(feature = "redis")]
            if let Ok(r) = ud.borrow::<redis::RedisStore>() {
                return Ok(Rc::new(r.clone()));
            }
            lua::LuaStore::new(LuaValue::UserData(ud)).map(|s| Rc::new(s) as Rc<dyn Store>)
        }
        other => lua::LuaStore::new(other).map(|s| Rc::new(s) as Rc<dyn Store>),
    }
}

//! The store contract the session core speaks, and the stores behind it.
//!
//! Stores hold [`Record`]s (the codec's stored form). Every failure leaves a store as a Lua
//! error that names the store and the method, so nothing is reported saved that was not.

pub mod lua;
pub mod memory;

use crate::codec::{Changes, Record};
use mlua::prelude::*;
use std::rc::Rc;

pub trait Store {
    fn get(&self, lua: &Lua, id: &str) -> LuaResult<Option<Record>>;
    fn set(&self, lua: &Lua, id: &str, record: &Record, ttl: u64) -> LuaResult<()>;
    /// Applies a request's top-level changes to the store's current version, atomically, and
    /// refreshes the TTL. `full` is the whole session as the request left it, for stores that
    /// can only replace (they lose concurrent writes to other keys; say so in their docs).
    /// Returns false, writing nothing, when the session is gone (destroyed or expired
    /// meanwhile): a destroyed id must never come back.
    fn merge(
        &self,
        lua: &Lua,
        id: &str,
        changes: &Changes,
        full: &Record,
        ttl: u64,
    ) -> LuaResult<bool>;
    fn destroy(&self, lua: &Lua, id: &str) -> LuaResult<()>;
    /// Refreshes the TTL; false when the session is gone.
    fn touch(&self, lua: &Lua, id: &str, ttl: u64) -> LuaResult<bool>;
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
            lua::LuaStore::new(LuaValue::UserData(ud)).map(|s| Rc::new(s) as Rc<dyn Store>)
        }
        other => lua::LuaStore::new(other).map(|s| Rc::new(s) as Rc<dyn Store>),
    }
}

//! The stores behind the engine: the contract (`contract`), the native stores, and how a
//! store given in the options is told apart (native, or written in Lua).

pub mod contract;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

pub use contract::{Id, Lifetime, Loaded, MAX_ID_LEN, Merged, Store, StoreError, StoreResult, Ttl};
use mlua::prelude::*;
use std::rc::Rc;

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

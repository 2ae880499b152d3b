//! LuaStore: any Lua table (or userdata) with the store methods, adapted to the Store trait.
//!
//! The store sees plain Lua tables, fresh copies made from the record, so a store that keeps
//! what it is given (a Lua-table store) never aliases a live session.

use crate::codec::{Changes, Record, decode_value};
use crate::store::{Store, failed};
use mlua::prelude::*;

/// The methods the spec's Store Interface requires.
pub const METHODS: [&str; 8] = [
    "get", "set", "destroy", "touch", "exists", "all", "length", "clear",
];

pub struct LuaStore {
    object: LuaValue,
    /// `store:merge(id, changed, removed, ttl)`, when the store offers it.
    has_merge: bool,
}

fn method(object: &LuaValue, name: &str) -> LuaResult<LuaValue> {
    match object {
        LuaValue::Table(t) => t.get(name),
        LuaValue::UserData(u) => u.get(name),
        _ => Ok(LuaValue::Nil),
    }
}

impl LuaStore {
    /// Checks the object at setup: every required method must be a function.
    pub fn new(object: LuaValue) -> LuaResult<LuaStore> {
        if !matches!(object, LuaValue::Table(_) | LuaValue::UserData(_)) {
            return Err(LuaError::runtime(format!(
                "honeymoon_session: store must be a table with the store methods ({}), got a {}",
                METHODS.join(", "),
                object.type_name()
            )));
        }
        for name in METHODS {
            if !matches!(method(&object, name)?, LuaValue::Function(_)) {
                return Err(LuaError::runtime(format!(
                    "honeymoon_session: store is missing the method {name}(); a store needs {}",
                    METHODS.join(", ")
                )));
            }
        }
        let has_merge = matches!(method(&object, "merge")?, LuaValue::Function(_));
        Ok(LuaStore { object, has_merge })
    }

    fn call<R: FromLuaMulti>(&self, name: &str, args: impl IntoLuaMulti) -> LuaResult<R> {
        let f = match method(&self.object, name).map_err(|e| failed("store", name, e))? {
            LuaValue::Function(f) => f,
            other => {
                let why = format!("the method is now a {}, not a function", other.type_name());
                return Err(failed("store", name, why));
            }
        };
        f.call::<R>((self.object.clone(), args))
            .map_err(|e| failed("store", name, root_message(&e)))
    }
}

/// The message a Lua store raised, without mlua's callback wrapping.
fn root_message(e: &LuaError) -> String {
    match e {
        LuaError::CallbackError { cause, .. } => root_message(cause),
        LuaError::RuntimeError(m) => m.clone(),
        other => other.to_string(),
    }
}

impl Store for LuaStore {
    fn get(&self, _: &Lua, id: &str) -> LuaResult<Option<Record>> {
        match self.call::<LuaValue>("get", id)? {
            LuaValue::Nil | LuaValue::Boolean(false) => Ok(None),
            LuaValue::Table(t) => Record::from_table(&t)
                .map(Some)
                .map_err(|e| failed("store", "get", root_message(&e))),
            other => Err(failed(
                "store",
                "get",
                format!(
                    "it returned a {}; a store returns a table or nil",
                    other.type_name()
                ),
            )),
        }
    }

    fn set(&self, lua: &Lua, id: &str, record: &Record, ttl: u64) -> LuaResult<()> {
        self.call::<()>("set", (id, record.to_table(lua)?, ttl))
    }

    fn merge(
        &self,
        lua: &Lua,
        id: &str,
        changes: &Changes,
        full: &Record,
        ttl: u64,
    ) -> LuaResult<()> {
        if !self.has_merge {
            return self.set(lua, id, full, ttl);
        }
        let changed = lua.create_table()?;
        for (k, v) in &changes.set {
            changed.raw_set(lua.create_string(k)?, decode_value(lua, v)?)?;
        }
        let removed = lua.create_table()?;
        for (i, k) in changes.removed.iter().enumerate() {
            removed.raw_set(i + 1, lua.create_string(k)?)?;
        }
        self.call::<()>("merge", (id, changed, removed, ttl))
    }

    fn destroy(&self, _: &Lua, id: &str) -> LuaResult<()> {
        self.call::<()>("destroy", id)
    }

    fn touch(&self, _: &Lua, id: &str, ttl: u64) -> LuaResult<()> {
        self.call::<()>("touch", (id, ttl))
    }
}

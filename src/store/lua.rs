//! LuaStore: any Lua table (or userdata) with the store methods, adapted to the Store trait.
//!
//! The store sees plain Lua tables, fresh copies made from the record, so a store that keeps
//! what it is given (a Lua-table store) never aliases a live session.

use crate::codec::{Changes, Record, decode_value};
use crate::store::{Lifetime, Loaded, Merged, Store, failed};
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
                "honeymoon_session: store must be a table with the store methods ({}), got {}",
                METHODS.join(", "),
                crate::codec::a_type(&object)
            )));
        }
        for name in METHODS {
            match method(&object, name)? {
                LuaValue::Function(_) => {}
                LuaValue::Nil => {
                    return Err(LuaError::runtime(format!(
                        "honeymoon_session: store is missing the method {name}(); a store needs {}",
                        METHODS.join(", ")
                    )));
                }
                other => {
                    return Err(LuaError::runtime(format!(
                        "honeymoon_session: store method {name}() must be a function, got {}",
                        crate::codec::a_type(&other)
                    )));
                }
            }
        }
        let has_merge = matches!(method(&object, "merge")?, LuaValue::Function(_));
        Ok(LuaStore { object, has_merge })
    }

    fn call<R: FromLuaMulti>(&self, name: &str, args: impl IntoLuaMulti) -> LuaResult<R> {
        let f = match method(&self.object, name).map_err(|e| failed("store", name, e))? {
            LuaValue::Function(f) => f,
            other => {
                let why = format!(
                    "the method is now {}, not a function",
                    crate::codec::a_type(&other)
                );
                return Err(failed("store", name, why));
            }
        };
        f.call::<R>((self.object.clone(), args))
            .map_err(|e| failed("store", name, root_message(&e)))
    }
}

/// The message a Lua store raised, without mlua's wrapping or the traceback it appends.
pub fn root_message(e: &LuaError) -> String {
    let text = match e {
        LuaError::CallbackError { cause, .. } => return root_message(cause),
        LuaError::RuntimeError(m) => m.clone(),
        other => other.to_string(),
    };
    match text.split_once("\nstack traceback:") {
        Some((message, _)) => message.to_string(),
        None => text,
    }
}

impl Store for LuaStore {
    fn get(&self, lua: &Lua, id: &str) -> LuaResult<Option<Loaded>> {
        match self.call::<LuaValue>("get", id)? {
            LuaValue::Nil | LuaValue::Boolean(false) => Ok(None),
            LuaValue::Table(t) => Record::from_table(lua, &t)
                .map(|record| {
                    Some(Loaded {
                        record,
                        version: None,
                    })
                })
                .map_err(|e| failed("store", "get", root_message(&e))),
            other => Err(failed(
                "store",
                "get",
                format!(
                    "it returned {}; a store returns a table or nil",
                    crate::codec::a_type(&other)
                ),
            )),
        }
    }

    fn set(
        &self,
        lua: &Lua,
        id: &str,
        record: &Record,
        life: &Lifetime,
    ) -> LuaResult<Option<String>> {
        self.call::<()>("set", (id, record.to_table(lua)?, life.ttl))?;
        Ok(None)
    }

    fn merge(
        &self,
        lua: &Lua,
        id: &str,
        changes: &Changes,
        full: &Record,
        _base: Option<&str>,
        life: &Lifetime,
    ) -> LuaResult<Merged> {
        if !self.has_merge {
            // Narrows (cannot close) the window in which a destroyed session is written back.
            if !self.call::<bool>("exists", id)? {
                return Ok(Merged::Gone);
            }
            return self.set(lua, id, full, life).map(Merged::Written);
        }
        let changed = lua.create_table()?;
        for (k, v) in &changes.set {
            changed.raw_set(lua.create_string(k)?, decode_value(lua, v)?)?;
        }
        let removed = lua.create_table()?;
        for (i, k) in changes.removed.iter().enumerate() {
            removed.raw_set(i + 1, lua.create_string(k)?)?;
        }
        // A merge that returns false reports the session gone; anything else is success.
        Ok(
            match self.call::<LuaValue>("merge", (id, changed, removed, life.ttl))? {
                LuaValue::Boolean(false) => Merged::Gone,
                _ => Merged::Written(None),
            },
        )
    }

    fn destroy(&self, _: &Lua, id: &str) -> LuaResult<()> {
        self.call::<()>("destroy", id)
    }

    fn touch(&self, _: &Lua, id: &str, life: &Lifetime) -> LuaResult<bool> {
        let ttl = life.ttl;
        Ok(!matches!(
            self.call::<LuaValue>("touch", (id, ttl))?,
            LuaValue::Boolean(false)
        ))
    }
}

//! `req.session`: one request's view of a session, and the API handlers call on it.
//!
//! The data is a plain Lua table owned by this request (a copy of what the store holds), so
//! `get` can return live values that handlers mutate in place. At commit the table is encoded
//! again and compared with the snapshot taken at load: that is how deep writes are noticed.

use crate::codec::{self, Record};
use crate::middleware::Manager;
use mlua::prelude::*;
use std::rc::Rc;

/// The session API's method names; property writes to them are refused.
pub const METHODS: [&str; 12] = [
    "get",
    "set",
    "has",
    "all",
    "forget",
    "flash",
    "getFlash",
    "clearFlash",
    "save",
    "destroy",
    "regenerate",
    "getId",
];

/// Where flash messages live in the stored record; hidden from the data API.
pub const FLASH_KEY: &str = "__flash";

pub struct Session {
    pub(crate) manager: Rc<Manager>,
    pub(crate) id: String,
    /// Made on first write: an anonymous visitor who never touches the session costs no table.
    pub(crate) data: Option<LuaTable>,
    /// The record as loaded (or as last saved): the base for change detection.
    pub(crate) snapshot: Record,
    /// Flash messages set by the previous request: readable now, gone after this request.
    pub(crate) flash_old: Option<LuaTable>,
    /// Flash messages set by this request: readable now and in the next request.
    pub(crate) flash_new: Option<LuaTable>,
    /// The store holds no entry under `id` (yet).
    pub(crate) is_new: bool,
    /// Store and send this session at commit even if it is empty (after regenerate or save).
    pub(crate) must_save: bool,
    /// A cookie must go out at commit (save() wrote the store early).
    pub(crate) cookie_due: bool,
    /// destroy() ran: clear the browser's cookie unless a new session replaces it.
    pub(crate) clear_cookie: bool,
    pub(crate) committed: bool,
    pub(crate) secure_request: bool,
    /// The signed cookie value as it came (signed with the current secret), to send back
    /// while the id is unchanged: saves signing again.
    pub(crate) cookie_value: Option<String>,
    /// The store's version token for what this request loaded or last wrote.
    pub(crate) version: Option<String>,
    /// The store lost this id while the request ran (another request destroyed it, or it
    /// expired): nothing is written under it again.
    pub(crate) gone: bool,
}

/// A session key: any Lua string (JSON stores refuse non-UTF-8 keys when they write).
fn key_of(k: LuaValue) -> LuaResult<LuaString> {
    match k {
        LuaValue::String(s) => Ok(s),
        other => Err(LuaError::runtime(format!(
            "honeymoon_session: session keys must be strings, got {}",
            crate::codec::a_type(&other)
        ))),
    }
}

fn reserved(key: &LuaString) -> LuaResult<()> {
    if key.as_bytes() == FLASH_KEY.as_bytes() {
        return Err(LuaError::runtime(format!(
            "honeymoon_session: the session key {FLASH_KEY:?} is reserved for flash messages; use flash() and getFlash()"
        )));
    }
    Ok(())
}

/// Deep copy of a table of storable values (for `all()`).
fn deep_copy(lua: &Lua, t: &LuaTable) -> LuaResult<LuaTable> {
    let bytes = codec::encode_value(lua, "", &LuaValue::Table(t.clone()))?;
    codec::decode_value(lua, &bytes).and_then(|v| match v {
        LuaValue::Table(t) => Ok(t),
        _ => Err(LuaError::runtime("honeymoon_session: copy failed")),
    })
}

impl Session {
    /// A new, empty session (not in the store) under `id`.
    pub(crate) fn new(manager: Rc<Manager>, id: String, secure_request: bool) -> Session {
        Session {
            manager,
            id,
            data: None,
            snapshot: Record::default(),
            flash_old: None,
            flash_new: None,
            is_new: true,
            must_save: false,
            cookie_due: false,
            clear_cookie: false,
            committed: false,
            secure_request,
            cookie_value: None,
            version: None,
            gone: false,
        }
    }

    /// The record the session would store now: its data plus pending flash messages.
    pub(crate) fn record(&self, lua: &Lua) -> LuaResult<Record> {
        let mut entries = codec::Entries::default();
        if let Some(d) = &self.data {
            codec::encode_entries(lua, d, &mut entries)?;
        }
        if let Some(f) = &self.flash_new
            && !f.is_empty()
        {
            let v = codec::encode_value(lua, "flash", &LuaValue::Table(f.clone()))?;
            entries.push(FLASH_KEY.as_bytes(), &v);
        }
        Ok(entries.into_record())
    }

    /// Fills data and flash from a stored record.
    pub(crate) fn load_record(&mut self, lua: &Lua, record: Record) -> LuaResult<()> {
        let table = record.to_table(lua)?;
        if let LuaValue::Table(f) = table.raw_get::<LuaValue>(FLASH_KEY)? {
            table.raw_set(FLASH_KEY, LuaValue::Nil)?;
            self.flash_old = Some(f);
        }
        self.data = Some(table);
        self.snapshot = record;
        Ok(())
    }

    fn get_flash(&mut self, key: &LuaString) -> LuaResult<LuaValue> {
        let mut found = LuaValue::Nil;
        for t in [&self.flash_new, &self.flash_old].into_iter().flatten() {
            let v: LuaValue = t.raw_get(key)?;
            if !v.is_nil() {
                t.raw_set(key, LuaValue::Nil)?;
                if found.is_nil() {
                    found = v;
                }
            }
        }
        Ok(found)
    }

    /// A fresh, empty session with a new id (destroy; regenerate without data).
    fn reset(&mut self, keep_data: bool) -> LuaResult<()> {
        if !keep_data {
            self.data = None;
            self.flash_old = None;
            self.flash_new = None;
        }
        self.snapshot = Record::default();
        self.is_new = true;
        self.cookie_due = false;
        self.cookie_value = None;
        self.gone = false;
        self.version = None;
        self.id = crate::id::generate().map_err(LuaError::runtime)?;
        Ok(())
    }
}

impl Session {
    fn read(&self, key: &LuaString) -> LuaResult<LuaValue> {
        match &self.data {
            Some(d) => d.raw_get(key),
            None => Ok(LuaValue::Nil),
        }
    }

    fn write(&mut self, lua: &Lua, key: LuaString, v: LuaValue) -> LuaResult<()> {
        match &self.data {
            Some(d) => d.raw_set(key, v),
            None if v.is_nil() => Ok(()),
            None => {
                let d = lua.create_table()?;
                d.raw_set(key, v)?;
                self.data = Some(d);
                Ok(())
            }
        }
    }
}

impl LuaUserData for Session {
    fn add_methods<M: LuaUserDataMethods<Self>>(m: &mut M) {
        m.add_method("getId", |_, s, ()| Ok(s.id.clone()));

        m.add_method("get", |_, s, (k, default): (LuaValue, LuaValue)| {
            let v = s.read(&key_of(k)?)?;
            Ok(if v.is_nil() { default } else { v })
        });
        m.add_method_mut("set", |lua, s, (k, v): (LuaValue, LuaValue)| {
            let key = key_of(k)?;
            reserved(&key)?;
            codec::check_storable(&key, &v)?;
            s.write(lua, key, v)
        });
        m.add_method("has", |_, s, k: LuaValue| {
            Ok(!s.read(&key_of(k)?)?.is_nil())
        });
        m.add_method("all", |lua, s, ()| match &s.data {
            Some(d) => deep_copy(lua, d),
            None => lua.create_table(),
        });
        m.add_method_mut("forget", |lua, s, k: LuaValue| {
            s.write(lua, key_of(k)?, LuaValue::Nil)
        });

        m.add_method_mut("flash", |lua, s, (k, v): (LuaValue, LuaValue)| {
            let key = key_of(k)?;
            codec::check_storable(&key, &v)?;
            if s.flash_new.is_none() {
                s.flash_new = Some(lua.create_table()?);
            }
            if let Some(old) = &s.flash_old {
                old.raw_set(&key, LuaValue::Nil)?;
            }
            match &s.flash_new {
                Some(t) => t.raw_set(key, v),
                None => Ok(()),
            }
        });
        m.add_method_mut("getFlash", |_, s, k: LuaValue| s.get_flash(&key_of(k)?));
        m.add_method_mut("clearFlash", |_, s, ()| {
            s.flash_old = None;
            s.flash_new = None;
            Ok(())
        });

        m.add_method_mut("save", |lua, s, ()| {
            let manager = s.manager.clone();
            manager.save(lua, s)
        });
        m.add_function("destroy", |lua, ud: LuaAnyUserData| {
            let (manager, id) = {
                let mut s = ud.borrow_mut::<Session>()?;
                if !s.is_new {
                    s.manager.store.destroy(lua, &s.id)?;
                }
                s.reset(false)?;
                s.must_save = false;
                s.clear_cookie = true;
                (s.manager.clone(), s.id.clone())
            };
            manager.follow_id(&ud, &id)
        });
        m.add_function(
            "regenerate",
            |lua, (ud, keep): (LuaAnyUserData, Option<bool>)| {
                let (manager, id) = {
                    let mut s = ud.borrow_mut::<Session>()?;
                    if !s.is_new {
                        s.manager.store.destroy(lua, &s.id)?;
                    }
                    s.reset(keep.unwrap_or(false))?;
                    s.must_save = true;
                    s.clear_cookie = false;
                    (s.manager.clone(), s.id.clone())
                };
                manager.follow_id(&ud, &id)?;
                Ok(id)
            },
        );

        // Property access: method names resolve first (mlua looks them up before __index).
        m.add_meta_method(LuaMetaMethod::Index, |_, s, k: LuaValue| match k {
            LuaValue::String(key) if key.as_bytes() != FLASH_KEY.as_bytes() => s.read(&key),
            _ => Ok(LuaValue::Nil),
        });
        m.add_meta_method_mut(LuaMetaMethod::NewIndex, |lua, s, (k, v): (LuaValue, LuaValue)| {
            let key = key_of(k)?;
            let is_method = {
                let bytes = key.as_bytes();
                METHODS.iter().any(|m| m.as_bytes() == bytes.as_ref())
            };
            if is_method {
                let name = key.to_string_lossy();
                return Err(LuaError::runtime(format!(
                    "honeymoon_session: session.{name} is a method and cannot be assigned; use session:set({name:?}, value) to store a value under that name"
                )));
            }
            reserved(&key)?;
            codec::check_storable(&key, &v)?;
            s.write(lua, key, v)
        });
        // Lua 5.2+: pairs(req.session) walks the data (LuaJIT ignores __pairs; use all()).
        #[cfg(not(feature = "luajit"))]
        m.add_meta_method(LuaMetaMethod::Pairs, |lua, s, ()| {
            let next: LuaFunction = lua.globals().raw_get("next")?;
            let data = match &s.data {
                Some(d) => d.clone(),
                None => lua.create_table()?,
            };
            Ok((next, data, LuaValue::Nil))
        });
        m.add_meta_method(LuaMetaMethod::ToString, |_, _, ()| {
            Ok("honeymoon_session.Session")
        });
    }
}

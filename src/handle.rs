//! The engine as Lua holds it (`Handle`, a userdata): its settings as fields, and as mlua
//! methods the calls a request makes only sometimes (a Lua store's answers, destroy, reload).
//! `crossings` hands out the per-request calls (`crate::crossing`), plain C functions over the
//! same engine. This sits above both, so that the engine does not import its crossings.

use crate::clock;
use crate::cookie;
use crate::engine::Engine;
use crate::error::message;
use crate::options::Options;
use mlua::prelude::*;
use std::rc::Rc;

/// Errors go back to Lua as values, `false, message`, and `src/lua/store.lua` raises the
/// message as a plain string: every error the module raises has one shape, without a pcall on
/// the hot path.
fn plain(lua: &Lua, r: LuaResult<LuaMultiValue>) -> LuaResult<LuaMultiValue> {
    match r {
        Ok(v) => Ok(v),
        Err(e) => (false, message(&e)).into_lua_multi(lua),
    }
}

/// The engine as Lua holds it; the crossings (`crate::crossing`) share it.
pub struct Handle(pub Rc<Engine>);

impl LuaUserData for Handle {
    fn add_fields<F: LuaUserDataFields<Self>>(f: &mut F) {
        f.add_field_method_get("name", |_, e| Ok(e.0.options().name.clone()));
        f.add_field_method_get("ttl", |_, e| Ok(e.0.options().ttl));
        f.add_field_method_get("native", |_, e| Ok(e.0.native()));
        f.add_field_method_get("saveUninitialized", |_, e| {
            Ok(e.0.options().save_uninitialized)
        });
        f.add_field_method_get("staleGrace", |_, e| Ok(e.0.options().stale_grace));
        f.add_field_method_get("maxSize", |_, e| Ok(e.0.options().max_size));
        f.add_field_method_get("index", |_, e| Ok(e.0.options().index.clone()));
    }

    fn add_methods<M: LuaUserDataMethods<Self>>(m: &mut M) {
        // load, commit, id, candidates and adopt: the per-request calls, as plain C functions.
        m.add_method("crossings", |lua, e, ()| {
            crate::crossing::functions(lua, e.0.clone())
        });
        m.add_method("adopt", |lua, e, stored: LuaValue| {
            plain(lua, e.0.adopt(lua, stored))
        });
        // `existed` (a boolean), or `nil, message`.
        m.add_method("destroy", |lua, e, id: LuaString| {
            match id.to_str().and_then(|id| e.0.destroy(&id)) {
                Ok(existed) => existed.into_lua_multi(lua),
                Err(err) => (LuaValue::Nil, message(&err)).into_lua_multi(lua),
            }
        });
        m.add_method("reload", |lua, e, id: LuaString| {
            plain(lua, id.to_str().and_then(|id| e.0.reload(lua, &id)))
        });
        m.add_method("life", |lua, e, ()| life_table(lua, e.0.options()));
        // Whether a table store's own merge of a commit's patch into what its get returned
        // keeps the session within maxSize: `true` and the `__meta` to hand the store (nil:
        // the patch leaves it alone; false: none), or `false, why` (also on an error).
        m.add_method(
            "merge_fits",
            |lua, e, (current, patch): (LuaTable, LuaString)| match e.0.table_merge(
                lua,
                &current,
                &patch.as_bytes(),
            ) {
                Ok(Ok(meta)) => (true, meta).into_lua_multi(lua),
                Ok(Err(why)) => (false, why).into_lua_multi(lua),
                Err(err) => (false, message(&err)).into_lua_multi(lua),
            },
        );
        m.add_method(
            "inspect",
            |lua, e, (stored, assumed): (LuaValue, Option<LuaString>)| {
                e.0.inspect(lua, stored, assumed)
            },
        );
        // The Set-Cookie line of session `id` for a cookie lifetime of `maxAge` seconds (false:
        // a browser-session cookie): where a Lua store kept another lifetime than the commit
        // assumed.
        m.add_method(
            "cookie_line",
            |_, e, (id, max_age, secure): (LuaString, LuaValue, bool)| {
                let max_age = match max_age {
                    LuaValue::Integer(n) => u64::try_from(n).ok(),
                    LuaValue::Number(n) if n >= 1.0 && n.fract() == 0.0 => Some(n as u64),
                    _ => None,
                };
                Ok(e.0.cookie_line(&id.as_bytes(), secure, max_age, clock::now_ms()))
            },
        );
    }
}

/// The lifetime a Lua store is handed with each write: the TTL and the cookie's attributes
/// (RedisStore writes express-session's `cookie` object from them).
fn life_table(lua: &Lua, o: &Options) -> LuaResult<LuaTable> {
    let t = lua.create_table()?;
    t.raw_set("ttl", o.ttl)?;
    match o.cookie.max_age {
        Some(m) => t.raw_set("maxAge", m)?,
        // A browser-session cookie.
        None => t.raw_set("maxAge", false)?,
    }
    t.raw_set("path", o.cookie.path.as_str())?;
    t.raw_set("httpOnly", o.cookie.http_only)?;
    match o.cookie.secure {
        cookie::Secure::Always => t.raw_set("secure", true)?,
        cookie::Secure::Never => t.raw_set("secure", false)?,
        cookie::Secure::Auto => t.raw_set("secure", "auto")?,
    }
    match o.cookie.same_site {
        Some(s) => t.raw_set("sameSite", s.as_str())?,
        None => t.raw_set("sameSite", false)?,
    }
    if let Some(d) = &o.cookie.domain {
        t.raw_set("domain", d.as_str())?;
    }
    if o.cookie.partitioned {
        t.raw_set("partitioned", true)?;
    }
    if let Some(p) = o.cookie.priority {
        t.raw_set("priority", p.as_str())?;
    }
    Ok(t)
}

//! honeymoon_session: server-side sessions for the HoneyMoon Lua web framework.
//! This file only builds the export table.

mod clock;
mod codec;
mod cookie;
mod fork;
mod id;
mod json;
mod middleware;
mod options;
mod session;
mod store;

use middleware::{Core, Manager};
use mlua::prelude::*;
use std::rc::Rc;

const MIDDLEWARE_LUA: &str = include_str!("../lua/honeymoon_session/middleware.lua");
const FLASH_LUA: &str = include_str!("../lua/honeymoon_session/flash.lua");
const EXPORTS_LUA: &str = include_str!("../lua/honeymoon_session/exports.lua");

fn core(lua: &Lua, opts: Option<LuaTable>) -> LuaResult<Core> {
    Ok(Core(Rc::new(Manager::new(lua, opts)?)))
}

#[cfg_attr(feature = "module", mlua::lua_module)]
pub fn honeymoon_session(lua: &Lua) -> LuaResult<LuaTable> {
    let exports = lua.create_table()?;
    exports.set("version", env!("CARGO_PKG_VERSION"))?;
    let middleware: LuaFunction = lua
        .load(MIDDLEWARE_LUA)
        .set_name("=honeymoon_session/middleware.lua")
        .into_function()?;
    exports.set(
        "session",
        lua.create_function(move |lua, opts: Option<LuaTable>| {
            let core = core(lua, opts)?;
            let requests = core.0.requests.clone();
            let save_uninitialized = core.0.options.save_uninitialized;
            let methods = lua.create_sequence_from(session::METHODS)?;
            middleware.call::<LuaFunction>((
                lua.create_userdata(core)?,
                requests,
                save_uninitialized,
                methods,
            ))
        })?,
    )?;
    exports.set(
        "core",
        // A core is returned as it is, so adapters can take options or a core alike.
        lua.create_function(|lua, opts: LuaValue| match opts {
            LuaValue::UserData(ud) if ud.is::<Core>() => Ok(ud),
            LuaValue::Table(t) => lua.create_userdata(core(lua, Some(t))?),
            LuaValue::Nil => lua.create_userdata(core(lua, None)?),
            other => Err(LuaError::runtime(format!(
                "honeymoon_session: core takes an options table, got {}",
                codec::a_type(&other)
            ))),
        })?,
    )?;
    exports.set(
        "MemoryStore",
        lua.create_function(|_, opts: Option<LuaTable>| store::memory::from_options(opts))?,
    )?;
    exports.set(
        "flash",
        lua.load(FLASH_LUA)
            .set_name("=honeymoon_session/flash.lua")
            .call::<LuaFunction>(())?,
    )?;
    #[cfg(feature = "redis")]
    exports.set(
        "RedisStore",
        lua.create_function(|lua, opts: Option<LuaTable>| {
            store::redis::RedisStore::from_options(lua, opts)
        })?,
    )?;
    #[cfg(feature = "redis")]
    exports.set("_redis", store::redis::lua_exports(lua)?)?;
    // For stores written in Lua that merge atomically on their side (record format).
    exports.set(
        "_merge_patch",
        lua.create_function(|lua, (current, patch): (LuaString, LuaString)| {
            let changes = codec::Changes::from_patch(&patch.as_bytes()).ok_or_else(|| {
                LuaError::runtime("honeymoon_session: merge_patch: not a patch this module wrote")
            })?;
            let merged = codec::Record::merged(&current.as_bytes(), &changes)?;
            lua.create_string(&merged.0)
        })?,
    )?;
    exports.set("json", json::module(lua)?)?;
    exports.set(
        "_monotonic",
        lua.create_function(|_, ()| Ok(clock::monotonic()))?,
    )?;
    exports.set(
        "_advance_clock",
        lua.create_function(|_, seconds: f64| {
            clock::advance(seconds);
            Ok(())
        })?,
    )?;
    lua.load(EXPORTS_LUA)
        .set_name("=honeymoon_session/exports.lua")
        .call(exports)
}

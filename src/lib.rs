//! honeymoon_session: server-side sessions for the HoneyMoon Lua web framework.
//! This file only builds the export table: the native functions, and the embedded Lua chunks
//! that `src/lua/exports.lua` wires together.

mod array;
mod clock;
mod codec;
mod cookie;
mod crossing;
mod engine;
mod error;
mod fork;
mod handle;
mod id;
mod json;
mod keyed;
mod lifecycle;
mod lifetime;
mod options;
mod slot;
mod store;
mod warn;

use mlua::prelude::*;

/// The embedded Lua chunks, in dependency order (each receives what the earlier ones built).
const CHUNKS: [(&str, &str); 6] = [
    ("store", include_str!("lua/store.lua")),
    ("session", include_str!("lua/session.lua")),
    ("core", include_str!("lua/core.lua")),
    ("middleware", include_str!("lua/middleware.lua")),
    ("flash", include_str!("lua/flash.lua")),
    ("exports", include_str!("lua/exports.lua")),
];

#[cfg_attr(feature = "module", mlua::lua_module)]
pub fn honeymoon_session(lua: &Lua) -> LuaResult<LuaTable> {
    let native = lua.create_table()?;
    native.set("version", env!("CARGO_PKG_VERSION"))?;
    native.set(
        "engine",
        lua.create_function(|lua, opts: Option<LuaTable>| {
            let engine = engine::Engine::new(lua, opts)?;
            lua.create_userdata(handle::Handle(std::rc::Rc::new(engine)))
        })?,
    )?;
    native.set("methods", lua.create_sequence_from(slot::METHODS)?)?;
    // The cookie name without a `name` option (the OpenResty adapter's default store keys by it).
    native.set("default_name", options::DEFAULT_NAME)?;
    // For LuaJIT's FFI (src/lua/core.lua): `int (*)(uint8_t *out)`, drawing an id into `out`.
    native.set(
        "_id_into",
        LuaLightUserData(crate::crossing::id_into as *mut std::ffi::c_void),
    )?;
    native.set(
        "store_methods",
        lua.create_sequence_from(store::LUA_METHODS)?,
    )?;
    native.set(
        "MemoryStore",
        lua.create_function(|_, opts: Option<LuaTable>| store::memory::from_options(opts))?,
    )?;
    #[cfg(feature = "redis")]
    native.set(
        "RedisStore",
        lua.create_function(|lua, opts: Option<LuaTable>| {
            store::redis::RedisStore::from_options(lua, opts)
        })?,
    )?;
    #[cfg(feature = "redis")]
    native.set("_redis", store::redis::lua_exports(lua)?)?;
    // The metatable of tables that are JSON arrays (src/array.rs).
    native.set("array_mt", array::install(lua)?)?;
    native.set("json", json::module(lua)?)?;
    // For record stores written in Lua (a plain C function: SharedDictStore calls it on every
    // write): the merged record, or `false` for an id `regenerate` retired.
    native.set("_merge_patch", crate::crossing::merge_patch_function(lua)?)?;
    // For record stores written in Lua: a record's bookkeeping, and the lifetime it keeps
    // (store::record_meta).
    native.set("_record_meta", lua.create_function(store::record_meta)?)?;
    // For stores written in Lua: an owner as sessionsOf/destroyAll take it (a string, or a whole
    // number in decimal, exactly as the engine renders the `index` field).
    native.set("_owner", lua.create_function(store::owner_named)?)?;
    // Messages written in Lua, in the style of the native ones (control characters escaped, bytes
    // that are not UTF-8 as U+FFFD): a value as the options' errors show it, and a path of keys
    // as the encoder's (`cart.items[3]`, `["my key"]`).
    native.set(
        "_shown",
        lua.create_function(|_, v: LuaValue| Ok(options::describe(&v)))?,
    )?;
    native.set("_path", lua.create_function(codec::path_of_keys)?)?;
    // The module's clock, ms since the epoch (what `created` and the engine's expiry use; the
    // test hook `_advance_clock` moves it).
    native.set("_now_ms", lua.create_function(|_, ()| Ok(clock::now_ms()))?)?;
    // Test aid: records of two tables and the patch from one to the other (spec and nginx checks).
    #[cfg(feature = "test-hooks")]
    native.set(
        "_record_patch",
        lua.create_function(|lua, (a, b): (LuaTable, LuaTable)| {
            let (a, b) = (
                codec::Record::from_table(lua, &a)?,
                codec::Record::from_table(lua, &b)?,
            );
            Ok((
                lua.create_string(&a.0)?,
                lua.create_string(&b.0)?,
                lua.create_string(a.diff(&b)?.to_patch(None)?)?,
            ))
        })?,
    )?;
    native.set(
        "_monotonic",
        lua.create_function(|_, ()| Ok(clock::monotonic()))?,
    )?;
    #[cfg(feature = "test-hooks")]
    native.set(
        "_advance_clock",
        lua.create_function(|_, seconds: f64| {
            clock::advance(seconds);
            Ok(())
        })?,
    )?;
    let chunks = lua.create_table()?;
    for (name, source) in CHUNKS {
        let f = lua
            .load(source)
            .set_name(format!("=honeymoon_session/{name}.lua"))
            .into_function()?;
        chunks.set(name, f)?;
    }
    let exports: LuaFunction = chunks.get("exports")?;
    exports.call((native, chunks))
}

//! The array marker. Lua has one table type where JSON has two, so an empty JSON array would
//! come back from Lua as `{}`, and an array with `null`s in it as an object with number keys;
//! a Node app that shares the session then fails on `items.push`. A table decoded from a JSON
//! array (stored by express-session, or read by `json.decode`) carries this metatable, and
//! every encoder writes a table that carries it as an array again, whatever its length. Lua
//! code marks a table of its own with `hs.array(t)`.
//!
//! The metatable has no metamethods (`#`, `ipairs` and indexing work as on any table). It
//! lives in the registry under the address of `KEY`, so reaching it allocates nothing and
//! cannot raise.

use mlua::ffi;
use mlua::prelude::*;
use std::ffi::{c_int, c_void};

static KEY: u8 = 0;

fn key() -> *mut c_void {
    std::ptr::addr_of!(KEY) as *mut c_void
}

/// Makes the marker (once per Lua state; a second `require` in a state finds it) and returns it.
pub fn install(lua: &Lua) -> LuaResult<LuaTable> {
    if let Some(mt) = get(lua)? {
        return Ok(mt);
    }
    let mt = lua.create_table()?;
    mt.raw_set("__name", "honeymoon_session.array")?;
    // SAFETY: exec_raw runs this protected, with `mt` on a fresh stack and room for three more
    // values: two pushes, then a raw set into the registry.
    unsafe {
        lua.exec_raw::<()>(&mt, |state| {
            ffi::lua_pushlightuserdata(state, key());
            ffi::lua_pushvalue(state, -2);
            ffi::lua_rawset(state, ffi::LUA_REGISTRYINDEX);
        })?;
    }
    Ok(mt)
}

/// The marker of this state, if the module made one.
pub fn get(lua: &Lua) -> LuaResult<Option<LuaTable>> {
    // SAFETY: exec_raw runs this on an empty stack with room for three values, and returns
    // the one `push` leaves.
    unsafe { lua.exec_raw::<Option<LuaTable>>((), |state| push(state)) }
}

/// Pushes the marker (a table, or nil before `install`).
///
/// # Safety
/// `state` is a valid Lua state with room for one more value. Allocates nothing and cannot
/// raise.
unsafe fn push(state: *mut ffi::lua_State) {
    // SAFETY: as the contract; a raw get from the registry with a light userdata key.
    unsafe {
        ffi::lua_pushlightuserdata(state, key());
        ffi::lua_rawget(state, ffi::LUA_REGISTRYINDEX);
    }
}

/// Whether the table at `idx` carries the marker. The stack is left as it was.
///
/// # Safety
/// `state` is a valid Lua state with room for two more values, `idx` a valid absolute index.
/// Cannot raise.
pub unsafe fn is_marked(state: *mut ffi::lua_State, idx: c_int) -> bool {
    // SAFETY: as the contract; lua_getmetatable pushes only when it returns non-zero.
    unsafe {
        if ffi::lua_getmetatable(state, idx) == 0 {
            return false;
        }
        push(state);
        let marked = ffi::lua_rawequal(state, -1, -2) != 0;
        ffi::lua_pop(state, 2);
        marked
    }
}

/// Gives the table on top of the stack the marker. The stack is left as it was.
///
/// # Safety
/// `state` is a valid Lua state with a table on top and room for one more value. Cannot raise.
pub unsafe fn mark_top(state: *mut ffi::lua_State) {
    // SAFETY: as the contract; lua_setmetatable pops the marker (a table) it is given.
    unsafe {
        push(state);
        if ffi::lua_type(state, -1) == ffi::LUA_TTABLE {
            ffi::lua_setmetatable(state, -2);
        } else {
            ffi::lua_pop(state, 1);
        }
    }
}

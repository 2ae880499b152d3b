//! Lua values <-> the wire format, on the Lua stack through the C API.
//!
//! This is the hot path of every request (the session is decoded at load and encoded again at
//! commit), so it walks tables with `lua_next` inside one protected call instead of paying for
//! a protected call and a registry reference per key and value.
//!
//! Safety rules for the raw closures: encoding calls only functions that cannot raise
//! (`lua_next` on a table nobody changes meanwhile, `lua_to*` with `lua_tolstring` on strings
//! only, raw metatable reads), so Rust values may live across them. It pushes only within its
//! `Room`, whose `grow` its caller supplies: never growing at all (the room was reserved before
//! the walk, `Room::reserve_all`), or growing inside a protected call (`crossing::reserve`), as
//! growing the stack can raise on Lua 5.1 and LuaJIT. Decoding allocates (strings, tables),
//! and an out-of-memory error unwinds by longjmp to the protected call: there, frames hold only
//! borrowed data and plain numbers, nothing that needs dropping.

use super::meta::{self, Meta};
use super::{Entries, FALSE, FLOAT, INT, LIST, MAP, MAX_DEPTH, NoMemory, Reader, STR, Step, TRUE};
use super::{HOLE_COST, MAX_HOLES, holes, varint_len, write_map, write_str, write_table};
use super::{TOO_DEEP, describe_path, reserve, str_len, too_big, type_message, undecodable};
use crate::lifetime::MaxAge;
use mlua::ffi;
use mlua::prelude::*;
use std::ffi::{c_int, c_void};

/// What a failed encoding says, built after the walk (outside any raw Lua call).
enum Failure {
    Type(Vec<Step>, String),
    KeyType(&'static str),
    TooDeep(Vec<Step>),
    /// Past the size budget (maxSize, in bytes).
    TooBig(Vec<Step>, usize),
    NoMemory,
    /// The Lua stack has no room for a deeper walk (a request deep in a recursion).
    NoStack,
}

impl From<NoMemory> for Failure {
    fn from(_: NoMemory) -> Failure {
        Failure::NoMemory
    }
}

pub fn type_name(t: c_int) -> &'static str {
    match t {
        ffi::LUA_TNIL => "nil",
        ffi::LUA_TBOOLEAN => "a boolean",
        ffi::LUA_TNUMBER => "a number",
        ffi::LUA_TSTRING => "a string",
        ffi::LUA_TTABLE => "a table",
        ffi::LUA_TFUNCTION => "a function",
        ffi::LUA_TTHREAD => "a coroutine",
        ffi::LUA_TUSERDATA | ffi::LUA_TLIGHTUSERDATA => "a userdata",
        _ => "a value of an unsupported type",
    }
}

/// The integer a Lua number holds, if it is one. Lua 5.3 and 5.4 have an integer subtype; on
/// Lua 5.1, 5.2 and LuaJIT every number is a double, and one with an integral value counts.
///
/// # Safety
/// `idx` is a valid index of a number. Reads only; cannot raise.
unsafe fn integer_at(state: *mut ffi::lua_State, idx: c_int) -> Option<i64> {
    // SAFETY: as this function's contract.
    #[cfg(any(feature = "lua53", feature = "lua54"))]
    unsafe {
        (ffi::lua_isinteger(state, idx) != 0).then(|| ffi::lua_tointeger(state, idx))
    }
    // SAFETY: as this function's contract.
    #[cfg(not(any(feature = "lua53", feature = "lua54")))]
    unsafe {
        super::double_as_integer(ffi::lua_tonumber(state, idx))
    }
}

/// The bytes of the string at `idx`.
///
/// # Safety
/// The value at `idx` is a string (every caller checks its type first: on a number,
/// lua_tolstring would convert the stack slot in place, which confuses a `lua_next` walking
/// that key). The slice is valid while the string stays on the stack.
unsafe fn string_at<'a>(state: *mut ffi::lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0usize;
    // SAFETY: as this function's contract; lua_tolstring on a string neither raises nor
    // allocates, and returns a pointer to its `len` bytes.
    unsafe {
        let p = ffi::lua_tolstring(state, idx, &mut len);
        std::slice::from_raw_parts(p as *const u8, len)
    }
}

/// The bytes the scalar at `idx` encodes to; None if it is not a scalar.
unsafe fn scalar_len(state: *mut ffi::lua_State, idx: c_int) -> Option<usize> {
    // SAFETY: `idx` is a valid index (callers'); string_at only on a string.
    unsafe {
        match ffi::lua_type(state, idx) {
            ffi::LUA_TBOOLEAN => Some(1),
            ffi::LUA_TNUMBER => Some(9),
            ffi::LUA_TSTRING => Some(str_len(string_at(state, idx).len())),
            _ => None,
        }
    }
}

/// Encodes the scalar at `idx` (a boolean, number or string: see `scalar_len`).
unsafe fn scalar(
    state: *mut ffi::lua_State,
    idx: c_int,
    out: &mut Vec<u8>,
) -> Result<(), NoMemory> {
    // SAFETY: `idx` is a valid index (callers'); each read matches the type just checked.
    unsafe {
        match ffi::lua_type(state, idx) {
            ffi::LUA_TBOOLEAN => {
                reserve(out, 1)?;
                out.push(if ffi::lua_toboolean(state, idx) != 0 {
                    TRUE
                } else {
                    FALSE
                })
            }
            ffi::LUA_TNUMBER => {
                reserve(out, 9)?;
                match integer_at(state, idx) {
                    Some(i) => {
                        out.push(INT);
                        out.extend_from_slice(&i.to_le_bytes());
                    }
                    None => {
                        out.push(FLOAT);
                        out.extend_from_slice(&ffi::lua_tonumber(state, idx).to_le_bytes());
                    }
                }
            }
            // The type is string: lua_tolstring does not convert anything in place.
            ffi::LUA_TSTRING => write_str(out, string_at(state, idx))?,
            _ => {}
        }
    }
    Ok(())
}

/// A step of the path being walked, borrowing the key from the Lua stack (where it stays
/// while its value is encoded): no allocation unless an error needs the path.
#[derive(Clone, Copy)]
enum StepRef {
    Key(*const u8, usize),
    Index(i64),
    Float(f64),
    Bool(bool),
}

/// Makes room for `n` more values on the stack, or answers false, without raising.
pub type Grow = unsafe fn(*mut ffi::lua_State, c_int) -> bool;

/// The stack room an encoder walks in: slots up to `ceiling` (an absolute index) are known to
/// exist, and `grow` makes more once, for the deepest walk, when a nested table needs it. A
/// crossing starts with LUA_MINSTACK slots, so a shallow session never grows the stack; on
/// LuaJIT and Lua 5.1 growing costs a protected call (see `crossing::reserve`).
#[derive(Clone, Copy)]
pub struct Room {
    pub ceiling: c_int,
    pub grow: Grow,
}

/// Slots kept free below the ceiling for `grow`'s own pushes (a protected call).
const GROW_SPARE: c_int = 2;

impl Room {
    /// Room for `n` more values above the current top.
    unsafe fn make(&mut self, state: *mut ffi::lua_State, n: c_int) -> bool {
        // SAFETY: `state` is the state the encoder walks.
        unsafe {
            let top = ffi::lua_gettop(state);
            if top + n + GROW_SPARE <= self.ceiling {
                return true;
            }
            if !(self.grow)(state, DEEPEST_WALK) {
                return false;
            }
            self.ceiling = top + DEEPEST_WALK;
            true
        }
    }

    /// Reserves now the stack the deepest walk needs above the current top (None: there is
    /// none), so the walk never grows it. Only where growing cannot unwind through Rust frames
    /// that own values: in a protected call, with nothing owned yet.
    unsafe fn reserve_all(state: *mut ffi::lua_State) -> Option<Room> {
        // SAFETY: as this function's contract.
        unsafe {
            (ffi::lua_checkstack(state, DEEPEST_WALK) != 0).then(|| Room {
                ceiling: ffi::lua_gettop(state) + DEEPEST_WALK,
                grow: |_, _| false,
            })
        }
    }
}

/// The error when the Lua stack has no room left (a request deep in a recursion).
pub const STACK_EXHAUSTED: &str = "honeymoon_session: the Lua stack is exhausted";

/// The stack an encoder's walk needs at most: three slots per level, and some to spare.
pub const DEEPEST_WALK: c_int = 3 * MAX_DEPTH as c_int + 16;

struct Encoder {
    path: Vec<StepRef>,
    /// Tables on the way from the top to here: meeting one again is a cycle. The session's own
    /// table is the first, so its length is the depth of the value being encoded.
    open: Vec<*const c_void>,
    /// Bytes of the record's size budget not yet charged (see `Entries`), and the whole budget.
    left: usize,
    limit: usize,
    room: Room,
}

impl Encoder {
    /// The path as owned steps, for an error message (while the keys are still on the stack).
    unsafe fn owned_path(&self) -> Vec<Step> {
        self.path
            .iter()
            .map(|s| match *s {
                StepRef::Key(p, n) => {
                    // SAFETY: a key of the path is a string on the stack (or the caller's
                    // `path`) for as long as its step is in `self.path`.
                    Step::Key(unsafe { std::slice::from_raw_parts(p, n) }.to_vec())
                }
                StepRef::Index(i) => Step::Index(i),
                StepRef::Float(f) => Step::Other(super::number_text(f)),
                StepRef::Bool(b) => Step::Other(b.to_string()),
            })
            .collect()
    }

    unsafe fn fail(&self, what: impl Into<String>) -> Failure {
        // SAFETY: called during the walk, while the path's keys are on the stack.
        Failure::Type(unsafe { self.owned_path() }, what.into())
    }

    /// Charges `n` bytes of the size budget, before they are written.
    unsafe fn charge(&mut self, n: usize) -> Result<(), Failure> {
        if Entries::charge(&mut self.left, n) {
            Ok(())
        } else {
            // SAFETY: called during the walk, while the path's keys are on the stack.
            Err(Failure::TooBig(unsafe { self.owned_path() }, self.limit))
        }
    }

    /// Charges and encodes the scalar at `idx`; false (nothing written) if it is not one.
    unsafe fn scalar(
        &mut self,
        state: *mut ffi::lua_State,
        idx: c_int,
        out: &mut Vec<u8>,
    ) -> Result<bool, Failure> {
        // SAFETY: `idx` is a valid index during the walk.
        unsafe {
            let Some(n) = scalar_len(state, idx) else {
                return Ok(false);
            };
            self.charge(n)?;
            scalar(state, idx, out)?;
        }
        Ok(true)
    }
}

impl Encoder {
    unsafe fn value(
        &mut self,
        state: *mut ffi::lua_State,
        idx: c_int,
        out: &mut Vec<u8>,
    ) -> Result<(), Failure> {
        // SAFETY: `idx` is a valid index during the walk; `table` gets a table.
        unsafe {
            if self.scalar(state, idx, out)? {
                return Ok(());
            }
            match ffi::lua_type(state, idx) {
                ffi::LUA_TTABLE => self.table(state, idx, out),
                t => Err(self.fail(type_name(t))),
            }
        }
    }

    unsafe fn table(
        &mut self,
        state: *mut ffi::lua_State,
        idx: c_int,
        out: &mut Vec<u8>,
    ) -> Result<(), Failure> {
        // SAFETY: `idx` is the absolute index of a table. The walk pushes at most three values
        // above the top at a time (the nil, then a key and its value), in the room `make`
        // checked (or grew without raising); every exit pops what it pushed. lua_next walks a
        // table no Lua code runs against meanwhile; keys and values are read by type.
        unsafe {
            let ptr = ffi::lua_topointer(state, idx);
            if self.open.contains(&ptr) {
                return Err(self.fail("a table that contains itself (a cycle)"));
            }
            if self.open.len() >= MAX_DEPTH {
                return Err(Failure::TooDeep(self.owned_path()));
            }
            if !self.room.make(state, 3) {
                return Err(Failure::NoStack);
            }
            self.open.push(ptr);
            let mut pairs = Vec::new();
            ffi::lua_pushnil(state);
            while ffi::lua_next(state, idx) != 0 {
                let mut key = Vec::new();
                let is_scalar = match self.scalar(state, -2, &mut key) {
                    Ok(b) => b,
                    Err(e) => {
                        ffi::lua_pop(state, 2);
                        return Err(e);
                    }
                };
                if !is_scalar {
                    let what = type_name(ffi::lua_type(state, -2));
                    let failure = self.fail(format!("a table with {what} as a key"));
                    ffi::lua_pop(state, 2);
                    return Err(failure);
                }
                self.path.push(match ffi::lua_type(state, -2) {
                    ffi::LUA_TSTRING => {
                        let k = string_at(state, -2);
                        StepRef::Key(k.as_ptr(), k.len())
                    }
                    ffi::LUA_TNUMBER => match integer_at(state, -2) {
                        Some(i) => StepRef::Index(i),
                        None => StepRef::Float(ffi::lua_tonumber(state, -2)),
                    },
                    _ => StepRef::Bool(ffi::lua_toboolean(state, -2) != 0),
                });
                let mut val = Vec::new();
                if let Err(e) = self.value(state, ffi::lua_gettop(state), &mut val) {
                    ffi::lua_pop(state, 2);
                    return Err(e);
                }
                self.path.pop();
                if pairs.try_reserve(1).is_err() {
                    ffi::lua_pop(state, 2);
                    return Err(Failure::NoMemory);
                }
                pairs.push((key, val));
                ffi::lua_pop(state, 1);
            }
            self.open.pop();
            self.charge(1 + varint_len(pairs.len() as u64))?; // the map's tag and count
            // The loop popped what it pushed: the room checked above is free again.
            // A marked table whose keys are all positions is an array; one that also holds
            // other keys is a map.
            match crate::array::is_marked(state, idx)
                .then(|| holes(&pairs))
                .flatten()
            {
                Some(n) => {
                    if n <= MAX_HOLES {
                        self.charge(n * HOLE_COST)?;
                    }
                    write_table(out, LIST, pairs)?;
                }
                None => write_map(out, pairs)?,
            }
            Ok(())
        }
    }
}

fn failure(f: Failure) -> LuaError {
    LuaError::runtime(match f {
        Failure::Type(path, what) => type_message(&path, &what),
        Failure::KeyType(what) => {
            format!("honeymoon_session: session keys must be strings, got {what}")
        }
        Failure::TooDeep(path) => format!(
            "honeymoon_session: session value {} {TOO_DEEP}",
            describe_path(&path)
        ),
        Failure::TooBig(path, limit) => too_big(limit, &describe_path(&path)),
        Failure::NoMemory => return NoMemory.into(),
        Failure::NoStack => STACK_EXHAUSTED.to_string(),
    })
}

/// Encodes the value at stack index `idx` (absolute) of a raw state; `path` names it in
/// errors. The stack is left as it was. Calls only Lua functions that cannot raise.
///
/// # Safety
/// `state` is a valid Lua state and `idx` a valid absolute index in it.
pub unsafe fn encode_value_at(
    state: *mut ffi::lua_State,
    idx: c_int,
    path: &[&[u8]],
    room: Room,
) -> LuaResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut enc = Encoder {
        path: path
            .iter()
            .map(|step| StepRef::Key(step.as_ptr(), step.len()))
            .collect(),
        // The value sits under a top-level key: the session's table encloses it.
        open: vec![std::ptr::null()],
        left: usize::MAX,
        limit: usize::MAX,
        room,
    };
    // SAFETY: as this function's contract; the walk pops what it pushes.
    let result = unsafe {
        match ffi::lua_type(state, idx) {
            ffi::LUA_TNIL => Err(enc.fail("nil")),
            _ => enc.value(state, idx, &mut out),
        }
    };
    result.map_err(failure)?;
    Ok(out)
}

/// The bookkeeping in the `__meta` table at absolute index `idx`, read field by field: what
/// `Meta::from_value` reads from the table's encoding (a test pins the two alike), without
/// encoding it. Fields of the wrong type, and keys it does not know, are ignored; so are
/// values the encoder would refuse (a function), where encoding failed the commit. Only
/// session.lua fills this table, with the four fields. The stack is left as it was.
///
/// # Safety
/// `state` is a valid Lua state with room for two more values, and `idx` a valid absolute
/// index of a table in it. Calls only functions that cannot raise (`lua_next` over a table
/// nobody changes meanwhile; `lua_tolstring` on strings only).
pub unsafe fn meta_at(state: *mut ffi::lua_State, idx: c_int) -> Meta {
    // A number as `meta::int` reads its encoding: an integer, or a float `meta::exact_f64` takes.
    let int = |i: c_int| -> Option<i64> {
        // SAFETY: `i` is a valid index (the value of the current pair).
        unsafe {
            if ffi::lua_type(state, i) != ffi::LUA_TNUMBER {
                return None;
            }
            integer_at(state, i).or_else(|| meta::exact_f64(ffi::lua_tonumber(state, i)))
        }
    };
    let mut m = Meta::default();
    // SAFETY: as this function's contract; each pass pops the value it pushed, and the last
    // lua_next pops the key.
    unsafe {
        ffi::lua_pushnil(state);
        while ffi::lua_next(state, idx) != 0 {
            if ffi::lua_type(state, -2) == ffi::LUA_TSTRING {
                match string_at(state, -2) {
                    b"created" => m.created = int(-1).and_then(meta::exact),
                    // Any number marks a retirement (`meta::mark`).
                    b"stale" if ffi::lua_type(state, -1) == ffi::LUA_TNUMBER => {
                        m.stale = Some(
                            integer_at(state, -1)
                                .unwrap_or_else(|| meta::stale_ms(ffi::lua_tonumber(state, -1))),
                        )
                    }
                    b"maxAge" if ffi::lua_type(state, -1) == ffi::LUA_TBOOLEAN => {
                        m.max_age = (ffi::lua_toboolean(state, -1) == 0).then_some(MaxAge::Browser)
                    }
                    b"maxAge" => m.max_age = meta::own_ms(int(-1).and_then(meta::exact)),
                    b"owner" if ffi::lua_type(state, -1) == ffi::LUA_TSTRING => {
                        m.owner = std::str::from_utf8(string_at(state, -1))
                            .ok()
                            .map(String::from)
                    }
                    _ => {}
                }
            }
            ffi::lua_pop(state, 1);
        }
    }
    m
}

/// Encodes the table of string keys (session data) at absolute index `idx` of a raw state into
/// `entries`. The stack is left as it was. Calls only Lua functions that cannot raise.
///
/// # Safety
/// `state` is a valid Lua state and `idx` a valid absolute index of a table in it.
pub unsafe fn encode_table_at(
    state: *mut ffi::lua_State,
    idx: c_int,
    entries: &mut Entries,
    room: Room,
) -> LuaResult<()> {
    // SAFETY: reads the top of a valid state.
    let top = unsafe { ffi::lua_gettop(state) };
    // SAFETY: as this function's contract; lua_next walks a table nobody changes meanwhile, and
    // every exit restores the stack top.
    let result = unsafe {
        let mut enc = Encoder {
            path: Vec::with_capacity(4),
            open: vec![ffi::lua_topointer(state, idx)],
            left: entries.left,
            limit: entries.limit,
            room,
        };
        let mut result = Ok(());
        if !enc.room.make(state, 3) {
            result = Err(Failure::NoStack);
        } else {
            ffi::lua_pushnil(state);
            while ffi::lua_next(state, idx) != 0 {
                if ffi::lua_type(state, -2) != ffi::LUA_TSTRING {
                    result = Err(Failure::KeyType(type_name(ffi::lua_type(state, -2))));
                    break;
                }
                let key = string_at(state, -2);
                enc.path.clear();
                enc.path.push(StepRef::Key(key.as_ptr(), key.len()));
                if let Err(e) = enc.charge(1 + varint_len(key.len() as u64) + key.len()) {
                    result = Err(e);
                    break;
                }
                let value = match entries.start(key) {
                    Ok(v) => v,
                    Err(e) => {
                        result = Err(e.into());
                        break;
                    }
                };
                if let Err(e) = enc.value(state, ffi::lua_gettop(state), value) {
                    result = Err(e);
                    break;
                }
                entries.finish();
                ffi::lua_pop(state, 1);
            }
        }
        ffi::lua_settop(state, top);
        entries.left = enc.left;
        result
    };
    result.map_err(failure)
}

/// Encodes a table of string keys (the session data) into `entries`.
pub fn encode_entries(lua: &Lua, t: &LuaTable, entries: &mut Entries) -> LuaResult<()> {
    let mut result = Ok(());
    // SAFETY: exec_raw pushes `t` on a fresh stack; encode_table_at reads it and restores the
    // stack. The room the walk needs is reserved before any Rust value lives in this frame: on
    // Lua 5.1 and LuaJIT, growing the stack can raise (out of memory), which must not skip the
    // encoder's buffers.
    unsafe {
        lua.exec_raw::<()>(t, |state| {
            result = match Room::reserve_all(state) {
                None => Err(LuaError::runtime(STACK_EXHAUSTED)),
                Some(room) => encode_table_at(state, ffi::lua_gettop(state), entries, room),
            };
            ffi::lua_settop(state, 0);
        })?;
    }
    result
}

/// Pushes the value `r` reads; false (with the stack as it was) on corrupt input.
/// # Safety
/// As `push_session`.
unsafe fn push_value(state: *mut ffi::lua_State, r: &mut Reader, depth: usize) -> bool {
    // SAFETY: as `push_session` (allocating pushes unwind only to a protected call). Each
    // level checks room for its three pushes (a table, a key, a value) before making them; a
    // key is never nil or NaN (`key_ahead`, `position_ahead`), so lua_rawset cannot raise but
    // for memory.
    unsafe {
        if ffi::lua_checkstack(state, 3) == 0 {
            return false;
        }
        match r.byte() {
            Some(FALSE) => ffi::lua_pushboolean(state, 0),
            Some(TRUE) => ffi::lua_pushboolean(state, 1),
            Some(INT) => match r.eight() {
                Some(b) => ffi::lua_pushinteger(state, i64::from_le_bytes(b) as ffi::lua_Integer),
                None => return false,
            },
            Some(FLOAT) => match r.eight() {
                Some(b) => ffi::lua_pushnumber(state, f64::from_le_bytes(b)),
                None => return false,
            },
            Some(STR) => match r.varint().and_then(|n| r.take(n as usize)) {
                Some(s) => {
                    ffi::lua_pushlstring(state, s.as_ptr() as *const _, s.len());
                }
                None => return false,
            },
            // A table at level depth + 1 (see MAX_DEPTH); an array's keys are all integers.
            Some(tag @ (MAP | LIST)) if depth < MAX_DEPTH => {
                let Some(n) = r.varint() else { return false };
                // Capacity hints bounded, so a corrupt count cannot ask for a huge table.
                let hint = n.min(64) as c_int;
                let int_keys = r.peek() == Some(INT);
                let (narr, nrec) = if int_keys { (hint, 0) } else { (0, hint) };
                ffi::lua_createtable(state, narr, nrec);
                if tag == LIST {
                    // Room: three checked above, one taken by the table.
                    crate::array::mark_top(state);
                }
                for _ in 0..n {
                    let key_ok = if tag == LIST {
                        r.position_ahead()
                    } else {
                        r.key_ahead()
                    };
                    if !key_ok || !push_value(state, r, depth + 1) {
                        ffi::lua_pop(state, 1);
                        return false;
                    }
                    if !push_value(state, r, depth + 1) {
                        ffi::lua_pop(state, 2);
                        return false;
                    }
                    ffi::lua_rawset(state, -3);
                }
            }
            _ => return false,
        }
        true
    }
}

/// Pushes one encoded value; false (stack as it was) on corrupt input.
///
/// # Safety
/// As `push_session`.
pub unsafe fn push_decoded(state: *mut ffi::lua_State, bytes: &[u8]) -> bool {
    let mut r = Reader::new(bytes);
    // SAFETY: as this function's contract. Depth 0: the value is a whole record (its values
    // then sit at depth 1) or one of its top-level values, which this encoder wrote and so
    // never uses the one level of slack this leaves it.
    unsafe {
        if !push_value(state, &mut r, 0) {
            return false;
        }
        if r.pos != bytes.len() {
            ffi::lua_pop(state, 1);
            return false;
        }
    }
    true
}

/// Decodes one encoded value into a fresh Lua value.
pub fn decode_value(lua: &Lua, bytes: &[u8]) -> LuaResult<LuaValue> {
    let mut ok = false;
    // SAFETY: exec_raw runs the closure in a protected call on a fresh stack; push_value holds
    // only borrowed data; the closure leaves exactly one value.
    let value = unsafe {
        lua.exec_raw::<LuaValue>((), |state| {
            let mut r = Reader::new(bytes);
            ok = push_value(state, &mut r, 0) && r.pos == bytes.len();
            if !ok {
                ffi::lua_settop(state, 0);
                ffi::lua_pushnil(state);
            }
        })?
    };
    if !ok {
        return Err(undecodable(bytes));
    }
    Ok(value)
}

/// Where a top-level key of a stored session goes when it is decoded for a request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Session data: a field of the data table.
    Data,
    /// Flash messages, all in one table (a record written before messages had a key each;
    /// kept out of the data, and dropped unless it is a table).
    Flash,
    /// One flash message, under the key's bytes from this offset on.
    FlashMessage(usize),
    /// A key named like a session method: kept beside the data so the method still resolves.
    Shadow,
    /// The session's bookkeeping (`meta::META_KEY`), dropped unless it is a table.
    Meta,
}

/// Pushes a stored session as four fresh values: the data table, the flash table (or nil),
/// the table of method-named keys (or nil) and the bookkeeping table (or nil). `slot` sorts the top-level keys. On corrupt
/// input returns false with the stack as it was.
///
/// # Safety
/// `state` is a valid Lua state. Pushing allocates: call it where a Lua error (out of memory)
/// unwinds to a protected call, with no owned Rust values in the frames between.
pub unsafe fn push_session(
    state: *mut ffi::lua_State,
    bytes: &[u8],
    slot: impl Fn(&[u8]) -> Slot,
) -> bool {
    // SAFETY: as this function's contract. The four results sit at base+1..base+4, each key
    // and value above them; `push` checks the stack before it grows it.
    unsafe {
        let base = ffi::lua_gettop(state);
        if ffi::lua_checkstack(state, 5) == 0 {
            return false;
        }
        let mut r = Reader::new(bytes);
        let n = match (r.byte(), r.varint()) {
            (Some(MAP), Some(n)) => n,
            _ => return false,
        };
        let (data, flash, shadow, meta) = (base + 1, base + 2, base + 3, base + 4);
        ffi::lua_createtable(state, 0, n.min(64) as c_int);
        ffi::lua_pushnil(state);
        ffi::lua_pushnil(state);
        ffi::lua_pushnil(state);
        // Keys strictly in order, as the commit's diff reads them (EntryIter): a record out of
        // order (or with a key twice) is corrupt here, where its store is named, and not at
        // every commit after.
        let mut last: Option<&[u8]> = None;
        for _ in 0..n {
            let Some(key) = r.string().filter(|k| last.is_none_or(|l| l < *k)) else {
                ffi::lua_settop(state, base);
                return false;
            };
            last = Some(key);
            let target = slot(key);
            let (holder, name) = match target {
                Slot::Shadow => (shadow, key),
                Slot::FlashMessage(from) => (flash, key.get(from..).unwrap_or_default()),
                _ => (data, key),
            };
            if holder != data && ffi::lua_type(state, holder) == ffi::LUA_TNIL {
                ffi::lua_createtable(state, 0, 1);
                ffi::lua_replace(state, holder);
            }
            ffi::lua_pushlstring(state, name.as_ptr() as *const _, name.len());
            if !push_value(state, &mut r, 1) {
                ffi::lua_settop(state, base);
                return false;
            }
            match target {
                Slot::Data => ffi::lua_rawset(state, data),
                Slot::Shadow | Slot::FlashMessage(_) => ffi::lua_rawset(state, holder),
                // Only a table is flash (or bookkeeping); anything else under the key is dropped.
                Slot::Flash | Slot::Meta => {
                    if ffi::lua_type(state, -1) == ffi::LUA_TTABLE {
                        ffi::lua_replace(state, if target == Slot::Flash { flash } else { meta });
                        ffi::lua_pop(state, 1);
                    } else {
                        ffi::lua_pop(state, 2);
                    }
                }
            }
        }
        if r.pos != bytes.len() {
            ffi::lua_settop(state, base);
            return false;
        }
        true
    }
}

/// Decodes a stored session into four fresh values (see `push_session`).
pub fn decode_session(
    lua: &Lua,
    bytes: &[u8],
    slot: impl Fn(&[u8]) -> Slot,
) -> LuaResult<(LuaTable, LuaValue, LuaValue, LuaValue)> {
    let mut ok = false;
    // SAFETY: exec_raw runs the closure in a protected call on a fresh stack; push_session
    // holds only borrowed data.
    let values = unsafe {
        lua.exec_raw::<(LuaValue, LuaValue, LuaValue, LuaValue)>((), |state| {
            ok = push_session(state, bytes, &slot);
        })?
    };
    match values {
        (LuaValue::Table(data), flash, shadow, meta) if ok => Ok((data, flash, shadow, meta)),
        _ => Err(undecodable(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Entries;

    /// Runs `f` on a raw stack holding `v` (at the top) and returns the stack height before
    /// and after, so a test can see every exit path leave the stack as it found it.
    fn heights(lua: &Lua, v: &LuaValue, f: impl Fn(*mut ffi::lua_State, c_int)) -> (c_int, c_int) {
        let mut out = (0, 0);
        // SAFETY: exec_raw pushes `v` on a fresh stack and runs the closure in a protected call.
        unsafe {
            lua.exec_raw::<()>(v, |state| {
                let top = ffi::lua_gettop(state);
                f(state, top);
                out = (top, ffi::lua_gettop(state));
                ffi::lua_settop(state, 0);
            })
            .unwrap();
        }
        out
    }

    #[test]
    fn a_walk_grows_the_stack_only_past_its_ceiling_and_says_so_when_it_cannot() {
        let lua = Lua::new();
        let v: LuaValue = lua
            .load("local t = {} local c = t for i = 1, 12 do c.n = {} c = c.n end return { d = t }")
            .eval()
            .unwrap();
        let walk = |room_above: c_int, grow: Grow| {
            let result = std::cell::RefCell::new(None);
            // SAFETY: idx is the table heights() pushed; the room below the ceiling exists
            // (a protected call starts with LUA_MINSTACK slots).
            heights(&lua, &v, |state, idx| unsafe {
                let room = Room {
                    ceiling: ffi::lua_gettop(state) + room_above,
                    grow,
                };
                *result.borrow_mut() =
                    Some(encode_table_at(state, idx, &mut Entries::default(), room));
            });
            result.into_inner().unwrap()
        };
        // SAFETY: called by the walk on its own state.
        let grows: Grow = |state, n| unsafe { ffi::lua_checkstack(state, n) != 0 };
        assert!(walk(10, grows).is_ok());
        let err = walk(10, |_, _| false).unwrap_err().to_string();
        assert!(
            err.contains("honeymoon_session: the Lua stack is exhausted"),
            "{err}"
        );
        // A shallow session never asks (a grow that refuses would fail it).
        let flat: LuaValue = lua
            .load("return { a = 1, b = { c = { 1, 2 } } }")
            .eval()
            .unwrap();
        let walked = std::cell::Cell::new(None);
        // SAFETY: as above.
        heights(&lua, &flat, |state, idx| unsafe {
            let room = Room {
                ceiling: ffi::lua_gettop(state) + 19,
                grow: |_, _| false,
            };
            walked.set(Some(
                encode_table_at(state, idx, &mut Entries::default(), room).is_ok(),
            ));
        });
        assert_eq!(walked.get(), Some(true));
    }

    #[test]
    fn encoding_and_pushing_leave_the_stack_balanced() {
        let lua = Lua::new();
        let cases = [
            "return { a = 1, b = { c = { 1, 2, 3 } } }",
            "return { a = { f = print } }",
            "local t = {} t.me = t return { t = t }",
            "return { [1] = 'not a string key' }",
            "local t = {} local c = t for i = 1, 100 do c.n = {} c = c.n end return { d = t }",
        ];
        for src in cases {
            let v: LuaValue = lua.load(src).eval().unwrap();
            // SAFETY: idx is the table heights() pushed.
            let (before, after) = heights(&lua, &v, |state, idx| unsafe {
                let room = Room::reserve_all(state).unwrap();
                let _ = encode_table_at(state, idx, &mut Entries::default(), room);
                let _ = encode_value_at(state, idx, &[b"v"], room);
            });
            assert_eq!(before, after, "{src}");
        }
        let good: LuaValue = lua.load("return { a = 1, b = 'x' }").eval().unwrap();
        let LuaValue::Table(t) = &good else {
            unreachable!()
        };
        let record = crate::codec::Record::from_table(&lua, t).unwrap();
        for bytes in [record.0.as_slice(), b"M\x05", b"MM", b""] {
            // SAFETY: both functions push on success and restore the stack on failure.
            let (before, after) = heights(&lua, &LuaValue::Nil, |state, _| unsafe {
                let pushed = if push_session(state, bytes, |_| Slot::Data) {
                    4
                } else {
                    0
                };
                ffi::lua_pop(state, pushed);
                let pushed = if push_decoded(state, bytes) { 1 } else { 0 };
                ffi::lua_pop(state, pushed);
            });
            assert_eq!(before, after, "{bytes:?}");
        }
    }

    #[test]
    fn meta_read_from_its_table_as_from_its_encoding() {
        let lua = Lua::new();
        let cases = [
            "return {}",
            "return { created = 1764400000000, maxAge = 2592000000, owner = 'u42', stale = 5 }",
            "return { created = 1764400000000.0, maxAge = false }",
            "return { maxAge = true, created = 1.5, stale = -3 }",
            "return { maxAge = 0, owner = 42, created = 'soon' }",
            "return { maxAge = -1000, owner = '\\255\\254', stale = 9e15 }",
            "return { maxAge = 1e300, stale = 8e15, other = 'ignored' }",
            // Any number marks a retirement, whole or not, in range or not.
            "return { stale = 1.5 }",
            "return { stale = 1e300 }",
            "return { stale = -1e300 }",
            "return { stale = 0/0 }",
            "return { stale = 'soon' }",
        ];
        for src in cases {
            let v: LuaValue = lua.load(src).eval().unwrap();
            let read = std::cell::RefCell::new(None);
            // SAFETY: idx is the table heights() pushed.
            let (before, after) = heights(&lua, &v, |state, idx| unsafe {
                let room = Room::reserve_all(state).unwrap();
                *read.borrow_mut() = Some((
                    meta_at(state, idx),
                    encode_value_at(state, idx, &[b"__meta"], room),
                ));
            });
            assert_eq!(before, after, "{src}");
            let (direct, encoded) = read.into_inner().unwrap();
            assert_eq!(direct, Meta::from_value(&encoded.unwrap()), "{src}");
        }
    }
}

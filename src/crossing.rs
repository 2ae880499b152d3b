//! The native crossings of a request: `load` and `commit` (and drawing an id), as plain C
//! functions over the Lua stack. mlua's callback machinery (argument conversion, registry
//! references, a protected call per conversion) costs more than the work itself, and these
//! run on every request.
//!
//! The rules that keep them sound:
//! - Between entry and the final push, only Lua functions that cannot raise are called
//!   (`lua_type`, `lua_tolstring` on strings, `lua_next` on a table nobody changes, ...), so a
//!   Lua error never unwinds through Rust frames that own values.
//! - Everything that allocates in Lua (the results) is pushed inside `protected`, a
//!   `lua_pcall` whose callee frames hold only borrowed data and numbers; or, for `id()`, from
//!   its entry frame once that holds nothing but the id's plain bytes, which an allocation
//!   failure may unwind as `lua_error` unwinds `raise` (the protected call cost about as much
//!   as drawing the id).
//! - Errors leave as plain `honeymoon_session: ...` strings through `raise`, from the entry
//!   frame, after every owned Rust value is gone.
//! - A Rust panic is caught at the entry (`catch_unwind`) and raised as an error.

use crate::codec::meta::Meta;
use crate::codec::{self, Entries};
use crate::engine::{self, Commit, Engine, Op, Outcome};
use crate::id;
use crate::slot;
use mlua::ffi::{self, lua_State};
use mlua::prelude::*;
use std::ffi::{c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

type Pusher<'a> = &'a mut dyn FnMut(*mut lua_State) -> c_int;

/// The error of a crossing, as text (owned values are dropped before it is raised).
type Failed = String;

fn failed(e: LuaError) -> Failed {
    crate::error::message(&e)
}

/// The crossings of one engine, each a C closure over (engine, trampoline).
pub type Crossings = (
    LuaFunction,
    LuaFunction,
    LuaFunction,
    LuaFunction,
    LuaFunction,
);

/// `load`, `commit`, `id`, and for a Lua store `candidates` and `adopt`, for one engine.
pub fn functions(lua: &Lua, engine: Rc<Engine>) -> LuaResult<Crossings> {
    let fns: [ffi::lua_CFunction; 5] = [load, commit, draw_id, candidates, adopt];
    // SAFETY: exec_raw runs this in a protected call on a fresh stack. Each userdata holds its
    // Rc only once it has its `__gc` (see `push_engine`), so an allocation failure leaks
    // nothing; the stack ends with the five closures that exec_raw returns.
    unsafe {
        lua.exec_raw::<Crossings>((), |state| {
            for f in fns {
                push_engine(state, &engine);
                ffi::lua_pushcfunction(state, trampoline);
                ffi::lua_pushcclosure(state, f, 2);
            }
        })
    }
}

const ENGINE_META: &std::ffi::CStr = c"honeymoon_session.engine";

/// Pushes a full userdata holding one strong reference to `engine`, released by `__gc`.
unsafe fn push_engine(state: *mut lua_State, engine: &Rc<Engine>) {
    // SAFETY: called inside exec_raw's protected call (see `functions`); the block is sized
    // and aligned for one pointer (Lua aligns userdata for any C type). It holds null until
    // it has its metatable: making the metatable and its `__gc` field allocates, and a
    // failure there must not strand a strong reference in a userdata that is never released.
    // Nothing after the last write can fail, and from then on `__gc` releases the reference.
    unsafe {
        let slot = ffi::lua_newuserdata(state, size_of::<*const Engine>()) as *mut *const Engine;
        slot.write(std::ptr::null());
        if ffi::luaL_newmetatable(state, ENGINE_META.as_ptr()) != 0 {
            ffi::lua_pushcfunction(state, release_engine);
            ffi::lua_setfield(state, -2, c"__gc".as_ptr());
        }
        ffi::lua_setmetatable(state, -2);
        slot.write(Rc::into_raw(engine.clone()));
    }
}

unsafe extern "C-unwind" fn release_engine(state: *mut lua_State) -> c_int {
    // SAFETY: __gc of the userdata push_engine made: it holds a pointer from Rc::into_raw,
    // taken back once and nulled, so a second __gc (resurrection) does nothing.
    unsafe {
        let slot = ffi::lua_touserdata(state, 1) as *mut *const Engine;
        if !slot.is_null() && !(*slot).is_null() {
            drop(Rc::from_raw(*slot));
            *slot = std::ptr::null();
        }
    }
    0
}

/// The engine of the running closure.
///
/// # Safety
/// Only inside a closure made by `functions` (upvalue 1 is the engine userdata, alive while
/// the closure runs).
unsafe fn engine_of<'a>(state: *mut lua_State) -> Option<&'a Engine> {
    // SAFETY: as this function's contract.
    unsafe {
        let slot = ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)) as *const *const Engine;
        if slot.is_null() || (*slot).is_null() {
            return None;
        }
        Some(&**slot)
    }
}

/// Runs the pusher `*ud` (a `Pusher` behind a light userdata) as a protected call.
unsafe extern "C-unwind" fn trampoline(state: *mut lua_State) -> c_int {
    // SAFETY: `protected` passes a pointer to a live `Pusher` as the only argument.
    unsafe {
        let push = ffi::lua_touserdata(state, 1) as *mut Pusher;
        ffi::lua_settop(state, 0);
        widened((*push)(state))
    }
}

/// A result count with the upper half of the return register cleared. The C ABI leaves those
/// bits undefined for an `int`, but LuaJIT's VM (x64) reads the whole register: a count that
/// Rust loaded as part of a wider value crashed it. Going through memory as a `u32` makes the
/// load a 32-bit one, which zero-extends.
fn widened(n: c_int) -> c_int {
    std::hint::black_box(n as u32) as c_int
}

/// Runs `push` in a protected call, so that a Lua error while pushing (out of memory) is
/// caught before it can unwind through Rust frames. The values it pushed are left on the
/// stack; returns how many.
///
/// # Safety
/// Only inside a closure made by `functions` (upvalue 2 is the trampoline), with nothing
/// pushed above the crossing's arguments (or after `reserve`). `push` must push only from
/// borrowed data, and return the number of values it pushed.
unsafe fn protected(state: *mut lua_State, mut push: Pusher) -> Result<c_int, Failed> {
    // SAFETY: as this function's contract. A C function starts with LUA_MINSTACK (20) free
    // slots above its arguments (19 pushes on LuaJIT, which grows the stack on a push that
    // fills the last), so the two pushes below need no lua_checkstack, which on
    // LuaJIT and Lua 5.1 raises when the stack cannot grow (overflow, out of memory): here
    // that error would unwind through Rust frames, which aborts the process.
    unsafe {
        let top = ffi::lua_gettop(state);
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(2));
        ffi::lua_pushlightuserdata(state, &mut push as *mut Pusher as *mut c_void);
        if ffi::lua_pcall(state, 1, ffi::LUA_MULTRET, 0) != 0 {
            let why = match ffi::lua_type(state, -1) {
                ffi::LUA_TSTRING => String::from_utf8_lossy(string_at(state, -1)).into_owned(),
                _ => "a Lua error".to_string(),
            };
            ffi::lua_settop(state, top);
            return Err(format!(
                "honeymoon_session: {}",
                why.trim_start_matches("honeymoon_session: ")
            ));
        }
        Ok(ffi::lua_gettop(state) - top)
    }
}

/// Makes room for `n` more values on a crossing's stack (false: there is none), without
/// raising: the encoder's `Grow` for a nested table deeper than the LUA_MINSTACK slots a C
/// function starts with. On Lua 5.2 and later lua_checkstack never raises. On LuaJIT and Lua
/// 5.1 it raises when the stack cannot grow (a deep recursion reaches the stack's limit, or
/// memory runs out), and an error unwinding through Rust frames aborts the process; so there
/// the stack grows inside a protected call, which returns `n` nils to hold the room: Lua 5.1
/// runs a GC step as the call returns, and that step may halve a stack it finds little used.
/// The second lua_checkstack then finds the room without growing, and claims it for this
/// frame; nothing runs a GC step until the encoder is done (it allocates nothing in Lua),
/// which is what keeps the room on LuaJIT, whose GC shrinks a stack to its frames' use. An
/// out-of-memory while growing reads as no room too (Lua 5.2 and later cannot tell them apart).
///
/// # Safety
/// As `protected`, with two free slots for its pushes (`codec::Room` keeps them).
unsafe fn reserve(state: *mut lua_State, n: c_int) -> bool {
    // SAFETY: as this function's contract; the pusher pushes nils after making room for them.
    unsafe {
        if cfg!(any(feature = "luajit", feature = "lua51")) {
            let top = ffi::lua_gettop(state);
            let held = protected(state, &mut |l| {
                // One more: LuaJIT grows the stack on a push that fills its last slot.
                if ffi::lua_checkstack(l, n + 1) == 0 {
                    return 0;
                }
                for _ in 0..n {
                    ffi::lua_pushnil(l);
                }
                n
            });
            ffi::lua_settop(state, top);
            if held != Ok(n) {
                return false;
            }
        }
        ffi::lua_checkstack(state, n) != 0
    }
}

/// Raises `msg` as a plain string error. Called from an entry frame that owns nothing else.
unsafe fn raise(state: *mut lua_State, msg: Failed) -> c_int {
    let mut buf = [0u8; 1024];
    let n = msg.len().min(buf.len());
    buf[..n].copy_from_slice(&msg.as_bytes()[..n]);
    drop(msg);
    // SAFETY: nothing in this frame needs dropping when lua_error (or an allocation failure
    // in lua_pushlstring) unwinds it.
    unsafe {
        ffi::lua_settop(state, 0);
        ffi::lua_pushlstring(state, buf.as_ptr() as *const _, n);
        ffi::lua_error(state)
    }
}

/// Calls `body`, turning its error or panic into a raised string.
unsafe fn entry(
    state: *mut lua_State,
    body: unsafe fn(*mut lua_State) -> Result<c_int, Failed>,
) -> c_int {
    // SAFETY: `body` follows this module's rules (see the top of the file).
    let result = catch_unwind(AssertUnwindSafe(|| unsafe { body(state) }));
    let msg = match result {
        Ok(Ok(n)) => return widened(n),
        Ok(Err(msg)) => msg,
        Err(panic) => {
            drop(panic);
            "honeymoon_session: internal error (a bug: please report it)".to_string()
        }
    };
    // SAFETY: `result` is consumed; only `msg` is left, and raise drops it first.
    unsafe { raise(state, msg) }
}

unsafe fn string_at<'a>(state: *mut lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0usize;
    // SAFETY: the value at idx is a string (callers check); Lua keeps it alive while it is on
    // the stack, which outlives every use here.
    unsafe {
        let p = ffi::lua_tolstring(state, idx, &mut len);
        std::slice::from_raw_parts(p as *const u8, len)
    }
}

/// The string argument at `idx`, or None for anything else.
unsafe fn string_arg<'a>(state: *mut lua_State, idx: c_int) -> Option<&'a [u8]> {
    // SAFETY: lua_type does not raise; string_at only reads strings.
    unsafe { (ffi::lua_type(state, idx) == ffi::LUA_TSTRING).then(|| string_at(state, idx)) }
}

/// Whether a push of a decoded record that just failed, failed for want of stack: whether the
/// stack now refuses the room a decode can need (a record within the depth limit needs fewer
/// than `DEEPEST_WALK` slots: its results, a key, and two per level). A corrupt record near
/// the stack's limit reads as short too; either way the request fails. Inside a pusher.
unsafe fn stack_was_short(l: *mut lua_State) -> bool {
    // SAFETY: inside a pusher, where lua_checkstack may raise (the protected call catches it).
    unsafe { ffi::lua_checkstack(l, codec::DEEPEST_WALK) == 0 }
}

unsafe fn push_bytes(state: *mut lua_State, b: &[u8]) {
    // SAFETY: only called from pushers, inside `protected`.
    unsafe {
        ffi::lua_pushlstring(state, b.as_ptr() as *const _, b.len());
    }
}

unsafe fn push_opt(state: *mut lua_State, b: Option<&[u8]>) {
    // SAFETY: only called from pushers, inside `protected`.
    unsafe {
        match b {
            Some(b) => push_bytes(state, b),
            None => ffi::lua_pushnil(state),
        }
    }
}

/// Pushes a lifetime as `lifetime::term_table` makes it. Only inside a pusher.
unsafe fn push_term(l: *mut lua_State, t: &crate::lifetime::Term) {
    // SAFETY: inside a pusher (`protected`), whose frame has room for the table and a value.
    unsafe {
        let seconds = |l: *mut lua_State, v: Option<u64>| match v {
            Some(n) => ffi::lua_pushinteger(l, n as ffi::lua_Integer),
            None => ffi::lua_pushboolean(l, 0),
        };
        // Four fields: merge_patch adds `assumed`.
        ffi::lua_createtable(l, 0, 4);
        ffi::lua_pushinteger(l, t.ttl as ffi::lua_Integer);
        ffi::lua_setfield(l, -2, c"ttl".as_ptr());
        seconds(l, t.max_age);
        ffi::lua_setfield(l, -2, c"maxAge".as_ptr());
        seconds(l, t.original);
        ffi::lua_setfield(l, -2, c"originalMaxAge".as_ptr());
    }
}

/// `load(header)` for a native store: `id, data, flash, shadow, meta, snapshot, version[, copy,
/// n]` for a live session named by the header (`copy`: a shallow copy of a flat session's
/// data and its `n` keys), else a fresh `id`.
unsafe extern "C-unwind" fn load(state: *mut lua_State) -> c_int {
    // SAFETY: an entry point of a closure made by `functions`.
    unsafe { entry(state, load_body) }
}

unsafe fn load_body(state: *mut lua_State) -> Result<c_int, Failed> {
    // SAFETY: the header stays on the stack (argument 1) while it is borrowed.
    let (engine, header) = unsafe { (engine_of(state), string_arg(state, 1)) };
    let engine = engine.ok_or("honeymoon_session: the engine is gone")?;
    let mut found = engine::Candidates::default();
    match engine.find(header, &mut found).map_err(failed)? {
        Some((id, loaded)) => {
            // Set when the push failed: true when for want of stack, false on bad data.
            let mut unpushed = None;
            let record = &loaded.record.0;
            let version = loaded.version.as_deref().map(str::as_bytes);
            // A flat session (scalars only) also gets a shallow copy of its data, so a commit
            // that finds it unchanged needs no crossing (src/lua/session.lua).
            let flat = if engine.fast_commit() {
                codec::flat_len(record, slot::slot)
            } else {
                None
            };
            // SAFETY: the pusher pushes from borrowed data only. `data` is an absolute index
            // into the pusher's frame, which holds nothing else below the pushes.
            let n = unsafe {
                protected(state, &mut |l| {
                    let data = ffi::lua_gettop(l) + 2;
                    push_bytes(l, id.as_bytes());
                    if !codec::push_session(l, record, slot::slot) {
                        unpushed = Some(stack_was_short(l));
                        return 1;
                    }
                    push_bytes(l, record);
                    push_opt(l, version);
                    let Some(len) = flat else { return 7 };
                    if ffi::lua_checkstack(l, 8) == 0 {
                        return 7; // no copy: the commit crosses as usual
                    }
                    ffi::lua_createtable(l, 0, len.min(1 << 16) as c_int);
                    let copy = ffi::lua_gettop(l);
                    ffi::lua_pushnil(l);
                    while ffi::lua_next(l, data) != 0 {
                        ffi::lua_pushvalue(l, -2);
                        ffi::lua_insert(l, -2);
                        ffi::lua_rawset(l, copy);
                    }
                    ffi::lua_pushinteger(l, len as ffi::lua_Integer);
                    9
                })?
            };
            if unpushed == Some(true) {
                return Err(codec::STACK_EXHAUSTED.into());
            }
            if unpushed.is_some() {
                // No id in the message: ids are bearer secrets, and messages reach logs.
                return Err(engine
                    .stored_data_error("get", codec::why_undecodable(record).describe())
                    .to_string());
            }
            Ok(n)
        }
        // SAFETY: an entry body's frame, as `id_body`.
        None => unsafe { id_body(state) },
    }
}

/// `id()`: a fresh session id, pushed from this entry frame (see the top of the file).
unsafe extern "C-unwind" fn draw_id(state: *mut lua_State) -> c_int {
    let id = match fresh_id() {
        Ok(id) => id,
        // SAFETY: the message is all this frame owns, and raise drops it before lua_error.
        Err(msg) => return unsafe { raise(state, msg) },
    };
    // SAFETY: this frame owns nothing that needs dropping (the id is plain bytes; the result
    // it came in is gone with the statement above), so an allocation failure in
    // lua_pushlstring may unwind it, as lua_error unwinds `raise` (Lua raises its own memory
    // error then, as for the session table session.lua makes next). A C function starts with
    // LUA_MINSTACK free slots.
    unsafe { ffi::lua_pushlstring(state, id.as_ptr() as *const _, id.len()) };
    widened(1)
}

/// A fresh id's characters, or why none could be drawn; a panic is caught here.
fn fresh_id() -> Result<[u8; id::ID_LEN], Failed> {
    let drawn = catch_unwind(|| {
        let mut id = [0u8; id::ID_LEN];
        id::generate_into(&mut id).map(|()| id)
    });
    match drawn {
        Ok(result) => result,
        Err(panic) => {
            drop(panic);
            Err("honeymoon_session: internal error (a bug: please report it)".to_string())
        }
    }
}

unsafe fn id_body(state: *mut lua_State) -> Result<c_int, Failed> {
    let mut id = [0u8; id::ID_LEN];
    id::generate_into(&mut id)?;
    // SAFETY: the pusher pushes from borrowed data only.
    unsafe {
        protected(state, &mut |l| {
            push_bytes(l, &id);
            1
        })
    }
}

/// `id()` for LuaJIT's FFI, which calls it from compiled traces where a Lua C function would
/// end the trace: writes a fresh id's 32 characters to `out` and returns 0, or returns -1 (the
/// OS random source failed; the caller then draws through `id()`, which raises the reason).
///
/// # Safety
/// `out` points to 32 writable bytes (the caller's `uint8_t[32]`).
pub unsafe extern "C" fn id_into(out: *mut u8) -> c_int {
    let mut id = [0u8; id::ID_LEN];
    // No panic may leave an extern "C" function: it would abort the process.
    match catch_unwind(AssertUnwindSafe(|| id::generate_into(&mut id))) {
        Ok(Ok(())) => {
            // SAFETY: as this function's contract; the two buffers cannot overlap (`id` is
            // this frame's).
            unsafe { std::ptr::copy_nonoverlapping(id.as_ptr(), out, id::ID_LEN) };
            0
        }
        _ => -1,
    }
}

/// `candidates(header)`: the distinct ids that validly signed cookies in the header name, at
/// most `MAX_CANDIDATES`, as that many results (none for a nil header): what a Lua store looks
/// up, in order.
unsafe extern "C-unwind" fn candidates(state: *mut lua_State) -> c_int {
    // SAFETY: an entry point of a closure made by `functions`.
    unsafe { entry(state, candidates_body) }
}

unsafe fn candidates_body(state: *mut lua_State) -> Result<c_int, Failed> {
    // SAFETY: the header stays on the stack (argument 1) while it is borrowed.
    let (engine, header) = unsafe { (engine_of(state), string_arg(state, 1)) };
    let engine = engine.ok_or("honeymoon_session: the engine is gone")?;
    let Some(header) = header else { return Ok(0) };
    let found = engine.candidates(header);
    // The pusher pushes at most MAX_CANDIDATES values without lua_checkstack: a C function
    // starts with LUA_MINSTACK (20) free slots.
    const _: () = assert!(engine::MAX_CANDIDATES <= 16);
    // SAFETY: the pusher pushes from borrowed data only (`found`, on this frame).
    unsafe {
        protected(state, &mut |l| {
            let mut n = 0;
            for id in found.iter() {
                push_bytes(l, id.as_bytes());
                n += 1;
            }
            n
        })
    }
}

/// `adopt(record)`: a record string a Lua store returned, decoded as `load` decodes one:
/// `data, flash, shadow, meta, snapshot` (the snapshot is the argument itself); nothing when
/// it is past `absoluteTimeout` or a retired id's grace (the caller deletes it); `false,
/// message` when it is larger than `maxSize` or undecodable (the caller raises it as the
/// store's get failing).
unsafe extern "C-unwind" fn adopt(state: *mut lua_State) -> c_int {
    // SAFETY: an entry point of a closure made by `functions`.
    unsafe { entry(state, adopt_body) }
}

unsafe fn adopt_body(state: *mut lua_State) -> Result<c_int, Failed> {
    // SAFETY: the record stays on the stack (argument 1) while it is borrowed. The snapshot
    // pushed after the protected pushes (four) fits in the LUA_MINSTACK (20) slots a C
    // function starts with.
    unsafe {
        let engine = engine_of(state).ok_or("honeymoon_session: the engine is gone")?;
        ffi::lua_settop(state, 1);
        let record = string_arg(state, 1)
            .ok_or("honeymoon_session: adopt takes the record string a store returned")?;
        // Why the record cannot be adopted (too large, undecodable), returned as a value.
        let why = match engine.admits(record) {
            Ok(false) => return Ok(0),
            Err(why) => why,
            Ok(true) => {
                let mut unpushed = None;
                let n = protected(state, &mut |l| {
                    if codec::push_session(l, record, slot::slot) {
                        4
                    } else {
                        unpushed = Some(stack_was_short(l));
                        0
                    }
                })?;
                match unpushed {
                    None => {
                        ffi::lua_pushvalue(state, 1);
                        return Ok(n + 1);
                    }
                    Some(true) => return Err(codec::STACK_EXHAUSTED.into()),
                    Some(false) => {}
                }
                format!(
                    "honeymoon_session: {}",
                    codec::why_undecodable(record).describe()
                )
            }
        };
        protected(state, &mut |l| {
            ffi::lua_pushboolean(l, 0);
            push_bytes(l, why.as_bytes());
            2
        })
    }
}

/// `merge_patch(record, patch)` as a plain C function (no engine: upvalue 1 is nil).
pub fn merge_patch_function(lua: &Lua) -> LuaResult<LuaFunction> {
    // SAFETY: exec_raw runs this in a protected call on a fresh stack, which ends with the
    // closure it returns.
    unsafe {
        lua.exec_raw::<LuaFunction>((), |state| {
            ffi::lua_pushnil(state);
            ffi::lua_pushcfunction(state, trampoline);
            ffi::lua_pushcclosure(state, merge_patch, 2);
        })
    }
}

/// `merge_patch(record, patch)`: `merged` when the session names no owner before or after
/// and keeps the lifetime the patch assumed (the common case), else `merged, owner, changed`
/// and, where the merged session keeps another lifetime, that one (`{ ttl =, maxAge =,
/// originalMaxAge = }`, and `assumed`: that lifetime as an assumption, `lifetime::Assumed`'s
/// bytes, for the commit's touch after the merge); `false` for a retired id (see
/// `store::merge_patch`).
unsafe extern "C-unwind" fn merge_patch(state: *mut lua_State) -> c_int {
    // SAFETY: an entry point of a closure made by `merge_patch_function`.
    unsafe { entry(state, merge_patch_body) }
}

unsafe fn merge_patch_body(state: *mut lua_State) -> Result<c_int, Failed> {
    // SAFETY: both strings stay on the stack (arguments 1 and 2) while they are borrowed.
    let (current, patch) = unsafe { (string_arg(state, 1), string_arg(state, 2)) };
    let (Some(current), Some(patch)) = (current, patch) else {
        return Err(
            "honeymoon_session: merge_patch takes the stored record and the patch, both strings"
                .into(),
        );
    };
    let patched = crate::store::merge_patch(current, patch).map_err(failed)?;
    // SAFETY: the pusher pushes from borrowed data only (`patched`, on this frame).
    unsafe {
        protected(state, &mut |l| match &patched {
            crate::store::Patched::Retired => {
                ffi::lua_pushboolean(l, 0);
                1
            }
            crate::store::Patched::Merged(merged, owner, changed, kept) => {
                push_bytes(l, &merged.0);
                if owner.is_none() && !changed && kept.is_none() {
                    return 1;
                }
                push_opt(l, owner.as_deref().map(str::as_bytes));
                ffi::lua_pushboolean(l, c_int::from(*changed));
                let Some((kept, again)) = kept else { return 3 };
                push_term(l, kept);
                push_bytes(l, &again.to_bytes());
                ffi::lua_setfield(l, -2, c"assumed".as_ptr());
                4
            }
        })
    }
}

/// `commit(state, id, data, flash, shadow, snapshot, flags, version, meta, owner)`:
/// `line, state, snapshot, version[, op, a, b, ttl, maxAge, owner, originalMaxAge, assumed]`
/// (see `Engine::decide`; `assumed`, for a merge or touch that may find another lifetime
/// stored, what the lifetime handed to the store was made from, as `lifetime::Assumed` writes
/// it).
unsafe extern "C-unwind" fn commit(state: *mut lua_State) -> c_int {
    // SAFETY: an entry point of a closure made by `functions`.
    unsafe { entry(state, commit_body) }
}

unsafe fn commit_body(state: *mut lua_State) -> Result<c_int, Failed> {
    // SAFETY: arguments are read with lua_type checks first; borrowed strings stay on the
    // stack (arguments 1, 2, 6, 8) for the whole call. The encoder grows the stack only
    // through `reserve` (see `room` below), so no lua_checkstack here can raise.
    unsafe {
        let engine = engine_of(state).ok_or("honeymoon_session: the engine is gone")?;
        // The encoder walks in the LUA_MINSTACK slots this C function starts with (nothing is
        // pushed yet), and reserves more only for a nested table deeper than they reach. One
        // less: LuaJIT grows the stack on a push that fills its last slot.
        let room = codec::Room {
            ceiling: ffi::lua_gettop(state) + ffi::LUA_MINSTACK - 1,
            grow: reserve,
        };
        let st = engine::state_of(string_arg(state, 1).unwrap_or_default()).map_err(failed)?;
        let id = string_arg(state, 2).ok_or("honeymoon_session: not a session this module made")?;
        if ffi::lua_type(state, 3) != ffi::LUA_TTABLE {
            return Err("honeymoon_session: not a session this module made".into());
        }
        let flags = ffi::lua_tointegerx(state, 7, std::ptr::null_mut()) as i64;
        // Retiring an id (regenerate) writes what was stored, never this request's data: it is
        // not encoded (an oversized session must not stop regenerate).
        let retire = flags & engine::RETIRE != 0;
        let mut entries = Entries::with_limit(engine.max_size());
        if !retire {
            codec::encode_table_at(state, 3, &mut entries, room).map_err(failed)?;
            // A reserved key rawset into the data would be stored as flash or bookkeeping
            // (another owner, another lifetime): refused as the session's guard refuses it.
            if let Some(msg) = entries.keys().find_map(slot::reserved) {
                return Err(msg.into());
            }
        }
        if !retire && ffi::lua_type(state, 5) == ffi::LUA_TTABLE {
            codec::encode_table_at(state, 5, &mut entries, room).map_err(failed)?;
        }
        if !retire && ffi::lua_type(state, 4) == ffi::LUA_TTABLE {
            // One stored key per message (`__flash:<key>`): a merge then keeps the messages
            // another request added meanwhile, as it keeps any key it did not change.
            ffi::lua_pushnil(state);
            while ffi::lua_next(state, 4) != 0 {
                // session.lua's flash() lets only string keys in.
                let key =
                    string_arg(state, -2).ok_or("honeymoon_session: flash keys must be strings")?;
                let path: [&[u8]; 2] = [b"flash", key];
                let value = codec::encode_value_at(state, ffi::lua_gettop(state), &path, room)
                    .map_err(failed)?;
                ffi::lua_pop(state, 1); // the value; the key stays for lua_next
                entries
                    .push(&slot::flash_entry(key), &value)
                    .map_err(failed)?;
            }
        }
        let mut meta = if ffi::lua_type(state, 9) == ffi::LUA_TTABLE {
            codec::meta_at(state, 9)
        } else {
            Meta::default()
        };
        if let Some(field) = engine.index() {
            meta.owner = owner_at(state, 10, field)?;
        }
        let c = Commit {
            state: st,
            id,
            snap: string_arg(state, 6),
            flags,
            version: string_arg(state, 8),
            meta,
        };
        let out = engine.decide(&c, entries).map_err(failed)?;
        push_outcome(state, engine, &out, flags & engine::FINAL != 0)
    }
}

/// The owner a session's `index` field names (none when the field is nil), rendered as the
/// stores' `sessionsOf` renders its argument (`store::owner_arg`). Any other value is an error:
/// a session silently left out of its owner's index would survive "log out everywhere".
///
/// # Safety
/// `idx` is a valid stack index.
unsafe fn owner_at(
    state: *mut lua_State,
    idx: c_int,
    field: &str,
) -> Result<Option<String>, Failed> {
    // SAFETY: as the contract; lua_tolstring is called on strings only (no conversion).
    let owner = unsafe {
        match ffi::lua_type(state, idx) {
            ffi::LUA_TNIL => return Ok(None),
            ffi::LUA_TSTRING => std::str::from_utf8(string_at(state, idx))
                .ok()
                .map(String::from),
            ffi::LUA_TNUMBER => {
                #[cfg(any(feature = "lua53", feature = "lua54"))]
                if ffi::lua_isinteger(state, idx) != 0 {
                    return Ok(Some(
                        ffi::lua_tointegerx(state, idx, std::ptr::null_mut()).to_string(),
                    ));
                }
                crate::store::owner_of_float(ffi::lua_tonumber(state, idx))
            }
            _ => None,
        }
    };
    if owner.is_some() {
        return Ok(owner);
    }
    // SAFETY: as above.
    let got = unsafe {
        match ffi::lua_type(state, idx) {
            ffi::LUA_TNUMBER => format!(
                "the number {}",
                codec::number_text(ffi::lua_tonumber(state, idx))
            ),
            ffi::LUA_TSTRING => "a string that is not UTF-8".to_string(),
            t => codec::type_name(t).to_string(),
        }
    };
    // Named as the encoder names a path: the field may be any string (`session["user id"]`).
    let field = codec::describe_path(&[
        codec::Step::Key(b"session".to_vec()),
        codec::Step::Key(field.as_bytes().to_vec()),
    ]);
    Err(format!(
        "honeymoon_session: {field} names the session's owner (the index option), so it must be {}, got {got}",
        crate::store::OWNER_KINDS
    ))
}

/// Pushes `line, state, snapshot, version[, op, a, b, ttl, maxAge, owner, originalMaxAge,
/// assumed]` (the snapshot nil after the `final` commit), and for a table store's merge also
/// `patch`: the changes `a` and `b` as a patch with the session's maxSize, for the size check
/// made before the store's own merge (`Engine::table_merge`).
unsafe fn push_outcome(
    state: *mut lua_State,
    engine: &Engine,
    out: &Outcome,
    final_commit: bool,
) -> Result<c_int, Failed> {
    let snap = out.snap.as_ref().map(|r| r.0.as_slice());
    let whole_as_table = !engine.takes_records();
    let patch = match &out.op {
        // With the session's maxSize: `_merge_patch` refuses a merged session past it (and
        // the check before a table store's merge, in store.lua).
        Some(Op::Merge(changes, _)) => Some(
            changes
                .to_patch_with(Some(engine.max_size()), out.assumed.as_deref())
                .map_err(|e| failed(e.into()))?,
        ),
        _ => None,
    };
    // Set when a push of a decoded record failed: true when for want of stack.
    let mut unpushed = None;
    // SAFETY: the pusher pushes from borrowed data only (`out`, `patch`).
    let n = unsafe {
        protected(state, &mut |l| {
            push_opt(l, out.line.as_deref().map(str::as_bytes));
            push_bytes(l, engine::state_name(out.state).as_bytes());
            push_opt(l, if final_commit { None } else { snap });
            push_opt(l, out.version.as_deref());
            let Some(op) = &out.op else { return 4 };
            let whole = |l: *mut lua_State, unpushed: &mut Option<bool>| match snap {
                Some(s) if whole_as_table => {
                    if !codec::push_decoded(l, s) {
                        *unpushed = Some(stack_was_short(l));
                        ffi::lua_pushnil(l);
                    }
                }
                other => push_opt(l, other),
            };
            match op {
                Op::Set => {
                    push_bytes(l, b"set");
                    whole(l, &mut unpushed);
                    ffi::lua_pushnil(l);
                }
                Op::Replace => {
                    push_bytes(l, b"replace");
                    whole(l, &mut unpushed);
                    ffi::lua_pushnil(l);
                }
                Op::Touch => {
                    push_bytes(l, b"touch");
                    ffi::lua_pushnil(l);
                    ffi::lua_pushnil(l);
                }
                Op::Merge(changes, as_patch) => {
                    push_bytes(l, b"merge");
                    if *as_patch {
                        push_opt(l, patch.as_deref());
                        ffi::lua_pushnil(l);
                    } else {
                        ffi::lua_createtable(l, 0, changes.set.len() as c_int);
                        for (k, v) in &changes.set {
                            push_bytes(l, k);
                            if !codec::push_decoded(l, v) {
                                unpushed = Some(stack_was_short(l));
                                ffi::lua_pushnil(l);
                            }
                            ffi::lua_rawset(l, -3);
                        }
                        ffi::lua_createtable(l, changes.removed.len() as c_int, 0);
                        for (i, k) in changes.removed.iter().enumerate() {
                            push_bytes(l, k);
                            ffi::lua_rawseti(l, -2, (i + 1) as _);
                        }
                    }
                }
            }
            ffi::lua_pushinteger(l, out.ttl as ffi::lua_Integer);
            match out.max_age {
                Some(m) => ffi::lua_pushinteger(l, m as ffi::lua_Integer),
                None => ffi::lua_pushboolean(l, 0),
            }
            push_opt(l, out.owner.as_deref().map(str::as_bytes));
            match out.original_max_age {
                Some(m) => ffi::lua_pushinteger(l, m as ffi::lua_Integer),
                None => ffi::lua_pushboolean(l, 0),
            }
            // What store.lua needs it for: a touch, and a table store's merge (a record
            // store's patch carries it).
            match (out.assumed.as_deref(), op) {
                (Some(a), Op::Touch | Op::Merge(_, false)) => push_bytes(l, &a.to_bytes()),
                _ => ffi::lua_pushnil(l),
            }
            match (op, &patch) {
                (Op::Merge(_, false), Some(p)) => {
                    push_bytes(l, p);
                    13
                }
                _ => 12,
            }
        })?
    };
    match unpushed {
        None => Ok(n),
        Some(true) => Err(codec::STACK_EXHAUSTED.into()),
        Some(false) => Err("honeymoon_session: a session record could not be decoded".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `id()` pushes its result without a protected call: when memory runs out there, a memory
    /// error leaves the call (Lua's own: nothing in its frame needed dropping), and the state
    /// goes on drawing ids once memory is back.
    #[test]
    fn an_id_drawn_when_memory_runs_out_is_an_id_or_a_memory_error() {
        let lua = Lua::new();
        let opts: LuaTable = lua.load("return { secret = 's' }").eval().unwrap();
        let engine = Rc::new(Engine::new(&lua, Some(opts)).unwrap());
        let (_, _, id, _, _) = functions(&lua, engine).unwrap();
        let (mut drawn, mut refused) = (0, 0);
        for extra in (0..2048).step_by(16) {
            lua.gc_collect().unwrap();
            lua.set_memory_limit(lua.used_memory() + extra).unwrap();
            // Each id is a new string: several per limit, so one of them meets its edge.
            for _ in 0..8 {
                match id.call::<LuaString>(()) {
                    Ok(s) => {
                        assert_eq!(s.as_bytes().len(), 32);
                        drawn += 1;
                    }
                    Err(LuaError::MemoryError(_)) => refused += 1,
                    // Through a protected call (as before), the module's own message.
                    Err(e) if e.to_string().contains("not enough memory") => refused += 1,
                    Err(e) => panic!("memory limit +{extra} bytes: {e}"),
                }
            }
            lua.set_memory_limit(0).unwrap();
        }
        assert!(refused > 0 && drawn > 0, "drawn {drawn}, refused {refused}");
        assert_eq!(id.call::<LuaString>(()).unwrap().as_bytes().len(), 32);
    }

    /// Making the crossings when memory runs out at any allocation: every strong reference a
    /// userdata took is released once the state collects what was made (none is left in a
    /// userdata that never got its `__gc`).
    #[test]
    fn making_the_crossings_leaks_no_engine_when_memory_runs_out() {
        let mut failed = 0;
        for extra in (0..4096).step_by(8) {
            let lua = Lua::new();
            let opts: LuaTable = lua.load("return { secret = 's' }").eval().unwrap();
            let engine = Rc::new(Engine::new(&lua, Some(opts)).unwrap());
            lua.gc_collect().unwrap();
            lua.set_memory_limit(lua.used_memory() + extra).unwrap();
            let made = functions(&lua, engine.clone());
            lua.set_memory_limit(0).unwrap();
            failed += usize::from(made.is_err());
            drop(made);
            lua.gc_collect().unwrap();
            lua.gc_collect().unwrap();
            assert_eq!(Rc::strong_count(&engine), 1, "memory limit +{extra} bytes");
        }
        assert!(failed > 0, "no allocation failed: the test tests nothing");
    }
}

//! The engine: one per `session()` configuration. It takes bytes and Lua values and returns
//! bytes and Lua values: it finds and unsigns the cookie, draws ids, decodes a stored record
//! into plain Lua tables, and at commit encodes the session again, diffs it against what was
//! loaded and decides what must happen (see `lifecycle`).
//!
//! A native store (MemoryStore, the blocking RedisStore) carries the decision out inside the
//! same call, so a request crosses into native code twice: load and commit. Any other store is
//! driven from Lua (`src/lua/store.lua`), where its methods may yield; the engine then returns
//! the operation for Lua to perform.

use crate::codec::{self, Changes, Entries, Record, Slot};
use crate::cookie;
use crate::id;
use crate::lifecycle::{self, Cookie, Facts, Policy, State, Write};
use crate::options::Options;
use crate::store::{self, Lifetime, Merged, Store};
use mlua::prelude::*;
use std::rc::Rc;

/// The session API's method names (defined in `src/lua/session.lua`): data keys with these
/// names are kept beside the data so that `session:get(...)` still finds the method.
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

/// Where flash messages live in the stored record; never shown as data.
pub const FLASH_KEY: &str = "__flash";

/// At most this many distinct, validly signed ids from one Cookie header are looked up in the
/// store: repeating a signed cookie must not multiply store lookups.
pub const MAX_CANDIDATES: usize = 4;

/// What kind of store the engine talks to.
enum Backend {
    /// Carried out inside the engine's calls.
    Native(Rc<dyn Store>),
    /// A Lua object driven from Lua; `record` stores take the encoded record, the others
    /// (the Sessions page's contract) plain tables.
    Lua { record: bool, merge: bool },
}

pub struct Engine {
    options: Options,
    policy: Policy,
    backend: Backend,
}

fn slot(key: &[u8]) -> Slot {
    if key == FLASH_KEY.as_bytes() {
        Slot::Flash
    } else if METHODS.iter().any(|m| m.as_bytes() == key) {
        Slot::Shadow
    } else {
        Slot::Data
    }
}

fn state_of(s: &[u8]) -> LuaResult<State> {
    Ok(match s {
        b"new" => State::New,
        b"stored" => State::Stored,
        b"gone" => State::Gone,
        b"destroyed" => State::Destroyed,
        _ => {
            return Err(LuaError::runtime(
                "honeymoon_session: not a session this module made",
            ));
        }
    })
}

fn state_name(s: State) -> &'static str {
    match s {
        State::New => "new",
        State::Stored => "stored",
        State::Gone => "gone",
        State::Destroyed => "destroyed",
    }
}

/// Commit flags, set by `src/lua/store.lua`.
const MUST_SAVE: i64 = 1;
const COOKIE_DUE: i64 = 2;
const SECURE: i64 = 4;
/// `session:save()`: write now, no cookie line yet.
const SAVE_NOW: i64 = 8;

/// `engine:commit(state, id, data, flash, shadow, snapshot, flags, resend, version)`.
type CommitArgs = (
    LuaString,
    LuaString,
    LuaTable,
    LuaValue,
    LuaValue,
    Option<LuaString>,
    i64,
    Option<LuaString>,
    Option<LuaString>,
);

/// One commit's inputs, as the Lua session holds them.
struct Commit<'a> {
    state: State,
    id: &'a [u8],
    snap: Option<&'a [u8]>,
    flags: i64,
    resend: Option<LuaString>,
    version: Option<LuaString>,
}

impl Engine {
    pub fn new(lua: &Lua, opts: Option<LuaTable>) -> LuaResult<Engine> {
        let (options, store) = Options::parse(opts, lua)?;
        let backend = match store::native(&store) {
            Some(native) => Backend::Native(native),
            None => {
                let (record, merge) = store::lua_store_format(&store)?;
                Backend::Lua { record, merge }
            }
        };
        let policy = Policy {
            resave: options.resave,
            rolling: options.rolling,
            save_uninitialized: options.save_uninitialized,
        };
        Ok(Engine {
            options,
            policy,
            backend,
        })
    }

    fn life(&self) -> Lifetime<'_> {
        Lifetime {
            ttl: self.options.ttl,
            cookie: Some(&self.options.cookie),
        }
    }

    /// The distinct ids named by validly signed cookies, each with the cookie value to send
    /// back unchanged when the current secret made it.
    fn candidates(&self, header: &[u8]) -> Vec<(String, Option<String>)> {
        let header = String::from_utf8_lossy(header);
        let mut out: Vec<(String, Option<String>)> = Vec::new();
        for value in cookie::find(&header, &self.options.name) {
            let Some((id, current)) = self.options.signer.unsign(&value) else {
                continue;
            };
            if !id::looks_valid(id) || out.iter().any(|(seen, _)| seen == id) {
                continue;
            }
            let id = id.to_string();
            out.push((id, current.then_some(value)));
            if out.len() == MAX_CANDIDATES {
                break;
            }
        }
        out
    }

    /// Decodes a stored record into (data, snapshot, flash, shadow).
    fn open(&self, lua: &Lua, record: &[u8]) -> LuaResult<LuaMultiValue> {
        let (data, flash, shadow) = codec::decode_session(lua, record, slot)?;
        (data, lua.create_string(record)?, flash, shadow).into_lua_multi(lua)
    }

    /// Loads a native store's session: `id, data, snapshot, flash, shadow, resend, version`,
    /// or just a fresh `id` when no cookie names a live session.
    fn load(&self, lua: &Lua, header: Option<LuaString>) -> LuaResult<LuaMultiValue> {
        let Backend::Native(store) = &self.backend else {
            return Err(LuaError::runtime(
                "honeymoon_session: load is for native stores; this engine drives a Lua store",
            ));
        };
        if let Some(header) = header {
            for (id, resend) in self.candidates(&header.as_bytes()) {
                if let Some(loaded) = store.get(&id)? {
                    let (data, flash, shadow) = codec::decode_session(lua, &loaded.record.0, slot)?;
                    let snap = lua.create_string(&loaded.record.0)?;
                    return (id, data, snap, flash, shadow, resend, loaded.version)
                        .into_lua_multi(lua);
                }
            }
        }
        new_id()?.into_lua_multi(lua)
    }

    /// The record the session holds now: data, method-named keys and pending flash.
    fn record(
        &self,
        lua: &Lua,
        data: &LuaTable,
        flash: &LuaValue,
        shadow: &LuaValue,
    ) -> LuaResult<Record> {
        let mut entries = Entries::default();
        codec::encode_entries(lua, data, &mut entries)?;
        if let LuaValue::Table(shadow) = shadow {
            codec::encode_entries(lua, shadow, &mut entries)?;
        }
        if let LuaValue::Table(f) = flash
            && !f.is_empty()
        {
            let v = codec::encode_value(lua, "flash", flash)?;
            entries.push(FLASH_KEY.as_bytes(), &v);
        }
        Ok(entries.into_record())
    }

    fn cookie_line(&self, c: &Commit, secure_request: bool) -> LuaResult<String> {
        let signed = match &c.resend {
            Some(v) => v.to_str()?.to_string(),
            None => self
                .options
                .signer
                .sign(std::str::from_utf8(c.id).unwrap_or_default()),
        };
        let value = cookie::encode_value(&signed);
        Ok(self
            .options
            .cookie
            .line(&self.options.name, &value, secure_request))
    }

    /// Decides, performs (native stores) or describes (Lua stores) the commit.
    /// Returns `line, state, snapshot, version, op, a, b`.
    fn commit(
        &self,
        lua: &Lua,
        c: Commit,
        data: LuaTable,
        flash: LuaValue,
        shadow: LuaValue,
    ) -> LuaResult<LuaMultiValue> {
        let record = self.record(lua, &data, &flash, &shadow)?;
        let modified = c.snap != Some(record.0.as_slice());
        let facts = Facts {
            state: c.state,
            modified,
            empty: record.is_empty(),
            must_save: c.flags & (MUST_SAVE | SAVE_NOW) != 0,
            cookie_due: c.flags & COOKIE_DUE != 0,
        };
        let write = lifecycle::should_save(&facts, &self.policy);
        let touch = lifecycle::should_touch(&facts, &self.policy, write);
        let changes = match (write, c.snap) {
            (Write::Merge, Some(snap)) if modified => Record(snap.to_vec()).diff(&record)?,
            _ => Changes::default(),
        };
        let id = std::str::from_utf8(c.id)
            .map_err(|_| LuaError::runtime("honeymoon_session: not a session id"))?;
        let final_commit = c.flags & SAVE_NOW == 0;
        let secure = c.flags & SECURE != 0;
        match &self.backend {
            Backend::Native(store) => {
                let life = self.life();
                let mut state = c.state;
                let mut version = c.version.as_ref().map(|v| v.to_string_lossy());
                let stored_now = match write {
                    Write::Set => {
                        version = store.set(id, &record, &life)?;
                        state = State::Stored;
                        true
                    }
                    Write::Merge => {
                        match store.merge(id, &changes, &record, version.as_deref(), &life)? {
                            Merged::Written(v) => {
                                version = v;
                                true
                            }
                            Merged::Gone => {
                                state = State::Gone;
                                false
                            }
                        }
                    }
                    Write::None if touch => {
                        let alive = store.touch(id, &life)?;
                        if !alive {
                            state = State::Gone;
                        }
                        alive
                    }
                    Write::None => false,
                };
                let line = if final_commit {
                    match lifecycle::should_set_cookie(state, stored_now, facts.cookie_due) {
                        Cookie::Session => Some(self.cookie_line(&c, secure)?),
                        Cookie::Clear => Some(
                            self.options
                                .cookie
                                .clearing_line(&self.options.name, secure),
                        ),
                        Cookie::None => None,
                    }
                } else {
                    None
                };
                let snap = match write {
                    Write::None => None,
                    _ => Some(lua.create_string(&record.0)?),
                };
                (line, state_name(state), snap, version).into_lua_multi(lua)
            }
            Backend::Lua {
                record: as_record,
                merge: has_merge,
            } => {
                // The line to send if the store confirms; Lua drops it when the store says
                // the session is gone.
                let after = match write {
                    Write::Set => State::Stored,
                    _ => c.state,
                };
                let stored_now = write != Write::None || touch;
                let line = if final_commit {
                    match lifecycle::should_set_cookie(after, stored_now, facts.cookie_due) {
                        Cookie::Session => Some(self.cookie_line(&c, secure)?),
                        Cookie::Clear => Some(
                            self.options
                                .cookie
                                .clearing_line(&self.options.name, secure),
                        ),
                        Cookie::None => None,
                    }
                } else {
                    None
                };
                let snap = match write {
                    Write::None => LuaValue::Nil,
                    _ => LuaValue::String(lua.create_string(&record.0)?),
                };
                let none = || (LuaValue::Nil, LuaValue::Nil);
                let (op, a, b) = match write {
                    Write::Set if *as_record => (
                        "set",
                        LuaValue::String(lua.create_string(&record.0)?),
                        LuaValue::Nil,
                    ),
                    Write::Set => ("set", LuaValue::Table(record.to_table(lua)?), LuaValue::Nil),
                    Write::Merge if !*has_merge => {
                        let whole = if *as_record {
                            LuaValue::String(lua.create_string(&record.0)?)
                        } else {
                            LuaValue::Table(record.to_table(lua)?)
                        };
                        ("replace", whole, LuaValue::Nil)
                    }
                    Write::Merge if *as_record => (
                        "merge",
                        LuaValue::String(lua.create_string(changes.to_patch())?),
                        LuaValue::Nil,
                    ),
                    Write::Merge => {
                        let changed = lua.create_table_with_capacity(0, changes.set.len())?;
                        for (k, v) in &changes.set {
                            changed.raw_set(lua.create_string(k)?, codec::decode_value(lua, v)?)?;
                        }
                        let removed = lua.create_table_with_capacity(changes.removed.len(), 0)?;
                        for (i, k) in changes.removed.iter().enumerate() {
                            removed.raw_set(i + 1, lua.create_string(k)?)?;
                        }
                        ("merge", LuaValue::Table(changed), LuaValue::Table(removed))
                    }
                    Write::None if touch => {
                        let (a, b) = none();
                        ("touch", a, b)
                    }
                    Write::None => {
                        let (line, state) = (line, state_name(after));
                        return (line, state, snap, c.version).into_lua_multi(lua);
                    }
                };
                (line, state_name(after), snap, c.version, op, a, b).into_lua_multi(lua)
            }
        }
    }

    /// Decodes what a Lua store returned: a record string (record stores) or a data table.
    fn adopt(&self, lua: &Lua, stored: LuaValue) -> LuaResult<LuaMultiValue> {
        match stored {
            LuaValue::String(s) => self.open(lua, &s.as_bytes()),
            LuaValue::Table(t) => {
                // A table store may hand out its own table: the request works on a copy.
                let record = Record::from_table(lua, &t)?;
                self.open(lua, &record.0)
            }
            other => Err(LuaError::runtime(format!(
                "honeymoon_session: store:get returned {}; it must return {} or nil",
                codec::a_type(&other),
                if matches!(self.backend, Backend::Lua { record: true, .. }) {
                    "a record string"
                } else {
                    "a table"
                }
            ))),
        }
    }

    fn destroy(&self, id: &str) -> LuaResult<()> {
        if let Backend::Native(store) = &self.backend {
            store.destroy(id)?;
        }
        Ok(())
    }
}

/// Errors go back to Lua as values, `false, message`, and `src/lua/store.lua` raises the
/// message as a plain string: every error the module raises has one shape, without a pcall on
/// the hot path.
fn plain(lua: &Lua, r: LuaResult<LuaMultiValue>) -> LuaResult<LuaMultiValue> {
    match r {
        Ok(v) => Ok(v),
        Err(e) => (false, message(&e)).into_lua_multi(lua),
    }
}

/// The plain text of an error: no mlua wrapping, no traceback.
pub fn message(e: &LuaError) -> String {
    let text = match e {
        LuaError::CallbackError { cause, .. } => return message(cause),
        LuaError::RuntimeError(m) => m.clone(),
        LuaError::MemoryError(_) => "honeymoon_session: not enough memory".to_string(),
        other => other.to_string(),
    };
    match text.split_once("\nstack traceback:") {
        Some((m, _)) => m.to_string(),
        None => text,
    }
}

/// A fresh session id.
pub fn new_id() -> LuaResult<String> {
    id::generate().map_err(LuaError::runtime)
}

impl LuaUserData for Engine {
    fn add_fields<F: LuaUserDataFields<Self>>(f: &mut F) {
        f.add_field_method_get("name", |_, e| Ok(e.options.name.clone()));
        f.add_field_method_get("ttl", |_, e| Ok(e.options.ttl));
        f.add_field_method_get("native", |_, e| Ok(matches!(e.backend, Backend::Native(_))));
        f.add_field_method_get("saveUninitialized", |_, e| Ok(e.options.save_uninitialized));
    }

    fn add_methods<M: LuaUserDataMethods<Self>>(m: &mut M) {
        m.add_method("load", |lua, e, header: Option<LuaString>| {
            plain(lua, e.load(lua, header))
        });
        m.add_method("candidates", |lua, e, header: Option<LuaString>| {
            let list = lua.create_table()?;
            if let Some(header) = header {
                for (i, (id, resend)) in e.candidates(&header.as_bytes()).into_iter().enumerate() {
                    list.raw_set(2 * i + 1, id)?;
                    list.raw_set(
                        2 * i + 2,
                        resend.map_or(LuaValue::Boolean(false), |r| {
                            lua.create_string(r).map_or(LuaValue::Nil, LuaValue::String)
                        }),
                    )?;
                }
            }
            Ok(list)
        });
        m.add_method("adopt", |lua, e, stored: LuaValue| {
            plain(lua, e.adopt(lua, stored))
        });
        m.add_function("id", |_, ()| new_id());
        m.add_method(
            "commit",
            |lua, e, (state, id, data, flash, shadow, snap, flags, resend, version): CommitArgs| {
                let id_bytes = id.as_bytes();
                let snap_bytes = snap.as_ref().map(|s| s.as_bytes());
                let result = state_of(&state.as_bytes()).and_then(|state| {
                    let c = Commit {
                        state,
                        id: &id_bytes,
                        snap: snap_bytes.as_deref(),
                        flags,
                        resend,
                        version,
                    };
                    e.commit(lua, c, data, flash, shadow)
                });
                plain(lua, result)
            },
        );
        m.add_method("destroy", |lua, e, id: LuaString| {
            let r = id.to_str().and_then(|id| e.destroy(&id));
            plain(lua, r.and_then(|()| true.into_lua_multi(lua)))
        });
        m.add_method("life", |lua, e, ()| life_table(lua, &e.options));
    }
}

/// The lifetime a Lua store is handed with each write: the TTL and the cookie's attributes
/// (RedisStore writes express-session's `cookie` object from them).
fn life_table(lua: &Lua, o: &Options) -> LuaResult<LuaTable> {
    let t = lua.create_table()?;
    t.raw_set("ttl", o.ttl)?;
    t.raw_set("maxAge", o.cookie.max_age)?;
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
    Ok(t)
}

//! The engine: one per `session()` configuration. It takes bytes and Lua values and returns
//! bytes and Lua values: it finds and unsigns the cookie, draws ids, decodes a stored record
//! into plain Lua tables, and at commit encodes the session again, diffs it against what was
//! loaded and decides what must happen (see `lifecycle`).
//!
//! A native store (MemoryStore, the blocking RedisStore) carries the decision out inside the
//! same call, so a request crosses into native code twice: load and commit. Any other store is
//! driven from Lua (`src/lua/store.lua`), where its methods may yield; the engine then returns
//! the operation for Lua to perform.

use crate::clock;
use crate::codec::meta::{self, META_KEY, Meta};
use crate::codec::{self, Changes, Entries, Record};
use crate::cookie;
use crate::id;
use crate::lifecycle::{self, Cookie, Facts, Policy, State, Write};
use crate::lifetime::{Assumed, MaxAge, Rule, Term, Ttl};
use crate::options::Options;
use crate::slot;
use crate::store::{self, Id, Lifetime, Loaded, Merged, Store, StoreError, Touched};
use mlua::prelude::*;
use std::rc::Rc;

/// At most this many distinct, validly signed ids from one Cookie header are looked up in the
/// store: repeating a signed cookie must not multiply store lookups.
pub const MAX_CANDIDATES: usize = 4;

/// Up to `MAX_CANDIDATES` distinct ids, on the stack.
pub struct Candidates {
    ids: [[u8; id::MAX_COOKIE_ID]; MAX_CANDIDATES],
    lens: [usize; MAX_CANDIDATES],
    len: usize,
}

impl Default for Candidates {
    fn default() -> Candidates {
        Candidates {
            ids: [[0; id::MAX_COOKIE_ID]; MAX_CANDIDATES],
            lens: [0; MAX_CANDIDATES],
            len: 0,
        }
    }
}

impl Candidates {
    fn push(&mut self, id: &str) {
        let bytes = id.as_bytes();
        if self.len >= MAX_CANDIDATES || self.iter().any(|seen| seen == id) {
            return;
        }
        let Some(slot) = self.ids[self.len].get_mut(..bytes.len()) else {
            return;
        };
        slot.copy_from_slice(bytes);
        self.lens[self.len] = bytes.len();
        self.len += 1;
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        // Ids are checked ASCII (id::looks_valid) before they are pushed.
        self.ids[..self.len]
            .iter()
            .zip(self.lens)
            .filter_map(|(id, n)| std::str::from_utf8(id.get(..n)?).ok())
    }
}

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
    /// `options.ttl`, as the stores take it.
    ttl: Ttl,
    /// How the options turn a session's bookkeeping into its lifetime.
    rule: Rule,
    policy: Policy,
    backend: Backend,
}

pub fn state_of(s: &[u8]) -> LuaResult<State> {
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

pub fn state_name(s: State) -> &'static str {
    match s {
        State::New => "new",
        State::Stored => "stored",
        State::Gone => "gone",
        State::Destroyed => "destroyed",
    }
}

/// Commit flags, set by `src/lua/store.lua`.
pub const MUST_SAVE: i64 = 1;
pub const COOKIE_DUE: i64 = 2;
pub const SECURE: i64 = 4;
/// `session:save()`: write now, no cookie line yet.
pub const SAVE_NOW: i64 = 8;
/// `regenerate()`: retire this stored id for the stale grace (see `Engine::retire`).
pub const RETIRE: i64 = 16;
/// `session:touch()`: refresh the lifetime even without `rolling`.
pub const TOUCH: i64 = 32;
/// The response's commit: nothing in the request reads the session's snapshot after it, so the
/// crossing does not copy it back into Lua.
pub const FINAL: i64 = 64;

/// One commit's inputs, as the Lua session holds them.
pub struct Commit<'a> {
    pub state: State,
    pub id: &'a [u8],
    pub snap: Option<&'a [u8]>,
    pub flags: i64,
    pub version: Option<&'a [u8]>,
    /// The session's bookkeeping as Lua holds it (its own cookie lifetime), with the owner
    /// read from the data.
    pub meta: Meta,
}

/// What a commit decided (and, for a native store, did).
pub struct Outcome {
    /// The Set-Cookie line to send.
    pub line: Option<String>,
    pub state: State,
    /// The new snapshot, when the store was written.
    pub snap: Option<Record>,
    pub version: Option<Vec<u8>>,
    /// For a Lua store: what Lua must do.
    pub op: Option<Op>,
    /// The write's store TTL, cookie lifetime (`None`: browser session) and owner, for a Lua
    /// store.
    pub ttl: u64,
    pub max_age: Option<u64>,
    pub original_max_age: Option<u64>,
    pub owner: Option<String>,
    /// What the write's lifetime assumed, for a Lua store's merge or touch that may find
    /// another lifetime stored (see `Lifetime::assumed`). Boxed: a native store's commit
    /// moves the outcome around without it.
    pub assumed: Option<Box<Assumed>>,
}

/// An outcome, whether the store's lifetime for the session was set or refreshed, and the
/// lifetime a native store kept for it where that is not the one it was handed.
struct Carried {
    outcome: Outcome,
    stored_now: bool,
    kept: Option<Term>,
}

/// A store operation left to Lua.
pub enum Op {
    /// Store the whole session (`Outcome::snap`).
    Set,
    /// Apply the changes; true: as a patch string (record stores), false: as tables.
    Merge(Changes, bool),
    /// A store without merge: check it still holds the session, then set it whole.
    Replace,
    Touch,
}

impl Engine {
    pub fn new(lua: &Lua, opts: Option<LuaTable>) -> LuaResult<Engine> {
        let (options, store) = Options::parse(opts, lua)?;
        let backend = match store::native(&store).map_err(LuaError::runtime)? {
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
        let ttl = Ttl::new(options.ttl).ok_or_else(|| {
            LuaError::runtime(format!(
                "honeymoon_session: ttl must be a whole number of seconds from 1 to {}",
                Ttl::MAX
            ))
        })?;
        let rule = Rule {
            ttl: options.ttl,
            max_age: options.cookie.max_age,
            absolute: options.absolute_timeout,
        };
        Ok(Engine {
            options,
            ttl,
            rule,
            policy,
            backend,
        })
    }

    /// The options this engine was made with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// A native store (MemoryStore, the blocking RedisStore), carried out inside the calls.
    pub fn native(&self) -> bool {
        matches!(self.backend, Backend::Native(_))
    }

    /// The data field that names a session's owner (`index`).
    pub fn index(&self) -> Option<&str> {
        self.options.index.as_deref()
    }

    /// Whether a commit may skip the crossing for an unchanged flat session: no option that
    /// makes every commit do something (rolling, resave) or stamps bookkeeping into it
    /// (absoluteTimeout, index).
    pub fn fast_commit(&self) -> bool {
        !self.policy.rolling
            && !self.policy.resave
            && self.options.absolute_timeout.is_none()
            && self.options.index.is_none()
    }

    /// A Lua store that takes and returns encoded records (else plain tables).
    pub fn takes_records(&self) -> bool {
        matches!(self.backend, Backend::Lua { record: true, .. })
    }

    /// The largest session record, in bytes (`maxSize`).
    pub fn max_size(&self) -> usize {
        self.options.max_size
    }

    /// The store's name in errors: `MemoryStore`, `RedisStore`, or `store` for a Lua store.
    pub fn store_name(&self) -> &'static str {
        match &self.backend {
            Backend::Native(store) => store.name(),
            Backend::Lua { .. } => "store",
        }
    }

    /// A native store's error about what it holds, naming the store, the method and, for a
    /// store elsewhere (Redis), its address.
    pub fn stored_data_error(
        &self,
        method: &'static str,
        why: impl std::fmt::Display,
    ) -> StoreError {
        let place = match &self.backend {
            Backend::Native(store) => store.place(),
            Backend::Lua { .. } => None,
        };
        match place {
            Some(place) => StoreError::new(self.store_name(), method, format!("{why} ({place})")),
            None => StoreError::new(self.store_name(), method, why),
        }
    }

    /// Why a stored record must not be decoded: larger than `maxSize` (a retired id's mark not
    /// counted: `meta::within_max`).
    fn too_large(&self, record: &[u8]) -> Option<String> {
        let max = self.options.max_size;
        (!meta::within_max(record, max)).then(|| codec::larger_than_max(record.len(), max))
    }

    /// The session's own cookie lifetime where it has one, else the config's: the store TTL
    /// and the cookie's Max-Age of a write now, capped by `absoluteTimeout`.
    fn lifetime<'a>(&'a self, meta: &'a Meta, now: i64, https: bool) -> Lifetime<'a> {
        let term = self.rule.term(meta.max_age, meta.created, now);
        Lifetime {
            ttl: Ttl::new(term.ttl).unwrap_or(self.ttl),
            cookie: Some(&self.options.cookie),
            max_age: term.max_age,
            original_max_age: term.original,
            owner: meta.owner.as_deref(),
            https,
            assumed: None,
        }
    }

    /// A stored session that must not be adopted: past `absoluteTimeout`, or a retired id
    /// whose stale grace is over. `ttl_kept`: the store is native, so its TTL removed such an
    /// id on time; a Lua store's may not have (a store that ignores the TTL, or one whose
    /// clock runs behind), and a retired id must not stay readable past its grace.
    fn expired(&self, record: &[u8], ttl_kept: bool) -> bool {
        if ttl_kept && self.options.absolute_timeout.is_none() {
            // No walk over the record (nor a clock read) on the native hot path.
            return false;
        }
        let now = clock::now_ms();
        let meta = Meta::of_record(record);
        meta.stale.is_some_and(|s| s <= now)
            || self
                .rule
                .time_left(meta.created, now)
                .is_some_and(|l| l <= 0)
    }

    /// The distinct ids named by validly signed cookies, at most `MAX_CANDIDATES`, in order.
    pub fn candidates(&self, header: &[u8]) -> Candidates {
        let mut found = Candidates::default();
        self.candidates_into(header, &mut found);
        found
    }

    /// As `candidates`, into the caller's (empty) list: it is 500 bytes, not worth a copy.
    fn candidates_into(&self, header: &[u8], found: &mut Candidates) {
        let name = self.options.name.as_bytes();
        cookie::each_value(header, name, |value| {
            // unsign admits only ids that look valid (id::looks_valid).
            if let Some(id) = self.options.signer.unsign(value) {
                found.push(id);
            }
            found.len < MAX_CANDIDATES
        });
    }

    /// Decodes a stored record into (data, flash, shadow, bookkeeping, snapshot).
    fn open(&self, lua: &Lua, record: &[u8]) -> LuaResult<LuaMultiValue> {
        let (data, flash, shadow, meta) = codec::decode_session(lua, record, slot::slot)?;
        (data, flash, shadow, meta, lua.create_string(record)?).into_lua_multi(lua)
    }

    /// The first candidate id a native store holds (one of `found`, which the header's
    /// candidates fill), with what it holds. A session past its absolute timeout is deleted
    /// and skipped.
    pub fn find<'c>(
        &self,
        header: Option<&[u8]>,
        found: &'c mut Candidates,
    ) -> LuaResult<Option<(&'c str, Loaded)>> {
        let Backend::Native(store) = &self.backend else {
            return Err(LuaError::runtime(
                "honeymoon_session: load is for native stores; this engine drives a Lua store",
            ));
        };
        if let Some(header) = header {
            self.candidates_into(header, found);
            for id in found.iter() {
                let Some(checked) = Id::new(id) else { continue };
                if let Some(loaded) = self.fetch(store.as_ref(), checked)? {
                    return Ok(Some((id, loaded)));
                }
            }
        }
        Ok(None)
    }

    /// What a native store holds under `id`, refused when larger than `maxSize`; a session past
    /// its absolute timeout is deleted and counts as none.
    fn fetch(&self, store: &dyn Store, id: Id) -> LuaResult<Option<Loaded>> {
        let Some(loaded) = store.get(id, self.options.max_size)? else {
            return Ok(None);
        };
        if let Some(why) = self.too_large(&loaded.record.0) {
            return Err(self.stored_data_error("get", why).into());
        }
        if self.expired(&loaded.record.0, true) {
            store.destroy(id)?;
            return Ok(None);
        }
        Ok(Some(loaded))
    }

    /// The `Set-Cookie` line naming session `id`, signed, with the lifetime `max_age`.
    pub fn cookie_line(
        &self,
        id: &[u8],
        secure_request: bool,
        max_age: Option<u64>,
        now: i64,
    ) -> String {
        let id = std::str::from_utf8(id).unwrap_or_default();
        self.options.cookie.line_with(
            &self.options.name,
            |s| self.options.signer.push_cookie_value(s, id),
            secure_request,
            max_age,
            now,
        )
    }

    /// Decides the commit of the session as the request left it (`entries`: its data, flash
    /// and method-named keys), and carries it out for a native store; for a Lua store,
    /// returns the operation for Lua to perform.
    pub fn decide(&self, c: &Commit, entries: Entries) -> LuaResult<Outcome> {
        let now = clock::now_ms();
        if c.flags & RETIRE != 0 {
            return self.retire(c, now);
        }
        let empty = entries.is_empty();
        let mut meta = c.meta.clone();
        // The creation time is kept from what was stored; a session stored for the first time
        // is created now.
        if meta.created.is_none() {
            meta.created = c.snap.and_then(|s| Meta::of_record(s).created);
        }
        // Where something reads the creation time (the absolute timeout, the owner index's
        // sessionsOf), a stored session without one (older, or Node's) gets it now: its
        // absolute clock starts here, and this commit writes it.
        let keeps_created = self.options.absolute_timeout.is_some() || self.options.index.is_some();
        if meta.created.is_none() && keeps_created && c.state == State::Stored {
            meta.created = Some(now);
        }
        let mut record = self.with_meta(entries, &meta)?;
        let modified = c.snap != Some(record.0.as_slice());
        let facts = Facts {
            state: c.state,
            modified,
            empty,
            must_save: c.flags & (MUST_SAVE | SAVE_NOW) != 0,
            cookie_due: c.flags & COOKIE_DUE != 0,
            touch: c.flags & TOUCH != 0,
        };
        let write = lifecycle::should_save(&facts, &self.policy);
        let touch = lifecycle::should_touch(&facts, &self.policy, write);
        if write == Write::Set && meta.created.is_none() && keeps_created {
            meta.created = Some(now);
            record = meta::with_meta(&record.0, &meta)?;
            // Added after the encoder's check: counted here, or a session just under maxSize
            // would be stored just over it, where no load could read it again.
            if record.0.len() > self.options.max_size {
                return Err(LuaError::runtime(codec::too_big(
                    self.options.max_size,
                    META_KEY,
                )));
            }
        }
        // Worked out only where a store needs them (a native store that still holds what the
        // request loaded takes the whole record instead, `Store::write_if_unchanged`), with
        // whether the request set the session's lifetime itself.
        let changes = |record: &Record| match (write, c.snap) {
            (Write::Merge, Some(snap)) if modified => {
                let mut changes = codec::diff(snap, record)?;
                // Bookkeeping rewritten for one field (a login's owner, a creation time, a
                // lifetime) must not carry this request's view of the others over what another
                // request stored since: the owner and the lifetime the request did not change
                // follow the stored fields (`meta::merged`). Only such a merge reads them.
                let mut sets_lifetime = false;
                if changes.touches(META_KEY.as_bytes()) {
                    let loaded = Meta::of_record(snap);
                    changes.keep_owner = loaded.owner == meta.owner;
                    sets_lifetime = loaded.max_age != meta.max_age;
                }
                Ok((changes, sets_lifetime))
            }
            _ => Ok((Changes::default(), false)),
        };
        // Only a write that leaves the stored lifetime as it is (a merge, a touch) can find the
        // store holding another lifetime than this request loaded (another request set it
        // since): the store keeps that one, also inside a `__meta` this merge rewrites for
        // another field, and this commit's TTL and cookie follow it. Any other write stores
        // this request's (a merge in which the request set the lifetime itself drops the
        // assumption once its changes are worked out: the last writer's lifetime stands).
        let keeps_stored = match write {
            Write::Merge => true,
            Write::None => touch,
            Write::Set => false,
        };
        let assumed = keeps_stored.then(|| Assumed::new(self.rule, meta.max_age, meta.created));
        let mut life = self.lifetime(&meta, now, c.flags & SECURE != 0);
        life.assumed = assumed.as_ref();
        let mut out = self.carry_out(c, write, touch, record, changes, &life)?;
        let life = match out.kept {
            Some(kept) => {
                let o = &mut out.outcome;
                (o.ttl, o.max_age, o.original_max_age) = (kept.ttl, kept.max_age, kept.original);
                life.with(kept)
            }
            None => life,
        };
        if c.flags & SAVE_NOW == 0 {
            let secure = c.flags & SECURE != 0;
            out.outcome.line = match lifecycle::should_set_cookie(out.outcome.state, out.stored_now)
            {
                Cookie::Session => Some(self.cookie_line(c.id, secure, life.max_age, now)),
                Cookie::Clear => Some(
                    self.options
                        .cookie
                        .clearing_line(&self.options.name, secure),
                ),
                Cookie::None => None,
            };
        }
        Ok(out.outcome)
    }

    /// The record of `entries` with its bookkeeping.
    fn with_meta(&self, mut entries: Entries, meta: &Meta) -> LuaResult<Record> {
        if !meta.is_empty() {
            entries.push(META_KEY.as_bytes(), &meta.encode()?)?;
        }
        entries.into_record()
    }

    /// `regenerate` with a stale grace: the old id keeps its stored (pre-login) data, marked
    /// retired, for `staleGrace` seconds. Requests that still carry its cookie (a browser's
    /// parallel requests) read that data and never write it or send a cookie, so they cannot
    /// replace the new cookie; nothing links it to the new id. No cookie line.
    fn retire(&self, c: &Commit, now: i64) -> LuaResult<Outcome> {
        let snap = c.snap.ok_or_else(|| {
            LuaError::runtime("honeymoon_session: only a stored session can be retired")
        })?;
        let mut meta = Meta::of_record(snap);
        let grace = self.options.stale_grace.max(1);
        meta.stale = Some(now.saturating_add(i64::try_from(grace * 1000).unwrap_or(i64::MAX)));
        let record = meta::with_meta(snap, &meta)?;
        let mut changes = codec::diff(snap, &record)?;
        // Retiring never changes the owner: a login or logout stored since the load stays.
        changes.keep_owner = true;
        let life = Lifetime {
            ttl: Ttl::new(grace).unwrap_or(self.ttl),
            cookie: Some(&self.options.cookie),
            max_age: Some(grace),
            original_max_age: Some(grace),
            owner: meta.owner.as_deref(),
            https: c.flags & SECURE != 0,
            // The grace is the retired id's lifetime, whatever the record says.
            assumed: None,
        };
        Ok(self
            .carry_out(
                c,
                Write::Merge,
                false,
                record,
                |_| Ok((changes, true)),
                &life,
            )?
            .outcome)
    }

    /// Performs `write` (or the touch) on a native store, or describes it for Lua. `changes`
    /// works out a merge's changes from `record`, and whether they set the lifetime (which the
    /// store then writes as it is, `life.assumed` dropped), called at most once.
    fn carry_out(
        &self,
        c: &Commit,
        write: Write,
        touch: bool,
        record: Record,
        changes: impl FnOnce(&Record) -> LuaResult<(Changes, bool)>,
        life: &Lifetime,
    ) -> LuaResult<Carried> {
        let id = std::str::from_utf8(c.id)
            .ok()
            .and_then(Id::new)
            .ok_or_else(|| LuaError::runtime("honeymoon_session: not a session id"))?;
        let mut out = Outcome {
            line: None,
            state: c.state,
            snap: None,
            version: c.version.map(<[u8]>::to_vec),
            op: None,
            ttl: life.ttl.seconds(),
            max_age: life.max_age,
            original_max_age: life.original_max_age,
            owner: life.owner.map(String::from),
            assumed: None,
        };
        let mut kept = None;
        let stored_now = match &self.backend {
            Backend::Native(store) => {
                let version = out.version.as_deref().map(String::from_utf8_lossy);
                match write {
                    Write::Set => {
                        out.version = store.set(id, &record, life)?.map(String::into_bytes);
                        out.state = State::Stored;
                        true
                    }
                    Write::Merge => {
                        let max = self.options.max_size;
                        let unchanged = match c.snap {
                            Some(loaded) => {
                                store.write_if_unchanged(id, loaded, &record, life, max)?
                            }
                            None => None,
                        };
                        let merged = match unchanged {
                            Some(merged) => merged,
                            None => {
                                let (changes, sets_lifetime) = changes(&record)?;
                                // A lifetime this request set is stored as it is.
                                let life = match sets_lifetime {
                                    true => Lifetime {
                                        assumed: None,
                                        ..*life
                                    },
                                    false => *life,
                                };
                                store.merge(
                                    id,
                                    &changes,
                                    &record,
                                    version.as_deref(),
                                    &life,
                                    max,
                                )?
                            }
                        };
                        match merged {
                            Merged::Written(v, k) => {
                                out.version = v.map(String::into_bytes);
                                kept = k;
                                true
                            }
                            Merged::Gone => {
                                out.state = State::Gone;
                                false
                            }
                        }
                    }
                    Write::None if touch => match store.touch(id, life)? {
                        Touched::Alive(k) => {
                            kept = k;
                            true
                        }
                        Touched::Gone => {
                            out.state = State::Gone;
                            false
                        }
                    },
                    Write::None => false,
                }
            }
            // The outcome if the store confirms; Lua drops the cookie and marks the session
            // gone when the store says it is.
            Backend::Lua {
                record: as_record,
                merge,
            } => {
                let mut assumed = life.assumed;
                out.op = match write {
                    Write::Set => Some(Op::Set),
                    Write::Merge if !merge => Some(Op::Replace),
                    Write::Merge => {
                        let (changes, sets_lifetime) = changes(&record)?;
                        // A lifetime this request set is stored as it is.
                        if sets_lifetime {
                            assumed = None;
                        }
                        Some(Op::Merge(changes, *as_record))
                    }
                    Write::None if touch => Some(Op::Touch),
                    Write::None => None,
                };
                if write == Write::Set {
                    out.state = State::Stored;
                }
                out.assumed = assumed.map(|a| Box::new(*a));
                write != Write::None || touch
            }
        };
        if write != Write::None {
            out.snap = Some(record);
        }
        Ok(Carried {
            outcome: out,
            stored_now,
            kept,
        })
    }

    /// Whether a record a Lua store returned may be adopted: false past `absoluteTimeout` or
    /// a retired id's grace (Lua then deletes it), an error when it is larger than `maxSize`.
    pub fn admits(&self, record: &[u8]) -> Result<bool, String> {
        if let Some(why) = self.too_large(record) {
            // src/lua/store.lua adds "store:get failed: " to this.
            return Err(format!("honeymoon_session: {why}"));
        }
        Ok(!self.expired(record, false))
    }

    /// Decodes the data table a table store returned (a record store's string goes through
    /// the `adopt` crossing). `nil` when the session must not be adopted (past
    /// `absoluteTimeout` or a retired id's grace): Lua deletes it.
    pub fn adopt(&self, lua: &Lua, stored: LuaValue) -> LuaResult<LuaMultiValue> {
        let record = match stored {
            // A table store may hand out its own table: the request works on a copy.
            LuaValue::Table(t) => self.table_record(lua, &t)?,
            // store.lua checks get's answer first; a record string goes to the crossing.
            other => {
                return Err(LuaError::runtime(format!(
                    "honeymoon_session: store:get returned {}; it must return a table or nil",
                    codec::a_type(&other)
                )));
            }
        };
        if self.expired(&record.0, false) {
            return LuaValue::Nil.into_lua_multi(lua);
        }
        self.open(lua, &record.0)
    }

    /// A table store's session as a record, refused past `maxSize` as it is encoded; a retired
    /// id's mark is not counted (`meta::within_max`), so such a session is encoded again with
    /// room for it (only then: the common load encodes once).
    fn table_record(&self, lua: &Lua, t: &LuaTable) -> LuaResult<Record> {
        let max = self.options.max_size;
        match Record::from_table_within(lua, t, max) {
            Err(e) if table_is_retired(t) => {
                match Record::from_table_within(lua, t, max.saturating_add(meta::STALE_MARK_MAX)) {
                    Ok(record) if meta::within_max(&record.0, max) => Ok(record),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// Whether a table store's own `merge` of `patch` (the changes a commit hands it, as a
    /// patch) into `current` (what its `get` returned just before) may run, and what
    /// bookkeeping it is to write. `Err(why)` when the session it would store is larger than the
    /// `maxSize` the patch carries, by the rule of every load and every other store's merge
    /// (`meta::within_max`), so no load could read it again: the module never sees what such a
    /// merge builds, so this is the check. Else, where the patch rewrites `__meta`, the
    /// `__meta` every other store's merge leaves (`meta::merged`: the stored owner where the
    /// request did not change it, the stored lifetime where it assumed one), as a fresh Lua
    /// value (`false`: none) for store.lua to hand the store in place of the request's own,
    /// which such a merge would write whole; nil when the patch leaves `__meta` alone.
    pub fn table_merge(
        &self,
        lua: &Lua,
        current: &LuaTable,
        patch: &[u8],
    ) -> LuaResult<Result<LuaValue, String>> {
        let patch = Changes::read_patch(patch)?
            .ok_or_else(|| LuaError::runtime("honeymoon_session: not a patch this module wrote"))?;
        let max = patch.max.unwrap_or(self.options.max_size);
        // A stored session already past maxSize fails here as its load would.
        let record = self.table_record(lua, current)?;
        // Read only when the patch rewrites `__meta` (`merged` reads it only then).
        let stored = match patch.changes.touches(META_KEY.as_bytes()) {
            true => Meta::of_record(&record.0),
            false => Meta::default(),
        };
        let (merged, rewritten) =
            meta::merged(&record.0, &stored, &patch.changes, patch.assumed.is_some())?;
        if !meta::within_max(&merged.0, max) {
            return Ok(Err(codec::merged_larger_than_max(merged.0.len(), max)));
        }
        Ok(Ok(match rewritten {
            None => LuaValue::Nil,
            Some(m) if m.is_empty() => LuaValue::Boolean(false),
            Some(m) => codec::decode_value(lua, &m.encode()?)?,
        }))
    }

    /// A native store's session by id, for `session:reload()`: what `adopt` returns, then the
    /// version; nothing when the store no longer holds it (or it is past its absolute end).
    pub fn reload(&self, lua: &Lua, id: &str) -> LuaResult<LuaMultiValue> {
        let Backend::Native(store) = &self.backend else {
            return Err(LuaError::runtime(
                "honeymoon_session: reload is for native stores; this engine drives a Lua store",
            ));
        };
        let id =
            Id::new(id).ok_or_else(|| LuaError::runtime("honeymoon_session: not a session id"))?;
        let Some(loaded) = self.fetch(store.as_ref(), id)? else {
            return LuaValue::Nil.into_lua_multi(lua);
        };
        let mut values = self.open(lua, &loaded.record.0)?;
        values.push_back(match loaded.version {
            Some(v) => LuaValue::String(lua.create_string(v)?),
            None => LuaValue::Nil,
        });
        Ok(values)
    }

    /// What a Lua store's get before a write or touch found (a store that is not staleAware,
    /// see src/lua/store.lua): whether it is an id `regenerate` retired, and the lifetime the
    /// session keeps where that is not what the write assumed (`assumed`, as the commit handed
    /// it out), for the write to give it.
    pub fn inspect(
        &self,
        lua: &Lua,
        stored: LuaValue,
        assumed: Option<LuaString>,
    ) -> LuaResult<(bool, Option<LuaTable>)> {
        let meta = match &stored {
            LuaValue::String(s) => Meta::of_record(&s.as_bytes()),
            LuaValue::Table(t) => table_meta(t),
            _ => Meta::default(),
        };
        let retired = meta.stale.is_some();
        let assumed = assumed.and_then(|a| Assumed::from_bytes(&a.as_bytes()));
        let kept = match &assumed {
            Some(a) if !retired => a.kept(meta.max_age, meta.created, clock::now_ms()),
            _ => None,
        };
        let (Some(kept), Some(a)) = (kept, assumed) else {
            return Ok((retired, None));
        };
        // With the lifetime found as an assumption (`assumed`, opaque), for a touch after a
        // table store's own merge, as `_merge_patch` gives it (src/lua/store.lua's `keep`).
        let t = crate::lifetime::term_table(lua, &kept)?;
        let again = a.about(meta.max_age, meta.created).to_bytes();
        t.raw_set("assumed", lua.create_string(again)?)?;
        Ok((retired, Some(t)))
    }

    /// Deletes a native store's session; true when a live one was there.
    pub fn destroy(&self, id: &str) -> LuaResult<bool> {
        let Backend::Native(store) = &self.backend else {
            return Ok(false);
        };
        let id =
            Id::new(id).ok_or_else(|| LuaError::runtime("honeymoon_session: not a session id"))?;
        Ok(store.destroy(id)?)
    }
}

/// Whether a table store's session is an id `regenerate` retired (`__meta.stale`, a number).
fn table_is_retired(t: &LuaTable) -> bool {
    table_meta(t).stale.is_some()
}

/// The lifetime bookkeeping of a table store's session (`__meta.maxAge` and `created`), read as
/// `Meta::from_value` reads the encoded form: whole numbers within ±2^53 (`meta::EXACT`), a
/// positive lifetime, `false` for a browser-session cookie; anything else is none. Any number as `__meta.stale` marks an id
/// `regenerate` retired (`stale` then holds it, saturated; NaN as 0).
fn table_meta(t: &LuaTable) -> Meta {
    let Ok(LuaValue::Table(m)) = t.raw_get::<LuaValue>(META_KEY) else {
        return Meta::default();
    };
    let whole = |v: LuaValue| match v {
        LuaValue::Integer(i) => meta::exact(i),
        LuaValue::Number(f) => meta::exact_f64(f),
        _ => None,
    };
    let max_age = match m.raw_get::<LuaValue>("maxAge") {
        Ok(LuaValue::Boolean(false)) => Some(MaxAge::Browser),
        Ok(v) => meta::own_ms(whole(v)),
        Err(_) => None,
    };
    let stale = match m.raw_get::<LuaValue>("stale") {
        Ok(LuaValue::Integer(i)) => Some(i),
        Ok(LuaValue::Number(f)) => Some(meta::stale_ms(f)),
        _ => None,
    };
    Meta {
        max_age,
        created: m.raw_get::<LuaValue>("created").ok().and_then(whole),
        stale,
        ..Meta::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record of `src` (a Lua table constructor) as a commit's entries.
    fn entries_of(lua: &Lua, src: &str) -> Entries {
        let t: LuaTable = lua.load(src).eval().unwrap();
        let mut entries = Entries::default();
        let record = Record::from_table(lua, &t).unwrap();
        for (k, v) in record.entries().unwrap() {
            entries.push(k, v).unwrap();
        }
        entries
    }

    #[test]
    fn a_write_over_an_unchanged_store_works_out_no_changes() {
        use crate::codec::tests::COMPARISONS;
        let lua = Lua::new();
        let opts: LuaTable = lua.load("return { secret = 's' }").eval().unwrap();
        let engine = Engine::new(&lua, Some(opts)).unwrap();
        let commit = |state, snap: Option<&[u8]>, src: &str| {
            let c = Commit {
                state,
                id: b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                snap,
                flags: FINAL,
                version: None,
                meta: Meta::default(),
            };
            engine.decide(&c, entries_of(&lua, src)).unwrap()
        };
        let first = commit(State::New, None, "return { userId = 42, counter = 1 }");
        let loaded = first.snap.unwrap().0;
        // The store holds what this request loaded: the whole record is written, and no key
        // is compared (no diff, no merge).
        COMPARISONS.with(|c| c.set(0));
        let second = commit(
            State::Stored,
            Some(&loaded),
            "return { userId = 42, counter = 2 }",
        );
        assert_eq!(COMPARISONS.with(|c| c.get()), 0);
        assert!(second.state == State::Stored && second.line.is_some());
        let stored = || -> LuaTable {
            let values = engine
                .reload(&lua, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
                .unwrap();
            values
                .into_iter()
                .next()
                .unwrap()
                .as_table()
                .unwrap()
                .clone()
        };
        let data = stored();
        assert_eq!(data.get::<i64>("counter").unwrap(), 2);
        // A request that loaded the same version writes another key: the store holds the
        // second request's version now, so this one merges, and both writes persist.
        let third = commit(
            State::Stored,
            Some(&loaded),
            "return { userId = 42, counter = 1, cart = 3 }",
        );
        assert!(third.state == State::Stored);
        assert!(COMPARISONS.with(|c| c.get()) > 0, "merged key by key");
        let data = stored();
        assert_eq!(data.get::<i64>("counter").unwrap(), 2);
        assert_eq!(data.get::<i64>("cart").unwrap(), 3);
    }

    /// A table store's lifetime and creation time are read as the encoded record's are: a
    /// number beyond ±2^53 or not whole is absent (2^63 used to be read as i64::MAX).
    #[test]
    fn a_table_stores_bookkeeping_is_read_as_its_record_is() {
        let lua = Lua::new();
        let mut all = vec![
            "created = 2^63, maxAge = 2^63",
            "created = -(2^53), maxAge = 1e19",
            "created = 1.5, maxAge = 1500.5",
            "created = 2^53 - 1, maxAge = 2^53 - 1",
            "created = 1764400000000.0, maxAge = 500",
            "created = 'soon', maxAge = false",
        ];
        // Integers where the interpreter has them.
        if cfg!(any(feature = "lua53", feature = "lua54")) {
            all.extend([
                "created = math.maxinteger, maxAge = math.maxinteger",
                "created = 1 << 53, maxAge = 1 << 53",
                "created = (1 << 53) - 1, maxAge = 2^53 - 1",
            ]);
        }
        for fields in all {
            let t: LuaTable = lua
                .load(format!("return {{ __meta = {{ {fields} }} }}"))
                .eval()
                .unwrap();
            let encoded = Meta::of_record(&Record::from_table(&lua, &t).unwrap().0);
            let table = table_meta(&t);
            assert_eq!(
                (table.created, table.max_age),
                (encoded.created, encoded.max_age),
                "{fields}"
            );
            if fields.contains("math.maxinteger") {
                assert_eq!((table.created, table.max_age), (None, None));
            }
        }
    }

    /// A retired id a Lua store still returns past its grace is not adopted, with or without
    /// `absoluteTimeout`: the grace must not last as long as a store keeps the entry.
    #[test]
    fn a_retired_record_past_its_grace_is_not_adopted_from_a_lua_store() {
        let lua = Lua::new();
        let now = clock::now_ms();
        for opts in [
            "{ secret = 's' }",
            "{ secret = 's', absoluteTimeout = 3600 }",
        ] {
            let opts: LuaTable = lua.load(format!("return {opts}")).eval().unwrap();
            let engine = Engine::new(&lua, Some(opts)).unwrap();
            let record = |stale: i64| {
                let t: LuaTable = lua
                    .load(format!(
                        "return {{ a = 1, __meta = {{ stale = {stale} }} }}"
                    ))
                    .eval()
                    .unwrap();
                Record::from_table(&lua, &t).unwrap().0
            };
            assert_eq!(engine.admits(&record(now + 60_000)), Ok(true));
            assert_eq!(engine.admits(&record(now - 1)), Ok(false));
        }
    }

    #[test]
    fn cookies_name_ids_of_other_shapes_when_they_are_signed() {
        let lua = Lua::new();
        let opts: LuaTable = lua.load("return { secret = 'shared' }").eval().unwrap();
        let engine = Engine::new(&lua, Some(opts)).unwrap();
        let signer = cookie::Signer::new(&[b"shared".to_vec()]);
        let cookie_of =
            |id: &str| format!("honeymoon.sid={}", cookie::encode_value(&signer.sign(id)));
        // A Node app's genid (a UUID), ours, and one repeated: each distinct id once, in order.
        let uuid = "3b241101-e2bb-4255-8caf-4136c566a962";
        let ours = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let header = format!(
            "{}; {}; {}",
            cookie_of(uuid),
            cookie_of(ours),
            cookie_of(uuid)
        );
        let candidates = engine.candidates(header.as_bytes());
        let found: Vec<&str> = candidates.iter().collect();
        assert_eq!(found, vec![uuid, ours]);
        // Too long, or a character no store key should carry: not looked up, signed or not.
        for id in ["a".repeat(id::MAX_COOKIE_ID + 1), "with space".to_string()] {
            let h = cookie_of(&id);
            assert_eq!(engine.candidates(h.as_bytes()).iter().count(), 0, "{id}");
        }
        // At most MAX_CANDIDATES lookups, however many signed ids the header names.
        let many: Vec<String> = (0..10).map(|i| cookie_of(&format!("id-{i}"))).collect();
        let h = many.join("; ");
        assert_eq!(
            engine.candidates(h.as_bytes()).iter().count(),
            MAX_CANDIDATES
        );
    }
}

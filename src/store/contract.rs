//! The contract between the engine and a native store, in plain Rust: no Lua types. Ids and
//! lifetimes are checked once, where they enter (`Id::new`, `Ttl::new`), and every failure is a
//! `StoreError` that names the store and the method.

use crate::codec::{Changes, Record};
use crate::cookie::Attributes;
use crate::lifetime::{Assumed, Term, Ttl};
use std::fmt;

/// A store failure: `honeymoon_session: <store>:<method> failed: <why>`, the one shape of a
/// store error. `why` never holds a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    pub store: &'static str,
    pub method: &'static str,
    pub why: String,
}

impl StoreError {
    pub fn new(store: &'static str, method: &'static str, why: impl fmt::Display) -> StoreError {
        StoreError {
            store,
            method,
            why: why.to_string(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = self.why.trim_start_matches("honeymoon_session: ");
        write!(
            f,
            "honeymoon_session: {}:{} failed: {why}",
            self.store, self.method
        )
    }
}

impl std::error::Error for StoreError {}

impl From<StoreError> for mlua::Error {
    fn from(e: StoreError) -> mlua::Error {
        mlua::Error::runtime(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The longest id a store accepts from a caller (the engine's own are 32 bytes).
pub const MAX_ID_LEN: usize = 4096;

/// A session id: 1 to `MAX_ID_LEN` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Id<'a>(&'a str);

impl<'a> Id<'a> {
    pub fn new(id: &'a str) -> Option<Id<'a>> {
        (!id.is_empty() && id.len() <= MAX_ID_LEN).then_some(Id(id))
    }

    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

/// A session as a store returned it: the record, and the store's token for that version of
/// it (for stores that merge optimistically; `None` for the others).
pub struct Loaded {
    pub record: Record,
    pub version: Option<String>,
}

/// How long to keep a session, and the cookie it travels with (stores that keep
/// express-session's `cookie` object write it from this).
#[derive(Clone, Copy)]
pub struct Lifetime<'a> {
    pub ttl: Ttl,
    pub cookie: Option<&'a Attributes>,
    /// This write's cookie lifetime in seconds: the session's own (`req.session.cookie`) or the
    /// config's; `None` for a browser-session cookie.
    pub max_age: Option<u64>,
    /// The same before `absoluteTimeout` capped it: the lifetime express-session keeps as
    /// `cookie.originalMaxAge` (so a cap is never mistaken for the session's own lifetime).
    pub original_max_age: Option<u64>,
    /// The session's owner (the `index` option's field), for stores that keep an index.
    pub owner: Option<&'a str>,
    /// The request came over HTTPS: what `cookie.secure = "auto"` means for this write.
    pub https: bool,
    /// What this lifetime was computed from, where the store may hold another lifetime for the
    /// session (a merge that leaves the bookkeeping alone, a touch): the store then gives the
    /// session the lifetime it keeps (`Assumed::kept`). `None`: this lifetime stands.
    pub assumed: Option<&'a Assumed>,
}

impl<'a> Lifetime<'a> {
    /// A store method called directly: `ttl` for both the store and the cookie.
    #[cfg(feature = "redis")]
    pub fn standalone(ttl: Ttl) -> Lifetime<'static> {
        Lifetime {
            ttl,
            cookie: None,
            max_age: Some(ttl.seconds()),
            original_max_age: Some(ttl.seconds()),
            owner: None,
            https: false,
            assumed: None,
        }
    }

    /// This lifetime with another term (the one the store keeps).
    pub fn with(&self, term: Term) -> Lifetime<'a> {
        Lifetime {
            ttl: Ttl::new(term.ttl).unwrap_or(self.ttl),
            cookie: self.cookie,
            max_age: term.max_age,
            original_max_age: term.original,
            owner: self.owner,
            https: self.https,
            assumed: None,
        }
    }
}

/// One session of an owner, as `sessionsOf` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub id: Vec<u8>,
    /// When the session was first stored (`__meta.created`, ms since the epoch); `None` for one
    /// stored before `index` was configured.
    pub created_ms: Option<i64>,
    /// When the store last wrote or touched (refreshed) it, ms since the epoch.
    pub last_seen_ms: i64,
}

impl Listed {
    /// Most recently seen first; ties by id, so every store lists in one order.
    pub fn order(list: &mut [Listed]) {
        list.sort_by(|a, b| {
            b.last_seen_ms
                .cmp(&a.last_seen_ms)
                .then_with(|| b.id.cmp(&a.id))
        });
    }
}

/// What a merge did.
pub enum Merged {
    /// Written; the new version token, and the lifetime the session keeps where it is not the
    /// one the merge was handed (`Lifetime::kept`): the store wrote that one.
    Written(Option<String>, Option<Term>),
    /// The session is gone (destroyed or expired meanwhile); nothing was written, because a
    /// destroyed id must never come back.
    Gone,
}

/// What a touch did.
pub enum Touched {
    /// Refreshed; with the lifetime the session keeps where it is not the one the touch was
    /// handed (`Lifetime::kept`): the store refreshed it for that one.
    Alive(Option<Term>),
    /// Gone, or an id `regenerate` retired: nothing refreshed.
    Gone,
}

/// A store the engine carries decisions out on inside its own call (MemoryStore, the blocking
/// RedisStore). Stores written in Lua are driven from Lua instead (src/lua/store.lua).
pub trait Store {
    /// The store's name in errors (`MemoryStore:get failed: ...`).
    fn name(&self) -> &'static str {
        "store"
    }
    /// Where the store is, for errors about what it holds (`redis at host:port/db`; never a
    /// password); `None` for a store inside this process.
    fn place(&self) -> Option<String> {
        None
    }
    /// The stored session. `max` is the session's `maxSize`: a store that must parse what it
    /// holds (JSON) stops once the session would be larger; the engine refuses a larger record.
    fn get(&self, id: Id, max: usize) -> StoreResult<Option<Loaded>>;
    /// Stores a whole session; returns its version token.
    fn set(&self, id: Id, record: &Record, life: &Lifetime) -> StoreResult<Option<String>>;
    /// Applies a request's top-level changes to the store's current version, atomically, and
    /// refreshes the TTL: `life`'s, or the one the session keeps (`Lifetime::kept`). `base` is the version the request loaded. `full` is the whole session
    /// as the request left it, for stores that can only replace. `max` as for `get`, for the
    /// current version a store reads to merge into; a merged session larger than `max`
    /// (`meta::within_max`: a retirement's mark not counted) is refused and nothing written,
    /// since other requests' writes made it too large to load again.
    fn merge(
        &self,
        id: Id,
        changes: &Changes,
        full: &Record,
        base: Option<&str>,
        life: &Lifetime,
        max: usize,
    ) -> StoreResult<Merged>;
    /// A merge's shortcut: when the store still holds exactly `loaded` under `id` (the record
    /// the request loaded: no other request wrote the session since), merging the request's
    /// changes into it gives `full` itself, so `full` is written (refreshing the TTL) without
    /// working out the changes. `Some(Gone)` when the session is gone or retired, as `merge`
    /// answers; `None` when the store holds something else, or cannot tell cheaply (the
    /// default): the engine then works out the changes and calls `merge`.
    fn write_if_unchanged(
        &self,
        _id: Id,
        _loaded: &[u8],
        _full: &Record,
        _life: &Lifetime,
        _max: usize,
    ) -> StoreResult<Option<Merged>> {
        Ok(None)
    }
    /// Deletes the session; true when a live one was there (atomically: so `regenerate` knows
    /// whether another request destroyed it first).
    fn destroy(&self, id: Id) -> StoreResult<bool>;
    /// Refreshes the TTL: `life`'s, or the one the session keeps (`Lifetime::kept`).
    fn touch(&self, id: Id, life: &Lifetime) -> StoreResult<Touched>;
    /// The live sessions whose record names `owner` (`__meta.owner`), most recently seen first,
    /// without the ids `regenerate` retired. Not called by the engine: `store:sessionsOf`.
    fn sessions_of(&self, owner: &str) -> StoreResult<Vec<Listed>>;
    /// Deletes every session of `owner` (retired ids included) but `except`; returns how many
    /// it deleted. Not called by the engine: `store:destroyAll`.
    fn destroy_all(&self, owner: &str, except: Option<&str>) -> StoreResult<usize>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_once() {
        assert!(Id::new("").is_none());
        assert!(Id::new(&"a".repeat(MAX_ID_LEN + 1)).is_none());
        assert_eq!(Id::new("abc").map(|i| i.as_str()), Some("abc"));
    }

    #[test]
    fn errors_name_store_and_method_once() {
        let e = StoreError::new("RedisStore", "get", "timed out after 5 ms");
        assert_eq!(
            e.to_string(),
            "honeymoon_session: RedisStore:get failed: timed out after 5 ms"
        );
        let nested = StoreError::new("MemoryStore", "set", "honeymoon_session: data is corrupt");
        assert_eq!(
            nested.to_string(),
            "honeymoon_session: MemoryStore:set failed: data is corrupt"
        );
    }
}

//! The stores behind the engine: the contract (`contract`), the native stores, and how a
//! store given in the options is told apart (native, or written in Lua).

pub mod contract;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

use crate::lifetime::Ttl;
pub use contract::{
    Id, Lifetime, Listed, Loaded, MAX_ID_LEN, Merged, Store, StoreError, StoreResult, Touched,
};
use mlua::prelude::*;
use std::rc::Rc;

/// The methods every store written in Lua must have (the Sessions page's Store Interface).
pub const LUA_METHODS: [&str; 8] = [
    "get", "set", "destroy", "touch", "exists", "all", "length", "clear",
];

/// A patch merged into a record a Lua record store holds (`merge_patch`).
pub enum Patched {
    /// The merged record, the owner it names (the `index` field), whether the merge changed
    /// the owner (a login, a logout), so a store keeping an owner index knows when to list the
    /// session without reading the record again, and the lifetime the merged session keeps
    /// where it is not the one the patch assumed (another request changed it since this one
    /// loaded the session), with that lifetime as an assumption: what the commit's touch after
    /// the merge assumes, so that it finds a lifetime a third request stored since.
    Merged(
        crate::codec::Record,
        Option<String>,
        bool,
        Option<(crate::lifetime::Term, crate::lifetime::Assumed)>,
    ),
    /// The record is an id `regenerate` retired: never written again.
    Retired,
}

/// Merges `patch` (a commit's changes, as the engine hands them to a record store) into the
/// record `current`: what a record store written in Lua does under its lock. A merged session
/// larger than the `maxSize` the patch carries (`meta::within_max`, the rule of every load and
/// every native store's merge) is refused: other requests' writes since this one's load made
/// it too large, and stored, no load could read it again. Here, not in each store, so that
/// every store merging with `_merge_patch` refuses it, its own code unchanged.
pub fn merge_patch(current: &[u8], patch: &[u8]) -> LuaResult<Patched> {
    use crate::codec::{self, meta};
    let codec::Patch {
        changes,
        max,
        assumed,
    } = codec::Changes::read_patch(patch)?.ok_or_else(|| {
        LuaError::runtime("honeymoon_session: merge_patch: not a patch this module wrote")
    })?;
    let before = meta::Meta::of_record(current);
    if before.stale.is_some() {
        return Ok(Patched::Retired);
    }
    // A patch that assumed a lifetime (the request did not set one) keeps the stored one, also
    // inside a `__meta` it rewrites for another field.
    let (merged, rewritten) = meta::merged(current, &before, &changes, assumed.is_some())?;
    if let Some(max) = max
        && !meta::within_max(&merged.0, max)
    {
        return Err(LuaError::runtime(format!(
            "honeymoon_session: {}",
            codec::merged_larger_than_max(merged.0.len(), max)
        )));
    }
    // The merged bookkeeping: the stored one unless this merge rewrote it (the common merge
    // does not, and reads nothing more).
    let after_meta = rewritten.as_ref().unwrap_or(&before);
    let after = after_meta.owner.clone();
    let changed = after != before.owner;
    let kept = assumed.and_then(|a| {
        a.kept(
            after_meta.max_age,
            after_meta.created,
            crate::clock::now_ms(),
        )
        .map(|t| (t, a.about(after_meta.max_age, after_meta.created)))
    });
    Ok(Patched::Merged(merged, after, changed, kept))
}

/// The data argument of a native store's `set` called from Lua: a table (its values are
/// checked as it is encoded).
pub fn data_arg(store: &str, v: LuaValue) -> LuaResult<LuaTable> {
    match v {
        LuaValue::Table(t) => Ok(t),
        other => Err(LuaError::runtime(format!(
            "honeymoon_session: {store}:set takes the session data as a table, got {}",
            crate::codec::a_type(&other)
        ))),
    }
}

/// `_record_meta`'s answer: `owner, created, stale, kept`.
pub type RecordMeta = (Option<String>, Option<i64>, Option<i64>, Option<LuaTable>);

/// `_record_meta(record, assumed?)`, for record stores written in Lua: a record's bookkeeping,
/// `owner, created, stale` (the owner a string or nil, the times ms since the epoch or nil).
/// Never raises on its arguments: anything but a string (nil from a lookup that found nothing)
/// has none. Given what a touch's commit assumed (the fourth argument `touch` is handed), also
/// `kept`: the lifetime the session keeps where that is another (`{ ttl =, maxAge =,
/// originalMaxAge = }`), else nil.
pub fn record_meta(
    lua: &Lua,
    (record, assumed): (LuaValue, Option<LuaString>),
) -> LuaResult<RecordMeta> {
    use crate::lifetime::{Assumed, term_table};
    let LuaValue::String(record) = record else {
        return Ok((None, None, None, None));
    };
    let m = crate::codec::meta::Meta::of_record(&record.as_bytes());
    let kept = match assumed.and_then(|a| Assumed::from_bytes(&a.as_bytes())) {
        Some(a) if m.stale.is_none() => a.kept(m.max_age, m.created, crate::clock::now_ms()),
        _ => None,
    };
    let kept = kept.map(|k| term_table(lua, &k)).transpose()?;
    Ok((m.owner, m.created, m.stale, kept))
}

/// `_owner(value, store, method)`, for stores written in Lua: `owner_arg`, with the store's
/// and the method's names (for its message) from Lua.
pub fn owner_named(
    _: &Lua,
    (owner, store, method): (LuaValue, LuaValue, LuaValue),
) -> LuaResult<String> {
    let name = |v: &LuaValue| match v {
        LuaValue::String(s) => Some(s.to_string_lossy()),
        _ => None,
    };
    let (Some(store), Some(method)) = (name(&store), name(&method)) else {
        return Err(LuaError::runtime(
            "honeymoon_session: _owner(value, store, method) takes the store's and the method's names (strings, for its message)",
        ));
    };
    owner_arg(&store, &method, &owner)
}

/// A number given from Lua (an option or a method's argument) when it is whole and from 1 to
/// `max`, else none (nil included: callers default it first). The one range check of the
/// stores' TTLs, timeouts and pool sizes: a fraction is refused, never rounded, and so are
/// NaN, the infinities and anything that is not a number.
pub fn whole_from_1(v: &LuaValue, max: u64) -> Option<u64> {
    let n = match v {
        LuaValue::Integer(i) => *i as f64,
        LuaValue::Number(n) => *n,
        _ => return None,
    };
    (n.fract() == 0.0 && n >= 1.0 && n <= max as f64).then_some(n as u64)
}

/// A TTL argument of a native store's method called from Lua: whole seconds from 1 to
/// `Ttl::MAX` (a fraction is refused, never rounded); nil means a day.
pub fn ttl_arg(store: &str, v: LuaValue) -> LuaResult<Ttl> {
    if v.is_nil() {
        return Ok(Ttl::DAY);
    }
    if let Some(ttl) = whole_from_1(&v, Ttl::MAX).and_then(Ttl::new) {
        return Ok(ttl);
    }
    Err(LuaError::runtime(format!(
        "honeymoon_session: {store} ttl must be a whole number of seconds from 1 to {}, got {}",
        Ttl::MAX,
        crate::codec::number_or_type(&v)
    )))
}

/// What an owner may be, in errors.
pub const OWNER_KINDS: &str = "a UTF-8 string, an integer, or a whole number below 2^53 (an id past that is exact only as an integer or a string)";

/// A float owner in decimal: whole and exactly representable (below 2^53), else none.
pub fn owner_of_float(n: f64) -> Option<String> {
    (n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0).then(|| (n as i64).to_string())
}

/// An integer owner from mlua. Lua 5.3 and 5.4 have an integer subtype: exact. Lua 5.1, 5.2
/// and LuaJIT have none, and mlua hands over a whole double as an integer: it is judged as the
/// double it is (as the engine judges the `index` field there), so one past 2^53, which may be
/// another id rounded, is refused.
#[cfg(any(feature = "lua53", feature = "lua54"))]
fn owner_of_integer(i: i64) -> Option<String> {
    Some(i.to_string())
}

#[cfg(not(any(feature = "lua53", feature = "lua54")))]
fn owner_of_integer(i: i64) -> Option<String> {
    owner_of_float(i as f64)
}

/// An owner as `sessionsOf`/`destroyAll` take it from Lua, rendered exactly as the engine
/// renders the `index` field (`42` and `42.0` are `"42"`); anything else is refused, so no
/// owner is ever silently rounded or mangled into another.
pub fn owner_arg(store: &str, method: &str, v: &LuaValue) -> LuaResult<String> {
    let owner = match v {
        LuaValue::String(s) => s.to_str().ok().map(|s| s.to_string()),
        LuaValue::Integer(i) => owner_of_integer(*i),
        LuaValue::Number(n) => owner_of_float(*n),
        _ => None,
    };
    owner.ok_or_else(|| {
        let got = match v {
            LuaValue::Integer(_) | LuaValue::Number(_) => {
                format!("the number {}", crate::codec::number_or_type(v))
            }
            LuaValue::String(_) => "a string that is not UTF-8".to_string(),
            other => crate::codec::a_type(other).to_string(),
        };
        LuaError::runtime(format!(
            "honeymoon_session: {store}:{method}: the owner must be {OWNER_KINDS}, got {got}"
        ))
    })
}

/// `destroyAll`'s optional id to spare: nil, or a session id.
pub fn except_arg(store: &str, v: &LuaValue) -> LuaResult<Option<String>> {
    match v {
        LuaValue::Nil => Ok(None),
        LuaValue::String(s) => Ok(Some(s.to_string_lossy())),
        other => Err(LuaError::runtime(format!(
            "honeymoon_session: {store}:destroyAll: the id to keep must be a session id (a string) or nil, got {}",
            crate::codec::a_type(other)
        ))),
    }
}

/// Seconds since the epoch (rounded down) of a time in milliseconds.
fn seconds(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// `sessionsOf`'s answer: a list of `{ id =, created =, lastSeen = }`, times in whole seconds
/// since the epoch (`created` nil when the store does not know it).
pub fn listed_table(lua: &Lua, list: Vec<Listed>) -> LuaResult<LuaTable> {
    let t = lua.create_table_with_capacity(list.len(), 0)?;
    for (i, l) in list.into_iter().enumerate() {
        let row = lua.create_table_with_capacity(0, 3)?;
        row.raw_set("id", lua.create_string(&l.id)?)?;
        if let Some(c) = l.created_ms {
            row.raw_set("created", seconds(c))?;
        }
        row.raw_set("lastSeen", seconds(l.last_seen_ms))?;
        t.raw_set(i + 1, row)?;
    }
    Ok(t)
}

/// The native store behind `opts.store` (nil means a new MemoryStore), or None for a store
/// written in Lua. Fails only where a new MemoryStore cannot get its hash key.
pub fn native(value: &LuaValue) -> Result<Option<Rc<dyn Store>>, String> {
    Ok(match value {
        LuaValue::Nil => Some(Rc::new(memory::MemoryStore::new()?)),
        // The Lua object `MemoryStore()`/`RedisStore()` return, over the userdata.
        LuaValue::Table(t) => match t.raw_get::<LuaValue>("_native") {
            Ok(inner @ LuaValue::UserData(_)) => return native(&inner),
            _ => None,
        },
        LuaValue::UserData(ud) => {
            if let Ok(m) = ud.borrow::<memory::MemoryStore>() {
                return Ok(Some(Rc::new(m.clone())));
            }
            #[cfg(feature = "redis")]
            if let Ok(r) = ud.borrow::<redis::RedisStore>() {
                return Ok(Some(Rc::new(r.clone())));
            }
            None
        }
        _ => None,
    })
}

/// A Lua store's shape: whether its `format` field is `"record"` (it takes and returns encoded
/// records; absent means the Sessions page's contract, plain tables), and whether it has a
/// `merge` method.
pub fn lua_store_format(value: &LuaValue) -> LuaResult<(bool, bool)> {
    let field = |name: &str| -> LuaValue {
        match value {
            LuaValue::Table(t) => t.get::<LuaValue>(name).unwrap_or(LuaValue::Nil),
            LuaValue::UserData(u) => u.get::<LuaValue>(name).unwrap_or(LuaValue::Nil),
            _ => LuaValue::Nil,
        }
    };
    // A merge that is there but not callable must not quietly become whole-session sets,
    // which undo other requests' writes.
    let merge = match field("merge") {
        LuaValue::Function(_) => true,
        LuaValue::Nil => false,
        other => {
            return Err(LuaError::runtime(format!(
                "honeymoon_session: store method merge() must be a function or absent, got {}",
                crate::codec::a_type(&other)
            )));
        }
    };
    let format = match value {
        LuaValue::Table(_) | LuaValue::UserData(_) => field("format"),
        other => {
            return Err(LuaError::runtime(format!(
                "honeymoon_session: store must be a table with the store methods, got {}",
                crate::codec::a_type(other)
            )));
        }
    };
    match format {
        LuaValue::Nil => Ok((false, merge)),
        LuaValue::String(s) if s.as_bytes() == b"record" => Ok((true, merge)),
        other => Err(LuaError::runtime(format!(
            "honeymoon_session: store.format must be \"record\" or absent, got {}",
            crate::codec::a_type(&other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_from_1_takes_whole_numbers_in_range_only() {
        let max = 3_153_600_000;
        for (v, want) in [
            (LuaValue::Integer(1), Some(1)),
            (LuaValue::Integer(max as i64), Some(max)),
            (LuaValue::Number(max as f64), Some(max)),
            (LuaValue::Number(60.0), Some(60)),
            (LuaValue::Integer(max as i64 + 1), None),
            (LuaValue::Integer(0), None),
            (LuaValue::Integer(-5), None),
            (LuaValue::Integer(i64::MAX), None),
            (LuaValue::Number(1.5), None),
            (LuaValue::Number(0.5), None),
            (LuaValue::Number(f64::NAN), None),
            (LuaValue::Number(f64::INFINITY), None),
            (LuaValue::Boolean(true), None),
            (LuaValue::Nil, None),
        ] {
            assert_eq!(whole_from_1(&v, max), want, "{v:?}");
        }
    }
    use crate::codec::meta::{self, Meta};
    use crate::codec::{Changes, Entries};
    use crate::lifetime::{Assumed, MaxAge, Rule, Term};

    fn record(max_age: Option<MaxAge>) -> Vec<u8> {
        let empty = Entries::default().into_record().unwrap();
        let meta = Meta {
            max_age,
            ..Meta::default()
        };
        meta::with_meta(&empty.0, &meta).unwrap().0
    }

    /// `_merge_patch` says what lifetime the merged session keeps where another request
    /// changed it since the patch's request loaded the session, also where the patch rewrites
    /// the bookkeeping for another field; not where the patch carries no assumption (its
    /// request set the lifetime itself, which is then stored).
    #[test]
    fn a_merge_patch_tells_the_lifetime_the_merged_session_keeps() {
        let rule = Rule {
            ttl: 3600,
            max_age: Some(3600),
            absolute: None,
        };
        let assumed = Assumed::new(rule, None, None);
        let write = Changes {
            set: vec![(b"k".to_vec(), vec![b'T'])],
            removed: Vec::new(),
            keep_owner: false,
        };
        let patch = write.to_patch_with(None, Some(&assumed)).unwrap();
        let kept_by = |stored: &[u8], patch: &[u8]| match merge_patch(stored, patch).unwrap() {
            Patched::Merged(_, _, _, kept) => kept.map(|(t, _)| t),
            Patched::Retired => panic!("not retired"),
        };
        assert_eq!(kept_by(&record(None), &patch), None);
        let month = kept_by(&record(Some(MaxAge::Ms(2_592_000_000))), &patch);
        assert_eq!(
            month,
            Some(Term {
                ttl: 2_592_000,
                max_age: Some(2_592_000),
                original: Some(2_592_000)
            })
        );
        // With it, what the commit's touch after the merge assumes: the lifetime found, so
        // that touch finds nothing new in the same record, and a third request's lifetime in
        // a record it changed since.
        let again = match merge_patch(&record(Some(MaxAge::Ms(2_592_000_000))), &patch).unwrap() {
            Patched::Merged(_, _, _, Some((_, again))) => again,
            _ => panic!("a lifetime kept"),
        };
        let stored = |ms| Some(MaxAge::Ms(ms));
        assert_eq!(again.kept(stored(2_592_000_000), None, 0), None);
        assert_eq!(again.kept(stored(60_000), None, 0).map(|t| t.ttl), Some(60));
        assert_eq!(again.kept(None, None, 0).map(|t| t.ttl), Some(3600));
        let browser = kept_by(&record(Some(MaxAge::Browser)), &patch);
        assert_eq!(browser.map(|t| t.max_age), Some(None));
        // A patch that rewrites the bookkeeping stores its own lifetime: nothing kept.
        let own = Changes {
            set: vec![(
                meta::META_KEY.as_bytes().to_vec(),
                Meta {
                    created: Some(1),
                    ..Meta::default()
                }
                .encode()
                .unwrap(),
            )],
            removed: Vec::new(),
            keep_owner: false,
        };
        // A patch that rewrites the bookkeeping for another field (a creation time stamped)
        // and assumed a lifetime keeps the stored one inside the merged `__meta`, and says so.
        let rewrite = own.to_patch_with(None, Some(&assumed)).unwrap();
        let Patched::Merged(merged, _, _, kept) =
            merge_patch(&record(Some(MaxAge::Browser)), &rewrite).unwrap()
        else {
            panic!("not retired")
        };
        assert_eq!(kept.map(|(t, _)| t.max_age), Some(None));
        let m = Meta::of_record(&merged.0);
        assert_eq!((m.max_age, m.created), (Some(MaxAge::Browser), Some(1)));
        // Without the assumption (the request set its lifetime itself, and the engine dropped
        // it), the patch's bookkeeping is stored whole: nothing kept.
        let last_writer = own.to_patch(None).unwrap();
        let Patched::Merged(merged, _, _, kept) =
            merge_patch(&record(Some(MaxAge::Browser)), &last_writer).unwrap()
        else {
            panic!("not retired")
        };
        assert_eq!(kept, None);
        assert_eq!(Meta::of_record(&merged.0).max_age, None);
        // A patch without the assumption (a caller's own) says nothing.
        let bare = write.to_patch(None).unwrap();
        assert_eq!(kept_by(&record(Some(MaxAge::Browser)), &bare), None);
    }
}

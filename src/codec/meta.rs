//! A session's own bookkeeping, kept in its record beside the data under the reserved key
//! `__meta` (never shown as data): when it was created (for `absoluteTimeout`), its own cookie
//! lifetime (`req.session.cookie.maxAge`), until when a retired id stays readable after
//! `regenerate` (the stale grace), and its owner (the `index` option's field, for "log out
//! everywhere"). Every field is optional; a record without `__meta` (an older one, or one
//! Node wrote) has none.
//!
//! The Lua session builds the same map as a table; `Meta::encode` writes what the table
//! encoder writes for it, so equal bookkeeping encodes equally byte for byte (a test pins it).

use std::ops::Range;

use super::{FALSE, INT, MAP, NoMemory, Reader, entries_of, put, varint_len, write_str};
use crate::lifetime::MaxAge;

/// The record key the bookkeeping lives under.
pub const META_KEY: &str = "__meta";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// Milliseconds since the epoch.
    pub created: Option<i64>,
    pub max_age: Option<MaxAge>,
    /// Milliseconds since the epoch: this id was retired by `regenerate` and is readable
    /// (with its old data, and never written) until then.
    pub stale: Option<i64>,
    pub owner: Option<String>,
}

/// 2^53: a bookkeeping number (`created`, a lifetime) counts only as a whole number below it in
/// magnitude, where every reader holds it exactly (LuaJIT's numbers, JavaScript's and the Redis
/// scripts' are doubles). Anything else (beyond it, a fraction, not a number) is absent, read
/// alike by every store and the Redis scripts: a stored `created` of 2^63 was i64::MAX to one
/// reader and -2^63 to another, which ended the session at once under `absoluteTimeout`.
pub const EXACT: i64 = 1 << 53;

/// A bookkeeping integer, when within ±2^53 (`EXACT`).
pub fn exact(i: i64) -> Option<i64> {
    (i.unsigned_abs() < EXACT as u64).then_some(i)
}

/// A bookkeeping number from a double: whole and within ±2^53 (`EXACT`), else none.
pub fn exact_f64(f: f64) -> Option<i64> {
    (f.fract() == 0.0 && f.abs() < EXACT as f64).then_some(f as i64)
}

/// A session's own lifetime from a bookkeeping number (already `exact`): a positive one.
pub fn own_ms(ms: Option<i64>) -> Option<MaxAge> {
    ms.and_then(|ms| u64::try_from(ms).ok())
        .filter(|&ms| ms > 0)
        .map(MaxAge::Ms)
}

/// A number's encoding, read as a whole number: an integer, or a float `exact_f64` takes (a
/// Lua 5.1 number written by another interpreter's encoder). `created` and a lifetime then
/// go through `exact`.
fn int(v: &[u8]) -> Option<i64> {
    let mut r = Reader::new(v);
    match r.byte()? {
        INT => Some(i64::from_le_bytes(r.eight()?)),
        super::FLOAT => exact_f64(f64::from_le_bytes(r.eight()?)),
        _ => None,
    }
}

/// A retirement's mark (`stale`, when its grace ends, in ms): any number, as every reader takes
/// it (`engine::table_meta` for a table store, the Redis scripts' `type(meta.stale) == 'number'`): a
/// retired id is read-only, so a mark is never read as none. A float is cut to a whole ms,
/// saturated (NaN: 0, a grace long over).
fn mark(v: &[u8]) -> Option<i64> {
    let mut r = Reader::new(v);
    match r.byte()? {
        INT => Some(i64::from_le_bytes(r.eight()?)),
        super::FLOAT => Some(stale_ms(f64::from_le_bytes(r.eight()?))),
        _ => None,
    }
}

/// A float retirement mark as whole ms (`mark`): cut, saturated, NaN as 0.
pub fn stale_ms(f: f64) -> i64 {
    // `as` saturates and takes NaN to 0.
    f as i64
}

impl Meta {
    /// The bookkeeping of an encoded `__meta` value; fields of the wrong type are ignored.
    pub fn from_value(v: &[u8]) -> Meta {
        let mut m = Meta::default();
        let Ok(entries) = entries_of(v) else {
            return m;
        };
        for (k, v) in entries {
            match k {
                b"created" => m.created = int(v).and_then(exact),
                b"stale" => m.stale = mark(v),
                b"maxAge" if v.first() == Some(&FALSE) => m.max_age = Some(MaxAge::Browser),
                b"maxAge" => m.max_age = own_ms(int(v).and_then(exact)),
                b"owner" => {
                    let mut r = Reader::new(v);
                    m.owner = r
                        .string()
                        .and_then(|s| std::str::from_utf8(s).ok())
                        .map(String::from)
                }
                _ => {}
            }
        }
        m
    }

    /// The bookkeeping in a stored record (none when the record has no `__meta`): loads and
    /// merges run it.
    pub fn of_record(record: &[u8]) -> Meta {
        meta_value(record).map(Meta::from_value).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        *self == Meta::default()
    }

    /// The encoded `__meta` value.
    pub fn encode(&self) -> Result<Vec<u8>, NoMemory> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the encoded `__meta` value to `out`: a map as `write_map` writes it, its keys in
    /// the order of their encodings (length byte first: owner, stale, maxAge, created), written
    /// in place without a buffer per field.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), NoMemory> {
        let int = |out: &mut Vec<u8>, n: i64| -> Result<(), NoMemory> {
            put(out, &[INT])?;
            put(out, &n.to_le_bytes())
        };
        let n = [
            self.owner.is_some(),
            self.stale.is_some(),
            self.max_age.is_some(),
            self.created.is_some(),
        ]
        .iter()
        .filter(|&&set| set)
        .count();
        put(out, &[MAP, n as u8])?;
        if let Some(o) = &self.owner {
            write_str(out, b"owner")?;
            write_str(out, o.as_bytes())?;
        }
        if let Some(s) = self.stale {
            write_str(out, b"stale")?;
            int(out, s)?;
        }
        match self.max_age {
            Some(MaxAge::Ms(ms)) => {
                write_str(out, b"maxAge")?;
                int(out, i64::try_from(ms).unwrap_or(i64::MAX))?;
            }
            Some(MaxAge::Browser) => {
                write_str(out, b"maxAge")?;
                put(out, &[FALSE])?;
            }
            None => {}
        }
        if let Some(c) = self.created {
            write_str(out, b"created")?;
            int(out, c)?;
        }
        Ok(())
    }
}

/// The most a retirement's mark adds to a record: a `__meta` entry holding only `stale` (its
/// key, a one-field map, `stale` and a number), and a byte of the record's key count.
pub const STALE_MARK_MAX: usize = (2 + META_KEY.len()) + 2 + (2 + "stale".len()) + 9 + 1;

/// The encoded `__meta` value of a stored record, if it has one: one walk over the top-level
/// keys, without allocating.
pub fn meta_value(record: &[u8]) -> Option<&[u8]> {
    entry(record, META_KEY.as_bytes(), 1).and_then(|e| record.get(e.value))
}

/// Whether `record` is within `maxSize` (`max`), as every load and every store's merge judge
/// it: its length, less the mark `regenerate` adds to the record of the id it retires
/// (`__meta.stale`). That mark is the engine's bookkeeping, added after the session was
/// checked: counted, a session near the limit could not be read under its old id during the
/// stale grace, and a login could not retire an id that another request had filled to the
/// limit. The mark is looked for only in a record longer than `max` by at most what a mark
/// takes (the common load and merge pay a comparison; a huge record is not walked).
pub fn within_max(record: &[u8], max: usize) -> bool {
    let len = record.len();
    len <= max
        || (len <= max.saturating_add(STALE_MARK_MAX)
            && len.saturating_sub(stale_mark_len(record).unwrap_or(0)) <= max)
}

/// The bytes a retirement's mark takes in `record`: the `stale` entry of its `__meta`, or the
/// whole `__meta` entry when the mark is all it holds (and what that entry adds to the key
/// count's varint); `None` when the record is not a retired one.
fn stale_mark_len(record: &[u8]) -> Option<usize> {
    let meta = entry(record, META_KEY.as_bytes(), 1)?;
    let value = record.get(meta.value.clone())?;
    let stale = entry(value, b"stale", 2)?;
    // Only a mark the engine reads as one (a number) retires the id.
    mark(value.get(stale.value.clone())?)?;
    let count_change = |n: u64| varint_len(n) - varint_len(n.saturating_sub(1));
    Some(if stale.count == 1 {
        meta.value.end - meta.start + count_change(meta.count)
    } else {
        stale.value.end - stale.start + count_change(stale.count)
    })
}

/// Where one entry of an encoded map lies.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    /// The entry's first byte (its key's).
    start: usize,
    /// Its value's bytes; the entry ends where the value does.
    value: Range<usize>,
    /// The map's entry count.
    count: u64,
}

/// The entry under the string `key` in the encoded map `map`, whose values `depth` tables
/// enclose (a record's: 1), found in one walk over its keys without allocating (`of_record`
/// runs it on every load); `None` when there is none, or the map is corrupt before it. Inlined
/// so that each caller's `key` is a constant: the comparison is then a few loads, where a call
/// to memcmp for each key of the same length cost a write about 80 instructions (callgrind).
#[inline(always)]
fn entry(map: &[u8], key: &[u8], depth: usize) -> Option<Entry> {
    let mut r = Reader::new(map);
    if r.byte()? != MAP {
        return None;
    }
    let count = r.varint()?;
    for _ in 0..count {
        let start = r.pos;
        let k = r.string()?;
        let value = r.pos;
        r.skip_value(depth).ok()?;
        if k == key {
            return Some(Entry {
                start,
                value: value..r.pos,
                count,
            });
        }
    }
    None
}

/// `changes` applied to the stored record `current` (`Record::merged`; `stored`, its
/// bookkeeping): what every store's merge writes. A `__meta` the changes rewrite carries this
/// request's whole bookkeeping, but it may have changed one field only (a login's owner, a
/// creation time stamped) while another request stored another field since: it keeps the
/// stored owner when the request did not change it (`Changes::keep_owner`), and the stored
/// lifetime when the write assumed one (`keep_lifetime`: a patch or write with a
/// `lifetime::Assumed`, which the engine drops where the request set the lifetime itself).
/// Returns the merged record and, where the changes rewrote `__meta`, the bookkeeping it holds
/// (else it is `stored`): the rest of a merge reads it for the lifetime kept and the owner.
pub fn merged(
    current: &[u8],
    stored: &Meta,
    changes: &super::Changes,
    keep_lifetime: bool,
) -> mlua::Result<(super::Record, Option<Meta>)> {
    let merged = super::Record::merged(current, changes)?;
    // The common merge leaves the bookkeeping alone, and pays for nothing more.
    if !changes.touches(META_KEY.as_bytes()) {
        return Ok((merged, None));
    }
    let mut meta = Meta::of_record(&merged.0);
    let keep_owner = changes.keep_owner && meta.owner != stored.owner;
    let keep_lifetime = keep_lifetime && meta.max_age != stored.max_age;
    if !(keep_owner || keep_lifetime) {
        return Ok((merged, Some(meta)));
    }
    if keep_owner {
        meta.owner.clone_from(&stored.owner);
    }
    if keep_lifetime {
        meta.max_age = stored.max_age;
    }
    Ok((with_meta(&merged.0, &meta)?, Some(meta)))
}

/// `record` with its `__meta` replaced by `meta` (removed when `meta` is empty).
pub fn with_meta(record: &[u8], meta: &Meta) -> mlua::Result<super::Record> {
    let value = if meta.is_empty() {
        None
    } else {
        Some(meta.encode()?)
    };
    let changes = super::Changes {
        set: value
            .map(|v| vec![(META_KEY.as_bytes().to_vec(), v)])
            .unwrap_or_default(),
        removed: if meta.is_empty() {
            vec![META_KEY.as_bytes().to_vec()]
        } else {
            Vec::new()
        },
        keep_owner: false,
    };
    super::Record::merged(record, &changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::prelude::*;

    #[test]
    fn lua_tables_and_meta_encode_alike() {
        let lua = Lua::new();
        let t: LuaTable = lua
            .load("return { __meta = { created = 1764400000000, maxAge = false, owner = 'u42', stale = 5 } }")
            .eval()
            .unwrap();
        let record = super::super::Record::from_table(&lua, &t).unwrap();
        let entries = record.entries().unwrap();
        let from_lua = entries[0].1;
        let m = Meta {
            created: Some(1_764_400_000_000),
            max_age: Some(MaxAge::Browser),
            stale: Some(5),
            owner: Some("u42".into()),
        };
        assert_eq!(m.encode().unwrap(), from_lua);
        assert_eq!(Meta::from_value(from_lua), m);
        assert_eq!(Meta::of_record(&record.0), m);
        // Every subset of the fields: the same bytes as the table encoder's.
        for mask in 0..16u8 {
            let src = format!(
                "return {{ __meta = {{ {} {} {} {} }} }}",
                if mask & 1 != 0 {
                    "created = 1764400000000,"
                } else {
                    ""
                },
                if mask & 2 != 0 {
                    "maxAge = 2592000000,"
                } else {
                    ""
                },
                if mask & 4 != 0 { "owner = 'u42'," } else { "" },
                if mask & 8 != 0 { "stale = 5," } else { "" },
            );
            let t: LuaTable = lua.load(src).eval().unwrap();
            let record = super::super::Record::from_table(&lua, &t).unwrap();
            let entries = record.entries().unwrap();
            let from_lua = entries[0].1;
            let m = Meta::from_value(from_lua);
            assert_eq!(m.encode().unwrap(), from_lua, "fields {mask:04b}");
        }
    }

    #[test]
    fn a_merge_that_keeps_the_owner_takes_the_stored_one_through_a_patch() {
        use super::super::{Changes, Entries};
        let with = |owner: Option<&str>, max_age| {
            let meta = Meta {
                created: Some(1000),
                max_age,
                owner: owner.map(String::from),
                ..Meta::default()
            };
            with_meta(&Entries::default().into_record().unwrap().0, &meta).unwrap()
        };
        // Stored since this request loaded: a login (ann). The request changed its lifetime
        // only, from a view without an owner.
        let stored = with(Some("ann"), None);
        let mine = with(None, Some(MaxAge::Ms(60_000)));
        let entries = mine.entries().unwrap();
        let patch = |keep_owner| Changes {
            set: vec![(META_KEY.as_bytes().to_vec(), entries[0].1.to_vec())],
            removed: Vec::new(),
            keep_owner,
        };
        for keep_owner in [true, false] {
            // What a Lua record store gets: the flag survives the patch's bytes.
            let bytes = patch(keep_owner).to_patch(None).unwrap();
            let (back, _) = Changes::from_patch(&bytes).unwrap().unwrap();
            assert_eq!(back.keep_owner, keep_owner);
            let (out, after) =
                merged(&stored.0, &Meta::of_record(&stored.0), &back, false).unwrap();
            let m = Meta::of_record(&out.0);
            assert_eq!(after.as_ref(), Some(&m));
            assert_eq!(
                m.max_age,
                Some(MaxAge::Ms(60_000)),
                "the request's lifetime"
            );
            let want = keep_owner.then(|| "ann".to_string());
            assert_eq!(m.owner, want, "keep_owner {keep_owner}");
        }
        // A stored logout (no owner, no other bookkeeping) and a request that kept ann in view:
        // the owner goes, and so does an otherwise empty __meta.
        let out = Entries::default().into_record().unwrap();
        let mine = with(Some("ann"), None);
        let changes = Changes {
            set: vec![(
                META_KEY.as_bytes().to_vec(),
                mine.entries().unwrap()[0].1.to_vec(),
            )],
            removed: Vec::new(),
            keep_owner: true,
        };
        let m = Meta::of_record(
            &merged(&out.0, &Meta::default(), &changes, false)
                .unwrap()
                .0
                .0,
        );
        assert_eq!(m.owner, None);
        assert_eq!(m.created, Some(1000));
    }

    #[test]
    fn a_rewritten_meta_keeps_the_stored_lifetime_where_the_write_assumed_one() {
        use super::super::{Changes, Entries};
        let month = Some(MaxAge::Ms(30 * 86_400_000));
        let record = |meta: &Meta| {
            let mut e = Entries::default();
            e.push(b"cart", &[FALSE]).unwrap();
            with_meta(&e.into_record().unwrap().0, meta).unwrap()
        };
        // Stored since this request loaded: remember me (a month). This request logged in as
        // bob (a new owner), its bookkeeping holding the lifetime it loaded (none).
        let stored = Meta {
            created: Some(1000),
            max_age: month,
            owner: Some("ann".into()),
            ..Meta::default()
        };
        let mine = Meta {
            created: Some(1000),
            owner: Some("bob".into()),
            ..Meta::default()
        };
        let current = record(&stored);
        let changes = Changes {
            set: vec![(META_KEY.as_bytes().to_vec(), mine.encode().unwrap())],
            removed: Vec::new(),
            keep_owner: false,
        };
        for keep_lifetime in [true, false] {
            let (out, after) = merged(&current.0, &stored, &changes, keep_lifetime).unwrap();
            let m = Meta::of_record(&out.0);
            assert_eq!(after, Some(m.clone()));
            assert_eq!(m.owner.as_deref(), Some("bob"), "this request's login");
            let want = if keep_lifetime { month } else { None };
            assert_eq!(m.max_age, want, "keep_lifetime {keep_lifetime}");
            assert_eq!(m.created, Some(1000));
            assert_eq!(out.entries().unwrap().len(), 2, "the data kept");
        }
        // A browser-session cookie stored is kept as one; a request whose bookkeeping is all
        // gone (its __meta removed) still leaves the stored lifetime.
        let browser = Meta {
            max_age: Some(MaxAge::Browser),
            ..stored.clone()
        };
        let (out, _) = merged(&record(&browser).0, &browser, &changes, true).unwrap();
        assert_eq!(Meta::of_record(&out.0).max_age, Some(MaxAge::Browser));
        let removed = Changes {
            set: Vec::new(),
            removed: vec![META_KEY.as_bytes().to_vec()],
            keep_owner: false,
        };
        let (out, after) = merged(&current.0, &stored, &removed, true).unwrap();
        let want = Meta {
            max_age: month,
            ..Meta::default()
        };
        assert_eq!(Meta::of_record(&out.0), want);
        assert_eq!(after, Some(want));
        // Changes that leave __meta alone report no bookkeeping of their own.
        let data = Changes {
            set: vec![(b"cart".to_vec(), vec![FALSE])],
            removed: Vec::new(),
            keep_owner: true,
        };
        let (out, after) = merged(&current.0, &stored, &data, true).unwrap();
        assert_eq!(after, None);
        assert_eq!(out, current);
    }

    #[test]
    fn a_retirement_mark_is_not_counted_against_max_size_and_nothing_else_is_spared() {
        let lua = Lua::new();
        let record = |src: String| {
            let t: LuaTable = lua.load(src).eval().unwrap();
            super::super::Record::from_table(&lua, &t).unwrap().0
        };
        // Every subset of the other fields, and key counts around a varint's width (the whole
        // __meta entry goes when the mark is all it holds: 127 + 1 keys, or 128 + 1).
        for mask in 0..8u8 {
            for keys in [0usize, 1, 126, 127, 128] {
                let fields = format!(
                    "{}{}{}",
                    if mask & 1 != 0 {
                        "created = 1764400000000,"
                    } else {
                        ""
                    },
                    if mask & 2 != 0 { "maxAge = false," } else { "" },
                    if mask & 4 != 0 { "owner = 'u42'," } else { "" },
                );
                let data = (0..keys)
                    .map(|i| format!("k{i} = 'v',"))
                    .collect::<String>();
                let plain = match mask {
                    0 => record(format!("return {{ {data} }}")),
                    _ => record(format!("return {{ {data} __meta = {{ {fields} }} }}")),
                };
                let retired = record(format!(
                    "return {{ {data} __meta = {{ {fields} stale = 5 }} }}"
                ));
                let mark = retired.len() - plain.len();
                assert!(
                    mark <= STALE_MARK_MAX,
                    "{mark} bytes, fields {mask:03b}, {keys} keys"
                );
                assert!(
                    within_max(&retired, plain.len()),
                    "fields {mask:03b}, {keys} keys"
                );
                assert!(
                    !within_max(&retired, plain.len() - 1),
                    "fields {mask:03b}, {keys} keys"
                );
                assert!(!within_max(&plain, plain.len() - 1));
            }
        }
        // The largest mark: a __meta of its own that takes the key count past a varint's byte.
        let data = (0..127).map(|i| format!("k{i} = 'v',")).collect::<String>();
        let without = record(format!("return {{ {data} }}"));
        let with = record(format!("return {{ {data} __meta = {{ stale = 5 }} }}"));
        assert_eq!(with.len() - without.len(), STALE_MARK_MAX);
        // Any number marks a retirement, as the other readers take it: a float too, cut to a
        // whole ms and saturated (NaN: 0), and its mark is not counted either.
        for (src, at) in [
            ("1.5", 1),
            ("1e300", i64::MAX),
            ("-1e300", i64::MIN),
            ("0/0", 0),
        ] {
            let plain = record("return { a = 'x' }".into());
            let marked = record(format!(
                "return {{ a = 'x', __meta = {{ stale = {src} }} }}"
            ));
            assert_eq!(Meta::of_record(&marked).stale, Some(at), "{src}");
            assert!(within_max(&marked, plain.len()), "{src}");
        }
        // A `stale` that is not a number retires nothing, and is counted.
        let odd = record("return { a = 'x', __meta = { stale = 'soon' } }".into());
        assert!(!within_max(&odd, odd.len() - 1));
        assert!(!within_max(b"garbage", 1));
    }

    #[test]
    fn an_entry_is_found_where_it_lies_and_nowhere_else() {
        use super::super::{MAX_DEPTH, STR, write_varint};
        let meta_entry = |bytes: &[u8]| entry(bytes, META_KEY.as_bytes(), 1);
        // A record of `keys` entries (as bytes: the walk reads them in the order they lie),
        // each a key and a one-byte value, `__meta` at `at` if given.
        let record = |keys: u64, at: Option<u64>| {
            let mut out = vec![MAP];
            write_varint(&mut out, keys).unwrap();
            let mut spans = None;
            for i in 0..keys {
                let start = out.len();
                if at == Some(i) {
                    write_str(&mut out, META_KEY.as_bytes()).unwrap();
                    let value = out.len();
                    Meta {
                        stale: Some(5),
                        ..Meta::default()
                    }
                    .encode_into(&mut out)
                    .unwrap();
                    spans = Some((start, value..out.len()));
                } else {
                    write_str(&mut out, format!("k{i}").as_bytes()).unwrap();
                    out.push(FALSE);
                }
            }
            (out, spans)
        };
        // First, between, last; key counts on both sides of a varint's first byte.
        for keys in [1u64, 2, 127, 128, 300] {
            for at in [0, keys / 2, keys - 1] {
                let (bytes, spans) = record(keys, Some(at));
                let (start, value) = spans.unwrap();
                let e = meta_entry(&bytes).unwrap();
                let want = Entry {
                    start,
                    value,
                    count: keys,
                };
                assert_eq!(e, want, "{keys} keys, at {at}");
                assert_eq!(Meta::of_record(&bytes).stale, Some(5));
                // Cut anywhere inside the entry, the record has none.
                for cut in e.start..e.value.end {
                    assert_eq!(meta_entry(&bytes[..cut]), None, "cut at {cut}");
                }
            }
            assert_eq!(meta_entry(&record(keys, None).0), None);
        }
        // `__meta` counted beyond the key count, or after a value that cannot be walked (a
        // string as a key's value, cut short), is not found.
        let (mut bytes, _) = record(2, Some(1));
        bytes[1] = 1;
        assert_eq!(meta_entry(&bytes), None);
        let mut bytes = vec![MAP, 2];
        write_str(&mut bytes, b"a").unwrap();
        bytes.extend([STR, 100]);
        write_str(&mut bytes, META_KEY.as_bytes()).unwrap();
        bytes.push(FALSE);
        assert_eq!(meta_entry(&bytes), None);
        // Not a map, or empty.
        for bytes in [&b""[..], b"garbage", &[MAP], &[MAP, 0]] {
            assert_eq!(meta_entry(bytes), None);
        }
        // A key that is only a prefix of `__meta`, or extends it, is not it.
        for key in [&b"__met"[..], b"__metas"] {
            let mut bytes = vec![MAP, 1];
            write_str(&mut bytes, key).unwrap();
            bytes.push(FALSE);
            assert_eq!(meta_entry(&bytes), None);
        }
        // Inside a value (stale_mark_len's second walk): `stale` among other fields, its value
        // the number's bytes.
        let m = Meta {
            created: Some(1),
            stale: Some(5),
            owner: Some("u".into()),
            ..Meta::default()
        }
        .encode()
        .unwrap();
        let e = entry(&m, b"stale", 2).unwrap();
        assert_eq!(e.count, 3);
        assert_eq!(int(&m[e.value.clone()]), Some(5));
        assert_eq!(&m[e.start..e.value.start], b"S\x05stale");
        // A table value deeper than the limit allows is not walked past.
        let mut bytes = vec![MAP, 2];
        write_str(&mut bytes, b"t").unwrap();
        bytes.extend([MAP, 0]);
        write_str(&mut bytes, b"x").unwrap();
        bytes.push(FALSE);
        assert!(entry(&bytes, b"x", 1).is_some());
        assert_eq!(entry(&bytes, b"x", MAX_DEPTH), None);
    }

    #[test]
    fn a_created_or_lifetime_that_no_double_holds_exactly_is_absent() {
        let lua = Lua::new();
        let meta = |src: &str| {
            let t: LuaTable = lua
                .load(format!("return {{ __meta = {{ {src} }} }}"))
                .eval()
                .unwrap();
            Meta::of_record(&super::super::Record::from_table(&lua, &t).unwrap().0)
        };
        // Integers (INT, on interpreters that have them) and floats alike, beyond ±2^53 or not
        // whole: absent, as a malformed lifetime always was (the session follows the options; a
        // creation time starts again).
        let integers = cfg!(any(feature = "lua53", feature = "lua54"));
        let with_integers = |portable: &[&'static str], only: &[&'static str]| {
            let mut all = portable.to_vec();
            if integers {
                all.extend_from_slice(only);
            }
            all
        };
        let created = with_integers(
            &[
                "created = 2^63",
                "created = 1e19",
                "created = 2^53",
                "created = -(2^53)",
                "created = 1.5",
                "created = 0/0",
                "created = 1/0",
            ],
            &[
                "created = math.maxinteger",
                "created = 1 << 53",
                "created = -(1 << 53)",
            ],
        );
        for src in created {
            assert_eq!(meta(src).created, None, "{src}");
        }
        let max_age = with_integers(
            &[
                "maxAge = 2^53",
                "maxAge = 2^63",
                "maxAge = 1500.5",
                "maxAge = 0",
                "maxAge = -1000",
            ],
            &["maxAge = math.maxinteger", "maxAge = 1 << 53"],
        );
        for src in max_age {
            assert_eq!(meta(src).max_age, None, "{src}");
        }
        // Just inside: kept, integer or float.
        let inside = (1i64 << 53) - 1;
        if integers {
            assert_eq!(meta("created = (1 << 53) - 1").created, Some(inside));
        }
        assert_eq!(meta("created = 2^53 - 1").created, Some(inside));
        assert_eq!(meta("created = -(2^53 - 1)").created, Some(-inside));
        assert_eq!(
            meta("maxAge = 2^53 - 1").max_age,
            Some(MaxAge::Ms(inside as u64))
        );
        assert_eq!(meta("maxAge = 500").max_age, Some(MaxAge::Ms(500)));
    }

    #[test]
    fn a_record_without_meta_has_none_and_garbage_is_ignored() {
        let lua = Lua::new();
        let t: LuaTable = lua.load("return { a = 1 }").eval().unwrap();
        let r = super::super::Record::from_table(&lua, &t).unwrap();
        assert!(Meta::of_record(&r.0).is_empty());
        assert!(Meta::of_record(b"garbage").is_empty());
        let m = Meta {
            max_age: Some(MaxAge::Ms(30 * 86_400_000)),
            ..Meta::default()
        };
        let with = with_meta(&r.0, &m).unwrap();
        assert_eq!(Meta::of_record(&with.0), m);
        let without = with_meta(&with.0, &Meta::default()).unwrap();
        assert_eq!(without, r);
    }
}

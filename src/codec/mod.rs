//! Lua values <-> the stored form. The one place that knows which values a session may hold.
//!
//! The stored form of a session is a [`Record`]: the binary encoding of its top-level table.
//! Encoding is deterministic (table keys are sorted by their encoded bytes), so two encodings
//! of equal data are equal byte for byte; that is how the session detects deep modification.
//!
//! Wire format, one tag byte then a payload:
//! `F` false, `T` true, `I` i64 (8 bytes LE), `N` f64 (8 bytes LE),
//! `S` string (varint length, bytes), `M` table (varint count, then key, value pairs).
//!
//! `lua` converts between Lua values and this form, `json` between it and JSON.

// Only the native RedisStore keeps sessions as JSON.
#[cfg(feature = "redis")]
mod json;
mod lua;
pub mod meta;

#[cfg(feature = "redis")]
pub use json::{from_json, to_json};
pub use lua::{
    DEEPEST_WALK, Room, STACK_EXHAUSTED, Slot, decode_session, decode_value, encode_entries,
    encode_table_at, encode_value_at, meta_at, push_decoded, push_session, type_name,
};

use mlua::prelude::*;
use std::cmp::Ordering;

const FALSE: u8 = b'F';
const TRUE: u8 = b'T';
const INT: u8 = b'I';
const FLOAT: u8 = b'N';
const STR: u8 = b'S';
const MAP: u8 = b'M';
/// A table that carries the array marker (`crate::array`): laid out as a map whose keys are
/// whole numbers from 1, and written to JSON as an array (holes as `null`).
const LIST: u8 = b'L';
/// In a patch only: the key was removed.
const REMOVED: u8 = b'X';
/// Before a patch's map: `Changes::keep_owner`.
const KEEP_OWNER: u8 = b'K';
/// First in a patch, with a varint: the session's `maxSize` (see `Changes::to_patch`).
const MAX_SIZE: u8 = b'Z';
/// Next in a patch: what lifetime the write assumed (`lifetime::Assumed`, its fixed-size form)
/// and 8 bytes that make the patch one of its own (see `Changes::to_patch_with`).
const ASSUMED: u8 = b'L';

/// Tables nest at most this many levels, the session's own table (or the value handed to
/// `json.encode`, or a JSON document's outermost value) being the first: one limit for encoding,
/// decoding stored records, stored JSON and `json`. Deeper is almost surely a bug, and the
/// limit bounds recursion.
pub const MAX_DEPTH: usize = 64;

/// The default `maxSize`: 4 MiB. Far above any sane session (a cookie-backed one holds 4 KB),
/// far below what takes a process down.
pub const DEFAULT_MAX_SIZE: usize = 4 * 1024 * 1024;

/// What errors say about the limit.
pub const TOO_DEEP: &str = "nests deeper than 64 levels";

/// Why a stored record of `len` bytes is not decoded: larger than `maxSize` (`max`).
pub fn larger_than_max(len: usize, max: usize) -> String {
    format!("the stored session is {len} bytes, more than maxSize ({max} bytes)")
}

/// Why a store's merge wrote nothing: the session it would store, `len` bytes, is larger than
/// `maxSize` (`max`) with what other requests stored since this one loaded it (the request's
/// own changes were checked as they were encoded), and no load could read it again. The *why*
/// of a store error: each store adds its name, the method and its address.
pub fn merged_larger_than_max(len: usize, max: usize) -> String {
    format!(
        "the session would be {len} bytes merged with what other requests stored since this one loaded it, more than maxSize ({max} bytes); nothing was stored"
    )
}

/// A buffer could not grow: the allocator refused (a memory limit). Buffers whose size comes
/// from session data or stored data grow fallibly, so a big session fails its request with a
/// clear error instead of aborting the process.
#[derive(Debug, Clone, Copy)]
pub struct NoMemory;

impl From<NoMemory> for LuaError {
    fn from(_: NoMemory) -> LuaError {
        LuaError::runtime("honeymoon_session: not enough memory for the session data")
    }
}

/// Makes room for `n` more bytes, or fails without aborting.
pub fn reserve(out: &mut Vec<u8>, n: usize) -> Result<(), NoMemory> {
    out.try_reserve(n).map_err(|_| NoMemory)
}

/// Appends `bytes`, growing fallibly.
pub fn put(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), NoMemory> {
    reserve(out, bytes.len())?;
    out.extend_from_slice(bytes);
    Ok(())
}

/// A copy of `bytes`, allocated fallibly.
pub fn try_copy(bytes: &[u8]) -> Result<Vec<u8>, NoMemory> {
    let mut out = Vec::new();
    put(&mut out, bytes)?;
    Ok(out)
}

/// Pushes onto a vector, growing fallibly.
fn try_push<T>(v: &mut Vec<T>, item: T) -> Result<(), NoMemory> {
    v.try_reserve(1).map_err(|_| NoMemory)?;
    v.push(item);
    Ok(())
}

/// One step of the path from the session's top level to a value, for error messages.
#[derive(Clone)]
pub(crate) enum Step {
    Key(Vec<u8>),
    Index(i64),
    Other(String),
}

impl Step {
    /// A key as Lua code names it, for a path the Lua side writes in a message (`hs._path`):
    /// the steps the encoder takes for the same key (a number's text as `Float`'s).
    pub(crate) fn of(key: &LuaValue) -> Step {
        match key {
            LuaValue::String(s) => Step::Key(s.as_bytes().to_vec()),
            LuaValue::Integer(i) => Step::Index(*i),
            LuaValue::Number(n) => Step::Other(number_text(*n)),
            LuaValue::Boolean(b) => Step::Other(b.to_string()),
            other => Step::Other(a_type(other).to_string()),
        }
    }
}

/// `cart.items[3]` (`the session` for the empty path).
pub(crate) fn describe_path(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                let k = String::from_utf8_lossy(k);
                let ident = !k.is_empty()
                    && !k.starts_with(|c: char| c.is_ascii_digit())
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                match (ident, s.is_empty()) {
                    (true, true) => s.push_str(&k),
                    (true, false) => {
                        s.push('.');
                        s.push_str(&k)
                    }
                    _ => s.push_str(&format!("[{k:?}]")),
                }
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
            Step::Other(o) => s.push_str(&format!("[{o}]")),
        }
    }
    if s.is_empty() {
        s.push_str("the session");
    }
    s
}

/// `_path(...)`: a path of keys from Lua named as the encoder names it (`cart.items[3]`,
/// `["my key"]`), for messages written in Lua.
pub fn path_of_keys(_: &Lua, keys: LuaMultiValue) -> LuaResult<String> {
    let steps: Vec<Step> = keys.iter().map(Step::of).collect();
    Ok(describe_path(&steps))
}

fn type_message(path: &[Step], what: &str) -> String {
    format!(
        "honeymoon_session: session value {} is {what}; sessions hold only nil, booleans, numbers, strings and tables of them",
        describe_path(path)
    )
}

/// The integer a double is stored as where Lua has no integer subtype (Lua 5.1, 5.2 and
/// LuaJIT): one with an integral value that an i64 holds exactly (`-0.0` is not one). The
/// encoder reads numbers so (`lua::integer_at`), and a value read from JSON is stored so, so
/// that a number read back unchanged encodes as it was stored.
#[cfg(not(any(feature = "lua53", feature = "lua54")))]
pub(crate) fn double_as_integer(n: f64) -> Option<i64> {
    // `as` saturates: 2^63 and beyond become i64::MAX, which converts back to 2^63, so 2^63
    // itself would pass the round trip as 2^63 - 1. No double is i64::MAX, so that is never one.
    let i = n as i64;
    (i != i64::MAX && (i as f64).to_bits() == n.to_bits()).then_some(i)
}

/// The bytes a varint of `n` takes.
fn varint_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// The varint of `n` and its length, on the stack.
fn varint_bytes(mut n: u64) -> ([u8; 10], usize) {
    let mut b = [0u8; 10];
    let mut i = 0;
    while n >= 0x80 {
        b[i] = (n as u8) | 0x80;
        n >>= 7;
        i += 1;
    }
    b[i] = n as u8;
    (b, i + 1)
}

fn write_varint(out: &mut Vec<u8>, mut n: u64) -> Result<(), NoMemory> {
    reserve(out, 10)?;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    Ok(())
}

/// The bytes `write_str` writes for a string of `len` bytes.
pub(crate) fn str_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn write_str(out: &mut Vec<u8>, s: &[u8]) -> Result<(), NoMemory> {
    reserve(out, str_len(s.len()))?;
    out.push(STR);
    write_varint(out, s.len() as u64)?;
    out.extend_from_slice(s);
    Ok(())
}

/// A table's encoding: pairs sorted by encoded key, so equal tables encode equally.
fn write_map(out: &mut Vec<u8>, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), NoMemory> {
    write_table(out, MAP, pairs)
}

/// The position an encoded key names in an array: a whole number from 1, else `None`.
fn position(key: &[u8]) -> Option<i64> {
    let [INT, rest @ ..] = key else { return None };
    let n = i64::from_le_bytes(<[u8; 8]>::try_from(rest).ok()?);
    (n >= 1).then_some(n)
}

/// The holes of a marked table that is written as `LIST` (every key a position): the highest
/// position less the number of keys; `None` when it is written as a map. Its JSON form holds
/// a `null` for each, so they count toward `maxSize` as a stored `null` does when read
/// (`HOLE_COST` bytes each), and a session written within the limit is read within it.
fn holes(pairs: &[(Vec<u8>, Vec<u8>)]) -> Option<usize> {
    let mut top = 0i64;
    for (k, _) in pairs {
        top = top.max(position(k)?);
    }
    Some(
        usize::try_from(top)
            .unwrap_or(usize::MAX)
            .saturating_sub(pairs.len()),
    )
}

/// What a hole of a marked table costs toward `maxSize`: a number's encoding, as a `null` read
/// from stored JSON is charged.
pub(crate) const HOLE_COST: usize = 9;

/// The most holes a marked table may have and still be written to JSON as an array (holes as
/// `null`); past that (`a[1e6] = 1`) it is written as an object with string keys, and its
/// holes cost nothing.
pub const MAX_HOLES: usize = 1 << 16;

/// A table's encoding under `tag` (`MAP`, or `LIST` for a marked table whose keys are all
/// positions).
fn write_table(
    out: &mut Vec<u8>,
    tag: u8,
    mut pairs: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<(), NoMemory> {
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let size = pairs.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    reserve(out, 11 + size)?;
    out.push(tag);
    write_varint(out, pairs.len() as u64)?;
    for (k, v) in pairs {
        out.extend_from_slice(&k);
        out.extend_from_slice(&v);
    }
    Ok(())
}

/// A number as an error message quotes it: 1e300 as 1e300 and 1e-300 as 1e-300, not as
/// hundreds of digits.
pub fn number_text(n: f64) -> String {
    if n.abs() >= 1e16 || (n != 0.0 && n.abs() < 1e-4) {
        format!("{n:e}")
    } else {
        n.to_string()
    }
}

/// A value as a message's "got ..." shows it: a number as its text (`number_text`), anything
/// else as its type in words (`a string`, `nil`).
pub fn number_or_type(v: &LuaValue) -> String {
    match v {
        LuaValue::Integer(i) => i.to_string(),
        LuaValue::Number(n) => number_text(*n),
        other => a_type(other).to_string(),
    }
}

/// A value's type in words, with its article, as Lua users name types: `a number`, `nil`...
pub fn a_type(v: &LuaValue) -> &'static str {
    match v {
        LuaValue::Nil => "nil",
        LuaValue::Boolean(_) => "a boolean",
        LuaValue::Integer(_) | LuaValue::Number(_) => "a number",
        LuaValue::String(_) => "a string",
        LuaValue::Table(_) => "a table",
        LuaValue::Function(_) => "a function",
        LuaValue::Thread(_) => "a coroutine",
        LuaValue::UserData(_) | LuaValue::LightUserData(_) => "a userdata",
        LuaValue::Error(_) => "an error object",
        _ => "a value of an unsupported type",
    }
}

/// A session's stored form: the encoding of its top-level table, keys sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record(pub Vec<u8>);

/// The top-level changes a request made: keys to write (with their encoded values) and keys
/// to remove. Applied to the store's current version, so concurrent requests that change
/// different keys do not undo each other.
#[derive(Debug, Default)]
pub struct Changes {
    pub set: Vec<(Vec<u8>, Vec<u8>)>,
    pub removed: Vec<Vec<u8>>,
    /// Where these changes rewrite `__meta`, its owner stays the stored record's: the request
    /// did not change the owner (the `index` field), and another request may have (a login)
    /// since this one loaded the session. The owner then follows the stored field, as every
    /// key the request left alone does.
    pub keep_owner: bool,
}

impl Changes {
    /// Whether these changes write or remove top-level key `key`.
    pub fn touches(&self, key: &[u8]) -> bool {
        self.set.iter().any(|(k, _)| k == key) || self.removed.iter().any(|k| k == key)
    }

    /// The changes as one byte string, for stores written in Lua that merge atomically on
    /// their side (`Record::merged` over `Changes::from_patch`): a map in key order whose
    /// removed keys carry the tag `X` instead of a value. `max`, the session's `maxSize`,
    /// goes first when given (tag `Z`, a varint): the merge (`store::merge_patch`) refuses a
    /// merged session past it, so every store that merges with `_merge_patch` has the check
    /// without being handed the limit or changing a line.
    #[cfg(any(feature = "redis", feature = "test-hooks", test))]
    pub fn to_patch(&self, max: Option<usize>) -> Result<Vec<u8>, NoMemory> {
        self.to_patch_with(max, None)
    }

    /// As `to_patch`, with the lifetime this write assumed (tag `L`), where the store may hold
    /// another one: `store::merge_patch` then tells the session what lifetime it keeps. Such a
    /// patch also carries a number no other patch of this process has, so that what the merge
    /// found about it is noted for this commit alone (src/lua/exports.lua's `_merge_patch`).
    pub fn to_patch_with(
        &self,
        max: Option<usize>,
        assumed: Option<&crate::lifetime::Assumed>,
    ) -> Result<Vec<u8>, NoMemory> {
        let size = self
            .set
            .iter()
            .map(|(k, v)| str_len(k.len()) + v.len())
            .sum::<usize>()
            + self
                .removed
                .iter()
                .map(|k| str_len(k.len()) + 1)
                .sum::<usize>();
        let mut out = Vec::new();
        reserve(&mut out, 23 + 50 + size)?;
        if let Some(max) = max {
            put(&mut out, &[MAX_SIZE])?;
            write_varint(&mut out, max as u64)?;
        }
        if let Some(a) = assumed {
            static PATCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = PATCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            put(&mut out, &[ASSUMED])?;
            put(&mut out, &a.to_bytes())?;
            put(&mut out, &n.to_le_bytes())?;
        }
        if self.keep_owner {
            put(&mut out, &[KEEP_OWNER])?;
        }
        put(&mut out, &[MAP])?;
        write_varint(&mut out, (self.set.len() + self.removed.len()) as u64)?;
        // Both lists are in key order (as `diff` and `from_patch` make them): merge them.
        let (mut set, mut removed) = (self.set.iter().peekable(), self.removed.iter().peekable());
        loop {
            let take_set = match (set.peek(), removed.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((k, _)), Some(r)) => k <= *r,
            };
            if take_set {
                if let Some((k, v)) = set.next() {
                    write_str(&mut out, k)?;
                    put(&mut out, v)?;
                }
            } else if let Some(k) = removed.next() {
                write_str(&mut out, k)?;
                put(&mut out, &[REMOVED])?;
            }
        }
        Ok(out)
    }

    /// Reads what `to_patch` wrote: the changes, and the `maxSize` the patch carries;
    /// `Ok(None)` for anything else.
    #[cfg(test)]
    pub fn from_patch(buf: &[u8]) -> Result<Option<(Changes, Option<usize>)>, NoMemory> {
        Ok(Changes::read_patch(buf)?.map(|p| (p.changes, p.max)))
    }

    /// Reads what `to_patch_with` wrote; `Ok(None)` for anything else.
    pub fn read_patch(buf: &[u8]) -> Result<Option<Patch>, NoMemory> {
        let mut r = Reader::new(buf);
        let mut tag = r.byte();
        let mut max = None;
        if tag == Some(MAX_SIZE) {
            let Some(n) = r.varint().and_then(|n| usize::try_from(n).ok()) else {
                return Ok(None);
            };
            max = Some(n);
            tag = r.byte();
        }
        let mut assumed = None;
        if tag == Some(ASSUMED) {
            let Some(a) = r
                .take(crate::lifetime::ASSUMED_LEN)
                .and_then(crate::lifetime::Assumed::from_bytes)
            else {
                return Ok(None);
            };
            // The patch's own number: only makes it unique.
            if r.take(8).is_none() {
                return Ok(None);
            }
            assumed = Some(a);
            tag = r.byte();
        }
        let keep_owner = tag == Some(KEEP_OWNER);
        if keep_owner {
            tag = r.byte();
        }
        if tag != Some(MAP) {
            return Ok(None);
        }
        let Some(n) = r.varint() else {
            return Ok(None);
        };
        let mut changes = Changes {
            keep_owner,
            ..Changes::default()
        };
        let mut last: Option<&[u8]> = None;
        for _ in 0..n {
            let Some(key) = r.string() else {
                return Ok(None);
            };
            if last.is_some_and(|l| l >= key) {
                return Ok(None); // keys must be sorted and distinct, as merged() relies on
            }
            last = Some(key);
            if r.peek() == Some(REMOVED) {
                r.byte();
                try_push(&mut changes.removed, try_copy(key)?)?;
            } else {
                let start = r.pos;
                if r.skip_value(1).is_err() {
                    return Ok(None);
                }
                let value = try_copy(buf.get(start..r.pos).unwrap_or_default())?;
                try_push(&mut changes.set, (try_copy(key)?, value))?;
            }
        }
        Ok((r.pos == buf.len()).then_some(Patch {
            changes,
            max,
            assumed,
        }))
    }
}

/// A patch as `Changes::read_patch` reads it: the changes, the session's `maxSize`, and the
/// lifetime the write assumed where the store may hold another one.
pub struct Patch {
    pub changes: Changes,
    pub max: Option<usize>,
    pub assumed: Option<crate::lifetime::Assumed>,
}

/// Why stored bytes could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    Corrupt,
    TooDeep,
}

impl Bad {
    pub fn describe(self) -> &'static str {
        match self {
            Bad::Corrupt => "stored session data is corrupt",
            Bad::TooDeep => "stored session data nests deeper than 64 levels",
        }
    }
}

/// Why `bytes` (a stored record) cannot be decoded: nesting beyond `MAX_DEPTH`, or anything
/// else wrong. For error messages, after a decode failed.
pub fn why_undecodable(bytes: &[u8]) -> Bad {
    let mut r = Reader::new(bytes);
    match r.skip_value(0) {
        Err(Bad::TooDeep) => Bad::TooDeep,
        _ => Bad::Corrupt,
    }
}

fn corrupt() -> LuaError {
    LuaError::runtime("honeymoon_session: stored session data is corrupt")
}

fn undecodable(bytes: &[u8]) -> LuaError {
    LuaError::runtime(format!(
        "honeymoon_session: {}",
        why_undecodable(bytes).describe()
    ))
}

impl Record {
    /// Encodes a Lua table of string keys (the session data) into a record.
    pub fn from_table(lua: &Lua, t: &LuaTable) -> LuaResult<Record> {
        Record::from_table_within(lua, t, usize::MAX)
    }

    /// As `from_table`, refusing a record larger than `limit` bytes before building it.
    pub fn from_table_within(lua: &Lua, t: &LuaTable, limit: usize) -> LuaResult<Record> {
        let mut entries = Entries::with_limit(limit);
        encode_entries(lua, t, &mut entries)?;
        entries.into_record()
    }

    /// Decodes into a fresh Lua table.
    pub fn to_table(&self, lua: &Lua) -> LuaResult<LuaTable> {
        match decode_value(lua, &self.0)? {
            LuaValue::Table(t) => Ok(t),
            _ => Err(corrupt()),
        }
    }

    /// As `to_table`, without the bookkeeping (`meta::META_KEY`): what a store's own `get`
    /// shows of a session.
    pub fn data_table(&self, lua: &Lua) -> LuaResult<LuaTable> {
        let t = self.to_table(lua)?;
        t.raw_set(meta::META_KEY, LuaValue::Nil)?;
        Ok(t)
    }

    /// The (key, encoded value) pairs, in key order.
    #[cfg(any(feature = "redis", test))]
    pub fn entries(&self) -> LuaResult<Vec<(&[u8], &[u8])>> {
        entries_of(&self.0)
    }

    /// What changed from `self` (as loaded) to `now` (at commit), key by key: one walk over
    /// both records, so a commit stays linear in the number of keys.
    #[cfg(any(feature = "redis", feature = "test-hooks", test))]
    pub fn diff(&self, now: &Record) -> LuaResult<Changes> {
        diff(&self.0, now)
    }
}

/// Orders two top-level keys. Every key comparison of `diff` and `merged` goes through here,
/// so a test can count them: a commit must stay linear in the number of keys.
fn key_cmp(a: &[u8], b: &[u8]) -> Ordering {
    #[cfg(test)]
    tests::COMPARISONS.with(|c| c.set(c.get() + 1));
    a.cmp(b)
}

/// What changed from `loaded` (a stored record, borrowed) to `now`, key by key: one walk over
/// both records side by side (their keys are in order), so a commit stays linear in the number
/// of keys.
pub fn diff(loaded: &[u8], now: &Record) -> LuaResult<Changes> {
    let (mut before, mut after) = (EntryIter::record(loaded)?, EntryIter::record(&now.0)?);
    let (mut b, mut a) = (before.next().transpose()?, after.next().transpose()?);
    let mut changes = Changes::default();
    loop {
        match (b, a) {
            (None, None) => break,
            (Some((bk, _)), None) => {
                try_push(&mut changes.removed, try_copy(bk)?)?;
                b = before.next().transpose()?;
            }
            (None, Some((ak, av))) => {
                try_push(&mut changes.set, (try_copy(ak)?, try_copy(av)?))?;
                a = after.next().transpose()?;
            }
            (Some((bk, bv)), Some((ak, av))) => match key_cmp(bk, ak) {
                Ordering::Less => {
                    try_push(&mut changes.removed, try_copy(bk)?)?;
                    b = before.next().transpose()?;
                }
                Ordering::Greater => {
                    try_push(&mut changes.set, (try_copy(ak)?, try_copy(av)?))?;
                    a = after.next().transpose()?;
                }
                Ordering::Equal => {
                    if bv != av {
                        try_push(&mut changes.set, (try_copy(ak)?, try_copy(av)?))?;
                    }
                    b = before.next().transpose()?;
                    a = after.next().transpose()?;
                }
            },
        }
    }
    Ok(changes)
}

impl Record {
    /// Applies changes to a stored record (the store's current version, borrowed where it is
    /// kept), copying each byte once, key by key (`meta::merged` also honours `keep_owner`).
    /// `changes` lists keys in sorted order (as `diff` makes them); one walk merges the two,
    /// writing as it goes into one buffer (no list of entries in between).
    pub fn merged(current: &[u8], changes: &Changes) -> LuaResult<Record> {
        let stored = EntryIter::new(current)?;
        // At most every stored entry and every change: the map's header is written for that
        // many, and moved up below in the rare case the count then takes a shorter varint.
        let most = stored.left.saturating_add(changes.set.len() as u64);
        let head = 1 + varint_len(most);
        let size = changes
            .set
            .iter()
            .map(|(k, v)| str_len(k.len()) + v.len())
            .sum::<usize>();
        let mut out = Vec::new();
        // The stored entries are copied as they are, so the record bounds their size.
        reserve(&mut out, head + current.len() + size)?;
        out.resize(head, 0);
        let mut count = 0u64;
        let mut entry = |out: &mut Vec<u8>, k: &[u8], v: &[u8]| {
            count += 1;
            write_str(out, k)?;
            put(out, v)
        };
        let mut set = changes
            .set
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .peekable();
        let mut removed = changes.removed.iter().map(Vec::as_slice).peekable();
        for e in stored {
            let (k, v) = e?;
            while let Some(&(sk, sv)) = set.peek() {
                match key_cmp(sk, k) {
                    Ordering::Less => {
                        entry(&mut out, sk, sv)?;
                        set.next();
                    }
                    _ => break,
                }
            }
            while removed
                .peek()
                .is_some_and(|r| key_cmp(r, k) == Ordering::Less)
            {
                removed.next();
            }
            if removed
                .peek()
                .is_some_and(|r| key_cmp(r, k) == Ordering::Equal)
            {
                continue;
            }
            if set
                .peek()
                .is_some_and(|(sk, _)| key_cmp(sk, k) == Ordering::Equal)
            {
                continue; // written below, with its new value
            }
            entry(&mut out, k, v)?;
        }
        for (k, v) in set {
            entry(&mut out, k, v)?;
        }
        let (varint, n) = varint_bytes(count);
        // count <= most, so its varint fits the room left for most's.
        let at = head.checked_sub(1 + n).ok_or_else(corrupt)?;
        out[at] = MAP;
        out[at + 1..head].copy_from_slice(&varint[..n]);
        if at > 0 {
            out.drain(..at);
        }
        Ok(Record(out))
    }

    /// Writes `count` sorted, distinct entries of `size` bytes (keys and values as written).
    fn write<'a>(
        count: usize,
        size: usize,
        entries: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Record, NoMemory> {
        let mut out = Vec::new();
        reserve(&mut out, 11 + size)?;
        out.push(MAP);
        write_varint(&mut out, count as u64)?;
        for (k, v) in entries {
            write_str(&mut out, k)?;
            out.extend_from_slice(v);
        }
        Ok(Record(out))
    }
}

/// A record being built: keys and encoded values in one buffer, sorted at the end. It holds
/// the size budget (`maxSize`): every byte the record will hold is charged before it is
/// written, so an oversized session fails before its buffers grow past the limit.
pub struct Entries {
    buf: Vec<u8>,
    /// (key start, value start, value end) in `buf`.
    spans: Vec<(usize, usize, usize)>,
    /// Bytes of the record's size budget not yet charged.
    pub(crate) left: usize,
    /// The whole budget, for messages.
    pub(crate) limit: usize,
}

impl Default for Entries {
    fn default() -> Self {
        Entries::with_limit(usize::MAX)
    }
}

/// Why a record could not be built: too big for the limit, or no memory.
pub(crate) fn too_big(limit: usize, path: &str) -> String {
    format!(
        "honeymoon_session: the session is larger than maxSize ({limit} bytes) at {path}; store less in it, or raise maxSize"
    )
}

impl Entries {
    /// An empty record that may grow to `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        // Room for a typical session, so the common commit grows neither vector. Fallibly:
        // without it, the pushes reserve (and report a failure) as they go.
        let (mut buf, mut spans) = (Vec::new(), Vec::new());
        let _ = buf.try_reserve(256);
        let _ = spans.try_reserve(16);
        Entries {
            buf,
            spans,
            left: limit,
            limit,
        }
    }

    /// Charges `n` bytes of the budget; false when they do not fit.
    pub(crate) fn charge(left: &mut usize, n: usize) -> bool {
        match left.checked_sub(n) {
            Some(rest) => {
                *left = rest;
                true
            }
            None => false,
        }
    }

    /// Starts an entry under `key` (its bytes charged); returns the buffer to write its
    /// encoded value into.
    fn start(&mut self, key: &[u8]) -> Result<&mut Vec<u8>, NoMemory> {
        self.spans.try_reserve(1).map_err(|_| NoMemory)?;
        let k = self.buf.len();
        put(&mut self.buf, key)?;
        self.spans.push((k, self.buf.len(), 0));
        Ok(&mut self.buf)
    }

    /// Ends the entry `start` began.
    fn finish(&mut self) {
        let end = self.buf.len();
        if let Some(last) = self.spans.last_mut() {
            last.2 = end;
        }
    }

    /// Adds an entry whose value is already encoded, charging the budget.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> LuaResult<()> {
        if !Entries::charge(&mut self.left, str_len(key.len()) + value.len()) {
            return Err(LuaError::runtime(too_big(
                self.limit,
                &describe_path(&[Step::Key(key.to_vec())]),
            )));
        }
        put(self.start(key)?, value)?;
        self.finish();
        Ok(())
    }

    /// The keys of the entries so far, in the order they were added.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        let buf = &self.buf;
        self.spans
            .iter()
            .map(move |&(k, v, _)| buf.get(k..v).unwrap_or_default())
    }

    /// No entry yet.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn into_record(mut self) -> LuaResult<Record> {
        if !Entries::charge(&mut self.left, 1 + varint_len(self.spans.len() as u64)) {
            return Err(LuaError::runtime(too_big(self.limit, "the session")));
        }
        let buf = &self.buf;
        let key = |&(k, v, _): &(usize, usize, usize)| buf.get(k..v).unwrap_or_default();
        let value = |&(_, v, e): &(usize, usize, usize)| buf.get(v..e).unwrap_or_default();
        // The spans are sorted in place by their keys (no list of slices); a key given twice
        // (a data key also set as a method name's shadow by rawset) keeps its first entry.
        self.spans
            .sort_unstable_by(|a, b| key(a).cmp(key(b)).then(a.0.cmp(&b.0)));
        self.spans.dedup_by(|a, b| key(a) == key(b));
        let size = self
            .spans
            .iter()
            .map(|s| str_len(key(s).len()) + value(s).len())
            .sum::<usize>();
        let entries = self.spans.iter().map(|s| (key(s), value(s)));
        Ok(Record::write(self.spans.len(), size, entries)?)
    }
}

/// The most keys a session compared with a shallow copy may have: past a few dozen, building
/// the copy and walking it cost more than encoding (10,000 keys: 1.4 ms more per read).
pub const FLAT_MAX: u64 = 32;

/// How many top-level entries a record has, when there are at most `FLAT_MAX` and every one is
/// a data key (`slot`) holding a scalar (no table): such a session can be compared with a
/// shallow copy, without encoding.
pub fn flat_len(record: &[u8], slot: impl Fn(&[u8]) -> Slot) -> Option<usize> {
    let mut r = Reader::new(record);
    if r.byte() != Some(MAP) {
        return None;
    }
    let n = r.varint().filter(|&n| n <= FLAT_MAX)?;
    for _ in 0..n {
        let key = r.string()?;
        if slot(key) != Slot::Data || matches!(r.peek(), Some(MAP | LIST)) {
            return None;
        }
        r.skip_value(1).ok()?;
    }
    usize::try_from(n).ok()
}

/// The (key, encoded value) pairs of an encoded record, in key order.
fn entries_of(buf: &[u8]) -> LuaResult<Vec<(&[u8], &[u8])>> {
    let entries = EntryIter::new(buf)?;
    let mut out = Vec::new();
    out.try_reserve(entries.left.min(1024) as usize)
        .map_err(|_| NoMemory)?;
    for entry in entries {
        try_push(&mut out, entry?)?;
    }
    Ok(out)
}

/// The (key, encoded value) pairs of an encoded map one by one, without a list (a commit's
/// diff walks two records side by side).
struct EntryIter<'a> {
    r: Reader<'a>,
    left: u64,
    /// A record's top level, whose keys this module writes in byte order (`into_record`):
    /// there a key out of order (or repeated) is corrupt, since `diff` and the patches it makes
    /// rely on the order. (Nested maps are in the order of their encoded keys.)
    ordered: bool,
    last: Option<&'a [u8]>,
}

impl<'a> EntryIter<'a> {
    fn new(buf: &'a [u8]) -> LuaResult<EntryIter<'a>> {
        EntryIter::over(buf, false)
    }

    /// A record's top-level entries, refused from the first key out of byte order.
    fn record(buf: &'a [u8]) -> LuaResult<EntryIter<'a>> {
        EntryIter::over(buf, true)
    }

    fn over(buf: &'a [u8], ordered: bool) -> LuaResult<EntryIter<'a>> {
        let mut r = Reader::new(buf);
        if r.byte() != Some(MAP) {
            return Err(corrupt());
        }
        let left = r.varint().ok_or_else(corrupt)?;
        Ok(EntryIter {
            r,
            left,
            ordered,
            last: None,
        })
    }
}

impl<'a> Iterator for EntryIter<'a> {
    type Item = LuaResult<(&'a [u8], &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = &mut self.r;
        let in_order = |k: &&[u8]| !self.ordered || self.last.is_none_or(|l| l < *k);
        let Some(key) = r.string().filter(in_order) else {
            self.left = 0;
            return Some(Err(corrupt()));
        };
        self.last = Some(key);
        let start = r.pos;
        if r.skip_value(1).is_err() {
            self.left = 0;
            return Some(Err(undecodable(r.buf)));
        }
        Some(Ok((key, r.buf.get(start..r.pos).unwrap_or_default())))
    }
}

/// Reads the wire format; `None` means corrupt input (never a panic).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Whether the next value can be a Lua table key: this module never writes a table as a
    /// key, and Lua raises on a NaN one; stored bytes with either are corrupt.
    fn key_ahead(&self) -> bool {
        match self.peek() {
            Some(MAP | LIST) => false,
            Some(FLOAT) => self
                .buf
                .get(self.pos + 1..self.pos + 9)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .is_some_and(|b| !f64::from_le_bytes(b).is_nan()),
            _ => true,
        }
    }

    fn byte(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn eight(&mut self) -> Option<[u8; 8]> {
        self.take(8)?.try_into().ok()
    }

    fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(n);
            }
        }
        None
    }

    /// Whether the next value is a position (a whole number from 1): the only keys `LIST` has.
    fn position_ahead(&self) -> bool {
        self.buf
            .get(self.pos..self.pos + 9)
            .and_then(position)
            .is_some()
    }

    /// A string value (tag included).
    fn string(&mut self) -> Option<&'a [u8]> {
        if self.byte()? != STR {
            return None;
        }
        let n = self.varint()? as usize;
        self.take(n)
    }

    /// Skips one value that `depth` tables enclose (a session's top-level values: 1). A table
    /// at level `depth + 1` beyond `MAX_DEPTH` is refused.
    fn skip_value(&mut self, depth: usize) -> Result<(), Bad> {
        let c = Bad::Corrupt;
        match self.byte().ok_or(c)? {
            FALSE | TRUE => {}
            INT | FLOAT => {
                self.take(8).ok_or(c)?;
            }
            STR => {
                let n = self.varint().ok_or(c)? as usize;
                self.take(n).ok_or(c)?;
            }
            tag @ (MAP | LIST) => {
                if depth >= MAX_DEPTH {
                    return Err(Bad::TooDeep);
                }
                for _ in 0..self.varint().ok_or(c)? {
                    if tag == LIST && !self.position_ahead() {
                        return Err(c);
                    }
                    self.skip_value(depth + 1)?;
                    self.skip_value(depth + 1)?;
                }
            }
            _ => return Err(c),
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn numbers_in_messages_stay_short() {
        assert_eq!(number_text(0.5), "0.5");
        assert_eq!(number_text(-3.0), "-3");
        assert_eq!(number_text(1e300), "1e300");
        assert_eq!(number_text(1e-300), "1e-300");
        assert_eq!(number_text(0.0), "0");
    }

    /// Where every number is a double, 2^63 saturates to i64::MAX, which converts back to
    /// 2^63: it was stored as the integer 2^63 - 1, which Lua 5.3/5.4 and JSON readers then
    /// read as another number.
    #[cfg(not(any(feature = "lua53", feature = "lua54")))]
    #[test]
    fn a_double_is_an_integer_only_where_an_i64_holds_it_exactly() {
        let two_63 = 9_223_372_036_854_775_808.0_f64;
        assert_eq!(double_as_integer(two_63), None);
        assert_eq!(double_as_integer(1e19), None);
        assert_eq!(double_as_integer(f64::INFINITY), None);
        assert_eq!(double_as_integer(f64::NAN), None);
        assert_eq!(double_as_integer(-two_63), Some(i64::MIN));
        assert_eq!(
            double_as_integer(4_611_686_018_427_387_904.0),
            Some(1 << 62)
        );
        assert_eq!(double_as_integer(-0.0), None);
        assert_eq!(double_as_integer(7.0), Some(7));
    }

    #[test]
    fn a_path_from_lua_keys_is_named_as_the_encoder_names_it() {
        let lua = Lua::new();
        let key = |s: &[u8]| LuaValue::String(lua.create_string(s).unwrap());
        let path =
            |keys: &[LuaValue]| describe_path(&keys.iter().map(Step::of).collect::<Vec<_>>());
        assert_eq!(
            path(&[key(b"cart"), key(b"items"), LuaValue::Integer(3)]),
            "cart.items[3]"
        );
        assert_eq!(path(&[key(b"flash"), key(b"my key")]), r#"flash["my key"]"#);
        // Escaped as Rust escapes: a control byte, a quote, a byte that is not UTF-8.
        assert_eq!(path(&[key(b"x\x1b\"\xff")]), "[\"x\\u{1b}\\\"\u{fffd}\"]");
        assert_eq!(path(&[key(b"9lives")]), r#"["9lives"]"#);
        assert_eq!(path(&[key(b"")]), r#"[""]"#);
        assert_eq!(
            path(&[key(b"session"), key(b"cookie"), LuaValue::Number(1.5)]),
            "session.cookie[1.5]"
        );
        assert_eq!(path(&[key(b"c"), LuaValue::Number(2.0)]), "c[2]");
        assert_eq!(path(&[key(b"c"), LuaValue::Boolean(true)]), "c[true]");
        let t = LuaValue::Table(lua.create_table().unwrap());
        assert_eq!(path(&[key(b"c"), t]), "c[a table]");
        assert_eq!(path(&[]), "the session");
    }

    #[test]
    fn a_got_value_is_a_number_as_text_or_a_type() {
        let lua = Lua::new();
        let cases = [
            (LuaValue::Integer(-3), "-3"),
            (LuaValue::Integer(i64::MAX), "9223372036854775807"),
            (LuaValue::Number(1.5), "1.5"),
            (LuaValue::Number(2.0), "2"),
            (LuaValue::Number(1e300), "1e300"),
            (LuaValue::Number(f64::NAN), "NaN"),
            (LuaValue::Number(f64::NEG_INFINITY), "-inf"),
            (LuaValue::Nil, "nil"),
            (LuaValue::Boolean(true), "a boolean"),
            (
                LuaValue::String(lua.create_string("12").unwrap()),
                "a string",
            ),
            (LuaValue::Table(lua.create_table().unwrap()), "a table"),
        ];
        for (v, want) in cases {
            assert_eq!(number_or_type(&v), want, "{v:?}");
        }
    }

    thread_local! {
        /// Key comparisons made by `diff` and `merged` on this thread (see `key_cmp`).
        pub static COMPARISONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    pub(crate) fn roundtrip(lua: &Lua, src: &str) -> (Record, Record) {
        let t: LuaTable = lua.load(src).eval().unwrap();
        let rec = Record::from_table(lua, &t).unwrap();
        let back = rec.to_table(lua).unwrap();
        (rec, Record::from_table(lua, &back).unwrap())
    }

    #[test]
    fn roundtrips_every_allowed_value() {
        let lua = Lua::new();
        let (a, b) = roundtrip(
            &lua,
            r#"{ i = 1, f = 1.0, s = "a\0\255b", t = true, n = false,
                 nest = { [1] = "x", [3] = "sparse", [-2] = 0.5, empty = {} }, big = math.maxinteger or 2^53 }"#,
        );
        assert_eq!(a, b);
        let t = a.to_table(&lua).unwrap();
        let f: LuaValue = t.get("f").unwrap();
        let i: LuaValue = t.get("i").unwrap();
        if cfg!(any(feature = "lua53", feature = "lua54")) {
            assert!(matches!(f, LuaValue::Number(x) if x == 1.0));
            assert!(matches!(i, LuaValue::Integer(1)));
        } else {
            // No integer subtype: both are the number 1 (mlua may hand either back as Integer).
            for v in [f, i] {
                assert!(
                    matches!(v, LuaValue::Number(x) if x == 1.0)
                        || matches!(v, LuaValue::Integer(1))
                );
            }
        }
        let s: LuaString = t.get("s").unwrap();
        assert_eq!(s.as_bytes().to_vec(), b"a\0\xffb".to_vec());
        let sparse: String = lua
            .load("local t = ... return t.nest[3] .. t.nest[-2] .. #t.nest")
            .call((t,))
            .unwrap();
        assert_eq!(sparse, "sparse0.51");
    }

    #[test]
    fn encoding_is_independent_of_insertion_order() {
        let lua = Lua::new();
        let (a, _) = roundtrip(
            &lua,
            "local t = {} t.b = 1 t.a = 2 t[5] = 3 return { x = t }",
        );
        let (b, _) = roundtrip(
            &lua,
            "local t = {} t[5] = 3 t.a = 2 t.b = 1 return { x = t }",
        );
        assert_eq!(a, b);
    }

    #[test]
    fn names_the_path_of_a_bad_value() {
        let lua = Lua::new();
        let cases = [
            (
                "return { cart = { items = { 1, 2, print } } }",
                "cart.items[3] is a function",
            ),
            (
                "local c = {} c.self = c return { c = c }",
                "c.self is a table that contains itself",
            ),
            (
                "return { t = { [print] = 1 } }",
                "t is a table with a function as a key",
            ),
            (
                "return { [1] = 'x' }",
                "session keys must be strings, got a number",
            ),
            (
                "return { co = { coroutine.create(function() end) } }",
                "co[1] is a coroutine",
            ),
            (
                "return { t = { [false] = { ok = 1 }, [true] = { print } } }",
                "t[true][1] is a function",
            ),
        ];
        for (src, want) in cases {
            let t: LuaTable = lua.load(src).eval().unwrap();
            let err = Record::from_table(&lua, &t).unwrap_err().to_string();
            assert!(err.contains(want), "{src}: {err}");
        }
        let deep: LuaTable = lua
            .load(
                "local t = {} local c = t for i = 1, 100 do c.n = {} c = c.n end return { d = t }",
            )
            .eval()
            .unwrap();
        let err = Record::from_table(&lua, &deep).unwrap_err().to_string();
        assert!(err.contains("nests deeper than 64 levels"), "{err}");
    }

    /// A session whose value `d` nests `n` tables (the session's own table makes n + 1).
    fn nested(lua: &Lua, n: usize) -> LuaTable {
        lua.load(format!(
            "local t = {{}} local c = t for i = 2, {n} do c.n = {{}} c = c.n end return {{ d = t }}"
        ))
        .eval()
        .unwrap()
    }

    #[test]
    fn one_depth_limit_for_encoding_decoding_and_json() {
        let lua = Lua::new();
        // 64 levels counting the session: encoded, decoded, and as JSON.
        let ok = Record::from_table(&lua, &nested(&lua, 63)).unwrap();
        assert!(ok.to_table(&lua).is_ok());
        #[cfg(feature = "redis")]
        {
            let entries = ok.entries().unwrap();
            let json = to_json("d", entries[0].1).unwrap();
            assert_eq!(from_json(&json).unwrap().unwrap(), entries[0].1);
        }
        // 65: refused by the encoder, naming the limit.
        let err = Record::from_table(&lua, &nested(&lua, 64)).unwrap_err();
        assert!(
            err.to_string().contains("nests deeper than 64 levels"),
            "{err}"
        );
        // Stored data one level deeper (another program wrote it): decode and JSON refuse it
        // naming the limit, not as corruption.
        let mut inner = ok.entries().unwrap()[0].1.to_vec();
        inner = [b"M\x01S\x01n".as_slice(), &inner].concat();
        let deep = Record::write(
            1,
            3 + inner.len(),
            [(b"d".as_slice(), inner.as_slice())].into_iter(),
        )
        .unwrap();
        assert_eq!(why_undecodable(&deep.0), Bad::TooDeep);
        let err = deep.to_table(&lua).unwrap_err().to_string();
        assert!(
            err.contains("stored session data nests deeper than 64 levels"),
            "{err}"
        );
        let err = deep.entries().unwrap_err().to_string();
        assert!(err.contains("nests deeper than 64 levels"), "{err}");
        #[cfg(feature = "redis")]
        assert!(
            to_json("d", &inner)
                .unwrap_err()
                .contains("nests deeper than 64 levels")
        );
        assert_eq!(why_undecodable(b"M\x05"), Bad::Corrupt);
    }

    #[test]
    fn the_size_budget_is_checked_before_the_buffer_grows() {
        let lua = Lua::new();
        let t: LuaTable = lua
            .load("return { small = 'x', cart = { big = string.rep('y', 5000) } }")
            .eval()
            .unwrap();
        let err = Record::from_table_within(&lua, &t, 1000)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the session is larger than maxSize (1000 bytes) at cart.big"),
            "{err}"
        );
        let fits = Record::from_table_within(&lua, &t, 6000).unwrap();
        assert!(fits.0.len() <= 6000);
        // The budget counts what the record holds: a limit of exactly its size passes.
        let exact = Record::from_table_within(&lua, &t, fits.0.len()).unwrap();
        assert_eq!(exact, fits);
        assert!(Record::from_table_within(&lua, &t, fits.0.len() - 1).is_err());
        let mut entries = Entries::with_limit(100);
        let err = entries
            .push(b"flash", &[b'S'; 200])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("larger than maxSize (100 bytes) at flash"),
            "{err}"
        );
    }

    #[test]
    fn shared_subtables_are_not_cycles() {
        let lua = Lua::new();
        let (a, b) = roundtrip(&lua, "local s = { 1 } return { a = s, b = s }");
        assert_eq!(a, b);
    }

    #[test]
    fn diff_and_merge_touch_only_changed_keys() {
        let lua = Lua::new();
        let (base, _) = roundtrip(&lua, "return { a = 1, b = 2, c = 3 }");
        let (mine, _) = roundtrip(&lua, "return { a = 10, b = 2 }");
        let (theirs, _) = roundtrip(&lua, "return { a = 1, b = 2, c = 3, d = 4 }");
        let changes = base.diff(&mine).unwrap();
        assert_eq!(changes.set.len(), 1);
        assert_eq!(changes.removed, vec![b"c".to_vec()]);
        let merged = Record::merged(&theirs.0, &changes).unwrap();
        let (want, _) = roundtrip(&lua, "return { a = 10, b = 2, d = 4 }");
        assert_eq!(merged, want);
    }

    #[test]
    fn patches_round_trip_and_merge_like_changes() {
        let lua = Lua::new();
        let (base, _) = roundtrip(&lua, "return { a = 1, b = 2, c = 3, e = 5 }");
        let (mine, _) = roundtrip(&lua, "return { a = 10, b = 2, z = { 1 } }");
        let changes = base.diff(&mine).unwrap();
        let patch = changes.to_patch(None).unwrap();
        let (back, max) = Changes::from_patch(&patch).unwrap().unwrap();
        assert_eq!(max, None);
        assert_eq!(back.set, changes.set);
        assert_eq!(back.removed, changes.removed);
        let (theirs, _) = roundtrip(&lua, "return { a = 1, b = 2, c = 3, d = 4, e = 5 }");
        let merged = Record::merged(&theirs.0, &back).unwrap();
        let (want, _) = roundtrip(&lua, "return { a = 10, b = 2, d = 4, z = { 1 } }");
        assert_eq!(merged, want);
        // A stored record whose keys are out of order is corrupt: no patch from it (a patch
        // out of order would be refused by every merge).
        assert!(diff(b"M\x02S\x01bTS\x01aT", &mine).is_err());
        assert!(diff(b"M\x02S\x01aTS\x01aT", &mine).is_err());
        assert!(Changes::from_patch(b"M\x01S\x01aX junk").unwrap().is_none());
        assert!(
            Changes::from_patch(b"M\x02S\x01bXS\x01aX")
                .unwrap()
                .is_none(),
            "unsorted keys"
        );
        // The limit a patch carries, whatever its width, with the same changes.
        for limit in [1, 127, 128, 1000, 2_147_483_647] {
            let patch = changes.to_patch(Some(limit)).unwrap();
            let (again, max) = Changes::from_patch(&patch).unwrap().unwrap();
            assert_eq!(max, Some(limit));
            assert_eq!(
                (again.set, again.removed),
                (back.set.clone(), back.removed.clone())
            );
        }
        assert!(
            Changes::from_patch(b"Z\xff").unwrap().is_none(),
            "a cut varint"
        );
        // The lifetime a write assumed travels with its changes; each such patch is one of its
        // own (what `_merge_patch` finds is noted by patch), and a cut one is no patch.
        use crate::codec::meta::Meta;
        use crate::lifetime::{Assumed, MaxAge, Rule};
        let rule = Rule {
            ttl: 3600,
            max_age: Some(3600),
            absolute: Some(60),
        };
        let meta = Meta {
            max_age: Some(MaxAge::Ms(5000)),
            created: Some(7),
            ..Meta::default()
        };
        let assumed = Assumed::new(rule, meta.max_age, meta.created);
        let one = changes.to_patch_with(Some(1000), Some(&assumed)).unwrap();
        let two = changes.to_patch_with(Some(1000), Some(&assumed)).unwrap();
        assert_ne!(one, two);
        for patch in [&one, &two] {
            let read = Changes::read_patch(patch).unwrap().unwrap();
            assert_eq!(read.max, Some(1000));
            assert_eq!(read.assumed, Some(assumed));
            assert_eq!(
                (read.changes.set, read.changes.removed),
                (back.set.clone(), back.removed.clone())
            );
        }
        assert!(Changes::read_patch(&one[..20]).unwrap().is_none());
        let plain = changes.to_patch(Some(1000)).unwrap();
        assert_eq!(Changes::read_patch(&plain).unwrap().unwrap().assumed, None);
    }

    #[test]
    fn a_merge_whose_count_takes_a_shorter_varint_writes_it_so() {
        // 128 keys (a two-byte count) merged with a removal and a change: at most 129 entries
        // were room for, 127 are written (a one-byte count), as encoding them afresh does.
        let lua = Lua::new();
        let (base, _) = roundtrip(
            &lua,
            "local t = {} for i = 1, 128 do t['k' .. i] = i end return t",
        );
        for (mine, count) in [
            ("t.k5 = nil t.k7 = 'x'", 127),
            ("t.k5 = nil t.k7 = nil", 126),
            ("t.k7 = 'x' t.new = 1", 129),
            ("t.k7 = 'x'", 128),
        ] {
            let src =
                format!("local t = {{}} for i = 1, 128 do t['k' .. i] = i end {mine} return t");
            let (want, _) = roundtrip(&lua, &src);
            let changes = base.diff(&want).unwrap();
            let merged = Record::merged(&base.0, &changes).unwrap();
            assert_eq!(merged, want, "{mine}");
            assert_eq!(EntryIter::new(&merged.0).unwrap().left, count, "{mine}");
        }
    }

    #[test]
    fn diff_and_merge_handle_many_keys() {
        let lua = Lua::new();
        let (base, _) = roundtrip(
            &lua,
            "local t = {} for i = 1, 40000 do t['k' .. i] = i end return t",
        );
        let (mine, _) = roundtrip(
            &lua,
            "local t = {} for i = 1, 40000 do t['k' .. i] = i end t.k7 = 'x' t.k9 = nil return t",
        );
        COMPARISONS.with(|c| c.set(0));
        let changes = base.diff(&mine).unwrap();
        let merged = Record::merged(&base.0, &changes).unwrap();
        assert_eq!(merged, mine);
        assert_eq!((changes.set.len(), changes.removed.len()), (1, 1));
        // One walk over each list: a few comparisons per key (diff one, merged up to four),
        // where the quadratic code of before made n * n / 2 (issue 8, item 4).
        let n = 40_000;
        let made = COMPARISONS.with(|c| c.get());
        assert!(made <= 6 * n, "{made} key comparisons for {n} keys");
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let lua = Lua::new();
        let bad: [&[u8]; 6] = [
            b"",
            b"M",
            b"M\x05",
            b"S\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            b"I12",
            b"MM",
        ];
        for bytes in bad {
            assert!(decode_value(&lua, bytes).is_err(), "{bytes:?}");
            assert!(Record(bytes.to_vec()).entries().is_err(), "{bytes:?}");
        }
        // A table as a key, and a NaN key: never written by this module, refused as corrupt
        // (a NaN key used to raise Lua's own "table index is NaN").
        let mut nan_key = b"M\x01N".to_vec();
        nan_key.extend_from_slice(&f64::NAN.to_le_bytes());
        nan_key.push(TRUE);
        for bytes in [b"M\x01M\x00T".to_vec(), nan_key] {
            let err = decode_value(&lua, &bytes).unwrap_err().to_string();
            assert!(err.contains("corrupt"), "{bytes:?}: {err}");
        }
        // The Lua stack is left balanced after failures.
        let top: i64 = lua.load("return select('#', 1, 2)").eval().unwrap();
        assert_eq!(top, 2);
    }
}

#[cfg(test)]
mod garbage {
    use super::*;

    /// Random bytes and mutations of real records: decoding fails cleanly or succeeds, never
    /// panics, and leaves the Lua stack balanced.
    #[test]
    fn decoding_garbage_never_panics() {
        let lua = Lua::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (real, _) = tests::roundtrip(
            &lua,
            "return { a = { 1, 2, { b = 'c' } }, d = 1.5, e = true }",
        );
        for round in 0..20_000 {
            let mut bytes = if round % 2 == 0 {
                real.0.clone()
            } else {
                (0..(next() % 40)).map(|_| next() as u8).collect()
            };
            for _ in 0..(next() % 4) {
                if !bytes.is_empty() {
                    let i = (next() as usize) % bytes.len();
                    bytes[i] = next() as u8;
                }
            }
            let _ = decode_value(&lua, &bytes);
            let _ = Record(bytes.clone()).entries();
            #[cfg(feature = "redis")]
            let _ = to_json("x", &bytes);
        }
        let top: i64 = lua.load("return select('#', 1, 2, 3)").eval().unwrap();
        assert_eq!(top, 3);
    }
}

//! Lua values <-> the stored form. The one place that knows which values a session may hold.
//!
//! The stored form of a session is a [`Record`]: the binary encoding of its top-level table.
//! Encoding is deterministic (table keys are sorted by their encoded bytes), so two encodings
//! of equal data are equal byte for byte; that is how the session detects deep modification.
//!
//! Wire format, one tag byte then a payload:
//! `F` false, `T` true, `I` i64 (8 bytes LE), `N` f64 (8 bytes LE),
//! `S` string (varint length, bytes), `M` table (varint count, then key, value pairs).

use mlua::prelude::*;

const FALSE: u8 = b'F';
const TRUE: u8 = b'T';
const INT: u8 = b'I';
const FLOAT: u8 = b'N';
const STR: u8 = b'S';
const MAP: u8 = b'M';

/// Deeper nesting than this is refused: it is almost surely a bug, and it bounds recursion.
const MAX_DEPTH: usize = 64;

/// One step of the path from the session's top level to a value, for error messages.
enum Step {
    Key(Vec<u8>),
    Index(i64),
    Other(String),
}

fn describe_path(path: &[Step]) -> String {
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

fn type_error(path: &[Step], what: &str) -> LuaError {
    LuaError::runtime(format!(
        "honeymoon_session: session value {} is {what}; sessions hold only nil, booleans, numbers, strings and tables of them",
        describe_path(path)
    ))
}

fn write_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Encodes Lua values, tracking the path (for errors) and the tables being walked (for cycles).
struct Encoder {
    path: Vec<Step>,
    open: Vec<*const std::ffi::c_void>,
}

impl Encoder {
    fn new() -> Self {
        Encoder {
            path: Vec::new(),
            open: Vec::new(),
        }
    }

    fn scalar(out: &mut Vec<u8>, v: &LuaValue) -> bool {
        match v {
            LuaValue::Boolean(false) => out.push(FALSE),
            LuaValue::Boolean(true) => out.push(TRUE),
            LuaValue::Integer(i) => {
                out.push(INT);
                out.extend_from_slice(&i.to_le_bytes());
            }
            LuaValue::Number(n) => {
                out.push(FLOAT);
                out.extend_from_slice(&n.to_le_bytes());
            }
            LuaValue::String(s) => {
                let b = s.as_bytes();
                out.push(STR);
                write_varint(out, b.len() as u64);
                out.extend_from_slice(&b);
            }
            _ => return false,
        }
        true
    }

    fn value(&mut self, out: &mut Vec<u8>, v: &LuaValue) -> LuaResult<()> {
        if Self::scalar(out, v) {
            return Ok(());
        }
        match v {
            LuaValue::Table(t) => self.table(out, t),
            LuaValue::Nil => Err(type_error(&self.path, "nil")),
            other => Err(type_error(&self.path, a_type(other))),
        }
    }

    fn table(&mut self, out: &mut Vec<u8>, t: &LuaTable) -> LuaResult<()> {
        let ptr = t.to_pointer();
        if self.open.contains(&ptr) {
            return Err(type_error(
                &self.path,
                "a table that contains itself (a cycle)",
            ));
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(type_error(&self.path, "nested too deeply"));
        }
        self.open.push(ptr);
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for pair in t.pairs::<LuaValue, LuaValue>() {
            let (k, v) = pair?;
            let mut key = Vec::new();
            if !Self::scalar(&mut key, &k) {
                return Err(type_error(
                    &self.path,
                    &format!("a table with {} as a key", a_type(&k)),
                ));
            }
            self.path.push(match &k {
                LuaValue::String(s) => Step::Key(s.as_bytes().to_vec()),
                LuaValue::Integer(i) => Step::Index(*i),
                other => Step::Other(format!("{other:?}")),
            });
            let mut val = Vec::new();
            self.value(&mut val, &v)?;
            self.path.pop();
            pairs.push((key, val));
        }
        self.open.pop();
        write_map(out, pairs);
        Ok(())
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

/// Checks that a value may be stored in a session without encoding it (cheap, shallow).
pub fn check_storable(key: &str, v: &LuaValue) -> LuaResult<()> {
    match v {
        LuaValue::Nil
        | LuaValue::Boolean(_)
        | LuaValue::Integer(_)
        | LuaValue::Number(_)
        | LuaValue::String(_)
        | LuaValue::Table(_) => Ok(()),
        other => Err(type_error(
            &[Step::Key(key.as_bytes().to_vec())],
            a_type(other),
        )),
    }
}

/// Encodes one value (a session's top-level value, a flash value...) to its stored bytes.
pub fn encode_value(path: &str, v: &LuaValue) -> LuaResult<Vec<u8>> {
    let mut enc = Encoder::new();
    enc.path.push(Step::Key(path.as_bytes().to_vec()));
    let mut out = Vec::new();
    enc.value(&mut out, v)?;
    Ok(out)
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
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }
}

impl Record {
    /// Builds a record from entries (key bytes without tag, encoded value); sorts them.
    pub fn from_entries(mut entries: Vec<(Vec<u8>, Vec<u8>)>) -> Record {
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        let mut out = Vec::with_capacity(
            8 + entries
                .iter()
                .map(|(k, v)| k.len() + v.len() + 6)
                .sum::<usize>(),
        );
        out.push(MAP);
        write_varint(&mut out, entries.len() as u64);
        for (k, v) in &entries {
            out.push(STR);
            write_varint(&mut out, k.len() as u64);
            out.extend_from_slice(k);
            out.extend_from_slice(v);
        }
        Record(out)
    }

    /// Encodes a Lua table of string keys (the session data) into a record.
    pub fn from_table(t: &LuaTable) -> LuaResult<Record> {
        let mut entries = Vec::new();
        for pair in t.pairs::<LuaValue, LuaValue>() {
            let (k, v) = pair?;
            let key = match &k {
                LuaValue::String(s) => s.as_bytes().to_vec(),
                other => {
                    return Err(LuaError::runtime(format!(
                        "honeymoon_session: session keys must be strings, got {} key",
                        a_type(other)
                    )));
                }
            };
            let mut enc = Encoder::new();
            enc.path.push(Step::Key(key.clone()));
            let mut val = Vec::new();
            enc.value(&mut val, &v)?;
            entries.push((key, val));
        }
        Ok(Record::from_entries(entries))
    }

    /// The (key, encoded value) pairs, in key order.
    pub fn entries(&self) -> LuaResult<Vec<(&[u8], &[u8])>> {
        let mut r = Reader::new(&self.0);
        if r.byte()? != MAP {
            return Err(corrupt());
        }
        let n = r.varint()?;
        let mut out = Vec::with_capacity(n.min(1024) as usize);
        for _ in 0..n {
            if r.byte()? != STR {
                return Err(corrupt());
            }
            let len = r.varint()? as usize;
            let key = r.take(len)?;
            let start = r.pos;
            r.skip_value(0)?;
            out.push((key, &self.0[start..r.pos]));
        }
        Ok(out)
    }
    pub fn is_empty(&self) -> bool {
        self.0.len() <= 2 && self.0.get(1).is_none_or(|&n| n == 0)
    }

    /// What changed from `self` (as loaded) to `now` (at commit), key by key.
    pub fn diff(&self, now: &Record) -> LuaResult<Changes> {
        let before = self.entries()?;
        let after = now.entries()?;
        let mut changes = Changes::default();
        for (k, v) in &after {
            if !before.iter().any(|(bk, bv)| bk == k && bv == v) {
                changes.set.push((k.to_vec(), v.to_vec()));
            }
        }
        for (k, _) in &before {
            if !after.iter().any(|(ak, _)| ak == k) {
                changes.removed.push(k.to_vec());
            }
        }
        Ok(changes)
    }

    /// Applies changes to this record (the store's current version).
    pub fn merge(&self, changes: &Changes) -> LuaResult<Record> {
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = self
            .entries()?
            .into_iter()
            .filter(|(k, _)| {
                !changes.removed.iter().any(|r| r == k) && !changes.set.iter().any(|(s, _)| s == k)
            })
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        entries.extend(changes.set.iter().cloned());
        Ok(Record::from_entries(entries))
    }

    /// Decodes into a fresh Lua table.
    pub fn to_table(&self, lua: &Lua) -> LuaResult<LuaTable> {
        match decode_value(lua, &self.0)? {
            LuaValue::Table(t) => Ok(t),
            _ => Err(corrupt()),
        }
    }
}

fn corrupt() -> LuaError {
    LuaError::runtime("honeymoon_session: stored session data is corrupt")
}

/// Decodes one encoded value into a fresh Lua value.
pub fn decode_value(lua: &Lua, bytes: &[u8]) -> LuaResult<LuaValue> {
    let mut r = Reader::new(bytes);
    let v = r.lua_value(lua, 0)?;
    if r.pos != bytes.len() {
        return Err(corrupt());
    }
    Ok(v)
}

/// The JSON form of one stored value, for stores that speak JSON (express-session's format).
/// A table whose keys are exactly 1..n becomes an array, any other table an object with its
/// keys as strings; strings must be UTF-8 and numbers finite, else this fails, naming `path`.
pub fn to_json(path: &str, bytes: &[u8]) -> Result<serde_json::Value, String> {
    let mut r = Reader::new(bytes);
    let v = r.json_value(0).map_err(|e| format!("{path}: {e}"))?;
    if r.pos != bytes.len() {
        return Err(format!("{path}: stored session data is corrupt"));
    }
    Ok(v)
}

/// The stored form of a JSON value; `None` for `null`, which a Lua table cannot hold.
pub fn from_json(v: &serde_json::Value) -> Option<Vec<u8>> {
    use serde_json::Value as J;
    let mut out = Vec::new();
    match v {
        J::Null => return None,
        J::Bool(b) => out.push(if *b { TRUE } else { FALSE }),
        J::Number(n) => match n.as_i64() {
            Some(i) => {
                // LuaJIT's numbers are doubles: store what it will hold, so reading such a
                // value back unchanged does not look like a modification.
                #[cfg(feature = "luajit")]
                let i = i as f64 as i64;
                out.push(INT);
                out.extend_from_slice(&i.to_le_bytes());
            }
            None => {
                out.push(FLOAT);
                out.extend_from_slice(&n.as_f64().unwrap_or(f64::NAN).to_le_bytes());
            }
        },
        J::String(s) => {
            out.push(STR);
            write_varint(&mut out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        J::Array(items) => {
            let pairs = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let mut k = vec![INT];
                    k.extend_from_slice(&(i as i64 + 1).to_le_bytes());
                    from_json(item).map(|v| (k, v))
                })
                .collect();
            write_map(&mut out, pairs);
        }
        J::Object(map) => {
            let pairs = map
                .iter()
                .filter_map(|(k, item)| {
                    let mut key = vec![STR];
                    write_varint(&mut key, k.len() as u64);
                    key.extend_from_slice(k.as_bytes());
                    from_json(item).map(|v| (key, v))
                })
                .collect();
            write_map(&mut out, pairs);
        }
    }
    Some(out)
}

/// A table's encoding: pairs sorted by encoded key, so equal tables encode equally.
fn write_map(out: &mut Vec<u8>, mut pairs: Vec<(Vec<u8>, Vec<u8>)>) {
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out.push(MAP);
    write_varint(out, pairs.len() as u64);
    for (k, v) in pairs {
        out.extend_from_slice(&k);
        out.extend_from_slice(&v);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn byte(&mut self) -> LuaResult<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(corrupt)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> LuaResult<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(corrupt)?;
        let s = self.buf.get(self.pos..end).ok_or_else(corrupt)?;
        self.pos = end;
        Ok(s)
    }

    fn eight(&mut self) -> LuaResult<[u8; 8]> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(a)
    }

    fn varint(&mut self) -> LuaResult<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err(corrupt())
    }

    fn skip_value(&mut self, depth: usize) -> LuaResult<()> {
        if depth > MAX_DEPTH {
            return Err(corrupt());
        }
        match self.byte()? {
            FALSE | TRUE => {}
            INT | FLOAT => {
                self.take(8)?;
            }
            STR => {
                let n = self.varint()? as usize;
                self.take(n)?;
            }
            MAP => {
                for _ in 0..self.varint()? {
                    self.skip_value(depth + 1)?;
                    self.skip_value(depth + 1)?;
                }
            }
            _ => return Err(corrupt()),
        }
        Ok(())
    }

    fn lua_value(&mut self, lua: &Lua, depth: usize) -> LuaResult<LuaValue> {
        if depth > MAX_DEPTH {
            return Err(corrupt());
        }
        Ok(match self.byte()? {
            FALSE => LuaValue::Boolean(false),
            TRUE => LuaValue::Boolean(true),
            INT => LuaValue::Integer(i64::from_le_bytes(self.eight()?) as LuaInteger),
            FLOAT => LuaValue::Number(f64::from_le_bytes(self.eight()?)),
            STR => {
                let n = self.varint()? as usize;
                LuaValue::String(lua.create_string(self.take(n)?)?)
            }
            MAP => {
                let n = self.varint()? as usize;
                // Bounded so a corrupt count cannot ask for a huge allocation up front.
                let t = lua.create_table_with_capacity(0, n.min(64))?;
                for _ in 0..n {
                    let k = self.lua_value(lua, depth + 1)?;
                    let v = self.lua_value(lua, depth + 1)?;
                    t.raw_set(k, v)?;
                }
                LuaValue::Table(t)
            }
            _ => return Err(corrupt()),
        })
    }
}

impl Reader<'_> {
    fn json_value(&mut self, depth: usize) -> Result<serde_json::Value, String> {
        use serde_json::Value as J;
        let corrupt = |_| "stored session data is corrupt".to_string();
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        Ok(match self.byte().map_err(corrupt)? {
            FALSE => J::Bool(false),
            TRUE => J::Bool(true),
            INT => J::from(i64::from_le_bytes(self.eight().map_err(corrupt)?)),
            FLOAT => {
                let n = f64::from_le_bytes(self.eight().map_err(corrupt)?);
                J::Number(serde_json::Number::from_f64(n).ok_or(format!("{n} has no JSON form"))?)
            }
            STR => {
                let n = self.varint().map_err(corrupt)? as usize;
                let bytes = self.take(n).map_err(corrupt)?;
                J::String(
                    std::str::from_utf8(bytes)
                        .map_err(|_| "a string that is not UTF-8 has no JSON form".to_string())?
                        .to_string(),
                )
            }
            MAP => {
                let n = self.varint().map_err(corrupt)? as usize;
                let mut pairs = Vec::with_capacity(n.min(1024));
                // Integer keys as numbers, while every key so far is one.
                let mut ints: Option<Vec<i64>> = Some(Vec::with_capacity(n.min(1024)));
                for _ in 0..n {
                    let key = match self.json_value(depth + 1)? {
                        J::String(k) => {
                            ints = None;
                            k
                        }
                        J::Number(k) => {
                            match (&mut ints, k.as_i64()) {
                                (Some(list), Some(i)) => list.push(i),
                                _ => ints = None,
                            }
                            k.to_string()
                        }
                        J::Bool(_) => return Err("a boolean table key has no JSON form".into()),
                        _ => return Err("stored session data is corrupt".into()),
                    };
                    pairs.push((key, self.json_value(depth + 1)?));
                }
                // Integer keys exactly 1..n, in any stored order: an array, in key order.
                match ints {
                    Some(keys) if !keys.is_empty() => {
                        let mut items: Vec<(i64, J)> = keys
                            .into_iter()
                            .zip(pairs.into_iter().map(|(_, v)| v))
                            .collect();
                        items.sort_unstable_by_key(|(k, _)| *k);
                        if items
                            .iter()
                            .enumerate()
                            .all(|(i, (k, _))| *k == i as i64 + 1)
                        {
                            J::Array(items.into_iter().map(|(_, v)| v).collect())
                        } else {
                            J::Object(items.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                        }
                    }
                    _ => J::Object(pairs.into_iter().collect()),
                }
            }
            _ => return Err("stored session data is corrupt".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(lua: &Lua, src: &str) -> (Record, Record) {
        let t: LuaTable = lua.load(src).eval().unwrap();
        let rec = Record::from_table(&t).unwrap();
        let back = rec.to_table(lua).unwrap();
        (rec, Record::from_table(&back).unwrap())
    }

    #[test]
    fn roundtrips_every_allowed_value() {
        let lua = Lua::new();
        let (a, b) = roundtrip(
            &lua,
            r#"{ i = 1, f = 1.0, s = "a\0\255b", t = true, n = false,
                 nest = { [1] = "x", [3] = "sparse", [-2] = 0.5, empty = {} }, big = math.maxinteger }"#,
        );
        assert_eq!(a, b);
        let t = a.to_table(&lua).unwrap();
        let f: LuaValue = t.get("f").unwrap();
        assert!(matches!(f, LuaValue::Number(x) if x == 1.0));
        let i: LuaValue = t.get("i").unwrap();
        assert!(matches!(i, LuaValue::Integer(1)));
        let s: LuaString = t.get("s").unwrap();
        assert_eq!(s.as_bytes().to_vec(), b"a\0\xffb".to_vec());
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
        let t: LuaTable = lua
            .load("return { cart = { items = { 1, 2, print } } }")
            .eval()
            .unwrap();
        let err = Record::from_table(&t).unwrap_err().to_string();
        assert!(err.contains("cart.items[3] is a function"), "{err}");
        let t: LuaTable = lua
            .load("local c = {} c.self = c return { c = c }")
            .eval()
            .unwrap();
        let err = Record::from_table(&t).unwrap_err().to_string();
        assert!(
            err.contains("c.self is a table that contains itself"),
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
        let merged = theirs.merge(&changes).unwrap();
        let (want, _) = roundtrip(&lua, "return { a = 10, b = 2, d = 4 }");
        assert_eq!(merged, want);
    }

    #[test]
    fn json_arrays_survive_any_length() {
        let lua = Lua::new();
        let t: LuaTable = lua
            .load("local t = {} for i = 1, 300 do t[i] = i end return { list = t, obj = { [2] = 1 } }")
            .eval()
            .unwrap();
        let rec = Record::from_table(&t).unwrap();
        let entries = rec.entries().unwrap();
        let list = to_json("list", entries[0].1).unwrap();
        assert_eq!(list.as_array().map(|a| a.len()), Some(300));
        assert_eq!(list[255], serde_json::json!(256));
        assert_eq!(
            to_json("obj", entries[1].1).unwrap(),
            serde_json::json!({ "2": 1 })
        );
        let back = from_json(&list).unwrap();
        assert_eq!(back, entries[0].1);
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let lua = Lua::new();
        for bad in [
            &b""[..],
            b"M",
            b"M\x05",
            b"S\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            b"I12",
        ] {
            assert!(decode_value(&lua, bad).is_err());
            assert!(Record(bad.to_vec()).entries().is_err() || bad.is_empty());
        }
    }
}

//! JSON for Lua: `json.encode` / `json.decode`, so a Lua store can serialise sessions without
//! another rock.
//!
//! Mapping: a table whose keys are exactly 1..n (n >= 1) is an array, and so is a table with
//! the array marker (`crate::array`), empty or with holes (`null`); any other table an object
//! (number keys become strings; an empty table is `{}`). A decoded array carries the marker,
//! so `[]` comes back as `[]`. Integers stay integers where the interpreter has them; JSON
//! `null` decodes to nil, and so does a number beyond the double range (`1E400`: JavaScript
//! reads it as Infinity and writes that back as `null`). NaN and infinities have no JSON form
//! and are refused, as are functions, userdata and cycles, naming where in the value they are
//! (`json.encode: value cart.items[3] is a function`).
//!
//! Both directions go without an intermediate tree: `encode` writes into one buffer that grows
//! fallibly, `decode` builds Lua values as it parses (Lua's allocations fail with a catchable
//! error), so a big value fails its call instead of aborting the process. Tables nest at most
//! `MAX_DEPTH` levels either way, the same limit as sessions.

use crate::codec::{MAX_DEPTH, MAX_HOLES, NoMemory, Step, TOO_DEEP, a_type, describe_path, put};
use mlua::prelude::*;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeSet;
use std::fmt;

/// Why an encoding failed, with the path to the value.
struct Failed {
    path: Vec<Step>,
    what: String,
}

impl From<NoMemory> for Failed {
    fn from(_: NoMemory) -> Failed {
        Failed {
            path: Vec::new(),
            what: "too large: not enough memory to encode it".into(),
        }
    }
}

impl From<LuaError> for Failed {
    fn from(e: LuaError) -> Failed {
        Failed {
            path: Vec::new(),
            what: format!(
                "unreadable: {}",
                crate::error::message(&e).trim_start_matches("honeymoon_session: ")
            ),
        }
    }
}

fn encode_error(f: Failed) -> LuaError {
    LuaError::runtime(if f.path.is_empty() {
        format!("honeymoon_session: json.encode: the value is {}", f.what)
    } else {
        format!(
            "honeymoon_session: json.encode: value {} is {}",
            describe_path(&f.path),
            f.what
        )
    })
}

/// `io::Write` over a buffer that grows fallibly (serde_json writes escaped strings into it).
struct Out(Vec<u8>);

impl std::io::Write for Out {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        put(&mut self.0, b).map_err(|_| std::io::Error::from(std::io::ErrorKind::OutOfMemory))?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Encoder {
    out: Out,
    path: Vec<Step>,
    /// Tables being written, outermost first: meeting one again is a cycle, and the length is
    /// the depth of the value being written.
    open: Vec<*const std::ffi::c_void>,
    /// The array marker, if the module made one in this state.
    array: Option<LuaTable>,
}

impl Encoder {
    fn fail(&self, what: impl Into<String>) -> Failed {
        Failed {
            path: self.path.clone(),
            what: what.into(),
        }
    }

    fn raw(&mut self, b: &[u8]) -> Result<(), Failed> {
        Ok(put(&mut self.out.0, b)?)
    }

    /// A JSON string of `s` (UTF-8 checked), escaped by serde_json into the fallible buffer.
    fn string(&mut self, s: &LuaString, what: &str) -> Result<(), Failed> {
        let bytes = s.as_bytes();
        let text = std::str::from_utf8(&bytes).map_err(|_| self.fail(what))?;
        serde_json::to_writer(&mut self.out, text).map_err(|_| Failed::from(NoMemory))
    }

    fn value(&mut self, v: &LuaValue) -> Result<(), Failed> {
        match v {
            LuaValue::Nil => self.raw(b"null"),
            LuaValue::Boolean(true) => self.raw(b"true"),
            LuaValue::Boolean(false) => self.raw(b"false"),
            LuaValue::Integer(i) => self.raw(i.to_string().as_bytes()),
            LuaValue::Number(n) => match serde_json::Number::from_f64(*n) {
                Some(n) => self.raw(n.to_string().as_bytes()),
                None => Err(self.fail(format!("{n}, which has no JSON form"))),
            },
            LuaValue::String(s) => self.string(s, "a string that is not UTF-8"),
            LuaValue::Table(t) => self.table(t),
            other => Err(self.fail(a_type(other))),
        }
    }

    fn table(&mut self, t: &LuaTable) -> Result<(), Failed> {
        let ptr = t.to_pointer();
        if self.open.contains(&ptr) {
            return Err(self.fail("a table that contains itself (a cycle)"));
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(self.fail(format!("a table that {TOO_DEEP}")));
        }
        self.open.push(ptr);
        if let Some(marker) = &self.array
            && t.metatable().as_ref() == Some(marker)
            && self.marked(t)?
        {
            self.open.pop();
            return Ok(());
        }
        let n = t.raw_len();
        // An array only when the keys are exactly 1..n: `raw_len` is a border, which may lie
        // past a hole ({1, 2, nil, 4, k = "v"} has 4 keys and a border of 4).
        let (mut count, mut in_range, mut number_keys) = (0usize, 0usize, false);
        for pair in t.pairs::<LuaValue, LuaValue>() {
            let (k, _) = pair?;
            count += 1;
            in_range += match k {
                LuaValue::Integer(i) => usize::try_from(i).is_ok_and(|i| i >= 1 && i <= n),
                LuaValue::Number(x) => x.fract() == 0.0 && x >= 1.0 && x <= n as f64,
                _ => false,
            } as usize;
            number_keys |= matches!(k, LuaValue::Integer(_) | LuaValue::Number(_));
        }
        if n > 0 && count == n && in_range == n {
            self.array(t, n)?;
        } else {
            // Number keys become strings, which may then equal a string key of the same table.
            // Ordered, not hashed: no hash key (std's draws one from the OS random source, and
            // panics when that fails).
            let mut seen: Option<BTreeSet<String>> = number_keys.then(BTreeSet::new);
            self.raw(b"{")?;
            let mut first = true;
            for pair in t.pairs::<LuaValue, LuaValue>() {
                let (k, v) = pair?;
                let step = match &k {
                    LuaValue::String(s) => Step::Key(s.as_bytes().to_vec()),
                    LuaValue::Integer(i) => Step::Index(*i),
                    // As a value, an infinity has no JSON form; nor has it as a key (RedisStore
                    // refuses it too), where it would have come out as "inf".
                    LuaValue::Number(x) if !x.is_finite() => {
                        return Err(
                            self.fail(format!("a table with {x} as a key, which has no JSON form"))
                        );
                    }
                    LuaValue::Number(x) => Step::Other(crate::codec::number_text(*x)),
                    other => {
                        return Err(self.fail(format!("a table with {} as a key", a_type(other))));
                    }
                };
                if !first {
                    self.raw(b",")?;
                }
                first = false;
                let text = match &k {
                    LuaValue::String(s) => {
                        self.string(s, "a table with a key that is not UTF-8")?;
                        seen.as_ref().map(|_| s.to_string_lossy())
                    }
                    LuaValue::Integer(i) => Some(i.to_string()),
                    LuaValue::Number(x) => Some(x.to_string()),
                    _ => None,
                };
                if !matches!(k, LuaValue::String(_))
                    && let Some(text) = &text
                {
                    serde_json::to_writer(&mut self.out, text)
                        .map_err(|_| Failed::from(NoMemory))?;
                }
                if let (Some(seen), Some(text)) = (seen.as_mut(), text)
                    && !seen.insert(text.clone())
                {
                    return Err(self.fail(format!(
                        "a table with the key {text:?} both as a number and as a string"
                    )));
                }
                self.raw(b":")?;
                self.path.push(step);
                self.value(&v)?;
                self.path.pop();
            }
            self.raw(b"}")?;
        }
        self.open.pop();
        Ok(())
    }

    /// A table with the array marker as an array, holes as `null`: true when written. False
    /// (nothing written) when a key is not a whole number from 1, or the holes are too many:
    /// then it is an object.
    fn marked(&mut self, t: &LuaTable) -> Result<bool, Failed> {
        let mut count = 0usize;
        let mut len = 0i64;
        for pair in t.pairs::<LuaValue, LuaValue>() {
            let position = match pair?.0 {
                LuaValue::Integer(i) => Some(i),
                LuaValue::Number(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Some(x as i64),
                _ => None,
            };
            match position.filter(|&i| i >= 1) {
                Some(i) => len = len.max(i),
                None => return Ok(false),
            }
            count += 1;
        }
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len.saturating_sub(count) > MAX_HOLES {
            return Ok(false);
        }
        self.array(t, len)?;
        Ok(true)
    }

    /// `t[1..=len]` as a JSON array (nil as `null`).
    fn array(&mut self, t: &LuaTable, len: usize) -> Result<(), Failed> {
        self.raw(b"[")?;
        for i in 1..=len {
            if i > 1 {
                self.raw(b",")?;
            }
            self.path.push(Step::Index(i as i64));
            self.value(&t.raw_get::<LuaValue>(i)?)?;
            self.path.pop();
        }
        self.raw(b"]")
    }
}

/// Lua value -> JSON text.
pub fn encode(lua: &Lua, v: &LuaValue) -> LuaResult<Vec<u8>> {
    let mut e = Encoder {
        out: Out(Vec::new()),
        path: Vec::new(),
        open: Vec::new(),
        array: crate::array::get(lua)?,
    };
    e.value(v).map_err(encode_error)?;
    Ok(e.out.0)
}

/// Builds the Lua value of a JSON value as serde_json parses it; `depth` tables enclose it.
#[derive(Clone, Copy)]
struct ToLua<'a> {
    lua: &'a Lua,
    depth: usize,
    /// The array marker, given to every decoded array.
    array: &'a Option<LuaTable>,
}

fn lua_err<E: de::Error>(e: LuaError) -> E {
    E::custom(crate::error::message(&e).trim_start_matches("honeymoon_session: "))
}

impl<'de> DeserializeSeed<'de> for ToLua<'_> {
    type Value = LuaValue;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<LuaValue, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'a> ToLua<'a> {
    fn nested<E: de::Error>(&self) -> Result<ToLua<'a>, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!("the JSON {TOO_DEEP}")));
        }
        Ok(ToLua {
            lua: self.lua,
            depth: self.depth + 1,
            array: self.array,
        })
    }
}

impl<'de> Visitor<'de> for ToLua<'_> {
    type Value = LuaValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<LuaValue, E> {
        Ok(LuaValue::Nil)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<LuaValue, E> {
        Ok(LuaValue::Boolean(b))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<LuaValue, E> {
        Ok(LuaValue::Integer(i as LuaInteger))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<LuaValue, E> {
        Ok(match i64::try_from(u) {
            Ok(i) => LuaValue::Integer(i as LuaInteger),
            Err(_) => LuaValue::Number(u as f64),
        })
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<LuaValue, E> {
        Ok(LuaValue::Number(n))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<LuaValue, E> {
        self.lua
            .create_string(s)
            .map(LuaValue::String)
            .map_err(lua_err)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LuaValue, A::Error> {
        let inner = self.nested()?;
        let t = self.lua.create_table().map_err(lua_err)?;
        t.set_metatable(self.array.clone()).map_err(lua_err)?;
        let mut i: i64 = 0;
        while let Some(v) = seq.next_element_seed(inner)? {
            i += 1;
            if !v.is_nil() {
                t.raw_set(i, v).map_err(lua_err)?;
            }
        }
        Ok(LuaValue::Table(t))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LuaValue, A::Error> {
        let inner = self.nested()?;
        let t = self.lua.create_table().map_err(lua_err)?;
        while let Some(k) = map.next_key_seed(inner)? {
            let v = map.next_value_seed(inner)?;
            t.raw_set(k, v).map_err(lua_err)?;
        }
        Ok(LuaValue::Table(t))
    }
}

/// JSON text -> fresh Lua value. A lone surrogate escape (Node's) reads as U+FFFD, as it does
/// in RedisStore.
pub fn decode(lua: &Lua, text: &[u8]) -> LuaResult<LuaValue> {
    let fail =
        |e: serde_json::Error| LuaError::runtime(format!("honeymoon_session: json.decode: {e}"));
    let array = crate::array::get(lua)?;
    let parse = |text: &[u8]| {
        let mut de = serde_json::Deserializer::from_slice(text);
        let v = ToLua {
            lua,
            depth: 0,
            array: &array,
        }
        .deserialize(&mut de)?;
        de.end().map(|()| v)
    };
    parse_as_javascript(text, parse, |e| Some(e)).map_err(fail)
}

/// The most numbers beyond the double range that one text may hold and still be read: each
/// costs a parse of the text (no JSON.stringify writes one, so a text with more is not worth
/// reading past them).
pub const MAX_OUT_OF_RANGE: usize = 4;

/// Parses `text` with `parse`, reading past what serde_json refuses but JavaScript reads: a
/// lone surrogate escape (as U+FFFD) and a number beyond the double range (`1E400`, which
/// JSON.parse reads as ±Infinity and JSON.stringify writes back as `null`: read as `null`,
/// so a session another writer stored one in stays readable and writable). `error` gives the
/// serde_json error inside one of `parse`'s errors (None: another error, returned as it is).
/// On the common path (the text parses) this is one call of `parse`; the error returned is
/// the last parse's.
pub fn parse_as_javascript<T, E>(
    text: &[u8],
    parse: impl Fn(&[u8]) -> Result<T, E>,
    error: impl Fn(&E) -> Option<&serde_json::Error>,
) -> Result<T, E> {
    let mut repaired: Option<Vec<u8>> = None;
    let (mut surrogates, mut numbers) = (false, 0);
    loop {
        let current = repaired.as_deref().unwrap_or(text);
        let e = match parse(current) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(json_error) = error(&e) else {
            return Err(e);
        };
        let span = (numbers < MAX_OUT_OF_RANGE)
            .then(|| out_of_range_number(current, json_error))
            .flatten();
        if let Some(span) = span {
            // `null` and spaces: the same length, so later errors' positions hold.
            let bytes = repaired.get_or_insert_with(|| text.to_vec());
            bytes[span.clone()].fill(b' ');
            bytes[span.start..span.start + 4].copy_from_slice(b"null");
            numbers += 1;
            continue;
        }
        if !surrogates {
            surrogates = true;
            if let Some(s) = without_lone_surrogates(current) {
                repaired = Some(s.into_bytes());
                continue;
            }
        }
        return Err(e);
    }
}

/// Where in `text` lies the number serde_json refused as beyond the double range (`e`), when
/// that is `e`'s complaint: the whole number token around the last byte the parse read (a
/// parse of a slice reports the column past it; the parse may stop inside the exponent).
fn out_of_range_number(text: &[u8], e: &serde_json::Error) -> Option<std::ops::Range<usize>> {
    if !e.to_string().starts_with("number out of range") {
        return None;
    }
    let line_start = match e.line() {
        0 | 1 => 0,
        n => {
            text.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(n - 2)?
                .0
                + 1
        }
    };
    let last = (line_start + e.column()).checked_sub(1)?;
    let in_number = |b: &u8| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E');
    if !in_number(text.get(last)?) {
        return None;
    }
    let start = text[..last]
        .iter()
        .rposition(|b| !in_number(b))
        .map_or(0, |i| i + 1);
    let end = text[last..]
        .iter()
        .position(|b| !in_number(b))
        .map_or(text.len(), |i| last + i);
    // Every number beyond the range takes at least 5 bytes (`2e308`): room for `null`.
    (end - start >= 4).then_some(start..end)
}

/// For a parse of JSON text that failed: the text with every lone surrogate escape read as
/// U+FFFD, when it is UTF-8 and holds a surrogate escape (only then is a second parse worth
/// it); else None.
pub fn without_lone_surrogates(text: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(text).ok()?;
    (s.contains("\\ud") || s.contains("\\uD")).then(|| replace_lone_surrogates(s))
}

/// JavaScript writes strings with lone surrogates (an emoji cut in half) as `\ud83d`, which is
/// valid JSON to JavaScript but not to serde_json: read each such escape as U+FFFD.
fn replace_lone_surrogates(raw: &str) -> String {
    let unit = |at: usize| -> Option<u16> {
        let hex = raw.get(at..at + 6)?.strip_prefix("\\u")?;
        u16::from_str_radix(hex, 16).ok()
    };
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while let Some(off) = raw[i..].find('\\') {
        let at = i + off;
        out.push_str(&raw[i..at]);
        let step = match unit(at) {
            Some(0xD800..=0xDBFF) if matches!(unit(at + 6), Some(0xDC00..=0xDFFF)) => 12,
            Some(0xD800..=0xDFFF) => {
                out.push_str("\\ufffd");
                i = at + 6;
                continue;
            }
            Some(_) => 6,
            // Any other escape is a backslash and one character; copied whole, an escaped
            // backslash is not mistaken for the start of another escape.
            None => 1 + raw[at + 1..].chars().next().map_or(0, char::len_utf8),
        };
        let end = (at + step).min(raw.len());
        out.push_str(raw.get(at..end).unwrap_or("\\"));
        i = end;
    }
    out.push_str(&raw[i..]);
    out
}

pub fn module(lua: &Lua) -> LuaResult<LuaTable> {
    let t = lua.create_table()?;
    t.set(
        "encode",
        lua.create_function(|lua, v: LuaValue| lua.create_string(encode(lua, &v)?))?,
    )?;
    t.set(
        "decode",
        lua.create_function(|lua, s: LuaString| decode(lua, &s.as_bytes()))?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(lua: &Lua, src: &str) -> Result<String, String> {
        let v: LuaValue = lua.load(src).eval().map_err(|e| e.to_string())?;
        encode(lua, &v)
            .map(|b| String::from_utf8(b).unwrap_or_default())
            .map_err(|e| crate::error::message(&e))
    }

    #[test]
    fn decode_reads_a_lone_surrogate_as_a_replacement_character() {
        let lua = Lua::new();
        crate::array::install(&lua).unwrap();
        let t = decode(&lua, br#"{"a":"x\ud83d","b":"\ude00y","c":"\ud83d\ude00"}"#).unwrap();
        let t = t.as_table().unwrap();
        assert_eq!(t.get::<String>("a").unwrap(), "x\u{fffd}");
        assert_eq!(t.get::<String>("b").unwrap(), "\u{fffd}y");
        assert_eq!(t.get::<String>("c").unwrap(), "\u{1f600}");
        // Any other error is still reported.
        let e = decode(&lua, br#"{"a":"\ud83d" "#).unwrap_err().to_string();
        assert!(e.contains("json.decode: EOF while parsing"), "{e}");
    }

    #[test]
    fn decoded_arrays_encode_as_arrays_even_empty() {
        let lua = Lua::new();
        crate::array::install(&lua).unwrap();
        for text in [r#"[]"#, r#"{"a":[],"b":{},"c":[1,null,3],"d":[[]]}"#] {
            let v = decode(&lua, text.as_bytes()).unwrap();
            let back = String::from_utf8(encode(&lua, &v).unwrap()).unwrap();
            let (a, b): (serde_json::Value, serde_json::Value) = (
                serde_json::from_str(text).unwrap(),
                serde_json::from_str(&back).unwrap(),
            );
            assert_eq!(a, b, "{text} -> {back}");
        }
        // Without the marker (a state where the module was never opened), as before.
        let bare = Lua::new();
        let v = decode(&bare, b"[]").unwrap();
        assert_eq!(encode(&bare, &v).unwrap(), b"{}");
    }

    #[test]
    fn encodes_like_serde_json_did() {
        let lua = Lua::new();
        assert_eq!(
            enc(&lua, "return { 1, 2.5, 'x\"', true }").unwrap(),
            r#"[1,2.5,"x\"",true]"#
        );
        assert_eq!(enc(&lua, "return {}").unwrap(), "{}");
        // A float that is whole stays a float where Lua tells floats from integers.
        let whole_float = if cfg!(any(feature = "lua53", feature = "lua54")) {
            r#"{"a":{"2":1.0}}"#
        } else {
            r#"{"a":{"2":1}}"#
        };
        assert_eq!(
            enc(&lua, "return { a = { [2] = 1.0 } }").unwrap(),
            whole_float
        );
        assert_eq!(enc(&lua, "return 'é\\n'").unwrap(), "\"é\\n\"");

        // A border past a hole: as many keys as the border, but not 1..n. An object, keeping k.
        let holed = enc(&lua, "return { [1] = 'a', [2] = 'b', [4] = 'd', k = 'v' }").unwrap();
        assert!(holed.starts_with('{'), "{holed}");
        for part in [r#""1":"a""#, r#""2":"b""#, r#""4":"d""#, r#""k":"v""#] {
            assert!(holed.contains(part), "{holed} lacks {part}");
        }
    }

    #[test]
    fn errors_name_the_path() {
        let lua = Lua::new();
        let cases = [
            (
                "return { cart = { items = { 1, 2, print } } }",
                "json.encode: value cart.items[3] is a function",
            ),
            ("return print", "json.encode: the value is a function"),
            (
                "local c = {} c.self = c return { c = c }",
                "value c.self is a table that contains itself",
            ),
            (
                "return { t = { [true] = 1 } }",
                "value t is a table with a boolean as a key",
            ),
            (
                "return { x = 0/0 }",
                "value x is NaN, which has no JSON form",
            ),
            (
                "return { s = { 'ok', '\\255' } }",
                "value s[2] is a string that is not UTF-8",
            ),
            (
                "return { [1.5] = 1, ['1.5'] = 2 }",
                "both as a number and as a string",
            ),
            (
                "return { t = { [-math.huge] = 1 } }",
                "value t is a table with -inf as a key, which has no JSON form",
            ),
        ];
        for (src, want) in cases {
            let got = enc(&lua, src).unwrap_err();
            assert!(got.contains(want), "{src}: {got}");
        }
    }

    #[test]
    fn one_depth_limit_both_ways() {
        let lua = Lua::new();
        let nest = |n: usize| {
            format!("local t = {{}} local c = t for i = 2, {n} do c.n = {{}} c = c.n end return t")
        };
        assert!(enc(&lua, &nest(64)).is_ok());
        let err = enc(&lua, &nest(65)).unwrap_err();
        assert!(err.contains("nests deeper than 64 levels"), "{err}");
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(decode(&lua, deep(64).as_bytes()).is_ok());
        let err = crate::error::message(&decode(&lua, deep(65).as_bytes()).unwrap_err());
        assert!(
            err.contains("json.decode: the JSON nests deeper than 64 levels"),
            "{err}"
        );
        let err = crate::error::message(&decode(&lua, deep(500).as_bytes()).unwrap_err());
        assert!(err.contains("nests deeper than 64 levels"), "{err}");
    }

    #[test]
    fn a_number_beyond_the_double_range_decodes_to_nil() {
        let lua = Lua::new();
        let v = decode(&lua, br#"{"a":1E400,"b":[1,-1E400,3],"c":1e-400,"d":2}"#).unwrap();
        let check: bool = lua
            .load("local v = ... return v.a == nil and v.b[1] == 1 and v.b[2] == nil and v.b[3] == 3 and v.c == 0 and v.d == 2")
            .call(v)
            .unwrap();
        assert!(check);
        // Read back as JavaScript writes it: null.
        crate::array::install(&lua).unwrap();
        let v = decode(&lua, b"[1,1e999,2]").unwrap();
        assert_eq!(encode(&lua, &v).unwrap(), b"[1,null,2]");
        assert!(decode(&lua, b"1e999").unwrap().is_nil());
        assert!(decode(&lua, b"[1e999,]").is_err());
        // Found on any line, with a lone surrogate after it.
        let v = decode(
            &lua,
            b"{\n \"a\":\n  -1e999 ,\n\"s\":\"\\ud83d\", \"b\": 2e999}",
        )
        .unwrap();
        let check: bool = lua
            // U+FFFD's UTF-8 bytes: Lua 5.1, 5.2 and LuaJIT have no \\u{...} escape.
            .load("local v = ... return v.a == nil and v.b == nil and v.s == '\\239\\191\\189'")
            .call(v)
            .unwrap();
        assert!(check);
        // At most MAX_OUT_OF_RANGE of them: each costs a parse.
        let many = |n: usize| format!("[{}]", vec!["1e999"; n].join(","));
        assert!(decode(&lua, many(MAX_OUT_OF_RANGE).as_bytes()).is_ok());
        let err = decode(&lua, many(MAX_OUT_OF_RANGE + 1).as_bytes()).unwrap_err();
        assert!(err.to_string().contains("number out of range"), "{err}");
    }

    #[test]
    fn decodes_values_and_refuses_trailing_text() {
        let lua = Lua::new();
        let v = decode(
            &lua,
            br#"{"a":[1,null,3],"b":1.5,"c":"x","d":18446744073709551615}"#,
        )
        .unwrap();
        let check: bool = lua
            .load("local v = ... return v.a[1] == 1 and v.a[2] == nil and v.a[3] == 3 and v.b == 1.5 and v.c == 'x' and v.d > 1e19 and (math.type == nil or math.type(v.a[1]) == 'integer')")
            .call(v)
            .unwrap();
        assert!(check);
        assert!(decode(&lua, b"[1] x").is_err());
        assert!(decode(&lua, b"").is_err());
    }
}

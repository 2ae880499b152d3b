//! The wire format <-> JSON, for stores that speak JSON (express-session's format, JSON Lua stores).

use super::{FALSE, FLOAT, INT, LIST, MAP, MAX_DEPTH, MAX_HOLES, NoMemory, Reader, STR, TRUE};
use super::{Step, describe_path, put, try_copy, write_map, write_str, write_table};

/// Why a value has no JSON form, and where: the steps from the failing value up to the
/// top-level key, innermost first. Steps are added only on the error's way out, so a value
/// that converts costs no path bookkeeping.
struct Failure {
    steps: Vec<Step>,
    why: String,
}

impl From<String> for Failure {
    fn from(why: String) -> Failure {
        Failure {
            steps: Vec::new(),
            why,
        }
    }
}

impl From<&str> for Failure {
    fn from(why: &str) -> Failure {
        Failure::from(why.to_string())
    }
}

/// Adds the step to a child's failure on its way out.
fn at<T>(r: Result<T, Failure>, step: impl FnOnce() -> Step) -> Result<T, Failure> {
    r.map_err(|mut f| {
        f.steps.push(step());
        f
    })
}

/// The JSON form of one stored top-level value, for stores that speak JSON (express-session's
/// format). A table whose keys are exactly 1..n becomes an array, and so does one with the
/// array marker (`crate::array`: a JSON array decoded earlier, or `hs.array`), empty or with
/// holes (`null`); any other table an object with its keys as strings. Strings must be UTF-8
/// and numbers finite, else this fails, naming the value's path from the top-level `key`
/// (`cart.items[3].sku`).
pub fn to_json(key: &str, bytes: &[u8]) -> Result<serde_json::Value, String> {
    let mut r = Reader::new(bytes);
    let v = r.json_value(1).map_err(|mut f| {
        f.steps.push(Step::Key(key.as_bytes().to_vec()));
        f.steps.reverse();
        format!("{}: {}", describe_path(&f.steps), f.why)
    })?;
    if r.pos != bytes.len() {
        return Err(format!("{key}: stored session data is corrupt"));
    }
    Ok(v)
}

/// The stored form of a JSON value; `None` for `null`, which a Lua table cannot hold (in an
/// array it leaves a hole). An array keeps the array marker, so that it is an array again when
/// Lua writes it back, even empty. Nesting is not limited here (serde_json stops at 128
/// levels): decoding the record refuses more than `MAX_DEPTH`, naming the limit.
pub fn from_json(v: &serde_json::Value) -> Result<Option<Vec<u8>>, NoMemory> {
    use serde_json::Value as J;
    let mut out = Vec::new();
    match v {
        J::Null => return Ok(None),
        J::Bool(b) => put(&mut out, &[if *b { TRUE } else { FALSE }])?,
        J::Number(n) => {
            // Numbers on Lua 5.1, 5.2 and LuaJIT are doubles: store what the encoder writes for
            // the double it will hold (an integer for a whole `1.0`, or for a `1e3`), so
            // reading such a value back unchanged does not look like a modification.
            #[cfg(not(any(feature = "lua53", feature = "lua54")))]
            let int = n.as_f64().and_then(super::double_as_integer);
            #[cfg(any(feature = "lua53", feature = "lua54"))]
            let int = n.as_i64();
            match int {
                Some(i) => {
                    put(&mut out, &[INT])?;
                    put(&mut out, &i.to_le_bytes())?;
                }
                None => {
                    put(&mut out, &[FLOAT])?;
                    put(&mut out, &n.as_f64().unwrap_or(f64::NAN).to_le_bytes())?;
                }
            }
        }
        J::String(s) => write_str(&mut out, s.as_bytes())?,
        J::Array(items) => {
            let mut pairs = Vec::new();
            pairs.try_reserve(items.len()).map_err(|_| NoMemory)?;
            for (i, item) in items.iter().enumerate() {
                if let Some(v) = from_json(item)? {
                    let mut k = Vec::new();
                    put(&mut k, &[INT])?;
                    put(&mut k, &(i as i64 + 1).to_le_bytes())?;
                    pairs.push((k, v));
                }
            }
            write_table(&mut out, LIST, pairs)?;
        }
        J::Object(map) => {
            let mut pairs = Vec::new();
            pairs.try_reserve(map.len()).map_err(|_| NoMemory)?;
            for (k, item) in map {
                if let Some(v) = from_json(item)? {
                    let mut key = Vec::new();
                    write_str(&mut key, k.as_bytes())?;
                    pairs.push((key, v));
                }
            }
            write_map(&mut out, pairs)?;
        }
    }
    Ok(Some(out))
}

impl Reader<'_> {
    /// The JSON of one value that `depth` tables enclose (see `MAX_DEPTH`).
    fn json_value(&mut self, depth: usize) -> Result<serde_json::Value, Failure> {
        use serde_json::Value as J;
        let corrupt = || "stored session data is corrupt".to_string();
        let no_memory = |_| "not enough memory for the session data".to_string();
        Ok(match self.byte().ok_or_else(corrupt)? {
            FALSE => J::Bool(false),
            TRUE => J::Bool(true),
            INT => J::from(i64::from_le_bytes(self.eight().ok_or_else(corrupt)?)),
            FLOAT => {
                let n = f64::from_le_bytes(self.eight().ok_or_else(corrupt)?);
                J::Number(serde_json::Number::from_f64(n).ok_or(format!("{n} has no JSON form"))?)
            }
            STR => {
                let n = self.varint().ok_or_else(corrupt)? as usize;
                let bytes = self.take(n).ok_or_else(corrupt)?;
                std::str::from_utf8(bytes)
                    .map_err(|_| "a string that is not UTF-8 has no JSON form".to_string())?;
                let copy = try_copy(bytes).map_err(no_memory)?;
                J::String(String::from_utf8(copy).map_err(|_| corrupt())?)
            }
            MAP | LIST if depth >= MAX_DEPTH => {
                return Err(format!("a table {}", super::TOO_DEEP).into());
            }
            LIST => {
                let n = self.varint().ok_or_else(corrupt)? as usize;
                let mut items: Vec<(usize, J)> = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let position = match self.json_value(depth + 1)? {
                        J::Number(k) => k.as_u64().and_then(|k| usize::try_from(k).ok()),
                        _ => None,
                    };
                    let position = position.filter(|&k| k >= 1).ok_or_else(corrupt)?;
                    let value = at(self.json_value(depth + 1), || {
                        Step::Index(i64::try_from(position).unwrap_or(i64::MAX))
                    })?;
                    items.push((position, value));
                }
                items.sort_unstable_by_key(|(k, _)| *k);
                let len = items.last().map_or(0, |(k, _)| *k);
                // Holes become nulls, within reason: a marked table with a lone key at 1e9
                // (Lua's doing; a stored array's holes cost its JSON five bytes each) is an
                // object instead.
                if len.saturating_sub(items.len()) > MAX_HOLES {
                    J::Object(items.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                } else {
                    let mut array = Vec::new();
                    array
                        .try_reserve(len)
                        .map_err(|_| "not enough memory for the session data".to_string())?;
                    for (k, v) in items {
                        if k <= array.len() {
                            return Err(corrupt().into()); // a position twice
                        }
                        array.resize(k - 1, J::Null);
                        array.push(v);
                    }
                    J::Array(array)
                }
            }
            MAP => {
                let n = self.varint().ok_or_else(corrupt)? as usize;
                let mut pairs = Vec::with_capacity(n.min(1024));
                // Integer keys as numbers, while every key so far is one.
                let mut ints: Option<Vec<i64>> = Some(Vec::with_capacity(n.min(1024)));
                for _ in 0..n {
                    let (key, number) = match self.json_value(depth + 1)? {
                        J::String(k) => {
                            ints = None;
                            (k, false)
                        }
                        J::Number(k) => {
                            match (&mut ints, k.as_i64()) {
                                (Some(list), Some(i)) => list.push(i),
                                _ => ints = None,
                            }
                            (k.to_string(), true)
                        }
                        J::Bool(_) => return Err("a boolean table key has no JSON form".into()),
                        _ => return Err("stored session data is corrupt".into()),
                    };
                    let value = at(self.json_value(depth + 1), || match key.parse() {
                        Ok(i) if number => Step::Index(i),
                        _ if number => Step::Other(key.clone()),
                        _ => Step::Key(key.clone().into_bytes()),
                    })?;
                    pairs.push((key, value));
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
                    _ => {
                        // `t[1]` and `t["1"]` are one JSON key: refuse, as json.encode does,
                        // rather than store one of the two and report the write done.
                        let mut object = serde_json::Map::new();
                        for (k, v) in pairs {
                            if object.contains_key(&k) {
                                return Err(format!(
                                    "a table with the key {k:?} both as a number and as a string has no JSON form"
                                )
                                .into());
                            }
                            object.insert(k, v);
                        }
                        J::Object(object)
                    }
                }
            }
            _ => return Err("stored session data is corrupt".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Record;
    use super::*;
    use mlua::prelude::*;

    #[test]
    fn json_arrays_stay_arrays_through_lua_even_empty_or_with_nulls() {
        let lua = Lua::new();
        crate::array::install(&lua).unwrap();
        for text in [
            r#"[]"#,
            r#"[1,null,3]"#,
            r#"[[],{}]"#,
            r#"{"items":[],"obj":{},"list":[{"a":[]}]}"#,
            r#"[null,null,"x"]"#,
        ] {
            let json: serde_json::Value = serde_json::from_str(text).unwrap();
            let stored = from_json(&json).unwrap().unwrap();
            assert_eq!(
                to_json("v", &stored).unwrap(),
                json,
                "{text} from the record"
            );
            // Through a Lua value and back, as a session key Lua writes.
            let value = super::super::decode_value(&lua, &stored).unwrap();
            let t = lua.create_table().unwrap();
            t.set("v", value).unwrap();
            let rec = Record::from_table(&lua, &t).unwrap();
            let entries = rec.entries().unwrap();
            assert_eq!(entries[0].1, stored.as_slice(), "{text} through Lua");
        }
        // A marked table with other keys is an object; one with a lone key far out, too.
        let t: LuaTable = lua
            .load("local hs = ... return { a = setmetatable({ k = 1 }, hs), b = setmetatable({ [1e6] = 1 }, hs) }")
            .call(crate::array::get(&lua).unwrap())
            .unwrap();
        let rec = Record::from_table(&lua, &t).unwrap();
        let entries = rec.entries().unwrap();
        assert_eq!(
            to_json("a", entries[0].1).unwrap(),
            serde_json::json!({ "k": 1 })
        );
        assert_eq!(
            to_json("b", entries[1].1).unwrap(),
            serde_json::json!({ "1000000": 1 })
        );
    }

    #[test]
    fn a_marked_table_with_a_position_below_one_is_corrupt() {
        let lua = Lua::new();
        crate::array::install(&lua).unwrap();
        for position in [0i64, -1] {
            let mut key = vec![INT];
            key.extend_from_slice(&position.to_le_bytes());
            let mut bytes = vec![LIST, 1];
            bytes.extend_from_slice(&key);
            bytes.push(TRUE);
            assert!(to_json("v", &bytes).is_err(), "{position}");
            assert!(
                super::super::decode_value(&lua, &bytes).is_err(),
                "{position}"
            );
            assert!(Reader::new(&bytes).skip_value(1).is_err(), "{position}");
        }
    }

    #[test]
    fn json_arrays_survive_any_length() {
        let lua = Lua::new();
        let t: LuaTable = lua
            .load("local t = {} for i = 1, 300 do t[i] = i end return { list = t, obj = { [2] = 1 } }")
            .eval()
            .unwrap();
        let rec = Record::from_table(&lua, &t).unwrap();
        let entries = rec.entries().unwrap();
        let list = to_json("list", entries[0].1).unwrap();
        assert_eq!(list.as_array().map(|a| a.len()), Some(300));
        assert_eq!(list[255], serde_json::json!(256));
        assert_eq!(
            to_json("obj", entries[1].1).unwrap(),
            serde_json::json!({ "2": 1 })
        );
        // Back from JSON it is the same table, marked as an array.
        let back = from_json(&list).unwrap().unwrap();
        assert_eq!((back[0], &back[1..]), (LIST, &entries[0].1[1..]));
    }

    #[test]
    fn a_number_key_and_its_text_have_no_json_form() {
        let lua = Lua::new();
        let t: LuaTable = lua
            .load("return { v = { [1] = 'alice', ['1'] = 'bob' }, f = { [2.5] = 1, ['2.5'] = 2 }, ok = { [1] = 1, ['x'] = 2 } }")
            .eval()
            .unwrap();
        let rec = Record::from_table(&lua, &t).unwrap();
        let entries = rec.entries().unwrap(); // in key order: f, ok, v
        let both = |key: &str| {
            format!(
                "a table with the key {key:?} both as a number and as a string has no JSON form"
            )
        };
        assert_eq!(
            to_json("f", entries[0].1),
            Err(format!("f: {}", both("2.5")))
        );
        assert_eq!(
            to_json("ok", entries[1].1),
            Ok(serde_json::json!({ "1": 1, "x": 2 }))
        );
        assert_eq!(to_json("v", entries[2].1), Err(format!("v: {}", both("1"))));
    }

    #[test]
    fn a_value_without_a_json_form_is_named_by_its_whole_path() {
        let lua = Lua::new();
        let t: LuaTable = lua
            .load(
                r#"return { cart = { items = { { sku = "ok" }, { sku = "\255" } } },
                    odd = { ["a b"] = { 0/0 } }, flat = "\255", deep = { x = { [true] = 1 } },
                    num = { [2.5] = "\255" } }"#,
            )
            .eval()
            .unwrap();
        let rec = Record::from_table(&lua, &t).unwrap();
        let entries = rec.entries().unwrap(); // in key order: cart, deep, flat, num, odd
        let err = |i: usize, key: &str| to_json(key, entries[i].1).unwrap_err();
        let utf8 = "a string that is not UTF-8 has no JSON form";
        assert_eq!(err(0, "cart"), format!("cart.items[2].sku: {utf8}"));
        assert_eq!(
            err(1, "deep"),
            "deep.x: a boolean table key has no JSON form"
        );
        assert_eq!(err(2, "flat"), format!("flat: {utf8}"));
        assert_eq!(err(3, "num"), format!("num[2.5]: {utf8}"));
        assert!(
            err(4, "odd").starts_with("odd[\"a b\"][1]: "),
            "{}",
            err(4, "odd")
        );
    }
}

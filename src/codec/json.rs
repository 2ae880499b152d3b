//! The wire format <-> JSON, for stores that speak JSON (express-session's format, JSON Lua stores).

use super::{FALSE, FLOAT, INT, MAP, MAX_DEPTH, NoMemory, Reader, STR, TRUE};
use super::{put, try_copy, write_map, write_str};

/// The JSON form of one stored top-level value, for stores that speak JSON (express-session's
/// format). A table whose keys are exactly 1..n becomes an array, any other table an object
/// with its keys as strings; strings must be UTF-8 and numbers finite, else this fails, naming
/// `path`.
pub fn to_json(path: &str, bytes: &[u8]) -> Result<serde_json::Value, String> {
    let mut r = Reader::new(bytes);
    let v = r.json_value(1).map_err(|e| format!("{path}: {e}"))?;
    if r.pos != bytes.len() {
        return Err(format!("{path}: stored session data is corrupt"));
    }
    Ok(v)
}

/// The stored form of a JSON value; `None` for `null`, which a Lua table cannot hold. Nesting
/// is not limited here (serde_json stops at 128 levels): decoding the record refuses more than
/// `MAX_DEPTH`, naming the limit.
pub fn from_json(v: &serde_json::Value) -> Result<Option<Vec<u8>>, NoMemory> {
    use serde_json::Value as J;
    let mut out = Vec::new();
    match v {
        J::Null => return Ok(None),
        J::Bool(b) => put(&mut out, &[if *b { TRUE } else { FALSE }])?,
        J::Number(n) => match n.as_i64() {
            Some(i) => {
                // Numbers on Lua 5.1, 5.2 and LuaJIT are doubles: store what it will hold, so
                // reading such a value back unchanged does not look like a modification.
                #[cfg(not(any(feature = "lua53", feature = "lua54")))]
                let i = i as f64 as i64;
                put(&mut out, &[INT])?;
                put(&mut out, &i.to_le_bytes())?;
            }
            None => {
                put(&mut out, &[FLOAT])?;
                put(&mut out, &n.as_f64().unwrap_or(f64::NAN).to_le_bytes())?;
            }
        },
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
            write_map(&mut out, pairs)?;
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
    fn json_value(&mut self, depth: usize) -> Result<serde_json::Value, String> {
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
            MAP if depth >= MAX_DEPTH => {
                return Err(format!("a table {}", super::TOO_DEEP));
            }
            MAP => {
                let n = self.varint().ok_or_else(corrupt)? as usize;
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
    use super::super::Record;
    use super::*;
    use mlua::prelude::*;

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
        let back = from_json(&list).unwrap().unwrap();
        assert_eq!(back, entries[0].1);
    }
}

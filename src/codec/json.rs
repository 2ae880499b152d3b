//! The wire format <-> JSON, for stores that speak JSON (express-session's format, JSON Lua stores).

use super::{FALSE, FLOAT, INT, MAP, MAX_DEPTH, Reader, STR, TRUE, write_map, write_str};

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
                // Numbers on Lua 5.1, 5.2 and LuaJIT are doubles: store what it will hold, so
                // reading such a value back unchanged does not look like a modification.
                #[cfg(not(any(feature = "lua53", feature = "lua54")))]
                let i = i as f64 as i64;
                out.push(INT);
                out.extend_from_slice(&i.to_le_bytes());
            }
            None => {
                out.push(FLOAT);
                out.extend_from_slice(&n.as_f64().unwrap_or(f64::NAN).to_le_bytes());
            }
        },
        J::String(s) => write_str(&mut out, s.as_bytes()),
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
                    let mut key = Vec::with_capacity(k.len() + 2);
                    write_str(&mut key, k.as_bytes());
                    from_json(item).map(|v| (key, v))
                })
                .collect();
            write_map(&mut out, pairs);
        }
    }
    Some(out)
}

impl Reader<'_> {
    fn json_value(&mut self, depth: usize) -> Result<serde_json::Value, String> {
        use serde_json::Value as J;
        let corrupt = || "stored session data is corrupt".to_string();
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
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
                J::String(
                    std::str::from_utf8(bytes)
                        .map_err(|_| "a string that is not UTF-8 has no JSON form".to_string())?
                        .to_string(),
                )
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
        let back = from_json(&list).unwrap();
        assert_eq!(back, entries[0].1);
    }
}

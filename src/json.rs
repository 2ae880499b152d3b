//! JSON for Lua: `json.encode` / `json.decode`, so a Lua store can serialise sessions without
//! another rock.
//!
//! Mapping: a table whose keys are exactly 1..n (n >= 1) is an array, any other table an object
//! (number keys become strings; an empty table is `{}`). Integers stay integers where the
//! interpreter has them; JSON `null` decodes to nil. NaN and infinities have no JSON form and
//! are refused, as are functions, userdata and cycles.

use mlua::prelude::*;
use serde_json::{Map, Number, Value};

const MAX_DEPTH: usize = 64;

fn fail(what: &str) -> LuaError {
    LuaError::runtime(format!("honeymoon_session: json.encode: {what}"))
}

/// Lua value -> JSON value.
pub fn to_json(v: &LuaValue, depth: usize) -> LuaResult<Value> {
    if depth > MAX_DEPTH {
        return Err(fail("nested too deeply (or a cycle)"));
    }
    Ok(match v {
        LuaValue::Nil => Value::Null,
        LuaValue::Boolean(b) => Value::Bool(*b),
        LuaValue::Integer(i) => Value::Number((*i).into()),
        LuaValue::Number(n) => Value::Number(
            Number::from_f64(*n).ok_or_else(|| fail(&format!("{n} has no JSON form")))?,
        ),
        LuaValue::String(s) => Value::String(
            s.to_str()
                .map_err(|_| fail("strings must be valid UTF-8"))?
                .to_string(),
        ),
        LuaValue::Table(t) => {
            let n = t.raw_len();
            let mut count = 0;
            for pair in t.pairs::<LuaValue, LuaValue>() {
                pair?;
                count += 1;
            }
            if n > 0 && count == n {
                let mut arr = Vec::with_capacity(n);
                for i in 1..=n {
                    arr.push(to_json(&t.raw_get::<LuaValue>(i)?, depth + 1)?);
                }
                Value::Array(arr)
            } else {
                let mut obj = Map::new();
                for pair in t.pairs::<LuaValue, LuaValue>() {
                    let (k, v) = pair?;
                    let key = match &k {
                        LuaValue::String(s) => s
                            .to_str()
                            .map_err(|_| fail("keys must be valid UTF-8"))?
                            .to_string(),
                        LuaValue::Integer(i) => i.to_string(),
                        LuaValue::Number(n) => n.to_string(),
                        other => {
                            return Err(fail(&format!(
                                "{} cannot be an object key",
                                crate::codec::a_type(other)
                            )));
                        }
                    };
                    obj.insert(key, to_json(&v, depth + 1)?);
                }
                Value::Object(obj)
            }
        }
        other => {
            return Err(fail(&format!(
                "{} cannot be encoded",
                crate::codec::a_type(other)
            )));
        }
    })
}

/// JSON value -> fresh Lua value.
pub fn to_lua(lua: &Lua, v: &Value) -> LuaResult<LuaValue> {
    Ok(match v {
        Value::Null => LuaValue::Nil,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => LuaValue::Integer(i as LuaInteger),
            None => LuaValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => LuaValue::String(lua.create_string(s)?),
        Value::Array(a) => {
            let t = lua.create_table_with_capacity(a.len(), 0)?;
            for (i, item) in a.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            LuaValue::Table(t)
        }
        Value::Object(o) => {
            let t = lua.create_table_with_capacity(0, o.len())?;
            for (k, item) in o {
                t.raw_set(k.as_str(), to_lua(lua, item)?)?;
            }
            LuaValue::Table(t)
        }
    })
}

pub fn module(lua: &Lua) -> LuaResult<LuaTable> {
    let t = lua.create_table()?;
    t.set(
        "encode",
        lua.create_function(|_, v: LuaValue| {
            serde_json::to_string(&to_json(&v, 0)?).map_err(|e| fail(&e.to_string()))
        })?,
    )?;
    t.set(
        "decode",
        lua.create_function(|lua, s: LuaString| {
            let v: Value = serde_json::from_slice(&s.as_bytes())
                .map_err(|e| LuaError::runtime(format!("honeymoon_session: json.decode: {e}")))?;
            to_lua(lua, &v)
        })?,
    )?;
    Ok(t)
}

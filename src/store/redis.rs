//! RedisStore: sessions in Redis (or Valkey), stored as connect-redis stores them, so Node's
//! express-session and this module share sessions.
//!
//! Key `prefix .. id`; value the JSON of the session's data plus express-session's `cookie`
//! object; TTL from the cookie's lifetime. Merges are optimistic: the request's changes are
//! applied in Rust to the JSON it loaded, and a server-side script writes the result only if
//! the stored value is still that JSON (compared by SHA-1), else hands back the current value
//! to merge onto again. So keys a Node app wrote keep their values and order (floats bit for
//! bit), and a write costs one round trip.

use crate::clock;
use crate::codec::{self, Changes, Record};
use crate::cookie::{Attributes, SameSite, Secure};
use crate::store::{Lifetime, Loaded, Merged, Store, failed};
use mlua::prelude::*;
use parking_lot::Mutex;
use redis::{Client, Connection, RedisError, RedisResult};
use serde_json::{Map, Value as Json};
use std::sync::Arc;
use std::time::Duration;

/// The key express-session keeps its cookie under; not session data.
const COOKIE_KEY: &str = "cookie";
/// Retries of a merge that keeps losing to concurrent writers before giving up.
const MERGE_ATTEMPTS: usize = 16;

/// Compare-and-set: write ARGV[2] only if the stored value's SHA-1 is ARGV[1].
/// Returns 1 (written), 0 (no such key: gone) or the current value (lost a race).
const CAS: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if redis.sha1hex(cur) ~= ARGV[1] then return cur end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"#;

struct Inner {
    client: Client,
    /// host:port/db, for error messages (never the password).
    address: String,
    prefix: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    conn: Mutex<Option<Connection>>,
    cas: redis::Script,
}

/// A handle to one Redis store; clones share its connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

fn bad(msg: String) -> LuaError {
    LuaError::runtime(format!("honeymoon_session: RedisStore {msg}"))
}

fn text(t: &LuaTable, key: &str) -> LuaResult<Option<String>> {
    match t.raw_get::<LuaValue>(key)? {
        LuaValue::Nil => Ok(None),
        LuaValue::String(s) => Ok(Some(s.to_string_lossy())),
        other => Err(bad(format!(
            "{key} must be a string, got {}",
            codec::a_type(&other)
        ))),
    }
}

/// A client for a `rediss://` URL with `tls = { ca =, cert =, key = }` (PEM file paths): `ca`
/// replaces the system's trusted roots, `cert` and `key` authenticate this client (mutual TLS).
fn tls_client(url: &str, tls: &LuaTable) -> LuaResult<RedisResult<Client>> {
    const KNOWN: [&str; 3] = ["ca", "cert", "key"];
    for pair in tls.pairs::<LuaValue, LuaValue>() {
        let name = pair?.0.to_string().unwrap_or_default();
        if !KNOWN.contains(&name.as_str()) {
            return Err(bad(format!(
                "got the unknown option tls.{name}; known are tls.ca, tls.cert, tls.key"
            )));
        }
    }
    if !url.starts_with("rediss://") {
        return Err(bad(format!("tls needs a rediss:// url, got {url:?}")));
    }
    let read = |key: &str| -> LuaResult<Option<Vec<u8>>> {
        match text(tls, key)? {
            None => Ok(None),
            Some(path) => std::fs::read(&path)
                .map(Some)
                .map_err(|e| bad(format!("tls.{key}: cannot read {path:?}: {e}"))),
        }
    };
    let client_tls = match (read("cert")?, read("key")?) {
        (Some(client_cert), Some(client_key)) => Some(redis::ClientTlsConfig {
            client_cert,
            client_key,
        }),
        (None, None) => None,
        _ => return Err(bad("tls.cert and tls.key go together".into())),
    };
    let certs = redis::TlsCertificates {
        client_tls,
        root_cert: read("ca")?,
    };
    Ok(Client::build_with_tls(url, certs))
}

fn option_ms(t: &LuaTable, key: &str, default: u64) -> LuaResult<Duration> {
    match t.raw_get::<LuaValue>(key)? {
        LuaValue::Nil => Ok(Duration::from_millis(default)),
        LuaValue::Integer(n) if n > 0 => Ok(Duration::from_millis(n as u64)),
        other => Err(LuaError::runtime(format!(
            "honeymoon_session: RedisStore {key} must be a whole number of milliseconds above 0, got {}",
            codec::a_type(&other)
        ))),
    }
}

impl RedisStore {
    /// `RedisStore({ url =, prefix =, connectTimeout =, commandTimeout =, tls = })`; connects
    /// lazily.
    pub fn from_options(lua: &Lua, opts: Option<LuaTable>) -> LuaResult<RedisStore> {
        const KNOWN: [&str; 5] = ["url", "prefix", "connectTimeout", "commandTimeout", "tls"];
        let opts = match opts {
            Some(t) => t,
            None => lua.create_table()?,
        };
        for pair in opts.pairs::<LuaValue, LuaValue>() {
            let (k, _) = pair?;
            let name = k.to_string().unwrap_or_default();
            if !KNOWN.contains(&name.as_str()) {
                return Err(bad(format!(
                    "got the unknown option {name}; known options are {}",
                    KNOWN.join(", ")
                )));
            }
        }
        let url = text(&opts, "url")?.unwrap_or_else(|| "redis://127.0.0.1:6379".into());
        if url.starts_with("rediss://") {
            // rustls needs a crypto provider; a process that already chose one keeps it.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = match opts.raw_get::<LuaValue>("tls")? {
            LuaValue::Nil => Client::open(url.as_str()),
            LuaValue::Table(tls) => tls_client(&url, &tls)?,
            other => {
                return Err(bad(format!(
                    "tls must be a table, got {}",
                    codec::a_type(&other)
                )));
            }
        }
        .map_err(|e| {
            bad(format!(
                "url is not a Redis URL (redis[s]://[:password@]host[:port][/db]): {e}"
            ))
        })?;
        let info = client.get_connection_info();
        let address = format!("{}/{}", info.addr(), info.redis_settings().db());
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                address,
                prefix: text(&opts, "prefix")?.unwrap_or_else(|| "sess:".into()),
                connect_timeout: option_ms(&opts, "connectTimeout", 2000)?,
                command_timeout: option_ms(&opts, "commandTimeout", 2000)?,
                conn: Mutex::new(None),
                cas: redis::Script::new(CAS),
            }),
        })
    }

    fn key(&self, id: &str) -> String {
        format!("{}{id}", self.inner.prefix)
    }

    fn connect(&self) -> RedisResult<Connection> {
        let i = &self.inner;
        let conn = i.client.get_connection_with_timeout(i.connect_timeout)?;
        conn.set_read_timeout(Some(i.command_timeout))?;
        conn.set_write_timeout(Some(i.command_timeout))?;
        Ok(conn)
    }

    /// Runs `f` on the connection, connecting first if needed. A connection the server dropped
    /// (a restart) is replaced and `f` tried once more: every command here is idempotent.
    fn with<T>(
        &self,
        method: &str,
        mut f: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> LuaResult<T> {
        let fail = |e: RedisError| {
            failed(
                "RedisStore",
                method,
                format!("{e} (redis at {})", self.inner.address),
            )
        };
        let mut slot = self.inner.conn.lock();
        let reused = slot.is_some();
        let mut conn = match slot.take() {
            Some(c) => c,
            None => self.connect().map_err(fail)?,
        };
        let result = match f(&mut conn) {
            Err(e)
                if reused && (e.is_connection_dropped() || e.is_io_error()) && !e.is_timeout() =>
            {
                conn = self.connect().map_err(fail)?;
                f(&mut conn)
            }
            other => other,
        };
        match result {
            Ok(v) => {
                *slot = Some(conn);
                Ok(v)
            }
            Err(e) => {
                // A timed-out or broken connection may hold a late reply: never reuse it.
                if !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped()) {
                    *slot = Some(conn);
                }
                Err(fail(e))
            }
        }
    }

    fn get_raw(&self, id: &str) -> LuaResult<Option<String>> {
        let key = self.key(id);
        self.with("get", |c| {
            redis::cmd("GET").arg(&key).query::<Option<String>>(c)
        })
    }

    fn set_raw(&self, method: &str, id: &str, json: &str, ttl: u64) -> LuaResult<()> {
        let key = self.key(id);
        self.with(method, |c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(json)
                .arg("EX")
                .arg(ttl)
                .query::<()>(c)
        })
    }

    /// Every key of this store, by SCAN (never KEYS).
    fn keys(&self, method: &str) -> LuaResult<Vec<String>> {
        let pattern = format!("{}*", glob_escape(&self.inner.prefix));
        self.with(method, |c| {
            let mut all = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)?;
                all.extend(keys);
                if next == 0 {
                    return Ok(all);
                }
                cursor = next;
            }
        })
    }

    /// Every session id of this store (its keys without the prefix).
    pub fn ids(&self, method: &str) -> LuaResult<Vec<String>> {
        let prefix_len = self.inner.prefix.len();
        let mut keys = self.keys(method)?;
        for k in &mut keys {
            k.drain(..prefix_len);
        }
        Ok(keys)
    }

    pub fn clear(&self) -> LuaResult<()> {
        for chunk in self.keys("clear")?.chunks(500) {
            self.with("clear", |c| redis::cmd("DEL").arg(chunk).query::<()>(c))?;
        }
        Ok(())
    }

    pub fn exists(&self, id: &str) -> LuaResult<bool> {
        let key = self.key(id);
        self.with("exists", |c| {
            redis::cmd("EXISTS").arg(&key).query::<bool>(c)
        })
    }

    fn destroy_id(&self, id: &str) -> LuaResult<()> {
        let key = self.key(id);
        self.with("destroy", |c| redis::cmd("DEL").arg(&key).query::<()>(c))
    }

    fn touch_id(&self, id: &str, ttl: u64) -> LuaResult<bool> {
        let key = self.key(id);
        self.with("touch", |c| {
            redis::cmd("EXPIRE").arg(&key).arg(ttl).query::<bool>(c)
        })
    }
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// express-session's cookie object for a write now; and the TTL it implies, in seconds.
fn cookie_json(life: &Lifetime) -> (Json, u64) {
    let default = Attributes {
        path: "/".into(),
        domain: None,
        http_only: true,
        secure: Secure::Never,
        same_site: None,
        max_age: life.ttl,
    };
    let c = life.cookie.unwrap_or(&default);
    let mut o = Map::new();
    o.insert("originalMaxAge".into(), Json::from(c.max_age * 1000));
    let expires = clock::now_ms() + (c.max_age as i64) * 1000;
    o.insert("expires".into(), Json::from(clock::iso_date(expires)));
    o.insert("secure".into(), Json::from(c.secure == Secure::Always));
    o.insert("httpOnly".into(), Json::from(c.http_only));
    if let Some(d) = &c.domain {
        o.insert("domain".into(), Json::from(d.as_str()));
    }
    o.insert("path".into(), Json::from(c.path.as_str()));
    if let Some(ss) = c.same_site {
        let v = match ss {
            SameSite::Strict => "strict",
            SameSite::Lax => "lax",
            SameSite::None => "none",
        };
        o.insert("sameSite".into(), Json::from(v));
    }
    (Json::Object(o), c.max_age)
}

fn reserved(key: &[u8], method: &str) -> LuaResult<()> {
    if key == COOKIE_KEY.as_bytes() {
        return Err(failed(
            "RedisStore",
            method,
            "the session key \"cookie\" is express-session's cookie object in this store; use another name",
        ));
    }
    Ok(())
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

fn parse_json(raw: &str, method: &str) -> LuaResult<Map<String, Json>> {
    let value = match serde_json::from_str::<Json>(raw) {
        Ok(v) => v,
        Err(e) => serde_json::from_str(&replace_lone_surrogates(raw)).map_err(|_| {
            failed(
                "RedisStore",
                method,
                format!("the stored session is not JSON: {e}"),
            )
        })?,
    };
    match value {
        Json::Object(map) => Ok(map),
        _ => Err(failed(
            "RedisStore",
            method,
            "the stored session is not a JSON object",
        )),
    }
}

/// A stored JSON session -> record (without express-session's cookie object).
fn parse(raw: &str) -> LuaResult<Record> {
    let mut entries = codec::Entries::default();
    for (k, v) in parse_json(raw, "get")? {
        if let (false, Some(v)) = (k == COOKIE_KEY, codec::from_json(&v)) {
            entries.push(k.as_bytes(), &v);
        }
    }
    Ok(entries.into_record())
}

fn json_entry(method: &str, key: &[u8], value: &[u8]) -> LuaResult<(String, Json)> {
    reserved(key, method)?;
    let key = String::from_utf8(key.to_vec())
        .map_err(|_| failed("RedisStore", method, "a session key is not UTF-8"))?;
    let value = codec::to_json(&key, value).map_err(|e| failed("RedisStore", method, e))?;
    Ok((key, value))
}

impl Store for RedisStore {
    fn get(&self, id: &str) -> LuaResult<Option<Loaded>> {
        match self.get_raw(id)? {
            Some(raw) => Ok(Some(Loaded {
                record: parse(&raw)?,
                version: Some(raw),
            })),
            None => Ok(None),
        }
    }

    fn set(&self, id: &str, record: &Record, life: &Lifetime) -> LuaResult<Option<String>> {
        let mut map = Map::new();
        for (k, v) in record.entries()? {
            let (k, v) = json_entry("set", k, v)?;
            map.insert(k, v);
        }
        let (cookie, ttl) = cookie_json(life);
        map.insert(COOKIE_KEY.into(), cookie);
        let json = Json::Object(map).to_string();
        self.set_raw("set", id, &json, ttl)?;
        Ok(Some(json))
    }

    fn merge(
        &self,
        id: &str,
        changes: &Changes,
        _full: &Record,
        base: Option<&str>,
        life: &Lifetime,
    ) -> LuaResult<Merged> {
        let mut set = Vec::with_capacity(changes.set.len());
        for (k, v) in &changes.set {
            set.push(json_entry("set", k, v)?);
        }
        let mut base = match base {
            Some(b) => b.to_string(),
            None => match self.get_raw(id)? {
                Some(raw) => raw,
                None => return Ok(Merged::Gone),
            },
        };
        let key = self.key(id);
        for _ in 0..MERGE_ATTEMPTS {
            let mut map = parse_json(&base, "set")?;
            for (k, v) in &set {
                map.insert(k.clone(), v.clone());
            }
            for k in &changes.removed {
                // shift_remove: the other keys keep their order.
                map.shift_remove(String::from_utf8_lossy(k).as_ref());
            }
            let (cookie, ttl) = cookie_json(life);
            map.insert(COOKIE_KEY.into(), cookie);
            let json = Json::Object(map).to_string();
            let sha = sha1_smol::Sha1::from(base.as_bytes()).digest().to_string();
            let reply: redis::Value = self.with("set", |c| {
                self.inner
                    .cas
                    .key(&key)
                    .arg(&sha)
                    .arg(&json)
                    .arg(ttl)
                    .invoke(c)
            })?;
            match reply {
                redis::Value::Int(1) => return Ok(Merged::Written(Some(json))),
                redis::Value::Int(_) => return Ok(Merged::Gone),
                redis::Value::BulkString(current) => {
                    base = String::from_utf8(current).map_err(|_| {
                        failed("RedisStore", "set", "the stored session is not UTF-8 JSON")
                    })?;
                }
                other => {
                    return Err(failed(
                        "RedisStore",
                        "set",
                        format!("unexpected reply {other:?}"),
                    ));
                }
            }
        }
        Err(failed(
            "RedisStore",
            "set",
            format!("{MERGE_ATTEMPTS} concurrent writes to the session won every race; giving up"),
        ))
    }

    fn destroy(&self, id: &str) -> LuaResult<()> {
        self.destroy_id(id)
    }

    fn touch(&self, id: &str, life: &Lifetime) -> LuaResult<bool> {
        self.touch_id(id, cookie_json(life).1)
    }
}

/// A TTL argument from Lua for the standalone methods; nil means a day.
fn ttl_arg(v: Option<i64>) -> LuaResult<u64> {
    match v {
        None => Ok(86_400),
        Some(n) if n >= 1 => Ok(n as u64),
        Some(n) => Err(LuaError::runtime(format!(
            "honeymoon_session: RedisStore ttl must be a whole number of seconds from 1, got {n}"
        ))),
    }
}

impl LuaUserData for RedisStore {
    fn add_methods<M: LuaUserDataMethods<Self>>(m: &mut M) {
        m.add_method("get", |lua, s, id: String| match s.get_raw(&id)? {
            Some(raw) => parse(&raw)?.to_table(lua).map(LuaValue::Table),
            None => Ok(LuaValue::Nil),
        });
        m.add_method(
            "set",
            |lua, s, (id, data, ttl): (String, LuaTable, Option<i64>)| {
                let record = Record::from_table(lua, &data)?;
                let life = Lifetime {
                    ttl: ttl_arg(ttl)?,
                    cookie: None,
                };
                Store::set(s, &id, &record, &life).map(|_| ())
            },
        );
        m.add_method("destroy", |_, s, id: String| s.destroy_id(&id));
        m.add_method("touch", |_, s, (id, ttl): (String, Option<i64>)| {
            s.touch_id(&id, ttl_arg(ttl)?)
        });
        m.add_method("exists", |_, s, id: String| s.exists(&id));
        m.add_method("all", |lua, s, ()| lua.create_sequence_from(s.ids("all")?));
        m.add_method("length", |_, s, ()| Ok(s.ids("length")?.len()));
        m.add_method("clear", |_, s, ()| s.clear());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lone_surrogates_as_replacement_characters() {
        let raw = r#"{"a":"x\ud83d","b":"\ud83d\ude00","c":"\\ud83d","d":"\udc00y"}"#;
        // Not JSON at all, with a backslash before a multibyte character: an error, no panic.
        assert!(parse_json(r#"{"a":"\é\ud83d"#, "get").is_err());
        assert!(parse_json(r"\", "get").is_err());
        let map = parse_json(raw, "get").unwrap();
        assert_eq!(map["a"], "x\u{fffd}");
        assert_eq!(map["b"], "\u{1f600}");
        assert_eq!(map["c"], "\\ud83d");
        assert_eq!(map["d"], "\u{fffd}y");
    }
}

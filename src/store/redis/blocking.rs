//! The blocking RedisStore: a native store that does its own socket I/O through the redis
//! crate, for blocking servers (a plain Lua loop, one request at a time per process). Under an
//! event loop use `honeymoon_session.stores.redis` instead, whose sockets are the loop's.
//!
//! One connection per store, made lazily and replaced when it broke, timed out, or was made in
//! another process: a connection opened before `fork()` (nginx's master running
//! `init_by_lua`, a pre-forking server) is never used by a child, since parent and children
//! writing to one socket read each other's replies, so each other's sessions.

use super::format::{self, CAS, Cookie, JsonChanges, MERGE_ATTEMPTS};
use crate::codec::{self, Changes, Record};
use crate::fork;
use crate::store::{Id, Lifetime, Loaded, Merged, Store, StoreError, StoreResult, Ttl};
use mlua::prelude::*;
use parking_lot::Mutex;
use redis::{Client, Connection, RedisError, RedisResult};
use std::sync::Arc;
use std::time::Duration;

/// A connection and the process generation it was made in.
struct Conn {
    generation: u64,
    conn: Connection,
}

struct Inner {
    client: Client,
    /// host:port/db, for error messages (never the password).
    address: String,
    prefix: Vec<u8>,
    connect_timeout: Duration,
    command_timeout: Duration,
    conn: Mutex<Option<Conn>>,
    cas: redis::Script,
    touch: redis::Script,
}

/// A handle to one Redis store; clones share its connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

/// Which wait a failure happened in, for "timed out after N ms".
#[derive(Clone, Copy)]
enum Wait {
    Connect,
    Command,
}

pub(super) fn bad(msg: String) -> LuaError {
    LuaError::runtime(format!("honeymoon_session: RedisStore {msg}"))
}

pub(super) fn text(t: &LuaTable, key: &str) -> LuaResult<Option<String>> {
    match t.raw_get::<LuaValue>(key)? {
        LuaValue::Nil => Ok(None),
        LuaValue::String(s) => Ok(Some(s.to_string_lossy())),
        other => Err(bad(format!(
            "{key} must be a string, got {}",
            codec::a_type(&other)
        ))),
    }
}

/// A string option as bytes (a prefix need not be UTF-8).
pub(super) fn bytes(t: &LuaTable, key: &str) -> LuaResult<Option<Vec<u8>>> {
    match t.raw_get::<LuaValue>(key)? {
        LuaValue::Nil => Ok(None),
        LuaValue::String(s) => Ok(Some(s.as_bytes().to_vec())),
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

pub(super) fn option_ms(t: &LuaTable, key: &str, default: u64) -> LuaResult<Duration> {
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
                prefix: bytes(&opts, "prefix")?.unwrap_or_else(|| b"sess:".to_vec()),
                connect_timeout: option_ms(&opts, "connectTimeout", 2000)?,
                command_timeout: option_ms(&opts, "commandTimeout", 2000)?,
                conn: Mutex::new(None),
                cas: redis::Script::new(CAS),
                touch: redis::Script::new(format::TOUCH),
            }),
        })
    }

    fn key(&self, id: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.inner.prefix.len() + id.len());
        k.extend_from_slice(&self.inner.prefix);
        k.extend_from_slice(id);
        k
    }

    /// `honeymoon_session: RedisStore:<method> failed: <why> (redis at host:port/db)`; a timeout
    /// says how long it waited.
    fn fail(&self, method: &'static str, wait: Wait, e: &RedisError) -> StoreError {
        let why = if e.is_timeout() {
            let limit = match wait {
                Wait::Connect => self.inner.connect_timeout,
                Wait::Command => self.inner.command_timeout,
            };
            format!("timed out after {} ms", limit.as_millis())
        } else {
            e.to_string()
        };
        StoreError::new(
            "RedisStore",
            method,
            format!("{why} (redis at {})", self.inner.address),
        )
    }

    fn connect(&self, method: &'static str) -> StoreResult<Conn> {
        let i = &self.inner;
        let conn = i
            .client
            .get_connection_with_timeout(i.connect_timeout)
            .map_err(|e| self.fail(method, Wait::Connect, &e))?;
        let timeouts = conn
            .set_read_timeout(Some(i.command_timeout))
            .and_then(|()| conn.set_write_timeout(Some(i.command_timeout)));
        timeouts.map_err(|e| self.fail(method, Wait::Connect, &e))?;
        Ok(Conn {
            generation: fork::generation(),
            conn,
        })
    }

    /// Runs `f` on the connection, connecting first if needed. A connection the server dropped
    /// (a restart) is replaced and `f` tried once more: every command here is idempotent. A
    /// connection another process made (we are a child of `fork()`) is never used: dropping
    /// our copy closes only this process's descriptor, so the parent's stays intact.
    fn with<T>(
        &self,
        method: &'static str,
        mut f: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> StoreResult<T> {
        let mut slot = self.inner.conn.lock();
        let now = fork::generation();
        let mut conn = match slot.take() {
            Some(c) if c.generation == now => Some(c),
            _ => None,
        };
        let reused = conn.is_some();
        let mut conn = match conn.take() {
            Some(c) => c,
            None => self.connect(method)?,
        };
        let result = match f(&mut conn.conn) {
            Err(e)
                if reused && (e.is_connection_dropped() || e.is_io_error()) && !e.is_timeout() =>
            {
                conn = self.connect(method)?;
                f(&mut conn.conn)
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
                Err(self.fail(method, Wait::Command, &e))
            }
        }
    }

    fn get_raw(&self, id: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let key = self.key(id);
        self.with("get", |c| {
            redis::cmd("GET").arg(&key).query::<Option<Vec<u8>>>(c)
        })
    }

    fn set_raw(&self, method: &'static str, id: &[u8], json: &str, ttl: u64) -> StoreResult<()> {
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

    /// Every key of this store, by SCAN (never KEYS), as bytes: a key under the prefix need
    /// not be UTF-8.
    fn keys(&self, method: &'static str) -> StoreResult<Vec<Vec<u8>>> {
        let pattern = format::scan_pattern(&self.inner.prefix);
        self.with(method, |c| {
            let mut all = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
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

    /// Every session id of this store (its keys without the prefix), as bytes.
    pub fn ids(&self, method: &'static str) -> StoreResult<Vec<Vec<u8>>> {
        let prefix_len = self.inner.prefix.len();
        let mut keys = self.keys(method)?;
        for k in &mut keys {
            k.drain(..prefix_len.min(k.len()));
        }
        Ok(keys)
    }

    pub fn clear(&self) -> StoreResult<()> {
        for chunk in self.keys("clear")?.chunks(500) {
            self.with("clear", |c| redis::cmd("DEL").arg(chunk).query::<()>(c))?;
        }
        Ok(())
    }

    pub fn exists(&self, id: &[u8]) -> StoreResult<bool> {
        let key = self.key(id);
        self.with("exists", |c| {
            redis::cmd("EXISTS").arg(&key).query::<bool>(c)
        })
    }

    /// Deletes a session; true when Redis held it (DEL counts what it removed).
    fn destroy_id(&self, id: &[u8]) -> StoreResult<bool> {
        let key = self.key(id);
        self.with("destroy", |c| redis::cmd("DEL").arg(&key).query::<i64>(c))
            .map(|n| n > 0)
    }

    fn touch_id(&self, id: &[u8], ttl: u64) -> StoreResult<bool> {
        let key = self.key(id);
        self.with("touch", |c| {
            self.inner
                .touch
                .key(&key)
                .arg(ttl)
                .invoke::<i64>(c)
                .map(|n| n == 1)
        })
    }

    fn json(method: &'static str, raw: Vec<u8>) -> StoreResult<String> {
        String::from_utf8(raw).map_err(|_| {
            StoreError::new("RedisStore", method, "the stored session is not UTF-8 JSON")
        })
    }
}

impl Store for RedisStore {
    fn name(&self) -> &'static str {
        "RedisStore"
    }

    fn get(&self, id: Id) -> StoreResult<Option<Loaded>> {
        match self.get_raw(id.as_str().as_bytes())? {
            Some(raw) => Ok(Some(Loaded {
                record: format::to_record(&raw)
                    .map_err(|e| StoreError::new("RedisStore", "get", e))?,
                version: Some(Self::json("get", raw)?),
            })),
            None => Ok(None),
        }
    }

    fn set(&self, id: Id, record: &Record, life: &Lifetime) -> StoreResult<Option<String>> {
        let cookie = Cookie::of(life);
        let json = format::from_record(record, &cookie)
            .map_err(|e| StoreError::new("RedisStore", "set", e))?;
        self.set_raw("set", id.as_str().as_bytes(), &json, cookie.ttl())?;
        Ok(Some(json))
    }

    fn merge(
        &self,
        id: Id,
        changes: &Changes,
        _full: &Record,
        base: Option<&str>,
        life: &Lifetime,
    ) -> StoreResult<Merged> {
        let id = id.as_str();
        let bad = |e: String| StoreError::new("RedisStore", "set", e);
        let changes = JsonChanges::of(changes).map_err(bad)?;
        let cookie = Cookie::of(life);
        let mut base = match base {
            Some(b) => b.as_bytes().to_vec(),
            None => match self.get_raw(id.as_bytes())? {
                Some(raw) => raw,
                None => return Ok(Merged::Gone),
            },
        };
        let key = self.key(id.as_bytes());
        for _ in 0..MERGE_ATTEMPTS {
            // An id `regenerate` retired is never written again (its stale grace runs out).
            if format::retired(&base) {
                return Ok(Merged::Gone);
            }
            let json = changes.apply(&base, &cookie).map_err(bad)?;
            let sha = format::sha1_hex(&base);
            let reply: redis::Value = self.with("set", |c| {
                self.inner
                    .cas
                    .key(&key)
                    .arg(&sha)
                    .arg(&json)
                    .arg(cookie.ttl())
                    .invoke(c)
            })?;
            match reply {
                redis::Value::Int(1) => return Ok(Merged::Written(Some(json))),
                redis::Value::Int(_) => return Ok(Merged::Gone),
                redis::Value::BulkString(current) => base = current,
                other => return Err(bad(format!("unexpected reply {other:?}"))),
            }
        }
        Err(bad(format!(
            "{MERGE_ATTEMPTS} concurrent writes to the session won every race; giving up"
        )))
    }

    fn destroy(&self, id: Id) -> StoreResult<bool> {
        self.destroy_id(id.as_str().as_bytes())
    }

    fn touch(&self, id: Id, life: &Lifetime) -> StoreResult<bool> {
        self.touch_id(id.as_str().as_bytes(), Cookie::of(life).ttl())
    }
}

/// A TTL argument from Lua for the standalone methods; nil means a day.
fn ttl_arg(v: Option<i64>) -> LuaResult<Ttl> {
    match v {
        None => Ok(Ttl::DAY),
        Some(n) => u64::try_from(n).ok().and_then(Ttl::new).ok_or_else(|| {
            LuaError::runtime(format!(
                "honeymoon_session: RedisStore ttl must be a whole number of seconds from 1 to {}, got {n}",
                Ttl::MAX
            ))
        }),
    }
}

impl LuaUserData for RedisStore {
    fn add_methods<M: LuaUserDataMethods<Self>>(m: &mut M) {
        m.add_method("get", |lua, s, id: LuaString| {
            match s.get_raw(&id.as_bytes())? {
                Some(raw) => format::to_record(&raw)
                    .map_err(|e| StoreError::new("RedisStore", "get", e))?
                    .data_table(lua)
                    .map(LuaValue::Table),
                None => Ok(LuaValue::Nil),
            }
        });
        m.add_method(
            "set",
            |lua, s, (id, data, ttl): (String, LuaTable, Option<i64>)| {
                let record = Record::from_table(lua, &data)?;
                let life = Lifetime::standalone(ttl_arg(ttl)?);
                let id = Id::new(&id).ok_or_else(|| {
                    LuaError::runtime(
                        "honeymoon_session: RedisStore ids must be 1 to 4096 bytes long",
                    )
                })?;
                Store::set(s, id, &record, &life)
                    .map(|_| ())
                    .map_err(LuaError::from)
            },
        );
        m.add_method("destroy", |_, s, id: LuaString| {
            Ok(s.destroy_id(&id.as_bytes())?)
        });
        m.add_method("touch", |_, s, (id, ttl): (LuaString, Option<i64>)| {
            Ok(s.touch_id(&id.as_bytes(), ttl_arg(ttl)?.seconds())?)
        });
        m.add_method(
            "exists",
            |_, s, id: LuaString| Ok(s.exists(&id.as_bytes())?),
        );
        m.add_method("all", |lua, s, ()| {
            let ids = s.ids("all")?;
            let t = lua.create_table_with_capacity(ids.len(), 0)?;
            for (i, id) in ids.iter().enumerate() {
                t.raw_set(i + 1, lua.create_string(id)?)?;
            }
            Ok(t)
        });
        m.add_method("length", |_, s, ()| Ok(s.ids("length")?.len()));
        m.add_method("clear", |_, s, ()| Ok(s.clear()?));
    }
}

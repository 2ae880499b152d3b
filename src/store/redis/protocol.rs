//! What the Lua RedisStore (`lua/honeymoon_session/stores/redis.lua`) needs from Rust, as the
//! internal table `require("honeymoon_session")._redis`. Its sockets are Lua's (cosockets,
//! cqueues), so store calls may yield; the bytes are ours: the redis crate packs every command
//! and parses every reply, and `format` makes and merges the stored JSON.
//!
//! - `config(opts)`: the store's options checked and the URL parsed (by the redis crate) into
//!   `{ host, port, db, address, prefix, pattern, hello, hello_count, auth, redact, pool_name,
//!   pool_size, pool_idle, connect_timeout, command_timeout, socket, index_prefix,
//!   index_pattern }`. `hello` is the AUTH and SELECT a fresh connection sends before its first
//!   command (nil when neither is needed); `redact(text)`, with a password, leaves any part of
//!   it out of an error.
//! - `pack(name, ...)`: one command, packed (arguments: strings and integers). Concatenated
//!   packed commands are a pipeline.
//! - `replies()`: an incremental reply reader. `r:take(chunk?)` adds the bytes read (if any) and
//!   returns `true, value` for a reply, `true, nil, "CODE message"` for an error reply, `false`
//!   when it needs more bytes, and `nil, why` for bytes that are not the protocol.
//! - `decode(json)` -> record; `encode(record, ttl, life)` -> json, ttl;
//!   `merge(base_json, patch, ttl, life)` -> json, ttl, sha1 of base (then the owner, and the
//!   lifetime the session keeps where the patch assumed another, see `lifetime`); `ttl(ttl,
//!   life)` -> the key's TTL. Each returns `nil, why` on failure. `touch_assumes(assumed)` and
//!   `touch_found(assumed, age, created)`: a session's touch, which `TOUCH` makes only while
//!   Redis holds the lifetime it assumed (`TOUCH_ATTEMPTS` tries).
//! - `CAS`, `CAS_SHA`, `MERGE_ATTEMPTS`: the compare-and-set script, its SHA-1 and the
//!   attempts; `merge_backoff(lost)` the seconds to wait after `lost` lost races (the blocking
//!   store's wait, drawn from the OS's random source: nginx's workers, forked with one
//!   `math.random` state, would draw the same waits and collide again);
//!   `SET_LISTED`, `TOUCH`, `SESSIONS_OF`, `DESTROY_ALL` and their `_SHA`: the other scripts
//!   (`format`), the native store's own. `encode` and `merge` also return the owner the JSON
//!   names (for the owner index), `now()` the module's clock in ms (the index's scores), and
//!   `listed(reply)` turns `SESSIONS_OF`'s reply into `sessionsOf`'s list.
//! - `generation()`: changes in the child after `fork()` (pooled sockets of another process
//!   are never used).
//! - `record(data)`, `data(record)`, `patch(before, after)`: the codec, for calling the store
//!   directly.

use super::blocking::{bad, bytes, database, index_prefix, option_ms, text};
use super::format::{self, CAS, Cookie, JsonChanges, MERGE_ATTEMPTS};
use crate::codec::meta::{self, Meta};
use crate::codec::{self, Changes, Record};
use crate::cookie::{Priority, SameSite};
use crate::fork;
use crate::lifetime::Assumed;
use crate::options::option_key;
use crate::store::Listed;
use hmac::{Hmac, Mac};
use mlua::prelude::*;
use redis::{ConnectionAddr, IntoConnectionInfo, Value};
use sha2::Sha256;
use std::io::{self, Read};
use std::sync::OnceLock;

/// A key only this process knows, for `credentials_tag`. Pools are per process (a worker's
/// cosocket pool, the cqueues pool), so a pool's name need only be the same within one; a
/// worker forked after the key was drawn inherits it, which keeps that so.
fn pool_key() -> Result<&'static [u8; 32], String> {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    if let Some(key) = KEY.get() {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    crate::id::os_random(&mut key)?;
    Ok(KEY.get_or_init(|| key))
}

/// 12 hex digits that tell credentials apart in a pool's name: a keyed digest, as nginx's
/// debug log prints pool names, and an unkeyed one (a SHA-1 of the password, as it was) lets a
/// weak password be found offline from such a log.
fn credentials_tag(user: &str, password: &str) -> Result<String, String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(pool_key()?)
        .map_err(|e| format!("honeymoon_session: RedisStore cannot key the pool name: {e}"))?;
    mac.update(user.as_bytes());
    mac.update(b"\0");
    mac.update(password.as_bytes());
    let digest = mac.finalize().into_bytes();
    Ok(digest.iter().take(6).map(|b| format!("{b:02x}")).collect())
}

/// The nesting of replies we convert (our commands nest two deep).
const MAX_REPLY_DEPTH: usize = 16;

/// `nil, why`, the Lua idiom for an expected failure, so the Lua side raises it as a plain
/// string with the store, method and address.
fn nil_why(lua: &Lua, why: impl AsRef<str>) -> LuaResult<LuaMultiValue> {
    (LuaValue::Nil, lua.create_string(why.as_ref())?).into_lua_multi(lua)
}

/// The largest `pool.size`. nginx reserves a keepalive pool's slots when the pool is made (at
/// a worker's first connection to the address), about 184 bytes each in one userdata: 2^24
/// slots already fail every connect on LuaJIT ("userdata length overflow"), and 2^20, the most
/// descriptors a Linux process may hold by default (`fs.nr_open`), is more idle connections
/// than one worker could keep. The same limit holds under cqueues, so a config means the same
/// to each backend.
const MAX_POOL_SIZE: i64 = 1 << 20;

/// `pool.size`: whole connections from 1 to `MAX_POOL_SIZE`, refused at construction with what
/// was given, as the timeouts are.
fn pool_size(t: &LuaTable) -> LuaResult<i64> {
    let v = t.raw_get::<LuaValue>("size")?;
    if v.is_nil() {
        return Ok(32);
    }
    if let Some(n) = crate::store::whole_from_1(&v, MAX_POOL_SIZE as u64) {
        return Ok(n as i64);
    }
    Err(bad(format!(
        "pool.size must be a whole number of connections from 1 to {MAX_POOL_SIZE} (kept idle per worker), got {}",
        crate::codec::number_or_type(&v)
    )))
}

fn known(t: &LuaTable, what: &str, names: &[&str]) -> LuaResult<()> {
    for pair in t.pairs::<LuaValue, LuaValue>() {
        let (k, _) = pair?;
        if !super::blocking::is_one_of(&k, names) {
            return Err(bad(format!(
                "got the unknown option {}; known are {}",
                option_key(what, &k),
                names
                    .iter()
                    .map(|n| format!("{what}{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

/// `config(opts)`: see the module docs.
fn config(lua: &Lua, opts: Option<LuaTable>) -> LuaResult<LuaTable> {
    const KNOWN: [&str; 7] = [
        "url",
        "prefix",
        "indexPrefix",
        "socket",
        "pool",
        "connectTimeout",
        "commandTimeout",
    ];
    let opts = match opts {
        Some(t) => t,
        None => lua.create_table()?,
    };
    super::blocking::plain(&opts, "options")?;
    known(&opts, "", &KNOWN)?;
    let url = super::blocking::url(&opts)?;
    let info = url.as_str().into_connection_info().map_err(|e| {
        bad(format!(
            "url is not a Redis URL (redis://[[user]:password@]host[:port][/db]): {e}"
        ))
    })?;
    let (host, port) = match info.addr() {
        ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
        ConnectionAddr::TcpTls { .. } => {
            return Err(bad(
                "url is rediss://, which asks for TLS, which only the blocking hs.RedisStore speaks; \
                 this store's sockets are the event loop's (use redis:// on a trusted network)"
                    .into(),
            ));
        }
        _ => {
            return Err(bad(
                "url is not a TCP address (a unix socket); this store connects over TCP (redis://host:port/db)"
                    .into(),
            ));
        }
    };
    let db = database(&info)?;
    let settings = info.redis_settings();
    // An IPv6 address in brackets, as in the url (`[::1]:6379/0`).
    let address = if host.contains(':') {
        format!("[{host}]:{port}/{db}")
    } else {
        format!("{host}:{port}/{db}")
    };
    let mut hello = Vec::new();
    let mut hello_count = 0;
    if let Some(password) = settings.password() {
        let mut auth = redis::cmd("AUTH");
        if let Some(user) = settings.username() {
            auth.arg(user);
        }
        auth.arg(password);
        auth.write_packed_command(&mut hello);
        hello_count += 1;
    }
    if db != 0 {
        redis::cmd("SELECT")
            .arg(db)
            .write_packed_command(&mut hello);
        hello_count += 1;
    }
    // Connections differ by database and credentials, so pools do too; the credentials go
    // into the name only as a keyed digest.
    let pool_name = format!(
        "honeymoon_session:{address}#{}",
        credentials_tag(
            settings.username().unwrap_or(""),
            settings.password().unwrap_or("")
        )
        .map_err(LuaError::runtime)?
    );
    let prefix = bytes(&opts, "prefix")?.unwrap_or_else(|| b"sess:".to_vec());
    let index_prefix = index_prefix(&opts, &prefix)?;
    let (pool_size, pool_idle) = match opts.raw_get::<LuaValue>("pool")? {
        LuaValue::Nil => (32, 60_000),
        LuaValue::Table(p) => {
            super::blocking::plain(&p, "pool")?;
            known(&p, "pool.", &["size", "idle"])?;
            (
                pool_size(&p)?,
                option_ms(&p, "idle", "pool.idle", 60_000)?.as_millis() as i64,
            )
        }
        other => {
            return Err(bad(format!(
                "pool must be a table {{ size =, idle = }}, got {}",
                crate::codec::a_type(&other)
            )));
        }
    };
    let socket = match text(&opts, "socket")?.as_deref() {
        None => LuaValue::Nil,
        Some(s @ ("ngx" | "cqueues")) => LuaValue::String(lua.create_string(s)?),
        Some(other) => {
            return Err(bad(format!(
                "socket must be \"ngx\" or \"cqueues\", got {other:?}"
            )));
        }
    };
    let t = lua.create_table()?;
    t.raw_set("host", host)?;
    t.raw_set("port", port)?;
    t.raw_set("db", db)?;
    t.raw_set("address", address)?;
    t.raw_set("pattern", lua.create_string(format::scan_pattern(&prefix))?)?;
    t.raw_set("prefix", lua.create_string(prefix)?)?;
    t.raw_set(
        "index_pattern",
        lua.create_string(format::scan_pattern(&index_prefix))?,
    )?;
    t.raw_set("index_prefix", lua.create_string(index_prefix)?)?;
    if hello_count > 0 {
        t.raw_set("hello", lua.create_string(hello)?)?;
    }
    t.raw_set("hello_count", hello_count)?;
    t.raw_set("auth", settings.password().is_some())?;
    // A server's reply may quote the password (Redis quotes an unknown command's arguments):
    // every error of a store with one goes through this first.
    if let Some(password) = settings.password().filter(|p| !p.is_empty()) {
        let secret = password.as_bytes().to_vec();
        let redact = lua.create_function(move |lua, text: LuaString| {
            lua.create_string(format::redact(&text.as_bytes(), &secret))
        })?;
        t.raw_set("redact", redact)?;
    }
    t.raw_set("pool_name", pool_name)?;
    t.raw_set("pool_size", pool_size)?;
    t.raw_set("pool_idle", pool_idle)?;
    t.raw_set(
        "connect_timeout",
        option_ms(&opts, "connectTimeout", "connectTimeout", 2000)?.as_millis() as i64,
    )?;
    t.raw_set(
        "command_timeout",
        option_ms(&opts, "commandTimeout", "commandTimeout", 2000)?.as_millis() as i64,
    )?;
    t.raw_set("socket", socket)?;
    Ok(t)
}

/// `pack(name, ...)`: one command in the protocol's bytes.
fn pack(lua: &Lua, args: LuaVariadic<LuaValue>) -> LuaResult<LuaString> {
    let mut cmd = redis::Cmd::new();
    for (i, a) in args.iter().enumerate() {
        match a {
            LuaValue::String(s) => {
                cmd.arg(&*s.as_bytes());
            }
            LuaValue::Integer(n) => {
                cmd.arg(*n);
            }
            LuaValue::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
                cmd.arg(*n as i64);
            }
            other => {
                return Err(LuaError::runtime(format!(
                    "honeymoon_session: _redis.pack: argument {} is {}; commands take strings and integers",
                    i + 1,
                    crate::codec::a_type(other)
                )));
            }
        }
    }
    lua.create_string(cmd.get_packed_command())
}

/// The bytes `take` was given and the parser has not read yet. Reading past them is
/// `WouldBlock`, which leaves the crate's parser holding its partial state for the next chunk.
struct Feed<'a> {
    buf: &'a [u8],
    pos: &'a mut usize,
    starved: bool,
}

impl Read for Feed<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let rest = self.buf.get(*self.pos..).unwrap_or_default();
        if rest.is_empty() {
            self.starved = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = rest.len().min(out.len());
        out[..n].copy_from_slice(&rest[..n]);
        *self.pos += n;
        Ok(n)
    }
}

/// An incremental reply reader over the redis crate's parser; one per exchange.
#[derive(Default)]
pub struct Replies {
    parser: redis::Parser,
    pending: Vec<u8>,
    pos: usize,
}

/// What `take` found.
#[derive(Debug, PartialEq)]
enum Taken {
    Reply(Value),
    NeedMore,
    Bad(String),
}

impl Replies {
    fn take(&mut self, chunk: Option<&[u8]>) -> Taken {
        if let Some(chunk) = chunk {
            if self.pos >= self.pending.len() {
                self.pending.clear();
                self.pos = 0;
            }
            self.pending.extend_from_slice(chunk);
        }
        let mut feed = Feed {
            buf: &self.pending,
            pos: &mut self.pos,
            starved: false,
        };
        match self.parser.parse_value(&mut feed) {
            Ok(v) => Taken::Reply(v),
            Err(_) if feed.starved => Taken::NeedMore,
            Err(e) => Taken::Bad(format!("bad reply from redis: {e}")),
        }
    }
}

fn server_error(e: &redis::ServerError) -> String {
    match e.details() {
        Some(d) => format!("{} {d}", e.code()),
        None => e.code().to_string(),
    }
}

/// A reply as a Lua value: nil, integers, strings (bulk replies are bytes), tables for arrays
/// (a nil inside one is false) and maps; an error nested in an array is `{ error = "..." }`.
fn to_lua(lua: &Lua, v: Value, depth: usize) -> LuaResult<LuaValue> {
    if depth > MAX_REPLY_DEPTH {
        return Err(LuaError::runtime(
            "honeymoon_session: a reply from redis nests too deeply",
        ));
    }
    Ok(match v {
        Value::Nil => LuaValue::Nil,
        Value::Int(n) => (n as LuaInteger).into_lua(lua)?,
        Value::BulkString(b) => LuaValue::String(lua.create_string(b)?),
        Value::SimpleString(s) => LuaValue::String(lua.create_string(s)?),
        Value::Okay => LuaValue::String(lua.create_string("OK")?),
        Value::Double(d) => LuaValue::Number(d),
        Value::Boolean(b) => LuaValue::Boolean(b),
        Value::VerbatimString { text, .. } => LuaValue::String(lua.create_string(text)?),
        Value::BigNumber(n) => LuaValue::String(lua.create_string(format!("{n:?}"))?),
        Value::Array(items) | Value::Set(items) | Value::Push { data: items, .. } => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.into_iter().enumerate() {
                let v = match to_lua(lua, item, depth + 1)? {
                    LuaValue::Nil => LuaValue::Boolean(false),
                    v => v,
                };
                t.raw_set(i + 1, v)?;
            }
            LuaValue::Table(t)
        }
        Value::Map(pairs) => {
            let t = lua.create_table_with_capacity(0, pairs.len())?;
            for (k, v) in pairs {
                t.raw_set(to_lua(lua, k, depth + 1)?, to_lua(lua, v, depth + 1)?)?;
            }
            LuaValue::Table(t)
        }
        Value::Attribute { data, .. } => to_lua(lua, *data, depth + 1)?,
        Value::ServerError(e) => {
            let t = lua.create_table()?;
            t.raw_set("error", server_error(&e))?;
            LuaValue::Table(t)
        }
        // The enum is non-exhaustive; a kind of reply this crate version added is not ours.
        _ => {
            return Err(LuaError::runtime(
                "honeymoon_session: redis sent a kind of reply this store does not read",
            ));
        }
    })
}

impl LuaUserData for Replies {
    fn add_methods<M: LuaUserDataMethods<Self>>(m: &mut M) {
        m.add_method_mut("take", |lua, r, chunk: Option<LuaString>| {
            let taken = match &chunk {
                Some(c) => r.take(Some(&c.as_bytes())),
                None => r.take(None),
            };
            match taken {
                Taken::Reply(Value::ServerError(e)) => {
                    (true, LuaValue::Nil, server_error(&e)).into_lua_multi(lua)
                }
                Taken::Reply(v) => (true, to_lua(lua, v, 0)?).into_lua_multi(lua),
                Taken::NeedMore => false.into_lua_multi(lua),
                Taken::Bad(why) => nil_why(lua, why),
            }
        });
    }
}

/// A session config's lifetime as the stored cookie object describes it, owned (the `life`
/// table of the record-store contract; nil for a store method called directly).
struct Life {
    /// None: a browser-session cookie (`maxAge = false`).
    max_age: Option<u64>,
    /// `life.originalMaxAge`: the lifetime before `absoluteTimeout` capped it (default max_age).
    original: Option<u64>,
    ttl: u64,
    path: String,
    domain: Option<String>,
    http_only: bool,
    secure: bool,
    secure_auto: bool,
    same_site: Option<SameSite>,
    partitioned: bool,
    priority: Option<Priority>,
}

impl Life {
    fn cookie(&self) -> Cookie<'_> {
        Cookie {
            max_age: self.max_age,
            original: self.original,
            store_ttl: self.ttl,
            path: &self.path,
            domain: self.domain.as_deref(),
            http_only: self.http_only,
            secure: self.secure,
            secure_auto: self.secure_auto,
            same_site: self.same_site,
            partitioned: self.partitioned,
            priority: self.priority,
        }
    }
}

fn seconds(v: &LuaValue, what: &str) -> Result<Option<u64>, String> {
    match v {
        LuaValue::Nil => Ok(None),
        LuaValue::Integer(n) if *n >= 1 => Ok(Some(*n as u64)),
        LuaValue::Number(n) if *n >= 1.0 && n.fract() == 0.0 && *n < 9.0e15 => Ok(Some(*n as u64)),
        other => Err(format!(
            "{what} must be a whole number of seconds from 1, got {}",
            crate::codec::a_type(other)
        )),
    }
}

fn life_of(ttl: &LuaValue, life: Option<&LuaTable>) -> Result<Life, String> {
    let ttl = seconds(ttl, "ttl")?.unwrap_or(86_400);
    let Some(life) = life else {
        let c = Cookie::standalone(ttl);
        return Ok(Life {
            max_age: c.max_age,
            original: c.original,
            ttl,
            path: c.path.into(),
            domain: None,
            http_only: c.http_only,
            secure: c.secure,
            secure_auto: false,
            same_site: None,
            partitioned: false,
            priority: None,
        });
    };
    let get = |k: &str| life.raw_get::<LuaValue>(k).map_err(|e| e.to_string());
    let string = |k: &str| -> Result<Option<String>, String> {
        match get(k)? {
            LuaValue::Nil => Ok(None),
            LuaValue::String(s) => s
                .to_str()
                .map(|s| Some(s.to_string()))
                .map_err(|_| format!("life.{k} is not UTF-8")),
            other => Err(format!(
                "life.{k} must be a string, got {}",
                crate::codec::a_type(&other)
            )),
        }
    };
    let max_age = match get("maxAge")? {
        LuaValue::Boolean(false) => None,
        v => Some(seconds(&v, "life.maxAge")?.unwrap_or(ttl)),
    };
    let priority = match get("priority")? {
        LuaValue::Nil | LuaValue::Boolean(false) => None,
        LuaValue::String(s) => Some(Priority::parse(&s.as_bytes()).ok_or_else(|| {
            format!(
                "life.priority must be \"Low\", \"Medium\" or \"High\", got {:?}",
                s.to_string_lossy()
            )
        })?),
        other => {
            return Err(format!(
                "life.priority must be a string or false, got {}",
                crate::codec::a_type(&other)
            ));
        }
    };
    let http_only = !matches!(get("httpOnly")?, LuaValue::Boolean(false));
    // "auto": what this request's `https` says (see format::Cookie::secure).
    let (secure, secure_auto) = match get("secure")? {
        LuaValue::Boolean(b) => (b, false),
        LuaValue::String(s) if s.as_bytes() == b"auto" => {
            (matches!(get("https")?, LuaValue::Boolean(true)), true)
        }
        _ => (false, false),
    };
    let same_site = match get("sameSite")? {
        LuaValue::Nil | LuaValue::Boolean(false) => None,
        LuaValue::String(s) => match s.as_bytes().to_ascii_lowercase().as_slice() {
            b"strict" => Some(SameSite::Strict),
            b"lax" => Some(SameSite::Lax),
            b"none" => Some(SameSite::None),
            _ => {
                return Err(format!(
                    "life.sameSite must be \"Strict\", \"Lax\", \"None\" or false, got {:?}",
                    s.to_string_lossy()
                ));
            }
        },
        other => {
            return Err(format!(
                "life.sameSite must be a string or false, got {}",
                crate::codec::a_type(&other)
            ));
        }
    };
    let original = match get("originalMaxAge")? {
        LuaValue::Nil => max_age,
        v => Some(seconds(&v, "life.originalMaxAge")?.unwrap_or(ttl)),
    };
    Ok(Life {
        max_age,
        original,
        ttl,
        partitioned: matches!(get("partitioned")?, LuaValue::Boolean(true)),
        priority,
        path: string("path")?.unwrap_or_else(|| "/".into()),
        domain: string("domain")?,
        http_only,
        secure,
        secure_auto,
        same_site,
    })
}

/// `listed(reply)`: `SESSIONS_OF`'s reply (`id, lastSeen, created|false` per session, as the
/// reply reader made it) as `sessionsOf`'s list, or `nil, why`.
fn listed(lua: &Lua, reply: LuaTable) -> LuaResult<LuaMultiValue> {
    let ms = |v: &LuaValue| match v {
        LuaValue::Integer(n) => Some(*n),
        LuaValue::Number(n) if n.fract() == 0.0 => Some(*n as i64),
        _ => None,
    };
    let values: Vec<LuaValue> = reply.sequence_values().collect::<LuaResult<_>>()?;
    let mut out = Vec::with_capacity(values.len() / 3);
    for row in values.chunks(3) {
        match row {
            [LuaValue::String(id), seen, created] if ms(seen).is_some() => out.push(Listed {
                id: id.as_bytes().to_vec(),
                last_seen_ms: ms(seen).unwrap_or_default(),
                created_ms: ms(created),
            }),
            _ => return nil_why(lua, "unexpected reply to the sessionsOf script"),
        }
    }
    Listed::order(&mut out);
    crate::store::listed_table(lua, out)?.into_lua_multi(lua)
}

fn generation() -> LuaInteger {
    // Generations count forks; they stay far below 2^53 (LuaJIT's integers are doubles).
    (fork::generation() & ((1 << 53) - 1)) as LuaInteger
}

pub fn lua_exports(lua: &Lua) -> LuaResult<LuaTable> {
    let t = lua.create_table()?;
    t.set("config", lua.create_function(config)?)?;
    t.set("pack", lua.create_function(pack)?)?;
    t.set(
        "replies",
        lua.create_function(|_, ()| Ok(Replies::default()))?,
    )?;
    t.set("CAS", CAS)?;
    t.set("CAS_SHA", redis::Script::new(CAS).get_hash())?;
    for (name, script) in [
        ("TOUCH", format::TOUCH),
        ("SET_LISTED", format::SET_LISTED),
        ("SESSIONS_OF", format::SESSIONS_OF),
        ("DESTROY_ALL", format::DESTROY_ALL),
    ] {
        t.set(name, script)?;
        t.set(format!("{name}_SHA"), redis::Script::new(script).get_hash())?;
    }
    t.set(
        "now",
        lua.create_function(|_, ()| Ok(crate::clock::now_ms()))?,
    )?;
    t.set("listed", lua.create_function(listed)?)?;
    t.set("MERGE_ATTEMPTS", MERGE_ATTEMPTS)?;
    t.set(
        "merge_backoff",
        lua.create_function(|_, lost: usize| Ok(format::merge_backoff(lost).as_secs_f64()))?,
    )?;
    t.set(
        "decode",
        lua.create_function(|lua, (raw, max): (LuaString, Option<f64>)| {
            let limit = format::read_limit(max);
            match format::load_record(&raw.as_bytes(), limit) {
                // The parse's allowance has room for the cookie object: the record's exact
                // size is checked here, where the store names itself and its address, as the
                // engine checks what the blocking store reads (by the same rule).
                Ok(Some(record)) if !meta::within_max(&record.0, limit) => {
                    nil_why(lua, codec::larger_than_max(record.0.len(), limit))
                }
                Ok(Some(record)) => lua.create_string(&record.0)?.into_lua_multi(lua),
                // A retired id past its grace (format::load_record): no session.
                Ok(None) => false.into_lua_multi(lua),
                Err(why) => nil_why(lua, why),
            }
        })?,
    )?;
    t.set(
        "encode",
        lua.create_function(
            |lua, (record, ttl, life): (LuaString, LuaValue, Option<LuaTable>)| {
                let life = match life_of(&ttl, life.as_ref()) {
                    Ok(l) => l,
                    Err(why) => return nil_why(lua, why),
                };
                let cookie = life.cookie();
                let record = Record(record.as_bytes().to_vec());
                match format::from_record(&record, &cookie) {
                    Ok(json) => {
                        (json, cookie.ttl(), Meta::of_record(&record.0).owner).into_lua_multi(lua)
                    }
                    Err(why) => nil_why(lua, why),
                }
            },
        )?,
    )?;
    t.set(
        "merge",
        lua.create_function(
            |lua,
             (base, patch, ttl, life, max): (
                LuaString,
                LuaString,
                LuaValue,
                Option<LuaTable>,
                Option<f64>,
            )| {
                let life = match life_of(&ttl, life.as_ref()) {
                    Ok(l) => l,
                    Err(why) => return nil_why(lua, why),
                };
                let Some(patch) = Changes::read_patch(&patch.as_bytes())? else {
                    return nil_why(lua, "the patch is not one this module wrote");
                };
                // The engine hands merge the session's maxSize, which its patch carries too; a
                // direct call without it merges within the patch's (as `_merge_patch` and the
                // native store do), not the default, which would store a session that no load
                // under that maxSize can read.
                let limit = match (max, patch.max) {
                    (None, Some(carried)) => carried,
                    _ => format::read_limit(max),
                };
                let cookie = life.cookie();
                let base = base.as_bytes();
                match JsonChanges::of(&patch.changes)
                    .and_then(|c| c.apply_kept(&base, &cookie, patch.assumed.as_ref(), limit))
                {
                    Ok(Some(applied)) => {
                        let kept = applied
                            .kept
                            .map(|k| crate::lifetime::term_table(lua, &k))
                            .transpose()?;
                        let sha = format::sha1_hex(&base);
                        (applied.json, applied.ttl, sha, applied.owner, kept).into_lua_multi(lua)
                    }
                    // An id `regenerate` retired is never written again: false, as for a gone one.
                    Ok(None) => false.into_lua_multi(lua),
                    Err(why) => nil_why(lua, why),
                }
            },
        )?,
    )?;
    t.set(
        "ttl",
        lua.create_function(|lua, (ttl, life): (LuaValue, Option<LuaTable>)| {
            match life_of(&ttl, life.as_ref()) {
                Ok(l) => l.cookie().ttl().into_lua_multi(lua),
                Err(why) => nil_why(lua, why),
            }
        })?,
    )?;
    // A session's touch (`assumed`, the commit's): what TOUCH is to find stored (its ARGV[6]
    // and ARGV[7]), or nil for a touch that checks nothing.
    t.set(
        "touch_assumes",
        lua.create_function(|lua, assumed: Option<LuaString>| {
            match assumed.and_then(|a| Assumed::from_bytes(&a.as_bytes())) {
                Some(a) => format::touch_assumes(&a).into_lua_multi(lua),
                None => LuaValue::Nil.into_lua_multi(lua),
            }
        })?,
    )?;
    // TOUCH found another lifetime stored (`originalMaxAge`, `created`, as its reply says):
    // `kept, ex, age, created`, the lifetime the session keeps (nil where it comes to the one
    // assumed), its key's TTL, and what the next TOUCH is to find.
    t.set(
        "touch_found",
        lua.create_function(
            |lua, (assumed, age, created): (LuaString, LuaValue, LuaValue)| {
                let Some(a) = Assumed::from_bytes(&assumed.as_bytes()) else {
                    return nil_why(lua, "not a lifetime this module handed out");
                };
                let ms = |v: &LuaValue| match v {
                    LuaValue::Integer(n) => Some(*n),
                    LuaValue::Number(f) if f.fract() == 0.0 => Some(*f as i64),
                    _ => None,
                };
                let (own, created) = format::touch_found(ms(&age), ms(&created));
                let kept = a.kept(own, created, crate::clock::now_ms());
                let (age, created) = format::touch_assumes(&a.about(own, created));
                let ex = kept.map(|k| k.max_age.unwrap_or(k.ttl));
                let kept = kept
                    .map(|k| crate::lifetime::term_table(lua, &k))
                    .transpose()?;
                (kept, ex, age, created).into_lua_multi(lua)
            },
        )?,
    )?;
    t.set("TOUCH_ATTEMPTS", format::TOUCH_ATTEMPTS)?;
    t.set("generation", lua.create_function(|_, ()| Ok(generation()))?)?;
    // The codec, for calling this record store directly (and its specs): a data table as a
    // record, a record as a fresh data table, the patch from one record to another.
    t.set(
        "record",
        lua.create_function(|lua, data: LuaTable| {
            lua.create_string(Record::from_table(lua, &data)?.0)
        })?,
    )?;
    t.set(
        "data",
        lua.create_function(|lua, record: LuaString| {
            Record(record.as_bytes().to_vec()).data_table(lua)
        })?,
    )?;
    t.set(
        "patch",
        lua.create_function(|lua, (before, after): (LuaString, LuaString)| {
            let before = Record(before.as_bytes().to_vec());
            let changes = before.diff(&Record(after.as_bytes().to_vec()))?;
            lua.create_string(changes.to_patch(None)?)
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_at_once(bytes: &[u8]) -> Vec<Value> {
        let mut r = Replies::default();
        let mut out = Vec::new();
        let mut chunk = Some(bytes);
        loop {
            match r.take(chunk.take()) {
                Taken::Reply(v) => out.push(v),
                Taken::NeedMore => return out,
                Taken::Bad(e) => panic!("{e}"),
            }
        }
    }

    const REPLIES: &[u8] = b"+OK\r\n$5\r\nhello\r\n$-1\r\n:42\r\n-NOSCRIPT No matching script\r\n\
*2\r\n$1\r\n0\r\n*3\r\n$5\r\nsess:\r\n$0\r\n\r\n$2\r\n\xff\xfe\r\n$10\r\n0123456789\r\n";

    #[test]
    fn replies_split_anywhere_parse_as_whole() {
        let whole = all_at_once(REPLIES);
        assert_eq!(whole.len(), 7);
        assert_eq!(whole[0], Value::Okay);
        assert_eq!(whole[2], Value::Nil);
        // Every split into two chunks, with an empty take between them, and byte by byte.
        for cut in 0..REPLIES.len() {
            let mut r = Replies::default();
            let mut got = Vec::new();
            for chunk in [&REPLIES[..cut], &REPLIES[cut..]] {
                let mut next = Some(chunk);
                loop {
                    match r.take(next.take()) {
                        Taken::Reply(v) => got.push(v),
                        Taken::NeedMore => break,
                        Taken::Bad(e) => panic!("cut {cut}: {e}"),
                    }
                }
                assert_eq!(r.take(None), Taken::NeedMore);
            }
            assert_eq!(got, whole, "cut at {cut}");
        }
        let mut r = Replies::default();
        let mut got = Vec::new();
        for b in REPLIES {
            let mut next = Some(std::slice::from_ref(b));
            while let Taken::Reply(v) = r.take(next.take()) {
                got.push(v);
            }
        }
        assert_eq!(got, whole);
    }

    #[test]
    fn bytes_that_are_not_the_protocol_are_an_error_not_a_panic() {
        for bad in [&b"?what\r\n"[..], b":notanumber\r\n", b"$abc\r\n"] {
            let mut r = Replies::default();
            assert!(matches!(r.take(Some(bad)), Taken::Bad(_)), "{bad:?}");
        }
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut bytes = REPLIES.to_vec();
            let i = (x as usize) % bytes.len();
            bytes[i] = (x >> 32) as u8;
            let mut r = Replies::default();
            let _ = r.take(Some(&bytes[..i.max(1)]));
            let _ = r.take(Some(&bytes[i.max(1)..]));
            let _ = r.take(None);
        }
    }

    #[test]
    fn commands_are_packed_by_the_crate() {
        let lua = Lua::new();
        let t = lua_exports(&lua).unwrap();
        let pack: LuaFunction = t.get("pack").unwrap();
        let s: LuaString = pack.call(("GET", "sess:\u{ff}", 7)).unwrap();
        assert_eq!(
            &*s.as_bytes(),
            b"*3\r\n$3\r\nGET\r\n$7\r\nsess:\xc3\xbf\r\n$1\r\n7\r\n"
        );
        assert!(pack.call::<LuaString>(("GET", true)).is_err());
    }

    #[test]
    fn config_parses_the_url_and_keeps_the_password_out_of_names() {
        let lua = Lua::new();
        let t = lua_exports(&lua).unwrap();
        let config: LuaFunction = t.get("config").unwrap();
        let opts = lua
            .load("return { url = 'redis://u:s3cret@10.0.0.1:6400/3', pool = { size = 4 } }")
            .eval::<LuaTable>()
            .unwrap();
        let c: LuaTable = config.call(opts).unwrap();
        assert_eq!(c.get::<String>("address").unwrap(), "10.0.0.1:6400/3");
        assert_eq!(c.get::<i64>("hello_count").unwrap(), 2);
        assert_eq!(c.get::<i64>("pool_size").unwrap(), 4);
        let name: String = c.get("pool_name").unwrap();
        assert!(!name.contains("s3cret"), "{name}");
        // The credentials tell pools apart by a keyed digest: the same in this process, not
        // the unkeyed SHA-1 (which a debug log of pool names would let one reverse offline).
        let tag = |url: &str| -> String {
            let o: LuaTable = lua
                .load(format!("return {{ url = '{url}' }}"))
                .eval()
                .unwrap();
            let c: LuaTable = config.call(o).unwrap();
            c.get::<String>("pool_name").unwrap()
        };
        assert_eq!(name, tag("redis://u:s3cret@10.0.0.1:6400/3"));
        assert_ne!(name, tag("redis://u:s3cret2@10.0.0.1:6400/3"));
        assert_ne!(name, tag("redis://v:s3cret@10.0.0.1:6400/3"));
        let unkeyed = &format::sha1_hex(b"u\0s3cret")[..12];
        assert!(name.ends_with(&format!("#{}", credentials_tag("u", "s3cret").unwrap())));
        assert!(!name.contains(unkeyed), "{name}");
        let hello: LuaString = c.get("hello").unwrap();
        assert!(hello.to_string_lossy().contains("AUTH"));
        let v6: LuaTable = config
            .call(
                lua.load("return { url = 'redis://[::1]:6400/2' }")
                    .eval::<LuaTable>()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(v6.get::<String>("host").unwrap(), "::1");
        assert_eq!(v6.get::<String>("address").unwrap(), "[::1]:6400/2");
        for (src, want) in [
            ("return { url = 'rediss://h' }", "only the blocking"),
            ("return { url = 'http://h' }", "not a Redis URL"),
            ("return { socket = 'epoll' }", "socket must be"),
            (
                "return { pool = { max = 1 } }",
                "unknown option \"pool.max\"",
            ),
            (
                "return { nope = 1 }",
                "unknown option \"nope\"; known are url,",
            ),
            (
                "return { ['url\\n'] = 1 }",
                "unknown option \"url\\n\"; known",
            ),
            ("return { 'redis://h' }", "unknown option [1]; known"),
        ] {
            let opts: LuaTable = lua.load(src).eval().unwrap();
            let err = config.call::<LuaTable>(opts).unwrap_err().to_string();
            assert!(err.contains(want), "{src}: {err}");
        }
    }

    /// nginx's cosockets refuse a timeout of 2^31 ms or more on every call: refused here, at
    /// construction, naming the option; 2^31 - 1 is taken.
    #[test]
    fn config_refuses_timeouts_nginx_cannot_take() {
        let lua = Lua::new();
        let t = lua_exports(&lua).unwrap();
        let config: LuaFunction = t.get("config").unwrap();
        let range =
            "must be a whole number of milliseconds from 1 to 2147483647 (about 24.8 days), got";
        for (src, want) in [
            ("return { commandTimeout = 2^31 }", "commandTimeout"),
            ("return { connectTimeout = 3000000000 }", "connectTimeout"),
            ("return { pool = { idle = 2^40 } }", "pool.idle"),
            ("return { commandTimeout = 0 }", "commandTimeout"),
            ("return { connectTimeout = 1.5 }", "connectTimeout"),
            ("return { pool = { idle = 'x' } }", "pool.idle"),
        ] {
            let opts: LuaTable = lua.load(src).eval().unwrap();
            let err = config.call::<LuaTable>(opts).unwrap_err().to_string();
            assert!(
                err.contains(&format!("honeymoon_session: RedisStore {want} {range}")),
                "{src}: {err}"
            );
        }
        let opts: LuaTable = lua
            .load("return { commandTimeout = 2^31 - 1, connectTimeout = 2147483647, pool = { idle = 2147483647 } }")
            .eval()
            .unwrap();
        let c: LuaTable = config.call(opts).unwrap();
        for key in ["command_timeout", "connect_timeout", "pool_idle"] {
            assert_eq!(c.get::<i64>(key).unwrap(), 2_147_483_647, "{key}");
        }
    }

    /// nginx reserves a keepalive pool's slots at its first connection (about 184 bytes each, in
    /// one userdata): past about 11.6 million slots LuaJIT refuses the userdata and every
    /// connect fails ("userdata length overflow"); a size above 2^20 (the most descriptors a
    /// Linux process may hold by default) could never fill anyway. Refused here, naming the
    /// option and the range, with what was given; 2^20 is taken.
    #[test]
    fn config_refuses_pool_sizes_nginx_cannot_take() {
        let lua = Lua::new();
        let t = lua_exports(&lua).unwrap();
        let config: LuaFunction = t.get("config").unwrap();
        let want = "honeymoon_session: RedisStore pool.size must be a whole number of connections from 1 to 1048576 (kept idle per worker), got";
        for (src, got) in [
            ("return { pool = { size = 2^24 } }", "16777216"),
            ("return { pool = { size = 1048577 } }", "1048577"),
            ("return { pool = { size = 2^31 - 1 } }", "2147483647"),
            ("return { pool = { size = 1e300 } }", "1e300"),
            ("return { pool = { size = 0 } }", "0"),
            ("return { pool = { size = -1 } }", "-1"),
            ("return { pool = { size = 1.5 } }", "1.5"),
            ("return { pool = { size = 0/0 } }", "NaN"),
            ("return { pool = { size = '8' } }", "a string"),
        ] {
            let opts: LuaTable = lua.load(src).eval().unwrap();
            let err = config.call::<LuaTable>(opts).unwrap_err().to_string();
            assert!(err.contains(&format!("{want} {got}")), "{src}: {err}");
        }
        for (src, size) in [
            ("return { pool = { size = 1048576 } }", 1_048_576),
            ("return { pool = { size = 2^20 } }", 1_048_576),
            ("return { pool = { size = 1 } }", 1),
            ("return { pool = { idle = 5 } }", 32),
        ] {
            let opts: LuaTable = lua.load(src).eval().unwrap();
            let c: LuaTable = config.call(opts).unwrap();
            assert_eq!(c.get::<i64>("pool_size").unwrap(), size, "{src}");
        }
    }

    /// With prefix "" every key of the database is a session to all, length and clear: the
    /// owner index's keys would be listed, and clear would delete other programs' keys.
    #[test]
    fn config_refuses_an_empty_prefix() {
        let lua = Lua::new();
        let t = lua_exports(&lua).unwrap();
        let config: LuaFunction = t.get("config").unwrap();
        for src in [
            "return { prefix = '' }",
            "return { prefix = '', indexPrefix = 'idx:' }",
        ] {
            let opts: LuaTable = lua.load(src).eval().unwrap();
            let err = config.call::<LuaTable>(opts).unwrap_err().to_string();
            assert!(
                err.contains("honeymoon_session: RedisStore prefix must not be empty: "),
                "{src}: {err}"
            );
        }
    }

    /// SCAN by `prefix*` (all, length, clear) would take index keys for sessions, or `clear`'s
    /// SCAN of the index prefix would take sessions: neither prefix may start with the other,
    /// the default index prefix ("owner:" .. prefix) included. The event-loop store shares the
    /// native store's check (index_spec covers the native one).
    #[test]
    fn config_refuses_overlapping_prefixes() {
        let lua = Lua::new();
        let t = lua_exports(&lua).unwrap();
        let config: LuaFunction = t.get("config").unwrap();
        for (src, got) in [
            (
                "return { indexPrefix = 'sess:owners:' }",
                "got \"sess:owners:\"",
            ),
            ("return { indexPrefix = 'se' }", "got \"se\""),
            ("return { indexPrefix = '' }", "got \"\""),
            ("return { prefix = 'o' }", "got the default \"owner:o\""),
        ] {
            let opts: LuaTable = lua.load(src).eval().unwrap();
            let err = config.call::<LuaTable>(opts).unwrap_err().to_string();
            assert!(
                err.contains("honeymoon_session: RedisStore indexPrefix must not be empty, and neither it nor prefix ")
                    && err.contains(got),
                "{src}: {err}"
            );
        }
        let opts: LuaTable = lua
            .load("return { prefix = 'a:', indexPrefix = 'b:' }")
            .eval()
            .unwrap();
        let c: LuaTable = config.call(opts).unwrap();
        assert_eq!(c.get::<String>("index_prefix").unwrap(), "b:");
        let c: LuaTable = config.call(lua.create_table().unwrap()).unwrap();
        assert_eq!(c.get::<String>("index_prefix").unwrap(), "owner:sess:");
    }

    #[test]
    fn life_tables_follow_the_session_config() {
        let lua = Lua::new();
        let life: LuaTable = lua
            .load("return { ttl = 60, maxAge = 30, path = '/a', httpOnly = false, secure = 'auto', sameSite = 'Lax', domain = 'x.org' }")
            .eval()
            .unwrap();
        let l = life_of(&LuaValue::Integer(60), Some(&life)).unwrap();
        let c = l.cookie();
        assert_eq!(
            (
                c.max_age,
                c.path,
                c.domain,
                c.http_only,
                c.secure,
                c.same_site
            ),
            (
                Some(30),
                "/a",
                Some("x.org"),
                false,
                false,
                Some(SameSite::Lax)
            )
        );
        // Under "auto", what the request's https says (the module adds it).
        life.raw_set("https", true).unwrap();
        let c = life_of(&LuaValue::Integer(60), Some(&life)).unwrap();
        assert!(c.secure && c.secure_auto);
        let chips: LuaTable = lua
            .load(
                "return { maxAge = false, secure = true, partitioned = true, priority = 'Medium' }",
            )
            .eval()
            .unwrap();
        let l = life_of(&LuaValue::Integer(60), Some(&chips)).unwrap();
        let c = l.cookie();
        assert_eq!(
            (c.max_age, c.ttl(), c.partitioned, c.priority),
            (None, 60, true, Some(Priority::Medium))
        );
        let bad: LuaTable = lua.load("return { priority = 'urgent' }").eval().unwrap();
        assert!(life_of(&LuaValue::Integer(1), Some(&bad)).is_err());
        assert_eq!(
            life_of(&LuaValue::Nil, None).unwrap().max_age,
            Some(86_400),
            "a direct call without ttl keeps a day"
        );
        assert!(life_of(&LuaValue::Integer(0), None).is_err());
        let bad: LuaTable = lua.load("return { sameSite = 'lax ' }").eval().unwrap();
        assert!(life_of(&LuaValue::Integer(1), Some(&bad)).is_err());
    }
}

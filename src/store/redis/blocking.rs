//! The blocking RedisStore: a native store that does its own socket I/O through the redis
//! crate, for blocking servers (a plain Lua loop, one request at a time per process). Under an
//! event loop use `honeymoon_session.stores.redis` instead, whose sockets are the loop's.
//!
//! One connection per store, made lazily and replaced when it broke, timed out, or was made in
//! another process: a connection opened before `fork()` (nginx's master running
//! `init_by_lua`, a pre-forking server) is never used by a child, since parent and children
//! writing to one socket read each other's replies, so each other's sessions.

use super::format::{self, CAS, Cookie, JsonChanges, MERGE_ATTEMPTS};
use crate::clock;
use crate::codec::meta::Meta;
use crate::codec::{self, Changes, Record};
use crate::fork;
use crate::lifetime::{Term, Ttl};
use crate::options::option_key;
use crate::store::{Id, Lifetime, Listed, Loaded, Merged, Store, StoreError, StoreResult, Touched};
use mlua::prelude::*;
use parking_lot::Mutex;
use redis::{Client, Connection, ConnectionInfo, IntoConnectionInfo, RedisError, RedisResult};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection and the process generation it was made in.
struct Conn {
    generation: u64,
    conn: Connection,
}

struct Inner {
    client: Client,
    /// The database the url names: selected by `connect`, not by the redis crate (see there).
    db: i64,
    /// A rediss:// url: `connect` completes the TLS handshake within its deadline.
    tls: bool,
    /// host:port/db, for error messages (never the password).
    address: String,
    /// The password the url gives (empty: none), left out of every error (`format::redact`).
    secret: Vec<u8>,
    prefix: Vec<u8>,
    /// Where the owner index keys live (`indexPrefix .. owner`).
    index_prefix: Vec<u8>,
    connect_timeout: Duration,
    command_timeout: Duration,
    conn: Mutex<Option<Conn>>,
    cas: redis::Script,
    set_listed: redis::Script,
    touch: redis::Script,
    sessions_of: redis::Script,
    destroy_all: redis::Script,
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

/// Options are read raw, as session()'s are: a table that inherits its fields through
/// `__index` (a url from a defaults table) would silently connect to 127.0.0.1, so it is
/// refused, as session() refuses one.
pub(super) fn plain(t: &LuaTable, label: &str) -> LuaResult<()> {
    match crate::options::not_plain(t, label)? {
        Some(msg) => Err(bad(msg)),
        None => Ok(()),
    }
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

/// Whether an option's key is one of `names` (a string, byte for byte).
pub(super) fn is_one_of(key: &LuaValue, names: &[&str]) -> bool {
    match key {
        LuaValue::String(s) => names.iter().any(|n| *s.as_bytes() == *n.as_bytes()),
        _ => false,
    }
}

/// A client for a `rediss://` URL with `tls = { ca =, cert =, key = }` (PEM file paths): `ca`
/// replaces the system's trusted roots, `cert` and `key` authenticate this client (mutual TLS).
fn tls_client(url: &str, info: ConnectionInfo, tls: &LuaTable) -> LuaResult<Client> {
    const KNOWN: [&str; 3] = ["ca", "cert", "key"];
    plain(tls, "tls")?;
    for pair in tls.pairs::<LuaValue, LuaValue>() {
        let (k, _) = pair?;
        if !is_one_of(&k, &KNOWN) {
            return Err(bad(format!(
                "got the unknown option {}; known are tls.ca, tls.cert, tls.key",
                option_key("tls.", &k)
            )));
        }
    }
    if !url.starts_with("rediss://") {
        // Not the url itself: it may hold the password.
        return Err(bad(
            "tls needs a rediss:// url; url starts with another scheme".into(),
        ));
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
    let root_cert = read("ca")?;
    // A file without a PEM certificate (DER, a key) would be an empty trust store, which the
    // crate takes: every connection would then fail as "UnknownIssuer".
    if let Some(pem) = &root_cert {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        if CertificateDer::pem_slice_iter(pem).next().is_none() {
            return Err(bad(format!(
                "tls.ca must be a PEM file of certificates (-----BEGIN CERTIFICATE-----), got {:?}, which holds none",
                text(tls, "ca")?.unwrap_or_default()
            )));
        }
    }
    let certs = redis::TlsCertificates {
        client_tls,
        root_cert,
    };
    // A file the crate cannot use (a key file without a private key) is the file's fault, not
    // the url's.
    Client::build_with_tls(info, certs)
        .map_err(|e| bad(format!("tls.cert, tls.key or tls.ca cannot be used: {e}")))
}

/// The url's database. The redis crate takes any integer, and a negative one failed only at
/// the first SELECT, at request time: refused here, at construction.
pub(super) fn database(info: &ConnectionInfo) -> LuaResult<i64> {
    let db = info.redis_settings().db();
    if db < 0 {
        return Err(bad(format!(
            "url's database must be 0 or more (the url's path: redis://host:6379/3), got {db}"
        )));
    }
    Ok(db)
}

/// The `url` option (default `redis://127.0.0.1:6379`), refused when an `@` follows its host:
/// a password holding `#`, `?` or `/` that is not percent-encoded ends the host there, so the
/// url parser takes its first part for a port and the user name for the host, and every error
/// would name part of the password as the address. Neither is shown. Fails too when the OS
/// random source does (see the end).
pub(super) fn url(opts: &LuaTable) -> LuaResult<String> {
    let url = text(opts, "url")?.unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let tcp = ["redis://", "rediss://", "valkey://", "valkeys://"]
        .iter()
        .find(|s| {
            url.get(..s.len())
                .is_some_and(|u| u.eq_ignore_ascii_case(s))
        });
    if let Some(scheme) = tcp {
        let rest = &url[scheme.len()..];
        let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if rest[host_end..].contains('@') {
            return Err(bad(
                "url has an @ after its host: a password holding #, ? or / must be percent-encoded (%23, %3F, %2F)"
                    .into(),
            ));
        }
        let parsed = redis::parse_redis_url(&url);
        // The redis crate reads `rediss://…#insecure` as "do not verify the server's
        // certificate": the README promises it is always verified, so no fragment at all.
        if parsed.as_ref().is_some_and(|p| p.fragment().is_some()) {
            return Err(bad(
                "url has a #fragment, which this store does not take (the redis crate reads #insecure as: do not verify the server's certificate; a password holding # must be percent-encoded as %23)"
                    .into(),
            ));
        }
        // `redis://alice@host`: the redis crate sends AUTH only with a password, so the store
        // would connect as the default user, with its rights, where the url asks for alice's.
        if parsed
            .as_ref()
            .is_some_and(|p| !p.username().is_empty() && p.password().is_none_or(str::is_empty))
        {
            return Err(bad(
                "url names a user but no password: the store authenticates only with a password (redis://user:password@host:6379/0); without one it would connect as the default user"
                    .into(),
            ));
        }
        // The redis crate reads `protocol` from a TCP url's query and quietly drops anything
        // else: `?db=3` (redis-py's form) would be database 0, another app's sessions to all,
        // length and clear. Named when the name is a plain word (never the value).
        if let Some(parsed) = parsed
            && let Some((name, _)) = parsed.query_pairs().find(|(k, _)| k != "protocol")
        {
            return Err(bad(format!(
                "url has {} this store does not read (it takes protocol only; the database is the url's path: redis://host:6379/3)",
                query_parameter(&name)
            )));
        }
    } else if let Some(parsed) = redis::parse_redis_url(&url)
        && matches!(parsed.scheme(), "unix" | "redis+unix" | "valkey+unix")
    {
        let query: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        unix_url(parsed.username(), parsed.password().is_some(), &query)?;
    }
    // The redis crate's url parser (both stores' next step) makes a std HashMap, whose hash
    // key std draws from the OS random source, panicking when that fails: asked first, that
    // failure is this module's error.
    crate::id::os_random(&mut [0u8; 16]).map_err(LuaError::runtime)?;
    Ok(url)
}

/// A url's query parameter as a message names it: by its name when that is a plain word, never
/// by its value (it may be a password).
fn query_parameter(name: &str) -> String {
    let plain = name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        format!("the query parameter {name}, which")
    } else {
        "a query parameter".to_string()
    }
}

/// A unix socket url (its authority's `username` and whether it has a password, and its
/// `query`): the redis crate reads the credentials from the query (`user`, `pass`, as a map: the
/// last of each wins) and nothing else, so a user without `pass`, credentials in the authority
/// (`redis+unix://alice:pw@localhost/path`) or a parameter it drops (`?password=`) would send
/// no AUTH, and the store would connect as the default user, with its rights.
fn unix_url(username: &str, password: bool, query: &[(String, String)]) -> LuaResult<()> {
    const READ: [&str; 4] = ["db", "user", "pass", "protocol"];
    if !username.is_empty() || password {
        return Err(bad(
            "url has a user or password before the socket's path, which a unix socket url does not read; give them as ?user=name&pass=password"
                .into(),
        ));
    }
    if let Some(at) = query.iter().position(|(k, _)| !READ.contains(&k.as_str())) {
        // A password holding an unencoded & ends there, and the rest of it is the next
        // parameter's name: never named after a pass.
        if query[..at].iter().any(|(k, _)| k == "pass") {
            return Err(bad(
                "url has a query parameter after pass= this store does not read (a password holding & must be percent-encoded as %26; a unix socket url takes db, user, pass and protocol)"
                    .into(),
            ));
        }
        return Err(bad(format!(
            "url has {} this store does not read (a unix socket url takes db, user, pass and protocol)",
            query_parameter(&query[at].0)
        )));
    }
    let last = |name: &str| query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v);
    if last("user").is_some_and(|u| !u.is_empty()) && last("pass").is_none_or(|p| p.is_empty()) {
        return Err(bad(
            "url names a user but no password: the store authenticates only with a password (redis+unix:///path?user=name&pass=password); without one it would connect as the default user"
                .into(),
        ));
    }
    Ok(())
}

/// The `indexPrefix` option: where the owner index keys live. Neither it nor `prefix` may start
/// with the other (`all`, `length` and `clear` would take index keys for sessions, or an
/// owner's key could be a session's), and it must not be empty. `prefix` must not be empty
/// either: every key of the database would then be a session to `all`, `length` and `clear`
/// (the index keys too, and `clear` would delete other programs' keys).
pub(super) fn index_prefix(opts: &LuaTable, prefix: &[u8]) -> LuaResult<Vec<u8>> {
    if prefix.is_empty() {
        return Err(bad(
            "prefix must not be empty: all, length and clear take every key under it for a session, \
             so with \"\" they would list the owner index's keys and clear would delete every key of \
             the database; give the sessions a prefix of their own (connect-redis's default is \"sess:\")"
                .into(),
        ));
    }
    let (p, given) = match bytes(opts, "indexPrefix")? {
        None => (format::default_index_prefix(prefix), false),
        Some(p) => (p, true),
    };
    if p.is_empty() || p.starts_with(prefix) || prefix.starts_with(&p) {
        return Err(bad(format!(
            "indexPrefix must not be empty, and neither it nor prefix {:?} may start with the other, got {}{:?}",
            String::from_utf8_lossy(prefix),
            if given { "" } else { "the default " },
            String::from_utf8_lossy(&p)
        )));
    }
    Ok(p)
}

/// The longest timeout taken, in ms: nginx's cosockets refuse 2^31 ms or more (`bad timeout
/// value`, on every call), so the option is refused at construction instead; the same limit
/// holds for every RedisStore, so a config means the same to each.
pub(super) const MAX_MS: i64 = i32::MAX as i64;

/// A timeout option in whole milliseconds, from 1 to `MAX_MS`; `name` is how errors call it.
pub(super) fn option_ms(t: &LuaTable, key: &str, name: &str, default: u64) -> LuaResult<Duration> {
    let v = t.raw_get::<LuaValue>(key)?;
    if v.is_nil() {
        return Ok(Duration::from_millis(default));
    }
    if let Some(ms) = crate::store::whole_from_1(&v, MAX_MS as u64) {
        return Ok(Duration::from_millis(ms));
    }
    Err(bad(format!(
        "{name} must be a whole number of milliseconds from 1 to {MAX_MS} (about 24.8 days), got {}",
        codec::number_or_type(&v)
    )))
}

impl RedisStore {
    /// `RedisStore({ url =, prefix =, indexPrefix =, connectTimeout =, commandTimeout =, tls = })`;
    /// connects lazily.
    pub fn from_options(lua: &Lua, opts: Option<LuaTable>) -> LuaResult<RedisStore> {
        const KNOWN: [&str; 6] = [
            "url",
            "prefix",
            "indexPrefix",
            "connectTimeout",
            "commandTimeout",
            "tls",
        ];
        let opts = match opts {
            Some(t) => t,
            None => lua.create_table()?,
        };
        plain(&opts, "options")?;
        for pair in opts.pairs::<LuaValue, LuaValue>() {
            let (k, _) = pair?;
            if !is_one_of(&k, &KNOWN) {
                return Err(bad(format!(
                    "got the unknown option {}; known options are {}",
                    option_key("", &k),
                    KNOWN.join(", ")
                )));
            }
        }
        let url = url(&opts)?;
        if url.starts_with("rediss://") {
            // rustls needs a crypto provider; a process that already chose one keeps it.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let not_url = |e: RedisError| {
            bad(format!(
                "url is not a Redis URL (redis[s]://[:password@]host[:port][/db]): {e}"
            ))
        };
        let info = url.as_str().into_connection_info().map_err(not_url)?;
        let db = database(&info)?;
        let secret = info
            .redis_settings()
            .password()
            .unwrap_or_default()
            .as_bytes()
            .to_vec();
        let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
        let address = match info.addr() {
            // An IPv6 address in brackets, as in the url: `[::1]:6379/0`, not `::1:6379/0`.
            redis::ConnectionAddr::Tcp(host, port)
            | redis::ConnectionAddr::TcpTls { host, port, .. }
                if host.contains(':') =>
            {
                format!("[{host}]:{port}/{db}")
            }
            other => format!("{other}/{db}"),
        };
        // The redis crate pipelines its connection setup (AUTH, SELECT, two CLIENT SETINFO)
        // and waits the whole timeout for each reply in turn: a server that accepts but does
        // not answer would cost one connectTimeout per command. Its setup is left with one
        // reply at most (AUTH, or RESP3's HELLO); `connect` selects the database itself,
        // within what is left of the same deadline.
        let setup = info
            .redis_settings()
            .clone()
            .set_db(0)
            .set_skip_set_lib_name();
        let info = info.set_redis_settings(setup);
        let client = match opts.raw_get::<LuaValue>("tls")? {
            LuaValue::Nil => Client::open(info).map_err(not_url)?,
            LuaValue::Table(tls) => tls_client(&url, info, &tls)?,
            other => {
                return Err(bad(format!(
                    "tls must be a table, got {}",
                    codec::a_type(&other)
                )));
            }
        };
        let prefix = bytes(&opts, "prefix")?.unwrap_or_else(|| b"sess:".to_vec());
        let index_prefix = index_prefix(&opts, &prefix)?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                db,
                tls,
                address,
                secret,
                prefix,
                index_prefix,
                connect_timeout: option_ms(&opts, "connectTimeout", "connectTimeout", 2000)?,
                command_timeout: option_ms(&opts, "commandTimeout", "commandTimeout", 2000)?,
                conn: Mutex::new(None),
                cas: redis::Script::new(CAS),
                set_listed: redis::Script::new(format::SET_LISTED),
                touch: redis::Script::new(format::TOUCH),
                sessions_of: redis::Script::new(format::SESSIONS_OF),
                destroy_all: redis::Script::new(format::DESTROY_ALL),
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
        self.error_at(method, why)
    }

    /// A new connection, set up (AUTH, SELECT) within one `connectTimeout`.
    fn connect(&self, method: &'static str) -> StoreResult<Conn> {
        let i = &self.inner;
        let start = Instant::now();
        let mut conn = i
            .client
            .get_connection_with_timeout(i.connect_timeout)
            .map_err(|e| self.fail(method, Wait::Connect, &e))?;
        // The SELECT; or over TLS without one, a PING: rustls shakes hands at the first write,
        // which must not be the first command's (bounded by commandTimeout, not this).
        if i.db != 0 || i.tls {
            let left = i.connect_timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                let why = format!("timed out after {} ms", i.connect_timeout.as_millis());
                return Err(self.error_at(method, why));
            }
            let mut step = redis::cmd(if i.db != 0 { "SELECT" } else { "PING" });
            if i.db != 0 {
                step.arg(i.db);
            }
            let done = conn
                .set_read_timeout(Some(left))
                .and_then(|()| conn.set_write_timeout(Some(left)))
                .and_then(|()| step.query::<()>(&mut conn));
            done.map_err(|e| match e.code() {
                // What the event-loop store says too: `redis refused SELECT 99: ERR DB index …`.
                Some(code) if i.db != 0 && !e.is_io_error() => self.error_at(
                    method,
                    format!(
                        "redis refused SELECT {}: {code} {}",
                        i.db,
                        e.detail().unwrap_or_default()
                    ),
                ),
                _ => self.fail(method, Wait::Connect, &e),
            })?;
        }
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
        // A kept connection the server closed (a restart) is replaced once. So is one a replica
        // answered READONLY: after a failover the old primary keeps its clients as a replica,
        // and only a new connection reaches the server the host name names now. Every command
        // here is idempotent, and a replica wrote nothing.
        let result = match f(&mut conn.conn) {
            Err(e) if reused && (read_only(&e) || (broken(&e) && !e.is_timeout())) => {
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
                // Kept only after a reply read whole (a server's error reply, or one of another
                // type than asked): a timed-out, broken or unparsable connection may hold the
                // rest of a reply, which the next command would read as its own.
                // (A server's reply has a code, also one the crate does not name: WRONGTYPE, OOM.)
                // Not a replica's: the next command connects again.
                let whole =
                    e.code().is_some() || e.kind() == redis::ErrorKind::UnexpectedReturnType;
                if whole && !read_only(&e) && !broken(&e) && !e.is_timeout() {
                    *slot = Some(conn);
                }
                Err(self.fail(method, Wait::Command, &e))
            }
        }
    }

    /// The stored JSON, or None. A reply of another kind (a proxy's, a broken server's) is an
    /// error: the crate would read an array of small integers as the bytes of a session.
    fn get_raw(&self, id: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        use redis::Value;
        let key = self.key(id);
        let reply: Value = self.with("get", |c| redis::cmd("GET").arg(&key).query(c))?;
        let kind = match reply {
            Value::Nil => return Ok(None),
            Value::BulkString(b) => return Ok(Some(b)),
            Value::SimpleString(s) => return Ok(Some(s.into_bytes())),
            Value::Int(_) | Value::Double(_) | Value::BigNumber(_) => "a number",
            Value::Boolean(_) => "a boolean",
            Value::Array(_) | Value::Set(_) | Value::Push { .. } => "an array",
            Value::Map(_) | Value::Attribute { .. } => "a map",
            _ => "a reply of another kind",
        };
        Err(self.error_at(
            "get",
            format!("redis answered GET with {kind}, not a string or nil"),
        ))
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

    /// A whole write of a session that names `owner`: the write and its owner index entry in
    /// one script.
    fn set_listed(&self, id: &[u8], json: &str, ttl: u64, owner: &str) -> StoreResult<()> {
        let key = self.key(id);
        let index = format::index_key(&self.inner.index_prefix, owner);
        let now = clock::now_ms();
        self.with("set", |c| {
            self.inner
                .set_listed
                .key(&key)
                .key(&index)
                .arg(json)
                .arg(ttl)
                .arg(id)
                .arg(now)
                .arg(&self.inner.prefix)
                .invoke::<i64>(c)
                .map(|_| ())
        })
    }

    /// Every key of this store, by SCAN (never KEYS), as bytes: a key under the prefix need
    /// not be UTF-8.
    fn keys(&self, method: &'static str) -> StoreResult<Vec<Vec<u8>>> {
        self.scan(method, &self.inner.prefix)
    }

    /// Every key under `prefix`, by SCAN, each once: SCAN may return a key twice (the table
    /// shrank between two calls), which connect-redis also drops.
    fn scan(&self, method: &'static str, prefix: &[u8]) -> StoreResult<Vec<Vec<u8>>> {
        let pattern = format::scan_pattern(prefix);
        self.with(method, |c| {
            let mut all = Vec::new();
            // Ordered, not hashed: std's hash key panics when the OS random source fails.
            let mut seen = std::collections::BTreeSet::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)?;
                all.extend(keys.into_iter().filter(|k| seen.insert(k.clone())));
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

    /// Deletes every session of this store, and its owner index.
    pub fn clear(&self) -> StoreResult<()> {
        let mut keys = self.keys("clear")?;
        keys.extend(self.scan("clear", &self.inner.index_prefix)?);
        for chunk in keys.chunks(500) {
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

    /// Refreshes the session's TTL to `ttl` seconds: true, or false when it is gone (or
    /// retired). With `assumes` (`format::touch_assumes`), only while the stored lifetime is
    /// the one assumed: else nothing is refreshed and the stored one is returned.
    fn touch_id(
        &self,
        id: &[u8],
        ttl: u64,
        assumes: Option<&(String, String)>,
    ) -> StoreResult<Result<bool, format::Found>> {
        let key = self.key(id);
        let now = clock::now_ms();
        let reply: redis::Value = self.with("touch", |c| {
            let mut call = self.inner.touch.key(&key);
            call.arg(ttl)
                .arg(&self.inner.index_prefix)
                .arg(id)
                .arg(now)
                .arg(&self.inner.prefix);
            if let Some((age, created)) = assumes {
                call.arg(age).arg(created);
            }
            call.invoke(c)
        })?;
        let int = |v: &redis::Value| match v {
            redis::Value::Int(n) => Some(*n),
            _ => None,
        };
        match reply {
            redis::Value::Int(n) => Ok(Ok(n == 1)),
            redis::Value::Array(a) if a.len() == 3 && int(&a[0]) == Some(2) => {
                Ok(Err(format::touch_found(int(&a[1]), int(&a[2]))))
            }
            other => Err(self.error_at("touch", format!("unexpected reply {other:?}"))),
        }
    }

    fn sessions_of_owner(&self, owner: &str) -> StoreResult<Vec<Listed>> {
        let index = format::index_key(&self.inner.index_prefix, owner);
        let reply: Vec<redis::Value> = self.with("sessionsOf", |c| {
            self.inner
                .sessions_of
                .key(&index)
                .arg(&self.inner.prefix)
                .arg(owner)
                .invoke(c)
        })?;
        listed(reply).map_err(|why| self.error_at("sessionsOf", why))
    }

    fn destroy_owner(&self, owner: &str, except: Option<&str>) -> StoreResult<usize> {
        let index = format::index_key(&self.inner.index_prefix, owner);
        let n: i64 = self.with("destroyAll", |c| {
            let mut call = self.inner.destroy_all.key(&index);
            call.arg(&self.inner.prefix).arg(owner);
            if let Some(keep) = except {
                call.arg(keep);
            }
            call.invoke(c)
        })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    fn json(&self, method: &'static str, raw: Vec<u8>) -> StoreResult<String> {
        String::from_utf8(raw)
            .map_err(|_| self.error_at(method, "the stored session is not UTF-8 JSON"))
    }

    /// An error of this store, with where it is (never the password), so it can be found:
    /// `honeymoon_session: RedisStore:<method> failed: <why> (redis at host:port/db)`. `why`
    /// may quote a server's reply, which may quote the password: any part of it is left out.
    fn error_at(&self, method: &'static str, why: impl std::fmt::Display) -> StoreError {
        let why = format::redact(why.to_string().as_bytes(), &self.inner.secret);
        StoreError::new(
            "RedisStore",
            method,
            format!("{} ({})", String::from_utf8_lossy(&why), self.place_text()),
        )
    }

    fn place_text(&self) -> String {
        format!("redis at {}", self.inner.address)
    }
}

impl Store for RedisStore {
    fn name(&self) -> &'static str {
        "RedisStore"
    }
    fn place(&self) -> Option<String> {
        Some(self.place_text())
    }

    fn get(&self, id: Id, max: usize) -> StoreResult<Option<Loaded>> {
        let Some(raw) = self.get_raw(id.as_str().as_bytes())? else {
            return Ok(None);
        };
        match format::load_record(&raw, max).map_err(|e| self.error_at("get", e))? {
            Some(record) => Ok(Some(Loaded {
                record,
                version: Some(self.json("get", raw)?),
            })),
            None => Ok(None),
        }
    }

    fn set(&self, id: Id, record: &Record, life: &Lifetime) -> StoreResult<Option<String>> {
        let cookie = Cookie::of(life);
        let json = format::from_record(record, &cookie)
            .map_err(|e| StoreError::new("RedisStore", "set", e))?;
        let id = id.as_str().as_bytes();
        // The owner the record names, also when `set` is called directly with `__meta.owner`.
        match Meta::of_record(&record.0).owner {
            Some(owner) => self.set_listed(id, &json, cookie.ttl(), &owner)?,
            None => self.set_raw("set", id, &json, cookie.ttl())?,
        }
        Ok(Some(json))
    }

    fn merge(
        &self,
        id: Id,
        changes: &Changes,
        _full: &Record,
        base: Option<&str>,
        life: &Lifetime,
        max: usize,
    ) -> StoreResult<Merged> {
        let id = id.as_str();
        // This request's values (no JSON form) are not what Redis holds: no address.
        let changes =
            JsonChanges::of(changes).map_err(|e| StoreError::new("RedisStore", "merge", e))?;
        let bad = |e: String| self.error_at("merge", e);
        let cookie = Cookie::of(life);
        let mut base = match base {
            Some(b) => b.as_bytes().to_vec(),
            None => match self.get_raw(id.as_bytes())? {
                Some(raw) => raw,
                None => return Ok(Merged::Gone),
            },
        };
        let key = self.key(id.as_bytes());
        for attempt in 0..MERGE_ATTEMPTS {
            if attempt > 0 {
                // Lost the race to another writer (another process): wait a random while, so
                // writers that keep colliding spread out instead of retrying in lockstep until
                // one gives up (this store blocks its process anyway); then merge onto what is
                // stored by then, not onto the value the lost race returned, which the others
                // have most likely overwritten during the wait.
                std::thread::sleep(format::merge_backoff(attempt));
                base = match self.get_raw(id.as_bytes())? {
                    Some(raw) => raw,
                    None => return Ok(Merged::Gone),
                };
            }
            // An id `regenerate` retired is never written again (its stale grace runs out).
            let Some(applied) = changes
                .apply_kept(&base, &cookie, life.assumed, max)
                .map_err(bad)?
            else {
                return Ok(Merged::Gone);
            };
            let (json, owner) = (applied.json, applied.owner);
            let sha = format::sha1_hex(&base);
            // The merged session's owner (a login or logout in this merge, or one another
            // request wrote) is listed by the same script that writes it.
            let index = owner.map(|o| format::index_key(&self.inner.index_prefix, &o));
            let now = clock::now_ms();
            let reply: redis::Value = self.with("merge", |c| {
                let mut call = self.inner.cas.key(&key);
                call.arg(&sha).arg(&json).arg(applied.ttl);
                if let Some(index) = &index {
                    call.key(index)
                        .arg(id.as_bytes())
                        .arg(now)
                        .arg(&self.inner.prefix);
                }
                call.invoke(c)
            })?;
            match reply {
                redis::Value::Int(1) => return Ok(Merged::Written(Some(json), applied.kept)),
                redis::Value::Int(0) => return Ok(Merged::Gone),
                // Lost: the loop reads the session again after its wait.
                redis::Value::Int(2) => {}
                other => return Err(bad(format!("unexpected reply {other:?}"))),
            }
        }
        Err(bad(format!(
            "{MERGE_ATTEMPTS} concurrent writes to the session won every race; giving up (this request's changes are not stored; the client may retry)"
        )))
    }

    fn destroy(&self, id: Id) -> StoreResult<bool> {
        self.destroy_id(id.as_str().as_bytes())
    }

    fn touch(&self, id: Id, life: &Lifetime) -> StoreResult<Touched> {
        let id = id.as_str().as_bytes();
        let own_ttl = Cookie::of(life).ttl();
        let mut ttl = own_ttl;
        let Some(&assumed) = life.assumed else {
            return Ok(touched(self.touch_id(id, ttl, None)?, None));
        };
        // The TTL of the lifetime the touch assumed, while Redis holds that one; where another
        // request changed it since this one loaded the session, the lifetime it keeps.
        let (mut assumes, mut kept) = (assumed, None);
        for attempt in 1..=format::TOUCH_ATTEMPTS {
            let check = format::touch_assumes(&assumes);
            let last = attempt == format::TOUCH_ATTEMPTS;
            match self.touch_id(id, ttl, (!last).then_some(&check))? {
                Ok(alive) => return Ok(touched(Ok(alive), kept)),
                Err((own, created)) => {
                    kept = assumed.kept(own, created, clock::now_ms());
                    ttl = kept.map_or(own_ttl, |k| Cookie::of(&life.with(k)).ttl());
                    assumes = assumed.about(own, created);
                }
            }
        }
        Ok(touched(Ok(true), kept))
    }

    fn sessions_of(&self, owner: &str) -> StoreResult<Vec<Listed>> {
        self.sessions_of_owner(owner)
    }

    fn destroy_all(&self, owner: &str, except: Option<&str>) -> StoreResult<usize> {
        self.destroy_owner(owner, except)
    }
}

/// A touch's answer as the engine takes it.
fn touched(alive: Result<bool, format::Found>, kept: Option<Term>) -> Touched {
    match alive {
        Ok(true) => Touched::Alive(kept),
        _ => Touched::Gone,
    }
}

/// `SESSIONS_OF`'s reply, `id, lastSeen, created` per session, as a list (in the script's
/// order, most recently seen first).
fn listed(reply: Vec<redis::Value>) -> Result<Vec<Listed>, String> {
    use redis::Value;
    let int = |v: &Value| match v {
        Value::Int(n) => Some(*n),
        _ => None,
    };
    let mut out = Vec::with_capacity(reply.len() / 3);
    for row in reply.chunks(3) {
        match row {
            [Value::BulkString(id), seen, created] => out.push(Listed {
                id: id.clone(),
                last_seen_ms: int(seen).ok_or("unexpected reply to the sessionsOf script")?,
                created_ms: int(created),
            }),
            _ => return Err("unexpected reply to the sessionsOf script".into()),
        }
    }
    Listed::order(&mut out);
    Ok(out)
}

/// A TTL argument from Lua for the standalone methods; nil means a day.
fn ttl_arg(v: LuaValue) -> LuaResult<Ttl> {
    crate::store::ttl_arg("RedisStore", v)
}

/// An id argument from Lua for the standalone methods: a string (a number is taken as Lua
/// would print it), its bytes as they are.
fn id_arg(lua: &Lua, v: LuaValue) -> LuaResult<LuaString> {
    let what = codec::a_type(&v);
    lua.coerce_string(v)?.ok_or_else(|| {
        LuaError::runtime(format!(
            "honeymoon_session: RedisStore ids must be strings of 1 to 4096 bytes, got {what}"
        ))
    })
}

impl LuaUserData for RedisStore {
    fn add_methods<M: LuaUserDataMethods<Self>>(m: &mut M) {
        m.add_method("get", |lua, s, (id, max): (LuaValue, Option<f64>)| {
            match s.get_raw(&id_arg(lua, id)?.as_bytes())? {
                // Without a maxSize (called directly), the default bounds the parse.
                Some(raw) => match format::load_record(&raw, format::read_limit(max))
                    .map_err(|e| s.error_at("get", e))?
                {
                    Some(record) => record.data_table(lua).map(LuaValue::Table),
                    None => Ok(LuaValue::Nil),
                },
                None => Ok(LuaValue::Nil),
            }
        });
        m.add_method(
            "set",
            |lua, s, (id, data, ttl): (LuaValue, LuaValue, LuaValue)| {
                let Ok(id) = id_arg(lua, id)?.to_str().map(|id| id.to_string()) else {
                    return Err(LuaError::runtime(
                        "honeymoon_session: RedisStore ids must be UTF-8, got a string that is not",
                    ));
                };
                let life = Lifetime::standalone(ttl_arg(ttl)?);
                let record = Record::from_table(lua, &crate::store::data_arg("RedisStore", data)?)?;
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
        m.add_method("destroy", |lua, s, id: LuaValue| {
            Ok(s.destroy_id(&id_arg(lua, id)?.as_bytes())?)
        });
        m.add_method("touch", |lua, s, (id, ttl): (LuaValue, LuaValue)| {
            let id = id_arg(lua, id)?;
            Ok(s.touch_id(&id.as_bytes(), ttl_arg(ttl)?.seconds(), None)? == Ok(true))
        });
        m.add_method("exists", |lua, s, id: LuaValue| {
            Ok(s.exists(&id_arg(lua, id)?.as_bytes())?)
        });
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
        m.add_method("sessionsOf", |lua, s, owner: LuaValue| {
            let owner = crate::store::owner_arg("RedisStore", "sessionsOf", &owner)?;
            crate::store::listed_table(lua, Store::sessions_of(s, &owner)?)
        });
        m.add_method(
            "destroyAll",
            |_, s, (owner, except): (LuaValue, LuaValue)| {
                let owner = crate::store::owner_arg("RedisStore", "destroyAll", &owner)?;
                let except = crate::store::except_arg("RedisStore", &except)?;
                Ok(Store::destroy_all(s, &owner, except.as_deref())?)
            },
        );
    }
}

/// Whether a reply says the server is a replica now (a failover demoted it): `READONLY`, also
/// from inside a script (Redis 7 passes the code on).
fn read_only(e: &RedisError) -> bool {
    e.code() == Some("READONLY")
}

/// Whether the connection failed under the command (closed, reset, refused): a kept one the
/// server closed is worth one new connection. A timeout is not among them: the server may
/// still be working on the command, and it is neither retried nor kept.
fn broken(e: &RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// One command of a client's RESP request (`*N` and N bulk strings), as its words.
    pub(super) fn command(r: &mut impl BufRead) -> Option<Vec<String>> {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let n: usize = line.trim().strip_prefix('*')?.parse().ok()?;
        let mut words = Vec::new();
        for _ in 0..n {
            let (mut len, mut word) = (String::new(), String::new());
            r.read_line(&mut len).ok()?;
            r.read_line(&mut word).ok()?;
            words.push(word.trim_end().to_string());
        }
        Some(words)
    }

    /// A fake Redis that answers its GETs with `replies`, in order, and anything else with
    /// `+OK`; returns the store and a handle that yields how many connections it accepted.
    fn fake(replies: &'static [&'static [u8]]) -> (RedisStore, std::thread::JoinHandle<usize>) {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut gets, mut connections) = (0, 0);
            for stream in server.incoming() {
                connections += 1;
                let mut stream = stream.unwrap();
                let mut r = BufReader::new(stream.try_clone().unwrap());
                while let Some(words) = command(&mut r) {
                    let reply: &[u8] = match words.first().map(String::as_str) {
                        Some("GET") => {
                            gets += 1;
                            replies[gets - 1]
                        }
                        _ => b"+OK\r\n",
                    };
                    if stream.write_all(reply).is_err() || gets == replies.len() {
                        return connections;
                    }
                }
            }
            connections
        });
        let lua = Lua::new();
        let opts = lua.create_table().unwrap();
        opts.set("url", format!("redis://127.0.0.1:{port}/0"))
            .unwrap();
        (RedisStore::from_options(&lua, Some(opts)).unwrap(), handle)
    }

    /// A reply that cannot be parsed leaves the rest of itself on the connection: the next
    /// command must not read it as its own answer.
    #[test]
    fn a_connection_that_sent_an_unparsable_reply_is_not_reused() {
        // Unparsable, then a stray nil the next GET must not read.
        let (store, server) = fake(&[b"?garbage\r\n$-1\r\n", b"$1\r\nx\r\n"]);
        assert!(store.get_raw(b"a").is_err(), "the unparsable reply");
        assert_eq!(store.get_raw(b"a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(server.join().unwrap(), 2);
    }

    /// An error reply is read whole, also one the crate has no name for: the connection stays.
    /// A GET answered with an array (a proxy's, a broken server's) is an error, as in the
    /// event-loop store: the crate read an array of small integers as the bytes of a session.
    #[test]
    fn a_get_answered_with_an_array_is_an_error_not_a_session() {
        let (store, server) = fake(&[b"*2\r\n:123\r\n:125\r\n", b"$2\r\n{}\r\n"]);
        let err = store.get_raw(b"a").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                format!(
                    "honeymoon_session: RedisStore:get failed: redis answered GET with an array, not a string or nil ({})",
                    store.place_text()
                )
                .as_str()
            )
        );
        assert_eq!(store.get_raw(b"a").unwrap(), Some(b"{}".to_vec()));
        assert_eq!(server.join().unwrap(), 1);
    }

    #[test]
    fn a_connection_that_sent_an_error_reply_is_kept() {
        let (store, server) = fake(&[b"-WRONGTYPE not a string\r\n", b"$1\r\nx\r\n"]);
        assert!(store.get_raw(b"a").is_err(), "the error reply");
        assert_eq!(store.get_raw(b"a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(server.join().unwrap(), 1);
    }

    /// READONLY: the server was demoted to a replica (a failover), and only a new connection
    /// reaches the one the host name names now. (A replica refuses writes; the fake refuses a
    /// GET, which goes through the same path.)
    const READ_ONLY: &[u8] = b"-READONLY You can't write against a read only replica.\r\n";

    #[test]
    fn a_kept_connection_answered_read_only_is_replaced_and_the_command_sent_again() {
        let (store, server) = fake(&[b"$1\r\na\r\n", READ_ONLY, b"$1\r\nx\r\n"]);
        assert_eq!(store.get_raw(b"a").unwrap(), Some(b"a".to_vec()));
        assert_eq!(store.get_raw(b"a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(server.join().unwrap(), 2);
    }

    #[test]
    fn a_new_connection_answered_read_only_fails_the_call_and_is_not_kept() {
        let (store, server) = fake(&[READ_ONLY, b"$1\r\nx\r\n"]);
        let err = store
            .get_raw(b"a")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("read only replica"), "{err}");
        assert_eq!(store.get_raw(b"a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(server.join().unwrap(), 2);
    }
}

#[cfg(test)]
mod connect_tests {
    use super::*;
    use std::io::BufReader;
    use std::net::TcpListener;

    /// A server that accepts one connection and answers nothing: returns the store (whose url is
    /// `url` with the server's port put in for `PORT`) and a handle yielding the commands the
    /// client sent before it gave up and closed the connection.
    fn silent(url: &str) -> (RedisStore, std::thread::JoinHandle<Vec<String>>) {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (stream, _) = server.accept().unwrap();
            let mut r = BufReader::new(stream);
            let mut names = Vec::new();
            while let Some(words) = super::tests::command(&mut r) {
                names.push(words.join(" "));
            }
            // Bytes that are not commands (a TLS handshake): held, unanswered, until EOF.
            let _ = std::io::copy(&mut r, &mut std::io::sink());
            names
        });
        let lua = Lua::new();
        let opts = lua.create_table().unwrap();
        opts.set("url", url.replace("PORT", &port.to_string()))
            .unwrap();
        opts.set("connectTimeout", 100).unwrap();
        opts.set("commandTimeout", 1500).unwrap();
        (RedisStore::from_options(&lua, Some(opts)).unwrap(), handle)
    }

    /// The TLS handshake is part of connecting: a server that accepts but never answers it
    /// fails within connectTimeout, as "timed out after 100 ms", not after commandTimeout at
    /// the first command (rustls shakes hands at the first write, which for a url without a
    /// password or database was the first command's).
    #[test]
    fn a_tls_handshake_nobody_answers_takes_connect_timeout() {
        let (store, server) = silent("rediss://127.0.0.1:PORT/0");
        let err = store.get_raw(b"a").unwrap_err().to_string();
        assert!(
            err.starts_with("honeymoon_session: RedisStore:get failed: timed out after 100 ms"),
            "{err}"
        );
        drop(store);
        server.join().unwrap();
    }

    /// SCAN may return a key more than once (Redis documents it: the table shrank between two
    /// calls); all and length count each session once, as connect-redis does.
    #[test]
    fn a_key_scan_returns_twice_is_one_session() {
        use std::io::Write;
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = server.accept().unwrap();
            let mut r = BufReader::new(stream.try_clone().unwrap());
            while let Some(words) = super::tests::command(&mut r) {
                let reply: &[u8] = match words.get(1).map(String::as_str) {
                    Some("0") => b"*2\r\n$1\r\n7\r\n*2\r\n$6\r\nsess:a\r\n$6\r\nsess:b\r\n",
                    _ => b"*2\r\n$1\r\n0\r\n*2\r\n$6\r\nsess:b\r\n$6\r\nsess:c\r\n",
                };
                stream.write_all(reply).unwrap();
            }
        });
        let lua = Lua::new();
        let opts = lua.create_table().unwrap();
        opts.set("url", format!("redis://127.0.0.1:{port}/0"))
            .unwrap();
        let store = RedisStore::from_options(&lua, Some(opts)).unwrap();
        let ids = store.ids("all").unwrap();
        assert_eq!(ids, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        drop(store);
        handle.join().unwrap();
    }

    /// Errors name an IPv6 address as the url does, in brackets, as the event-loop store does.
    #[test]
    fn an_ipv6_address_is_named_in_brackets() {
        let lua = Lua::new();
        let opts = lua.create_table().unwrap();
        opts.set("url", "redis://[::1]:1/2").unwrap();
        let store = RedisStore::from_options(&lua, Some(opts)).unwrap();
        assert_eq!(store.place_text(), "redis at [::1]:1/2");
        let err = store.get_raw(b"a").unwrap_err().to_string();
        assert!(err.ends_with("(redis at [::1]:1/2)"), "{err}");
        let opts = lua.create_table().unwrap();
        opts.set("url", "redis://127.0.0.1:1/2").unwrap();
        let store = RedisStore::from_options(&lua, Some(opts)).unwrap();
        assert_eq!(store.place_text(), "redis at 127.0.0.1:1/2");
    }

    /// connectTimeout bounds the whole connection setup. The redis crate pipelines its setup
    /// (AUTH, SELECT, two CLIENT SETINFO) and waits the whole timeout for each reply in turn,
    /// so a server that accepts but answers nothing cost four timeouts, reported as one. The
    /// setup now waits for one reply at a time, each within what is left of the one deadline:
    /// such a server sees only the first command before the client gives up.
    #[test]
    fn a_server_that_answers_nothing_costs_one_connect_timeout_not_one_per_setup_command() {
        let (store, server) = silent("redis://:pw@127.0.0.1:PORT/3");
        let err = store.get_raw(b"a").unwrap_err().to_string();
        assert!(
            err.starts_with("honeymoon_session: RedisStore:get failed: timed out after 100 ms"),
            "{err}"
        );
        drop(store);
        assert_eq!(server.join().unwrap(), vec!["AUTH pw".to_string()]);
    }
}

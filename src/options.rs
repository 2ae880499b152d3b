//! The options table given to `session(opts)`: every default and every validation error.
//! Bad options fail here, at setup, never at request time.

use crate::codec::DEFAULT_MAX_SIZE;
use crate::cookie::{Attributes, Priority, SameSite, Secure, Signer};
use crate::id;
use mlua::prelude::*;
use std::sync::OnceLock;

pub struct Options {
    pub name: String,
    /// The secrets: the first signs; every one verifies (rotation).
    pub signer: Signer,
    /// Store lifetime in seconds, and the cookie's unless cookie.maxAge is set.
    pub ttl: u64,
    pub rolling: bool,
    pub resave: bool,
    pub save_uninitialized: bool,
    pub cookie: Attributes,
    /// The largest session, in bytes of its stored form (the record), checked before a
    /// buffer grows past it: when a commit encodes the session and when stored bytes are read.
    pub max_size: usize,
    /// Seconds after its creation when a session ends, whatever `rolling` does.
    pub absolute_timeout: Option<u64>,
    /// Seconds an id retired by `regenerate` stays readable with its old data (0: deleted at
    /// once).
    pub stale_grace: u64,
    /// The data field that names a session's owner, for `sessionsOf` and `destroyAll`.
    pub index: Option<String>,
}

/// The default `staleGrace`: parallel requests a browser sent with the pre-login cookie have
/// this long to finish without logging the user out.
pub const DEFAULT_STALE_GRACE: u64 = 10;
/// The cookie name when the options give none.
pub const DEFAULT_NAME: &str = "honeymoon.sid";

/// The largest `maxSize` (LuaJIT's strings stop at 2 GiB).
const MAX_MAX_SIZE: f64 = 2_147_483_647.0;

const TOP: &[&str] = &[
    "name",
    "secret",
    "ttl",
    "rolling",
    "resave",
    "saveUninitialized",
    "store",
    "cookie",
    "maxSize",
    "absoluteTimeout",
    "staleGrace",
    "index",
];
const COOKIE: &[&str] = &[
    "path",
    "httpOnly",
    "secure",
    "sameSite",
    "maxAge",
    "domain",
    "partitioned",
    "priority",
];

fn err(msg: String) -> LuaError {
    LuaError::runtime(format!("honeymoon_session: {msg}"))
}

/// RFC 6265bis: a user agent ignores an attribute value longer than this.
const MAX_ATTRIBUTE: usize = 1024;

/// Text quoted for a message, cut short when long.
fn shown(s: &str) -> String {
    if s.len() <= 80 {
        return format!("{s:?}");
    }
    let mut end = 60;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &s[..end], s.len())
}

/// A value as the module's messages show what was given: a string quoted and escaped (`shown`),
/// a number as its text, a boolean as `true`/`false`, anything else as its type. Stores written
/// in Lua show values so too (`hs._shown`), so every message has one style.
pub(crate) fn describe(v: &LuaValue) -> String {
    match v {
        LuaValue::String(s) => shown(&s.to_string_lossy()),
        LuaValue::Boolean(b) => b.to_string(),
        other => crate::codec::number_or_type(other),
    }
}

/// Options are read raw, so a table that inherits fields through `__index` (a read-only
/// proxy, defaults behind a metatable) would silently become the defaults: refuse it instead.
/// Any other metatable hides nothing (a JSON array's marker on a `secret` list, say).
fn plain(t: &LuaTable, label: &str) -> LuaResult<()> {
    match not_plain(t, label)? {
        Some(msg) => Err(err(msg)),
        None => Ok(()),
    }
}

/// The refusal `plain` makes, as text after `honeymoon_session: ` (`label must be a plain
/// table, …`), or None for a plain table: the stores read their options raw too, and say it
/// in their own prefix (`RedisStore options must be …`).
pub(crate) fn not_plain(t: &LuaTable, label: &str) -> LuaResult<Option<String>> {
    let inherits = match t.metatable() {
        Some(mt) => !matches!(mt.raw_get::<LuaValue>("__index")?, LuaValue::Nil),
        None => false,
    };
    Ok(inherits.then(|| {
        format!(
            "{label} must be a plain table, got a table whose metatable has __index (its inherited fields would be ignored); copy the values into a plain table"
        )
    }))
}

/// An option's key for a message, under `prefix` (`"cookie."`, or `""` at the top): a string
/// quoted and escaped as values are (`"cookie.max age"`, `"sec\nret"`), anything else as an
/// index (`[1]`, `cookie[true]`), so a key with spaces or control bytes is readable.
pub(crate) fn option_key(prefix: &str, key: &LuaValue) -> String {
    match key {
        LuaValue::String(s) => shown(&format!("{prefix}{}", s.to_string_lossy())),
        other => format!("{}[{}]", prefix.trim_end_matches('.'), describe(other)),
    }
}

/// Refuses keys that are not options: a typo must not silently become a default.
fn check_known(t: &LuaTable, known: &[&str], prefix: &str) -> LuaResult<()> {
    for pair in t.pairs::<LuaValue, LuaValue>() {
        let (k, _) = pair?;
        let is_known = match &k {
            LuaValue::String(s) => s.to_str().is_ok_and(|s| known.contains(&&*s)),
            _ => false,
        };
        if !is_known {
            return Err(err(format!(
                "unknown option {}; known options are {}",
                option_key(prefix, &k),
                known
                    .iter()
                    .map(|k| format!("{prefix}{k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

fn boolean(t: &LuaTable, key: &str, label: &str, default: bool) -> LuaResult<bool> {
    match t.raw_get::<LuaValue>(key)? {
        LuaValue::Nil => Ok(default),
        LuaValue::Boolean(b) => Ok(b),
        other => Err(err(format!(
            "{label} must be true or false, got {}",
            describe(&other)
        ))),
    }
}

/// A whole number of seconds from `min` up to ~100 years (past that Expires dates and store
/// TTLs stop making sense).
fn whole_seconds(v: &LuaValue, min: u64) -> Option<u64> {
    let n = match v {
        LuaValue::Integer(i) => *i as f64,
        LuaValue::Number(n) => *n,
        _ => return None,
    };
    (n.fract() == 0.0 && (min as f64..=3_153_600_000.0).contains(&n)).then_some(n as u64)
}

/// Whole seconds from 1 to 100 years; `also` names what else the option accepts.
fn seconds(t: &LuaTable, key: &str, label: &str, also: &str) -> LuaResult<Option<u64>> {
    match t.raw_get::<LuaValue>(key)? {
        LuaValue::Nil => Ok(None),
        v => whole_seconds(&v, 1).map(Some).ok_or_else(|| {
            err(format!(
                "{label} must be a whole number of seconds from 1 to 3153600000{also}, got {}",
                describe(&v)
            ))
        }),
    }
}

/// Text that goes into a Set-Cookie attribute: no separators or control characters.
fn attribute_text(t: &LuaTable, key: &str, label: &str) -> LuaResult<Option<String>> {
    match t.raw_get::<LuaValue>(key)? {
        LuaValue::Nil => Ok(None),
        LuaValue::String(s) => {
            let s = s.to_string_lossy();
            if s.is_empty()
                || s.len() > MAX_ATTRIBUTE
                || s.bytes().any(|b| {
                    b == b';' || b == b',' || b.is_ascii_control() || b == b' ' || b >= 0x7f
                })
            {
                return Err(err(format!(
                    "{label} must be non-empty ASCII text of at most {MAX_ATTRIBUTE} bytes without spaces, ';', ',' or control characters, got {}",
                    shown(&s)
                )));
            }
            Ok(Some(s))
        }
        other => Err(err(format!(
            "{label} must be a string, got {}",
            describe(&other)
        ))),
    }
}

/// A host name (an optional leading dot, then letter-digit-hyphen labels), as Node's cookie
/// module checks it: a browser drops every cookie whose Domain its host does not match, so
/// `example.com:8080` or `https://example.com` would silently lose every session.
fn domain(cookie: &LuaTable) -> LuaResult<Option<String>> {
    let Some(d) = attribute_text(cookie, "domain", "cookie.domain")? else {
        return Ok(None);
    };
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if d.strip_prefix('.').unwrap_or(&d).split('.').all(label) {
        return Ok(Some(d));
    }
    Err(err(format!(
        "cookie.domain must be a host name like \"example.com\" or \".example.com\" (no scheme, port or path), got {}",
        shown(&d)
    )))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ATTRIBUTE
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The secret used when none is given: one per process, so every middleware in it agrees.
fn process_secret() -> LuaResult<Vec<u8>> {
    static SECRET: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    let secret = SECRET.get_or_init(|| {
        crate::warn::warn(
            "honeymoon_session: no secret given; signing with a random one for this process, so sessions will not survive a restart",
        );
        let mut s = vec![0u8; 32];
        id::os_random(&mut s).map(|_| s)
    });
    secret.clone().map_err(LuaError::runtime)
}

/// What a refused secret was, by its kind alone: a number or a boolean given as a secret is
/// still secret material, and this message ends up in logs.
fn secret_kind(v: &LuaValue) -> &'static str {
    match v {
        LuaValue::String(_) => "an empty string",
        other => crate::codec::a_type(other),
    }
}

fn secrets(v: LuaValue) -> LuaResult<Vec<Vec<u8>>> {
    let bad = |what: String| {
        err(format!(
            "secret must be a non-empty string or a list of them, got {what}"
        ))
    };
    match v {
        LuaValue::Nil => Ok(vec![process_secret()?]),
        LuaValue::String(s) if !s.as_bytes().is_empty() => Ok(vec![s.as_bytes().to_vec()]),
        LuaValue::Table(t) => {
            plain(&t, "secret")?;
            let len = t.raw_len();
            if len == 0 || t.pairs::<LuaValue, LuaValue>().count() != len {
                return Err(bad("a table that is not a non-empty list".into()));
            }
            let mut out = Vec::with_capacity(len);
            for i in 1..=len {
                match t.raw_get::<LuaValue>(i)? {
                    LuaValue::String(s) if !s.as_bytes().is_empty() => {
                        out.push(s.as_bytes().to_vec())
                    }
                    other => {
                        return Err(bad(format!("{} at secret[{i}]", secret_kind(&other))));
                    }
                }
            }
            Ok(out)
        }
        other => Err(bad(secret_kind(&other).to_string())),
    }
}

fn secure_text(secure: Secure) -> &'static str {
    match secure {
        Secure::Always => "true",
        Secure::Never => "false",
        Secure::Auto => "\"auto\"",
    }
}

fn auto_note(secure: Secure) -> &'static str {
    if secure == Secure::Auto {
        "; \"auto\" is not enough, it leaves Secure off over plain HTTP"
    } else {
        ""
    }
}

/// A cookie name prefix browsers enforce, and what it needs.
struct Prefix {
    prefix: &'static str,
    http_only: bool,
    /// `Path=/` and no Domain, as `__Host-` needs.
    host: bool,
    needs: &'static str,
}

/// The cookie name prefixes browsers enforce (RFC 6265bis, matched in any case, as browsers
/// match them): `__Secure-` needs Secure; `__Host-` needs Secure, `Path=/` and no Domain;
/// `__Http-` needs Secure and HttpOnly; `__Host-Http-` all four. The longer of two prefixes
/// that start alike comes first (`__Host-Http-` is also a `__Host-` name).
const PREFIXES: [Prefix; 4] = [
    Prefix {
        prefix: "__Host-Http-",
        http_only: true,
        host: true,
        needs: "cookie.secure = true, cookie.httpOnly = true, cookie.path = \"/\" and no cookie.domain",
    },
    Prefix {
        prefix: "__Host-",
        http_only: false,
        host: true,
        needs: "cookie.secure = true, cookie.path = \"/\" and no cookie.domain",
    },
    Prefix {
        prefix: "__Http-",
        http_only: true,
        host: false,
        needs: "cookie.secure = true and cookie.httpOnly = true",
    },
    Prefix {
        prefix: "__Secure-",
        http_only: false,
        host: false,
        needs: "cookie.secure = true",
    },
];

/// A browser refuses a prefixed cookie whose attributes break the prefix's rules outright, so
/// such options are refused here, at setup.
fn check_prefix(name: &str, a: &Attributes) -> LuaResult<()> {
    let has = |prefix: &str| {
        name.as_bytes()
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    let Some(rule) = PREFIXES.iter().find(|p| has(p.prefix)) else {
        return Ok(());
    };
    let got = if a.secure != Secure::Always {
        format!(
            "cookie.secure = {}{}",
            secure_text(a.secure),
            auto_note(a.secure)
        )
    } else if rule.http_only && !a.http_only {
        "cookie.httpOnly = false".to_string()
    } else if rule.host && a.path != "/" {
        format!("cookie.path = {:?}", a.path)
    } else if let (true, Some(d)) = (rule.host, &a.domain) {
        format!("cookie.domain = {d:?}")
    } else {
        return Ok(());
    };
    Err(err(format!(
        "name {name:?} needs {} (browsers refuse {} cookies otherwise), got {got}",
        rule.needs, rule.prefix
    )))
}

impl Options {
    /// Parses and validates `opts`; returns the options and the `store` value, if given.
    pub fn parse(opts: Option<LuaTable>, lua: &Lua) -> LuaResult<(Options, LuaValue)> {
        let opts = match opts {
            Some(t) => t,
            None => lua.create_table()?,
        };
        plain(&opts, "the options")?;
        check_known(&opts, TOP, "")?;

        let name = match opts.raw_get::<LuaValue>("name")? {
            LuaValue::Nil => DEFAULT_NAME.to_string(),
            LuaValue::String(s) if is_token(&s.to_string_lossy()) => s.to_string_lossy(),
            other => {
                return Err(err(format!(
                    "name must be a cookie name of at most {MAX_ATTRIBUTE} characters (letters, digits and !#$%&'*+-.^_`|~), got {}",
                    describe(&other)
                )));
            }
        };
        let signer = Signer::new(&secrets(opts.raw_get("secret")?)?);
        let ttl = seconds(&opts, "ttl", "ttl", "")?.unwrap_or(86_400);

        let cookie = match opts.raw_get::<LuaValue>("cookie")? {
            LuaValue::Nil => lua.create_table()?,
            LuaValue::Table(t) => t,
            other => {
                return Err(err(format!(
                    "cookie must be a table, got {}",
                    describe(&other)
                )));
            }
        };
        plain(&cookie, "cookie")?;
        check_known(&cookie, COOKIE, "cookie.")?;
        let secure = match cookie.raw_get::<LuaValue>("secure")? {
            LuaValue::Nil | LuaValue::Boolean(false) => Secure::Never,
            LuaValue::Boolean(true) => Secure::Always,
            LuaValue::String(s) if s.as_bytes() == b"auto" => Secure::Auto,
            other => {
                return Err(err(format!(
                    "cookie.secure must be true, false or \"auto\", got {}",
                    describe(&other)
                )));
            }
        };
        let same_site = match cookie.raw_get::<LuaValue>("sameSite")? {
            LuaValue::Nil => Some(SameSite::Lax),
            LuaValue::Boolean(false) => None,
            LuaValue::String(s) if s.as_bytes() == b"Strict" => Some(SameSite::Strict),
            LuaValue::String(s) if s.as_bytes() == b"Lax" => Some(SameSite::Lax),
            LuaValue::String(s) if s.as_bytes() == b"None" => Some(SameSite::None),
            other => {
                return Err(err(format!(
                    "cookie.sameSite must be \"Strict\", \"Lax\", \"None\" or false, got {}",
                    describe(&other)
                )));
            }
        };
        if same_site == Some(SameSite::None) && secure != Secure::Always {
            return Err(err(format!(
                "cookie.sameSite = \"None\" needs cookie.secure = true, got cookie.secure = {} (browsers drop SameSite=None cookies that are not Secure{})",
                secure_text(secure),
                auto_note(secure)
            )));
        }
        let path = attribute_text(&cookie, "path", "cookie.path")?.unwrap_or_else(|| "/".into());
        if !path.starts_with('/') {
            return Err(err(format!(
                "cookie.path must start with \"/\", got {path:?}"
            )));
        }
        let partitioned = boolean(&cookie, "partitioned", "cookie.partitioned", false)?;
        if partitioned && secure != Secure::Always {
            return Err(err(format!(
                "cookie.partitioned = true needs cookie.secure = true, got cookie.secure = {} (browsers drop Partitioned cookies that are not Secure{})",
                secure_text(secure),
                auto_note(secure)
            )));
        }
        let priority = match cookie.raw_get::<LuaValue>("priority")? {
            LuaValue::Nil | LuaValue::Boolean(false) => None,
            LuaValue::String(s) if Priority::parse(&s.as_bytes()).is_some() => {
                Priority::parse(&s.as_bytes())
            }
            other => {
                return Err(err(format!(
                    "cookie.priority must be \"Low\", \"Medium\", \"High\" (in any case) or false, got {}",
                    describe(&other)
                )));
            }
        };
        // false: a browser-session cookie (no Max-Age, no Expires); the store keeps ttl.
        let max_age = match cookie.raw_get::<LuaValue>("maxAge")? {
            LuaValue::Boolean(false) => None,
            _ => Some(
                seconds(
                    &cookie,
                    "maxAge",
                    "cookie.maxAge",
                    ", or false for a browser-session cookie",
                )?
                .unwrap_or(ttl),
            ),
        };
        let attributes = Attributes {
            path,
            domain: domain(&cookie)?,
            http_only: boolean(&cookie, "httpOnly", "cookie.httpOnly", true)?,
            secure,
            same_site,
            partitioned,
            priority,
            max_age,
        };
        check_prefix(&name, &attributes)?;

        let max_size = match opts.raw_get::<LuaValue>("maxSize")? {
            LuaValue::Nil => DEFAULT_MAX_SIZE,
            v => {
                let n = match &v {
                    LuaValue::Integer(i) => *i as f64,
                    LuaValue::Number(n) => *n,
                    _ => f64::NAN,
                };
                if n.fract() != 0.0 || !(1.0..=MAX_MAX_SIZE).contains(&n) {
                    return Err(err(format!(
                        "maxSize must be a whole number of bytes from 1 to 2147483647, got {}",
                        describe(&v)
                    )));
                }
                n as usize
            }
        };

        let stale_grace = match opts.raw_get::<LuaValue>("staleGrace")? {
            LuaValue::Nil => DEFAULT_STALE_GRACE,
            v => whole_seconds(&v, 0).ok_or_else(|| {
                err(format!(
                    "staleGrace must be a whole number of seconds from 0 to 3153600000, got {}",
                    describe(&v)
                ))
            })?,
        };
        let index = match opts.raw_get::<LuaValue>("index")? {
            LuaValue::Nil => None,
            LuaValue::String(s) => match s.to_str() {
                Ok(name)
                    if !name.is_empty()
                        && crate::slot::slot(name.as_bytes()) == crate::codec::Slot::Data =>
                {
                    Some(name.to_string())
                }
                _ => {
                    return Err(err(format!(
                        "index must name a session data field (not a method name, \"cookie\", \"__flash\", a \"__flash:\" key or \"__meta\"), got {}",
                        describe(&LuaValue::String(s))
                    )));
                }
            },
            other => {
                return Err(err(format!(
                    "index must be the name of a session field (a string), got {}",
                    describe(&other)
                )));
            }
        };

        let store = opts.raw_get::<LuaValue>("store")?;
        Ok((
            Options {
                name,
                signer,
                ttl,
                rolling: boolean(&opts, "rolling", "rolling", false)?,
                resave: boolean(&opts, "resave", "resave", false)?,
                save_uninitialized: boolean(
                    &opts,
                    "saveUninitialized",
                    "saveUninitialized",
                    false,
                )?,
                cookie: attributes,
                max_size,
                absolute_timeout: seconds(&opts, "absoluteTimeout", "absoluteTimeout", "")?,
                stale_grace,
                index,
            },
            store,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Options, String> {
        let lua = Lua::new();
        let t: LuaTable = lua.load(src).eval().map_err(|e| e.to_string())?;
        Options::parse(Some(t), &lua)
            .map(|(o, _)| o)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_the_spec() {
        let o = parse("return { secret = 'x' }").unwrap();
        assert_eq!(o.name, "honeymoon.sid");
        assert_eq!(o.ttl, 86_400);
        assert!(!o.rolling && !o.resave && !o.save_uninitialized);
        assert_eq!(o.cookie.path, "/");
        assert!(o.cookie.http_only);
        assert_eq!(o.cookie.secure, Secure::Never);
        assert_eq!(o.cookie.same_site, Some(SameSite::Lax));
        assert_eq!(o.cookie.max_age, Some(86_400));
        assert_eq!(o.cookie.domain, None);
        assert!(!o.cookie.partitioned);
        assert_eq!(o.cookie.priority, None);
        assert_eq!(o.max_size, 4 * 1024 * 1024);
        assert_eq!(parse("return { maxSize = 1024 }").unwrap().max_size, 1024);
        assert_eq!(o.absolute_timeout, None);
        assert_eq!(o.stale_grace, 10);
        assert_eq!(o.index, None);
        assert_eq!(parse("return { staleGrace = 0 }").unwrap().stale_grace, 0);
        let o = parse("return { index = 'userId', absoluteTimeout = 60 }").unwrap();
        assert_eq!(
            (o.index.as_deref(), o.absolute_timeout),
            (Some("userId"), Some(60))
        );
    }

    #[test]
    fn new_cookie_attributes() {
        let o = parse("return { cookie = { secure = true, partitioned = true, priority = 'high', maxAge = false } }").unwrap();
        assert!(o.cookie.partitioned);
        assert_eq!(o.cookie.priority, Some(Priority::High));
        assert_eq!(o.cookie.max_age, None);
        assert_eq!(o.ttl, 86_400, "the store keeps its lifetime");
        for (src, want) in [("'Low'", Priority::Low), ("'MEDIUM'", Priority::Medium)] {
            let o = parse(&format!("return {{ cookie = {{ priority = {src} }} }}")).unwrap();
            assert_eq!(o.cookie.priority, Some(want));
        }
        assert_eq!(
            parse("return { cookie = { priority = false } }")
                .unwrap()
                .cookie
                .priority,
            None
        );
        assert_eq!(
            parse("return { ttl = 50, cookie = { maxAge = 7 } }")
                .unwrap()
                .cookie
                .max_age,
            Some(7)
        );
        assert_eq!(
            parse("return { ttl = 50 }").unwrap().cookie.max_age,
            Some(50)
        );
        // The prefixes, when their rules hold.
        assert!(parse("return { name = '__Host-sid', cookie = { secure = true } }").is_ok());
        assert!(parse("return { name = '__Secure-sid', cookie = { secure = true, path = '/a', domain = 'example.com' } }").is_ok());
        for d in [
            "example.com",
            ".example.com",
            "localhost",
            "127.0.0.1",
            "xn--bcher-kva.Example",
        ] {
            let o = parse(&format!("return {{ cookie = {{ domain = '{d}' }} }}"));
            assert_eq!(o.map(|o| o.cookie.domain), Ok(Some(d.to_string())), "{d}");
        }
        // A metatable without __index hides nothing: a secret list decoded from JSON.
        let o = parse("return { secret = setmetatable({ 'new', 'old' }, { __name = 'array' }) }");
        assert!(o.is_ok(), "{:?}", o.err());
        // The HTTP-only prefixes, when their rules hold (httpOnly is on by default).
        assert!(parse("return { name = '__Http-sid', cookie = { secure = true, path = '/a', domain = 'example.com' } }").is_ok());
        assert!(
            parse(
                "return { name = '__Host-Http-sid', cookie = { secure = true, httpOnly = true } }"
            )
            .is_ok()
        );
        // Only a prefix counts: these names merely contain the words.
        assert!(parse("return { name = 'sid__Http-', cookie = { httpOnly = false } }").is_ok());
        assert!(parse("return { name = '__Httpx-sid', cookie = { httpOnly = false } }").is_ok());
        assert!(parse("return { name = 'sid__Host-' }").is_ok());
        assert!(parse("return { name = '__Host' }").is_ok());
        assert!(parse("return { name = '__Hostx-sid' }").is_ok());
    }

    #[test]
    fn a_bad_secret_is_named_by_its_type_never_its_value() {
        // A secret given as a number (a `tonumber(os.getenv(...))`) is still a secret: the
        // message, which ends up in logs, says what kind of value it was, not the value.
        for (src, want) in [
            ("return { secret = 8675309123 }", "got a number"),
            ("return { secret = 31337.5 }", "got a number"),
            ("return { secret = true }", "got a boolean"),
            ("return { secret = '' }", "got an empty string"),
            (
                "return { secret = { 'ok', 8675309123 } }",
                "got a number at secret[2]",
            ),
            (
                "return { secret = { 'ok', 31337.5 } }",
                "got a number at secret[2]",
            ),
            (
                "return { secret = { 'ok', false } }",
                "got a boolean at secret[2]",
            ),
            (
                "return { secret = { 'ok', '' } }",
                "got an empty string at secret[2]",
            ),
        ] {
            let e = parse(src).err().unwrap_or_default();
            assert!(
                e.contains(
                    "honeymoon_session: secret must be a non-empty string or a list of them, "
                ) && e.contains(want),
                "{src}: {e}"
            );
            for leaked in ["8675309123", "31337", "true", "false"] {
                assert!(!e.contains(leaked), "{src}: {e}");
            }
        }
    }

    #[test]
    fn bad_options_name_the_option() {
        let cases = [
            (
                "return { cookie = { sameSite = 'lax ' } }",
                "cookie.sameSite must be \"Strict\", \"Lax\", \"None\" or false, got \"lax \"",
            ),
            (
                "return { cookie = { sameSite = 'None' } }",
                "needs cookie.secure = true",
            ),
            (
                "return { cookie = { sameSite = 'None' } }",
                "cookie.sameSite = \"None\" needs cookie.secure = true, got cookie.secure = false (browsers drop SameSite=None cookies that are not Secure)",
            ),
            (
                "return { cookie = { sameSite = 'None', secure = 'auto' } }",
                "got cookie.secure = \"auto\" (browsers drop SameSite=None cookies that are not Secure; \"auto\" is not enough, it leaves Secure off over plain HTTP)",
            ),
            ("return { ttl = 0 }", "ttl must be a whole number"),
            ("return { ttl = 1.5 }", "ttl must be a whole number"),
            (
                "return { sekret = 'x' }",
                "unknown option \"sekret\"; known options are name, secret, ttl,",
            ),
            (
                "return { cookie = { maxage = 5 } }",
                "unknown option \"cookie.maxage\"; known options are cookie.path, cookie.httpOnly,",
            ),
            // A key is quoted and escaped as values are: spaces and control bytes show.
            (
                "return { ['secret '] = 'x' }",
                "unknown option \"secret \"; known",
            ),
            (
                "return { cookie = { ['path\\n\\27'] = '/' } }",
                "unknown option \"cookie.path\\n\\u{1b}\"; known",
            ),
            (
                "return { ['\\255x'] = 1 }",
                "unknown option \"\u{fffd}x\"; known",
            ),
            // A key that is not a string is shown as an index.
            ("return { 'k' }", "unknown option [1]; known"),
            (
                "return { cookie = { [true] = 1 } }",
                "unknown option cookie[true]; known",
            ),
            ("return { [{}] = 1 }", "unknown option [a table]; known"),
            (
                "return { secret = {} }",
                "secret must be a non-empty string",
            ),
            ("return { secret = { 'a', 5 } }", "a number at secret[2]"),
            ("return { name = 'a b' }", "name must be a cookie name"),
            (
                "return { rolling = 'yes' }",
                "rolling must be true or false",
            ),
            (
                "return { cookie = { path = 'x' } }",
                "cookie.path must start with",
            ),
            (
                "return { cookie = { domain = 'a;b' } }",
                "cookie.domain must be",
            ),
            ("return { maxSize = 0 }", "maxSize must be a whole number"),
            ("return { maxSize = 1.5 }", "maxSize must be a whole number"),
            (
                "return { maxSize = 2^31 }",
                "maxSize must be a whole number",
            ),
            (
                "return { maxSize = '4M' }",
                "maxSize must be a whole number",
            ),
            (
                "return { absoluteTimeout = 0 }",
                "absoluteTimeout must be a whole number of seconds",
            ),
            (
                "return { staleGrace = -1 }",
                "staleGrace must be a whole number of seconds from 0",
            ),
            (
                "return { index = 'save' }",
                "index must name a session data field",
            ),
            (
                "return { index = 5 }",
                "index must be the name of a session field",
            ),
            (
                "return { cookie = { maxAge = true } }",
                "cookie.maxAge must be a whole number of seconds from 1 to 3153600000, or false for a browser-session cookie, got true",
            ),
            (
                "return { cookie = { partitioned = 'yes' } }",
                "cookie.partitioned must be true or false, got \"yes\"",
            ),
            (
                "return { cookie = { partitioned = true } }",
                "cookie.partitioned = true needs cookie.secure = true, got cookie.secure = false",
            ),
            (
                "return { cookie = { partitioned = true, secure = 'auto' } }",
                "got cookie.secure = \"auto\" (browsers drop Partitioned cookies that are not Secure; \"auto\" is not enough",
            ),
            (
                "return { cookie = { priority = 'urgent' } }",
                "cookie.priority must be \"Low\", \"Medium\", \"High\" (in any case) or false, got \"urgent\"",
            ),
            (
                "return { cookie = { priority = 'high ' } }",
                "got \"high \"",
            ),
            (
                "return { cookie = { priority = 1 } }",
                "cookie.priority must be",
            ),
            (
                "return { name = '__Host-sid' }",
                "name \"__Host-sid\" needs cookie.secure = true, cookie.path = \"/\" and no cookie.domain (browsers refuse __Host- cookies otherwise), got cookie.secure = false",
            ),
            (
                "return { name = '__Host-sid', cookie = { secure = 'auto' } }",
                "got cookie.secure = \"auto\"; \"auto\" is not enough",
            ),
            (
                "return { name = '__Host-sid', cookie = { secure = true, path = '/app' } }",
                "got cookie.path = \"/app\"",
            ),
            (
                "return { name = '__host-sid', cookie = { secure = true, domain = 'example.com' } }",
                "name \"__host-sid\" needs cookie.secure = true, cookie.path = \"/\" and no cookie.domain (browsers refuse __Host- cookies otherwise), got cookie.domain = \"example.com\"",
            ),
            (
                "return { name = '__Secure-sid', cookie = { secure = 'auto' } }",
                "name \"__Secure-sid\" needs cookie.secure = true (browsers refuse __Secure- cookies otherwise), got cookie.secure = \"auto\"",
            ),
            (
                "return { name = '__SECURE-sid' }",
                "got cookie.secure = false",
            ),
            // The HTTP-only prefixes: Secure and HttpOnly; __Host-Http- also __Host-'s rules.
            (
                "return { name = '__Http-sid', cookie = { secure = true, httpOnly = false } }",
                "name \"__Http-sid\" needs cookie.secure = true and cookie.httpOnly = true (browsers refuse __Http- cookies otherwise), got cookie.httpOnly = false",
            ),
            (
                "return { name = '__Http-sid' }",
                "name \"__Http-sid\" needs cookie.secure = true and cookie.httpOnly = true (browsers refuse __Http- cookies otherwise), got cookie.secure = false",
            ),
            (
                "return { name = '__http-sid', cookie = { secure = 'auto' } }",
                "got cookie.secure = \"auto\"; \"auto\" is not enough",
            ),
            (
                "return { name = '__Host-Http-sid', cookie = { secure = true, httpOnly = false } }",
                "name \"__Host-Http-sid\" needs cookie.secure = true, cookie.httpOnly = true, cookie.path = \"/\" and no cookie.domain (browsers refuse __Host-Http- cookies otherwise), got cookie.httpOnly = false",
            ),
            (
                "return { name = '__HOST-HTTP-sid', cookie = { secure = true, httpOnly = false } }",
                "(browsers refuse __Host-Http- cookies otherwise), got cookie.httpOnly = false",
            ),
            (
                "return { name = '__Host-Http-sid', cookie = { secure = true, path = '/app' } }",
                "(browsers refuse __Host-Http- cookies otherwise), got cookie.path = \"/app\"",
            ),
            (
                "return { name = '__Host-Http-sid', cookie = { secure = true, domain = 'example.com' } }",
                "got cookie.domain = \"example.com\"",
            ),
            (
                "return { name = '__Host-Http-sid' }",
                "got cookie.secure = false",
            ),
            // Inherited fields would be read as absent: the defaults, silently.
            (
                "return setmetatable({}, { __index = { secret = 'k' } })",
                "the options must be a plain table, got a table whose metatable has __index",
            ),
            (
                "return { secret = 'k', cookie = setmetatable({}, { __index = { secure = true } }) }",
                "cookie must be a plain table, got a table whose metatable has __index",
            ),
            (
                "return { secret = setmetatable({ 'a' }, { __index = function() return 'b' end }) }",
                "secret must be a plain table",
            ),
            // Browsers drop a cookie whose Domain their host does not match.
            (
                "return { cookie = { domain = 'example.com:8080' } }",
                "cookie.domain must be a host name like \"example.com\" or \".example.com\" (no scheme, port or path), got \"example.com:8080\"",
            ),
            (
                "return { cookie = { domain = 'https://example.com' } }",
                "cookie.domain must be a host name",
            ),
            (
                "return { cookie = { domain = 'a=b' } }",
                "cookie.domain must be a host name",
            ),
            (
                "return { cookie = { domain = '-a.com' } }",
                "cookie.domain must be a host name",
            ),
            (
                "return { cookie = { domain = 'a..com' } }",
                "cookie.domain must be a host name",
            ),
            (
                "return { cookie = { domain = '.' } }",
                "cookie.domain must be a host name",
            ),
            (
                "return { cookie = { path = '/' .. ('p'):rep(1100) } }",
                "cookie.path must be non-empty ASCII text of at most 1024 bytes without spaces, ';', ',' or control characters, got \"/ppp",
            ),
            (
                "return { cookie = { path = '/' .. ('p'):rep(1100) } }",
                "... (1101 bytes)",
            ),
            (
                "return { name = ('n'):rep(1025) }",
                "name must be a cookie name of at most 1024 characters",
            ),
            // An invalid UTF-8 value is shown, not left out.
            (
                "return { cookie = { domain = 'ex\\255ample.com' } }",
                "got \"ex\u{fffd}ample.com\"",
            ),
            ("return { ttl = 1e300 }", "got 1e300"),
            ("return { ttl = 1e-300 }", "got 1e-300"),
            ("return { maxSize = -2.5e-7 }", "got -2.5e-7"),
            ("return { cookie = { maxAge = 0.5 } }", "got 0.5"),
        ];
        for (src, want) in cases {
            let got = parse(src).err().unwrap_or_default();
            assert!(got.contains(want), "{src}: {got}");
        }
    }
}

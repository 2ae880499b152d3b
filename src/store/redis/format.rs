//! connect-redis's stored form, pure: no I/O and no Lua, so the blocking store and the Lua
//! store (whose sockets are Lua's) share it byte for byte.
//!
//! Key `prefix .. id`; value the JSON of the session's data plus express-session's `cookie`
//! object; TTL from the cookie's lifetime. A merge applies a request's changes to the JSON it
//! loaded, so keys a Node app wrote keep their values, order and float bits; the write is a
//! compare-and-set on the SHA-1 of that JSON ([`CAS`]).
//!
//! Every error here is the *why* of a store error (`Err(String)`); the callers add the store,
//! method and address.

use crate::clock;
use crate::codec::meta::{self, META_KEY, Meta, within_max};
use crate::codec::{self, Changes, Record};
use crate::cookie::{Priority, SameSite, Secure};
use crate::json;
use crate::lifetime::{Assumed, MaxAge, Term};
use crate::store::Lifetime;
use serde_json::{Map, Value as Json};
use std::cell::Cell;

/// The key express-session keeps its cookie under; not session data.
pub const COOKIE_KEY: &str = "cookie";

/// Attempts of a merge that keeps losing to concurrent writers before it gives up: with the
/// waits below, about 2 s of waiting at most. Among n writers of one session that keep
/// colliding, each wins about one race in n: 16 attempts were about the average for 16
/// writers, and a loaded machine (CI, 16 processes on 2 cores) still saw one give up.
pub const MERGE_ATTEMPTS: usize = 128;

/// The longest wait (ms) before a merge's next attempt. After its n-th lost race a merge waits
/// a random time up to min(2^(n-1), this) ms, then reads the session again and merges onto that:
/// writers that keep colliding spread out rather than retry in lockstep until one of them runs
/// out of attempts. 16, not 8: with 24 writers of one session in 4 processes, 8 still let about
/// 1 run in 10 lose a write, 16 none in 10.
pub const MERGE_BACKOFF_MS: u64 = 16;

/// How long a merge waits before its next attempt, after `lost` lost races (1 or more): a
/// random time up to min(2^(lost-1), MERGE_BACKOFF_MS) ms. Both RedisStores wait this.
pub fn merge_backoff(lost: usize) -> std::time::Duration {
    let shift = u32::try_from(lost.saturating_sub(1)).unwrap_or(u32::MAX);
    let window_us = 1u64
        .checked_shl(shift)
        .unwrap_or(u64::MAX)
        .min(MERGE_BACKOFF_MS)
        * 1000;
    let mut r = [0u8; 4];
    // Without the OS's random source, the whole window: still a wait, only not spread.
    let r = match crate::id::os_random(&mut r) {
        Ok(()) => u64::from(u32::from_le_bytes(r)),
        Err(_) => u64::from(u32::MAX),
    };
    std::time::Duration::from_micros((window_us * r) >> 32)
}

/// The owner index ("log out everywhere"), shared by the scripts that write: a sorted set per
/// owner, key `indexPrefix .. owner`, whose members are session ids scored by when the store
/// last wrote or touched them (ms, the module's clock). `list(okey, id, now, ttl, prefix)` adds
/// or rescores `id`, keeps the set alive as long as its longest-lived session (the set expires
/// when its last session does), and drops those of two random members whose session is gone: expired sessions leave the index a few at a time, on writes, and all at
/// once in `SESSIONS_OF`, never in a sweep. Membership is a hint: readers check each session's
/// own `__meta.owner` (a logout or another login changes it without touching this set).
macro_rules! list_fn {
    () => {
        r#"
local function list(okey, id, now, ttl, prefix)
  redis.call('ZADD', okey, now, id)
  local ms = tonumber(ttl) * 1000
  if redis.call('PTTL', okey) < ms then redis.call('PEXPIRE', okey, ms) end
  -- Two random members: live but idle sessions must not stop gone ones from being dropped.
  for _, m in ipairs(redis.call('ZRANDMEMBER', okey, 2)) do
    if m ~= id and redis.call('EXISTS', prefix .. m) == 0 then redis.call('ZREM', okey, m) end
  end
end
"#
    };
}

/// The decoded JSON of a stored session (a table), or nil; and its `__meta` table, or nil
/// (scripts' shared readers).
macro_rules! meta_fn {
    () => {
        r#"
local function decoded(raw)
  if type(raw) ~= 'string' then return nil end
  local ok, v = pcall(cjson.decode, raw)
  if not ok then
    -- cjson refuses a lone UTF-16 surrogate escape, which Node writes for a string cut inside
    -- an emoji, and which this module reads (as U+FFFD). The owner must still be seen, or the
    -- session would escape destroyAll: every surrogate escape becomes U+FFFD for this read
    -- (a valid pair is written as UTF-8 by JSON.stringify, never escaped).
    ok, v = pcall(cjson.decode, (string.gsub(raw, '\\u[dD][89a-fA-F]%x%x', '\\ufffd')))
  end
  if ok and type(v) == 'table' then return v end
  return nil
end
local function meta_of(raw)
  local v = decoded(raw)
  if v and type(v.__meta) == 'table' then return v.__meta end
  return nil
end
-- Whether a bookkeeping number (created, a lifetime) counts: whole and within +-2^53, as the
-- module reads one (meta::EXACT); anything else is none there and here.
local function exact(n)
  return type(n) == 'number' and n == math.floor(n) and n > -2^53 and n < 2^53
end
"#
    };
}

/// Compare-and-set: write ARGV[2] with TTL ARGV[3] only if the stored value's SHA-1 is ARGV[1].
/// Returns 1 (written), 0 (no such key: gone, nothing written) or 2 (lost a race: the merge
/// waits, reads the session again and retries; the value is not sent back, no store uses it). With a second key (the owner's index: the written JSON
/// names an owner), the same write lists the session there: ARGV[4] id, ARGV[5] now (ms),
/// ARGV[6] the session key prefix.
pub const CAS: &str = concat!(
    list_fn!(),
    r#"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if redis.sha1hex(cur) ~= ARGV[1] then return 2 end
-- The index first: a script's earlier writes stay when a later command fails (a foreign key
-- of another type at the owner's index), and a session written but not listed would escape
-- destroyAll.
if KEYS[2] then list(KEYS[2], ARGV[4], ARGV[5], ARGV[3], ARGV[6]) end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"#
);

/// A whole write of a session that names an owner: `SET` and the owner index in one step.
/// KEYS: session, owner index. ARGV: json, ttl (s), id, now (ms), session key prefix.
pub const SET_LISTED: &str = concat!(
    list_fn!(),
    r#"
-- The index first, as in CAS.
list(KEYS[2], ARGV[3], ARGV[4], ARGV[2], ARGV[5])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"#
);

/// Touch: refresh the TTL to ARGV[1] seconds. Returns 1, or 0 when the session is gone or is an
/// id `regenerate` retired (its stale grace must not grow, nor its cookie go out again). A
/// session that names an owner is seen now in that owner's index (ARGV: ttl, index prefix, id,
/// now in ms, session key prefix). ARGV[6] and ARGV[7], a session's touch: the lifetime it
/// assumes the stored session has, express-session's `cookie.originalMaxAge` (`null`, `none`
/// or whole ms) and `__meta.created` (`none` or ms), `''` not checked. Where the stored ones
/// differ (another request changed the lifetime since this one loaded the session) nothing is
/// refreshed and the reply is `{2, originalMaxAge, created}` (ms; -1 for null, nil for none),
/// for the caller to touch again with the lifetime the session keeps.
pub const TOUCH: &str = concat!(
    list_fn!(),
    meta_fn!(),
    r#"
-- The stored cookie.originalMaxAge as the module reads it: whole ms, 'null' or 'none'.
local function age_of(v)
  local c = v.cookie
  if type(c) ~= 'table' then return 'none' end
  local a = c.originalMaxAge
  if a == cjson.null then return 'null' end
  if exact(a) and a >= 1 then return a end
  return 'none'
end
local function created_of(meta)
  local c = meta and meta.created
  if exact(c) then return c end
  return 'none'
end
local function same(have, want)
  if want == '' then return true end
  if type(have) == 'number' then return have == tonumber(want) end
  return have == want
end
local function reply(x)
  if type(x) == 'number' then return x end
  if x == 'null' then return -1 end
  return false
end
-- Whether the JSON plainly says the lifetime `age` (not 'none'): the one cookie object that
-- starts as express-session's and this module's do says it. The text of a key is structure
-- (a string escapes its quotes), so where only one object starts so, it is the session's own
-- (unless a writer of its own put its cookie's keys in another order and the data holds one
-- that looks like it); where there are several, the JSON is decoded.
local function says(raw, age)
  if age == 'none' then return false end
  local head = '"cookie":{"originalMaxAge":'
  local at = string.find(raw, head, 1, true)
  if not at or string.find(raw, head, at + #head, true) then return false end
  local from = at + #head
  if string.sub(raw, from, from + #age - 1) ~= age then return false end
  local after = string.sub(raw, from + #age, from + #age)
  return after == ',' or after == '}'
end
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local age, created = ARGV[6] or '', ARGV[7] or ''
local v = nil
-- Only a session whose JSON has bookkeeping, or does not plainly say the lifetime assumed, is
-- decoded here (touch runs on every request under rolling).
if string.find(cur, '"__meta"', 1, true) or created ~= '' or (age ~= '' and not says(cur, age)) then
  v = decoded(cur)
end
local meta = v and type(v.__meta) == 'table' and v.__meta or nil
if meta and type(meta.stale) == 'number' then return 0 end
if v then
  local a, c = age_of(v), created_of(meta)
  if not (same(a, age) and same(c, created)) then return {2, reply(a), reply(c)} end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
if meta and type(meta.owner) == 'string' and ARGV[2] then
  list(ARGV[2] .. meta.owner, ARGV[3], ARGV[4], ARGV[1], ARGV[5])
end
return 1
"#
);

/// What a session's touch assumes the stored session holds, as `TOUCH` takes it (ARGV[6] and
/// ARGV[7]): express-session's `cookie.originalMaxAge` (the session's own lifetime) and, under
/// `absoluteTimeout`, `__meta.created`.
pub fn touch_assumes(a: &Assumed) -> (String, String) {
    let age = match a.own {
        None => "none".to_string(),
        Some(MaxAge::Browser) => "null".to_string(),
        Some(MaxAge::Ms(ms)) => ms.to_string(),
    };
    let created = match (a.rule.absolute, a.created) {
        (None, _) => String::new(),
        (Some(_), None) => "none".to_string(),
        (Some(_), Some(c)) => c.to_string(),
    };
    (age, created)
}

/// A session's own lifetime and creation time, as a touch found them stored.
pub type Found = (Option<MaxAge>, Option<i64>);

/// The stored lifetime a `TOUCH` reply of 2 reports (`originalMaxAge`, `created`: ms, -1 for
/// null, none), as the session's bookkeeping: what `meta_of` reads from the JSON.
pub fn touch_found(age: Option<i64>, created: Option<i64>) -> Found {
    let own = match age {
        Some(-1) => Some(MaxAge::Browser),
        age => meta::own_ms(age.and_then(meta::exact)),
    };
    (own, created.and_then(meta::exact))
}

/// Attempts of a session's touch that keeps finding another lifetime stored (each time another
/// request changed it in between); the last one refreshes without checking.
pub const TOUCH_ATTEMPTS: usize = 3;

/// `sessionsOf`: KEYS[1] the owner's index; ARGV[1] the session key prefix, ARGV[2] the owner.
/// Returns `id, lastSeen (ms), created (ms or nil)` per live session, most recently seen
/// first, leaving out retired ids (`__meta.stale`; they stay listed for `DESTROY_ALL`) and
/// dropping members whose session is gone or names another owner now.
pub const SESSIONS_OF: &str = concat!(
    meta_fn!(),
    r#"
local out = {}
local members = redis.call('ZREVRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #members, 2 do
  local id = members[i]
  local meta = meta_of(redis.pcall('GET', ARGV[1] .. id))
  if not meta or meta.owner ~= ARGV[2] then
    redis.call('ZREM', KEYS[1], id)
  elseif type(meta.stale) ~= 'number' then
    out[#out + 1] = id
    out[#out + 1] = tonumber(members[i + 1])
    out[#out + 1] = exact(meta.created) and meta.created or false
  end
end
return out
"#
);

/// `destroyAll`: KEYS[1] the owner's index; ARGV[1] the session key prefix, ARGV[2] the owner,
/// ARGV[3] (optional) the id to keep. Deletes every listed session that still names the owner
/// (retired ids too), atomically; returns how many it deleted.
pub const DESTROY_ALL: &str = concat!(
    meta_fn!(),
    r#"
local n = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if id ~= ARGV[3] then
    local k = ARGV[1] .. id
    local meta = meta_of(redis.pcall('GET', k))
    if meta and meta.owner == ARGV[2] then n = n + redis.call('DEL', k) end
    redis.call('ZREM', KEYS[1], id)
  end
end
return n
"#
);

/// The default prefix of the owner index keys: outside the session keys' (`all`, `length`,
/// `clear` and Node's connect-redis walk `prefix*`), derived from it so two stores with their
/// own prefixes keep their own indexes.
pub fn default_index_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut out = b"owner:".to_vec();
    out.extend_from_slice(prefix);
    out
}

/// The key of `owner`'s index.
pub fn index_key(index_prefix: &[u8], owner: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(index_prefix.len() + owner.len());
    k.extend_from_slice(index_prefix);
    k.extend_from_slice(owner.as_bytes());
    k
}

/// What express-session's stored `cookie` object says, and so the TTL of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cookie<'a> {
    /// Seconds; also the key's TTL, as connect-redis sets it. None for a browser-session
    /// cookie (`cookie.maxAge = false`): express-session stores `originalMaxAge` and
    /// `expires` as null, and the key lives `store_ttl` seconds.
    pub max_age: Option<u64>,
    /// What `originalMaxAge` says: `max_age` before `absoluteTimeout` capped it.
    pub original: Option<u64>,
    /// The session's ttl: the key's TTL when the cookie has no lifetime of its own.
    pub store_ttl: u64,
    pub path: &'a str,
    pub domain: Option<&'a str>,
    pub http_only: bool,
    /// What express-session stores: `"auto"` is this request's HTTPS (its `generate` sets
    /// `cookie.secure` from the request), since express-session builds a loaded session's
    /// Set-Cookie from what is stored: a `false` there would strip `Secure` from Node's cookie.
    pub secure: bool,
    /// `cookie.secure = "auto"`: a merge keeps a stored `true` (set over HTTPS) rather than
    /// downgrade it from a plain-HTTP request.
    pub secure_auto: bool,
    pub same_site: Option<SameSite>,
    pub partitioned: bool,
    pub priority: Option<Priority>,
}

impl<'a> Cookie<'a> {
    /// The cookie of a store method called directly (no session config): express-session's
    /// defaults, alive for `ttl` seconds.
    pub fn standalone(ttl: u64) -> Cookie<'static> {
        Cookie {
            max_age: Some(ttl),
            original: Some(ttl),
            store_ttl: ttl,
            path: "/",
            domain: None,
            http_only: true,
            secure: false,
            secure_auto: false,
            same_site: None,
            partitioned: false,
            priority: None,
        }
    }

    /// The cookie a session config's lifetime describes.
    pub fn of(life: &Lifetime<'a>) -> Cookie<'a> {
        match life.cookie {
            None => Cookie::standalone(life.ttl.seconds()),
            Some(c) => Cookie {
                max_age: life.max_age,
                original: life.original_max_age,
                store_ttl: life.ttl.seconds(),
                path: &c.path,
                domain: c.domain.as_deref(),
                http_only: c.http_only,
                secure: c.secure == Secure::Always || (c.secure == Secure::Auto && life.https),
                secure_auto: c.secure == Secure::Auto,
                same_site: c.same_site,
                partitioned: c.partitioned,
                priority: c.priority,
            },
        }
    }

    /// The key's TTL in seconds: the cookie's lifetime, else the session's ttl.
    pub fn ttl(&self) -> u64 {
        self.max_age.unwrap_or(self.store_ttl)
    }

    /// express-session's cookie object for a write now.
    pub fn to_json(&self) -> Json {
        // express-session's key order: originalMaxAge, partitioned, priority, expires, ...
        let mut o = Map::new();
        let ms = self.max_age.map(|m| m.saturating_mul(1000));
        let original = self.original.map(|m| m.saturating_mul(1000));
        o.insert(
            "originalMaxAge".into(),
            original.map_or(Json::Null, Json::from),
        );
        if self.partitioned {
            o.insert("partitioned".into(), Json::from(true));
        }
        if let Some(p) = self.priority {
            let v = match p {
                Priority::Low => "low",
                Priority::Medium => "medium",
                Priority::High => "high",
            };
            o.insert("priority".into(), Json::from(v));
        }
        let expires = ms.map_or(Json::Null, |ms| {
            let ms = i64::try_from(ms).unwrap_or(i64::MAX);
            Json::from(clock::iso_date(clock::now_ms().saturating_add(ms)))
        });
        o.insert("expires".into(), expires);
        o.insert("secure".into(), Json::from(self.secure));
        o.insert("httpOnly".into(), Json::from(self.http_only));
        if let Some(d) = self.domain {
            o.insert("domain".into(), Json::from(d));
        }
        o.insert("path".into(), Json::from(self.path));
        if let Some(ss) = self.same_site {
            let v = match ss {
                SameSite::Strict => "strict",
                SameSite::Lax => "lax",
                SameSite::None => "none",
            };
            o.insert("sameSite".into(), Json::from(v));
        }
        Json::Object(o)
    }
}

fn reserved(key: &[u8]) -> Result<(), String> {
    if key == COOKIE_KEY.as_bytes() {
        return Err(
            "the session key \"cookie\" is express-session's cookie object in this store; use another name"
                .into(),
        );
    }
    Ok(())
}

/// The `maxSize` a caller from Lua passed on (what the engine handed a store's get or merge),
/// or the default when it passed none, as a direct `store:get(id)` does.
pub fn read_limit(max: Option<f64>) -> usize {
    max.filter(|n| n.fract() == 0.0 && *n >= 1.0 && *n <= u32::MAX as f64)
        .map_or(codec::DEFAULT_MAX_SIZE, |n| n as usize)
}

/// A stored session's JSON object, keys in the stored order; refused, without building more of
/// it, once it would take more than `max` bytes (the session's `maxSize`) as a record.
pub fn parse_object(raw: &[u8], max: usize) -> Result<Map<String, Json>, String> {
    // Ok, or Err with the parse's error when the text is not JSON (else a message).
    let parse = |text: &[u8]| -> Result<Json, Result<serde_json::Error, String>> {
        let budget = Budget::new(max);
        let mut de = serde_json::Deserializer::from_slice(text);
        let value = serde::de::DeserializeSeed::deserialize(Budgeted(&budget), &mut de)
            .and_then(|v| de.end().map(|()| v));
        value.map_err(|e| {
            if budget.exceeded.get() {
                Err(too_large(max))
            } else if budget.too_deep.get() || e.to_string().starts_with("recursion limit") {
                // Refused at the module's limit, as decoding the record would refuse it (and
                // as serde_json's own, 128 levels, would), so a store reports it itself.
                Err(format!("stored session data {}", codec::TOO_DEEP))
            } else {
                Ok(e)
            }
        })
    };
    // Past lone surrogates and numbers beyond the double range, as JavaScript reads them (the
    // error, if any, is the last parse's: the first may be a lone surrogate's, where the text
    // is broken elsewhere).
    let value = match json::parse_as_javascript(raw, parse, |e| e.as_ref().ok()) {
        Ok(v) => v,
        Err(Err(why)) => return Err(why),
        Err(Ok(e)) => return Err(format!("the stored session is not JSON: {e}")),
    };
    match value {
        Json::Object(map) => Ok(map),
        _ => Err("the stored session is not a JSON object".into()),
    }
}

fn too_large(max: usize) -> String {
    format!("the stored session is more than maxSize ({max} bytes) once decoded; not read further")
}

/// What is left of a parse's allowance, counted in the bytes the record form takes (see
/// `Budgeted`).
struct Budget {
    left: Cell<usize>,
    exceeded: Cell<bool>,
    /// Arrays and objects open around the value being read (the session's own object: 1).
    depth: Cell<usize>,
    /// A table nested past `codec::MAX_DEPTH` levels was met.
    too_deep: Cell<bool>,
}

impl Budget {
    /// The session's `max` plus room for what the record does not keep (express-session's
    /// cookie object, which becomes a few bytes of bookkeeping).
    fn new(max: usize) -> Budget {
        Budget {
            left: Cell::new(max.saturating_add(4096)),
            exceeded: Cell::new(false),
            depth: Cell::new(0),
            too_deep: Cell::new(false),
        }
    }

    /// An array or object begins: refused past `codec::MAX_DEPTH` levels, the limit decoding
    /// the record holds it to.
    fn open<E: serde::de::Error>(&self) -> Result<(), E> {
        let depth = self.depth.get() + 1;
        if depth > codec::MAX_DEPTH {
            self.too_deep.set(true);
            return Err(E::custom(codec::TOO_DEEP));
        }
        self.depth.set(depth);
        Ok(())
    }

    fn close(&self) {
        self.depth.set(self.depth.get().saturating_sub(1));
    }

    fn spend<E: serde::de::Error>(&self, n: usize) -> Result<(), E> {
        match self.left.get().checked_sub(n) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.exceeded.set(true);
                Err(E::custom("over maxSize"))
            }
        }
    }
}

/// Builds the JSON tree as serde_json's own `Value` does, but stops once the session would take
/// more than its budget in record form: each value counts what the record spends on it (a
/// number 9 bytes, a string its bytes plus a tag and a length, an array element its 9-byte
/// key, an object entry its key). A `null`, which the record drops, counts as a number: the
/// tree's nodes, not only the record's bytes, must stay in proportion to `maxSize`.
struct Budgeted<'a>(&'a Budget);

impl<'de> serde::de::DeserializeSeed<'de> for Budgeted<'_> {
    type Value = Json;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Budgeted<'_> {
    type Value = Json;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Json, E> {
        self.0.spend(9)?;
        Ok(Json::Null)
    }
    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Json, E> {
        self.0.spend(1)?;
        Ok(Json::Bool(b))
    }
    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Json, E> {
        self.0.spend(9)?;
        Ok(Json::from(n))
    }
    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Json, E> {
        self.0.spend(9)?;
        Ok(Json::from(n))
    }
    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Json, E> {
        self.0.spend(9)?;
        Ok(serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number))
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Json, E> {
        self.visit_string(s.to_owned())
    }
    fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Json, E> {
        self.0.spend(codec::str_len(s.len()))?;
        Ok(Json::String(s))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        self.0.open()?;
        self.0.spend(2)?;
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Budgeted(self.0))? {
            self.0.spend(9)?;
            items.push(v);
        }
        self.0.close();
        Ok(Json::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        self.0.open()?;
        self.0.spend(2)?;
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            self.0.spend(codec::str_len(k.len()))?;
            let v = map.next_value_seed(Budgeted(self.0))?;
            out.insert(k, v);
        }
        self.0.close();
        Ok(Json::Object(out))
    }
}

/// The bookkeeping of a stored JSON session: `__meta` (created, stale, owner) as Lua wrote it,
/// and the session's own lifetime from express-session's `cookie.originalMaxAge`, which both
/// sides keep (null: a browser-session cookie).
fn meta_of(map: &Map<String, Json>) -> Meta {
    let mut meta = Meta::default();
    if let Some(Json::Object(m)) = map.get(META_KEY) {
        meta.created = m.get("created").and_then(exact_json);
        // Any number marks a retirement, as the scripts read it (`meta::stale_ms`).
        meta.stale = m
            .get("stale")
            .and_then(|n| n.as_i64().or_else(|| n.as_f64().map(meta::stale_ms)));
        meta.owner = m.get("owner").and_then(Json::as_str).map(String::from);
    }
    if let Some(Json::Object(c)) = map.get(COOKIE_KEY) {
        meta.max_age = match c.get("originalMaxAge") {
            Some(Json::Null) => Some(MaxAge::Browser),
            Some(n) => meta::own_ms(exact_json(n)),
            None => None,
        };
    }
    meta
}

/// A bookkeeping number in JSON, as every store reads one (`meta::EXACT`): whole and within
/// ±2^53, else none (serde_json holds 2^63 as a u64; as a double, 1e19 would saturate).
fn exact_json(v: &Json) -> Option<i64> {
    match v.as_i64() {
        Some(i) => meta::exact(i),
        None => v.as_f64().and_then(meta::exact_f64),
    }
}

/// `__meta` as JSON: what Node cannot keep elsewhere (the lifetime lives in the cookie
/// object); `None` when nothing is left.
fn meta_json(meta: &Meta) -> Option<Json> {
    let mut o = Map::new();
    if let Some(c) = meta.created {
        o.insert("created".into(), Json::from(c));
    }
    if let Some(o2) = &meta.owner {
        o.insert("owner".into(), Json::from(o2.as_str()));
    }
    if let Some(st) = meta.stale {
        o.insert("stale".into(), Json::from(st));
    }
    (!o.is_empty()).then_some(Json::Object(o))
}

/// A stored JSON session -> record (express-session's cookie object becomes the lifetime in
/// the record's bookkeeping), refused when larger than `max` bytes (`maxSize`). Loads use
/// `load_record`.
#[cfg(test)]
pub fn to_record(raw: &[u8], max: usize) -> Result<Record, String> {
    record_of(&parse_object(raw, max)?)
}

/// A stored JSON session as the record a load adopts: `to_record`, or `None` for an id
/// `regenerate` retired whose stale grace is over. The module's stores end such an id with the
/// grace (its TTL), but express-session knows nothing of retirement: a browser's parallel
/// request that reaches a Node app during the grace refreshes (touch) or rewrites the old id
/// with Node's own lifetime, and may send its cookie again. Read as retired past its grace, it
/// stayed read-only for as long as Node kept it, and a user holding its cookie could not log in
/// (`regenerate` on a retired id stores nothing). Past the grace it is gone, as elsewhere.
pub fn load_record(raw: &[u8], max: usize) -> Result<Option<Record>, String> {
    let map = parse_object(raw, max)?;
    if meta_of(&map)
        .stale
        .is_some_and(|until| until <= clock::now_ms())
    {
        return Ok(None);
    }
    record_of(&map).map(Some)
}

/// A stored JSON session's object -> record (`to_record` past the parse).
fn record_of(map: &Map<String, Json>) -> Result<Record, String> {
    let plain = |e: mlua::Error| {
        crate::error::message(&e)
            .trim_start_matches("honeymoon_session: ")
            .to_string()
    };
    let mut entries = codec::Entries::default();
    let meta = meta_of(map);
    if !meta.is_empty() {
        entries
            .push(
                META_KEY.as_bytes(),
                &meta.encode().map_err(|e| plain(e.into()))?,
            )
            .map_err(plain)?;
    }
    for (k, v) in map {
        if k == COOKIE_KEY || k == META_KEY {
            continue;
        }
        if let Some(v) = codec::from_json(v).map_err(|e| plain(e.into()))? {
            entries.push(k.as_bytes(), &v).map_err(plain)?;
        }
    }
    entries.into_record().map_err(plain)
}

/// A record entry as a JSON entry; `None` for bookkeeping that JSON keeps elsewhere.
fn json_entry(key: &[u8], value: &[u8]) -> Result<Option<(String, Json)>, String> {
    reserved(key)?;
    let key = String::from_utf8(key.to_vec()).map_err(|_| "a session key is not UTF-8")?;
    if key == META_KEY {
        return Ok(meta_json(&Meta::from_value(value)).map(|v| (key, v)));
    }
    let value = codec::to_json(&key, value)?;
    Ok(Some((key, value)))
}

/// A whole session's stored JSON, with the cookie object.
pub fn from_record(record: &Record, cookie: &Cookie) -> Result<String, String> {
    let mut map = Map::new();
    let entries = record
        .entries()
        .map_err(|_| "the session record is not one this module encoded".to_string())?;
    for (k, v) in entries {
        if let Some((k, v)) = json_entry(k, v)? {
            map.insert(k, v);
        }
    }
    map.insert(COOKIE_KEY.into(), cookie.to_json());
    Ok(Json::Object(map).to_string())
}

/// A request's changes in JSON, converted once and applied to every base a merge tries.
pub struct JsonChanges {
    set: Vec<(String, Json)>,
    removed: Vec<String>,
    /// The request changed the session's bookkeeping (its own lifetime among it).
    touches_meta: bool,
    /// `Changes::keep_owner`: a rewritten `__meta` keeps the base's owner.
    keep_owner: bool,
}

impl JsonChanges {
    pub fn of(changes: &Changes) -> Result<JsonChanges, String> {
        let mut set = Vec::with_capacity(changes.set.len());
        let mut removed: Vec<String> = changes
            .removed
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        for (k, v) in &changes.set {
            match json_entry(k, v)? {
                Some(entry) => set.push(entry),
                None => removed.push(META_KEY.into()),
            }
        }
        let touches_meta =
            set.iter().any(|(k, _)| k == META_KEY) || removed.iter().any(|k| k == META_KEY);
        Ok(JsonChanges {
            set,
            removed,
            touches_meta,
            keep_owner: changes.keep_owner,
        })
    }

    /// The stored JSON `base` with these changes and a fresh cookie object; every other key
    /// keeps its place and its exact value. Also the owner the result names (`__meta.owner`),
    /// for the owner index.
    /// Returns the JSON and the owner it names, or `None` when `base` is an id `regenerate`
    /// retired: readable during the stale grace, never written again. A merged session larger
    /// than `max` as a record (`meta::within_max`, the rule of every load) is refused: other
    /// requests' writes since this one's load made it too large, and stored, no load could read
    /// it again.
    #[cfg(test)]
    pub fn apply(
        &self,
        base: &[u8],
        cookie: &Cookie,
        max: usize,
    ) -> Result<Option<(String, Option<String>)>, String> {
        Ok(self
            .apply_kept(base, cookie, None, max)?
            .map(|a| (a.json, a.owner)))
    }

    /// As `apply`, where `assumed` says what lifetime `cookie` was made for: a session whose
    /// stored lifetime is another one (another request changed it since this one loaded the
    /// session, and this one did not set it: `assumed` is dropped where it did) keeps that one,
    /// in its cookie object and its TTL (`Applied::kept`), also where these changes rewrite
    /// `__meta` for another field (an owner, a creation time).
    pub fn apply_kept(
        &self,
        base: &[u8],
        cookie: &Cookie,
        assumed: Option<&Assumed>,
        max: usize,
    ) -> Result<Option<Applied>, String> {
        let mut map = parse_object(base, max)?;
        let before = meta_of(&map);
        if before.stale.is_some() {
            return Ok(None);
        }
        for (k, v) in &self.set {
            map.insert(k.clone(), v.clone());
        }
        for k in &self.removed {
            // shift_remove: the other keys keep their order.
            map.shift_remove(k.as_str());
        }
        if self.keep_owner && self.touches_meta {
            let mut after = meta_of(&map);
            if after.owner != before.owner {
                after.owner = before.owner.clone();
                match meta_json(&after) {
                    Some(v) => map.insert(META_KEY.into(), v),
                    None => map.shift_remove(META_KEY),
                };
            }
        }
        // A request that did not set the session's lifetime (the changes leave `__meta` alone,
        // or they rewrite it for another field and assumed the lifetime loaded) keeps the stored
        // one: another request may have set it (remember me) after this one loaded the session.
        // The lifetime is the cookie object's, which the JSON `__meta` never holds; a rewritten
        // `__meta` may hold another creation time.
        let keeps_stored = !self.touches_meta || assumed.is_some();
        let kept = match assumed {
            Some(a) if !self.touches_meta => {
                a.kept(before.max_age, before.created, clock::now_ms())
            }
            Some(a) => {
                let stored = meta_of(&map);
                a.kept(stored.max_age, stored.created, clock::now_ms())
            }
            None => None,
        };
        let cookie = match kept {
            Some(k) => Cookie {
                max_age: k.max_age,
                original: k.original,
                store_ttl: k.ttl,
                ..cookie.clone()
            },
            None => cookie.clone(),
        };
        let mut fresh = cookie.to_json();
        // The stored lifetime kept: its exact value, as Node wrote it.
        if keeps_stored
            && let Some(stored) = map.get(COOKIE_KEY).and_then(|c| c.get("originalMaxAge"))
            && let Json::Object(o) = &mut fresh
        {
            o.insert("originalMaxAge".into(), stored.clone());
        }
        if cookie.secure_auto
            && map.get(COOKIE_KEY).and_then(|c| c.get("secure")) == Some(&Json::Bool(true))
            && let Json::Object(o) = &mut fresh
        {
            o.insert("secure".into(), Json::Bool(true));
        }
        map.insert(COOKIE_KEY.into(), fresh);
        // Measured as a load will read it: the record of this very object.
        let record = record_of(&map)?;
        if !within_max(&record.0, max) {
            return Err(codec::merged_larger_than_max(record.0.len(), max));
        }
        let owner = meta_of(&map).owner;
        Ok(Some(Applied {
            json: Json::Object(map).to_string(),
            owner,
            ttl: cookie.ttl(),
            kept,
        }))
    }
}

/// A merge's result (`JsonChanges::apply_kept`).
pub struct Applied {
    pub json: String,
    /// The owner the merged session names.
    pub owner: Option<String>,
    /// The key's TTL, seconds.
    pub ttl: u64,
    /// The lifetime the session keeps where it is not the one the merge was handed.
    pub kept: Option<Term>,
}

/// The SHA-1 of a stored value in hex, as the CAS script's `redis.sha1hex` computes it.
pub fn sha1_hex(bytes: &[u8]) -> String {
    sha1_smol::Sha1::from(bytes).digest().to_string()
}

/// What an error shows instead of a part of the password.
pub const LEFT_OUT: &[u8] = b"<password>";

/// `text` with every run of 4 bytes or more that is a part of `secret` replaced by
/// `LEFT_OUT`, and every quoted argument that is `secret` or its start, however short. Redis
/// quotes an unknown command's first arguments in its error reply, up to 128 bytes of them, so
/// a server without AUTH or HELLO (renamed away, a proxy) answers the connection setup with the
/// password, or a part of it, in the message: after a username of 120 bytes or more, only the
/// password's first bytes, in their quotes. A shorter run outside quotes stays: its bytes are
/// as likely the message's own. Redis shows a CR or LF in a quoted argument as a space, so a
/// space in `text` matches either of them in `secret`.
pub fn redact(text: &[u8], secret: &[u8]) -> Vec<u8> {
    if secret.is_empty() {
        return text.to_vec();
    }
    let part = |run: &[u8]| secret.windows(run.len()).any(|w| shown_as(w, run));
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        // Not where its closing quote opens another such argument: read from an argument's
        // closing quote, `' '` (the separator) looks like one to a password that starts with a
        // space, CR or LF, and masking it would use up the next argument's opening quote.
        if let Some(len) = quoted_start_of(&text[i..], secret)
            .filter(|&len| quoted_start_of(&text[i + len + 1..], secret).is_none())
        {
            out.push(text[i]);
            out.extend_from_slice(LEFT_OUT);
            out.push(text[i]);
            i += len + 2;
            continue;
        }
        // The longest run from here that the secret holds.
        let mut len = 0;
        while i + len < text.len() && len < secret.len() && part(&text[i..=i + len]) {
            len += 1;
        }
        if len >= 4 {
            out.extend_from_slice(LEFT_OUT);
            i += len;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// Whether `shown` is `bytes` as Redis quotes them in an error reply: CR and LF become spaces.
fn shown_as(bytes: &[u8], shown: &[u8]) -> bool {
    bytes.len() == shown.len()
        && bytes
            .iter()
            .zip(shown)
            .all(|(&b, &t)| b == t || (matches!(b, b'\r' | b'\n') && t == b' '))
}

/// The length of the quoted argument (in '', "" or ``, as servers quote arguments) that
/// `text` starts with, when it is `secret` or a start of it; the longest such, as the secret
/// may hold the quote character.
fn quoted_start_of(text: &[u8], secret: &[u8]) -> Option<usize> {
    let q = *text.first()?;
    if !matches!(q, b'\'' | b'"' | b'`') {
        return None;
    }
    let most = secret.len().min(text.len().saturating_sub(2));
    (1..=most)
        .rev()
        .find(|&k| text.get(1 + k) == Some(&q) && shown_as(&secret[..k], &text[1..=k]))
}

/// The SCAN pattern for every key under `prefix`: the prefix with glob characters escaped.
pub fn scan_pattern(prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 2);
    for &b in prefix {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'*');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A limit no test session comes near.
    const BIG: usize = crate::codec::DEFAULT_MAX_SIZE;

    #[test]
    fn redact_leaves_out_every_part_of_the_secret_of_4_bytes_or_more() {
        let pw = b"Zq8vKx3Wm7";
        let quoted = b"ERR unknown command 'AUTH', with args beginning with: 'alice' 'Zq8vKx3Wm7' ";
        assert_eq!(
            redact(quoted, pw),
            b"ERR unknown command 'AUTH', with args beginning with: 'alice' '<password>' ".to_vec()
        );
        // A part (Redis cuts the quoted arguments at 128 bytes), twice.
        assert_eq!(
            redact(b"'Zq8vKx' x3Wm7", pw),
            b"'<password>' <password>".to_vec()
        );
        // Runs of 3 bytes stay: a message and its address are mostly not the password.
        assert_eq!(redact(b"Zq8 x3W m7", pw), b"Zq8 x3W m7".to_vec());
        // A secret shorter than 4 bytes is left out where it is quoted whole.
        assert_eq!(
            redact(b"'ab' \"ab\" `ab` 'abc' ab cab", b"ab"),
            b"'<password>' \"<password>\" `<password>` 'abc' ab cab".to_vec()
        );
        assert_eq!(redact(b"'x' next", b"x"), b"'<password>' next".to_vec());
        assert_eq!(redact(b"anything", b""), b"anything".to_vec());
    }

    /// Redis cuts its quote of the arguments at 128 bytes: after a long username only the
    /// password's first bytes are quoted, fewer than the 4 a run outside quotes needs.
    #[test]
    fn redact_leaves_out_a_quoted_start_of_the_password_however_short() {
        let pw = b"Zq8vKx3Wm7";
        let user = "u".repeat(123);
        for shown in ["Z", "Zq", "Zq8"] {
            let text = format!(
                "ERR unknown command 'AUTH', with args beginning with: '{user}' '{shown}' "
            );
            let want = format!(
                "ERR unknown command 'AUTH', with args beginning with: '{user}' '<password>' "
            );
            assert_eq!(redact(text.as_bytes(), pw), want.into_bytes(), "{shown}");
        }
        // Not a start of it: stays.
        assert_eq!(redact(b"'q8v' 'alice'", pw), b"'q8v' 'alice'".to_vec());
        // A password holding the quote character is left out whole, not up to that quote.
        assert_eq!(
            redact(b"args: 'ab'cdef' next", b"ab'cdef"),
            b"args: '<password>' next".to_vec()
        );
        // After an argument's closing quote, the separator is not taken for the password's
        // start: the next argument is left out.
        for pw in [&b"\nZq8vKx3W"[..], b" Zq8vKx3W", b"\rZq8vKx3W"] {
            assert_eq!(
                redact(b"args: 'uuuu' ' Zq' ", pw),
                b"args: 'uuuu' '<password>' ".to_vec()
            );
        }
        // As Redis shows it: CR and LF as spaces.
        assert_eq!(redact(b"'a b'", b"a\r\nbcd"), b"'a b'".to_vec());
        assert_eq!(redact(b"'a b'", b"a\rbcd"), b"'<password>'".to_vec());
    }

    #[test]
    fn redact_leaves_out_the_password_as_redis_shows_it_with_cr_and_lf_made_spaces() {
        let pw = b"Zq8v\r\nKx3W";
        assert_eq!(
            redact(b"with args beginning with: 'Zq8v  Kx3W' ", pw),
            b"with args beginning with: '<password>' ".to_vec()
        );
        // As sent, unchanged, it is left out too.
        assert_eq!(redact(b"'Zq8v\r\nKx3W'", pw), b"'<password>'".to_vec());
    }

    #[test]
    fn a_stored_session_larger_than_max_size_is_refused_before_it_is_all_parsed() {
        // 20,000 empty arrays, then text that is not JSON: refused for its size, so the parse
        // stopped long before the end (else the error would be "not JSON").
        let mut huge = String::from(r#"{"x":["#);
        huge.push_str(&"[],".repeat(20_000));
        huge.push_str("not json");
        let err = to_record(huge.as_bytes(), 10_000).unwrap_err();
        assert!(err.contains("more than maxSize (10000 bytes)"), "{err}");
        // Nulls, which the record drops, still count: the tree must stay small.
        let nulls = format!(r#"{{"x":[{}null]}}"#, "null,".repeat(20_000));
        assert!(
            to_record(nulls.as_bytes(), 10_000)
                .unwrap_err()
                .contains("more than maxSize")
        );
        // A session whose record is exactly maxSize is read: the count never exceeds the record
        // (beyond the cookie object's slack). Large and of every kind, so that counting any kind
        // of value above its record size would show.
        let item = r#"[1,2.5,-3,true,false,{"k":"v","e":{},"l":[[]]},"\u00e9\u0001"]"#;
        let node = format!(
            r#"{{"cookie":{{"originalMaxAge":86400000,"expires":"2026-12-01T00:00:00.000Z","httpOnly":true,"path":"/"}},"s":"{}","n":[{}]}}"#,
            "x".repeat(3000),
            vec![item; 5000].join(",")
        );
        let exact = to_record(node.as_bytes(), BIG).unwrap().0.len();
        assert!(to_record(node.as_bytes(), exact).is_ok());
        // to_record only bounds the parse (with room for the cookie object); the engine then
        // refuses a record by its exact size.
        assert!(to_record(node.as_bytes(), exact - 1).is_ok());
    }
    use mlua::prelude::*;

    #[test]
    fn json_nested_past_the_module_limit_is_refused_by_the_parse() {
        // `levels` levels, the session's own object being the first.
        let nested = |levels: usize| {
            format!(
                r#"{{"a":{}{},"cookie":{{"path":"/"}}}}"#,
                "[".repeat(levels - 1),
                "]".repeat(levels - 1)
            )
        };
        let lua = Lua::new();
        let ok = to_record(nested(64).as_bytes(), BIG).unwrap();
        assert!(ok.to_table(&lua).is_ok());
        for levels in [65, 128, 129, 10_000] {
            assert_eq!(
                to_record(nested(levels).as_bytes(), BIG).unwrap_err(),
                "stored session data nests deeper than 64 levels",
                "{levels}"
            );
        }
    }

    #[test]
    fn reads_lone_surrogates_as_replacement_characters() {
        let raw = r#"{"a":"x\ud83d","b":"\ud83d\ude00","c":"\\ud83d","d":"\udc00y"}"#;
        // Not JSON at all, with a backslash before a multibyte character: an error, no panic.
        assert!(parse_object(r#"{"a":"\é\ud83d"#.as_bytes(), BIG).is_err());
        assert!(parse_object(br"\", BIG).is_err());
        assert!(parse_object(b"\xff{}", BIG).is_err());
        // Cut short after a lone surrogate (which is read): the error says where the text is
        // broken, not that the surrogate is.
        let err = parse_object(br#"{"a":"x\ud83d","b":1"#, BIG).unwrap_err();
        assert!(
            err.starts_with("the stored session is not JSON: EOF while parsing an object"),
            "{err}"
        );
        let map = parse_object(raw.as_bytes(), BIG).unwrap();
        assert_eq!(map["a"], "x\u{fffd}");
        assert_eq!(map["b"], "\u{1f600}");
        assert_eq!(map["c"], "\\ud83d");
        assert_eq!(map["d"], "\u{fffd}y");
    }

    #[test]
    fn a_merge_keeps_foreign_keys_their_order_and_float_bits() {
        let lua = Lua::new();
        let base = br#"{"passport":{"user":"u"},"half":0.1,"n":1,"gone":true,"cookie":{"x":1}}"#;
        let before = to_record(base, BIG).unwrap();
        let t: LuaTable = lua
            .load("return { passport = { user = 'u' }, half = 0.1, n = 2, new = 'x' }")
            .eval()
            .unwrap();
        let after = Record::from_table(&lua, &t).unwrap();
        let changes = JsonChanges::of(&before.diff(&after).unwrap()).unwrap();
        let (json, owner) = changes
            .apply(base, &Cookie::standalone(60), BIG)
            .unwrap()
            .unwrap();
        assert_eq!(owner, None);
        assert!(
            json.starts_with(r#"{"passport":{"user":"u"},"half":0.1,"n":2,"cookie":{"#),
            "{json}"
        );
        assert!(json.contains(r#""new":"x""#), "{json}");
        assert!(!json.contains("gone"), "{json}");
    }

    /// A number beyond the double range (`1E400`: no JSON.stringify writes one, but another
    /// writer can) is read as the `null` JavaScript writes back for the Infinity it reads, not
    /// refused: the session stays readable and writable (it used to be a 500 on every request).
    #[test]
    fn a_number_beyond_the_double_range_is_read_as_null() {
        let lua = Lua::new();
        let base = br#"{"big":1E400,"list":[1,-1e999,3],"deep":{"x":2e308,"y":17976931348623157e292,"z":123456789e305},"tiny":1e-400,"n":1,"cookie":{}}"#;
        let map = parse_object(base, BIG).unwrap();
        assert_eq!(map["big"], Json::Null);
        assert_eq!(map["list"], serde_json::json!([1, null, 3]));
        assert_eq!(map["deep"]["x"], Json::Null);
        assert_eq!(map["deep"]["y"], serde_json::json!(f64::MAX));
        assert_eq!(map["deep"]["z"], Json::Null);
        assert_eq!(map["tiny"], serde_json::json!(0.0));
        assert!(load_record(base, BIG).unwrap().is_some());
        // A merge of another key: the number is written back as JavaScript would write it.
        let t: LuaTable = lua.load("return { n = 2 }").eval().unwrap();
        let n = Record::from_table(&lua, &t).unwrap();
        let changes = JsonChanges::of(&Changes {
            set: vec![(b"n".to_vec(), n.entries().unwrap()[0].1.to_vec())],
            removed: Vec::new(),
            keep_owner: false,
        })
        .unwrap();
        let (json, _) = changes
            .apply(base, &Cookie::standalone(60), BIG)
            .unwrap()
            .unwrap();
        assert!(json.starts_with(r#"{"big":null,"list":[1,null,3],"deep":{"x":null,"y":1.7976931348623157e+308,"z":null},"tiny":0.0,"n":2,"#), "{json}");
        // Out-of-range numbers only: other broken JSON is still refused, saying why.
        for bad in [
            &br#"{"a":1E400,}"#[..],
            br#"{"a":1E400"#,
            br#"{"a":"1E400}"#,
        ] {
            assert!(
                parse_object(bad, BIG).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // With lone surrogates too, in either order.
        let both = br#"{"s":"\ud83d","a":1e400,"t":"\udc00"}"#;
        let map = parse_object(both, BIG).unwrap();
        assert_eq!(map["a"], Json::Null);
        assert_eq!(map["s"], Json::from("\u{fffd}"));
    }

    #[test]
    fn a_merge_past_max_size_is_refused_by_the_record_a_load_would_read() {
        let lua = Lua::new();
        let record = |src: &str| {
            let t: LuaTable = lua.load(src).eval().unwrap();
            Record::from_table(&lua, &t).unwrap()
        };
        // This request loaded { n = 1 } and added b; another stored a since.
        let loaded = record("return { n = 1 }");
        let mine = record("return { n = 1, b = string.rep('b', 600) }");
        let changes = JsonChanges::of(&loaded.diff(&mine).unwrap()).unwrap();
        let base = format!(
            r#"{{"n":1,"a":"{}","cookie":{{"path":"/"}}}}"#,
            "a".repeat(600)
        );
        let cookie = Cookie::standalone(60);
        let (json, _) = changes
            .apply(base.as_bytes(), &cookie, BIG)
            .unwrap()
            .unwrap();
        let len = to_record(json.as_bytes(), BIG).unwrap().0.len();
        assert!(len > 1200, "{len}");
        // Exactly what a load counts: taken at that size, refused a byte below it.
        assert!(changes.apply(base.as_bytes(), &cookie, len).is_ok());
        assert_eq!(
            changes
                .apply(base.as_bytes(), &cookie, len - 1)
                .unwrap_err(),
            codec::merged_larger_than_max(len, len - 1)
        );
    }

    /// The wait before a merge's next attempt spreads over its window: up to 1, 2, 4, 8, then
    /// MERGE_BACKOFF_MS ms, also after far more lost races than MERGE_ATTEMPTS.
    #[test]
    fn a_merge_backs_off_within_its_window() {
        for (lost, window_ms) in [
            (1, 1),
            (2, 2),
            (3, 4),
            (4, 8),
            (5, 16),
            (6, 16),
            (16, 16),
            (usize::MAX, 16),
        ] {
            let waits: Vec<_> = (0..200).map(|_| merge_backoff(lost)).collect();
            let most = waits.iter().max().copied().unwrap_or_default();
            let window = std::time::Duration::from_millis(window_ms);
            // 200 waits spread over the window: one below half of it has odds of 2^-200.
            assert!(
                most < window && most >= window / 2,
                "after {lost} lost: {most:?}"
            );
            assert!(
                waits.iter().any(|w| *w != most),
                "after {lost} lost: always {most:?}, not random"
            );
        }
    }

    #[test]
    fn a_merge_names_the_owner_the_result_holds() {
        let lua = Lua::new();
        let base = br#"{"n":1,"__meta":{"created":5,"owner":"ann"},"cookie":{}}"#;
        let before = to_record(base, BIG).unwrap();
        // A write that leaves the bookkeeping alone keeps the stored owner.
        let t: LuaTable = lua.load("return { n = 2 }").eval().unwrap();
        let mut after = Record::from_table(&lua, &t).unwrap();
        after = codec::meta::with_meta(&after.0, &Meta::of_record(&before.0)).unwrap();
        let changes = JsonChanges::of(&before.diff(&after).unwrap()).unwrap();
        let (_, owner) = changes
            .apply(base, &Cookie::standalone(60), BIG)
            .unwrap()
            .unwrap();
        assert_eq!(owner.as_deref(), Some("ann"));
        // A logout removes it; another user's login replaces it.
        let logout = JsonChanges::of(&Changes {
            set: Vec::new(),
            removed: vec![META_KEY.as_bytes().to_vec()],
            keep_owner: false,
        })
        .unwrap();
        let (json, owner) = logout
            .apply(base, &Cookie::standalone(60), BIG)
            .unwrap()
            .unwrap();
        assert_eq!(owner, None);
        assert!(!json.contains("__meta"), "{json}");
        let bob = Meta {
            owner: Some("bob".into()),
            ..Meta::default()
        };
        let login = JsonChanges::of(&Changes {
            set: vec![(META_KEY.as_bytes().to_vec(), bob.encode().unwrap())],
            removed: Vec::new(),
            keep_owner: false,
        })
        .unwrap();
        let (_, owner) = login
            .apply(base, &Cookie::standalone(60), BIG)
            .unwrap()
            .unwrap();
        assert_eq!(owner.as_deref(), Some("bob"));
        // The same rewrite from a request that did not change the owner (its view was older
        // than the stored login): the stored owner stays, the rest of its bookkeeping is new.
        let kept = JsonChanges::of(&Changes {
            set: vec![(META_KEY.as_bytes().to_vec(), bob.encode().unwrap())],
            removed: Vec::new(),
            keep_owner: true,
        })
        .unwrap();
        let (json, owner) = kept
            .apply(base, &Cookie::standalone(60), BIG)
            .unwrap()
            .unwrap();
        assert_eq!(owner.as_deref(), Some("ann"));
        assert!(!json.contains("created"), "{json}");
        let unlisted = br#"{"n":1,"cookie":{}}"#;
        let (json, owner) = kept
            .apply(unlisted, &Cookie::standalone(60), BIG)
            .unwrap()
            .unwrap();
        assert_eq!(owner, None);
        assert!(!json.contains("__meta"), "{json}");
        assert_eq!(
            index_key(&default_index_prefix(b"sess:"), "bob"),
            b"owner:sess:bob"
        );
    }

    #[test]
    fn the_cookie_object_follows_the_config() {
        let c = Cookie {
            max_age: Some(600),
            original: Some(600),
            store_ttl: 3600,
            path: "/app",
            domain: Some("example.com"),
            http_only: false,
            secure: true,
            secure_auto: false,
            same_site: Some(SameSite::Strict),
            partitioned: false,
            priority: None,
        };
        assert_eq!(c.ttl(), 600);
        let j = c.to_json();
        assert!(j.get("partitioned").is_none() && j.get("priority").is_none());
        assert_eq!(j["originalMaxAge"], 600_000);
        assert_eq!(j["path"], "/app");
        assert_eq!(j["domain"], "example.com");
        assert_eq!(j["httpOnly"], false);
        assert_eq!(j["secure"], true);
        assert_eq!(j["sameSite"], "strict");
        let d = Cookie::standalone(5).to_json();
        assert!(d.get("sameSite").is_none() && d.get("domain").is_none());
        // A lifetime too long for milliseconds saturates instead of overflowing.
        let _ = Cookie::standalone(u64::MAX).to_json();
        // A browser-session cookie: express-session's nulls, and the key still expires.
        let b = Cookie {
            max_age: None,
            original: None,
            store_ttl: 60,
            ..c
        };
        assert!(b.to_json()["originalMaxAge"].is_null() && b.to_json()["expires"].is_null());
        assert_eq!(b.ttl(), 60);
    }

    #[test]
    fn a_merge_that_leaves_the_lifetime_alone_keeps_the_stored_one() {
        let lua = Lua::new();
        // Another request set 30 days after this one loaded the session with a day.
        let base = br#"{"a":1,"cookie":{"originalMaxAge":2592000000,"path":"/"}}"#;
        let before = to_record(br#"{"a":1,"cookie":{"originalMaxAge":86400000}}"#, BIG).unwrap();
        let t: LuaTable = lua.load("return { a = 2 }").eval().unwrap();
        let mut after = Record::from_table(&lua, &t).unwrap();
        after = codec::meta::with_meta(&after.0, &Meta::of_record(&before.0)).unwrap();
        let changes = JsonChanges::of(&before.diff(&after).unwrap()).unwrap();
        let (json, _) = changes
            .apply(base, &Cookie::standalone(86_400), BIG)
            .unwrap()
            .unwrap();
        assert!(json.contains(r#""originalMaxAge":2592000000"#), "{json}");
        // A request that sets a lifetime writes its own.
        let mine = Meta {
            max_age: Some(MaxAge::Ms(3_600_000)),
            ..Meta::default()
        };
        let set = codec::meta::with_meta(&after.0, &mine).unwrap();
        let changes = JsonChanges::of(&before.diff(&set).unwrap()).unwrap();
        let (json, _) = changes
            .apply(base, &Cookie::standalone(3600), BIG)
            .unwrap()
            .unwrap();
        assert!(json.contains(r#""originalMaxAge":3600000"#), "{json}");
    }

    /// A merge that leaves the bookkeeping alone, onto a session whose lifetime another request
    /// changed since this one loaded it: the cookie object (its exact `originalMaxAge`, and
    /// `expires`) and the key's TTL are the stored lifetime's, and the merge says so.
    #[test]
    fn a_merge_keeps_the_stored_lifetime_in_cookie_and_ttl() {
        use crate::lifetime::{Assumed, Rule};
        let lua = Lua::new();
        let loaded = to_record(br#"{"a":1,"cookie":{"originalMaxAge":3600000}}"#, BIG).unwrap();
        let t: LuaTable = lua.load("return { a = 2 }").eval().unwrap();
        let mine = codec::meta::with_meta(
            &Record::from_table(&lua, &t).unwrap().0,
            &Meta::of_record(&loaded.0),
        )
        .unwrap();
        let changes = JsonChanges::of(&loaded.diff(&mine).unwrap()).unwrap();
        let rule = Rule {
            ttl: 3600,
            max_age: Some(3600),
            absolute: None,
        };
        let loaded_meta = Meta::of_record(&loaded.0);
        let assumed = Assumed::new(rule, loaded_meta.max_age, loaded_meta.created);
        let cookie = Cookie::standalone(3600);
        // Another request set remember me (Node wrote a month and a few ms).
        let base = br#"{"a":1,"cookie":{"originalMaxAge":2592000123,"expires":"x","path":"/"}}"#;
        let applied = changes
            .apply_kept(base, &cookie, Some(&assumed), BIG)
            .unwrap()
            .unwrap();
        assert_eq!(applied.ttl, 2_592_001);
        assert_eq!(applied.kept.map(|k| k.max_age), Some(Some(2_592_001)));
        let json: Json = serde_json::from_str(&applied.json).unwrap();
        assert_eq!(json["a"], 2);
        assert_eq!(json["cookie"]["originalMaxAge"], 2_592_000_123u64);
        let expires = json["cookie"]["expires"].as_str().unwrap().to_string();
        let soon = clock::iso_date(clock::now_ms() + 2_500_000_000);
        assert!(expires > soon, "{expires}");
        // As loaded: the request's own lifetime, nothing kept.
        let same = br#"{"a":1,"cookie":{"originalMaxAge":3600000,"path":"/"}}"#;
        let applied = changes
            .apply_kept(same, &cookie, Some(&assumed), BIG)
            .unwrap()
            .unwrap();
        assert_eq!((applied.ttl, applied.kept), (3600, None));
        // A browser-session cookie stored meanwhile: the key lives the session's ttl.
        let browser = br#"{"a":1,"cookie":{"originalMaxAge":null,"expires":null,"path":"/"}}"#;
        let applied = changes
            .apply_kept(browser, &cookie, Some(&assumed), BIG)
            .unwrap()
            .unwrap();
        assert_eq!(applied.kept.map(|k| k.max_age), Some(None));
        assert_eq!(applied.ttl, 3600);
        let json: Json = serde_json::from_str(&applied.json).unwrap();
        assert_eq!(json["cookie"]["expires"], Json::Null);
    }

    /// A merge that rewrites `__meta` for another field (a login: a new owner) and assumed the
    /// lifetime it loaded keeps the stored `originalMaxAge` (another request's remember me) and
    /// follows it; without the assumption (its request set the lifetime) the cookie's stands.
    #[test]
    fn a_merge_that_rewrites_meta_for_another_field_keeps_the_stored_lifetime() {
        use crate::lifetime::{Assumed, Rule};
        let lua = Lua::new();
        let loaded = to_record(
            br#"{"a":1,"__meta":{"created":5,"owner":"ann"},"cookie":{"originalMaxAge":3600000}}"#,
            BIG,
        )
        .unwrap();
        let t: LuaTable = lua.load("return { a = 1 }").eval().unwrap();
        let bob = Meta {
            owner: Some("bob".into()),
            ..Meta::of_record(&loaded.0)
        };
        let mine = codec::meta::with_meta(&Record::from_table(&lua, &t).unwrap().0, &bob).unwrap();
        let changes = JsonChanges::of(&loaded.diff(&mine).unwrap()).unwrap();
        assert!(changes.touches_meta);
        let rule = Rule {
            ttl: 3600,
            max_age: Some(3600),
            absolute: None,
        };
        let assumed = Assumed::new(rule, bob.max_age, bob.created);
        let cookie = Cookie::standalone(3600);
        let base = br#"{"a":1,"__meta":{"created":5,"owner":"ann"},"cookie":{"originalMaxAge":2592000123,"expires":"x","path":"/"}}"#;
        let applied = changes
            .apply_kept(base, &cookie, Some(&assumed), BIG)
            .unwrap()
            .unwrap();
        assert_eq!(applied.owner.as_deref(), Some("bob"));
        assert_eq!(applied.ttl, 2_592_001);
        assert_eq!(applied.kept.map(|k| k.max_age), Some(Some(2_592_001)));
        let json: Json = serde_json::from_str(&applied.json).unwrap();
        assert_eq!(json["cookie"]["originalMaxAge"], 2_592_000_123u64);
        assert_eq!(json["__meta"]["owner"], "bob");
        assert_eq!(json["__meta"]["created"], 5);
        // Without the assumption: the lifetime handed over is written.
        let applied = changes
            .apply_kept(base, &cookie, None, BIG)
            .unwrap()
            .unwrap();
        assert_eq!((applied.ttl, applied.kept), (3600, None));
        let json: Json = serde_json::from_str(&applied.json).unwrap();
        assert_eq!(json["cookie"]["originalMaxAge"], 3_600_000);
    }

    /// What TOUCH is told to find, and what its reply of 2 reads as.
    #[test]
    fn a_touch_assumes_the_lifetime_as_the_json_says_it() {
        use crate::lifetime::{Assumed, Rule};
        let rule = |absolute| Rule {
            ttl: 60,
            max_age: Some(60),
            absolute,
        };
        let a = Assumed::new(rule(None), Some(MaxAge::Ms(5000)), Some(9));
        assert_eq!(touch_assumes(&a), ("5000".to_string(), String::new()));
        let a = Assumed::new(rule(Some(10)), Some(MaxAge::Browser), Some(9));
        assert_eq!(touch_assumes(&a), ("null".to_string(), "9".to_string()));
        let a = Assumed::new(rule(Some(10)), None, None);
        assert_eq!(touch_assumes(&a), ("none".to_string(), "none".to_string()));
        assert_eq!(touch_found(Some(-1), None), (Some(MaxAge::Browser), None));
        assert_eq!(
            touch_found(Some(7), Some(3)),
            (Some(MaxAge::Ms(7)), Some(3))
        );
        assert_eq!(touch_found(Some(0), None), (None, None));
        assert_eq!(touch_found(None, None), (None, None));
    }

    /// A creation time or lifetime beyond ±2^53, or not whole, is absent, as the other stores
    /// and the Redis scripts read it (`created` of 2^63 used to be read as i64::MAX here and as
    /// another number by TOUCH, which then ended the session at once under absoluteTimeout).
    #[test]
    fn a_created_or_lifetime_that_no_double_holds_exactly_is_absent() {
        let meta = |json: &str| meta_of(&parse_object(json.as_bytes(), BIG).unwrap());
        for c in [
            "9223372036854775808",
            "9223372036854775807",
            "18446744073709551615",
            "1e19",
            "-1e19",
            "9007199254740992",
            "-9007199254740992",
            "1.5",
        ] {
            let json = format!(r#"{{"__meta":{{"created":{c}}},"cookie":{{}}}}"#);
            assert_eq!(meta(&json).created, None, "created {c}");
            let json = format!(r#"{{"cookie":{{"originalMaxAge":{c}}}}}"#);
            assert_eq!(meta(&json).max_age, None, "originalMaxAge {c}");
        }
        let inside = r#"{"__meta":{"created":9007199254740991},"cookie":{"originalMaxAge":9007199254740991}}"#;
        let m = meta(inside);
        assert_eq!(m.created, Some(9_007_199_254_740_991));
        assert_eq!(m.max_age, Some(MaxAge::Ms(9_007_199_254_740_991)));
        assert_eq!(
            meta(r#"{"cookie":{"originalMaxAge":500}}"#).max_age,
            Some(MaxAge::Ms(500))
        );
        // What a TOUCH reply reports goes through the same rule.
        assert_eq!(touch_found(Some(i64::MAX), Some(i64::MIN)), (None, None));
        assert_eq!(touch_found(Some(1 << 53), Some(-(1 << 53))), (None, None));
        assert_eq!(
            touch_found(Some((1 << 53) - 1), Some(5)),
            (Some(MaxAge::Ms((1 << 53) - 1)), Some(5))
        );
    }

    #[test]
    fn a_load_reads_a_retired_id_during_its_grace_and_none_past_it() {
        let now = clock::now_ms();
        let retired = |until: i64| {
            format!(r#"{{"n":1,"__meta":{{"stale":{until}}},"cookie":{{"path":"/"}}}}"#)
        };
        let during = load_record(retired(now + 60_000).as_bytes(), BIG).unwrap();
        let during = during.expect("readable during the grace");
        assert_eq!(Meta::of_record(&during.0).stale, Some(now + 60_000));
        // Past it (a Node app kept the key alive): no session.
        assert!(
            load_record(retired(now - 1).as_bytes(), BIG)
                .unwrap()
                .is_none()
        );
        // Any number marks a retirement, as the scripts take it: one that is not whole (a
        // grace of 1.5 ms after 1970, long over) is a retired id past its grace.
        for mark in ["1.5", "-1e300"] {
            let odd = format!(r#"{{"n":1,"__meta":{{"stale":{mark}}},"cookie":{{}}}}"#);
            assert!(
                load_record(odd.as_bytes(), BIG).unwrap().is_none(),
                "{mark}"
            );
        }
        let far = br#"{"n":1,"__meta":{"stale":1e300},"cookie":{}}"#;
        let far = load_record(far, BIG).unwrap().expect("in its grace");
        assert_eq!(Meta::of_record(&far.0).stale, Some(i64::MAX));
        // Not retired: read as always; a stale mark of another type is no mark.
        let plain = br#"{"n":1,"__meta":{"stale":"x"},"cookie":{}}"#;
        assert!(load_record(plain, BIG).unwrap().is_some());
    }

    #[test]
    fn node_lifetimes_and_lua_bookkeeping_round_trip() {
        // A Node-written 30-day session: the lifetime comes back from the cookie object.
        let node = br#"{"n":1,"cookie":{"originalMaxAge":2592000000,"expires":"2026-12-29T00:00:00.000Z","httpOnly":true,"path":"/"}}"#;
        let r = to_record(node, BIG).unwrap();
        assert_eq!(
            Meta::of_record(&r.0).max_age,
            Some(MaxAge::Ms(2_592_000_000))
        );
        let browser = br#"{"cookie":{"originalMaxAge":null,"expires":null,"path":"/"}}"#;
        assert_eq!(
            Meta::of_record(&to_record(browser, BIG).unwrap().0).max_age,
            Some(MaxAge::Browser)
        );
        // Lua's bookkeeping goes to __meta, without the lifetime (the cookie object has it).
        let meta = Meta {
            created: Some(5),
            max_age: Some(MaxAge::Ms(2_592_000_000)),
            stale: None,
            owner: Some("u1".into()),
        };
        let with = codec::meta::with_meta(&r.0, &meta).unwrap();
        let json = from_record(&with, &Cookie::standalone(60)).unwrap();
        assert!(
            json.contains(r#""__meta":{"created":5,"owner":"u1"}"#),
            "{json}"
        );
        let unchanged = JsonChanges::of(&Changes::default()).unwrap();
        let cookie = Cookie::standalone(60);
        assert!(
            unchanged
                .apply(json.as_bytes(), &cookie, BIG)
                .unwrap()
                .is_some()
        );
        let back = Meta::of_record(&to_record(json.as_bytes(), BIG).unwrap().0);
        assert_eq!((back.created, back.owner.as_deref()), (Some(5), Some("u1")));
        let stale = br#"{"__meta":{"stale":1},"cookie":{}}"#;
        assert!(unchanged.apply(stale, &cookie, BIG).unwrap().is_none());
    }

    /// express-session stores `secure` as the request decided it under "auto", and builds a
    /// loaded session's Set-Cookie from what is stored: `false` would strip Node's `Secure`.
    #[test]
    fn secure_auto_is_stored_as_the_request_decided_and_never_downgraded() {
        let attributes = |secure| crate::cookie::Attributes {
            path: "/".into(),
            domain: None,
            http_only: true,
            secure,
            same_site: None,
            partitioned: false,
            priority: None,
            max_age: Some(60),
        };
        let (auto, never) = (attributes(Secure::Auto), attributes(Secure::Never));
        let ttl = crate::lifetime::Ttl::new(60).unwrap();
        let life = |https| Lifetime {
            cookie: Some(&auto),
            https,
            ..Lifetime::standalone(ttl)
        };
        let (https, http) = (Cookie::of(&life(true)), Cookie::of(&life(false)));
        assert!(https.secure && https.secure_auto);
        assert!(!http.secure && http.secure_auto);
        let secure_of =
            |json: &str| serde_json::from_str::<Json>(json).unwrap()["cookie"]["secure"].clone();
        let unchanged = JsonChanges::of(&Changes::default()).unwrap();
        let stored = br#"{"cookie":{"secure":true},"n":1}"#;
        let merged = unchanged.apply(stored, &http, BIG).unwrap().unwrap().0;
        assert_eq!(
            secure_of(&merged),
            Json::Bool(true),
            "a plain-HTTP write keeps it"
        );
        let stored = br#"{"cookie":{"secure":false},"n":1}"#;
        let merged = unchanged.apply(stored, &http, BIG).unwrap().unwrap().0;
        assert_eq!(secure_of(&merged), Json::Bool(false));
        let merged = unchanged.apply(stored, &https, BIG).unwrap().unwrap().0;
        assert_eq!(secure_of(&merged), Json::Bool(true));
        // Without "auto" the option decides.
        let never = Cookie::of(&Lifetime {
            cookie: Some(&never),
            https: true,
            ..Lifetime::standalone(ttl)
        });
        assert!(!never.secure && !never.secure_auto);
    }

    #[test]
    fn the_cookie_object_carries_chips_priority_and_browser_sessions() {
        let c = Cookie {
            max_age: None,
            original: None,
            partitioned: true,
            priority: Some(Priority::High),
            secure: true,
            same_site: Some(SameSite::None),
            ..Cookie::standalone(900)
        };
        // The key still expires, after the session's ttl.
        assert_eq!(c.ttl(), 900);
        let json = c.to_json().to_string();
        assert_eq!(
            json,
            r#"{"originalMaxAge":null,"partitioned":true,"priority":"high","expires":null,"secure":true,"httpOnly":true,"path":"/","sameSite":"none"}"#
        );
    }

    #[test]
    fn refuses_what_json_cannot_carry() {
        let lua = Lua::new();
        let t: LuaTable = lua.load("return { cookie = 1 }").eval().unwrap();
        let r = Record::from_table(&lua, &t).unwrap();
        assert!(
            from_record(&r, &Cookie::standalone(1))
                .unwrap_err()
                .contains("\"cookie\"")
        );
        let t: LuaTable = lua.load("return { ['\\255'] = 1 }").eval().unwrap();
        let r = Record::from_table(&lua, &t).unwrap();
        assert!(
            from_record(&r, &Cookie::standalone(1))
                .unwrap_err()
                .contains("not UTF-8")
        );
        assert!(from_record(&Record(b"junk".to_vec()), &Cookie::standalone(1)).is_err());
    }

    #[test]
    fn scan_patterns_escape_glob_bytes() {
        assert_eq!(
            scan_pattern(b"a*b?[c]\\\xff"),
            b"a\\*b\\?\\[c\\]\\\\\xff*".to_vec()
        );
    }
}

//! A session's lifetime: how a config's rule (`ttl`, `cookie.maxAge`, `absoluteTimeout`) turns
//! a session's bookkeeping (its own `maxAge`, its creation time) into a store TTL and a cookie
//! Max-Age, and what one write assumed about that bookkeeping (`Assumed`). Also the types
//! lifetimes are counted in: `Ttl` (a store TTL, checked where it enters) and `MaxAge` (a
//! session's own cookie lifetime). A leaf: it imports nothing else of the crate.
//!
//! A request commits with the bookkeeping it loaded. Another request may have changed the
//! session's lifetime since (remember me, in a browser's parallel requests), and a merge or a
//! touch keeps that stored lifetime: the store then finds the bookkeeping it holds differs from
//! what the write assumed, and the session keeps the lifetime `Assumed::kept` gives, store TTL
//! and cookie alike.

/// A store TTL: a lifetime in whole seconds, from 1 to `Ttl::MAX` (100 years).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ttl(u64);

impl Ttl {
    pub const MAX: u64 = 3_153_600_000;
    /// The default when a caller gives none: a day.
    pub const DAY: Ttl = Ttl(86_400);

    pub fn new(seconds: u64) -> Option<Ttl> {
        (1..=Ttl::MAX).contains(&seconds).then_some(Ttl(seconds))
    }

    pub fn seconds(self) -> u64 {
        self.0
    }
}

/// A session's own cookie lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxAge {
    /// Milliseconds, as express-session's `cookie.maxAge`.
    Ms(u64),
    /// A browser-session cookie (express-session's `maxAge = null`).
    Browser,
}

impl MaxAge {
    /// Whole seconds, at least 1.
    pub fn seconds(ms: u64) -> u64 {
        ms.div_ceil(1000).max(1)
    }
}

/// The config's lifetime rule, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `ttl`: the store TTL of a session without a lifetime of its own.
    pub ttl: u64,
    /// `cookie.maxAge`: the cookie lifetime of such a session (`None`: a browser-session cookie).
    pub max_age: Option<u64>,
    /// `absoluteTimeout`, counted from the session's creation.
    pub absolute: Option<u64>,
}

/// A lifetime in seconds: the store TTL, the cookie's Max-Age (`None`: a browser-session
/// cookie), and the latter before `absoluteTimeout` capped it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Term {
    pub ttl: u64,
    pub max_age: Option<u64>,
    pub original: Option<u64>,
}

impl Rule {
    /// The lifetime of a write now of a session whose own lifetime is `own` (else the
    /// config's), created at `created` (ms; counted only under `absoluteTimeout`).
    pub fn term(&self, own: Option<MaxAge>, created: Option<i64>, now: i64) -> Term {
        let (mut ttl, mut max_age) = match own {
            Some(MaxAge::Ms(ms)) => {
                let s = MaxAge::seconds(ms).min(Ttl::MAX);
                (s, Some(s))
            }
            Some(MaxAge::Browser) => (self.ttl, None),
            None => (self.ttl, self.max_age),
        };
        let original = max_age;
        if let Some(left) = self.time_left(created, now) {
            // Never past the absolute end, and at least a second (an expired one is refused at
            // its next load).
            let left = u64::try_from(left.saturating_add(999) / 1000)
                .unwrap_or(0)
                .max(1);
            ttl = ttl.min(left);
            max_age = max_age.map(|m| m.min(left));
        }
        Term {
            ttl,
            max_age,
            original,
        }
    }

    /// Milliseconds until `absoluteTimeout` ends a session created at `created` (negative:
    /// over), when it applies.
    pub fn time_left(&self, created: Option<i64>, now: i64) -> Option<i64> {
        let limit = self.absolute?;
        let created = created?;
        let end = created.saturating_add(i64::try_from(limit).ok()?.saturating_mul(1000));
        Some(end.saturating_sub(now))
    }
}

/// What one write assumed: the rule, and the bookkeeping it applied it to (the session's own
/// lifetime, and its creation time where `absoluteTimeout` reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assumed {
    pub rule: Rule,
    pub own: Option<MaxAge>,
    pub created: Option<i64>,
}

/// `Assumed::to_bytes`'s length: a flags byte and five 8-byte fields.
pub const ASSUMED_LEN: usize = 41;

const CONFIG_MAX_AGE: u8 = 1;
const ABSOLUTE: u8 = 2;
const OWN_BROWSER: u8 = 4;
const OWN_MS: u8 = 8;
const CREATED: u8 = 16;

impl Assumed {
    /// What a write under `rule` assumes about a session whose bookkeeping holds the lifetime
    /// `own` and the creation time `created` (`Meta::max_age` and `Meta::created`).
    pub fn new(rule: Rule, own: Option<MaxAge>, created: Option<i64>) -> Assumed {
        Assumed {
            rule,
            own,
            created: rule.absolute.and(created),
        }
    }

    /// The lifetime a session whose stored bookkeeping holds the lifetime `own` and the
    /// creation time `created` keeps, where that differs from the one this write assumed;
    /// `None` when the write's own lifetime stands. The common case (nothing changed) compares
    /// two fields, inline: every merge and touch asks.
    #[inline]
    pub fn kept(&self, own: Option<MaxAge>, created: Option<i64>, now: i64) -> Option<Term> {
        let created = self.rule.absolute.and(created);
        if own == self.own && created == self.created {
            return None;
        }
        self.changed(own, created, now)
    }

    /// `kept` where the stored bookkeeping is not the one assumed.
    #[cold]
    fn changed(&self, own: Option<MaxAge>, created: Option<i64>, now: i64) -> Option<Term> {
        let kept = self.rule.term(own, created, now);
        (kept != self.rule.term(self.own, self.created, now)).then_some(kept)
    }

    /// The same assumption about another stored bookkeeping (a retry after `kept`).
    pub fn about(&self, own: Option<MaxAge>, created: Option<i64>) -> Assumed {
        Assumed {
            rule: self.rule,
            own,
            created: self.rule.absolute.and(created),
        }
    }

    /// A fixed-size form, for the stores written in Lua (inside a patch, or beside a touch):
    /// opaque to them, read back by the module's own functions (`from_bytes`).
    pub fn to_bytes(self) -> [u8; ASSUMED_LEN] {
        let mut out = [0u8; ASSUMED_LEN];
        let mut flags = 0;
        let mut field =
            |i: usize, v: u64| out[1 + 8 * i..9 + 8 * i].copy_from_slice(&v.to_le_bytes());
        field(0, self.rule.ttl);
        if let Some(m) = self.rule.max_age {
            flags |= CONFIG_MAX_AGE;
            field(1, m);
        }
        if let Some(a) = self.rule.absolute {
            flags |= ABSOLUTE;
            field(2, a);
        }
        match self.own {
            Some(MaxAge::Browser) => flags |= OWN_BROWSER,
            Some(MaxAge::Ms(ms)) => {
                flags |= OWN_MS;
                field(3, ms);
            }
            None => {}
        }
        if let Some(c) = self.created {
            flags |= CREATED;
            field(4, c as u64);
        }
        out[0] = flags;
        out
    }

    /// What `to_bytes` wrote; `None` for anything else.
    pub fn from_bytes(b: &[u8]) -> Option<Assumed> {
        if b.len() != ASSUMED_LEN
            || b[0] & !(CONFIG_MAX_AGE | ABSOLUTE | OWN_BROWSER | OWN_MS | CREATED) != 0
        {
            return None;
        }
        let flags = b[0];
        let field = |i: usize| {
            let mut v = [0u8; 8];
            v.copy_from_slice(&b[1 + 8 * i..9 + 8 * i]);
            u64::from_le_bytes(v)
        };
        let own = match (flags & OWN_BROWSER != 0, flags & OWN_MS != 0) {
            (false, false) => None,
            (true, false) => Some(MaxAge::Browser),
            (false, true) => Some(MaxAge::Ms(field(3))),
            (true, true) => return None,
        };
        Some(Assumed {
            rule: Rule {
                ttl: field(0),
                max_age: (flags & CONFIG_MAX_AGE != 0).then(|| field(1)),
                absolute: (flags & ABSOLUTE != 0).then(|| field(2)),
            },
            own,
            created: (flags & CREATED != 0).then(|| field(4) as i64),
        })
    }
}

/// A lifetime as the stores written in Lua and `src/lua/store.lua` take it: `{ ttl =, maxAge =,
/// originalMaxAge = }` in seconds, `false` for a browser-session cookie.
pub fn term_table(lua: &mlua::Lua, t: &Term) -> mlua::Result<mlua::Table> {
    let out = lua.create_table_with_capacity(0, 3)?;
    out.raw_set("ttl", t.ttl)?;
    match t.max_age {
        Some(m) => out.raw_set("maxAge", m)?,
        None => out.raw_set("maxAge", false)?,
    }
    match t.original {
        Some(m) => out.raw_set("originalMaxAge", m)?,
        None => out.raw_set("originalMaxAge", false)?,
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn rule(absolute: Option<u64>) -> Rule {
        Rule {
            ttl: DAY,
            max_age: Some(DAY),
            absolute,
        }
    }

    #[test]
    fn ttls_are_checked_once() {
        assert!(Ttl::new(0).is_none());
        assert!(Ttl::new(Ttl::MAX + 1).is_none());
        assert_eq!(Ttl::new(60).map(Ttl::seconds), Some(60));
    }

    #[test]
    fn a_stored_lifetime_another_request_set_is_kept() {
        let month = MaxAge::Ms(30 * DAY * 1000);
        let a = Assumed::new(rule(None), None, None);
        // Nothing changed: the write's own lifetime stands.
        assert_eq!(a.kept(None, Some(5), 0), None, "created is not read here");
        // Remember me, a browser-session cookie, a shorter life.
        let kept = a.kept(Some(month), None, 0).unwrap();
        assert_eq!(
            kept,
            Term {
                ttl: 30 * DAY,
                max_age: Some(30 * DAY),
                original: Some(30 * DAY)
            }
        );
        let browser = a.kept(Some(MaxAge::Browser), None, 0).unwrap();
        assert_eq!(
            browser,
            Term {
                ttl: DAY,
                max_age: None,
                original: None
            }
        );
        let short = a.kept(Some(MaxAge::Ms(60_000)), None, 0).unwrap();
        assert_eq!(short.max_age, Some(60));
        // Set to what the config gives anyway: nothing to follow.
        assert_eq!(a.kept(Some(MaxAge::Ms(DAY * 1000)), None, 0), None);
        // And the other way: this write assumed a month, the store holds none of its own.
        let b = Assumed::new(rule(None), Some(month), None);
        assert_eq!(b.kept(None, None, 0).unwrap().max_age, Some(DAY));
    }

    #[test]
    fn the_absolute_timeout_caps_what_is_kept_from_the_stored_creation_time() {
        let month = MaxAge::Ms(30 * DAY * 1000);
        let created = 1_000_000;
        let a = Assumed::new(rule(Some(2 * DAY)), None, Some(created));
        let now = created + 1000 * DAY as i64;
        let kept = a.kept(Some(month), Some(created), now).unwrap();
        assert_eq!(kept.ttl, DAY);
        assert_eq!(kept.max_age, Some(DAY));
        assert_eq!(kept.original, Some(30 * DAY), "the lifetime before the cap");
    }

    #[test]
    fn assumptions_travel_as_bytes() {
        for own in [None, Some(MaxAge::Browser), Some(MaxAge::Ms(123_456))] {
            for created in [None, Some(-5), Some(1_764_400_000_000)] {
                for r in [
                    rule(None),
                    rule(Some(60)),
                    Rule {
                        ttl: 1,
                        max_age: None,
                        absolute: None,
                    },
                ] {
                    let a = Assumed {
                        rule: r,
                        own,
                        created,
                    };
                    assert_eq!(Assumed::from_bytes(&a.to_bytes()), Some(a));
                }
            }
        }
        assert_eq!(Assumed::from_bytes(b"short"), None);
        let mut odd = Assumed::new(rule(None), None, None).to_bytes();
        odd[0] = OWN_BROWSER | OWN_MS;
        assert_eq!(Assumed::from_bytes(&odd), None);
        odd[0] = 128;
        assert_eq!(Assumed::from_bytes(&odd), None);
    }
}

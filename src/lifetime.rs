//! A session's lifetime: how a config's rule (`ttl`, `cookie.maxAge`, `absoluteTimeout`) turns
//! a session's bookkeeping (its own `maxAge`, its creation time) into a store TTL and a cookie
//! Max-Age, and what one write assumed about that bookkeeping (`Assumed`).
//!
//! A request commits with the bookkeeping it loaded. Another request may have changed the
//! session's lifetime since (remember me, in a browser's parallel requests), and a merge or a
//! touch keeps that stored lifetime: the store then finds the bookkeeping it holds differs from
//! what the write assumed, and the session keeps the lifetime `Assumed::kept` gives, store TTL
//! and cookie alike.

use crate::codec::meta::{MaxAge, Meta};
use crate::store::Ttl;

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

impl Assumed {
    pub fn new(rule: Rule, meta: &Meta) -> Assumed {
        Assumed {
            rule,
            own: meta.max_age,
            created: rule.absolute.and(meta.created),
        }
    }

    /// The lifetime a session whose stored bookkeeping is `stored` keeps, where that differs
    /// from the one this write assumed; `None` when the write's own lifetime stands. The
    /// common case (nothing changed) compares two fields, inline: every merge and touch asks.
    #[inline]
    pub fn kept(&self, stored: &Meta, now: i64) -> Option<Term> {
        self.kept_of(stored.max_age, stored.created, now)
    }

    /// As `kept`, from the stored lifetime and creation time themselves.
    #[inline]
    pub fn kept_of(&self, own: Option<MaxAge>, created: Option<i64>, now: i64) -> Option<Term> {
        let created = self.rule.absolute.and(created);
        if own == self.own && created == self.created {
            return None;
        }
        self.changed(own, created, now)
    }

    /// `kept_of` where the stored bookkeeping is not the one assumed.
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

    fn meta(own: Option<MaxAge>, created: Option<i64>) -> Meta {
        Meta {
            max_age: own,
            created,
            ..Meta::default()
        }
    }

    #[test]
    fn a_stored_lifetime_another_request_set_is_kept() {
        let month = MaxAge::Ms(30 * DAY * 1000);
        let a = Assumed::new(rule(None), &meta(None, None));
        // Nothing changed: the write's own lifetime stands.
        assert_eq!(
            a.kept(&meta(None, Some(5)), 0),
            None,
            "created is not read here"
        );
        // Remember me, a browser-session cookie, a shorter life.
        let kept = a.kept(&meta(Some(month), None), 0).unwrap();
        assert_eq!(
            kept,
            Term {
                ttl: 30 * DAY,
                max_age: Some(30 * DAY),
                original: Some(30 * DAY)
            }
        );
        let browser = a.kept(&meta(Some(MaxAge::Browser), None), 0).unwrap();
        assert_eq!(
            browser,
            Term {
                ttl: DAY,
                max_age: None,
                original: None
            }
        );
        let short = a.kept(&meta(Some(MaxAge::Ms(60_000)), None), 0).unwrap();
        assert_eq!(short.max_age, Some(60));
        // Set to what the config gives anyway: nothing to follow.
        assert_eq!(a.kept(&meta(Some(MaxAge::Ms(DAY * 1000)), None), 0), None);
        // And the other way: this write assumed a month, the store holds none of its own.
        let b = Assumed::new(rule(None), &meta(Some(month), None));
        assert_eq!(b.kept(&meta(None, None), 0).unwrap().max_age, Some(DAY));
    }

    #[test]
    fn the_absolute_timeout_caps_what_is_kept_from_the_stored_creation_time() {
        let month = MaxAge::Ms(30 * DAY * 1000);
        let created = 1_000_000;
        let a = Assumed::new(rule(Some(2 * DAY)), &meta(None, Some(created)));
        let now = created + 1000 * DAY as i64;
        let kept = a.kept(&meta(Some(month), Some(created)), now).unwrap();
        assert_eq!(kept.ttl, DAY);
        assert_eq!(kept.max_age, Some(DAY));
        assert_eq!(kept.original, Some(30 * DAY), "the lifetime before the cap");
    }
}

//! The commit decision, as a state and small named predicates over it. Pure: no Lua, no store,
//! so the unit tests below pin every rule.

/// Where a request's session stands with the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not in the store (a first visit, or after `regenerate`).
    New,
    /// In the store, as loaded or last written by this request.
    Stored,
    /// The store lost it while the request ran (destroyed elsewhere, or expired): nothing is
    /// written under this id again.
    Gone,
    /// `destroy()` ran: the browser's cookie is cleared, unless the handler fills the new
    /// (empty) session, which is then stored like a new one.
    Destroyed,
}

/// The options that shape the decision.
#[derive(Clone, Copy, Debug, Default)]
pub struct Policy {
    pub resave: bool,
    pub rolling: bool,
    pub save_uninitialized: bool,
}

/// What the request did to its session.
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    pub state: State,
    /// The data differ from what was loaded (or last written).
    pub modified: bool,
    /// The session holds nothing (no data, no pending flash).
    pub empty: bool,
    /// `save()` or `regenerate()` asked for a write whatever the data.
    pub must_save: bool,
    /// `save()` already wrote; the cookie is still to go out.
    pub cookie_due: bool,
    /// `touch()` asked for the lifetime to be refreshed.
    pub touch: bool,
}

/// The store write a commit makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    None,
    /// The whole session (it is not in the store yet).
    Set,
    /// The top-level keys that changed, onto the store's current version.
    Merge,
}

/// The Set-Cookie line a response carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cookie {
    None,
    Session,
    Clear,
}

/// A new session is stored only once it holds something, unless told otherwise; a stored one
/// only when it changed, or under `resave`.
pub fn should_save(f: &Facts, p: &Policy) -> Write {
    match f.state {
        State::Gone => Write::None,
        State::New | State::Destroyed => {
            if f.must_save || !f.empty || (p.save_uninitialized && f.state == State::New) {
                Write::Set
            } else {
                Write::None
            }
        }
        State::Stored => {
            if f.modified || f.must_save || p.resave {
                Write::Merge
            } else {
                Write::None
            }
        }
    }
}

/// Under `rolling`, or when `touch()` asked, a stored session that was not written has its
/// TTL refreshed. So has one whose cookie is due from a `save()`: the touch is how the store
/// confirms it still holds the session (another request may have destroyed it, or a login
/// retired it, since), and only then does the cookie go out.
pub fn should_touch(f: &Facts, p: &Policy, write: Write) -> bool {
    (p.rolling || f.touch || f.cookie_due) && write == Write::None && f.state == State::Stored
}

/// The cookie goes out whenever the store's lifetime for the session was set or refreshed, so
/// the two expire together. `state` is the state after the store answered (a merge or touch
/// may have found the session gone).
pub fn should_set_cookie(state: State, stored_now: bool) -> Cookie {
    match state {
        State::Stored if stored_now => Cookie::Session,
        State::Destroyed => Cookie::Clear,
        _ => Cookie::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(state: State) -> Facts {
        Facts {
            state,
            modified: false,
            empty: true,
            must_save: false,
            cookie_due: false,
            touch: false,
        }
    }
    const DEFAULT: Policy = Policy {
        resave: false,
        rolling: false,
        save_uninitialized: false,
    };

    #[test]
    fn an_untouched_new_session_costs_nothing() {
        let f = facts(State::New);
        assert_eq!(should_save(&f, &DEFAULT), Write::None);
        assert!(!should_touch(&f, &DEFAULT, Write::None));
        assert_eq!(should_set_cookie(State::New, false), Cookie::None);
    }

    #[test]
    fn a_new_session_is_set_once_it_holds_data_or_is_told_to() {
        let mut f = facts(State::New);
        f.empty = false;
        assert_eq!(should_save(&f, &DEFAULT), Write::Set);
        let mut f = facts(State::New);
        f.must_save = true;
        assert_eq!(should_save(&f, &DEFAULT), Write::Set);
        let p = Policy {
            save_uninitialized: true,
            ..DEFAULT
        };
        assert_eq!(should_save(&facts(State::New), &p), Write::Set);
    }

    #[test]
    fn a_stored_session_merges_only_when_changed_or_resaved() {
        let mut f = facts(State::Stored);
        f.empty = false;
        assert_eq!(should_save(&f, &DEFAULT), Write::None);
        f.modified = true;
        assert_eq!(should_save(&f, &DEFAULT), Write::Merge);
        f.modified = false;
        let p = Policy {
            resave: true,
            ..DEFAULT
        };
        assert_eq!(should_save(&f, &p), Write::Merge);
    }

    #[test]
    fn rolling_touches_an_unwritten_stored_session_only() {
        let p = Policy {
            rolling: true,
            ..DEFAULT
        };
        assert!(should_touch(&facts(State::Stored), &p, Write::None));
        assert!(!should_touch(&facts(State::Stored), &p, Write::Merge));
        assert!(!should_touch(&facts(State::New), &p, Write::None));
        assert!(!should_touch(&facts(State::Gone), &p, Write::None));
        assert!(!should_touch(&facts(State::Stored), &DEFAULT, Write::None));
    }

    #[test]
    fn touch_refreshes_a_stored_session_without_rolling() {
        let mut f = facts(State::Stored);
        f.touch = true;
        assert!(should_touch(&f, &DEFAULT, Write::None));
        assert!(!should_touch(&f, &DEFAULT, Write::Merge));
        f.state = State::New;
        assert!(!should_touch(&f, &DEFAULT, Write::None));
        f.state = State::Gone;
        assert!(!should_touch(&f, &DEFAULT, Write::None));
    }

    #[test]
    fn a_gone_session_is_never_written_and_gets_no_cookie() {
        let mut f = facts(State::Gone);
        f.modified = true;
        f.must_save = true;
        f.empty = false;
        let p = Policy {
            resave: true,
            rolling: true,
            save_uninitialized: true,
        };
        assert_eq!(should_save(&f, &p), Write::None);
        assert!(!should_touch(&f, &p, Write::None));
        assert_eq!(should_set_cookie(State::Gone, false), Cookie::None);
    }

    #[test]
    fn destroy_clears_the_cookie_unless_the_new_session_is_filled() {
        let f = facts(State::Destroyed);
        let p = Policy {
            save_uninitialized: true,
            ..DEFAULT
        };
        assert_eq!(should_save(&f, &p), Write::None);
        assert_eq!(should_set_cookie(State::Destroyed, false), Cookie::Clear);
        let mut f = facts(State::Destroyed);
        f.empty = false;
        assert_eq!(should_save(&f, &DEFAULT), Write::Set);
        // After the set the session is stored: its own cookie replaces the clearing one.
        assert_eq!(should_set_cookie(State::Stored, true), Cookie::Session);
    }

    #[test]
    fn the_cookie_follows_the_store_lifetime() {
        assert_eq!(should_set_cookie(State::Stored, true), Cookie::Session);
        assert_eq!(should_set_cookie(State::Stored, false), Cookie::None);
    }

    /// A cookie `save()` left due goes out only once a touch found the session still held: a
    /// login elsewhere may have retired the id, or a logout destroyed it, since the save.
    #[test]
    fn a_cookie_due_from_save_waits_for_the_store() {
        let mut f = facts(State::Stored);
        f.cookie_due = true;
        f.empty = false;
        assert_eq!(should_save(&f, &DEFAULT), Write::None);
        assert!(should_touch(&f, &DEFAULT, Write::None));
        // The touch found it gone (state Gone), or never ran: no cookie.
        assert_eq!(should_set_cookie(State::Gone, false), Cookie::None);
        assert_eq!(should_set_cookie(State::Stored, false), Cookie::None);
        assert_eq!(should_set_cookie(State::Stored, true), Cookie::Session);
        // A write made since carries the cookie itself.
        f.modified = true;
        assert_eq!(should_save(&f, &DEFAULT), Write::Merge);
        assert!(!should_touch(&f, &DEFAULT, Write::Merge));
    }

    /// Every state, fact and policy: the rules' invariants hold across all 1,024 combinations.
    #[test]
    fn the_invariants_hold_for_every_combination() {
        let states = [State::New, State::Stored, State::Gone, State::Destroyed];
        for &state in &states {
            for bits in 0..(1u32 << 8) {
                let bit = |i: u32| bits & (1 << i) != 0;
                let f = Facts {
                    state,
                    modified: bit(0),
                    empty: bit(1),
                    must_save: bit(2),
                    cookie_due: bit(3),
                    touch: bit(4),
                };
                let p = Policy {
                    resave: bit(5),
                    rolling: bit(6),
                    save_uninitialized: bit(7),
                };
                let write = should_save(&f, &p);
                let touch = should_touch(&f, &p, write);
                let case = format!("{f:?} {p:?}");
                // A session the store lost is never written or touched again.
                if state == State::Gone {
                    assert_eq!((write, touch), (Write::None, false), "{case}");
                }
                // A whole set only for what the store does not hold; a merge only onto what it
                // holds; a touch only of a stored session nothing is written to.
                match write {
                    Write::Set => assert!(matches!(state, State::New | State::Destroyed), "{case}"),
                    Write::Merge => assert_eq!(state, State::Stored, "{case}"),
                    Write::None => {}
                }
                assert!(
                    !touch || (state == State::Stored && write == Write::None),
                    "{case}"
                );
                // save() or regenerate() always writes a session that is not gone.
                if f.must_save && state != State::Gone {
                    assert_ne!(write, Write::None, "{case}");
                }
                // A stored session whose cookie is due, or that rolls, is either written or
                // touched: the store answers before any cookie goes out.
                if state == State::Stored && (f.cookie_due || p.rolling || f.touch) {
                    assert!(write != Write::None || touch, "{case}");
                }
            }
        }
        // The cookie: only for a session the store holds and just set or refreshed, or the
        // clearing one after destroy().
        for &state in &states {
            for stored_now in [false, true] {
                let want = match state {
                    State::Stored if stored_now => Cookie::Session,
                    State::Destroyed => Cookie::Clear,
                    _ => Cookie::None,
                };
                assert_eq!(
                    should_set_cookie(state, stored_now),
                    want,
                    "{state:?} {stored_now}"
                );
            }
        }
    }
}

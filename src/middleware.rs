//! The request lifecycle: load a session from a Cookie header, and commit it exactly once,
//! deciding with small named predicates what to store and which Set-Cookie to send.
//!
//! This is the framework-agnostic core; the HoneyMoon middleware (lua/.../middleware.lua) and
//! the server adapters are thin layers over `load` and `commit`.

use crate::codec::{Changes, Record};
use crate::cookie;
use crate::id;
use crate::options::Options;
use crate::session::Session;
use crate::store::{self, Lifetime, Loaded, Merged, Store};
use mlua::prelude::*;
use std::rc::Rc;

pub struct Manager {
    pub options: Options,
    pub store: Rc<dyn Store>,
    /// Each session's request table, weak in keys and values: a session finds its request to
    /// keep `req.sessionID` current without a strong reference from Rust, which would make the
    /// req <-> session cycle uncollectable (weak values also stop LuaJIT, which has no
    /// ephemerons, from keeping the pair alive).
    pub requests: LuaTable,
}

impl Manager {
    pub fn new(lua: &Lua, opts: Option<LuaTable>) -> LuaResult<Manager> {
        let (options, store) = Options::parse(opts, lua)?;
        let requests = lua.create_table()?;
        let weak = lua.create_table()?;
        weak.raw_set("__mode", "kv")?;
        requests.set_metatable(Some(weak))?;
        Ok(Manager {
            options,
            store: store::from_option(store)?,
            requests,
        })
    }

    /// The id named by a validly signed cookie, if the store still holds it (then its record).
    /// Unknown, expired, unsigned and tampered ids are never adopted.
    /// Also returns the cookie value to send back unchanged, when the signing secret made it.
    fn find(&self, lua: &Lua, header: &str) -> LuaResult<Option<(String, Loaded, Option<String>)>> {
        for value in cookie::find(header, &self.options.name) {
            let Some((id, current)) = self.options.signer.unsign(&value) else {
                continue;
            };
            if !id::looks_valid(id) {
                continue;
            }
            if let Some(loaded) = self.store.get(lua, id)? {
                let id = id.to_string();
                let resend = current.then_some(value);
                return Ok(Some((id, loaded, resend)));
            }
        }
        Ok(None)
    }

    /// Sets `req.sessionID` on the session's request, if it has one.
    pub fn follow_id(&self, ud: &LuaAnyUserData, id: &str) -> LuaResult<()> {
        if let LuaValue::Table(req) = self.requests.raw_get::<LuaValue>(ud)? {
            req.raw_set("sessionID", id)?;
        }
        Ok(())
    }

    pub fn load(
        self: &Rc<Self>,
        lua: &Lua,
        header: Option<&str>,
        secure_request: bool,
        req: Option<LuaTable>,
    ) -> LuaResult<(LuaAnyUserData, String)> {
        let found = match header {
            Some(h) => self.find(lua, h)?,
            None => None,
        };
        let session = match found {
            Some((id, loaded, resend)) => {
                let mut s = Session::new(self.clone(), id, secure_request);
                s.is_new = false;
                s.cookie_value = resend;
                s.version = loaded.version;
                s.load_record(lua, loaded.record)?;
                s
            }
            None => Session::new(self.clone(), new_id()?, secure_request),
        };
        self.attach(lua, session, req)
    }

    /// A new session under an id drawn earlier by `new_id` (the middleware draws the id first
    /// and makes the session only when a handler first uses it).
    pub fn fresh(
        self: &Rc<Self>,
        lua: &Lua,
        id: &str,
        secure_request: bool,
        req: Option<LuaTable>,
    ) -> LuaResult<(LuaAnyUserData, String)> {
        if !id::looks_valid(id) {
            return Err(LuaError::runtime(
                "honeymoon_session: not an id this module drew",
            ));
        }
        let session = Session::new(self.clone(), id.to_string(), secure_request);
        self.attach(lua, session, req)
    }

    fn attach(
        &self,
        lua: &Lua,
        session: Session,
        req: Option<LuaTable>,
    ) -> LuaResult<(LuaAnyUserData, String)> {
        let id = session.id.clone();
        let ud = lua.create_userdata(session)?;
        if let Some(req) = req {
            req.raw_set("sessionID", id.as_str())?;
            self.requests.raw_set(&ud, req)?;
        }
        Ok((ud, id))
    }

    /// A new session is stored only once it holds something, unless told otherwise.
    fn should_store_new(&self, s: &Session, record: &Record) -> bool {
        s.must_save || self.options.save_uninitialized || !record.is_empty()
    }

    /// An unmodified existing session is written back only under `resave`.
    fn should_resave(&self) -> bool {
        self.options.resave
    }

    /// Under `rolling`, every response refreshes the store TTL and the cookie's expiry.
    fn should_touch(&self) -> bool {
        self.options.rolling
    }

    /// Writes the session to the store now; returns whether anything was written.
    fn write(&self, lua: &Lua, s: &mut Session, force: bool) -> LuaResult<bool> {
        if s.gone {
            return Ok(false);
        }
        let life = Lifetime {
            ttl: self.options.ttl,
            cookie: Some(&self.options.cookie),
        };
        let record = s.record(lua)?;
        if s.is_new {
            if !(force || self.should_store_new(s, &record)) {
                return Ok(false);
            }
            s.version = self.store.set(lua, &s.id, &record, &life)?;
        } else {
            let changes = if record == s.snapshot {
                Changes::default()
            } else {
                s.snapshot.diff(&record)?
            };
            if changes.is_empty() && !(force || self.should_resave()) {
                return Ok(false);
            }
            match self
                .store
                .merge(lua, &s.id, &changes, &record, s.version.as_deref(), &life)?
            {
                Merged::Written(version) => s.version = version,
                Merged::Gone => {
                    s.gone = true;
                    return Ok(false);
                }
            }
        }
        s.snapshot = record;
        s.is_new = false;
        Ok(true)
    }

    /// `session:save()`: store now; the cookie goes out at commit.
    pub fn save(&self, lua: &Lua, s: &mut Session) -> LuaResult<()> {
        self.write(lua, s, true)?;
        s.must_save = false;
        s.cookie_due = true;
        Ok(())
    }

    /// Commits once: stores what needs storing and returns the Set-Cookie line to send, if any.
    /// The cookie goes out whenever the store's lifetime for the session was set or refreshed,
    /// so the two expire together.
    pub fn commit(&self, lua: &Lua, s: &mut Session) -> LuaResult<Option<String>> {
        if s.committed {
            return Ok(None);
        }
        s.committed = true;
        let force = s.must_save;
        let mut send = self.write(lua, s, force)? || s.cookie_due;
        if !send && !s.is_new && !s.gone && self.should_touch() {
            let life = Lifetime {
                ttl: self.options.ttl,
                cookie: Some(&self.options.cookie),
            };
            send = self.store.touch(lua, &s.id, &life)?;
            s.gone = !send;
        }
        let (name, attrs) = (&self.options.name, &self.options.cookie);
        if send && !s.is_new && !s.gone {
            let signed = match s.cookie_value.take() {
                Some(v) => v,
                None => self.options.signer.sign(&s.id),
            };
            let value = cookie::encode_value(&signed);
            return Ok(Some(attrs.line(name, &value, s.secure_request)));
        }
        if s.clear_cookie {
            return Ok(Some(attrs.clearing_line(name, s.secure_request)));
        }
        Ok(None)
    }
}

/// A fresh session id.
pub fn new_id() -> LuaResult<String> {
    id::generate().map_err(LuaError::runtime)
}

/// The Lua handle on a Manager: the core API (`load`, `commit`) adapters are built on.
#[derive(Clone)]
pub struct Core(pub Rc<Manager>);

impl LuaUserData for Core {
    fn add_fields<F: LuaUserDataFields<Self>>(f: &mut F) {
        f.add_field_method_get("name", |_, c| Ok(c.0.options.name.clone()));
    }

    fn add_methods<M: LuaUserDataMethods<Self>>(m: &mut M) {
        m.add_method(
            "load",
            |lua, c, (header, secure, req): (Option<LuaString>, Option<bool>, Option<LuaTable>)| {
                let secure = secure.unwrap_or(false);
                // Borrowed, not copied; a header that is not UTF-8 is read lossily.
                match header.as_ref().map(|h| h.to_str()) {
                    Some(Ok(h)) => c.0.load(lua, Some(&h), secure, req),
                    Some(Err(_)) => {
                        let lossy = header.as_ref().map(|h| h.to_string_lossy());
                        c.0.load(lua, lossy.as_deref(), secure, req)
                    }
                    None => c.0.load(lua, None, secure, req),
                }
            },
        );
        // For the middleware only: an id now, the session on first use (see middleware.lua).
        m.add_function("_id", |_, ()| new_id());
        m.add_method("_fresh", |lua, c, (id, secure): (String, Option<bool>)| {
            c.0.fresh(lua, &id, secure.unwrap_or(false), None)
        });
        // For the middleware: the one Set-Cookie line or nil, without a table.
        m.add_method("_commit", |lua, c, ud: LuaAnyUserData| {
            let mut s = ud.borrow_mut::<Session>()?;
            c.0.commit(lua, &mut s)
        });
        m.add_method("commit", |lua, c, ud: LuaAnyUserData| {
            let mut s = ud.borrow_mut::<Session>()?;
            let out = lua.create_table()?;
            if let Some(line) = c.0.commit(lua, &mut s)? {
                out.raw_set(1, line)?;
            }
            Ok(out)
        });
    }
}

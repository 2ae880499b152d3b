//! RedisStore: sessions in Redis (or Valkey), stored as connect-redis stores them, so Node's
//! express-session and this module share sessions. Three files, by job:
//!
//! - `format`: the stored form (JSON <-> record, the `cookie` object, a patch applied onto the
//!   loaded JSON, the compare-and-set script). Pure: no I/O, no Lua.
//! - `blocking`: the native `RedisStore`, which does its own socket I/O (blocking servers).
//! - `protocol`: what `honeymoon_session.stores.redis` needs from Rust (`hs._redis`): commands
//!   packed and replies parsed by the redis crate, and the stored form; its sockets are Lua's,
//!   so it never blocks an event loop.

mod blocking;
mod format;
mod protocol;

pub use blocking::RedisStore;
pub use protocol::lua_exports;

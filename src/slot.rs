//! Where a top-level key of a stored session goes (`slot`): the session API's method names,
//! flash messages and the bookkeeping are kept apart from the data. The engine sorts keys with
//! it when it decodes a session, and the options check the `index` field against it.

use crate::codec::Slot;
use crate::codec::meta::META_KEY;

/// The session API's method names (defined in `src/lua/session.lua`): data keys with these
/// names are kept beside the data so that `session:get(...)` still finds the method.
pub const METHODS: [&str; 15] = [
    "get",
    "set",
    "has",
    "all",
    "forget",
    "flash",
    "getFlash",
    "clearFlash",
    "save",
    "destroy",
    "regenerate",
    "getId",
    "touch",
    "reload",
    // Not a method: `req.session.cookie` is the session's cookie object (express-session's
    // shape), so a data key of that name is kept beside the data like a method name.
    "cookie",
];

/// Where flash messages live in the stored record, one key per message: `__flash:<key>` (a
/// record written before that holds them all in one table under `__flash`, still read). Never
/// shown as data.
pub const FLASH_KEY: &str = "__flash";
const FLASH_PREFIX: &[u8] = b"__flash:";

/// The stored key of flash message `key`.
pub fn flash_entry(key: &[u8]) -> Vec<u8> {
    [FLASH_PREFIX, key].concat()
}

pub fn slot(key: &[u8]) -> Slot {
    if key == FLASH_KEY.as_bytes() {
        Slot::Flash
    } else if key.starts_with(FLASH_PREFIX) {
        Slot::FlashMessage(FLASH_PREFIX.len())
    } else if key == META_KEY.as_bytes() {
        Slot::Meta
    } else if METHODS.iter().any(|m| m.as_bytes() == key) {
        Slot::Shadow
    } else {
        Slot::Data
    }
}

/// Why a data key may not be stored (the message session.lua's guard gives): the keys the
/// record keeps flash messages and the bookkeeping under. A data table holds them only when
/// put in past the guard (`rawset`); stored, they would be read back as flash messages or as
/// the session's lifetime, creation time and owner.
pub fn reserved(key: &[u8]) -> Option<&'static str> {
    // Most keys do not start with "__": one compare for them.
    if !key.starts_with(b"__") {
        return None;
    }
    match slot(key) {
        Slot::Flash => Some(
            "honeymoon_session: the session key \"__flash\" is reserved for flash messages; use flash() and getFlash()",
        ),
        Slot::FlashMessage(_) => Some(
            "honeymoon_session: the session key prefix \"__flash:\" is reserved for flash messages; use flash() and getFlash()",
        ),
        Slot::Meta => Some(
            "honeymoon_session: the session key \"__meta\" is reserved for the session's own bookkeeping (its lifetime, creation time and owner); use session.cookie.maxAge for the lifetime",
        ),
        Slot::Data | Slot::Shadow => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_messages_are_stored_one_key_each() {
        let key = flash_entry(b"notice");
        assert_eq!(key, b"__flash:notice");
        assert!(slot(&key) == Slot::FlashMessage(FLASH_PREFIX.len()));
        assert!(
            slot(b"__flash") == Slot::Flash,
            "the earlier one-table form"
        );
        assert!(slot(b"__flashy") == Slot::Data);
        assert!(
            slot(b"__flash:") == Slot::FlashMessage(8),
            "an empty message key"
        );
    }
}

//! Session ids: 192 bits from the OS CSPRNG, base64url without padding (32 characters),
//! the same shape as express-session's ids, so the two can share a store.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::cell::RefCell;

const ID_BYTES: usize = 24;
pub const ID_LEN: usize = 32;
/// Random bytes are drawn from the OS this many at a time (one syscall per 64 ids).
const POOL: usize = ID_BYTES * 64;

struct Pool {
    bytes: [u8; POOL],
    used: usize,
    /// The fork generation the bytes were drawn in (see `fork`).
    generation: u64,
}

thread_local! {
    static POOL_CELL: RefCell<Pool> = const { RefCell::new(Pool { bytes: [0; POOL], used: POOL, generation: 0 }) };
}

/// Fills `out` with bytes from the OS CSPRNG.
pub fn os_random(out: &mut [u8]) -> Result<(), String> {
    getrandom::fill(out).map_err(|e| {
        format!(
            "honeymoon_session: the OS random source failed: {e}; sessions need it for ids and \
             the default secret, so let this process call getrandom (or read /dev/urandom)"
        )
    })
}

/// Writes a fresh session id into `out`, without allocating. The pool is discarded after a
/// fork (nginx forks its workers), so two processes never hand out the same bytes.
pub fn generate_into(out: &mut [u8; ID_LEN]) -> Result<(), String> {
    POOL_CELL.with(|cell| {
        let mut pool = cell.borrow_mut();
        let generation = crate::fork::generation();
        if pool.used + ID_BYTES > POOL || pool.generation != generation {
            os_random(&mut pool.bytes)?;
            pool.used = 0;
            pool.generation = generation;
        }
        let start = pool.used;
        let drawn = &mut pool.bytes[start..start + ID_BYTES];
        let written = URL_SAFE_NO_PAD.encode_slice(&*drawn, out);
        // Wipe what was handed out so it cannot leak later from this buffer.
        drawn.fill(0);
        pool.used += ID_BYTES;
        match written {
            Ok(ID_LEN) => Ok(()),
            _ => {
                Err("honeymoon_session: an id did not encode to 32 characters (a bug)".to_string())
            }
        }
    })
}

/// The longest id a signed cookie may name. Ours are `ID_LEN` characters, as are
/// express-session's by default; a Node app with its own `genid` signs others (a UUID has 36).
pub const MAX_COOKIE_ID: usize = 128;

/// Whether a signed cookie's id has a shape we look up (a cheap check before the store): 1 to
/// `MAX_COOKIE_ID` characters of the URL-safe base64 alphabet, which ours, express-session's
/// and UUIDs all use, and which every store key and SharedDictStore's NUL-separated owner
/// lists can hold.
pub fn looks_valid(id: &str) -> bool {
    (1..=MAX_COOKIE_ID).contains(&id.len()) && id.bytes().all(|b| ID_BYTE[b as usize])
}

/// The bytes `looks_valid` lets in, by value: one load per byte where the three ranges and two
/// characters took a chain of comparisons (every load checks the cookie's id).
static ID_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_url_safe() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let mut out = [0u8; ID_LEN];
            generate_into(&mut out).unwrap();
            let id = String::from_utf8(out.to_vec()).unwrap();
            assert!(looks_valid(&id), "{id}");
            assert!(seen.insert(id));
        }
        assert!(looks_valid("3b241101-e2bb-4255-8caf-4136c566a962")); // a Node genid's UUID
        assert!(!looks_valid(""));
        assert!(!looks_valid(&"a".repeat(MAX_COOKIE_ID + 1)));
        assert!(!looks_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."));
        assert!(!looks_valid("aaaa\0aaaa"));
        // The table lets in exactly the bytes of the URL-safe base64 alphabet.
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            assert_eq!(ID_BYTE[b as usize], want, "byte {b}");
        }
    }
}

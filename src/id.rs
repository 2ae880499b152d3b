//! Session ids: 192 bits from the OS CSPRNG, base64url without padding (32 characters),
//! the same shape as express-session's ids, so the two can share a store.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::cell::RefCell;

const ID_BYTES: usize = 24;
pub const ID_LEN: usize = 32;
/// Ids are drawn from the OS this many at a time (one syscall per 64 ids), and encoded together.
const POOL_IDS: usize = 64;
const RAW: usize = ID_BYTES * POOL_IDS;
const ENCODED: usize = ID_LEN * POOL_IDS;

struct Pool {
    /// The bytes drawn, wiped as soon as they are encoded.
    raw: [u8; RAW],
    /// The ids' characters: 24 bytes encode to 32 characters without padding, so the pool's
    /// encoding is the ids' encodings one after another. Each is wiped as it is handed out.
    ids: [u8; ENCODED],
    /// Characters handed out.
    used: usize,
    /// The fork generation the bytes were drawn in (see `fork`).
    generation: u64,
}

thread_local! {
    static POOL_CELL: RefCell<Pool> = const {
        RefCell::new(Pool { raw: [0; RAW], ids: [0; ENCODED], used: ENCODED, generation: 0 })
    };
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

/// Draws the pool's next 64 ids. Encoded in one call: the base64 crate encodes a long input
/// in blocks, where one id's 24 bytes took its byte-by-byte path (about 320 instructions per id,
/// against about 40 here).
fn refill(pool: &mut Pool, generation: u64) -> Result<(), String> {
    // Marked used up first: if the draw or the encoding fails, nothing half-made is handed out.
    pool.used = ENCODED;
    os_random(&mut pool.raw)?;
    // A slice, not the array: passed by value, the bytes would be copied where nothing wipes them.
    let written = URL_SAFE_NO_PAD.encode_slice(pool.raw.as_slice(), &mut pool.ids);
    // Wipe the bytes drawn: the ids are now only in `ids`, each wiped as it is handed out.
    pool.raw.fill(0);
    match written {
        Ok(ENCODED) => {
            pool.used = 0;
            pool.generation = generation;
            Ok(())
        }
        _ => Err("honeymoon_session: ids did not encode to 32 characters each (a bug)".to_string()),
    }
}

/// Writes a fresh session id into `out`, without allocating. The pool is discarded after a
/// fork (nginx forks its workers), so two processes never hand out the same bytes.
pub fn generate_into(out: &mut [u8; ID_LEN]) -> Result<(), String> {
    POOL_CELL.with(|cell| {
        let mut pool = cell.borrow_mut();
        let generation = crate::fork::generation();
        if pool.used + ID_LEN > ENCODED || pool.generation != generation {
            refill(&mut pool, generation)?;
        }
        let start = pool.used;
        let id = &mut pool.ids[start..start + ID_LEN];
        out.copy_from_slice(id);
        // Wipe what was handed out so it cannot leak later from this buffer.
        id.fill(0);
        pool.used += ID_LEN;
        Ok(())
    })
}

/// The longest id a signed cookie may name. Ours are `ID_LEN` characters, as are
/// express-session's by default; a Node app with its own `genid` signs others (a UUID has 36).
pub const MAX_COOKIE_ID: usize = 128;

/// Whether a signed cookie's id has a shape we look up (a cheap check before the store): 1 to
/// `MAX_COOKIE_ID` characters of the URL-safe base64 alphabet, which ours, express-session's
/// and UUIDs all use, and which every store key and SharedDictStore's NUL-separated owner
/// lists can hold.
pub fn looks_valid(id: &[u8]) -> bool {
    (1..=MAX_COOKIE_ID).contains(&id.len()) && id.iter().all(|&b| ID_BYTE[b as usize])
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
    fn the_pool_keeps_no_drawn_byte_nor_id_handed_out() {
        // Across several refills: every id is 24 random bytes in base64url.
        for _ in 0..(POOL_IDS * 3 + 5) {
            let mut out = [0u8; ID_LEN];
            generate_into(&mut out).unwrap();
            let bytes = URL_SAFE_NO_PAD.decode(out).unwrap();
            assert_eq!(bytes.len(), ID_BYTES);
        }
        POOL_CELL.with(|cell| {
            let pool = cell.borrow();
            assert!(pool.used > 0 && pool.used < ENCODED, "{}", pool.used);
            assert!(
                pool.raw.iter().all(|&b| b == 0),
                "drawn bytes left in the pool"
            );
            assert!(
                pool.ids[..pool.used].iter().all(|&b| b == 0),
                "an id handed out left in the pool"
            );
            assert!(pool.ids[pool.used..].iter().all(|&b| ID_BYTE[b as usize]));
        });
    }

    #[test]
    fn ids_are_unique_and_url_safe() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let mut out = [0u8; ID_LEN];
            generate_into(&mut out).unwrap();
            let id = String::from_utf8(out.to_vec()).unwrap();
            assert!(looks_valid(id.as_bytes()), "{id}");
            assert!(seen.insert(id));
        }
        assert!(looks_valid(b"3b241101-e2bb-4255-8caf-4136c566a962")); // a Node genid's UUID
        assert!(!looks_valid(b""));
        assert!(!looks_valid("a".repeat(MAX_COOKIE_ID + 1).as_bytes()));
        assert!(!looks_valid(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."));
        assert!(!looks_valid(b"aaaa\0aaaa"));
        // The table lets in exactly the bytes of the URL-safe base64 alphabet.
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            assert_eq!(ID_BYTE[b as usize], want, "byte {b}");
        }
    }
}

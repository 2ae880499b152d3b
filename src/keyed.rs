//! Hash map keys seeded from the OS random source, fallibly. std's `RandomState` draws its
//! keys the first time a thread makes one and panics when that source fails (a chroot without
//! /dev/urandom, a sandbox that refuses getrandom); here that failure is an error in the
//! module's shape, raised where the map's owner is made (a MemoryStore).

use std::hash::{BuildHasher, DefaultHasher, Hasher};

/// A `BuildHasher` keyed by 128 random bits: std's hasher (SipHash-1-3) after those bits, so
/// each hash starts from a state only this process knows, as a keyed `RandomState` does
/// (flooding one bucket needs the key). Cloning a prepared hasher costs no more per hash.
#[derive(Clone)]
pub struct Keyed(DefaultHasher);

impl Keyed {
    pub fn new() -> Result<Keyed, String> {
        let mut key = [0u8; 16];
        crate::id::os_random(&mut key)?;
        let mut hasher = DefaultHasher::new();
        hasher.write(&key);
        Ok(Keyed(hasher))
    }
}

impl BuildHasher for Keyed {
    type Hasher = DefaultHasher;

    fn build_hasher(&self) -> DefaultHasher {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_keys_hash_alike_only_by_chance() {
        let (a, b) = (Keyed::new().unwrap(), Keyed::new().unwrap());
        // One key hashes a value the same way every time, another key differently.
        assert_eq!(a.hash_one(b"session"), a.hash_one(b"session"));
        assert_ne!(a.hash_one(b"session"), b.hash_one(b"session"));
        assert_ne!(a.hash_one(b"session"), DefaultHasher::new().finish());
    }
}

//! Fork detection: a process-wide generation number that a `pthread_atfork` child handler
//! bumps. Per-process state (the id pool, a Redis connection) remembers the generation it was
//! made in and is replaced when the number moved, so a child never reuses its parent's random
//! bytes or socket. Reading it is one atomic load, where `getpid()` is a system call.

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(1);
static REGISTER: Once = Once::new();

extern "C" fn in_child() {
    // Async-signal-safe: one atomic add.
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// The current process generation; it changes in the child after every `fork()`.
pub fn generation() -> u64 {
    REGISTER.call_once(|| {
        // SAFETY: `in_child` is an `extern "C"` function that only performs an atomic add, which
        // is allowed between fork and exec; the two other handlers are absent (None).
        let rc = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        if rc != 0 {
            // Without the handler, fall back to never trusting pooled state across calls: each
            // generation() call then looks like a new process to its callers.
            FALLBACK.store(true, Ordering::SeqCst);
        }
    });
    if FALLBACK.load(Ordering::Relaxed) {
        return GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    }
    GENERATION.load(Ordering::Acquire)
}

static FALLBACK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(test)]
mod tests {
    #[test]
    fn generation_is_stable_without_fork() {
        let a = super::generation();
        assert_eq!(a, super::generation());
    }
}

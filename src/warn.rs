//! Warnings on stderr that can never fail.
//!
//! `eprintln!` panics when stderr is a pipe whose reader is gone (nginx ignores SIGPIPE, so
//! every `session()` then failed with "failed printing to stderr"), and a write to such a pipe
//! raises SIGPIPE, whose default action kills the process (exit 141). A warning is not worth
//! either: this writes with `write(2)` while SIGPIPE is blocked for the calling thread, takes
//! back a SIGPIPE the write raised, and ignores every error (a closed stderr, a full pipe).

/// Writes `line` and a newline to stderr, best effort.
pub fn warn(line: &str) {
    let mut msg = Vec::new();
    if msg.try_reserve(line.len() + 1).is_err() {
        return;
    }
    msg.extend_from_slice(line.as_bytes());
    msg.push(b'\n');
    // SAFETY: the signal-set calls get pointers to initialised local sets; `write` gets a
    // pointer and length from a live slice; fd 2 may be closed or anything else, and every
    // failure is ignored. The thread's signal mask is restored before returning.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        libc::sigemptyset(&mut pending);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old) != 0 {
            return; // SIGPIPE could not be held back: no warning rather than a dead process
        }
        // A SIGPIPE pending before this write is someone else's: leave it for them.
        let was_pending =
            libc::sigpending(&mut pending) == 0 && libc::sigismember(&pending, libc::SIGPIPE) == 1;
        let mut rest: &[u8] = &msg;
        let mut broken = false;
        while !rest.is_empty() {
            let n = libc::write(2, rest.as_ptr().cast(), rest.len());
            if n > 0 {
                rest = rest.get(n as usize..).unwrap_or_default();
                continue;
            }
            let errno = std::io::Error::last_os_error().raw_os_error();
            if n < 0 && errno == Some(libc::EINTR) {
                continue;
            }
            broken = n < 0 && errno == Some(libc::EPIPE);
            break;
        }
        if broken && !was_pending {
            let now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&pipe, std::ptr::null_mut(), &now);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}

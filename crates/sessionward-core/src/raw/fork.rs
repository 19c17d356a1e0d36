//! Which process image this is, cheaply: a number that changes in every child forked since the
//! token generator started. Part of [`raw`](crate::raw), the one module of the core that uses
//! `unsafe`.
//!
//! # Why
//!
//! Each thread draws tokens from its own ChaCha20 stream. A child forked after the parent drew
//! tokens (gunicorn's `--preload`, a job runner forking workers) inherits a copy of that
//! stream and must never replay it: it would issue the parent's next tokens. So every token
//! asks whether the process is still the one the stream was seeded in. Asking the kernel for
//! the process id is a system call per token, about a tenth of a login here. Instead, a child
//! handler registered once with `pthread_atfork` bumps a counter in each forked child, and a
//! token reads the counter: one relaxed load.
//!
//! `pthread_atfork` handlers run in every child made by `fork()` (libc's, which Python's
//! `os.fork`, `multiprocessing` and every pre-forking server call). A child made by a raw
//! `clone` system call without `CLONE_VM`, bypassing libc, would not run them; nothing here
//! or in the Python runtime does that. Where the handler cannot be registered (registration
//! failed, or not Linux) the epoch falls back to the process id, read per token as before.
//!
//! # Why `unsafe` here, and why it is sound
//!
//! `pthread_atfork` is a C function, so calling it is `unsafe`. It is called once, with
//! null prepare and parent handlers and a child handler that is an `extern "C" fn` with the
//! signature it expects, never unloaded (it is part of this binary). The handler runs in the
//! child of a possibly multi-threaded process, where only async-signal-safe operations are
//! allowed: it does one atomic add on a static, nothing else (no allocation, no lock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Forks since the handler was registered, as this process sees them.
static FORKS: AtomicU64 = AtomicU64::new(0);

/// The top bit marks a process id (fallback) so that it never equals a fork count.
const PID_EPOCH: u64 = 1 << 63;

/// A value that differs between this process and any child forked from it after the first
/// call (and between that child and its own children).
#[inline]
pub(crate) fn epoch() -> u64 {
    static WATCHING: OnceLock<bool> = OnceLock::new();
    if *WATCHING.get_or_init(watch_forks) {
        FORKS.load(Ordering::Relaxed)
    } else {
        PID_EPOCH | u64::from(std::process::id())
    }
}

/// Registers the child handler; whether it is in place.
fn watch_forks() -> bool {
    #[cfg(target_os = "linux")]
    {
        extern "C" fn in_child() {
            FORKS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: see the module documentation: null handlers are allowed, `in_child` has
        // the C signature `void (*)(void)` and is async-signal-safe.
        #[allow(unsafe_code)]
        let status = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        status == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// What a child handler does, for tests that simulate a fork without forking.
#[cfg(test)]
pub(crate) fn simulate_fork() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot fork")]
    fn a_forked_child_sees_another_epoch() {
        let parent = epoch();
        assert_eq!(epoch(), parent, "stable within one process image");
        #[cfg(target_os = "linux")]
        {
            let mut pipe = [0_i32; 2];
            // SAFETY (test only): a pipe, a fork whose child only writes 8 bytes and exits
            // with `_exit` (no destructors, no locks), and a wait for that child.
            #[allow(unsafe_code)]
            unsafe {
                assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0);
                let pid = libc::fork();
                assert!(pid >= 0, "fork failed");
                if pid == 0 {
                    let seen = epoch().to_le_bytes();
                    libc::write(pipe[1], seen.as_ptr().cast(), seen.len());
                    libc::_exit(0);
                }
                let mut seen = [0_u8; 8];
                let read = libc::read(pipe[0], seen.as_mut_ptr().cast(), seen.len());
                libc::waitpid(pid, std::ptr::null_mut(), 0);
                libc::close(pipe[0]);
                libc::close(pipe[1]);
                assert_eq!(read, 8);
                assert_ne!(
                    u64::from_le_bytes(seen),
                    parent,
                    "the child saw the parent's epoch"
                );
            }
        }
        assert_eq!(
            epoch(),
            parent,
            "forking does not change the parent's epoch"
        );
    }
}

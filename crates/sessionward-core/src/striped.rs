//! Striping by thread: state that every thread touches on hot paths, split so that threads on
//! different cores touch different cache lines.
//!
//! A lock word is written by every acquisition, a shared read lock's too: two cores taking the
//! same read lock take turns at its line, each waiting for the line the other just wrote. Here
//! each thread works on its own stripe (threads take stripes in turn at their first use, so the
//! first threads of a process spread over distinct ones).

use std::cell::Cell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Most stripes anything has: more than the cores that can run at once buy nothing.
const MAX_STRIPES: usize = 64;

/// `wanted` stripes rounded up to a power of two (so that [`this_threads`] picks one with a
/// mask), at most [`MAX_STRIPES`].
pub(crate) fn stripe_count(wanted: usize) -> usize {
    wanted.max(1).next_power_of_two().min(MAX_STRIPES)
}

/// How many stripes to make for this machine: one per core (see [`stripe_count`]).
pub(crate) fn stripes_for_cores() -> usize {
    stripe_count(std::thread::available_parallelism().map_or(1, |cores| cores.get()))
}

/// This thread's stripe of `stripes` (a [`stripe_count`] of them).
pub(crate) fn this_threads<T>(stripes: &[T]) -> &T {
    debug_assert!(stripes.len().is_power_of_two());
    &stripes[thread_stripe() & (stripes.len() - 1)]
}

/// This thread's stripe number (before reduction to a stripe count): threads take numbers in
/// turn at their first use.
fn thread_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<Option<usize>> = const { Cell::new(None) };
    }
    STRIPE.with(|stripe| {
        stripe.get().unwrap_or_else(|| {
            let taken = NEXT.fetch_add(1, Ordering::Relaxed);
            stripe.set(Some(taken));
            taken
        })
    })
}

/// A value read on hot paths and written rarely (the engine's directory: read by every login,
/// written by admin calls). Each stripe holds an `Arc` of the one value behind its own
/// read-write lock, so a reader locks only its stripe's line. A writer locks every stripe (in
/// order, so writers cannot deadlock each other), takes their `Arc`s out, and changes the value
/// in place, its `Arc` then being the only one; the guard hands each stripe a copy back.
/// Readers never clone the `Arc`, so no reference count is written on the read path either.
pub(crate) struct ReadMostly<T> {
    stripes: Box<[Stripe<T>]>,
}

/// Two lines apart from its neighbours: the processor fetches lines in adjacent pairs.
#[repr(align(128))]
struct Stripe<T>(RwLock<Option<Arc<T>>>);

impl<T> ReadMostly<T> {
    /// `value`, with a stripe per core.
    pub(crate) fn new(value: T) -> Self {
        Self::with_stripes(value, stripes_for_cores())
    }

    /// `value` with `stripes` stripes (see [`stripe_count`]).
    fn with_stripes(value: T, stripes: usize) -> Self {
        let value = Arc::new(value);
        Self {
            stripes: (0..stripe_count(stripes))
                .map(|_| Stripe(RwLock::new(Some(Arc::clone(&value)))))
                .collect(),
        }
    }

    /// Read access through this thread's stripe. Like any read lock, taking it again on the
    /// same thread while holding it can deadlock behind a waiting writer.
    pub(crate) fn read(&self) -> ReadGuard<'_, T> {
        ReadGuard(this_threads(&self.stripes).0.read())
    }

    /// Write access: waits for every reader on every stripe.
    pub(crate) fn write(&self) -> WriteGuard<'_, T> {
        let mut locked: Vec<_> = self.stripes.iter().map(|stripe| stripe.0.write()).collect();
        // Keeping one of the stripes' copies and dropping the others leaves it the only one.
        let mut value = None;
        for stripe in &mut locked {
            value = stripe.take().or(value);
        }
        WriteGuard {
            locked,
            value: value.expect("every stripe holds the value while no writer does"),
        }
    }
}

/// Read access to a [`ReadMostly`] value.
pub(crate) struct ReadGuard<'a, T>(RwLockReadGuard<'a, Option<Arc<T>>>);

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0
            .as_deref()
            .expect("every stripe holds the value while no writer does")
    }
}

/// Write access to a [`ReadMostly`] value; gives every stripe its copy back when dropped.
pub(crate) struct WriteGuard<'a, T> {
    locked: Vec<RwLockWriteGuard<'a, Option<Arc<T>>>>,
    value: Arc<T>,
}

impl<T> Deref for WriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for WriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        Arc::get_mut(&mut self.value)
            .expect("the only copy: the stripes' were taken out, and readers never clone it")
    }
}

impl<T> Drop for WriteGuard<'_, T> {
    fn drop(&mut self) {
        for stripe in &mut self.locked {
            **stripe = Some(Arc::clone(&self.value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_reach_every_stripe_and_readers_see_whole_changes() {
        let shared = ReadMostly::with_stripes((0_u64, 0_u64), 4);
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    for _ in 0..2_000 {
                        let (a, b) = *shared.read();
                        assert_eq!(a, b, "a write is seen whole or not at all");
                    }
                });
            }
            scope.spawn(|| {
                for _ in 0..2_000 {
                    let mut value = shared.write();
                    value.0 += 1;
                    value.1 += 1;
                }
            });
        });
        for stripe in shared.stripes.iter() {
            assert_eq!(stripe.0.read().as_deref(), Some(&(2_000, 2_000)));
        }
    }

    #[test]
    fn threads_spread_over_stripes() {
        let stripes: std::collections::HashSet<usize> = (0..8)
            .map(|_| std::thread::spawn(|| thread_stripe() & 3).join().unwrap())
            .collect();
        assert!(stripes.len() > 1, "{stripes:?}");
    }
}

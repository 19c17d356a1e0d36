//! Memory for the shard tables' slots: shared *generations* backed by huge pages. Part of
//! [`raw`](crate::raw), the one module of the core that uses `unsafe`.
//!
//! # Why
//!
//! A validation on a large table costs one random memory access, and with 4 KiB pages that
//! access also misses the TLB: the page walk (nested under a hypervisor) adds about as much
//! again as the cache miss. On the 2-core KVM machine the benchmarks run on, a dependent random
//! read in 72 MiB took 290 ns with 4 KiB pages and 176 ns with 2 MiB pages. Linux backs memory
//! with 2 MiB pages only where it is asked to (`MADV_HUGEPAGE`; the usual `madvise` THP
//! setting) and only for aligned 2 MiB runs, but one shard's table is far smaller: at 1 M
//! sessions each of 256 shards holds ~330 KB.
//!
//! So the tables do not own separate allocations. Every table capacity is one of a fixed
//! sequence (16, 24, 36, ..., each half again the last), and the tables of all shards at one
//! capacity share one allocation, a [`Generation`] of `shards × capacity` slots, advised for
//! huge pages. A table that grows takes the first free part of the next generation and gives
//! its old part back; a generation is freed when its last part is given back. Since hashing
//! spreads sessions evenly, the shards move up together, and between two moves all of them
//! live in one generation. The allocation is zeroed lazily by the OS, so the parts nobody took
//! yet cost address space, not memory; and since parts are taken first-free rather than one
//! fixed part per shard, the first few tables to move up share huge pages instead of each
//! faulting in a 2 MiB page of its own (at 1 M sessions, where a handful of shards are always
//! a class ahead of the rest, the memory bench went from 97.7 to 95.0 bytes per session).
//!
//! # Why `unsafe` here, and why it is sound
//!
//! A part is a window into memory shared with other shards' parts, handed out as `&[Record]`
//! and `&mut [Record]` through [`Slots`]; safe Rust has no way to split one allocation
//! between owners that come and go independently. Soundness rests on four facts, each
//! checked where it is used:
//!
//! - **Validity.** The allocation is zeroed, its records start at its first 64-byte boundary
//!   (a record's alignment), and all-zero bytes are a valid, empty
//!   [`Record`] (byte arrays, integers and atomics only; asserted by a test).
//! - **Exclusivity.** A part is handed out only after its state went from `FREE` to `TAKEN`
//!   (an atomic compare-exchange), and it goes back to `FREE` only when that [`Slots`] is
//!   dropped, so two live `Slots` never overlap; a `Slots` lends its records only through
//!   `&self` / `&mut self`, like a `Box<[Record]>`.
//! - **Lifetime.** Every `Slots` holds an `Arc` of its generation, which frees the allocation
//!   (with the layout it was made with) only when the last one is gone. [`Record`] has no drop
//!   glue (asserted at compile time), so records left in the memory need no dropping.
//! - **Advice.** `madvise(MADV_HUGEPAGE)` changes how the kernel backs the range, never its
//!   contents; the range is rounded inwards to 2 MiB boundaries, so it lies within the
//!   allocation. A failed advice only means small pages.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::table::Record;

const _: () = assert!(!std::mem::needs_drop::<Record>());

/// Capacity of the first (smallest) table.
const FIRST_CAPACITY: usize = 16;
/// The huge page size of x86_64 Linux (and aarch64 with 4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

/// The capacity of tables of class `class`: 16, 24, 36, 54, ... (each half again the last).
pub(crate) fn capacity_of(class: usize) -> usize {
    let mut capacity = FIRST_CAPACITY;
    for _ in 0..class {
        capacity += capacity / 2;
    }
    capacity
}

/// The smallest class whose capacity is at least `slots`.
pub(crate) fn class_for(slots: usize) -> usize {
    let mut class = 0;
    let mut capacity = FIRST_CAPACITY;
    while capacity < slots {
        capacity += capacity / 2;
        class += 1;
    }
    class
}

/// Part states of a generation.
const FREE: u8 = 0;
const TAKEN: u8 = 1;

/// One allocation holding the tables of every shard at one capacity.
struct Generation {
    /// The first record: `allocation` rounded up to a record's alignment (a cache line).
    base: NonNull<Record>,
    /// What `alloc_zeroed` returned, for `dealloc`.
    allocation: NonNull<u8>,
    layout: Layout,
    part_len: usize,
    /// Per part: [`FREE`] or [`TAKEN`].
    parts: Box<[AtomicU8]>,
}

// SAFETY: a generation is an owned allocation of `Record`s (which are `Send` and `Sync`);
// access to its parts goes through `Slots`, which enforces exclusive ownership per part.
#[allow(unsafe_code)]
unsafe impl Send for Generation {}
// SAFETY: as above; the shared state proper (`parts`) is atomic.
#[allow(unsafe_code)]
unsafe impl Sync for Generation {}

impl Generation {
    fn new(parts: usize, part_len: usize) -> Arc<Self> {
        // Asked for with a small alignment and padded by one record instead of asking for the
        // records' (64-byte) alignment: the system allocator serves small alignments with
        // `calloc`, whose large blocks are fresh mappings the OS zeroes page by page on first
        // touch, while a large alignment makes it allocate and then write zeros over every
        // page up front (committing the whole generation, in small pages, before it could be
        // advised).
        const RECORD_ALIGN: usize = std::mem::align_of::<Record>();
        let layout = parts
            .checked_mul(part_len)
            .and_then(|slots| slots.checked_mul(std::mem::size_of::<Record>()))
            .and_then(|size| size.checked_add(RECORD_ALIGN))
            .and_then(|size| Layout::from_size_align(size, std::mem::align_of::<u64>()).ok())
            .filter(|layout| layout.size() > RECORD_ALIGN)
            .expect("a generation has a positive size that fits the address space");
        // SAFETY: `layout` has a non-zero size (checked above).
        #[allow(unsafe_code)]
        let allocation = unsafe { alloc_zeroed(layout) };
        let Some(allocation) = NonNull::new(allocation) else {
            handle_alloc_error(layout);
        };
        let padding = allocation.as_ptr().align_offset(RECORD_ALIGN);
        assert!(
            padding < RECORD_ALIGN,
            "a byte pointer can always be aligned"
        );
        // SAFETY: `padding < RECORD_ALIGN`, and the allocation is `RECORD_ALIGN` bytes longer
        // than the records, so `base..base + parts * part_len` records lies within it.
        #[allow(unsafe_code)]
        let base = unsafe { allocation.add(padding) }.cast::<Record>();
        advise_huge_pages(base.as_ptr() as usize, layout.size() - RECORD_ALIGN);
        Arc::new(Self {
            base,
            allocation,
            layout,
            part_len,
            parts: (0..parts).map(|_| AtomicU8::new(FREE)).collect(),
        })
    }

    /// The first free part, emptied, if any is free.
    fn take(self: &Arc<Self>) -> Option<Slots> {
        let index = self.parts.iter().position(|state| {
            state
                .compare_exchange(FREE, TAKEN, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        })?;
        // SAFETY: `index < parts.len()`, so the part lies within the allocation.
        #[allow(unsafe_code)]
        let ptr = unsafe { self.base.add(index * self.part_len) };
        let mut slots = Slots {
            ptr,
            len: self.part_len,
            generation: Some(Arc::clone(self)),
        };
        // Empties a part a previous holder used, and touches every page of a fresh one, so
        // that its page faults (a huge page can take milliseconds to fault in under a
        // hypervisor) happen here, before the caller takes any lock.
        slots.fill_with(Record::empty);
        Some(slots)
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; no `Slots` refers to it any more (each
        // holds an `Arc` of this generation), and records need no drop (asserted above).
        #[allow(unsafe_code)]
        unsafe {
            dealloc(self.allocation.as_ptr(), self.layout);
        }
    }
}

/// One table's slots: a part of a [`Generation`], used like a `Box<[Record]>`.
pub(crate) struct Slots {
    ptr: NonNull<Record>,
    len: usize,
    /// `None` for the empty table (no memory).
    generation: Option<Arc<Generation>>,
}

// SAFETY: `Slots` owns its part exclusively (see the module documentation), like a
// `Box<[Record]>`, and `Record` is `Send` and `Sync`.
#[allow(unsafe_code)]
unsafe impl Send for Slots {}
// SAFETY: shared access only lends `&[Record]`, and `Record` is `Sync`.
#[allow(unsafe_code)]
unsafe impl Sync for Slots {}

impl Slots {
    /// No slots.
    pub(crate) fn empty() -> Self {
        Self {
            ptr: NonNull::dangling(),
            len: 0,
            generation: None,
        }
    }
}

impl std::ops::Deref for Slots {
    type Target = [Record];
    #[inline]
    fn deref(&self) -> &[Record] {
        // SAFETY: `ptr..ptr + len` is this part of a live generation (or dangling with
        // `len == 0`), holds valid records (zeroed or written since), and no other `Slots`
        // overlaps it; `&self` borrows it shared.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts(self.ptr.as_ptr(), self.len)
        }
    }
}

impl std::ops::DerefMut for Slots {
    #[inline]
    fn deref_mut(&mut self) -> &mut [Record] {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow exclusive.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len)
        }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        if let Some(generation) = &self.generation {
            let offset = (self.ptr.as_ptr() as usize - generation.base.as_ptr() as usize)
                / std::mem::size_of::<Record>();
            generation.parts[offset / generation.part_len].store(FREE, Ordering::Release);
        }
    }
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slots").field("len", &self.len).finish()
    }
}

/// Where the tables of one engine get their slots: the live generations, by class.
#[derive(Debug)]
pub(crate) struct SlotPool {
    shards: usize,
    generations: Mutex<Vec<Weak<Generation>>>,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("part_len", &self.part_len)
            .finish()
    }
}

impl SlotPool {
    /// A pool for `shards` tables.
    pub(crate) fn new(shards: usize) -> Arc<Self> {
        Arc::new(Self {
            shards: shards.max(1),
            generations: Mutex::new(Vec::new()),
        })
    }

    /// Empty slots of capacity [`capacity_of`]`(class)` for a table, their memory touched.
    /// Call it without holding the table's lock: it may allocate a generation and fault in
    /// its pages.
    pub(crate) fn slots(&self, class: usize) -> Slots {
        let generation = {
            let mut generations = self.generations.lock();
            if generations.len() <= class {
                generations.resize_with(class + 1, Weak::new);
            }
            match generations[class].upgrade() {
                Some(generation) => generation,
                None => {
                    let generation = Generation::new(self.shards, capacity_of(class));
                    generations[class] = Arc::downgrade(&generation);
                    generation
                }
            }
        };
        generation
            .take()
            // Every part is held: each shard's table at this class, plus a second thread
            // growing one of them at the same moment (both take their slots with the shard's
            // lock released; one will find the table already grown and give its slots back).
            // A private generation of one part keeps it correct, on small pages.
            .or_else(|| Generation::new(1, capacity_of(class)).take())
            .expect("a fresh one-part generation has its part free")
    }
}

/// Asks the kernel to back the 2 MiB-aligned runs inside `address..address + len` with huge
/// pages (see the module documentation). Does nothing elsewhere than Linux.
fn advise_huge_pages(address: usize, len: usize) {
    let start = address.next_multiple_of(HUGE_PAGE);
    let end = (address + len) / HUGE_PAGE * HUGE_PAGE;
    if end <= start {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: `start..end` lies within one live allocation of ours (rounded inwards), and
    // MADV_HUGEPAGE never changes memory contents; failure is harmless (small pages).
    #[allow(unsafe_code)]
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_growth_sequence() {
        assert_eq!(
            (0..6).map(capacity_of).collect::<Vec<_>>(),
            [16, 24, 36, 54, 81, 121]
        );
        assert_eq!(class_for(0), 0);
        assert_eq!(class_for(16), 0);
        assert_eq!(class_for(17), 1);
        assert_eq!(class_for(121), 5);
        assert_eq!(class_for(122), 6);
        for class in 0..30 {
            assert_eq!(class_for(capacity_of(class)), class);
        }
    }

    #[test]
    fn zeroed_memory_is_empty_records() {
        let pool = SlotPool::new(4);
        let slots = pool.slots(3);
        assert_eq!(slots.len(), 54);
        let empty = Record::empty();
        for record in slots.iter() {
            assert_eq!(format!("{record:?}"), format!("{empty:?}"));
        }
    }

    #[test]
    fn tables_get_disjoint_parts_of_one_generation_first_free_first() {
        let pool = SlotPool::new(4);
        let mut parts: Vec<Slots> = (0..4).map(|_| pool.slots(2)).collect();
        let starts: Vec<usize> = parts.iter().map(|s| s.as_ptr() as usize).collect();
        for (i, start) in starts.iter().enumerate() {
            assert_eq!(*start, starts[0] + i * 36 * std::mem::size_of::<Record>());
        }
        for (i, part) in parts.iter_mut().enumerate() {
            part[0].user = i as u32 + 1;
            part[35].user = 100 + i as u32;
        }
        for (i, part) in parts.iter().enumerate() {
            assert_eq!(
                (part[0].user, part[35].user),
                (i as u32 + 1, 100 + i as u32)
            );
        }
        // A part given back is the next one taken: early movers stay packed together.
        let second = parts.remove(1);
        let start = second.as_ptr() as usize;
        drop(second);
        assert_eq!(pool.slots(2).as_ptr() as usize, start);
    }

    #[test]
    fn a_full_generation_falls_back_to_a_private_one() {
        let pool = SlotPool::new(2);
        let first = pool.slots(1);
        let second = pool.slots(1);
        let third = pool.slots(1);
        assert_eq!(third.len(), 24);
        for other in [&first, &second] {
            let gap = (third.as_ptr() as usize).abs_diff(other.as_ptr() as usize);
            assert!(gap >= 24 * std::mem::size_of::<Record>(), "no overlap");
        }
    }

    #[test]
    fn a_returned_part_comes_back_empty_and_generations_are_freed() {
        let pool = SlotPool::new(2);
        let keep_alive = pool.slots(0);
        let mut part = pool.slots(0);
        part[3].user = 77;
        drop(part);
        let again = pool.slots(0);
        assert_eq!(again[3].user, 0, "a returned part is cleared before reuse");
        drop((keep_alive, again));
        assert!(
            pool.generations.lock()[0].upgrade().is_none(),
            "the last part given back frees the generation"
        );
    }
}

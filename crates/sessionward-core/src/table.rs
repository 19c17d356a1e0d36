//! The per-shard session table: open addressing, Robin Hood linear probing, records inline.
//!
//! # Layout of a record
//!
//! A [`Record`] is one 64-byte cache line, aligned to one: the 24-byte session key (the token's
//! 64-bit selector, which is the probe hash and the public handle, then a 128-bit SHA-256
//! prefix), the 16-byte origin address, five 32-bit times and ids, a 16-bit profile key, a
//! state byte (end reason, security level, expiry reported) and a byte of fixed flags. Records
//! live inline in one array per shard (its part of a huge-page generation, see
//! [`crate::raw::slots`]), so reading a record is one line, and a lookup reads the lines from the
//! home slot to the record: no pointer chasing, and all of them known (and prefetched, see
//! [`SlotsHint::prefetch`]) from the selector alone. Logins choose selectors whose home slot
//! is free ([`Table::roomiest`]), so that line is nearly always the home slot's own.
//!
//! The table keeps 128 bits of the token's SHA-256 (the durable store keeps 160): a copy of
//! the memory still yields nothing that validates short of a 2^128 preimage search per
//! session, and the record fits one line, which at 1 M sessions is one cache miss and
//! 8 bytes per session less than the 72-byte record it replaced.
//!
//! The capacity is not a power of two (the home slot is `hash * capacity >> 64`), so the table
//! grows by half at 7/8 load instead of doubling, which keeps memory per session near the record
//! size. Empty slots have an all-zero hash; digests whose first 8 bytes are zero are refused at
//! insert (the engine draws another token, a 2^-64 event).
//!
//! Deletion shifts the following run back by one (no tombstones in the probe sequence), so
//! lookups of unknown digests stop at the first slot whose occupant is closer to home than the
//! search is: misses stay short even at high load.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::raw::slots::{capacity_of, class_for, SlotPool, Slots};
use crate::token::KEY_LEN;

/// Bytes of the session key a record keeps: the selector and a 128-bit SHA-256 prefix.
pub(crate) const RECORD_KEY_LEN: usize = 24;

/// Live state: [`Record::state`]'s end reason bits are zero.
pub(crate) const STATE_LIVE: u8 = 0;
/// The end reason bits of [`Record::state`] (reasons are 1..=15).
pub(crate) const REASON_MASK: u8 = 0x0F;
/// Where [`Record::state`] keeps the security level (two bits).
const LEVEL_SHIFT: u8 = 4;
const LEVEL_MASK: u8 = 0b0011_0000;
/// Set in [`Record::state`] once an expiry event was emitted, so it is emitted once.
pub(crate) const EXPIRY_REPORTED: u8 = 0x80;

// Every end reason fits the reason bits and differs from live; every level fits its two bits.
const _: () = {
    let mut index = 0;
    while index < crate::EndReason::ALL.len() {
        let reason = crate::EndReason::ALL[index] as u8;
        assert!(reason != STATE_LIVE && reason & !REASON_MASK == 0);
        index += 1;
    }
    assert!((crate::SecurityLevel::HighAssurance as u8) << LEVEL_SHIFT & !LEVEL_MASK == 0);
};

const TYPE_MASK: u8 = 0b0000_0011;
const METHOD_SHIFT: u8 = 2;
const METHOD_MASK: u8 = 0b0001_1100;
const IP_LOCKED: u8 = 0b0010_0000;
const BROWSER_BOUND: u8 = 0b0100_0000;

/// When a session whose last activity is `last_seen` stops being valid (exclusive): the idle
/// deadline or the absolute one, whichever comes first. The one place this rule is written.
#[inline]
pub(crate) fn valid_until(last_seen: u32, idle_secs: u32, absolute_deadline: u32) -> u64 {
    (u64::from(last_seen) + u64::from(idle_secs)).min(u64::from(absolute_deadline))
}

/// One session as the table keeps it: one cache line (field order fixed, see the module docs).
#[derive(Debug)]
#[repr(C, align(64))]
pub(crate) struct Record {
    /// The session key (selector, then SHA-256 prefix); all zero for an empty slot.
    pub(crate) key: [u8; RECORD_KEY_LEN],
    /// Origin address, IPv4 as IPv4-mapped IPv6.
    pub(crate) origin: [u8; 16],
    /// Live: seconds of the last successful validation. Ended: when it ended.
    pub(crate) last_seen: AtomicU32,
    pub(crate) created: u32,
    pub(crate) absolute_deadline: u32,
    pub(crate) idle_secs: u32,
    pub(crate) user: u32,
    pub(crate) profile: u16,
    /// End reason ([`STATE_LIVE`] or an [`EndReason`](crate::EndReason), [`REASON_MASK`]),
    /// the [`SecurityLevel`](crate::SecurityLevel) (raised by step-up) and
    /// [`EXPIRY_REPORTED`]: the parts of a session that change, in one atomic byte.
    pub(crate) state: AtomicU8,
    /// Session type, login method, IP lock and browser binding.
    pub(crate) packed: u8,
}

const _: () = assert!(std::mem::size_of::<Record>() == 64);

/// What a new record is made of.
pub(crate) struct NewRecord {
    pub(crate) digest: [u8; KEY_LEN],
    pub(crate) origin: IpAddr,
    pub(crate) now: u32,
    pub(crate) absolute_deadline: u32,
    pub(crate) idle_secs: u32,
    pub(crate) user: u32,
    pub(crate) profile: u16,
    pub(crate) level: u8,
    pub(crate) session_type: u8,
    pub(crate) method: u8,
    pub(crate) ip_locked: bool,
    pub(crate) browser_bound: bool,
}

impl Record {
    /// An empty slot (all zero bytes, which is also what fresh slot memory holds).
    pub(crate) fn empty() -> Self {
        Self {
            key: [0; RECORD_KEY_LEN],
            origin: [0; 16],
            last_seen: AtomicU32::new(0),
            created: 0,
            absolute_deadline: 0,
            idle_secs: 0,
            user: 0,
            profile: 0,
            state: AtomicU8::new(0),
            packed: 0,
        }
    }

    pub(crate) fn new(new: &NewRecord) -> Self {
        let origin = match new.origin {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        let mut packed =
            (new.session_type & TYPE_MASK) | ((new.method << METHOD_SHIFT) & METHOD_MASK);
        if new.ip_locked {
            packed |= IP_LOCKED;
        }
        if new.browser_bound {
            packed |= BROWSER_BOUND;
        }
        let mut key = [0_u8; RECORD_KEY_LEN];
        key.copy_from_slice(&new.digest[..RECORD_KEY_LEN]);
        Self {
            key,
            origin,
            last_seen: AtomicU32::new(new.now),
            created: new.now,
            absolute_deadline: new.absolute_deadline,
            idle_secs: new.idle_secs,
            user: new.user,
            profile: new.profile,
            state: AtomicU8::new(STATE_LIVE | (new.level << LEVEL_SHIFT) & LEVEL_MASK),
            packed,
        }
    }

    /// Probe hash = public handle: the digest's first 8 bytes; zero means empty.
    #[inline]
    pub(crate) fn hash(&self) -> u64 {
        hash_of(&self.key)
    }

    #[inline]
    pub(crate) fn origin_ip(&self) -> IpAddr {
        Ipv6Addr::from(self.origin).to_canonical()
    }

    /// Whether `ip` (already canonical) is the origin address.
    #[inline]
    pub(crate) fn origin_is(&self, ip: IpAddr) -> bool {
        let octets = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        octets == self.origin
    }

    pub(crate) fn session_type(&self) -> u8 {
        self.packed & TYPE_MASK
    }
    pub(crate) fn method(&self) -> u8 {
        (self.packed & METHOD_MASK) >> METHOD_SHIFT
    }
    pub(crate) fn ip_locked(&self) -> bool {
        self.packed & IP_LOCKED != 0
    }
    pub(crate) fn browser_bound(&self) -> bool {
        self.packed & BROWSER_BOUND != 0
    }

    /// The end reason byte, or [`STATE_LIVE`].
    #[inline]
    pub(crate) fn end_reason(&self) -> u8 {
        self.state.load(Ordering::Acquire) & REASON_MASK
    }

    /// The security level byte in a [`state`](Self::state) value.
    #[inline]
    pub(crate) fn level_in(state: u8) -> u8 {
        (state & LEVEL_MASK) >> LEVEL_SHIFT
    }

    /// The security level byte now.
    #[inline]
    pub(crate) fn level(&self) -> u8 {
        Self::level_in(self.state.load(Ordering::Relaxed))
    }

    /// Raises the security level to at least `level` (step-up; never lowers it).
    pub(crate) fn raise_level(&self, level: u8) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (Self::level_in(state) < level)
                    .then_some(state & !LEVEL_MASK | (level << LEVEL_SHIFT) & LEVEL_MASK)
            });
    }

    /// Marks a restored record ended with `reason` (keeping its level).
    pub(crate) fn set_ended(&self, reason: u8) {
        let state = self.state.load(Ordering::Relaxed);
        self.state.store(
            state & !REASON_MASK | reason & REASON_MASK,
            Ordering::Relaxed,
        );
    }

    /// Whether the session is live at `now`: not ended, its expiry never reported, and within
    /// its deadlines.
    ///
    /// Expiry is final once reported (an `Expired` event went out, and [`end`](Self::end)
    /// refuses the record): a validation that read an earlier second (on another core, or
    /// from a clock that stepped back) and refreshed last activity after the report must not
    /// make the session live again, for listings, counts or the store.
    #[inline]
    pub(crate) fn is_live(&self, now: u64) -> bool {
        self.state.load(Ordering::Acquire) & (REASON_MASK | EXPIRY_REPORTED) == STATE_LIVE
            && now < self.valid_until(self.last_seen.load(Ordering::Relaxed))
    }

    /// When the session stops being valid (exclusive), from its last activity and deadline.
    #[inline]
    pub(crate) fn valid_until(&self, last_seen: u32) -> u64 {
        valid_until(last_seen, self.idle_secs, self.absolute_deadline)
    }

    /// Which timeout a session whose last activity is `last_seen` runs into first: the
    /// maximum length when it comes no later than the idle deadline.
    #[inline]
    pub(crate) fn expiry_kind(&self, last_seen: u32) -> crate::ExpiryKind {
        let idle_deadline = u64::from(last_seen) + u64::from(self.idle_secs);
        if u64::from(self.absolute_deadline) <= idle_deadline {
            crate::ExpiryKind::Absolute
        } else {
            crate::ExpiryKind::Idle
        }
    }

    /// Ends a live, unexpired session with `reason`; false if it was already ended or expired.
    ///
    /// Takes effect for every validation that starts after it returns (release store on the
    /// state byte, read with acquire by validations).
    pub(crate) fn end(&self, reason: u8, now: u32) -> bool {
        if u64::from(now) >= self.valid_until(self.last_seen.load(Ordering::Relaxed)) {
            return false;
        }
        // From live and unreported to `reason`, whatever the level; the level may be raised
        // concurrently, hence the loop.
        if self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (state & (REASON_MASK | EXPIRY_REPORTED) == STATE_LIVE)
                    .then_some(state | reason & REASON_MASK)
            })
            .is_ok()
        {
            self.last_seen.store(now, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// When this record may be dropped from the table: `retention` seconds after it ended or
    /// expired (the tombstone lets validations say why a session stopped working).
    pub(crate) fn removable_at(&self, retention: u32) -> u64 {
        let last = self.last_seen.load(Ordering::Relaxed);
        let dead_since = if self.end_reason() != STATE_LIVE {
            u64::from(last)
        } else {
            self.valid_until(last)
        };
        dead_since + u64::from(retention)
    }
}

#[inline]
pub(crate) fn hash_of(key: &[u8]) -> u64 {
    let mut first = [0_u8; 8];
    first.copy_from_slice(&key[..8]);
    u64::from_le_bytes(first)
}

/// One shard's records. Not synchronized: the engine wraps each table in its shard's lock.
///
/// The slots are this shard's part of a generation shared by all shards of the engine (see
/// [`crate::raw::slots`]), so that large tables sit on huge pages.
#[derive(Debug)]
pub(crate) struct Table {
    slots: Slots,
    len: u32,
    /// Slots the table keeps whatever it holds (see [`reserve`](Self::reserve)); 0 if none.
    /// A `u32` beside `len`, so that a shard's lock, table and policy stay in one line.
    reserved: u32,
    pool: Arc<SlotPool>,
}

/// Where a table's slots are, readable without the table's lock, so that a validation can start
/// loading a session's home slot before it takes the lock and hashes the token.
///
/// The owner republishes it after every change that may move the slots. A reader may see a
/// stale or half-updated pair (base of one allocation, capacity of another); the only use is a
/// prefetch, which is a hint that cannot fault, so the worst case is one useless prefetch.
///
/// Aligned to its own cache line: it is read by every validation and written only when a
/// table moves, while the shard's lock word beside it is written by every validation. Sharing
/// a line would make each validation wait for the line another core just wrote.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct SlotsHint {
    base: AtomicUsize,
    capacity: AtomicUsize,
}

impl SlotsHint {
    /// Records where `table`'s slots are now. Called as every write lock is released, so it
    /// writes only when they moved: a store, even of the same value, would take the line from
    /// every core that reads it.
    pub(crate) fn publish(&self, table: &Table) {
        let (base, capacity) = (table.slots.as_ptr() as usize, table.slots.len());
        if self.base.load(Ordering::Relaxed) != base
            || self.capacity.load(Ordering::Relaxed) != capacity
        {
            self.base.store(base, Ordering::Relaxed);
            self.capacity.store(capacity, Ordering::Relaxed);
        }
    }

    /// Starts loading the lines a lookup of `hash` reads into the cache: the home slot's and
    /// the next [`PREFETCH_LINES`]` - 1`. Logins choose selectors whose records sit at home or
    /// one slot on (see [`Table::roomiest`]), so these lines hold the record of nearly every
    /// live session and end nearly every probe for an unknown one; a record further on (a
    /// table resized or restored from a store moves some) costs one more round trip.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        let home = self.home_address(hash);
        for line in 0..PREFETCH_LINES {
            crate::raw::prefetch::prefetch_read(home.wrapping_add(line * 64));
        }
    }

    /// Starts loading the home slot's line only: a login weighing several selectors.
    #[inline]
    pub(crate) fn prefetch_home_line(&self, hash: u64) {
        crate::raw::prefetch::prefetch_read(self.home_address(hash));
    }

    #[inline]
    fn home_address(&self, hash: u64) -> usize {
        let capacity = self.capacity.load(Ordering::Relaxed);
        let home = ((u128::from(hash) * capacity as u128) >> 64) as usize;
        self.base
            .load(Ordering::Relaxed)
            .wrapping_add(home.wrapping_mul(std::mem::size_of::<Record>()))
    }
}

/// Lines (records) [`SlotsHint::prefetch`] loads per lookup.
pub(crate) const PREFETCH_LINES: usize = 2;

/// Selectors a login weighs (see [`Table::roomiest`]): with eight, nine in ten records sit
/// at home even at the 7/8 load a table grows at (four leave one in four off home at 3/4).
pub(crate) const SELECTOR_CANDIDATES: usize = 8;

/// The selectors a login weighs, given a random 64-bit draw: the draw itself first, then
/// others spread over the whole range by a SplitMix64 step, all with the draw's shard bits
/// (`shard_mask`) so that one shard holds every candidate's slot.
///
/// Derived rather than drawn: a selector is public (the session's handle) and must be unique
/// and evenly spread, not secret, and eight ChaCha20 draws would cost a login more than the
/// choice saves it.
pub(crate) fn selector_candidates(drawn: u64, shard_mask: u64) -> [u64; SELECTOR_CANDIDATES] {
    let mut state = drawn;
    std::array::from_fn(|index| {
        if index == 0 {
            return drawn;
        }
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^= mixed >> 31;
        (mixed & !shard_mask) | (drawn & shard_mask)
    })
}

/// Why an insert did not happen.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InsertError {
    /// A record with the same 64-bit hash (handle) exists, or the hash is zero.
    HashTaken,
}

impl Table {
    /// An empty table taking its slots from `pool`.
    pub(crate) fn new(pool: Arc<SlotPool>) -> Self {
        Self {
            slots: Slots::empty(),
            len: 0,
            pool,
            reserved: 0,
        }
    }

    /// Makes room for `records` records now, so that inserting up to that many never grows
    /// the table, and keeps it: a sweep never shrinks the table below it (see
    /// [`class_to_shrink`](Self::class_to_shrink)). Takes slot memory from the pool, touching
    /// it: call it before the table is shared, or without a lock others wait on.
    pub(crate) fn reserve(&mut self, records: usize) {
        // `class_to_grow` asks for more room when one more record would pass 7/8 load.
        let class = class_for((records * 8).div_ceil(7) + 1);
        let capacity = u32::try_from(capacity_of(class)).expect("a shard's room fits 32 bits");
        self.reserved = self.reserved.max(capacity);
        if self.slots.len() < self.reserved as usize {
            let fresh = self.pool.slots(class);
            drop(self.move_into(fresh));
        }
    }

    /// Records held, tombstones included.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Slots allocated.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.slots.len() as u128) >> 64) as usize
    }

    #[inline]
    fn distance(&self, slot: usize, hash: u64) -> usize {
        let home = self.home(hash);
        if slot >= home {
            slot - home
        } else {
            slot + self.slots.len() - home
        }
    }

    #[inline]
    fn next(&self, slot: usize) -> usize {
        if slot + 1 == self.slots.len() {
            0
        } else {
            slot + 1
        }
    }

    /// The slot of the record whose hash is `hash` and which `matches`.
    #[inline]
    fn position(&self, hash: u64, matches: impl Fn(&Record) -> bool) -> Option<usize> {
        if self.slots.is_empty() || hash == 0 {
            return None;
        }
        let mut slot = self.home(hash);
        let mut distance = 0;
        loop {
            let record = &self.slots[slot];
            let occupant = record.hash();
            if occupant == 0 {
                return None;
            }
            if occupant == hash && matches(record) {
                return Some(slot);
            }
            // Robin Hood invariant: had the record been here, it would have displaced this one.
            if self.distance(slot, occupant) < distance {
                return None;
            }
            distance += 1;
            slot = self.next(slot);
        }
    }

    /// Of `candidates` (nonzero hashes), the one a new record should take: the first whose
    /// home slot is free, so that the record sits at home, else the first whose home's next
    /// slot is free, so that it sits one slot on and moves no other record; `None` if every
    /// candidate's record would push others on.
    ///
    /// A Robin Hood table filled with random hashes keeps fewer than half of its records at
    /// home near its highest load (and a third or more beyond the next slot), so a lookup
    /// reads several lines; a table whose hashes were chosen this way keeps nine in ten at
    /// home and all but a few in a thousand within [`PREFETCH_LINES`] (see the
    /// `chosen_hashes_sit_at_home` test), so a lookup reads one line.
    pub(crate) fn roomiest(&self, candidates: &[u64]) -> Option<u64> {
        if self.slots.is_empty() {
            return candidates.first().copied();
        }
        let free = |slot: usize| self.slots[slot].hash() == 0;
        candidates
            .iter()
            .copied()
            .find(|&hash| free(self.home(hash)))
            .or_else(|| {
                candidates
                    .iter()
                    .copied()
                    .find(|&hash| free(self.next(self.home(hash))))
            })
    }

    /// The record with this digest (compared on the [`RECORD_KEY_LEN`] bytes a record keeps).
    #[inline]
    pub(crate) fn find(&self, digest: &[u8; KEY_LEN]) -> Option<&Record> {
        let key = &digest[..RECORD_KEY_LEN];
        self.position(hash_of(key), |record| record.key == key)
            .map(|slot| &self.slots[slot])
    }

    /// The record whose handle (hash) is `hash`.
    pub(crate) fn find_hash(&self, hash: u64) -> Option<&Record> {
        self.position(hash, |_| true).map(|slot| &self.slots[slot])
    }

    /// Inserts a record whose hash no other record has.
    pub(crate) fn insert(&mut self, record: Record) -> Result<(), InsertError> {
        let hash = record.hash();
        if hash == 0 || self.find_hash(hash).is_some() {
            return Err(InsertError::HashTaken);
        }
        if let Some(class) = self.class_to_grow() {
            // Slot memory taken under the caller's lock: for callers that run before anything
            // validates, or that did not make room first (see `Engine::resized`).
            let fresh = self.pool.slots(class);
            self.move_into(fresh);
        }
        self.place(record);
        self.len += 1;
        Ok(())
    }

    fn place(&mut self, mut record: Record) {
        let mut slot = self.home(record.hash());
        let mut distance = 0;
        loop {
            let occupant = self.slots[slot].hash();
            if occupant == 0 {
                self.slots[slot] = record;
                return;
            }
            let occupant_distance = self.distance(slot, occupant);
            if occupant_distance < distance {
                std::mem::swap(&mut self.slots[slot], &mut record);
                distance = occupant_distance;
            }
            distance += 1;
            slot = self.next(slot);
        }
    }

    /// The class this table must move to before it can take one more record, if it must.
    pub(crate) fn class_to_grow(&self) -> Option<usize> {
        ((self.len() + 1) * 8 > self.slots.len() * 7).then(|| class_for(self.slots.len() + 1))
    }

    /// The class a sparse table (below 1/4 load, after a sweep) should shrink to, if any:
    /// about twice its records, which gives memory back, but never below its reserved room.
    pub(crate) fn class_to_shrink(&self) -> Option<usize> {
        if self.slots.len() <= 64 || self.len() * 4 >= self.slots.len() {
            return None;
        }
        let class = class_for((self.len() * 2).max(self.reserved as usize));
        (capacity_of(class) < self.slots.len()).then_some(class)
    }

    /// Moves every record into `fresh` (empty slots from this table's pool, large enough) and
    /// returns the slots it leaves, for the caller to drop once it released the lock: giving
    /// back the last part of a generation unmaps it.
    pub(crate) fn move_into(&mut self, fresh: Slots) -> Slots {
        debug_assert!(fresh.len() * 7 >= self.len() * 8);
        debug_assert!(fresh.iter().all(|slot| slot.hash() == 0));
        let mut old = std::mem::replace(&mut self.slots, fresh);
        for slot in old.iter_mut() {
            if slot.hash() != 0 {
                self.place(std::mem::replace(slot, Record::empty()));
            }
        }
        old
    }

    /// Removes the record in `slot`, shifting the rest of its run back by one (tests only: the
    /// engine removes records in bulk, with [`retain`](Self::retain)).
    #[cfg(test)]
    fn remove_at(&mut self, mut slot: usize) {
        loop {
            let next = self.next(slot);
            let hash = self.slots[next].hash();
            if hash == 0 || self.distance(next, hash) == 0 {
                self.slots[slot] = Record::empty();
                break;
            }
            self.slots.swap(slot, next);
            slot = next;
        }
        self.len -= 1;
    }

    /// Removes the record whose handle is `hash`; whether there was one.
    #[cfg(test)]
    pub(crate) fn remove_hash(&mut self, hash: u64) -> bool {
        match self.position(hash, |_| true) {
            Some(slot) => {
                self.remove_at(slot);
                true
            }
            None => false,
        }
    }

    /// Removes every record for which `keep` is false (called once per record); returns how
    /// many went. Does not shrink (see [`class_to_shrink`](Self::class_to_shrink)).
    ///
    /// One pass that compacts as it goes, instead of a backward shift per removal: a sweep
    /// that drops most of a dense table shifted each run's tail once per record removed from
    /// it, which held the shard's write lock (and the validations waiting on it) for over a
    /// millisecond at 1 M sessions. Starting just after an empty slot (a run never spans one),
    /// each kept record moves back to the first free slot at or after its home: records stay
    /// in home order with no empty slot between a record and its home, which is all lookups
    /// and Robin Hood inserts rely on.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Record) -> bool) -> usize {
        let capacity = self.slots.len();
        let Some(empty) = self.slots.iter().position(|record| record.hash() == 0) else {
            // A table is never full (it grows at 7/8), so there is always an empty slot.
            return 0;
        };
        let mut removed = 0_u32;
        // Positions count from the empty slot (offset 0) on, without wrapping: `free` is the
        // first position no kept record has been moved to yet.
        let mut free = 1;
        for offset in 1..=capacity {
            let slot = (empty + offset) % capacity;
            let hash = self.slots[slot].hash();
            if hash == 0 {
                continue;
            }
            if !keep(&self.slots[slot]) {
                self.slots[slot] = Record::empty();
                removed += 1;
                continue;
            }
            let home = offset - self.distance(slot, hash);
            let target = free.max(home);
            if target != offset {
                let record = std::mem::replace(&mut self.slots[slot], Record::empty());
                self.slots[(empty + target) % capacity] = record;
            }
            free = target + 1;
        }
        self.len -= removed;
        removed as usize
    }

    /// Records sitting at their home slot.
    pub(crate) fn at_home(&self) -> usize {
        (0..self.slots.len())
            .filter(|&slot| {
                let hash = self.slots[slot].hash();
                hash != 0 && self.home(hash) == slot
            })
            .count()
    }

    /// Every record, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Record> {
        self.slots.iter().filter(|record| record.hash() != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    impl Default for Table {
        fn default() -> Self {
            Self::new(SlotPool::new(1))
        }
    }

    fn record(hash: u64, tag: u32) -> Record {
        let mut digest = [0_u8; KEY_LEN];
        digest[..8].copy_from_slice(&hash.to_le_bytes());
        digest[8..12].copy_from_slice(&tag.to_le_bytes());
        Record::new(&NewRecord {
            digest,
            origin: IpAddr::from([10, 0, 0, 1]),
            now: 100,
            absolute_deadline: 200,
            idle_secs: 50,
            user: tag,
            profile: 0,
            level: 1,
            session_type: 0,
            method: 0,
            ip_locked: false,
            browser_bound: false,
        })
    }

    /// A cheap deterministic stream of hashes with many home-slot collisions.
    fn hashes(count: usize, seed: u64) -> Vec<u64> {
        let mut state = seed | 1;
        (0..count)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state | 1
            })
            .collect()
    }

    #[test]
    fn insert_find_remove_agree_with_a_hashmap() {
        let mut table = Table::default();
        let mut model = HashMap::new();
        let keys = hashes(5000, 7);
        for (i, &hash) in keys.iter().enumerate() {
            table.insert(record(hash, i as u32)).unwrap();
            model.insert(hash, i as u32);
        }
        assert_eq!(table.len(), 5000);
        assert!(
            table.capacity() * 7 >= table.len() * 8,
            "load stays under 7/8"
        );
        for (i, &hash) in keys.iter().enumerate() {
            if i % 3 == 0 {
                assert!(table.remove_hash(hash));
                model.remove(&hash);
            }
        }
        for &hash in &keys {
            let found = table.find_hash(hash).map(|r| r.user);
            assert_eq!(found, model.get(&hash).copied());
        }
        for hash in hashes(1000, 99) {
            assert_eq!(table.find_hash(hash).is_some(), model.contains_key(&hash));
        }
        assert_eq!(table.len(), model.len());
        assert_eq!(table.iter().count(), model.len());
    }

    #[test]
    fn full_digest_must_match() {
        let mut table = Table::default();
        let stored = record(42, 1);
        let mut digest = [0_u8; KEY_LEN];
        digest[..RECORD_KEY_LEN].copy_from_slice(&stored.key);
        table.insert(stored).unwrap();
        assert!(table.find(&digest).is_some());
        for flipped in 8..RECORD_KEY_LEN {
            let mut other = digest;
            other[flipped] ^= 1;
            assert!(
                table.find(&other).is_none(),
                "same handle, byte {flipped} differs"
            );
        }
    }

    #[test]
    fn duplicate_and_zero_hashes_are_refused() {
        let mut table = Table::default();
        table.insert(record(5, 1)).unwrap();
        assert_eq!(table.insert(record(5, 2)), Err(InsertError::HashTaken));
        assert_eq!(table.insert(record(0, 3)), Err(InsertError::HashTaken));
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn retain_removes_exactly_the_rejected_and_shrinks() {
        let mut table = Table::default();
        let keys = hashes(4000, 3);
        for (i, &hash) in keys.iter().enumerate() {
            table.insert(record(hash, i as u32)).unwrap();
        }
        let big = table.capacity();
        let removed = table.retain(|r| r.user % 10 == 0);
        assert_eq!(removed, 3600);
        assert_eq!(table.len(), 400);
        let class = table.class_to_shrink().expect("a tenth full: shrink");
        let fresh = table.pool.slots(class);
        let old = table.move_into(fresh);
        assert_eq!(old.len(), big);
        assert!(table.capacity() < big);
        assert!(table.class_to_shrink().is_none());
        for (i, &hash) in keys.iter().enumerate() {
            assert_eq!(table.find_hash(hash).is_some(), i % 10 == 0, "key {i}");
        }
    }

    /// Every occupied slot is reachable from its home without crossing an empty slot, and
    /// records along a run are in home order (what lookups and Robin Hood inserts rely on).
    fn assert_robin_hood(table: &Table) {
        let capacity = table.slots.len();
        for slot in 0..capacity {
            let hash = table.slots[slot].hash();
            if hash == 0 {
                continue;
            }
            let distance = table.distance(slot, hash);
            for back in 1..=distance {
                let between = (slot + capacity - back) % capacity;
                let other = table.slots[between].hash();
                assert_ne!(other, 0, "empty slot between home and slot {slot}");
                assert!(
                    table.distance(between, other) + back >= distance,
                    "slot {between} holds a record homed after slot {slot}'s"
                );
            }
        }
    }

    /// The one-pass compaction against a model, at the highest load, with runs that wrap
    /// around the end of the table, and then inserts into the compacted table.
    #[test]
    fn retain_compacts_runs_and_keeps_every_invariant() {
        let mut wraps = 0;
        for seed in 1..=12_u64 {
            let mut table = Table::default();
            // Hashes from the top of the range home near the last slot, so runs wrap.
            let keys: Vec<u64> = hashes(3000, seed)
                .into_iter()
                .enumerate()
                .map(|(i, hash)| {
                    if i % 3 == 0 {
                        hash | (0xFFF << 52)
                    } else {
                        hash
                    }
                })
                .collect();
            let mut inserted = Vec::new();
            for (i, &hash) in keys.iter().enumerate() {
                if table.class_to_grow().is_some() && table.len() > 1000 {
                    break;
                }
                if table.insert(record(hash, i as u32)).is_ok() {
                    inserted.push((hash, i as u32));
                }
            }
            let wrapped =
                table.slots[0].hash() != 0 && table.distance(0, table.slots[0].hash()) > 0;
            wraps += usize::from(wrapped);
            let modulus = 2 + (seed % 5) as u32;
            let mut asked = 0;
            let removed = table.retain(|r| {
                asked += 1;
                r.user % modulus == 0
            });
            assert_eq!(asked, inserted.len(), "keep is called once per record");
            let kept = inserted
                .iter()
                .filter(|(_, tag)| tag % modulus == 0)
                .count();
            assert_eq!((removed, table.len()), (inserted.len() - kept, kept));
            assert_robin_hood(&table);
            for &(hash, tag) in &inserted {
                assert_eq!(
                    table.find_hash(hash).map(|r| r.user),
                    (tag % modulus == 0).then_some(tag),
                    "seed {seed} (wrapped: {wrapped})"
                );
            }
            for (i, &hash) in hashes(200, seed + 1000).iter().enumerate() {
                if table.find_hash(hash).is_none() && table.class_to_grow().is_none() {
                    table.insert(record(hash, 1_000_000 + i as u32)).unwrap();
                    assert_eq!(
                        table.find_hash(hash).map(|r| r.user),
                        Some(1_000_000 + i as u32)
                    );
                }
            }
            assert_robin_hood(&table);
        }
        assert!(wraps > 0, "no table had a run across the end");
    }

    /// How far records sit from home, as shares of all records: at home (as
    /// [`Table::at_home`] counts them for `Engine::stats`), and within the lines
    /// [`SlotsHint::prefetch`] loads.
    fn home_shares(table: &Table) -> (f64, f64) {
        let prefetched = (0..table.capacity())
            .filter(|&slot| {
                let hash = table.slots[slot].hash();
                hash != 0 && table.distance(slot, hash) < PREFETCH_LINES
            })
            .count();
        let records = table.len() as f64;
        (
            table.at_home() as f64 / records,
            prefetched as f64 / records,
        )
    }

    /// What [`SlotsHint::prefetch`] counts on: logins that choose among selectors keep nearly
    /// every record within the prefetched lines at every load a table goes through (growth
    /// included), where random ones would not.
    #[test]
    fn chosen_hashes_sit_at_home() {
        let mut chosen = Table::default();
        let mut random = Table::default();
        let mut checked = 0;
        for (i, drawn) in hashes(200_000, 11).into_iter().enumerate() {
            let candidates = selector_candidates(drawn, 0);
            assert_eq!(candidates[0], drawn);
            let hash = chosen.roomiest(&candidates).unwrap_or(drawn);
            chosen.insert(record(hash, i as u32)).unwrap();
            random.insert(record(drawn, i as u32)).unwrap();
            // Just before a growth (the highest load) and just after one (the first records
            // moved by it).
            let tables_grow = chosen.class_to_grow().is_some();
            if chosen.len() >= 2000 && (tables_grow || chosen.len() * 5 == chosen.capacity() * 3) {
                let (at_home, prefetched) = home_shares(&chosen);
                assert!(at_home > 0.85, "{at_home} at home at {}", chosen.len());
                assert!(
                    prefetched > 0.99,
                    "{prefetched} prefetched at {}",
                    chosen.len()
                );
                let (random_home, random_prefetched) = home_shares(&random);
                assert!(random_home < 0.7 && random_prefetched < 0.9);
                checked += 1;
            }
        }
        assert!(checked >= 4, "checked {checked} loads");
        assert_robin_hood(&chosen);
    }

    #[test]
    fn selector_candidates_keep_the_shard_and_differ() {
        for drawn in hashes(1000, 5) {
            let candidates = selector_candidates(drawn, 63);
            assert!(candidates.iter().all(|c| c & 63 == drawn & 63));
            let mut sorted = candidates.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), SELECTOR_CANDIDATES);
        }
    }

    #[test]
    fn records_are_one_cache_line() {
        assert_eq!(std::mem::size_of::<Record>(), 64);
        assert_eq!(std::mem::align_of::<Record>(), 64);
    }

    #[test]
    fn state_keeps_reason_level_and_expiry_apart() {
        let stored = record(9, 1);
        assert_eq!(stored.level(), 1);
        stored.raise_level(2);
        stored.raise_level(0);
        assert_eq!(stored.level(), 2, "step-up never lowers");
        assert_eq!(stored.end_reason(), STATE_LIVE);
        assert!(stored.end(crate::EndReason::Admin as u8, 120));
        assert_eq!(stored.end_reason(), crate::EndReason::Admin as u8);
        assert_eq!(stored.level(), 2, "ending keeps the level");
        assert!(
            !stored.end(crate::EndReason::Logout as u8, 120),
            "ends once"
        );
        let expired = record(10, 2);
        expired.state.fetch_or(EXPIRY_REPORTED, Ordering::AcqRel);
        assert!(!expired.end(crate::EndReason::Admin as u8, 120));
        assert_eq!(expired.end_reason(), STATE_LIVE);
        let restored = record(11, 3);
        restored.set_ended(crate::EndReason::OrgWide as u8);
        assert_eq!(restored.end_reason(), crate::EndReason::OrgWide as u8);
        assert_eq!(restored.level(), 1);
    }
}

//! The per-shard session table: open addressing, Robin Hood linear probing, records inline.
//!
//! # Layout of a record
//!
//! A [`Record`] is 72 bytes: the 28-byte session key (the token's 64-bit selector, which is the
//! probe hash and the public handle, then a 160-bit SHA-256 prefix), the 16-byte origin address,
//! five 32-bit times and ids, a 16-bit profile key and three bytes of state, level and flags.
//! Records live inline in one array per shard (its part of a huge-page generation, see
//! [`crate::slots`]), so a hit touches the record's home slot and, under Robin Hood probing,
//! rarely more than one neighbour: one or two cache misses, no pointer chasing.
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

use crate::slots::{class_for, SlotPool, Slots};
use crate::token::KEY_LEN;

/// Live state; any other value of [`Record::state`] below `EXPIRY_REPORTED` is an end reason.
pub(crate) const STATE_LIVE: u8 = 0;
/// Set in [`Record::state`] once an expiry event was emitted, so it is emitted once.
pub(crate) const EXPIRY_REPORTED: u8 = 0x80;

const TYPE_MASK: u8 = 0b0000_0011;
const METHOD_SHIFT: u8 = 2;
const METHOD_MASK: u8 = 0b0001_1100;
const IP_LOCKED: u8 = 0b0010_0000;
const BROWSER_BOUND: u8 = 0b0100_0000;

/// One session as the table keeps it.
#[derive(Debug)]
pub(crate) struct Record {
    /// The session key (selector, then SHA-256 prefix); all zero for an empty slot.
    pub(crate) digest: [u8; KEY_LEN],
    /// Origin address, IPv4 as IPv4-mapped IPv6.
    pub(crate) origin: [u8; 16],
    /// Live: seconds of the last successful validation. Ended: when it ended.
    pub(crate) last_seen: AtomicU32,
    pub(crate) created: u32,
    pub(crate) absolute_deadline: u32,
    pub(crate) idle_secs: u32,
    pub(crate) user: u32,
    pub(crate) profile: u16,
    /// [`STATE_LIVE`], or an end reason, plus [`EXPIRY_REPORTED`].
    pub(crate) state: AtomicU8,
    /// [`SecurityLevel`](crate::SecurityLevel) as a byte; raised by step-up.
    pub(crate) level: AtomicU8,
    /// Session type, login method, IP lock and browser binding.
    pub(crate) packed: u8,
}

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
            digest: [0; KEY_LEN],
            origin: [0; 16],
            last_seen: AtomicU32::new(0),
            created: 0,
            absolute_deadline: 0,
            idle_secs: 0,
            user: 0,
            profile: 0,
            state: AtomicU8::new(0),
            level: AtomicU8::new(0),
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
        Self {
            digest: new.digest,
            origin,
            last_seen: AtomicU32::new(new.now),
            created: new.now,
            absolute_deadline: new.absolute_deadline,
            idle_secs: new.idle_secs,
            user: new.user,
            profile: new.profile,
            state: AtomicU8::new(STATE_LIVE),
            level: AtomicU8::new(new.level),
            packed,
        }
    }

    /// Probe hash = public handle: the digest's first 8 bytes; zero means empty.
    #[inline]
    pub(crate) fn hash(&self) -> u64 {
        hash_of(&self.digest)
    }

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
        self.state.load(Ordering::Acquire) & !EXPIRY_REPORTED
    }

    /// When the session stops being valid (exclusive), from its last activity and deadline.
    #[inline]
    pub(crate) fn valid_until(&self, last_seen: u32) -> u64 {
        (u64::from(last_seen) + u64::from(self.idle_secs)).min(u64::from(self.absolute_deadline))
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
        if self
            .state
            .compare_exchange(STATE_LIVE, reason, Ordering::AcqRel, Ordering::Acquire)
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
pub(crate) fn hash_of(digest: &[u8; KEY_LEN]) -> u64 {
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// One shard's records. Not synchronized: the engine wraps each table in its shard's lock.
///
/// The slots are this shard's part of a generation shared by all shards of the engine (see
/// [`crate::slots`]), so that large tables sit on huge pages.
#[derive(Debug)]
pub(crate) struct Table {
    slots: Slots,
    len: u32,
    /// This table's shard: which part of each generation is its.
    shard: u32,
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
    /// Records where `table`'s slots are now.
    pub(crate) fn publish(&self, table: &Table) {
        self.base
            .store(table.slots.as_ptr() as usize, Ordering::Relaxed);
        self.capacity.store(table.slots.len(), Ordering::Relaxed);
    }

    /// Starts loading the home slot of `hash` (and the line after it, since a 72-byte record
    /// and its Robin Hood neighbour may straddle two lines) into the cache.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        let capacity = self.capacity.load(Ordering::Relaxed);
        let home = ((u128::from(hash) * capacity as u128) >> 64) as usize;
        let address = self
            .base
            .load(Ordering::Relaxed)
            .wrapping_add(home.wrapping_mul(std::mem::size_of::<Record>()));
        crate::prefetch::prefetch_read(address);
        crate::prefetch::prefetch_read(address.wrapping_add(64));
    }
}

/// Why an insert did not happen.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InsertError {
    /// A record with the same 64-bit hash (handle) exists, or the hash is zero.
    HashTaken,
}

impl Table {
    /// An empty table for shard `shard`, taking its slots from `pool`.
    pub(crate) fn new(pool: Arc<SlotPool>, shard: usize) -> Self {
        Self {
            slots: Slots::empty(),
            len: 0,
            shard: u32::try_from(shard).expect("shard indexes fit in u32"),
            pool,
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

    /// The record with this digest.
    #[inline]
    pub(crate) fn find(&self, digest: &[u8; KEY_LEN]) -> Option<&Record> {
        self.position(hash_of(digest), |record| record.digest == *digest)
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
            let fresh = self.pool.slots(self.shard as usize, class);
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
    /// about twice its records, which gives memory back.
    pub(crate) fn class_to_shrink(&self) -> Option<usize> {
        (self.slots.len() > 64 && self.len() * 4 < self.slots.len())
            .then(|| class_for(self.len() * 2))
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

    /// Removes the record in `slot`, shifting the rest of its run back by one.
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

    /// Removes every record for which `keep` is false; returns how many went. Does not shrink
    /// (see [`class_to_shrink`](Self::class_to_shrink)).
    ///
    /// `keep` may be called twice for a record that a removal shifted across the wrap-around.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Record) -> bool) -> usize {
        let mut removed = 0;
        let mut slot = 0;
        while slot < self.slots.len() {
            let record = &self.slots[slot];
            if record.hash() != 0 && !keep(record) {
                self.remove_at(slot);
                removed += 1;
                // The slot now holds the next record of the run: look at it again.
                continue;
            }
            slot += 1;
        }
        removed
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
            Self::new(SlotPool::new(1), 0)
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
        let digest = stored.digest;
        table.insert(stored).unwrap();
        assert!(table.find(&digest).is_some());
        let mut other = digest;
        other[KEY_LEN - 1] ^= 1;
        assert!(table.find(&other).is_none(), "same handle, other digest");
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
        let fresh = table.pool.slots(0, class);
        let old = table.move_into(fresh);
        assert_eq!(old.len(), big);
        assert!(table.capacity() < big);
        assert!(table.class_to_shrink().is_none());
        for (i, &hash) in keys.iter().enumerate() {
            assert_eq!(table.find_hash(hash).is_some(), i % 10 == 0, "key {i}");
        }
    }

    #[test]
    fn records_are_compact() {
        assert_eq!(std::mem::size_of::<Record>(), 72);
    }
}

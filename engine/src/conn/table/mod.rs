//! [`ConnTable`]: slab + open-addressing index + expiry hand.
//!
//! One job per file: [`index`] finds a record from a flow key (the keyed
//! hash, the burst's prefetches, the lookups, the index's entries);
//! [`slots`] puts records in and takes them out (inserts, removal,
//! eviction under pressure, the expiry sweep); [`lifecycle`] moves a
//! record's TCP state and expiry timer along with its packets; [`fnat`]
//! holds full-NAT's local tuples and source-port pools. This file holds the
//! table itself: its construction, sizes and listing.

mod fnat;
mod index;
mod lifecycle;
mod slots;

pub(crate) use index::prefetch_ptr;
pub use index::{EntryPrefetch, Hint};

use crate::conn::hash::Seed;
use crate::conn::state::TimeoutsMs;
#[cfg(test)]
use crate::conn::{flags, Dir};
use crate::conn::{Conn, ConnId, TcpState, Timeouts, PRESSURE_OFF_PERCENT, PRESSURE_ON_PERCENT};
use crate::dataplane::region::{Region, TableMemory, TableSpans};
use fnat::Fnat;
#[cfg(test)]
use index::{entry_dir, entry_hash, entry_slot};

/// Largest capacity a table accepts (slot numbers must fit in 31 bits of an
/// index entry, and the index in 2^32 buckets).
pub const MAX_CAPACITY: usize = 1 << 30;

/// End of the free list.
const NIL: u32 = u32::MAX;

/// Index entry: `hash32 << 32 | dir << 31 | (slot + 1)`; 0 = empty bucket.
const DIR_BIT: u64 = 1 << 31;
const SLOT_MASK: u64 = DIR_BIT - 1;

/// Largest load factor of the index, as a fraction (`LOAD_NUM / LOAD_DEN`),
/// counting two keys per connection.
const LOAD_NUM: usize = 7;
const LOAD_DEN: usize = 10;

/// A flow key's hash, computed once and reused ([`ConnTable::key_hash`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyHash(u32);

/// A worker's connection table. See the [module documentation](super).
pub struct ConnTable {
    slots: Region<Conn>,
    index: Region<u64>,
    /// `index.len() - 1`.
    mask: u32,
    free_head: u32,
    len: u32,
    /// Next slot `expire_some` looks at.
    hand: u32,
    /// Next slot `insert_or_evict` looks at when the table is full (a hand
    /// of its own: the sweep must not shorten the lap an embryonic entry
    /// survives).
    evict_hand: u32,
    /// Under pressure (see the module docs): entered when `len` reaches
    /// `pressure_on`, left when it falls to `pressure_off`.
    pressure: bool,
    pressure_on: u32,
    pressure_off: u32,
    seed: Seed,
    timeouts: Timeouts,
    /// The configured timeouts in ms.
    base_ms: TimeoutsMs,
    /// What records are armed with: `base_ms`, with SYN_RECV shortened
    /// while under pressure.
    timeouts_ms: TimeoutsMs,
    /// Full-NAT local tuples and ports; `None` until a service uses fnat.
    fnat: Option<Box<Fnat>>,
    /// Tests only: keep this many low bits of the hash, to force collisions.
    #[cfg(test)]
    hash_bits: u32,
}

impl std::fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnTable")
            .field("len", &self.len)
            .field("capacity", &self.slots.len())
            .field("buckets", &self.index.len())
            .field("pressure", &self.pressure)
            .finish()
    }
}

/// Is an expiry stamp (low 32 bits of ms) reached at `now` (same)?
#[inline(always)]
fn expired(expires: u32, now: u32) -> bool {
    now.wrapping_sub(expires) as i32 >= 0
}

/// Buckets for `capacity` connections: two keys each, load <= 0.7.
fn buckets_for(capacity: usize) -> usize {
    let keys = 2 * capacity;
    let want = (keys * LOAD_DEN).div_ceil(LOAD_NUM);
    want.next_power_of_two().max(8)
}

/// Lengths at which a table of `capacity` enters pressure (at least
/// [`PRESSURE_ON_PERCENT`] % full, rounded up, at least 1) and leaves it (at
/// most [`PRESSURE_OFF_PERCENT`] %, rounded down).
fn pressure_thresholds(capacity: usize) -> (u32, u32) {
    let on = (capacity * PRESSURE_ON_PERCENT as usize)
        .div_ceil(100)
        .max(1);
    let off = capacity * PRESSURE_OFF_PERCENT as usize / 100;
    (on as u32, off.min(on - 1) as u32)
}

impl ConnTable {
    /// A table for `capacity` connections with the IPVS default timeouts and
    /// a random hash seed. Allocates (and touches) all its memory now.
    ///
    /// # Panics
    /// If `capacity > MAX_CAPACITY`.
    pub fn with_capacity(capacity: usize) -> ConnTable {
        Self::build(capacity, Seed::random(), TableMemory::default())
    }

    /// As [`with_capacity`](Self::with_capacity) with a fixed hash seed
    /// (reproducible tests and benchmarks; not for production).
    pub fn with_capacity_and_seed(capacity: usize, seed: u64) -> ConnTable {
        Self::build(capacity, Seed::from_u64(seed), TableMemory::default())
    }

    /// As [`with_capacity`](Self::with_capacity), with the slab and index
    /// in memory of the kind `mem` asks for (DPDK's hugepages, or anonymous
    /// memory hinted for huge or small pages; see [`TableMemory`]), and a
    /// fixed hash seed when `seed` is given. The table behaves the same
    /// whatever its memory; [`memory_spans`](Self::memory_spans) says
    /// where it ended up.
    pub fn with_capacity_in(capacity: usize, mem: TableMemory, seed: Option<u64>) -> ConnTable {
        let seed = seed.map_or_else(Seed::random, Seed::from_u64);
        Self::build(capacity, seed, mem)
    }

    fn build(capacity: usize, seed: Seed, mem: TableMemory) -> ConnTable {
        assert!(
            capacity <= MAX_CAPACITY,
            "connection table capacity {capacity} > {MAX_CAPACITY}"
        );
        let buckets = buckets_for(capacity);
        // Free list: 0 -> 1 -> ... -> capacity-1 -> NIL.
        let slots = Region::new(capacity, mem, |i| Conn {
            dest: if i + 1 < capacity { i as u32 + 1 } else { NIL },
            ..Conn::EMPTY
        });
        let index = Region::new(buckets, mem, |_| 0u64);
        let timeouts = Timeouts::default();
        let (pressure_on, pressure_off) = pressure_thresholds(capacity);
        ConnTable {
            slots,
            index,
            mask: (buckets - 1) as u32,
            free_head: if capacity > 0 { 0 } else { NIL },
            len: 0,
            hand: 0,
            evict_hand: 0,
            pressure: false,
            pressure_on,
            pressure_off,
            seed,
            timeouts,
            base_ms: timeouts.to_ms(),
            timeouts_ms: timeouts.to_ms(),
            fnat: None,
            #[cfg(test)]
            hash_bits: 32,
        }
    }

    /// Tests: a table whose hash keeps only `bits` bits (long probe runs,
    /// equal hash tags, wrap-around at the end of the index).
    #[cfg(test)]
    pub(crate) fn with_weak_hash(capacity: usize, bits: u32) -> ConnTable {
        let mut t = Self::build(capacity, Seed::from_u64(1), TableMemory::default());
        t.hash_bits = bits;
        t
    }

    /// Replace the timeouts. Existing connections keep their expiry until
    /// their next packet (as in IPVS).
    pub fn set_timeouts(&mut self, t: Timeouts) {
        self.timeouts = t;
        self.base_ms = t.to_ms();
        self.timeouts_ms = self.base_ms;
        if self.pressure {
            self.apply_pressure(true);
        }
    }

    /// The configured timeouts (SYN_RECV as configured, also while under
    /// pressure; see [`syn_recv_timeout_ms`](Self::syn_recv_timeout_ms)).
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Is the table under pressure (at least [`PRESSURE_ON_PERCENT`] % full,
    /// until it falls to [`PRESSURE_OFF_PERCENT`] %)? Then SYN_RECV is armed
    /// with [`PRESSURE_SYN_RECV_S`]. See the module docs, "Pressure".
    #[inline]
    pub fn under_pressure(&self) -> bool {
        self.pressure
    }

    /// The SYN_RECV timeout a segment arms now, ms (shortened under
    /// pressure).
    pub fn syn_recv_timeout_ms(&self) -> u32 {
        self.timeouts_ms.tcp[TcpState::SynRecv as usize]
    }

    /// Connections in the table (expired ones not yet reaped included).
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Connections the table can hold.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Buckets of the index.
    pub fn index_buckets(&self) -> usize {
        self.index.len()
    }

    /// Bytes this table allocated (slab + index + the struct itself, and
    /// the full-NAT side array once a service uses fnat).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
            + std::mem::size_of_val(&*self.index)
            + std::mem::size_of::<Self>()
            + self
                .fnat
                .as_ref()
                .map_or(0, |f| std::mem::size_of_val(&*f.locals))
    }

    /// The allocator and address spans of the slab and the index (which
    /// pages back them: [`TableSpans::describe`]).
    pub fn memory_spans(&self) -> TableSpans {
        TableSpans {
            source: self.slots.source(),
            spans: [self.slots.span(), self.index.span()],
        }
    }

    /// The connection in slot `id`.
    ///
    /// # Panics
    /// If `id` is beyond the capacity. A freed slot gives its stale record
    /// (debug builds assert).
    #[inline]
    pub fn get(&self, id: ConnId) -> &Conn {
        let c = &self.slots[id.index()];
        debug_assert!(c.in_use(), "get of a free slot {id:?}");
        c
    }

    /// Is `id` a live slot (allocated, expired or not)?
    #[inline]
    pub fn contains(&self, id: ConnId) -> bool {
        self.slots.get(id.index()).is_some_and(|c| c.in_use())
    }

    /// Every connection in the table (expired ones not yet reaped included;
    /// see [`is_expired`](Self::is_expired)), in slot order. For listings
    /// and sync; walks the whole slab.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: self.slots.iter().enumerate(),
        }
    }

    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let mask = self.mask as usize;
        let mut entries = 0;
        for (pos, &e) in self.index.iter().enumerate() {
            if e == 0 {
                continue;
            }
            entries += 1;
            let slot = entry_slot(e);
            let c = &self.slots[slot];
            assert!(c.in_use(), "index points at free slot {slot}");
            let key = match entry_dir(e) {
                Dir::Inbound => c.inbound_key(),
                Dir::Reply => self
                    .reply_key(ConnId(slot as u32))
                    .expect("reply entry without reply key"),
            };
            assert_eq!(entry_hash(e), self.key_hash(&key).0);
            // No empty bucket between home and pos.
            let home = (entry_hash(e) & self.mask) as usize;
            let mut p = home;
            while p != pos {
                assert!(self.index[p] != 0, "gap in probe run");
                p = (p + 1) & mask;
            }
        }
        let live: Vec<_> = self.iter().collect();
        assert_eq!(live.len(), self.len());
        let want: usize = live
            .iter()
            .map(|(_, c)| 1 + (c.flags & flags::REPLY_KEY != 0) as usize)
            .sum();
        assert_eq!(entries, want);
        // Free list covers exactly the free slots.
        let mut free = 0;
        let mut f = self.free_head;
        while f != NIL {
            assert!(!self.slots[f as usize].in_use());
            free += 1;
            f = self.slots[f as usize].dest;
            assert!(free <= self.capacity());
        }
        assert_eq!(free + self.len(), self.capacity());
    }
}

/// Iterator over a table's connections ([`ConnTable::iter`]).
pub struct Iter<'a> {
    inner: std::iter::Enumerate<std::slice::Iter<'a, Conn>>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (ConnId, &'a Conn);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        for (i, c) in self.inner.by_ref() {
            if c.in_use() {
                return Some((ConnId(i as u32), c));
            }
        }
        None
    }
}

//! IPv6 addresses as 32-bit ids, so an IPv6 connection fits the same
//! 32-byte record and 16-byte key as an IPv4 one (issue 13): the worker's
//! IPv6 connection table stores ids where the IPv4 one stores addresses.
//!
//! One table per worker (single writer, no atomics), allocated whole by
//! [`Addr6Table::with_capacity`] and never again. An id is held once per
//! connection that names the address (client, VIP, server: three holds)
//! and freed with the last, so the table never holds more distinct
//! addresses than three times the live connections (in practice about one
//! per client: VIPs and servers are few and shared).
//!
//! Layout: `capacity` entries (16-byte address + 4-byte hold count), a
//! free-id stack (4 bytes each), and an index of `next_pow2(2 * capacity)`
//! 4-byte buckets (linear probing, backward-shift deletion, 0 = empty):
//! 32 bytes per id at power-of-two capacities. Ids are stable while held
//! (the index moves ids, never the entries), and never 0.
//!
//! Per packet the table is read in two steps a burst can pipeline
//! ([`home`](Addr6Table::home) and [`prefetch`](Addr6Table::prefetch) in
//! the first pass, [`get_at`](Addr6Table::get_at) in the second), so the
//! miss on a client's bucket runs under the rest of the first pass instead
//! of stalling it (pipeline/established6.rs). The address entries and the
//! index are in the connection table's kind of memory (`TableMemory`:
//! transparent huge pages by default): the index is sparse (a bucket per
//! client, scattered over `8 * capacity` bytes), and on 4 KiB pages every
//! client's lookup was also a TLB miss and a page walk.

use std::hash::{BuildHasher, Hasher};
use std::net::Ipv6Addr;

use crate::dataplane::region::{Region, TableMemory};

/// An address as the table holds and hashes it: its 16 bytes as a native
/// integer, the frame's byte order (no byte swap to read one off a frame).
#[inline(always)]
pub fn raw(a: Ipv6Addr) -> u128 {
    u128::from_ne_bytes(a.octets())
}

/// The id table of one worker.
pub struct Addr6Table {
    addrs: Region<u128>,
    refs: Box<[u32]>,
    free: Vec<u32>,
    index: Region<u32>,
    mask: usize,
    seed: u64,
    /// Ids freed so far (wrapping): while it is unchanged, every id handed
    /// out names the address it named (`epoch`).
    freed: u32,
}

impl Addr6Table {
    /// A table for up to `capacity` distinct addresses.
    pub fn with_capacity(capacity: usize) -> Addr6Table {
        Self::with_capacity_in(capacity, TableMemory::default())
    }

    /// As [`with_capacity`](Self::with_capacity), with the address entries
    /// and the index in memory of the kind `mem` asks for.
    pub fn with_capacity_in(capacity: usize, mem: TableMemory) -> Addr6Table {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Self::build(capacity, mem, seed)
    }

    /// As [`with_capacity`](Self::with_capacity) with a fixed hash seed:
    /// for tests and reproducible instruction counts (`rvs-perf
    /// pipeline`), never for a director facing traffic.
    pub fn with_capacity_and_seed(capacity: usize, seed: u64) -> Addr6Table {
        Self::build(capacity, TableMemory::default(), seed)
    }

    fn build(capacity: usize, mem: TableMemory, seed: u64) -> Addr6Table {
        let capacity = capacity.clamp(1, u32::MAX as usize / 2);
        let buckets = (2 * capacity).next_power_of_two();
        let seed = seed | 1;
        Addr6Table {
            addrs: Region::new(capacity, mem, |_| 0u128),
            refs: vec![0u32; capacity].into_boxed_slice(),
            // Ids handed out lowest first.
            free: (1..=capacity as u32).rev().collect(),
            index: Region::new(buckets, mem, |_| 0u32),
            mask: buckets - 1,
            seed,
            freed: 0,
        }
    }

    /// Bytes allocated.
    pub fn memory_bytes(&self) -> usize {
        self.addrs.len() * (16 + 4) + self.free.capacity() * 4 + self.index.len() * 4
    }

    /// Bytes a table of `capacity` ids allocates (`rvs-perf mem` reports
    /// the IPv6 figure with it, without building one).
    pub fn bytes_for(capacity: usize) -> usize {
        let capacity = capacity.clamp(1, u32::MAX as usize / 2);
        capacity * (16 + 4 + 4) + (2 * capacity).next_power_of_two() * 4
    }

    /// Distinct addresses held.
    pub fn len(&self) -> usize {
        self.addrs.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bucket where the probe run of `a` ([`raw`]) starts: computed
    /// from the address alone (no memory read), so a burst's first pass can
    /// [`prefetch`](Self::prefetch) it and a later pass look it up
    /// ([`get_at`](Self::get_at)).
    #[inline(always)]
    pub fn home(&self, a: u128) -> usize {
        // Keyed fold: an attacker choosing client addresses cannot aim
        // them at one probe run without the seed.
        let x = (a as u64) ^ ((a >> 64) as u64).rotate_left(29) ^ self.seed;
        let m = u128::from(x).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
        ((m >> 64) as u64 ^ m as u64) as usize & self.mask
    }

    /// Prefetch the bucket `home` returned (the first of its probe run:
    /// runs are short, the index at most half full).
    #[inline(always)]
    pub fn prefetch(&self, home: usize) {
        if let Some(b) = self.index.get(home) {
            crate::conn::prefetch_ptr(b as *const u32 as *const u8);
        }
    }

    /// [`get`](Self::get) of [`raw`] address `a` from its [`home`](Self::home), computed
    /// earlier on this table (a stale or foreign one finds nothing wrong:
    /// the probe compares the address itself).
    #[inline(always)]
    pub fn get_at(&self, home: usize, a: u128) -> Option<u32> {
        self.find_from(home & self.mask, a)
            .ok()
            .map(|i| self.index[i])
    }

    #[inline]
    fn find(&self, a: u128) -> Result<usize, usize> {
        self.find_from(self.home(a), a)
    }

    #[inline(always)]
    fn find_from(&self, home: usize, a: u128) -> Result<usize, usize> {
        let mut i = home;
        loop {
            let id = self.index[i];
            if id == 0 {
                return Err(i);
            }
            if self.addrs[id as usize - 1] == a {
                return Ok(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The id of `a`, if some connection holds it (per packet: one probe
    /// run, no write).
    #[inline]
    pub fn get(&self, a: Ipv6Addr) -> Option<u32> {
        self.find(raw(a)).ok().map(|i| self.index[i])
    }

    /// Changes whenever an id is freed (and may then name another
    /// address): ids read with [`get`](Self::get) while the epoch stays
    /// the same still name the same addresses. The first pass over a
    /// burst resolves a frame's ids; the fast path checks they still hold
    /// when the frames before it in the burst have opened and closed
    /// connections.
    #[inline(always)]
    pub fn epoch(&self) -> u32 {
        self.freed
    }

    /// The address of a held id.
    #[inline]
    pub fn addr(&self, id: u32) -> Ipv6Addr {
        Ipv6Addr::from(self.addrs[id as usize - 1].to_ne_bytes())
    }

    /// Holds `a` once more, giving it an id if it has none; `None` when
    /// the table is full.
    pub fn acquire(&mut self, a: Ipv6Addr) -> Option<u32> {
        let a = raw(a);
        self.acquire_at(self.home(a), a)
    }

    /// [`acquire`](Self::acquire) of [`raw`] address `a` from its
    /// [`home`](Self::home), computed earlier on this table (the first
    /// pass's, for a new flow's client and VIP: not hashed again).
    #[inline(always)]
    pub fn acquire_at(&mut self, home: usize, a: u128) -> Option<u32> {
        match self.find_from(home & self.mask, a) {
            Ok(i) => {
                let id = self.index[i];
                self.refs[id as usize - 1] += 1;
                Some(id)
            }
            Err(i) => {
                let id = self.free.pop()?;
                self.addrs[id as usize - 1] = a;
                self.refs[id as usize - 1] = 1;
                self.index[i] = id;
                Some(id)
            }
        }
    }

    /// Holds `a` once more through `id`, the id a caller remembers it had
    /// (no hash, no probe run): `None` when `id` does not name `a` now
    /// (never handed out, freed since, or handed to another address), and
    /// nothing is written; the caller then [`acquire`](Self::acquire)s.
    /// A held id names one address, so this is `acquire`'s result
    /// whenever it is `Some`.
    #[inline(always)]
    pub fn hold_known(&mut self, id: u32, a: u128) -> Option<u32> {
        let k = (id as usize).wrapping_sub(1);
        let r = self.refs.get_mut(k)?;
        if *r == 0 || self.addrs[k] != a {
            return None;
        }
        *r += 1;
        Some(id)
    }

    /// Gives back one hold of `id`; the last frees it.
    pub fn release(&mut self, id: u32) {
        let Some(r) = self.refs.get_mut((id as usize).wrapping_sub(1)) else {
            return;
        };
        if *r == 0 {
            return;
        }
        *r -= 1;
        if *r > 0 {
            return;
        }
        let Ok(mut hole) = self.find(self.addrs[id as usize - 1]) else {
            return;
        };
        // Backward-shift deletion: pull later members of the run into the
        // hole unless their home lies cyclically after the hole.
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let moved = self.index[j];
            if moved == 0 {
                break;
            }
            let k = self.home(self.addrs[moved as usize - 1]);
            let stays = if hole <= j {
                hole < k && k <= j
            } else {
                hole < k || k <= j
            };
            if !stays {
                self.index[hole] = moved;
                hole = j;
            }
        }
        self.index[hole] = 0;
        self.free.push(id);
        self.freed = self.freed.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: u32) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, (n >> 16) as u16, n as u16)
    }

    #[test]
    fn a_remembered_id_holds_only_the_address_it_still_names() {
        let mut t = Addr6Table::with_capacity(4);
        let x = t.acquire(a(1)).unwrap();
        // Names it: one more hold, as `acquire` would give.
        assert_eq!(t.hold_known(x, raw(a(1))), Some(x));
        assert_eq!(t.refs[x as usize - 1], 2);
        // Another address, id 0, an id out of range: nothing held.
        assert_eq!(t.hold_known(x, raw(a(2))), None);
        assert_eq!(t.hold_known(0, raw(a(1))), None);
        assert_eq!(t.hold_known(99, raw(a(1))), None);
        assert_eq!(t.refs[x as usize - 1], 2);
        // Freed (its entry still has the address): not held, not revived.
        t.release(x);
        t.release(x);
        assert_eq!(t.hold_known(x, raw(a(1))), None);
        assert_eq!(t.len(), 0);
        // Handed to another address since: only that one's.
        let y = t.acquire(a(3)).unwrap();
        assert_eq!(y, x);
        assert_eq!(t.hold_known(x, raw(a(1))), None);
        assert_eq!(t.hold_known(x, raw(a(3))), Some(x));
        assert_eq!(t.get(a(1)), None);
    }

    #[test]
    fn ids_are_held_shared_and_freed() {
        let mut t = Addr6Table::with_capacity(4);
        let x = t.acquire(a(1)).unwrap();
        assert_eq!(t.memory_bytes(), Addr6Table::bytes_for(4));
        assert_eq!(t.acquire(a(1)), Some(x));
        let y = t.acquire(a(2)).unwrap();
        assert_ne!(x, y);
        assert_eq!(t.get(a(1)), Some(x));
        assert_eq!(t.addr(y), a(2));
        let epoch = t.epoch();
        t.release(x);
        assert_eq!(t.get(a(1)), Some(x), "one hold left");
        assert_eq!(t.epoch(), epoch, "no id freed");
        t.release(x);
        assert_eq!(t.get(a(1)), None);
        assert_ne!(t.epoch(), epoch, "an id freed");
        assert_eq!(t.len(), 1);
        for n in 3..6 {
            assert!(t.acquire(a(n)).is_some());
        }
        assert_eq!(t.acquire(a(9)), None, "full");
        assert_eq!(t.get(a(2)), Some(y));
    }

    #[test]
    fn acquire_at_its_home_is_acquire() {
        let mut t = Addr6Table::with_capacity(8);
        let x = t.acquire(a(1)).unwrap();
        let r = raw(a(1));
        assert_eq!(t.acquire_at(t.home(r), r), Some(x), "held again");
        let r = raw(a(2));
        let y = t.acquire_at(t.home(r), r).unwrap();
        assert_eq!((t.get(a(2)), t.addr(y)), (Some(y), a(2)), "a new id");
        t.release(x);
        assert_eq!(t.get(a(1)), Some(x), "one hold left");
        t.release(x);
        assert_eq!(t.get(a(1)), None);
    }

    #[test]
    fn churn_keeps_every_held_address_findable() {
        let mut t = Addr6Table::with_capacity(64);
        let mut held: Vec<(u32, u32)> = Vec::new();
        let mut x = 12345u32;
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let n = (x >> 8) % 200;
            if held.len() < 60 && x & 1 == 0 {
                if let Some(id) = t.acquire(a(n)) {
                    held.push((n, id));
                }
            } else if !held.is_empty() {
                let (_, id) = held.swap_remove((x as usize >> 3) % held.len());
                t.release(id);
            }
            for &(n, id) in &held {
                assert_eq!(t.get(a(n)), Some(id));
            }
        }
        for (_, id) in held.drain(..) {
            t.release(id);
        }
        assert!(t.is_empty());
        assert!(t.index.iter().all(|&b| b == 0));
    }
}

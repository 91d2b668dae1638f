//! The table's index: a flow key's keyed hash, the burst's prefetches of
//! buckets and records, the lookups, and the index entries themselves
//! (`hash32 << 32 | dir << 31 | (slot + 1)`, linear probing).

use super::{expired, ConnTable, KeyHash, DIR_BIT, SLOT_MASK};
use crate::conn::{Conn, ConnId, Dir, FlowKey, Method, WireKey};

/// The index entry a burst's prefetch pass found for a key's hash
/// ([`ConnTable::prefetch_conn_entry`]), for its lookup to try first
/// ([`ConnTable::lookup_hinted`]), decoded: the slot and the key's
/// direction, so that the lookup indexes the slab at once. `Hint::NONE`
/// (nothing found or not looked) names no slot: its bounds check fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hint {
    slot: u32,
    dir: Dir,
}

impl Hint {
    pub const NONE: Hint = Hint {
        slot: u32::MAX,
        dir: Dir::Inbound,
    };
}

impl Default for Hint {
    fn default() -> Hint {
        Hint::NONE
    }
}

/// The index and the slab as a burst's record-prefetch pass reads them
/// ([`ConnTable::entry_prefetch`]): taken once per burst, its slices and
/// mask stay in registers across the burst's frames, where a call per
/// frame reloads them from the table (the pass's stores of hints could
/// alias them, as far as the compiler knows).
#[derive(Clone, Copy)]
pub struct EntryPrefetch<'a> {
    index: &'a [u64],
    slots: &'a [Conn],
    mask: u32,
}

impl EntryPrefetch<'_> {
    /// Read the (prefetched) bucket run of `h` and prefetch the record of
    /// the first entry whose hash matches; that entry as a [`Hint`].
    #[inline(always)]
    pub fn entry(&self, h: KeyHash) -> Hint {
        let mut pos = h.0 & self.mask;
        loop {
            let Some(&e) = self.index.get(pos as usize) else {
                return Hint::NONE;
            };
            if e == 0 {
                return Hint::NONE;
            }
            if entry_hash(e) == h.0 {
                let slot = entry_slot(e);
                if let Some(c) = self.slots.get(slot) {
                    prefetch_ptr(c as *const Conn as *const u8);
                }
                return Hint {
                    slot: slot as u32,
                    dir: entry_dir(e),
                };
            }
            pos = (pos + 1) & self.mask;
        }
    }
}

/// Prefetch the cache line at `p` into all cache levels (a no-op off
/// x86_64).
#[inline(always)]
pub(crate) fn prefetch_ptr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint; it never faults, and `p` points into
        // memory this table owns anyway.
        #[allow(unused_unsafe)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p as *const i8)
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[inline(always)]
pub(super) fn entry(h: u32, slot: u32, dir: Dir) -> u64 {
    (h as u64) << 32 | (dir as u64) << 31 | (slot as u64 + 1)
}

#[inline(always)]
pub(super) fn entry_hash(e: u64) -> u32 {
    (e >> 32) as u32
}

#[inline(always)]
pub(super) fn entry_slot(e: u64) -> usize {
    ((e & SLOT_MASK) - 1) as usize
}

#[inline(always)]
pub(super) fn entry_dir(e: u64) -> Dir {
    if e & DIR_BIT != 0 {
        Dir::Reply
    } else {
        Dir::Inbound
    }
}

impl ConnTable {
    /// The hash of `key` in this table.
    #[inline(always)]
    pub fn key_hash(&self, key: &FlowKey) -> KeyHash {
        self.key_hash_wire(&key.wire())
    }

    /// [`key_hash`](Self::key_hash) of a key in words.
    #[inline(always)]
    pub fn key_hash_wire(&self, key: &WireKey) -> KeyHash {
        let h = (self.seed.hash(key) >> 32) as u32;
        #[cfg(test)]
        let h = if self.hash_bits >= 32 {
            h
        } else {
            h & ((1u32 << self.hash_bits) - 1)
        };
        KeyHash(h)
    }

    /// Hash `key` and prefetch its index bucket, ahead of a
    /// [`lookup`](Self::lookup) of the same key.
    #[inline(always)]
    pub fn prefetch(&self, key: &FlowKey) {
        self.prefetch_hashed(self.key_hash(key));
    }

    /// Prefetch the bucket of an already computed hash.
    #[inline(always)]
    pub fn prefetch_hashed(&self, h: KeyHash) {
        let pos = (h.0 & self.mask) as usize;
        prefetch_ptr(&self.index[pos] as *const u64 as *const u8);
    }

    /// Second stage of a batched lookup: read the (prefetched) bucket run of
    /// `h` and prefetch the record of the first entry whose hash matches, so
    /// the [`lookup_hashed`](Self::lookup_hashed) that follows finds both in
    /// cache. Pipeline for a burst: `key_hash` + `prefetch_hashed` for every
    /// packet, then `prefetch_conn_hashed` for every packet, then
    /// `lookup_hashed`.
    #[inline(always)]
    pub fn prefetch_conn_hashed(&self, h: KeyHash) {
        self.prefetch_conn_entry(h);
    }

    /// [`prefetch_conn_hashed`](Self::prefetch_conn_hashed), returning the
    /// index entry whose record it prefetched ([`Hint::NONE`]: none): a
    /// [`Hint`] for [`lookup_hinted`](Self::lookup_hinted) later in the
    /// burst.
    #[inline(always)]
    pub fn prefetch_conn_entry(&self, h: KeyHash) -> Hint {
        self.entry_prefetch().entry(h)
    }

    /// The view a burst's record-prefetch pass reads the table through
    /// ([`EntryPrefetch::entry`] per frame).
    #[inline(always)]
    pub fn entry_prefetch(&self) -> EntryPrefetch<'_> {
        EntryPrefetch {
            index: &self.index,
            slots: &self.slots,
            mask: self.mask,
        }
    }

    /// The live connection `key` belongs to, and which of its keys matched.
    /// An entry whose expiry is reached counts as a miss (it stays until
    /// [`expire_some`](Self::expire_some) reaps it, so `on_expire` runs once
    /// for every connection).
    #[inline]
    pub fn lookup(&self, key: &FlowKey, now_ms: u64) -> Option<(ConnId, Dir)> {
        self.lookup_hashed(key, self.key_hash(key), now_ms)
    }

    /// [`lookup`](Self::lookup) with the hash from [`key_hash`](Self::key_hash).
    #[inline(always)]
    pub fn lookup_hashed(&self, key: &FlowKey, h: KeyHash, now_ms: u64) -> Option<(ConnId, Dir)> {
        self.lookup_record(key, h, now_ms)
            .map(|(id, dir, _)| (id, dir))
    }

    /// [`lookup_hashed`](Self::lookup_hashed) with the record it found
    /// (the established fast path reads it without indexing the slab
    /// again).
    #[inline(always)]
    pub fn lookup_record(
        &self,
        key: &FlowKey,
        h: KeyHash,
        now_ms: u64,
    ) -> Option<(ConnId, Dir, &Conn)> {
        self.lookup_wire(&key.wire(), h, now_ms)
    }

    /// [`lookup_record`](Self::lookup_record) of a key in words (the
    /// established fast path reads them off the frame): each candidate
    /// record is compared in two word compares and a byte compare.
    #[inline(always)]
    pub fn lookup_wire(
        &self,
        key: &WireKey,
        h: KeyHash,
        now_ms: u64,
    ) -> Option<(ConnId, Dir, &Conn)> {
        let now = now_ms as u32;
        let mut pos = h.0 & self.mask;
        loop {
            let e = self.index[pos as usize];
            if e == 0 {
                return None;
            }
            if entry_hash(e) == h.0 {
                let slot = entry_slot(e);
                let dir = entry_dir(e);
                let c = &self.slots[slot];
                let hit = if dir == Dir::Reply && c.method == Method::Fnat as u8 {
                    self.matches_local(c, slot, key)
                } else {
                    c.matches_wire(key, dir)
                };
                if hit && !expired(c.expires, now) {
                    return Some((ConnId(slot as u32), dir, c));
                }
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// [`lookup_wire`](Self::lookup_wire) that first tries the record
    /// `hint` names (what the burst's prefetch pass found in the key's
    /// bucket: the first entry with the key's hash, where the walk would
    /// look first): if that record is live, matches `key` in the entry's
    /// direction and has not expired, it is the answer, without reading
    /// the index again. Anything else (no hint, another key with the same
    /// hash, a record the burst's earlier packets removed or replaced)
    /// walks the index as `lookup_wire` does.
    #[inline(always)]
    pub fn lookup_hinted(
        &self,
        key: &WireKey,
        h: KeyHash,
        hint: Hint,
        now_ms: u64,
    ) -> Option<(ConnId, Dir, &Conn)> {
        let (slot, dir) = (hint.slot, hint.dir);
        if let Some(c) = self.slots.get(slot as usize) {
            let fnat_reply = dir == Dir::Reply && c.method == Method::Fnat as u8;
            if c.in_use()
                && !fnat_reply
                && c.matches_wire(key, dir)
                && !expired(c.expires, now_ms as u32)
            {
                return Some((ConnId(slot), dir, c));
            }
        }
        self.lookup_wire(key, h, now_ms)
    }

    /// Longest probe run currently in the index (diagnostics).
    pub fn max_probe_len(&self) -> usize {
        let mask = self.mask as usize;
        let mut worst = 0;
        for (pos, &e) in self.index.iter().enumerate() {
            if e != 0 {
                let home = (entry_hash(e) & self.mask) as usize;
                worst = worst.max((pos.wrapping_sub(home) & mask) + 1);
            }
        }
        worst
    }

    // ---- index ----

    /// Inlined: a new connection's two inserts are a probe each (the
    /// bucket of a new key is usually empty), not worth two calls.
    #[inline(always)]
    pub(super) fn index_insert(&mut self, h: KeyHash, e: u64) {
        let mut pos = h.0 & self.mask;
        // The index always has empty buckets (load <= 0.7), so this ends.
        while self.index[pos as usize] != 0 {
            pos = (pos + 1) & self.mask;
        }
        self.index[pos as usize] = e;
    }

    /// Remove the entry whose slot/dir part equals that of `e`, then close
    /// the gap by shifting later entries of the run back (no tombstones).
    pub(super) fn index_remove(&mut self, h: KeyHash, e: u64) {
        let mask = self.mask;
        let low = e & 0xffff_ffff;
        let mut i = h.0 & mask;
        loop {
            let cur = self.index[i as usize];
            assert!(cur != 0, "conn index entry missing");
            if cur & 0xffff_ffff == low {
                break;
            }
            i = (i + 1) & mask;
        }
        // Backward shift: walk the run after the hole; an entry may fill the
        // hole if its home is not cyclically within (hole, its position].
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let cur = self.index[j as usize];
            if cur == 0 {
                break;
            }
            let home = entry_hash(cur) & mask;
            // Distance from home to j vs from hole to j, both cyclic.
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(i) & mask) {
                self.index[i as usize] = cur;
                i = j;
            }
        }
        self.index[i as usize] = 0;
    }
}

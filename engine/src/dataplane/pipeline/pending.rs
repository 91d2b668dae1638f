//! The per-server packet and byte counts of a worker's fast paths, added up
//! per millisecond of worker loops and flushed to the servers' per-worker counters once
//! ([`PendingList::flush`]), so a packet costs one add instead of two
//! counter updates. Shared by the IPv4 and IPv6 per-server tables
//! (`dest_fast.rs`, `dest_fast6.rs`), whose entries each hold a
//! [`Pending`].
//!
//! Counters outlive snapshots (`Snapshot::counters` has every id the
//! registry has known), so what a server forwarded before a reload that
//! removed it is still counted.

use crate::dataplane::snapshot::Snapshot;

/// Servers with pending counts at most before a flush is forced (a burst
/// touches at most one per frame).
const DIRTY: usize = 64;

/// Where a pending count keeps its packets: above 40 bits of bytes. Exact
/// while fewer than 2^24 packets (and 2^40 bytes) add up between flushes;
/// a flush comes once a millisecond (`Pipeline::end_burst`): at most some
/// 15,000 frames of a worker at line rate.
const PACKETS_SHIFT: u32 = 40;

/// One server's counts not yet flushed.
#[derive(Clone, Copy)]
pub(super) struct Pending {
    /// In and out: packets << [`PACKETS_SHIFT`] | bytes, so that a packet
    /// is one add.
    counts: [u64; 2],
    /// Listed in its table's [`PendingList`].
    dirty: bool,
}

impl Pending {
    pub(super) const EMPTY: Pending = Pending {
        counts: [0; 2],
        dirty: false,
    };
}

/// An entry of a per-server table: where its [`Pending`] is.
pub(super) trait HasPending {
    fn pending(&mut self) -> &mut Pending;
}

/// The servers of one table with pending counts, each listed once, and
/// the worker whose counters they go to.
pub(super) struct PendingList {
    worker: usize,
    ids: [u32; DIRTY],
    len: usize,
}

impl PendingList {
    pub(super) fn new(worker: usize) -> PendingList {
        PendingList {
            worker,
            ids: [0; DIRTY],
            len: 0,
        }
    }

    /// Adds one packet of `len` IP bytes to entry `i` of `dests` (`out`:
    /// from the server).
    #[inline(always)]
    pub(super) fn count<D: HasPending>(
        &mut self,
        dests: &mut [D],
        snap: &Snapshot,
        i: usize,
        out: bool,
        len: u64,
    ) {
        let p = dests[i].pending();
        p.counts[usize::from(out)] += 1 << PACKETS_SHIFT | len;
        if !p.dirty {
            p.dirty = true;
            if self.len == DIRTY {
                self.flush(dests, snap);
            }
            self.ids[self.len] = i as u32;
            self.len += 1;
        }
    }

    /// Adds the pending counts of `dests` to the servers' per-worker
    /// counters.
    #[inline]
    pub(super) fn flush<D: HasPending>(&mut self, dests: &mut [D], snap: &Snapshot) {
        if self.len != 0 {
            self.flush_all(dests, snap);
        }
    }

    #[cold]
    #[inline(never)]
    fn flush_all<D: HasPending>(&mut self, dests: &mut [D], snap: &Snapshot) {
        let mask = (1 << PACKETS_SHIFT) - 1;
        for &id in &self.ids[..self.len] {
            let Some(d) = dests.get_mut(id as usize) else {
                continue;
            };
            let p = d.pending();
            let [inb, out] = std::mem::take(&mut p.counts);
            // Still dirty until here: an entry left pending by a flush
            // cut short is in the list once.
            p.dirty = false;
            let Some(k) = snap
                .counters(id)
                .and_then(|s| s.per_worker.get(self.worker))
            else {
                continue;
            };
            k.in_packets.add(inb >> PACKETS_SHIFT);
            k.in_bytes.add(inb & mask);
            k.out_packets.add(out >> PACKETS_SHIFT);
            k.out_bytes.add(out & mask);
        }
        self.len = 0;
    }
}

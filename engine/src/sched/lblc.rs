//! lblc: locality-based least connection (`ip_vs_lblc.c`).
//!
//! A cache maps a destination IP to the server last used for it. On a hit
//! the entry's last-use time is refreshed and its server is kept while it is
//! a candidate (usable, weight > 0, not over its upper threshold) and not
//! overloaded in lblc's sense ([`lblc_overloaded`]); otherwise, and on a
//! miss, a wlc pick is made and stored. An entry idle for the expiration
//! (24 h by default) counts as absent.
//!
//! # The cache
//!
//! The kernel uses a chained hash table of 1024 buckets, collects entries
//! idle for 24 h every 30 min, and, once it holds more than 16384 entries,
//! collects entries idle for 6 min every minute. rvs uses a fixed
//! 4-way set-associative array of atomic entries sized at build time
//! (default 16384 entries), indexed by `hash_32(dst_ip)`. An entry idle for
//! the expiration is treated as absent when it is looked up (exact, where
//! the kernel is up to 30 min late). When a set is full, the least recently
//! used of its four entries is replaced; that is an entry idle for at least
//! 6 min whenever the set has one, as in the kernel's collection.
//!
//! An entry is two atomics: `tag` = `dst_ip << 32 | server + 1` (0 = empty),
//! so the destination-to-server association is always read consistently,
//! and `lastuse` (ms), written before the tag (release/acquire).
//!
//! Benign races: two workers missing on the same destination at the same
//! time may both store an entry (in two ways of the set, or one after the
//! other); lookups use the first live one and the other ages out. A lookup
//! racing with the replacement of its entry may see a refreshed or a stale
//! `lastuse`. Neither can produce a server outside the service, and every
//! hit is re-checked against the live server state.

use std::sync::atomic::{AtomicU64, Ordering};

use super::lc::wlc_pick;
use super::{is_candidate, Dests, Pick, SchedInput, SchedKind};

pub(super) const WAYS: usize = 4;

/// lblc's (and lblcr's) own overload rule (`is_overloaded` in both files):
/// the server has more active connections than its weight while some server
/// of the service has fewer than half its weight.
pub(super) fn lblc_overloaded<D: Dests + ?Sized>(d: &D, s: usize) -> bool {
    if d.active(s) as u64 <= d.weight(s) as u64 {
        return false;
    }
    (0..d.len()).any(|i| d.usable(i) && (d.active(i) as u64) * 2 < d.weight(i) as u64)
}

/// Number of sets for `entries` cache entries and the bits to index them.
pub(super) fn geometry(entries: usize) -> (usize, u32) {
    let total = entries.max(WAYS).next_power_of_two();
    let sets = total / WAYS;
    (sets, sets.trailing_zeros())
}

/// The kernel's `hash_32`: the top `bits` bits of `v * GOLDEN_RATIO_32`.
#[inline]
pub(super) fn hash_32(v: u32, bits: u32) -> usize {
    if bits == 0 {
        return 0;
    }
    (v.wrapping_mul(0x61C8_8647) >> (32 - bits)) as usize
}

/// Among the ways of a set, the one to replace: an empty one, else the least
/// recently used (`lastuse` given by `lastuse_of`, `None` = empty).
pub(super) fn victim(lastuse_of: impl Fn(usize) -> Option<u64>) -> usize {
    let mut best = 0;
    let mut best_use = u64::MAX;
    for w in 0..WAYS {
        match lastuse_of(w) {
            None => return w,
            Some(lu) if lu < best_use => {
                best = w;
                best_use = lu;
            }
            Some(_) => {}
        }
    }
    best
}

struct Slot {
    tag: AtomicU64,
    lastuse: AtomicU64,
}

pub(super) struct Lblc {
    slots: Box<[Slot]>,
    set_bits: u32,
    expiration_ms: u64,
}

impl Lblc {
    pub(super) fn new(entries: usize, expiration_ms: u64) -> Lblc {
        let (sets, set_bits) = geometry(entries);
        let slots = (0..sets * WAYS)
            .map(|_| Slot {
                tag: AtomicU64::new(0),
                lastuse: AtomicU64::new(0),
            })
            .collect();
        Lblc {
            slots,
            set_bits,
            expiration_ms,
        }
    }

    #[inline]
    fn live(&self, lastuse: u64, now: u64) -> bool {
        now.saturating_sub(lastuse) < self.expiration_ms
    }
}

impl Pick for Lblc {
    fn kind(&self) -> SchedKind {
        SchedKind::Lblc
    }

    fn pick<D: Dests + ?Sized>(&self, d: &D, input: &SchedInput) -> Option<usize> {
        let key = u32::from(input.dst_ip);
        let now = input.now_ms;
        let set = &self.slots[hash_32(key, self.set_bits) * WAYS..][..WAYS];

        // Look in the cache; remember the way holding this destination, if
        // any, so that a new pick replaces it in place.
        let mut mine: Option<usize> = None;
        for (w, slot) in set.iter().enumerate() {
            let tag = slot.tag.load(Ordering::Acquire);
            if tag == 0 || (tag >> 32) as u32 != key {
                continue;
            }
            mine = Some(w);
            if !self.live(slot.lastuse.load(Ordering::Relaxed), now) {
                break; // expired: as if the kernel had collected it
            }
            slot.lastuse.store(now, Ordering::Relaxed);
            let s = (tag as u32 as usize).wrapping_sub(1);
            if is_candidate(d, s) && !lblc_overloaded(d, s) {
                return Some(s);
            }
            break;
        }

        // No entry, or it is invalid: schedule and (re)place the entry.
        let dest = wlc_pick(d)?;
        let new_tag = ((key as u64) << 32) | (dest as u64 + 1);
        let w = match mine {
            Some(w) => {
                if set[w].tag.load(Ordering::Relaxed) == new_tag
                    && self.live(set[w].lastuse.load(Ordering::Relaxed), now)
                {
                    // Same server: the kernel keeps the entry as it is.
                    return Some(dest);
                }
                w
            }
            None => victim(|w| match set[w].tag.load(Ordering::Relaxed) {
                0 => None,
                _ => Some(set[w].lastuse.load(Ordering::Relaxed)),
            }),
        };
        set[w].lastuse.store(now, Ordering::Relaxed);
        set[w].tag.store(new_tag, Ordering::Release);
        Some(dest)
    }
}

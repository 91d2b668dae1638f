//! lblcr: locality-based least connection with replication
//! (`ip_vs_lblcr.c`).
//!
//! A cache maps a destination IP to a set of servers. On a hit:
//! 1. the entry's last-use time is refreshed;
//! 2. `dest` = the set's least loaded (load / weight) candidate member;
//! 3. if the set has more than one member and has not changed for the
//!    expiration (strictly more than `lblcr_expiration` ago), its most
//!    loaded member with weight > 0 is dropped (this may be `dest` itself,
//!    which is still used for this connection, as in the kernel);
//! 4. if `dest` exists and is not overloaded in lblc's sense, it is used;
//!    otherwise a wlc pick over all servers is used and added to the set.
//!
//! On a miss a wlc pick is used and a new entry with a one-member set is
//! stored. Adding or dropping a member sets the set's modification time;
//! adding a member already present changes nothing. Entries idle for the
//! expiration count as absent (see `lblc.rs` for the cache layout and its
//! relation to the kernel's collection).
//!
//! A set is a bitmask of server indexes, `ceil(n / 64)` `AtomicU64` words
//! per entry; members are considered in configuration order, where the
//! kernel walks its set newest member first: the two differ only in which of
//! two equally loaded members is picked or dropped.
//!
//! Benign races: members are added with `fetch_or` and dropped with
//! `fetch_and`, so concurrent updates of one set never lose each other. The
//! drop of step 3 is done by the one worker that moves the modification time
//! forward with a compare-and-swap, so two workers never both shrink the set
//! for the same expiry. A worker replacing an entry (new destination) while
//! another adds a member for the old destination may leave that extra member
//! in the new set; every member is a server of this service and every pick
//! is re-checked against the live server state.

use std::sync::atomic::{AtomicU64, Ordering};

use super::lblc::{geometry, hash_32, lblc_overloaded, victim, WAYS};
use super::lc::wlc_pick;
use super::{heavier, is_candidate, overhead_of, Dests, Pick, SchedInput, SchedKind};

/// Set in `key` for a used entry (the address is the low 32 bits).
const VALID: u64 = 1 << 32;

struct Slot {
    key: AtomicU64,
    lastuse: AtomicU64,
    lastmod: AtomicU64,
}

pub(super) struct Lblcr {
    slots: Box<[Slot]>,
    /// `words` bitmask words per slot.
    masks: Box<[AtomicU64]>,
    words: usize,
    set_bits: u32,
    expiration_ms: u64,
}

impl Lblcr {
    pub(super) fn new(entries: usize, expiration_ms: u64, servers: usize) -> Lblcr {
        let (sets, set_bits) = geometry(entries);
        let words = servers.div_ceil(64).max(1);
        let slots = (0..sets * WAYS)
            .map(|_| Slot {
                key: AtomicU64::new(0),
                lastuse: AtomicU64::new(0),
                lastmod: AtomicU64::new(0),
            })
            .collect();
        let masks = (0..sets * WAYS * words)
            .map(|_| AtomicU64::new(0))
            .collect();
        Lblcr {
            slots,
            masks,
            words,
            set_bits,
            expiration_ms,
        }
    }

    #[inline]
    fn mask(&self, slot: usize) -> &[AtomicU64] {
        &self.masks[slot * self.words..][..self.words]
    }

    /// Members of a set, in index order, below `n`.
    fn members(&self, slot: usize, n: usize) -> impl Iterator<Item = usize> + '_ {
        self.mask(slot)
            .iter()
            .enumerate()
            .flat_map(|(wi, word)| {
                let mut bits = word.load(Ordering::Relaxed);
                std::iter::from_fn(move || {
                    if bits == 0 {
                        return None;
                    }
                    let b = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    Some(wi * 64 + b)
                })
            })
            .take_while(move |&i| i < n)
    }

    fn set_size(&self, slot: usize) -> u32 {
        self.mask(slot)
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones())
            .sum()
    }

    /// `ip_vs_dest_set_min`: the least loaded candidate member.
    fn set_min<D: Dests + ?Sized>(&self, d: &D, slot: usize) -> Option<usize> {
        let mut least: Option<(usize, u64, u32)> = None;
        for i in self.members(slot, d.len()) {
            if !is_candidate(d, i) {
                continue;
            }
            let (doh, dw) = (overhead_of(d, i), d.weight(i));
            match least {
                Some((_, loh, lw)) if !heavier(loh, lw, doh, dw) => {}
                _ => least = Some((i, doh, dw)),
            }
        }
        least.map(|(i, _, _)| i)
    }

    /// `ip_vs_dest_set_max`: the most loaded member with weight > 0.
    fn set_max<D: Dests + ?Sized>(&self, d: &D, slot: usize) -> Option<usize> {
        let mut most: Option<(usize, u64, u32)> = None;
        for i in self.members(slot, d.len()) {
            let dw = d.weight(i);
            if dw == 0 {
                continue;
            }
            let doh = overhead_of(d, i);
            match most {
                Some((_, moh, mw)) if !heavier(doh, dw, moh, mw) => {}
                _ => most = Some((i, doh, dw)),
            }
        }
        most.map(|(i, _, _)| i)
    }

    /// Add `i` to a set; true when it was not a member.
    fn add(&self, slot: usize, i: usize) -> bool {
        let bit = 1u64 << (i % 64);
        self.mask(slot)[i / 64].fetch_or(bit, Ordering::Relaxed) & bit == 0
    }

    /// Drop `i` from a set; true when it was a member.
    fn drop_member(&self, slot: usize, i: usize) -> bool {
        let bit = 1u64 << (i % 64);
        self.mask(slot)[i / 64].fetch_and(!bit, Ordering::Relaxed) & bit != 0
    }

    #[inline]
    fn live(&self, lastuse: u64, now: u64) -> bool {
        now.saturating_sub(lastuse) < self.expiration_ms
    }

    /// Step 3: drop the most loaded member of a set that has not changed for
    /// the expiration.
    fn maybe_shrink<D: Dests + ?Sized>(&self, d: &D, slot: usize, now: u64) {
        if self.set_size(slot) <= 1 {
            return;
        }
        let s = &self.slots[slot];
        let lm = s.lastmod.load(Ordering::Relaxed);
        if now <= lm.saturating_add(self.expiration_ms) {
            return;
        }
        // Claim this expiry: only one worker shrinks the set for it.
        if s.lastmod
            .compare_exchange(lm, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let dropped = self.set_size(slot) > 1
            && self
                .set_max(d, slot)
                .is_some_and(|m| self.drop_member(slot, m));
        if !dropped {
            // Nothing changed: the kernel leaves the modification time alone.
            let _ = s
                .lastmod
                .compare_exchange(now, lm, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

impl Pick for Lblcr {
    fn kind(&self) -> SchedKind {
        SchedKind::Lblcr
    }

    fn pick<D: Dests + ?Sized>(&self, d: &D, input: &SchedInput) -> Option<usize> {
        let key = VALID | u32::from(input.dst_ip) as u64;
        let now = input.now_ms;
        let base = hash_32(u32::from(input.dst_ip), self.set_bits) * WAYS;

        let mut mine: Option<usize> = None;
        for slot in base..base + WAYS {
            let s = &self.slots[slot];
            if s.key.load(Ordering::Acquire) != key {
                continue;
            }
            mine = Some(slot);
            if !self.live(s.lastuse.load(Ordering::Relaxed), now) {
                break; // expired: as if the kernel had collected it
            }
            s.lastuse.store(now, Ordering::Relaxed);
            let dest = self.set_min(d, slot);
            self.maybe_shrink(d, slot, now);
            if let Some(m) = dest {
                if !lblc_overloaded(d, m) {
                    return Some(m);
                }
            }
            let dest = wlc_pick(d)?;
            if dest < self.words * 64 && self.add(slot, dest) {
                s.lastmod.store(now, Ordering::Relaxed);
            }
            return Some(dest);
        }

        // No live entry: schedule and store a one-member set.
        let dest = wlc_pick(d)?;
        if dest >= self.words * 64 {
            return Some(dest); // more servers than at build time: no caching
        }
        let slot = mine.unwrap_or_else(|| {
            base + victim(|w| {
                let s = &self.slots[base + w];
                match s.key.load(Ordering::Relaxed) {
                    0 => None,
                    _ => Some(s.lastuse.load(Ordering::Relaxed)),
                }
            })
        });
        for (wi, word) in self.mask(slot).iter().enumerate() {
            let bits = if wi == dest / 64 {
                1u64 << (dest % 64)
            } else {
                0
            };
            word.store(bits, Ordering::Relaxed);
        }
        let s = &self.slots[slot];
        s.lastmod.store(now, Ordering::Relaxed);
        s.lastuse.store(now, Ordering::Relaxed);
        s.key.store(key, Ordering::Release);
        Some(dest)
    }
}

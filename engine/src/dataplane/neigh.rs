//! The neighbour (ARP) table shared by all workers.
//!
//! Any worker learns from the ARP it receives, and any worker resolves the
//! next hop of the frame it forwards, so the table is shared; it is written
//! rarely (an ARP exchange every few minutes per neighbour) and read per
//! forwarded frame. It is a fixed array of atomic entries with bounded linear
//! probing: no locks, no allocation after start-up, every read of a MAC is a
//! single 64-bit load so a reader never sees half an update.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::packet::ethernet::MacAddr;

/// How long a learned MAC is trusted (Linux's reachable time is shorter, but
/// a director's neighbours are few and stable; IPVS relies on the kernel's
/// defaults of about 30-60 s stale plus probes, we refresh well before this).
pub const EXPIRE_MS: u64 = 300_000;
/// After this age a use of the entry asks for a refresh request.
pub const REFRESH_MS: u64 = 60_000;
/// Minimum gap between two ARP requests for one address.
pub const RETRY_MS: u64 = 1_000;

const PROBE: usize = 8;
const VALID: u64 = 1 << 63;

struct Entry {
    /// IPv4 address in host order; 0 = free.
    ip: AtomicU32,
    /// MAC in the low 48 bits, VALID in bit 63.
    mac: AtomicU64,
    /// When the MAC was learned (ms).
    learned: AtomicU64,
    /// When we last sent a request for it (ms).
    requested: AtomicU64,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Use this MAC.
    Mac(MacAddr),
    /// Use this MAC, and send a refresh request now.
    MacRefresh(MacAddr),
    /// Unknown: send a request now (and drop or hold the frame).
    Request,
    /// Unknown, a request is already out.
    Pending,
}

pub struct NeighTable {
    entries: Box<[Entry]>,
    mask: usize,
}

impl NeighTable {
    /// A table with room for about `capacity` neighbours (rounded up to a
    /// power of two, at least 64).
    pub fn new(capacity: usize) -> NeighTable {
        let n = capacity.max(64).next_power_of_two();
        let entries = (0..n)
            .map(|_| Entry {
                ip: AtomicU32::new(0),
                mac: AtomicU64::new(0),
                learned: AtomicU64::new(0),
                requested: AtomicU64::new(0),
            })
            .collect();
        NeighTable {
            entries,
            mask: n - 1,
        }
    }

    fn home(&self, ip: u32) -> usize {
        (ip.wrapping_mul(0x9E37_79B1) >> 7) as usize & self.mask
    }

    /// Finds the entry of `ip`, or claims a free or expired one.
    fn slot(&self, ip: u32, now_ms: u64, claim: bool) -> Option<&Entry> {
        let h = self.home(ip);
        let mut victim: Option<&Entry> = None;
        for i in 0..PROBE {
            let e = &self.entries[(h + i) & self.mask];
            let cur = e.ip.load(Relaxed);
            if cur == ip {
                return Some(e);
            }
            if !claim {
                if cur == 0 {
                    return None;
                }
                continue;
            }
            if cur == 0 {
                if e.ip.compare_exchange(0, ip, Relaxed, Relaxed).is_ok() {
                    return Some(e);
                }
                if e.ip.load(Relaxed) == ip {
                    return Some(e);
                }
                continue;
            }
            let age = now_ms.saturating_sub(e.learned.load(Relaxed).max(e.requested.load(Relaxed)));
            if victim.is_none() && age > EXPIRE_MS {
                victim = Some(e);
            }
        }
        // Every probe slot is taken: reuse an expired one (benign race: two
        // claimers may both write; the last writer's address wins and the
        // other neighbour is simply asked for again).
        let e = victim?;
        e.mac.store(0, Relaxed);
        e.learned.store(0, Relaxed);
        e.requested.store(0, Relaxed);
        e.ip.store(ip, Relaxed);
        Some(e)
    }

    /// Records that `ip` is at `mac` (from an ARP request or reply).
    pub fn learn(&self, ip: Ipv4Addr, mac: MacAddr, now_ms: u64) {
        let ip = u32::from(ip);
        if ip == 0 || mac.is_broadcast() {
            return;
        }
        if let Some(e) = self.slot(ip, now_ms, true) {
            let new = VALID | mac_to_u64(mac);
            // Most learns confirm what is there: leave the line clean.
            if e.mac.load(Relaxed) != new {
                e.mac.store(new, Relaxed);
            }
            e.learned.store(now_ms, Relaxed);
        }
    }

    /// The entry index of `ip`, if it has one, for callers that cache a
    /// resolution and check it with [`mac_word`](Self::mac_word).
    #[inline]
    pub fn index_of(&self, ip: Ipv4Addr) -> Option<usize> {
        let ip = u32::from(ip);
        let h = self.home(ip);
        (0..PROBE)
            .map(|i| (h + i) & self.mask)
            .find(|&j| self.entries[j].ip.load(Relaxed) == ip)
    }

    /// The raw MAC word of entry `i` (MAC and a valid bit): it changes
    /// whenever the entry's MAC changes, is cleared or is reused.
    #[inline(always)]
    pub fn mac_word(&self, i: usize) -> u64 {
        self.entries[i & self.mask].mac.load(Relaxed)
    }

    /// The MAC a word from [`mac_word`](Self::mac_word) holds, if valid.
    #[inline]
    pub fn word_mac(word: u64) -> Option<MacAddr> {
        (word & VALID != 0).then(|| u64_to_mac(word))
    }

    /// Resolves `ip` for forwarding. `Request`/`MacRefresh` mean the caller
    /// must send an ARP request now; the table has noted it, so other callers
    /// get `Pending`/`Mac` until the retry gap has passed.
    pub fn resolve(&self, ip: Ipv4Addr, now_ms: u64) -> Resolution {
        let ip = u32::from(ip);
        let Some(e) = self.slot(ip, now_ms, true) else {
            return Resolution::Pending;
        };
        let mac = e.mac.load(Relaxed);
        let learned = e.learned.load(Relaxed);
        let fresh = mac & VALID != 0 && now_ms.saturating_sub(learned) <= EXPIRE_MS;
        let requested = e.requested.load(Relaxed);
        let may_ask = requested == 0 || now_ms.saturating_sub(requested) >= RETRY_MS;
        if fresh {
            let m = u64_to_mac(mac);
            if now_ms.saturating_sub(learned) >= REFRESH_MS && may_ask {
                e.requested.store(now_ms.max(1), Relaxed);
                return Resolution::MacRefresh(m);
            }
            return Resolution::Mac(m);
        }
        if may_ask {
            e.requested.store(now_ms.max(1), Relaxed);
            Resolution::Request
        } else {
            Resolution::Pending
        }
    }

    /// The MAC of `ip` if known and not expired, without side effects.
    pub fn peek(&self, ip: Ipv4Addr, now_ms: u64) -> Option<MacAddr> {
        let e = self.slot(u32::from(ip), now_ms, false)?;
        let mac = e.mac.load(Relaxed);
        (mac & VALID != 0 && now_ms.saturating_sub(e.learned.load(Relaxed)) <= EXPIRE_MS)
            .then(|| u64_to_mac(mac))
    }

    /// Every live entry, for `rvs ctl` and logs.
    pub fn entries(&self, now_ms: u64) -> Vec<(Ipv4Addr, MacAddr, u64)> {
        self.entries
            .iter()
            .filter_map(|e| {
                let ip = e.ip.load(Relaxed);
                let mac = e.mac.load(Relaxed);
                let age = now_ms.saturating_sub(e.learned.load(Relaxed));
                (ip != 0 && mac & VALID != 0 && age <= EXPIRE_MS)
                    .then(|| (Ipv4Addr::from(ip), u64_to_mac(mac), age))
            })
            .collect()
    }
}

fn mac_to_u64(m: MacAddr) -> u64 {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(&m.0);
    u64::from_le_bytes(b)
}

fn u64_to_mac(v: u64) -> MacAddr {
    let b = v.to_le_bytes();
    MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: MacAddr = MacAddr([2, 0, 0, 0, 0, 7]);

    #[test]
    fn request_then_learn_then_refresh_then_expire() {
        let t = NeighTable::new(64);
        let ip = Ipv4Addr::new(198, 19, 0, 11);
        assert_eq!(t.resolve(ip, 1000), Resolution::Request);
        assert_eq!(t.resolve(ip, 1500), Resolution::Pending);
        assert_eq!(t.resolve(ip, 2000), Resolution::Request);
        t.learn(ip, M, 2100);
        assert_eq!(t.resolve(ip, 2200), Resolution::Mac(M));
        assert_eq!(t.peek(ip, 2200), Some(M));
        assert_eq!(t.resolve(ip, 2100 + REFRESH_MS), Resolution::MacRefresh(M));
        assert_eq!(t.resolve(ip, 2100 + REFRESH_MS + 10), Resolution::Mac(M));
        assert_eq!(t.peek(ip, 2100 + EXPIRE_MS + 1), None);
        assert_eq!(t.resolve(ip, 2100 + EXPIRE_MS + 1), Resolution::Request);
    }

    #[test]
    fn many_neighbours_and_reuse_of_expired_slots() {
        let t = NeighTable::new(64);
        for i in 1..=40u32 {
            t.learn(Ipv4Addr::from(0xC612_0000 + i), M, 10);
        }
        for i in 1..=40u32 {
            assert_eq!(t.peek(Ipv4Addr::from(0xC612_0000 + i), 20), Some(M), "{i}");
        }
        assert_eq!(t.entries(20).len(), 40);
        // Long after, new neighbours take the expired slots.
        let later = 10 + EXPIRE_MS + 1;
        for i in 100..=160u32 {
            t.learn(Ipv4Addr::from(0xC612_0000 + i), M, later);
            assert_eq!(
                t.peek(Ipv4Addr::from(0xC612_0000 + i), later),
                Some(M),
                "{i}"
            );
        }
    }

    #[test]
    fn ignores_zero_and_broadcast() {
        let t = NeighTable::new(64);
        t.learn(Ipv4Addr::UNSPECIFIED, M, 1);
        t.learn(Ipv4Addr::new(1, 2, 3, 4), MacAddr([0xff; 6]), 1);
        assert!(t.entries(1).is_empty());
    }
}

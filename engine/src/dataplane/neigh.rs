//! The neighbour table shared by all workers: one design for both families,
//! [`NeighTable`] for IPv4 (ARP) and [`NeighTable6`] for IPv6 (neighbour
//! discovery), instances of one generic [`Table`] whose address type says
//! how a key is stored ([`NeighAddr`]). The IPv4 table keeps its one-word
//! key (the per-packet path reads it as before); an IPv6 key is three words
//! read under the entry's sequence lock.
//!
//! Any worker learns from the ARP it receives, and any worker resolves the
//! next hop of the frame it forwards, so the table is shared; it is written
//! rarely (an ARP exchange every minute or so per neighbour) and read per
//! forwarded frame. No locks, no allocation after start-up.
//!
//! Hostile neighbours are the design constraint (rvs issue 12, item 5):
//!
//! * **Consistency.** An entry's address, MAC and learned time are guarded by
//!   a per-entry sequence lock: a writer claims the entry by moving its
//!   version from even to odd (CAS), writes, and publishes the next even
//!   version; a reader retries while the version is odd or changed under it,
//!   so it never pairs one neighbour's address with another's MAC, even when
//!   two workers reuse the same slot at once.
//! * **Keyed placement.** Slots are found by a hash keyed with a secret drawn
//!   at start, so an on-link spoofer cannot choose addresses that fill the
//!   probe window of a given neighbour.
//! * **Reserved entries.** The next hops the configuration names (real
//!   servers on attached subnets, gateways) live in a separate region that
//!   only the control side adds to or retires from
//!   ([`NeighTable::reserve`]); learning about other addresses never touches
//!   it, and its MACs are only replaced by a reply to our own request (see
//!   [`NeighTable::learn_reply`]).
//! * **No silent Pending.** When a general probe window is full of live
//!   entries, [`NeighTable::resolve`] evicts the least recently used entry
//!   (preferring ones we never asked for) so the request still goes out.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::packet::ethernet::MacAddr;

mod addr;
/// Learning a MAC (ARP/NDP, a NAT client's first packet): the general
/// region's slot claim and the reserved entries' answer rule.
mod learn;
/// The reserved region's control-side upkeep (reserve, retire, rebuild).
mod reserved;
pub use addr::NeighAddr;

/// The IPv4 (ARP) neighbour table.
pub type NeighTable = Table<Ipv4Addr>;
/// The IPv6 (neighbour discovery) neighbour table.
pub type NeighTable6 = Table<Ipv6Addr>;

/// How long a learned MAC is trusted (Linux's reachable time is shorter, but
/// a director's neighbours are few and stable; IPVS relies on the kernel's
/// defaults of about 30-60 s stale plus probes, we refresh well before this).
pub const EXPIRE_MS: u64 = 300_000;
/// After this age a use of the entry asks for a refresh request.
pub const REFRESH_MS: u64 = 60_000;
/// Minimum gap between two ARP requests for one address.
pub const RETRY_MS: u64 = 1_000;
/// A reply arriving this long after our latest request for its address is
/// an answer to it (and may change a reserved entry's MAC).
pub const ANSWER_MS: u64 = 2 * RETRY_MS;

/// Slots one address may occupy in the general region (from its home).
const PROBE: usize = 8;
/// Attempts of a reader or writer on an entry another writer holds.
const SPINS: usize = 64;

/// `mac` word: the MAC is set (low 48 bits hold it).
const VALID: u64 = 1 << 63;
/// `mac` word: the MAC came from an answer to our own request.
const CONFIRMED: u64 = 1 << 62;
const MAC_BITS: u64 = (1 << 48) - 1;
/// `requested` word: a reply has answered the request.
const ANSWERED: u64 = 1 << 63;
struct Entry<A: NeighAddr> {
    /// Sequence lock: odd while a writer holds the entry.
    seq: AtomicU64,
    /// The address ([`NeighAddr::FREE`] = free) and the retired flag (a
    /// tombstone in the reserved region: probing goes on past it, and a
    /// later reservation may reuse it).
    key: A::Cell,
    /// MAC in the low 48 bits, VALID in bit 63.
    mac: AtomicU64,
    /// When the MAC was learned or confirmed (ms).
    learned: AtomicU64,
    /// When we last sent a request for it (ms), and ANSWERED once a reply
    /// was taken as its answer: outside the lock (for rate limiting a stale
    /// value costs at most one extra or one late request; the answer is
    /// claimed by CAS, so one request gets one answer).
    requested: AtomicU64,
    /// Someone claimed another MAC for this address: ask now (hint).
    recheck: AtomicBool,
}

impl<A: NeighAddr> Entry<A> {
    fn new() -> Entry<A> {
        Entry {
            seq: AtomicU64::new(0),
            key: A::cell(),
            mac: AtomicU64::new(0),
            learned: AtomicU64::new(0),
            requested: AtomicU64::new(0),
            recheck: AtomicBool::new(false),
        }
    }

    /// When we last sent a request for it (0: never).
    #[inline]
    fn asked_at(&self) -> u64 {
        self.requested.load(Ordering::Relaxed) & !ANSWERED
    }

    /// The key as a probe sees it: one load for a one-word key; a
    /// multi-word key is read under the sequence lock (a torn read could
    /// miss the address and give it a second entry), or loaded as it is if
    /// a writer holds the entry throughout (the caller re-checks under
    /// [`Entry::read`] or [`Entry::lock`] before trusting a match).
    #[inline(always)]
    fn key_now(&self) -> A::Key {
        if A::ONE_WORD {
            A::load(&self.key)
        } else {
            self.read().map_or_else(|| A::load(&self.key), |v| v.key)
        }
    }

    /// A consistent copy of the entry, or `None` if writers held it for
    /// every attempt.
    #[inline]
    fn read(&self) -> Option<View<A>> {
        for _ in 0..SPINS {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                let key = A::load(&self.key);
                let mac = self.mac.load(Ordering::Relaxed);
                let learned = self.learned.load(Ordering::Relaxed);
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == s1 {
                    return Some(View {
                        key,
                        mac,
                        learned,
                        seq: s1,
                    });
                }
            }
            std::hint::spin_loop();
        }
        None
    }

    /// Claims the entry for writing; the returned guard publishes on drop.
    #[inline]
    fn lock(&self) -> Option<Guard<'_, A>> {
        for _ in 0..SPINS {
            let s = self.seq.load(Ordering::Relaxed);
            if s & 1 == 0
                && self
                    .seq
                    .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                // Orders the odd version before the data stores below.
                fence(Ordering::Release);
                return Some(Guard { e: self, seq: s });
            }
            std::hint::spin_loop();
        }
        None
    }
}

/// A held entry: the fields may be rewritten; dropping it publishes them.
struct Guard<'a, A: NeighAddr> {
    e: &'a Entry<A>,
    seq: u64,
}

impl<A: NeighAddr> Guard<'_, A> {
    fn key(&self) -> A::Key {
        A::load(&self.e.key)
    }
    fn mac(&self) -> u64 {
        self.e.mac.load(Ordering::Relaxed)
    }
    fn learned(&self) -> u64 {
        self.e.learned.load(Ordering::Relaxed)
    }
    fn set(&self, key: A::Key, mac: u64, learned: u64) {
        A::store(&self.e.key, key);
        self.e.mac.store(mac, Ordering::Relaxed);
        self.e.learned.store(learned, Ordering::Relaxed);
    }
    /// [`set`](Self::set) for a new occupant of the slot (or one freed):
    /// no request of ours outstanding, nothing to recheck.
    #[inline(always)]
    fn take(&self, key: A::Key, mac: u64, learned: u64) {
        self.set(key, mac, learned);
        self.e.requested.store(0, Ordering::Relaxed);
        self.e.recheck.store(false, Ordering::Relaxed);
    }
}

impl<A: NeighAddr> Drop for Guard<'_, A> {
    fn drop(&mut self) {
        self.e.seq.store(self.seq + 2, Ordering::Release);
    }
}

/// One consistent read of an entry.
#[derive(Clone, Copy)]
struct View<A: NeighAddr> {
    key: A::Key,
    mac: u64,
    learned: u64,
    seq: u64,
}

impl<A: NeighAddr> View<A> {
    /// What a reader makes of an entry a writer would not let go of: the
    /// address, no MAC, a version no cache holds.
    fn busy(key: A::Key) -> View<A> {
        View {
            key,
            mac: 0,
            learned: 0,
            seq: 1,
        }
    }
    /// The address (also of a tombstone).
    fn ip(&self) -> A {
        A::addr(self.key)
    }
    /// A live entry: an address, not a tombstone.
    fn live(&self) -> bool {
        self.key != A::FREE && !A::is_retired(self.key)
    }
    /// The MAC, if set and not older than [`EXPIRE_MS`].
    fn fresh_mac(&self, now_ms: u64) -> Option<MacAddr> {
        (self.mac & VALID != 0 && now_ms.saturating_sub(self.learned) <= EXPIRE_MS)
            .then(|| u64_to_mac(self.mac))
    }
}

/// Where a resolved MAC came from: the entry and its version, so a caller
/// that caches the MAC can check cheaply that the entry has not changed
/// since ([`NeighTable::version`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub entry: usize,
    pub version: u64,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Use this MAC.
    Mac(MacAddr, Stamp),
    /// Use this MAC, and send a refresh request now.
    MacRefresh(MacAddr),
    /// Unknown: send a request now (and drop or hold the frame).
    Request,
    /// Unknown, a request is already out.
    Pending,
}

/// Where a learned MAC came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Unsolicited: an ARP request to us, a NAT client's first packet.
    Unsolicited,
    /// An ARP reply addressed to us.
    Reply,
}

/// The control side's record of the reserved region (cold path only).
struct Reserved<A> {
    /// Addresses reserved now.
    ips: Vec<A>,
    /// Slots holding an address or a tombstone.
    used: usize,
}

pub struct Table<A: NeighAddr> {
    /// The general region (`0..=mask`), then the reserved one.
    entries: Box<[Entry<A>]>,
    mask: usize,
    /// First index of the reserved region, and its size minus one.
    rbase: usize,
    rmask: usize,
    /// Which homes (`home & 63`) a reserved address may have: bit
    /// `home & 63` is set for every address the reserved region holds
    /// (set before its entry is written, cleared only for addresses no
    /// longer reserved, after their entries were retired), so a clear bit
    /// means no reserved entry: a new client's first packet
    /// ([`learn_unless_fresh`](Self::learn_unless_fresh)) skips the
    /// region's probe. Written by the control side only
    /// ([`reserve`](Self::reserve)).
    rfilter: AtomicU64,
    /// Secret hash key (see [`NeighTable::home`]).
    key: [u64; 2],
    /// Serialises [`NeighTable::reserve`] callers.
    reserved: Mutex<Reserved<A>>,
}

impl<A: NeighAddr> Table<A> {
    /// A table with room for about `capacity` neighbours (rounded up to a
    /// power of two, at least 64), plus a reserved region of a sixteenth of
    /// that (at least 64, at most 4096 slots) for configured next hops.
    pub fn new(capacity: usize) -> Table<A> {
        Self::with_key(capacity, random_key())
    }

    /// [`new`](Self::new) with the slot hash keyed from `seed` instead of
    /// a secret drawn at start: the same seed places every address in the
    /// same slot in every run. For tests and reproducible runs only (a
    /// known key lets an on-link spoofer choose addresses that share a
    /// probe window): where a test learns more neighbours than a probe
    /// window holds, a random key makes its outcome a draw.
    pub fn with_seed(capacity: usize, seed: u64) -> Table<A> {
        Self::with_key(capacity, seeded_key(seed))
    }

    fn with_key(capacity: usize, key: [u64; 2]) -> Table<A> {
        let n = capacity.max(64).next_power_of_two();
        let r = (n / 16).clamp(64, 4096);
        Table {
            entries: (0..n + r).map(|_| Entry::new()).collect(),
            mask: n - 1,
            rbase: n,
            rmask: r - 1,
            rfilter: AtomicU64::new(0),
            key,
            reserved: Mutex::new(Reserved {
                ips: Vec::new(),
                used: 0,
            }),
        }
    }

    /// How many addresses [`reserve`](Self::reserve) keeps (half the region,
    /// so probe chains stay short).
    pub fn reserved_capacity(&self) -> usize {
        self.rmask.div_ceil(2)
    }

    /// The keyed home slot hash of `ip` ([`NeighAddr::home`]). Without the
    /// key an outsider cannot tell which addresses share a probe window.
    #[inline(always)]
    fn home(&self, ip: A) -> usize {
        ip.home(&self.key)
    }

    /// The reserved entry of `ip`, if it has one.
    #[inline(always)]
    fn find_reserved(&self, ip: A) -> Option<(usize, View<A>)> {
        self.find_reserved_at(self.home(ip), ip)
    }

    /// [`find_reserved`](Self::find_reserved) from `ip`'s home `h`.
    #[inline(always)]
    fn find_reserved_at(&self, h: usize, ip: A) -> Option<(usize, View<A>)> {
        for i in 0..=self.rmask {
            let j = self.rbase + (h.wrapping_add(i) & self.rmask);
            let key = self.entries[j].key_now();
            if key == A::FREE {
                return None;
            }
            if key == ip.live() {
                // A writer holding it for long: it is still this address's
                // entry, just without a usable MAC right now.
                let v = self.entries[j].read().unwrap_or(View::busy(key));
                return (v.key == ip.live()).then_some((j, v));
            }
        }
        None
    }

    /// Whether an address with home `h` may have a reserved entry (the
    /// filter's bit, [`rfilter`](Self::rfilter)): false skips the
    /// region's probe. A reservation racing with this read is seen or
    /// not, as when the probe read the region before the entry's write.
    #[inline(always)]
    fn may_be_reserved(&self, h: usize) -> bool {
        self.rfilter.load(Ordering::Relaxed) & filter_bit(h) != 0
    }

    /// The general entry of `ip`, if it has one.
    #[inline(always)]
    fn find_general(&self, ip: A) -> Option<(usize, View<A>)> {
        let h = self.home(ip);
        for i in 0..PROBE {
            let j = h.wrapping_add(i) & self.mask;
            let key = self.entries[j].key_now();
            if key == A::FREE {
                return None;
            }
            if key == ip.live() {
                let v = self.entries[j].read().unwrap_or(View::busy(key));
                if v.key == ip.live() {
                    return Some((j, v));
                }
            }
        }
        None
    }

    /// The entry of `ip`: reserved first (it shadows any general one).
    #[inline]
    fn find(&self, ip: A) -> Option<(usize, View<A>)> {
        self.find_reserved(ip).or_else(|| self.find_general(ip))
    }

    /// The current version of entry `entry` (from a [`Stamp`]): it changes
    /// whenever the entry is written.
    #[inline(always)]
    pub fn version(&self, entry: usize) -> u64 {
        self.entries[entry].seq.load(Ordering::Relaxed)
    }

    /// Resolves `ip` for forwarding. `Request`/`MacRefresh` mean the caller
    /// must send an ARP request now; the table has noted it, so other callers
    /// get `Pending`/`Mac` until the retry gap has passed.
    pub fn resolve(&self, ip: A, now_ms: u64) -> Resolution {
        let (j, v) = match self.find(ip) {
            Some(x) => x,
            None => match self.claim_general(ip, now_ms, true) {
                Some((j, g)) => {
                    let v = View {
                        key: g.key(),
                        mac: g.mac(),
                        learned: g.learned(),
                        seq: 0,
                    };
                    (j, v)
                }
                None => return Resolution::Pending,
            },
        };
        let e = &self.entries[j];
        let asked = e.asked_at();
        let may_ask = asked == 0 || now_ms.saturating_sub(asked) >= RETRY_MS;
        if let Some(m) = v.fresh_mac(now_ms) {
            let due =
                now_ms.saturating_sub(v.learned) >= REFRESH_MS || e.recheck.load(Ordering::Relaxed);
            if due && may_ask {
                e.requested.store(now_ms.max(1), Ordering::Relaxed);
                e.recheck.store(false, Ordering::Relaxed);
                return Resolution::MacRefresh(m);
            }
            return Resolution::Mac(
                m,
                Stamp {
                    entry: j,
                    version: v.seq,
                },
            );
        }
        if may_ask {
            e.requested.store(now_ms.max(1), Ordering::Relaxed);
            Resolution::Request
        } else {
            Resolution::Pending
        }
    }

    /// The MAC of `ip` if known and not expired, without side effects.
    pub fn peek(&self, ip: A, now_ms: u64) -> Option<MacAddr> {
        self.find(ip)?.1.fresh_mac(now_ms)
    }

    /// Whether `ip` has an entry: we asked for it, learned it, or the
    /// configuration names it.
    pub fn is_known(&self, ip: A) -> bool {
        self.find(ip).is_some()
    }

    /// Whether `ip` has a reserved entry.
    pub fn is_reserved(&self, ip: A) -> bool {
        self.find_reserved(ip).is_some()
    }

    /// Every live entry, for `rvs ctl` and logs: address, MAC, age (ms).
    pub fn entries(&self, now_ms: u64) -> Vec<(A, MacAddr, u64)> {
        self.entries
            .iter()
            .filter_map(|e| {
                let v = e.read()?;
                let m = v.fresh_mac(now_ms)?;
                v.live()
                    .then(|| (v.ip(), m, now_ms.saturating_sub(v.learned)))
            })
            .collect()
    }
}

/// Two secret words for the slot hash, from std's per-process random keys
/// (drawn from the OS); the multiplier is forced odd.
fn random_key() -> [u64; 2] {
    let rs = RandomState::new();
    let mut w = [0u64; 2];
    for (i, word) in w.iter_mut().enumerate() {
        let mut h = rs.build_hasher();
        h.write_usize(i);
        h.write_usize(word as *const u64 as usize);
        *word = h.finish();
    }
    w[1] |= 1;
    w
}

/// The slot hash key of [`Table::with_seed`]: two words of MurmurHash3's
/// finaliser over a golden-ratio sequence from `seed`; the multiplier is
/// forced odd, as [`random_key`]'s.
fn seeded_key(seed: u64) -> [u64; 2] {
    let fmix64 = |mut x: u64| {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    };
    let step = 0x9e37_79b9_7f4a_7c15u64;
    [
        fmix64(seed.wrapping_add(step)),
        fmix64(seed.wrapping_add(step.wrapping_mul(2))) | 1,
    ]
}

/// The reserved filter's bit of home `h` ([`Table::rfilter`]).
#[inline(always)]
fn filter_bit(h: usize) -> u64 {
    1 << (h & 63)
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
mod tests;

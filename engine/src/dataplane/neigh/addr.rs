//! How each address family keys the neighbour table: the stored form of an
//! address (with the tombstone flag), its atomic cell, and its keyed slot
//! hash. IPv4 keeps the one-word key the table always had, so its lookups
//! cost what they did; IPv6 needs three words (address and flag).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};

/// An address the neighbour table can key on.
pub trait NeighAddr: Copy + Eq + Ord + std::fmt::Debug + Send + Sync + 'static {
    /// An address as stored, with the retired (tombstone) flag.
    type Key: Copy + Eq + std::fmt::Debug;
    /// The atomic storage of a key.
    type Cell: Send + Sync;
    /// One load of a cell is a consistent key.
    const ONE_WORD: bool;
    /// The key of a free slot.
    const FREE: Self::Key;
    fn cell() -> Self::Cell;
    fn load(c: &Self::Cell) -> Self::Key;
    fn store(c: &Self::Cell, k: Self::Key);
    /// The key of a live entry of this address.
    fn live(self) -> Self::Key;
    /// `k` marked retired.
    fn retired(k: Self::Key) -> Self::Key;
    fn is_retired(k: Self::Key) -> bool;
    /// The address a key holds (live or retired).
    fn addr(k: Self::Key) -> Self;
    /// The unspecified address (0.0.0.0, ::) is never a neighbour.
    fn is_unspecified(self) -> bool;
    /// The slot hash keyed with the table's secret (`key[1]` odd).
    fn home(self, key: &[u64; 2]) -> usize;
}

/// IPv4 key word: a retired reserved slot.
const RETIRED: u64 = 1 << 32;
const IP_MASK: u64 = 0xFFFF_FFFF;

/// One 64x64->128 multiply of `x` masked with a secret, folded.
///
/// One round alone is a multiplicative hash whose multiplier is the
/// secret: the homes of structured addresses (a subnet's sequential
/// clients, a grid of them) lie on a lattice, and for some secrets that
/// lattice puts many of them in a few probe windows. With 1,500 clients of
/// a /16 in 65,536 slots (2% full), about 1 secret in 1,300 filled a
/// window of 8, so a client's MAC was not learned and its connection's
/// reply was dropped (`rss_owner`'s NAT test failed about once in 1,000
/// runs); 4,096 sequential clients filled one for 1 secret in 60. Every
/// home therefore takes a second round on the varying part of the
/// address ([`remix`]): over 4,000 secrets per set, no window filled (as
/// with a random function); `neigh/tests.rs` checks this on fixed seeds.
#[inline(always)]
fn mix(x: u64, key: &[u64; 2]) -> u64 {
    remix(x ^ key[0], key)
}

/// The multiply and fold of [`mix`] without the mask: the second round.
#[inline(always)]
fn remix(x: u64, key: &[u64; 2]) -> u64 {
    let m = u128::from(x).wrapping_mul(u128::from(key[1]));
    (m as u64) ^ ((m >> 64) as u64)
}

impl NeighAddr for Ipv4Addr {
    /// The address in host order in the low 32 bits, flags above.
    type Key = u64;
    type Cell = AtomicU64;
    const ONE_WORD: bool = true;
    const FREE: u64 = 0;
    fn cell() -> AtomicU64 {
        AtomicU64::new(0)
    }
    #[inline(always)]
    fn load(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    #[inline(always)]
    fn store(c: &AtomicU64, k: u64) {
        c.store(k, Ordering::Relaxed)
    }
    #[inline(always)]
    fn live(self) -> u64 {
        u64::from(u32::from(self))
    }
    fn retired(k: u64) -> u64 {
        k | RETIRED
    }
    fn is_retired(k: u64) -> bool {
        k & RETIRED != 0
    }
    fn addr(k: u64) -> Ipv4Addr {
        Ipv4Addr::from((k & IP_MASK) as u32)
    }
    fn is_unspecified(self) -> bool {
        Ipv4Addr::is_unspecified(&self)
    }
    /// Two rounds ([`mix`]): the address is one word, so the second is
    /// a multiply and fold of the first's result.
    #[inline(always)]
    fn home(self, key: &[u64; 2]) -> usize {
        remix(mix(u64::from(u32::from(self)), key), key) as usize
    }
}

impl NeighAddr for Ipv6Addr {
    /// High and low halves of the address, then 1 if retired.
    type Key = [u64; 3];
    type Cell = [AtomicU64; 3];
    const ONE_WORD: bool = false;
    const FREE: [u64; 3] = [0; 3];
    fn cell() -> [AtomicU64; 3] {
        [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]
    }
    #[inline(always)]
    fn load(c: &[AtomicU64; 3]) -> [u64; 3] {
        [
            c[0].load(Ordering::Relaxed),
            c[1].load(Ordering::Relaxed),
            c[2].load(Ordering::Relaxed),
        ]
    }
    #[inline(always)]
    fn store(c: &[AtomicU64; 3], k: [u64; 3]) {
        for (c, w) in c.iter().zip(k) {
            c.store(w, Ordering::Relaxed);
        }
    }
    #[inline(always)]
    fn live(self) -> [u64; 3] {
        let a = u128::from(self);
        [(a >> 64) as u64, a as u64, 0]
    }
    fn retired(k: [u64; 3]) -> [u64; 3] {
        [k[0], k[1], 1]
    }
    fn is_retired(k: [u64; 3]) -> bool {
        k[2] != 0
    }
    fn addr(k: [u64; 3]) -> Ipv6Addr {
        Ipv6Addr::from((u128::from(k[0]) << 64) | u128::from(k[1]))
    }
    fn is_unspecified(self) -> bool {
        Ipv6Addr::is_unspecified(&self)
    }
    /// Both halves go through the keyed multiply in turn: a neighbour on
    /// the link picks its interface identifier (the low half) freely, and
    /// a plain XOR of the halves would let it pick collisions. The low
    /// half goes first, so it takes both rounds ([`mix`]): the prefix is
    /// the same for every neighbour of a link, and with it first the
    /// identifiers (sequential ones: `::1`, `::2`, ...) had one round, and
    /// 1,500 sequential ones in the 16,384 slots filled a probe window
    /// for about 1 secret in 50 (now as a random function would: about 1
    /// in 10,000).
    #[inline(always)]
    fn home(self, key: &[u64; 2]) -> usize {
        let a = u128::from(self);
        mix(((a >> 64) as u64) ^ mix(a as u64, key), key) as usize
    }
}

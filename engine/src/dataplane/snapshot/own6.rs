//! The director's own IPv6 addresses as one set per snapshot: the VIPs of
//! the forwarded IPv6 services and of the NAT64 ones, and the ports' IPv6
//! addresses.
//!
//! The full path (`forward6`) treats a packet to any of them as the
//! director's (to a VIP: a client's packet; to a port: its own traffic),
//! so a server's reply is forwarded only to a client that is none of them.
//! The IPv6 established path asks that per reply: here it is one lookup
//! (a 64-bit filter word, then a short sorted list) instead of walks over
//! the IPv6 services, the NAT64 services and the ports. Made from a
//! snapshot ([`Own6::of`]) by each worker's per-server table of the IPv6
//! fast path (`pipeline/dest_fast6.rs`), rebuilt with it whenever the
//! snapshot changes, so it is exactly the addresses those walks would find.
//! (Kept there rather than in `Snapshot`: a field more in the snapshot
//! moved the IPv4 paths' callgrind figures by +6 instructions per packet.)

use std::net::Ipv6Addr;

use super::Snapshot;
use crate::conn::addr6;

/// The set (module docs). Addresses in the frame's byte order
/// (`addr6::raw`), so a frame's address is tested without a byte swap.
#[derive(Debug, Clone, Default)]
pub struct Own6 {
    /// Bit [`bit`] of every member: a client whose bit is clear (almost
    /// all, with the few addresses a director owns) is not one, in a
    /// handful of instructions.
    filter: u64,
    /// The members, sorted, no duplicates.
    addrs: Box<[u128]>,
}

/// The filter bit of address `a`: a multiplicative hash of its two halves.
#[inline(always)]
fn bit(a: u128) -> u64 {
    let x = (a as u64) ^ ((a >> 64) as u64);
    1 << (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
}

impl Own6 {
    /// The set of `addrs` (any order, duplicates allowed).
    pub fn new(addrs: impl IntoIterator<Item = Ipv6Addr>) -> Own6 {
        let mut v: Vec<u128> = addrs.into_iter().map(addr6::raw).collect();
        v.sort_unstable();
        v.dedup();
        Own6 {
            filter: v.iter().fold(0, |f, &a| f | bit(a)),
            addrs: v.into_boxed_slice(),
        }
    }

    /// The director's own IPv6 addresses in `snap` (module docs).
    pub fn of(snap: &Snapshot) -> Own6 {
        Own6::new(
            snap.services6
                .iter()
                .map(|s| s.vip)
                .chain(snap.services64.iter().map(|s| s.vip))
                .chain(snap.ports.iter().filter_map(|p| p.addr6)),
        )
    }

    /// Whether `a` (as `addr6::raw`) is one of the director's addresses.
    #[inline(always)]
    pub fn contains_raw(&self, a: u128) -> bool {
        self.filter & bit(a) != 0 && self.addrs.binary_search(&a).is_ok()
    }

    /// Whether `ip` is one of the director's addresses.
    #[inline]
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        self.contains_raw(addr6::raw(ip))
    }

    /// How many addresses the set holds.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(i: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, i)
    }

    #[test]
    fn members_and_others() {
        let own = Own6::new((0..40).map(a).chain([a(3), a(7)]));
        assert_eq!(own.len(), 40);
        for i in 0..40 {
            assert!(own.contains(a(i)), "{i}");
        }
        for i in 40..5000 {
            assert!(!own.contains(a(i)), "{i}");
        }
        assert!(!own.contains(Ipv6Addr::UNSPECIFIED));
        let empty = Own6::default();
        assert!(empty.is_empty() && !empty.contains(a(1)));
    }
}

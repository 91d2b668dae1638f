//! The source addresses admission has to look at, as one filter per
//! snapshot: a new connection's source is tested against it with one hash
//! and one bit, and only a source the filter holds takes the full tests
//! (`admit::refuse_source`'s walks).
//!
//! Admission refuses a source that is a martian (`admit::is_martian_source`:
//! a VIP, one of the director's own or `[ha]` virtual addresses, an
//! attached subnet's network or broadcast address; the reserved ranges are
//! two compares and stay so) or one of the service's own servers (unless
//! every server is full-NAT). Every one of those addresses is in a short
//! list of the snapshot, so the set of sources that may be refused is
//! known when the snapshot is: the filter holds each of them (every
//! server of every service, sorry servers included, whatever its method).
//! A source not in the filter is refused by none of those tests: the
//! answer is the same, without the walks over the VIPs, ports, virtual
//! addresses and the service's servers that every client's SYN paid. A
//! source in it (the refused ones, and the rare client that shares a bit
//! with one) takes exactly the tests it took before, in their order, so
//! every drop is counted as before.
//!
//! Built with the per-worker server table (`dest_fast.rs`), which is
//! rebuilt whenever the snapshot changes, not as a `Snapshot` field (a
//! field there moved the established paths' code, h-own6).

use std::net::Ipv4Addr;

use crate::dataplane::snapshot::Snapshot;

/// Bits in the filter: 1,024 (128 bytes), so a few dozen addresses leave
/// nearly every client's bit clear.
const BITS: u32 = 1024;
const WORDS: usize = (BITS / 64) as usize;

/// A Bloom filter of one hash over the addresses admission may refuse
/// (module docs).
#[derive(Clone)]
pub(super) struct Sources {
    words: Box<[u64; WORDS]>,
}

impl Sources {
    /// A filter that holds nothing.
    pub(super) fn empty() -> Sources {
        Sources {
            words: Box::new([0; WORDS]),
        }
    }

    /// Makes this the filter of `snap`'s refusable sources (module docs),
    /// in place.
    pub(super) fn build(&mut self, snap: &Snapshot) {
        *self.words = [0; WORDS];
        let s = self;
        for &v in &snap.vips {
            s.insert(v);
        }
        for &v in &snap.virtual_addrs {
            s.insert(v);
        }
        for pi in &snap.ports {
            let a = u32::from(pi.addr);
            s.insert(a);
            // The subnet's network and broadcast addresses (as the
            // martian test asks for them, also where it would not count
            // one of them: the filter may hold more than is refused).
            s.insert(a & pi.mask);
            s.insert(a | !pi.mask);
        }
        for svc in &snap.services {
            for srv in svc.servers.iter().chain(svc.sorry.as_ref()) {
                s.insert(u32::from(srv.addr));
            }
        }
    }

    /// Adds address `a` (host order).
    fn insert(&mut self, a: u32) {
        let b = bit(a);
        self.words[(b / 64) as usize] |= 1 << (b % 64);
    }

    /// Whether `a` may be refused by admission's source tests; `false`
    /// means it is none of the addresses they refuse.
    #[inline(always)]
    pub(super) fn may_refuse(&self, a: Ipv4Addr) -> bool {
        let b = bit(u32::from(a));
        self.words[(b / 64) as usize] & (1 << (b % 64)) != 0
    }
}

/// The filter bit of address `a`: the top bits of a multiplicative hash
/// (neighbouring addresses spread over the whole filter).
#[inline(always)]
fn bit(a: u32) -> u32 {
    a.wrapping_mul(0x9E37_79B1) >> (32 - BITS.trailing_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every inserted address is held; of a /16 of others, only a few
    /// share a bit with one of a handful of inserted addresses.
    #[test]
    fn holds_what_it_was_given_and_little_else() {
        let mut s = Sources::empty();
        let given = [
            Ipv4Addr::new(198, 18, 0, 100),
            Ipv4Addr::new(198, 18, 0, 2),
            Ipv4Addr::new(198, 18, 0, 0),
            Ipv4Addr::new(198, 18, 0, 255),
            Ipv4Addr::new(198, 19, 0, 11),
            Ipv4Addr::new(198, 19, 0, 12),
        ];
        for a in given {
            assert!(!s.may_refuse(a));
            s.insert(u32::from(a));
            assert!(s.may_refuse(a));
        }
        for a in given {
            assert!(s.may_refuse(a), "{a}");
        }
        let held = (0..=u16::MAX)
            .map(|i| Ipv4Addr::from(0xc612_0000 | u32::from(i)))
            .filter(|a| !given.contains(a) && s.may_refuse(*a))
            .count();
        // 6 bits of 1,024 set: about 384 of 65,530.
        assert!(held < 65_536 * 12 / 1024, "{held}");
    }
}

//! IPv6 fragments of NAT-ed flows (issue 13), as [`frag`](super::frag)
//! does for IPv4: forwarded as they are, never reassembled.
//!
//! The first fragment (offset 0, with the TCP/UDP header) goes through the
//! IPv6 NAT path like any packet and, as it leaves, the worker remembers
//! how it went under the datagram's key (source, destination, the
//! Fragment header's 32-bit identification) in a [`FragTable6`]. Later
//! fragments (a Fragment header, no ports) are found by that key and get
//! the same address rewrite (`forward::nat6_inbound`/`nat6_outbound`
//! leave a later fragment's payload alone: it has no L4 header).
//!
//! As for IPv4: a later fragment that another worker's first fragment
//! described is handed to it through the shared [`FragDirectory`](super::frag::FragDirectory)
//! (keyed by [`FragKey::v6`], the addresses folded: a collision costs a
//! hand-off and a counted `frag_no_first`, never a wrong rewrite, since
//! the table compares whole addresses), and one that comes before its
//! first fragment is held ([`Verdict::Hold`], the worker's `FragHold`).
//! The table is per worker, fixed and preallocated with the IPv6
//! connection table (a full set evicts its oldest, counted
//! `frags_evicted`).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::frag::{FragKey, FRAG_LIFETIME_MS};
use super::{Frame, Pipeline, Verdict};
use crate::conn::Method;
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::Snapshot;
use crate::packet::ipv6::next_header;
use crate::packet::parse_ipv6::Ipv6Parsed;

const SETS: usize = 256;
const WAYS: usize = 4;

/// What identifies the fragments of one IPv6 datagram (RFC 8200 4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragKey6 {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    id: u32,
}

impl FragKey6 {
    /// The key of a fragment (`None`: no Fragment header).
    #[inline]
    pub fn of(p: &Ipv6Parsed) -> Option<FragKey6> {
        Some(FragKey6 {
            src: p.src,
            dst: p.dst,
            id: p.fragment?.ident,
        })
    }

    /// The shared directory's key (folded; only hashed, never trusted).
    fn directory_key(&self, proto: u8) -> FragKey {
        FragKey::v6(self.src, self.dst, self.id, proto)
    }
}

/// How the first fragment of an IPv6 datagram was forwarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frag6Fwd {
    /// Client -> real server by `method`: NAT's destination becomes
    /// `server`; DR/TUN send it to `server` unchanged.
    Inbound {
        method: Method,
        server: Ipv6Addr,
        dest: u32,
    },
    /// Real server -> client: the source becomes `vip`.
    Reply {
        vip: Ipv6Addr,
        client: Ipv6Addr,
        dest: u32,
    },
    /// NAT64 client -> IPv4 server: translated to IPv4 from the local
    /// address `laddr` (`nat64_frag.rs`).
    Nat64 {
        laddr: Ipv4Addr,
        server: Ipv4Addr,
        dest: u32,
    },
}

#[derive(Clone, Copy)]
struct Entry {
    key: FragKey6,
    /// Zero: empty.
    until_ms: u64,
    fwd: Frag6Fwd,
}

impl Entry {
    const EMPTY: Entry = Entry {
        key: FragKey6 {
            src: Ipv6Addr::UNSPECIFIED,
            dst: Ipv6Addr::UNSPECIFIED,
            id: 0,
        },
        until_ms: 0,
        fwd: Frag6Fwd::Inbound {
            method: Method::Nat,
            server: Ipv6Addr::UNSPECIFIED,
            dest: 0,
        },
    };
}

/// One worker's IPv6 datagrams in flight: key -> how to forward the rest.
pub struct FragTable6 {
    sets: Box<[[Entry; WAYS]]>,
}

impl Default for FragTable6 {
    fn default() -> Self {
        Self::new()
    }
}

impl FragTable6 {
    pub fn new() -> FragTable6 {
        FragTable6 {
            sets: vec![[Entry::EMPTY; WAYS]; SETS].into_boxed_slice(),
        }
    }

    /// Remembers `key` -> `fwd` for [`FRAG_LIFETIME_MS`]; true when a live
    /// entry of another datagram was evicted (the IPv4 table's policy:
    /// the same key refreshes, else a free or expired way, else the
    /// oldest).
    pub fn learn(&mut self, hash: u64, key: FragKey6, fwd: Frag6Fwd, now_ms: u64) -> bool {
        let set = &mut self.sets[hash as usize % SETS];
        let mut pick = 0;
        let mut evicts = true;
        for (i, e) in set.iter().enumerate() {
            if e.until_ms != 0 && e.key == key {
                pick = i;
                evicts = false;
                break;
            }
            if e.until_ms <= now_ms {
                if evicts {
                    pick = i;
                    evicts = false;
                }
            } else if evicts && e.until_ms < set[pick].until_ms {
                pick = i;
            }
        }
        set[pick] = Entry {
            key,
            until_ms: now_ms + FRAG_LIFETIME_MS,
            fwd,
        };
        evicts
    }

    /// How the datagram `key` is forwarded, if its first fragment was seen
    /// within the lifetime.
    pub fn get(&self, hash: u64, key: &FragKey6, now_ms: u64) -> Option<Frag6Fwd> {
        self.sets[hash as usize % SETS]
            .iter()
            .find(|e| e.key == *key && e.until_ms > now_ms)
            .map(|e| e.fwd)
    }
}

impl Pipeline {
    /// A first fragment of an IPv6 datagram was rewritten and is about to
    /// leave: remember how the rest go (and, with several workers, that
    /// they are this worker's).
    #[cold]
    #[inline(never)]
    pub(super) fn fragment_out6(&mut self, p: &Ipv6Parsed, fwd: Frag6Fwd, now_ms: u64) {
        let Some(key) = FragKey6::of(p) else {
            return;
        };
        let hash = self.shared.frags.hash(&key.directory_key(p.protocol));
        let Some(v6) = self.v6.as_deref_mut() else {
            return;
        };
        if v6.frags.learn(hash, key, fwd, now_ms) {
            self.stats.frags_evicted.inc();
        }
        if self.workers > 1 {
            self.shared.frags.publish(hash, self.worker, now_ms);
        }
    }

    /// A later IPv6 fragment (offset > 0, no ports) to a forwarded VIP or
    /// from a server: forwarded as its first fragment was, handed to the
    /// worker that saw that, or held until it comes.
    #[cold]
    #[inline(never)]
    pub(super) fn later_fragment6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Verdict {
        if !(p.protocol == next_header::TCP || p.protocol == next_header::UDP) {
            return self.drop(Drop::Fragment);
        }
        let Some(key) = FragKey6::of(p) else {
            return self.drop(Drop::Fragment);
        };
        let hash = self.shared.frags.hash(&key.directory_key(p.protocol));
        let known = self
            .v6
            .as_deref()
            .and_then(|v6| v6.frags.get(hash, &key, now_ms));
        let Some(fwd) = known else {
            if owned {
                // Handed over as ours but unknown here (a stale or
                // colliding directory slot): never hand it on again.
                return self.drop(Drop::FragNoFirst);
            }
            if self.workers > 1 {
                if let Some(w) = self.shared.frags.owner(hash, now_ms) {
                    if w != self.worker && w < self.workers {
                        return Verdict::Handoff(w);
                    }
                }
            }
            return Verdict::Hold;
        };
        match fwd {
            Frag6Fwd::Inbound {
                method,
                server,
                dest,
            } => match snap.dest6(dest) {
                Some((_, srv)) => {
                    self.inbound6(snap, f, p, srv, (method, server, 0), in_port, now_ms)
                }
                None => self.drop(Drop::ServerGone),
            },
            Frag6Fwd::Reply { vip, client, dest } => match snap.dest6(dest) {
                Some((_, srv)) => self.reply6(snap, f, p, srv, (vip, 0, client), in_port, now_ms),
                None => self.drop(Drop::ServerGone),
            },
            Frag6Fwd::Nat64 {
                laddr,
                server,
                dest,
            } => match snap.dest64(dest) {
                Some((_, srv)) => {
                    self.nat64_later_in(snap, f, p, (laddr, server), srv, in_port, now_ms)
                }
                None => self.drop(Drop::ServerGone),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> FragKey6 {
        FragKey6 {
            src: "2001:db8:0:1::10".parse().unwrap(),
            dst: "2001:db8:0:1::100".parse().unwrap(),
            id,
        }
    }

    fn fwd(dest: u32) -> Frag6Fwd {
        Frag6Fwd::Inbound {
            method: Method::Nat,
            server: "2001:db8:0:2::11".parse().unwrap(),
            dest,
        }
    }

    #[test]
    fn frag6_learn_get_expire_evict() {
        let mut t = FragTable6::new();
        assert!(!t.learn(7, key(1), fwd(1), 1000));
        assert_eq!(t.get(7, &key(1), 1000 + FRAG_LIFETIME_MS - 1), Some(fwd(1)));
        assert_eq!(t.get(7, &key(1), 1000 + FRAG_LIFETIME_MS), None);
        // Same addresses, another identification: another datagram.
        assert_eq!(t.get(7, &key(2), 1000), None);
        for i in 2..=WAYS as u32 {
            assert!(!t.learn(7, key(i), fwd(i), 1000 + u64::from(i)));
        }
        // A full set evicts its oldest (key 1).
        assert!(t.learn(7, key(99), fwd(99), 1100));
        assert_eq!(t.get(7, &key(1), 1100), None);
        assert_eq!(t.get(7, &key(99), 1100), Some(fwd(99)));
    }
}

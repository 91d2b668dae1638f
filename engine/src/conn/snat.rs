//! Local (source) ports of full-NAT connections, partitioned per worker.
//!
//! An FNAT connection is rewritten to `laddr:lport -> server:sport`, so the
//! server's reply comes back addressed to `laddr:lport`. The data plane
//! finds a flow's worker with [`owner_worker`]`(destination of a reply)`
//! (SPEC §2), so a worker hands out only the ports `p` of its range with
//! `owner_worker(laddr, p, workers) == worker`: the reply then lands on the
//! connection's own worker without a hand-off, and no two workers can ever
//! hold the same `(laddr, lport)` (as DPVS partitions its local ports per
//! lcore).
//!
//! Each address keeps its owned ports in a FIFO: a connection takes the
//! port at the front, and a port comes back at the back when its
//! connection is removed for any reason (the table calls
//! [`SnatPools::free`] from `remove`). FIFO rather than LIFO so a port
//! rests as long as possible before it is reused: the server may still
//! hold the previous connection of that tuple in TIME_WAIT.
//!
//! A port is never handed out twice: a port's state says whether it is
//! free or held (and whether it sits in the FIFO), only a free port is
//! taken or reserved, and only a held port is given back. Nothing
//! allocates after construction (the FIFO's capacity is the number of
//! ports the worker owns, and a port is in it at most once).

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use super::rss::owner_worker;

/// One egress port's source addresses and port range, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnatSpec {
    /// `[[port]] snat_addresses`, or the port's own address.
    pub addrs: Vec<Ipv4Addr>,
    /// First and last local port (inclusive).
    pub lo: u16,
    pub hi: u16,
}

/// Port state, indexed by `port - lo`: not this worker's, or one of
/// `FREE`/`HELD`, plus `QUEUED` while the port sits in the FIFO.
const NOT_OURS: u8 = 0;
/// Free: the next take may hand it out.
const FREE: u8 = 1;
/// Held by a connection.
const HELD: u8 = 2;
/// In the FIFO. A port reserved while queued stays there, stale, and is
/// skipped when it comes to the front; a port is queued at most once, so
/// the FIFO never outgrows the ports the worker owns.
const QUEUED: u8 = 4;

/// One local address's ports on one worker.
#[derive(Debug)]
struct AddrPorts {
    addr: Ipv4Addr,
    lo: u16,
    free: VecDeque<u16>,
    state: Box<[u8]>,
    /// Ports this worker owns on this address, and how many are free.
    owned: usize,
    nfree: usize,
}

impl AddrPorts {
    fn new(addr: Ipv4Addr, lo: u16, hi: u16, worker: usize, workers: usize) -> AddrPorts {
        let mut state = vec![NOT_OURS; usize::from(hi - lo) + 1].into_boxed_slice();
        let ours: Vec<u16> = (lo..=hi)
            .filter(|&p| owner_worker(addr, p, workers) == worker)
            .collect();
        let mut free = VecDeque::with_capacity(ours.len());
        for &p in &ours {
            state[usize::from(p - lo)] = FREE | QUEUED;
            free.push_back(p);
        }
        AddrPorts {
            addr,
            lo,
            free,
            state,
            owned: ours.len(),
            nfree: ours.len(),
        }
    }

    #[inline]
    fn slot(&self, port: u16) -> Option<usize> {
        let i = usize::from(port.checked_sub(self.lo)?);
        (i < self.state.len()).then_some(i)
    }

    /// The free port at the front of the FIFO, held now; stale entries
    /// (ports reserved while queued) are dropped on the way.
    #[inline]
    fn take(&mut self) -> Option<u16> {
        while let Some(p) = self.free.pop_front() {
            let i = usize::from(p - self.lo);
            let st = self.state[i] & !QUEUED;
            self.state[i] = st;
            if st == FREE {
                self.state[i] = HELD;
                self.nfree -= 1;
                return Some(p);
            }
        }
        None
    }

    fn give_back(&mut self, port: u16) -> bool {
        let Some(i) = self.slot(port) else {
            return false;
        };
        let st = self.state[i];
        if st & !QUEUED != HELD {
            return false;
        }
        self.nfree += 1;
        self.state[i] = FREE | QUEUED;
        // A port still queued (reserved while free) keeps its place; the
        // FIFO never grows, a port is in it at most once.
        if st & QUEUED == 0 {
            self.free.push_back(port);
        }
        true
    }

    /// Marks a free `port` held (a connection that already uses it: a
    /// rebuilt pool after a reload, a connection synced from the peer
    /// director). O(1): the FIFO entry, if any, goes stale.
    fn reserve(&mut self, port: u16) -> bool {
        let Some(i) = self.slot(port) else {
            return false;
        };
        let st = self.state[i];
        if st & !QUEUED != FREE {
            return false;
        }
        self.state[i] = HELD | (st & QUEUED);
        self.nfree -= 1;
        true
    }
}

/// Every egress port's local addresses for one worker.
#[derive(Debug)]
pub struct SnatPools {
    specs: Vec<SnatSpec>,
    worker: usize,
    workers: usize,
    /// Per egress port: its addresses, and which one to try first.
    pools: Vec<(Vec<AddrPorts>, usize)>,
}

impl SnatPools {
    /// The pools of `worker` (of `workers`) for these egress ports (indexed
    /// like the snapshot's ports). Allocates now, never later.
    pub fn new(specs: &[SnatSpec], worker: usize, workers: usize) -> SnatPools {
        let workers = workers.max(1);
        let pools = specs
            .iter()
            .map(|s| {
                let addrs = if s.lo <= s.hi {
                    s.addrs
                        .iter()
                        .map(|&a| AddrPorts::new(a, s.lo, s.hi, worker, workers))
                        .collect()
                } else {
                    Vec::new()
                };
                (addrs, 0)
            })
            .collect();
        SnatPools {
            specs: specs.to_vec(),
            worker,
            workers,
            pools,
        }
    }

    /// Were these pools built from exactly this configuration?
    pub fn same(&self, specs: &[SnatSpec], worker: usize, workers: usize) -> bool {
        self.specs == specs && self.worker == worker && self.workers == workers.max(1)
    }

    /// A free local address and port on egress port `port`, taken: the
    /// addresses are tried in turn, starting after the last one used.
    /// `None` when every port this worker owns there is held.
    #[inline]
    pub fn take(&mut self, port: usize) -> Option<(Ipv4Addr, u16)> {
        let (addrs, next) = self.pools.get_mut(port)?;
        let n = addrs.len();
        for k in 0..n {
            let i = (*next + k) % n;
            if let Some(p) = addrs[i].take() {
                *next = (i + 1) % n;
                return Some((addrs[i].addr, p));
            }
        }
        None
    }

    /// Gives back `addr:port` (a no-op for a port not held here, so a
    /// double free or a port of a pool since reconfigured is harmless).
    #[inline]
    pub fn free(&mut self, addr: Ipv4Addr, port: u16) -> bool {
        for (addrs, _) in &mut self.pools {
            for a in addrs.iter_mut() {
                if a.addr == addr && a.give_back(port) {
                    return true;
                }
            }
        }
        false
    }

    /// Marks `addr:port` held by an existing connection; false when it is
    /// not a free port of this worker (held already, another worker's, or
    /// outside every pool).
    pub fn reserve(&mut self, addr: Ipv4Addr, port: u16) -> bool {
        for (addrs, _) in &mut self.pools {
            for a in addrs.iter_mut() {
                if a.addr == addr && a.reserve(port) {
                    return true;
                }
            }
        }
        false
    }

    /// (free, owned) ports of egress port `port`, over its addresses.
    pub fn usage(&self, port: usize) -> (usize, usize) {
        self.pools.get(port).map_or((0, 0), |(addrs, _)| {
            addrs
                .iter()
                .fold((0, 0), |(f, o), a| (f + a.nfree, o + a.owned))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    fn spec(lo: u16, hi: u16) -> Vec<SnatSpec> {
        vec![SnatSpec {
            addrs: vec![A],
            lo,
            hi,
        }]
    }

    #[test]
    fn workers_partition_the_range_by_owner() {
        let s = spec(1024, 4095);
        let mut seen = std::collections::HashSet::new();
        for w in 0..3 {
            let mut p = SnatPools::new(&s, w, 3);
            while let Some((a, port)) = p.take(0) {
                assert_eq!(a, A);
                assert_eq!(owner_worker(A, port, 3), w, "port {port}");
                assert!(seen.insert(port), "port {port} handed out twice");
            }
        }
        assert_eq!(seen.len(), 4095 - 1024 + 1);
    }

    #[test]
    fn fifo_reuse_and_no_double_hand_out() {
        let mut p = SnatPools::new(&spec(2000, 2003), 0, 1);
        let got: Vec<u16> = (0..4).map(|_| p.take(0).unwrap().1).collect();
        assert_eq!(got, vec![2000, 2001, 2002, 2003]);
        assert_eq!(p.take(0), None, "exhausted");
        assert!(p.free(A, 2001));
        assert!(!p.free(A, 2001), "double free ignored");
        assert!(!p.free(A, 1999), "outside the range");
        assert_eq!(p.take(0), Some((A, 2001)));
        assert_eq!(p.take(0), None);
        assert_eq!(p.usage(0), (0, 4));
    }

    #[test]
    fn reserve_takes_a_free_port_out() {
        let mut p = SnatPools::new(&spec(2000, 2002), 0, 1);
        assert!(p.reserve(A, 2001));
        assert!(!p.reserve(A, 2001));
        assert_eq!(p.take(0), Some((A, 2000)));
        assert_eq!(p.take(0), Some((A, 2002)));
        assert_eq!(p.take(0), None);
        assert!(p.free(A, 2001));
        assert_eq!(p.take(0), Some((A, 2001)));
    }

    #[test]
    fn reserve_while_queued_then_free_keeps_one_fifo_entry() {
        let mut p = SnatPools::new(&spec(2000, 2002), 0, 1);
        assert!(p.reserve(A, 2000));
        assert_eq!(p.usage(0), (2, 3));
        // Freed while its stale entry is still queued: not queued twice.
        assert!(p.free(A, 2000));
        assert_eq!(p.usage(0), (3, 3));
        for _ in 0..5 {
            assert!(p.reserve(A, 2001));
            assert!(p.free(A, 2001));
        }
        let got: Vec<u16> = (0..3).map(|_| p.take(0).unwrap().1).collect();
        assert_eq!(got, vec![2000, 2001, 2002]);
        assert_eq!(p.take(0), None);
        assert_eq!(p.usage(0), (0, 3));
        assert!(!p.reserve(A, 2002), "held");
        assert!(!p.reserve(A, 1999), "outside");
    }

    #[test]
    fn several_addresses_take_turns() {
        let b = Ipv4Addr::new(198, 18, 0, 3);
        let s = vec![SnatSpec {
            addrs: vec![A, b],
            lo: 5000,
            hi: 5001,
        }];
        let mut p = SnatPools::new(&s, 0, 1);
        let got: Vec<_> = (0..4).map(|_| p.take(0).unwrap()).collect();
        assert_eq!(got, vec![(A, 5000), (b, 5000), (A, 5001), (b, 5001)]);
        assert_eq!(p.take(0), None);
        assert_eq!(p.take(7), None, "no such port");
    }
}

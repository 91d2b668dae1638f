//! Stable identities of services and servers across snapshots, the
//! servers' per-worker counters, and the schedulers a snapshot keeps from
//! the previous one.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex};

use crossbeam_utils::CachePadded;

use crate::dataplane::counters::Counter;
use crate::sched::{DestInfo, Sched, SchedKind, SchedOpts};

/// One worker's counters of one server: written only by that worker.
#[derive(Default)]
pub struct DestCounters {
    pub active: Counter,
    pub inactive: Counter,
    pub conns: Counter,
    pub in_packets: Counter,
    pub out_packets: Counter,
    pub in_bytes: Counter,
    pub out_bytes: Counter,
}

impl DestCounters {
    /// One connection moved between active and inactive (`was` -> `is`, a
    /// TCP state change): its count follows. False when nothing moved.
    #[inline]
    pub fn shift(&self, was: bool, is: bool) -> bool {
        if was == is {
            return false;
        }
        if is {
            self.inactive.dec();
            self.active.inc();
        } else {
            self.active.dec();
            self.inactive.inc();
        }
        true
    }
}

/// A real server's identity and live state, shared by all snapshots that
/// contain it.
pub struct DestShared {
    /// Stable id, stored in each connection.
    pub id: u32,
    /// One cache-line-padded block per worker: no line is written by two
    /// workers.
    pub per_worker: Box<[CachePadded<DestCounters>]>,
    /// IPVS's overload flag (upper/lower thresholds).
    pub overloaded: AtomicBool,
    /// The upper threshold of the last snapshot built (0 = none): a
    /// threshold raised or removed clears the flag, as
    /// `__ip_vs_update_dest` does.
    pub(super) upper: AtomicU32,
}

impl DestShared {
    fn new(id: u32, workers: usize) -> DestShared {
        DestShared {
            id,
            per_worker: (0..workers.max(1))
                .map(|_| CachePadded::new(DestCounters::default()))
                .collect(),
            overloaded: AtomicBool::new(false),
            upper: AtomicU32::new(0),
        }
    }

    /// Active connections over all workers.
    #[inline]
    pub fn active(&self) -> u32 {
        self.per_worker
            .iter()
            .fold(0u64, |a, c| a.wrapping_add(c.active.get())) as u32
    }

    #[inline]
    pub fn inactive(&self) -> u32 {
        self.per_worker
            .iter()
            .fold(0u64, |a, c| a.wrapping_add(c.inactive.get())) as u32
    }

    /// Sum of one counter over workers.
    pub fn total(&self, f: impl Fn(&DestCounters) -> &Counter) -> u64 {
        self.per_worker.iter().map(|c| f(c).get()).sum()
    }
}

/// Stable ids for services and servers across snapshots.
pub struct DestRegistry {
    workers: usize,
    inner: Mutex<RegistryInner>,
}

#[derive(Default)]
struct RegistryInner {
    services: HashMap<(u8, Ipv4Addr, u16), u16>,
    dests: HashMap<(u16, Ipv4Addr, u16), Arc<DestShared>>,
    /// IPv6 services and servers: ids from the same counters, so a
    /// server id or service id names one thing whatever its family.
    services6: HashMap<(u8, Ipv6Addr, u16), u16>,
    dests6: HashMap<(u16, Ipv6Addr, u16), Arc<DestShared>>,
    next_service: u16,
    next_dest: u32,
    /// Service id -> its scheduler in the last snapshot built, with what it
    /// was built from.
    scheds: HashMap<u16, KeptSched>,
    /// Service id -> every persistence netmask it has had, the latest first
    /// (a connection gives back its template's hold with the netmask it
    /// was made under, which the connection record does not keep).
    persist_masks: HashMap<u16, Vec<Ipv4Addr>>,
}

/// A scheduler and what it depends on.
struct KeptSched {
    kind: SchedKind,
    opts: SchedOpts,
    dests: Vec<DestInfo>,
    sched: Arc<Sched>,
}

impl DestRegistry {
    pub fn new(workers: usize) -> DestRegistry {
        DestRegistry {
            workers,
            inner: Mutex::new(RegistryInner::default()),
        }
    }

    pub(super) fn service_id(&self, proto: u8, vip: Ipv4Addr, port: u16) -> u16 {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let next = g.next_service;
        let id = *g.services.entry((proto, vip, port)).or_insert(next);
        if id == next {
            g.next_service += 1;
        }
        id
    }

    pub(super) fn service_id6(&self, proto: u8, vip: Ipv6Addr, port: u16) -> u16 {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let next = g.next_service;
        let id = *g.services6.entry((proto, vip, port)).or_insert(next);
        if id == next {
            g.next_service += 1;
        }
        id
    }

    /// Every server ever registered, as (service id, address, port, its
    /// shared state): servers since removed included, so that reports can
    /// count a service's past traffic. Read-only; for the control thread.
    pub fn entries(&self) -> Vec<(u16, IpAddr, u16, Arc<DestShared>)> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let v4 = g
            .dests
            .iter()
            .map(|(&(svc, addr, port), d)| (svc, IpAddr::V4(addr), port, d.clone()));
        let v6 = g
            .dests6
            .iter()
            .map(|(&(svc, addr, port), d)| (svc, IpAddr::V6(addr), port, d.clone()));
        let mut v: Vec<_> = v4.chain(v6).collect();
        v.sort_by_key(|e| e.3.id);
        v
    }

    /// The scheduler of service `svc` over `dests`: the one of the last
    /// snapshot if it was built from the same kind, options and server
    /// list (its state carries on), else a new one.
    pub(super) fn scheduler(
        &self,
        svc: u16,
        kind: SchedKind,
        opts: &SchedOpts,
        dests: &[DestInfo],
    ) -> Arc<Sched> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = g.scheds.get(&svc) {
            if k.kind == kind && k.opts == *opts && k.dests == dests {
                return k.sched.clone();
            }
        }
        let sched: Arc<Sched> = Arc::new(Sched::new(kind, opts, dests));
        g.scheds.insert(
            svc,
            KeptSched {
                kind,
                opts: opts.clone(),
                dests: dests.to_vec(),
                sched: sched.clone(),
            },
        );
        sched
    }

    /// Forgets the schedulers of the services not in `keep` (deleted: one
    /// re-added later starts afresh).
    pub(super) fn retain_schedulers(&self, keep: &[u16]) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.scheds.retain(|id, _| keep.contains(id));
    }

    /// Records that service `svc` uses persistence netmask `mask`.
    pub(super) fn persist_mask(&self, svc: u16, mask: Ipv4Addr) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let v = g.persist_masks.entry(svc).or_default();
        if v.first() != Some(&mask) {
            v.retain(|&m| m != mask);
            v.insert(0, mask);
        }
    }

    /// Every service id's persistence netmasks, indexed by id.
    pub(super) fn persist_masks(&self) -> Vec<Vec<Ipv4Addr>> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Vec<Ipv4Addr>> = Vec::new();
        for (&id, masks) in &g.persist_masks {
            let i = id as usize;
            if out.len() <= i {
                out.resize(i + 1, Vec::new());
            }
            out[i] = masks.clone();
        }
        out
    }

    pub(super) fn dest(&self, svc: u16, addr: Ipv4Addr, port: u16) -> Arc<DestShared> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = g.dests.get(&(svc, addr, port)) {
            return d.clone();
        }
        let id = g.next_dest;
        g.next_dest += 1;
        let d = Arc::new(DestShared::new(id, self.workers));
        g.dests.insert((svc, addr, port), d.clone());
        d
    }

    pub(super) fn dest6(&self, svc: u16, addr: Ipv6Addr, port: u16) -> Arc<DestShared> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = g.dests6.get(&(svc, addr, port)) {
            return d.clone();
        }
        let id = g.next_dest;
        g.next_dest += 1;
        let d = Arc::new(DestShared::new(id, self.workers));
        g.dests6.insert((svc, addr, port), d.clone());
        d
    }
}

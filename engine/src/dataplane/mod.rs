//! The data plane. The DPDK-facing parts (EAL, ports, mbufs, rings, the poll
//! loop) are behind the `dpdk` feature; the per-packet logic (`pipeline`),
//! the neighbour table, the configuration snapshot and the counters are plain
//! Rust, so they are tested with byte buffers (pcap-in/pcap-out style).

pub mod conn_dump;
pub mod counters;
pub mod guard;
pub mod ha_link;
pub mod nd6;
pub mod neigh;
pub mod pages;
pub mod pipeline;
pub mod poll_cost;
pub mod region;
pub mod snapshot;

#[cfg(feature = "dpdk")]
pub mod eal;
#[cfg(feature = "dpdk")]
pub mod kernel;
#[cfg(feature = "dpdk")]
pub mod mbuf;
#[cfg(feature = "dpdk")]
pub mod port;
#[cfg(feature = "dpdk")]
pub mod ring;
#[cfg(feature = "dpdk")]
pub mod ring_drops;
#[cfg(feature = "dpdk")]
pub mod rss;
#[cfg(feature = "dpdk")]
mod run;
#[cfg(feature = "dpdk")]
pub mod worker;

#[cfg(feature = "dpdk")]
pub use run::run;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use self::counters::WorkerStats;
use self::ha_link::HaLink;
use self::neigh::{NeighTable, NeighTable6};
use self::snapshot::{DestRegistry, Snapshot};
use crate::sched::persist::PersistTable;
use conn_dump::ConnDump;

/// What the control thread and all workers share.
/// Neighbour table entries (32 bytes each, shared by all workers): room for
/// the real servers, gateways and a /18 of on-link NAT clients (the client
/// MAC is learned from a NAT connection's first packet).
pub const NEIGH_ENTRIES: usize = 65536;
/// IPv6 neighbour table entries (64 bytes each): the IPv6 servers,
/// gateways and on-link NAT clients.
pub const NEIGH6_ENTRIES: usize = 16384;

pub struct Shared {
    /// The configuration workers read; swapped whole (RCU style).
    pub snapshot: ArcSwap<Snapshot>,
    /// Bumped after each swap so workers check one word per burst.
    pub generation: AtomicU64,
    pub stop: AtomicBool,
    /// Draining before exit (SIGINT/SIGTERM): existing connections are
    /// forwarded, new ones are refused (counted `draining`). Read only
    /// where a connection is about to be created.
    pub draining: AtomicBool,
    /// A worker panicked: the control thread stops the rest and exits
    /// non-zero.
    pub worker_failed: AtomicBool,
    pub neigh: NeighTable,
    /// The IPv6 neighbour table (same design, see `neigh`).
    pub neigh6: NeighTable6,
    pub persist: PersistTable,
    /// Stable server ids and their counters across snapshots.
    pub registry: DestRegistry,
    pub worker_stats: Vec<Arc<WorkerStats>>,
    pub workers: usize,
    /// `rvs ctl list --conns`: the controller asks, workers answer between
    /// bursts.
    pub conn_dump: ConnDump,
    /// Failover and connection sync: address ownership and the sync queues.
    pub ha: HaLink,
    /// Which worker forwards which fragmented datagram (and the secret
    /// fragment keys are hashed with).
    pub frags: pipeline::FragDirectory,
    /// The ports' device counters (with af_packet ring drops), refreshed
    /// by the main thread about once a second for `rvs ctl status` and the
    /// metrics. Cold path only.
    pub port_stats: std::sync::Mutex<Vec<counters::PortStats>>,
    /// Each worker's connection-table memory (allocator and address
    /// spans), set when its pipeline is built; `rvs ctl status` reads
    /// which pages back it. Cold path only.
    pub conn_memory: Vec<std::sync::Mutex<Option<region::TableSpans>>>,
    /// What `conn_memory` last said of each worker's table, and when: it
    /// reads all of `/proc/self/smaps` (milliseconds of a CPU for a
    /// director's mappings), and a monitor polling `rvs ctl status` several
    /// times a second should not pay that each time.
    conn_memory_said: Vec<std::sync::Mutex<Option<(std::time::Instant, String)>>>,
}

/// How long [`Shared::conn_memory`] repeats what it read.
const CONN_MEMORY_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl Shared {
    pub fn new(workers: usize) -> Shared {
        Shared {
            snapshot: ArcSwap::from_pointee(Snapshot::empty(workers)),
            generation: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            worker_failed: AtomicBool::new(false),
            neigh: NeighTable::new(NEIGH_ENTRIES),
            neigh6: NeighTable6::new(NEIGH6_ENTRIES),
            persist: PersistTable::new(65536),
            registry: DestRegistry::new(workers),
            worker_stats: (0..workers)
                .map(|_| Arc::new(WorkerStats::default()))
                .collect(),
            workers,
            conn_dump: ConnDump::new(workers),
            ha: HaLink::new(workers),
            frags: pipeline::FragDirectory::new(),
            port_stats: std::sync::Mutex::new(Vec::new()),
            conn_memory: (0..workers).map(|_| std::sync::Mutex::new(None)).collect(),
            conn_memory_said: (0..workers).map(|_| std::sync::Mutex::new(None)).collect(),
        }
    }

    /// The ports' counters as last refreshed.
    pub fn port_stats(&self) -> Vec<counters::PortStats> {
        self.port_stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What backs worker `w`'s connection table: `dpdk hugetlbfs 2 MiB
    /// pages`, `heap thp (AnonHugePages 62 of 64 MiB)`, `heap 4 KiB pages`;
    /// empty before its pipeline is built. Reads `/proc/self/smaps`, at
    /// most once per `CONN_MEMORY_TTL` (5 s) per worker.
    pub fn conn_memory(&self, w: usize) -> String {
        let Some(said) = self.conn_memory_said.get(w) else {
            return String::new();
        };
        let mut said = said.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, text)) = said.as_ref() {
            if at.elapsed() < CONN_MEMORY_TTL {
                return text.clone();
            }
        }
        let spans = self
            .conn_memory
            .get(w)
            .and_then(|m| *m.lock().unwrap_or_else(|p| p.into_inner()));
        let Some(spans) = spans else {
            return String::new();
        };
        let text = spans.describe();
        *said = Some((std::time::Instant::now(), text.clone()));
        text
    }

    /// Draining before exit: no new connection may be created.
    #[inline]
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Publishes a new snapshot; workers pick it up at their next burst.
    /// Its next hops get reserved neighbour entries first, so no frame of
    /// the new configuration resolves one through the general region.
    pub fn publish(&self, snap: Snapshot) {
        let hops = configured_next_hops(&snap);
        let over = self.neigh.reserve(&hops);
        if over > 0 {
            tracing::warn!(
                next_hops = hops.len(),
                unreserved = over,
                "more configured next hops than reserved neighbour entries; the rest are learned like any neighbour"
            );
        }
        let hops6 = snap.nd6.next_hops();
        let over6 = self.neigh6.reserve(&hops6);
        if over6 > 0 {
            tracing::warn!(
                next_hops = hops6.len(),
                unreserved = over6,
                "more configured IPv6 next hops than reserved neighbour entries; the rest are learned like any neighbour"
            );
        }
        let g = snap.generation;
        self.snapshot.store(Arc::new(snap));
        self.generation.store(g, Ordering::Release);
    }
}

/// The next hops a configuration names: each port's gateway, and every
/// real and sorry server's, NAT64's IPv4 servers included (itself on an
/// attached subnet, else the gateway routing to it). HA peers are reached through the kernel, not listed.
fn configured_next_hops(snap: &Snapshot) -> Vec<std::net::Ipv4Addr> {
    let gateways = snap.ports.iter().filter_map(|p| p.gateway);
    let servers = snap
        .services
        .iter()
        .flat_map(|s| s.servers.iter().chain(s.sorry.as_ref()))
        .chain(snap.services64.iter().flat_map(|s| s.servers.iter()))
        .filter_map(|srv| snap.route(srv.addr).map(|(_, nh)| nh));
    gateways.chain(servers).collect()
}

/// The current lcore id (for logs).
#[cfg(feature = "dpdk")]
pub fn lcore_id() -> u32 {
    // SAFETY: reads a thread-local set by the EAL.
    unsafe { dpdk_ffi::rvs_lcore_id() }
}

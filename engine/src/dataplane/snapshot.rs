//! The immutable configuration the workers read: ports, services, servers
//! and their schedulers. The control thread builds a new one for every
//! change and publishes it whole (see `Shared::publish`); a worker picks it
//! up between bursts. Server identities and their counters outlive
//! snapshots (`DestRegistry`), so a change never resets the counts of the
//! servers that remain.
//!
//! So do schedulers: a service whose scheduler, scheduler options and
//! server list (addresses, ports, effective weights, usable flags) are
//! those of the previous snapshot built with the same registry gets the
//! same scheduler object, its rr/wrr position and lblc/lblcr cache intact
//! (the kernel only touches the service that changed); any change to that
//! list builds a new one, which restarts the wrr cycle (SPEC §6).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use crossbeam_utils::CachePadded;

use super::counters::Counter;
use crate::config::{Config, Forward, PortConfig, Protocol, ServerConfig, ServiceConfig};
use crate::conn::{self, Method};
use crate::packet::ethernet::MacAddr;
use crate::sched::{self, DestInfo, Dests, SchedKind, SchedOpts, Scheduler};

/// One port as the pipeline sees it.
#[derive(Debug, Clone)]
pub struct PortInfo {
    pub name: String,
    pub addr: Ipv4Addr,
    pub mask: u32,
    pub gateway: Option<Ipv4Addr>,
    pub mtu: u16,
    pub mac: MacAddr,
    /// Has an exception path (a kernel TAP with the port's address).
    pub kernel: bool,
    /// Full-NAT source addresses of connections leaving here
    /// (`snat_addresses`, else the port's own address).
    pub snat_addrs: Vec<Ipv4Addr>,
    /// Their local port range, inclusive.
    pub snat_ports: (u16, u16),
    /// The port's own IPv6 address (`address = [v4, v6]`), answered for in
    /// neighbour discovery.
    pub addr6: Option<Ipv6Addr>,
}

impl PortInfo {
    pub fn new(pc: &PortConfig, mac: MacAddr) -> PortInfo {
        PortInfo {
            name: pc.name.clone(),
            addr: pc.address,
            mask: u32::from(pc.netmask()),
            gateway: pc.gateway,
            mtu: pc.mtu,
            mac,
            kernel: pc.exception_path,
            snat_addrs: pc.snat_addrs(),
            snat_ports: pc.snat_ports,
            addr6: pc.ipv6.map(|v6| v6.address),
        }
    }

    /// Is `ip:port` a full-NAT local tuple of this port (one of its source
    /// addresses, a port of its range)?
    #[inline]
    pub fn is_snat(&self, ip: Ipv4Addr, port: u16) -> bool {
        (self.snat_ports.0..=self.snat_ports.1).contains(&port) && self.snat_addrs.contains(&ip)
    }

    #[inline]
    pub fn on_link(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask == u32::from(self.addr) & self.mask
    }
}

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
    upper: AtomicU32,
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
    sched: Arc<dyn Scheduler>,
}

impl DestRegistry {
    pub fn new(workers: usize) -> DestRegistry {
        DestRegistry {
            workers,
            inner: Mutex::new(RegistryInner::default()),
        }
    }

    fn service_id(&self, proto: u8, vip: Ipv4Addr, port: u16) -> u16 {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let next = g.next_service;
        let id = *g.services.entry((proto, vip, port)).or_insert(next);
        if id == next {
            g.next_service += 1;
        }
        id
    }

    fn service_id6(&self, proto: u8, vip: Ipv6Addr, port: u16) -> u16 {
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
    fn scheduler(
        &self,
        svc: u16,
        kind: SchedKind,
        opts: &SchedOpts,
        dests: &[DestInfo],
    ) -> Arc<dyn Scheduler> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = g.scheds.get(&svc) {
            if k.kind == kind && k.opts == *opts && k.dests == dests {
                return k.sched.clone();
            }
        }
        let sched: Arc<dyn Scheduler> = Arc::from(sched::build(kind, opts, dests));
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
    fn retain_schedulers(&self, keep: &[u16]) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.scheds.retain(|id, _| keep.contains(id));
    }

    /// Records that service `svc` uses persistence netmask `mask`.
    fn persist_mask(&self, svc: u16, mask: Ipv4Addr) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let v = g.persist_masks.entry(svc).or_default();
        if v.first() != Some(&mask) {
            v.retain(|&m| m != mask);
            v.insert(0, mask);
        }
    }

    /// Every service id's persistence netmasks, indexed by id.
    fn persist_masks(&self) -> Vec<Vec<Ipv4Addr>> {
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

    fn dest(&self, svc: u16, addr: Ipv4Addr, port: u16) -> Arc<DestShared> {
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

    fn dest6(&self, svc: u16, addr: Ipv6Addr, port: u16) -> Arc<DestShared> {
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

/// One real server of one service in this snapshot (`A`: its address
/// family; the IPv4 path keeps its plain `Server`).
pub struct Server<A = Ipv4Addr> {
    pub addr: A,
    /// The port connections go to (the VIP port for DR/TUN).
    pub port: u16,
    pub weight: u32,
    pub method: Method,
    /// Present and up by health check.
    pub usable: bool,
    pub upper: u32,
    pub lower: u32,
    pub shared: Arc<DestShared>,
}

impl<A> Server<A> {
    /// Recomputes the overload flag after this worker changed a count.
    /// Without an upper threshold the server is never overloaded: the flag
    /// is cleared (a worker still on an older snapshot may have set it).
    /// The common case (no threshold, flag clear: nothing to do) inlined
    /// into every new and ending connection's path, the rest out of line.
    #[inline(always)]
    pub fn update_overload(&self) {
        if self.upper == 0 && !self.shared.overloaded.load(Relaxed) {
            return;
        }
        self.update_overload_slow();
    }

    #[inline(never)]
    fn update_overload_slow(&self) {
        if self.upper == 0 {
            if self.shared.overloaded.load(Relaxed) {
                self.shared.overloaded.store(false, Relaxed);
            }
            return;
        }
        let conns = self.shared.active().wrapping_add(self.shared.inactive());
        let was = self.shared.overloaded.load(Relaxed);
        let now = sched::overload_next(was, conns, self.upper, self.lower);
        if now != was {
            self.shared.overloaded.store(now, Relaxed);
        }
    }
}

impl<A> Server<A> {
    /// Applies this snapshot's thresholds to the flag, as IPVS does when a
    /// server is edited (`__ip_vs_update_dest`): a threshold removed or
    /// raised clears it; and a server already at or over its (new)
    /// threshold is overloaded at once rather than after one more
    /// connection.
    fn apply_thresholds(&self) {
        let d = &self.shared;
        let before = d.upper.swap(self.upper, Relaxed);
        if self.upper == 0 || self.upper > before {
            d.overloaded.store(false, Relaxed);
        }
        if self.upper != 0 && d.active().wrapping_add(d.inactive()) >= self.upper {
            d.overloaded.store(true, Relaxed);
        }
    }
}

/// One virtual service.
pub struct Service {
    /// Stable id (persistence templates key on it).
    pub id: u16,
    pub proto: u8,
    pub vip: Ipv4Addr,
    /// 0 = all ports; the first of `ports` for a service over several.
    pub port: u16,
    /// Every port of a service over several (`ports = [80, 443]`), empty
    /// for one port. The lookup finds it through `Snapshot::by_port`.
    pub ports: Box<[u16]>,
    /// Shared with the previous snapshot while the server list is unchanged.
    pub sched: Arc<dyn Scheduler>,
    pub servers: Vec<Server>,
    /// 0 = no persistence.
    pub persistence_ms: u64,
    pub persistence_mask: Ipv4Addr,
    pub sorry: Option<Server>,
    /// The service lost its quorum (keepalived): the live weight is below
    /// `quorum`, so the sorry server takes every new connection; the real
    /// servers keep the connections they have. Only set with a sorry server.
    pub sorry_only: bool,
    /// One-packet scheduling: each datagram scheduled, no connection entry.
    pub ops: bool,
    /// `[timeouts] syn_cookies` applies: a TCP service whose servers (and
    /// sorry server) are all NAT. DR/TUN replies bypass the director, so it
    /// could not shift their sequence numbers; a service with any DR/TUN
    /// server keeps the plain path. Taken from each snapshot, so a reload
    /// turns it on or off for new connections at once.
    pub synproxy: bool,
}

/// One IPv6 virtual service the data plane forwards (NAT to IPv6 servers,
/// see `ServiceConfig::forwards_ipv6`). Apart from [`Service`] so the IPv4
/// path's types and lookups stay as they were.
pub struct Service6 {
    pub id: u16,
    pub proto: u8,
    pub vip: Ipv6Addr,
    /// 0 = all ports; the first of `ports` for a service over several.
    pub port: u16,
    pub ports: Box<[u16]>,
    pub sched: Arc<dyn Scheduler>,
    pub servers: Vec<Server<Ipv6Addr>>,
    /// 0 = no persistence.
    pub persistence_ms: u64,
    /// `persistence_prefix`: clients in one such prefix share a template.
    pub persistence_prefix: u8,
    /// As [`Service`]'s: an IPv6 sorry server, reached by NAT.
    pub sorry: Option<Server<Ipv6Addr>>,
    pub sorry_only: bool,
    /// One-packet scheduling (`pipeline/ops6.rs`).
    pub ops: bool,
}

/// What finding an IPv6 VIP's service needs of it: NAT over IPv6
/// ([`Service6`]) and NAT64 ([`Service64`]) are looked up alike.
trait Vip6Service {
    fn proto(&self) -> u8;
    fn vip(&self) -> Ipv6Addr;
    /// 0 = all ports; the first of `ports` for a service over several.
    fn port(&self) -> u16;
    fn ports(&self) -> &[u16];
}

macro_rules! vip6_service {
    ($t:ty) => {
        impl Vip6Service for $t {
            fn proto(&self) -> u8 {
                self.proto
            }
            fn vip(&self) -> Ipv6Addr {
                self.vip
            }
            fn port(&self) -> u16 {
                self.port
            }
            fn ports(&self) -> &[u16] {
                &self.ports
            }
        }
    };
}
vip6_service!(Service6);
vip6_service!(Service64);

/// The service of `list` for a packet to `vip:port`: one answering on that
/// port first, else a port-0 ("all ports") one.
#[inline]
fn find6<S: Vip6Service>(list: &[S], proto: u8, vip: Ipv6Addr, port: u16) -> Option<&S> {
    let mut any = None;
    for s in list {
        if s.proto() == proto && s.vip() == vip {
            let answers = if s.ports().is_empty() {
                s.port() == port
            } else {
                s.ports().contains(&port)
            };
            if answers {
                return Some(s);
            }
            if s.port() == 0 {
                any = Some(s);
            }
        }
    }
    any
}

/// A 32-bit fold of an IPv6 address (the xor of its four words): what the
/// hashing schedulers and the worker ownership of an IPv6 flow take where
/// IPv4 takes the address itself, so IPv4 results stay as they were.
#[inline]
pub fn fold6(a: Ipv6Addr) -> Ipv4Addr {
    let o = a.octets();
    let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
    Ipv4Addr::from(w(0) ^ w(4) ^ w(8) ^ w(12))
}

/// The scheduler's view of a service's servers: configuration from the
/// snapshot, counts summed over workers.
pub struct LiveDests<'a, A = Ipv4Addr>(pub &'a [Server<A>]);

impl<A> Dests for LiveDests<'_, A> {
    #[inline]
    fn len(&self) -> usize {
        self.0.len()
    }
    #[inline]
    fn weight(&self, i: usize) -> u32 {
        self.0[i].weight
    }
    #[inline]
    fn usable(&self, i: usize) -> bool {
        self.0[i].usable
    }
    #[inline]
    fn overloaded(&self, i: usize) -> bool {
        let s = &self.0[i];
        s.upper != 0 && s.shared.overloaded.load(Relaxed)
    }
    #[inline]
    fn active(&self, i: usize) -> u32 {
        self.0[i].shared.active()
    }
    #[inline]
    fn inactive(&self, i: usize) -> u32 {
        self.0[i].shared.inactive()
    }
    #[inline]
    fn candidate(&self, i: usize) -> bool {
        self.0.get(i).is_some_and(|s| {
            s.usable && s.weight > 0 && !(s.upper != 0 && s.shared.overloaded.load(Relaxed))
        })
    }
}

/// What health checks say of one server when a snapshot is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// In the pool with its configured weight.
    Up,
    /// Out of the pool; its connections are expired (`on_failure = "remove"`).
    Down,
    /// In the pool with weight 0: no new connections, existing ones live on
    /// (`on_failure = "weight-zero"`, keepalived's inhibit_on_failure).
    Inhibited,
}

/// The health-check state a snapshot is built with.
pub trait HealthView {
    fn health(&self, svc: &ServiceConfig, srv: &ServerConfig) -> Health;
    /// The server's weight while in the pool: a health check may set it
    /// (exec `dynamic_weight`, keepalived's misc_dynamic).
    fn weight(&self, _svc: &ServiceConfig, srv: &ServerConfig) -> u32 {
        srv.weight
    }
    /// Whether the service lost its quorum (its live weight is below
    /// `quorum`): with a sorry server, the sorry server takes over.
    fn quorum_lost(&self, _svc: &ServiceConfig) -> bool {
        false
    }
}

/// Every server up (no health checks, or before the first result).
pub struct AllUp;

impl HealthView for AllUp {
    fn health(&self, _: &ServiceConfig, _: &ServerConfig) -> Health {
        Health::Up
    }
}

/// One (protocol, VIP, port) a service answers on: a service over several
/// ports has one per port, all pointing at it, so the per-packet lookup
/// costs what it did when every service had one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortEntry {
    pub proto: u8,
    pub vip: Ipv4Addr,
    /// 0 = all ports.
    pub port: u16,
    /// Index into `Snapshot::services`.
    pub index: u16,
}

pub struct Snapshot {
    pub generation: u64,
    pub ports: Vec<PortInfo>,
    pub services: Vec<Service>,
    /// Every (protocol, VIP, port) of every service, in service order.
    pub by_port: Vec<PortEntry>,
    /// Sorted VIPs: "is this packet for a service?" per packet.
    pub vips: Vec<u32>,
    /// The IPv6 services' VIPs (sorted, no duplicates): the `[ha]` master
    /// answers neighbour solicitations for them.
    pub vips6: Vec<Ipv6Addr>,
    /// Server id -> (service index, server index) in this snapshot;
    /// `u32::MAX` for a sorry server, `None` for a server that is gone.
    pub dest_index: Vec<Option<(u16, u32)>>,
    /// Server id -> its counters, for every server the registry has ever
    /// known, so a connection of a deleted server still gives back its count.
    pub counters: Vec<Option<Arc<DestShared>>>,
    pub timeouts: conn::Timeouts,
    /// Service id -> every persistence netmask it has had, the current one
    /// first, for every service the registry has known (see
    /// [`Snapshot::persist_masks`]).
    pub persist_masks: Vec<Vec<Ipv4Addr>>,
    /// `[ha] virtual_addresses` (sorted): answered for by the master only.
    pub virtual_addrs: Vec<u32>,
    /// Every address the `[ha]` master owns, with the port it lives on:
    /// the VIPs (on the port whose subnet holds them, else the first
    /// port) and the virtual addresses. Gratuitous ARP goes out for each on
    /// takeover.
    pub owned: Vec<(usize, Ipv4Addr)>,
    /// IPv6 neighbour discovery: ports, servers, announced addresses.
    pub nd6: super::nd6::Nd6Plan,
    /// The IPv6 services forwarded (NAT), and server id -> (index into
    /// `services6`, server index) as `dest_index` for IPv4 (`u32::MAX` for
    /// a sorry server).
    pub services6: Vec<Service6>,
    pub dest_index6: Vec<Option<(u16, u32)>>,
    /// The NAT64 services (IPv6 VIP, IPv4 servers by full-NAT), and
    /// server id -> (index into `services64`, server index).
    pub services64: Vec<Service64>,
    pub dest_index64: Vec<Option<(u16, u32)>>,
    /// Some service schedules one packet at a time: a reply that misses
    /// the table may belong to it ([`Snapshot::ops_reply`]).
    pub has_ops: bool,
    /// `[timeouts] expire_nodest_conn` (pipeline/nodest.rs).
    pub expire_nodest_conn: bool,
    /// `[timeouts] expire_quiescent_template`: a template whose server has
    /// weight 0 is not used (and dropped) when a new connection looks it up.
    pub expire_quiescent_template: bool,
    /// Some server is reached by full-NAT: replies to the ports' source
    /// addresses may be a connection's (pipeline/fnat.rs), and the workers
    /// keep local port pools.
    pub has_fnat: bool,
}

pub fn method_of(f: Forward) -> Method {
    match f {
        Forward::Nat => Method::Nat,
        Forward::Dr => Method::Dr,
        Forward::Tun => Method::Tun,
        Forward::Fnat => Method::Fnat,
    }
}

pub fn proto_of(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => conn::PROTO_TCP,
        Protocol::Udp => conn::PROTO_UDP,
    }
}

/// `[timeouts]` in the connection table's terms.
pub fn conn_timeouts(t: &crate::config::Timeouts) -> conn::Timeouts {
    conn::Timeouts {
        established: t.tcp_established,
        syn_recv: t.tcp_syn_recv,
        fin_wait: t.tcp_fin,
        time_wait: t.tcp_time_wait,
        close: t.tcp_close,
        close_wait: t.tcp_close_wait,
        last_ack: t.tcp_last_ack,
        udp: t.udp,
        ..conn::Timeouts::default()
    }
}

impl Snapshot {
    /// A snapshot with nothing in it (before the first configuration).
    pub fn empty(_workers: usize) -> Snapshot {
        Snapshot {
            generation: 0,
            ports: Vec::new(),
            services: Vec::new(),
            by_port: Vec::new(),
            vips: Vec::new(),
            vips6: Vec::new(),
            dest_index: Vec::new(),
            counters: Vec::new(),
            timeouts: conn::Timeouts::default(),
            persist_masks: Vec::new(),
            virtual_addrs: Vec::new(),
            owned: Vec::new(),
            nd6: super::nd6::Nd6Plan::default(),
            services6: Vec::new(),
            services64: Vec::new(),
            dest_index64: Vec::new(),
            dest_index6: Vec::new(),
            has_ops: false,
            expire_nodest_conn: crate::config::Timeouts::default().expire_nodest_conn,
            expire_quiescent_template: false,
            has_fnat: false,
        }
    }

    /// Builds the snapshot of `cfg`, with each server's state as `health`
    /// says.
    pub fn build(
        cfg: &Config,
        ports: &[PortInfo],
        registry: &DestRegistry,
        generation: u64,
        health: &dyn HealthView,
    ) -> Result<Snapshot> {
        let mut services = Vec::with_capacity(cfg.services.len());
        let mut dest_index: Vec<Option<(u16, u32)>> = Vec::new();
        for sc in &cfg.services {
            // The IPv4 tables: IPv6 services are not forwarded yet (the
            // data plane hands IPv6 frames to the kernel).
            let Some(vip) = sc.vip_v4() else { continue };
            let si = services.len();
            let proto = proto_of(sc.protocol);
            let id = registry.service_id(proto, vip, sc.port);
            let servers: Vec<Server> = sc
                .servers
                .iter()
                .filter_map(|s| Some((s, s.address_v4()?)))
                .map(|(s, addr)| {
                    let port = s.effective_port(sc);
                    let h = health.health(sc, s);
                    Server {
                        addr,
                        port,
                        weight: if h == Health::Inhibited {
                            0
                        } else {
                            health.weight(sc, s)
                        },
                        method: method_of(s.effective_forward(sc)),
                        usable: h != Health::Down,
                        upper: s.upper_threshold,
                        lower: s.lower_threshold,
                        shared: registry.dest(id, addr, port),
                    }
                })
                .collect();
            let infos: Vec<DestInfo> = servers
                .iter()
                .map(|s| DestInfo::new(s.addr, s.port, s.weight, s.usable))
                .collect();
            let opts = SchedOpts {
                sh_port: sc.sched_flags.sh_port,
                sh_fallback: sc.sched_flags.sh_fallback,
                mh_port: sc.sched_flags.mh_port,
                mh_fallback: sc.sched_flags.mh_fallback,
                ..SchedOpts::default()
            };
            let sched = registry.scheduler(id, sc.scheduler, &opts, &infos);
            for s in &servers {
                s.apply_thresholds();
            }
            if sc.persistence_timeout > 0 {
                registry.persist_mask(id, sc.persistence_netmask);
            }
            let sorry = sc.sorry_server.and_then(|a| {
                let std::net::IpAddr::V4(ip) = a.ip() else {
                    return None;
                };
                Some(Server {
                    addr: ip,
                    port: a.port(),
                    weight: 1,
                    method: Method::Nat,
                    usable: true,
                    upper: 0,
                    lower: 0,
                    shared: registry.dest(id, ip, a.port()),
                })
            });
            let sorry_only = sorry.is_some() && health.quorum_lost(sc);
            let synproxy = cfg.timeouts.syn_cookies
                && proto == conn::PROTO_TCP
                && servers.iter().all(|s| s.method == Method::Nat);
            for (i, s) in servers.iter().enumerate() {
                set_index(&mut dest_index, s.shared.id, si as u16, i as u32);
            }
            if let Some(s) = &sorry {
                set_index(&mut dest_index, s.shared.id, si as u16, u32::MAX);
            }
            services.push(Service {
                id,
                proto,
                vip,
                port: sc.port,
                ports: sc.ports.clone().into_boxed_slice(),
                sched,
                servers,
                persistence_ms: sc.persistence_timeout as u64 * 1000,
                persistence_mask: sc.persistence_netmask,
                sorry,
                sorry_only,
                ops: sc.ops,
                synproxy,
            });
        }
        let (services6, dest_index6) = build_services6(cfg, registry, health);
        let (services64, dest_index64) = build_services64(cfg, registry, health);
        registry.retain_schedulers(
            &services
                .iter()
                .map(|s| s.id)
                .chain(services6.iter().map(|s| s.id))
                .chain(services64.iter().map(|s| s.id))
                .collect::<Vec<_>>(),
        );
        let mut vips: Vec<u32> = services.iter().map(|s| u32::from(s.vip)).collect();
        vips.sort_unstable();
        vips.dedup();
        let mut vips6: Vec<Ipv6Addr> = cfg
            .services
            .iter()
            .filter_map(|s| match s.vip {
                std::net::IpAddr::V6(v6) => Some(v6),
                std::net::IpAddr::V4(_) => None,
            })
            .collect();
        vips6.sort_unstable();
        vips6.dedup();
        let (virtual_addrs, owned) = owned_addresses(cfg, ports);
        let has_ops = services.iter().any(|s| s.ops);
        let has_fnat = services
            .iter()
            .any(|s| s.servers.iter().any(|d| d.method == Method::Fnat))
            || !services64.is_empty();
        let by_port = services
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                let ports: &[u16] = if s.ports.is_empty() {
                    std::slice::from_ref(&s.port)
                } else {
                    &s.ports
                };
                ports.iter().map(move |&port| PortEntry {
                    proto: s.proto,
                    vip: s.vip,
                    port,
                    index: i as u16,
                })
            })
            .collect();
        Ok(Snapshot {
            has_ops,
            has_fnat,
            expire_nodest_conn: cfg.timeouts.expire_nodest_conn,
            expire_quiescent_template: cfg.timeouts.expire_quiescent_template,
            generation,
            ports: ports.to_vec(),
            services,
            by_port,
            vips,
            vips6,
            dest_index,
            counters: {
                let mut v: Vec<Option<Arc<DestShared>>> = Vec::new();
                for (_, _, _, d) in registry.entries() {
                    let i = d.id as usize;
                    if v.len() <= i {
                        v.resize(i + 1, None);
                    }
                    v[i] = Some(d);
                }
                v
            },
            timeouts: conn_timeouts(&cfg.timeouts),
            persist_masks: registry.persist_masks(),
            virtual_addrs,
            owned,
            nd6: super::nd6::Nd6Plan::build(cfg, ports),
            services6,
            dest_index6,
            services64,
            dest_index64,
        })
    }

    /// The IPv6 service for a packet to `vip:port` (an exact port first,
    /// then a port-0 one).
    #[inline]
    pub fn service6_for(&self, proto: u8, vip: Ipv6Addr, port: u16) -> Option<&Service6> {
        find6(&self.services6, proto, vip, port)
    }

    /// Whether `ip` is the VIP of a forwarded IPv6 service.
    #[inline]
    pub fn is_fwd_vip6(&self, ip: Ipv6Addr) -> bool {
        self.services6.iter().any(|s| s.vip == ip)
    }

    /// The IPv6 service and server (or sorry server) a connection's server
    /// id points at now.
    #[inline]
    pub fn dest6(&self, id: u32) -> Option<(&Service6, &Server<Ipv6Addr>)> {
        let (si, di) = (*self.dest_index6.get(id as usize)?)?;
        let svc = self.services6.get(si as usize)?;
        let srv = if di == u32::MAX {
            svc.sorry.as_ref()?
        } else {
            svc.servers.get(di as usize)?
        };
        Some((svc, srv))
    }

    /// Whether `ip` is one of the `[ha]` virtual addresses.
    #[inline]
    pub fn is_virtual(&self, ip: Ipv4Addr) -> bool {
        !self.virtual_addrs.is_empty() && self.virtual_addrs.contains(&u32::from(ip))
    }

    /// Whether `ip` is the VIP of an IPv6 service.
    #[inline]
    pub fn is_vip6(&self, ip: Ipv6Addr) -> bool {
        self.vips6.binary_search(&ip).is_ok()
    }

    #[inline]
    pub fn is_vip(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        if self.vips.len() <= 8 {
            self.vips.contains(&ip)
        } else {
            self.vips.binary_search(&ip).is_ok()
        }
    }

    /// The service for a packet to `vip:port` (an exact port first, then a
    /// port-0 "all ports" service). A service over several ports is found
    /// by each of them.
    #[inline]
    pub fn service_for(&self, proto: u8, vip: Ipv4Addr, port: u16) -> Option<&Service> {
        let mut any = None;
        for e in &self.by_port {
            if e.proto == proto && e.vip == vip {
                if e.port == port {
                    return self.services.get(e.index as usize);
                }
                if e.port == 0 {
                    any = Some(e.index);
                }
            }
        }
        any.and_then(|i| self.services.get(i as usize))
    }

    /// One-packet scheduling keeps no entry, so a NAT server's reply is
    /// matched by its source: the first one-packet service of protocol
    /// `proto` with a NAT server (or sorry server) at `src:sport`, and the
    /// VIP port the client used (the server's port for a port-0 service,
    /// which keeps the client's destination port).
    pub fn ops_reply(
        &self,
        proto: u8,
        src: Ipv4Addr,
        sport: u16,
    ) -> Option<(&Service, &Server, u16)> {
        self.services
            .iter()
            .filter(|s| s.ops && s.proto == proto)
            .find_map(|svc| {
                let srv = svc.servers.iter().chain(svc.sorry.as_ref()).find(|d| {
                    d.method == Method::Nat && d.addr == src && (d.port == sport || d.port == 0)
                })?;
                // A server without a port of its own (all-ports or
                // several-ports service) answers from the client's port.
                let vport = if svc.port == 0 || srv.port == 0 {
                    sport
                } else {
                    svc.port
                };
                Some((svc, srv, vport))
            })
    }

    /// The service and server a connection's server id points at now.
    #[inline(always)]
    pub fn dest(&self, id: u32) -> Option<(&Service, &Server)> {
        let (si, di) = (*self.dest_index.get(id as usize)?)?;
        let svc = self.services.get(si as usize)?;
        let srv = if di == u32::MAX {
            svc.sorry.as_ref()?
        } else {
            svc.servers.get(di as usize)?
        };
        Some((svc, srv))
    }

    /// The persistence netmasks service `svc` has had, the current one
    /// first (empty for a service never persistent). A connection holding
    /// a template was made under one of them. An IPv6 service's are its
    /// prefix lengths, as `Ipv4Addr::from(prefix as u32)` (service ids
    /// name one family).
    #[inline]
    pub fn persist_masks(&self, svc: u16) -> &[Ipv4Addr] {
        self.persist_masks
            .get(svc as usize)
            .map_or(&[], |v| v.as_slice())
    }

    /// The counters of server `id`, present or deleted.
    #[inline]
    pub fn counters(&self, id: u32) -> Option<&DestShared> {
        self.counters.get(id as usize)?.as_deref()
    }

    /// The port to send to `ip` and the next hop on it: the port whose
    /// subnet holds `ip`, else the first port with a gateway.
    #[inline]
    pub fn route(&self, ip: Ipv4Addr) -> Option<(usize, Ipv4Addr)> {
        if let Some(i) = self.ports.iter().position(|p| p.on_link(ip)) {
            return Some((i, ip));
        }
        self.ports
            .iter()
            .enumerate()
            .find_map(|(i, p)| p.gateway.map(|g| (i, g)))
    }

    /// The full-NAT source addresses and port ranges of every port, in port
    /// order (what a worker's local port pools are built from).
    pub fn snat_specs(&self) -> Vec<conn::SnatSpec> {
        self.ports
            .iter()
            .map(|p| conn::SnatSpec {
                addrs: p.snat_addrs.clone(),
                lo: p.snat_ports.0,
                hi: p.snat_ports.1,
            })
            .collect()
    }

    /// Whether `ip:port` is a full-NAT local tuple of some port (a reply to
    /// a full-NAT connection is addressed to one).
    #[inline]
    pub fn is_snat(&self, ip: Ipv4Addr, port: u16) -> bool {
        self.has_fnat && self.ports.iter().any(|p| p.is_snat(ip, port))
    }

    /// Whether `ip` is one of the director's own port addresses.
    #[inline]
    pub fn is_own(&self, ip: Ipv4Addr) -> bool {
        self.ports.iter().any(|p| p.addr == ip)
    }
}

/// The `[ha]` virtual addresses, and every address the master owns with
/// its port (see [`Snapshot::owned`]).
fn owned_addresses(cfg: &Config, ports: &[PortInfo]) -> (Vec<u32>, Vec<(usize, Ipv4Addr)>) {
    let mut owned: Vec<(usize, Ipv4Addr)> = Vec::new();
    if ports.is_empty() {
        return (Vec::new(), owned);
    }
    for vip in cfg.vrrp_addresses() {
        if owned.iter().any(|&(_, a)| a == vip) {
            continue;
        }
        let port = ports.iter().position(|p| p.on_link(vip)).unwrap_or(0);
        owned.push((port, vip));
    }
    let mut virt = Vec::new();
    if let Some(ha) = &cfg.ha {
        for va in &ha.virtual_addresses {
            virt.push(u32::from(va.address));
            if let Some(port) = ports.iter().position(|p| p.name == va.port) {
                if let Some(o) = owned.iter_mut().find(|(_, a)| *a == va.address) {
                    o.0 = port;
                }
            }
        }
    }
    virt.sort_unstable();
    virt.dedup();
    (virt, owned)
}

/// The IPv6 services the data plane forwards, and their server index.
fn build_services6(
    cfg: &Config,
    registry: &DestRegistry,
    health: &dyn HealthView,
) -> (Vec<Service6>, Vec<Option<(u16, u32)>>) {
    let mut out = Vec::new();
    let mut index = Vec::new();
    for sc in cfg.services.iter().filter(|s| s.forwards_ipv6()) {
        let IpAddr::V6(vip) = sc.vip else { continue };
        let proto = proto_of(sc.protocol);
        let id = registry.service_id6(proto, vip, sc.port);
        let servers: Vec<Server<Ipv6Addr>> = sc
            .servers
            .iter()
            .filter_map(|s| match s.address {
                IpAddr::V6(a) => Some((s, a)),
                IpAddr::V4(_) => None,
            })
            .map(|(s, addr)| {
                let port = s.effective_port(sc);
                let h = health.health(sc, s);
                Server {
                    addr,
                    port,
                    weight: if h == Health::Inhibited {
                        0
                    } else {
                        health.weight(sc, s)
                    },
                    method: method_of(s.effective_forward(sc)),
                    usable: h != Health::Down,
                    upper: s.upper_threshold,
                    lower: s.lower_threshold,
                    shared: registry.dest6(id, addr, port),
                }
            })
            .collect();
        // The schedulers see an address only through the hashing ones'
        // input: the fold keeps each server's identity distinct enough
        // for the kernel-compatible rr/wrr/wlc/lc sequences, which ignore it.
        let infos: Vec<DestInfo> = servers
            .iter()
            .map(|s| DestInfo::new(fold6(s.addr), s.port, s.weight, s.usable))
            .collect();
        let opts = SchedOpts {
            sh_port: sc.sched_flags.sh_port,
            sh_fallback: sc.sched_flags.sh_fallback,
            mh_port: sc.sched_flags.mh_port,
            mh_fallback: sc.sched_flags.mh_fallback,
            ..SchedOpts::default()
        };
        let sched = registry.scheduler(id, sc.scheduler, &opts, &infos);
        if sc.persistence_timeout > 0 {
            // Kept with the IPv4 netmasks, as the prefix length in the
            // address's low byte (see `Snapshot::persist_masks`).
            registry.persist_mask(id, Ipv4Addr::from(u32::from(sc.persistence_prefix)));
        }
        let si = out.len() as u16;
        for (i, s) in servers.iter().enumerate() {
            s.apply_thresholds();
            set_index(&mut index, s.shared.id, si, i as u32);
        }
        // The sorry server, as IPv4's: NAT whatever the service's forward.
        let sorry = match sc.sorry_server.map(|a| (a.ip(), a.port())) {
            Some((IpAddr::V6(ip), port)) => Some(Server {
                addr: ip,
                port,
                weight: 1,
                method: Method::Nat,
                usable: true,
                upper: 0,
                lower: 0,
                shared: registry.dest6(id, ip, port),
            }),
            _ => None,
        };
        if let Some(s) = &sorry {
            set_index(&mut index, s.shared.id, si, u32::MAX);
        }
        out.push(Service6 {
            id,
            proto,
            vip,
            port: sc.port,
            ports: sc.ports.clone().into_boxed_slice(),
            sched,
            servers,
            persistence_ms: sc.persistence_timeout as u64 * 1000,
            persistence_prefix: sc.persistence_prefix,
            sorry_only: sorry.is_some() && health.quorum_lost(sc),
            sorry,
            ops: sc.ops,
        });
    }
    (out, index)
}

fn set_index(v: &mut Vec<Option<(u16, u32)>>, id: u32, si: u16, di: u32) {
    let i = id as usize;
    if v.len() <= i {
        v.resize(i + 1, None);
    }
    v[i] = Some((si, di));
}

/// One NAT64 service: an IPv6 VIP whose IPv4 servers are reached by
/// full-NAT (`ServiceConfig::forwards_nat64`). Its servers are plain IPv4
/// [`Server`]s, registered as IPv4 servers of the IPv6 service's id.
pub struct Service64 {
    pub id: u16,
    pub proto: u8,
    pub vip: Ipv6Addr,
    /// 0 = all ports; the first of `ports` for a service over several.
    pub port: u16,
    pub ports: Box<[u16]>,
    pub sched: Arc<dyn Scheduler>,
    pub servers: Vec<Server>,
    /// 0 = no persistence (`pipeline/persist64.rs`).
    pub persistence_ms: u64,
    /// As [`Service6`]'s: clients in one such prefix share a template.
    pub persistence_prefix: u8,
}

impl Snapshot {
    /// The NAT64 service for a packet to `vip:port` (an exact port first,
    /// then a port-0 one).
    #[inline]
    pub fn service64_for(&self, proto: u8, vip: Ipv6Addr, port: u16) -> Option<&Service64> {
        find6(&self.services64, proto, vip, port)
    }

    /// Whether `ip` is the VIP of a NAT64 service.
    #[inline]
    pub fn is_vip64(&self, ip: Ipv6Addr) -> bool {
        self.services64.iter().any(|s| s.vip == ip)
    }

    /// The NAT64 service and (IPv4) server a connection's server id points
    /// at now.
    #[inline]
    pub fn dest64(&self, id: u32) -> Option<(&Service64, &Server)> {
        let (si, di) = (*self.dest_index64.get(id as usize)?)?;
        let svc = self.services64.get(si as usize)?;
        Some((svc, svc.servers.get(di as usize)?))
    }
}

/// The NAT64 services the data plane forwards, and their server index.
fn build_services64(
    cfg: &Config,
    registry: &DestRegistry,
    health: &dyn HealthView,
) -> (Vec<Service64>, Vec<Option<(u16, u32)>>) {
    let mut out = Vec::new();
    let mut index = Vec::new();
    for sc in cfg.services.iter().filter(|s| s.forwards_nat64()) {
        let IpAddr::V6(vip) = sc.vip else { continue };
        let proto = proto_of(sc.protocol);
        let id = registry.service_id6(proto, vip, sc.port);
        let servers: Vec<Server> = sc
            .servers
            .iter()
            .filter_map(|s| Some((s, s.address_v4()?)))
            .map(|(s, addr)| {
                let port = s.effective_port(sc);
                let h = health.health(sc, s);
                Server {
                    addr,
                    port,
                    weight: if h == Health::Inhibited {
                        0
                    } else {
                        health.weight(sc, s)
                    },
                    method: Method::Fnat,
                    usable: h != Health::Down,
                    upper: s.upper_threshold,
                    lower: s.lower_threshold,
                    shared: registry.dest(id, addr, port),
                }
            })
            .collect();
        let infos: Vec<DestInfo> = servers
            .iter()
            .map(|s| DestInfo::new(s.addr, s.port, s.weight, s.usable))
            .collect();
        let opts = SchedOpts {
            sh_port: sc.sched_flags.sh_port,
            sh_fallback: sc.sched_flags.sh_fallback,
            mh_port: sc.sched_flags.mh_port,
            mh_fallback: sc.sched_flags.mh_fallback,
            ..SchedOpts::default()
        };
        let sched = registry.scheduler(id, sc.scheduler, &opts, &infos);
        if sc.persistence_timeout > 0 {
            // As `build_services6`: the prefix length kept as a netmask.
            registry.persist_mask(id, Ipv4Addr::from(u32::from(sc.persistence_prefix)));
        }
        let si = out.len() as u16;
        for (i, s) in servers.iter().enumerate() {
            s.apply_thresholds();
            set_index(&mut index, s.shared.id, si, i as u32);
        }
        out.push(Service64 {
            id,
            proto,
            vip,
            port: sc.port,
            ports: sc.ports.clone().into_boxed_slice(),
            sched,
            servers,
            persistence_ms: sc.persistence_timeout as u64 * 1000,
            persistence_prefix: sc.persistence_prefix,
        });
    }
    (out, index)
}

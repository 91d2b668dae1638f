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
//!
//! The module's parts: `registry` (server and service identities, their
//! counters and kept schedulers), `service` (services and servers as the
//! workers see them, health), `build` (a snapshot from a configuration),
//! `v6` (the IPv6 and NAT64 services and their lookups); this file holds
//! the snapshot and its IPv4 lookups.

mod build;
mod own6;
mod registry;
mod service;
mod v6;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::config::{Forward, PortConfig, Protocol};
use crate::conn::{self, Method};
use crate::packet::ethernet::MacAddr;

pub use own6::Own6;
pub use registry::{DestCounters, DestRegistry, DestShared};
pub use service::{AllUp, Health, HealthView, LiveDests, Server, Service};
pub use v6::{fold6, Service6, Service64};

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
        indexed(&self.dest_index, &self.services, id, |s| {
            (&s.servers, s.sorry.as_ref())
        })
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

/// What a server id's entry in a `dest_index*` names: its service, and
/// the server at the entry's index or, for `u32::MAX`, the sorry server
/// (`parts` gives a service's servers and sorry server). One lookup for
/// the IPv4, IPv6 and NAT64 services.
#[inline(always)]
pub(super) fn indexed<'a, S, A>(
    index: &[Option<(u16, u32)>],
    services: &'a [S],
    id: u32,
    parts: impl FnOnce(&'a S) -> (&'a [Server<A>], Option<&'a Server<A>>),
) -> Option<(&'a S, &'a Server<A>)> {
    let (si, di) = (*index.get(id as usize)?)?;
    let svc = services.get(si as usize)?;
    let (servers, sorry) = parts(svc);
    let srv = if di == u32::MAX {
        sorry?
    } else {
        servers.get(di as usize)?
    };
    Some((svc, srv))
}

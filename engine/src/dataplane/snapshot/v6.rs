//! The IPv6 services (NAT over IPv6 to IPv6 servers) and the NAT64 ones
//! (an IPv6 VIP, IPv4 servers by full-NAT): their types, how a snapshot
//! builds them and how a packet finds them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::build::{scheduler, server, set_index, sorry_server};
use super::{indexed, method_of, proto_of, DestRegistry, HealthView, Server, Snapshot};
use crate::config::Config;
use crate::conn::Method;
use crate::sched::Sched;

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
    pub sched: Arc<Sched>,
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
    pub sched: Arc<Sched>,
    pub servers: Vec<Server>,
    /// 0 = no persistence (`pipeline/persist64.rs`).
    pub persistence_ms: u64,
    /// As [`Service6`]'s: clients in one such prefix share a template.
    pub persistence_prefix: u8,
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

impl Snapshot {
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
        indexed(&self.dest_index6, &self.services6, id, |s| {
            (&s.servers, s.sorry.as_ref())
        })
    }

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
        // NAT64 services have no sorry server.
        indexed(&self.dest_index64, &self.services64, id, |s| {
            (&s.servers, None)
        })
    }
}

/// The IPv6 services the data plane forwards, and their server index.
pub(super) fn build_services6(
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
                let method = method_of(s.effective_forward(sc));
                server(sc, s, addr, method, health, |port| {
                    registry.dest6(id, addr, port)
                })
            })
            .collect();
        // The schedulers see an address only through the hashing ones'
        // input: the fold keeps each server's identity distinct enough
        // for the kernel-compatible rr/wrr/wlc/lc sequences, which ignore it.
        let sched = scheduler(registry, id, sc, &servers, |&a| fold6(a));
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
            Some((IpAddr::V6(ip), port)) => {
                Some(sorry_server(ip, port, registry.dest6(id, ip, port)))
            }
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

/// The NAT64 services the data plane forwards, and their server index.
pub(super) fn build_services64(
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
                server(sc, s, addr, Method::Fnat, health, |port| {
                    registry.dest(id, addr, port)
                })
            })
            .collect();
        let sched = scheduler(registry, id, sc, &servers, |&a| a);
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

//! A snapshot built from a configuration: services, servers and their
//! schedulers as health says, the address sets the per-packet lookups use.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use anyhow::Result;

use super::v6::{build_services6, build_services64};
use super::{
    conn_timeouts, method_of, proto_of, DestRegistry, DestShared, Health, HealthView, PortEntry,
    PortInfo, Server, Service, Snapshot,
};
use crate::config::{Config, ServerConfig, ServiceConfig};
use crate::conn::{self, Method};
use crate::sched::{DestInfo, Sched, SchedOpts};

impl Snapshot {
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
                    let method = method_of(s.effective_forward(sc));
                    server(sc, s, addr, method, health, |port| {
                        registry.dest(id, addr, port)
                    })
                })
                .collect();
            let sched = scheduler(registry, id, sc, &servers, |&a| a);
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
                Some(sorry_server(ip, a.port(), registry.dest(id, ip, a.port())))
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
            nd6: crate::dataplane::nd6::Nd6Plan::build(cfg, ports),
            services6,
            dest_index6,
            services64,
            dest_index64,
        })
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

/// The scheduler of service `id` (`sc`) over `servers` (the registry's
/// kept one while they are unchanged); `v4` is the address the schedulers
/// see of a server (hashing schedulers take it as input).
pub(super) fn scheduler<A>(
    registry: &DestRegistry,
    id: u16,
    sc: &ServiceConfig,
    servers: &[Server<A>],
    v4: impl Fn(&A) -> Ipv4Addr,
) -> Arc<Sched> {
    let infos: Vec<DestInfo> = servers
        .iter()
        .map(|s| DestInfo::new(v4(&s.addr), s.port, s.weight, s.usable))
        .collect();
    registry.scheduler(id, sc.scheduler, &sched_opts(sc), &infos)
}

/// A service's scheduler options, from its `sched_flags`.
fn sched_opts(sc: &ServiceConfig) -> SchedOpts {
    SchedOpts {
        sh_port: sc.sched_flags.sh_port,
        sh_fallback: sc.sched_flags.sh_fallback,
        mh_port: sc.sched_flags.mh_port,
        mh_fallback: sc.sched_flags.mh_fallback,
        ..SchedOpts::default()
    }
}

/// Configured server `s` of `sc` at `addr` (IPv4 or IPv6), reached by
/// `method`, in the state `health` says (weight 0 while inhibited, out of
/// the pool while down), with the counters `shared` gives the server at
/// its effective port.
pub(super) fn server<A>(
    sc: &ServiceConfig,
    s: &ServerConfig,
    addr: A,
    method: Method,
    health: &dyn HealthView,
    shared: impl FnOnce(u16) -> Arc<DestShared>,
) -> Server<A> {
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
        method,
        usable: h != Health::Down,
        upper: s.upper_threshold,
        lower: s.lower_threshold,
        shared: shared(port),
    }
}

/// A sorry server: reached by NAT whatever the service's forward, weight
/// 1, no thresholds.
pub(super) fn sorry_server<A>(addr: A, port: u16, shared: Arc<DestShared>) -> Server<A> {
    Server {
        addr,
        port,
        weight: 1,
        method: Method::Nat,
        usable: true,
        upper: 0,
        lower: 0,
        shared,
    }
}

pub(super) fn set_index(v: &mut Vec<Option<(u16, u32)>>, id: u32, si: u16, di: u32) {
    let i = id as usize;
    if v.len() <= i {
        v.resize(i + 1, None);
    }
    v[i] = Some((si, di));
}

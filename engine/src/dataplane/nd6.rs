//! What IPv6 neighbour discovery needs of a configuration, built with each
//! snapshot: the ports' IPv6 addresses, prefixes and gateways, the IPv6
//! servers to keep resolved, and the addresses unsolicited advertisements
//! announce. Kept apart from the IPv4 parts of the snapshot so the IPv4
//! path reads exactly what it did.

use std::net::Ipv6Addr;

use super::snapshot::PortInfo;
use crate::config::{Config, PortIpv6};

/// IPv6 neighbour-discovery view of one configuration.
#[derive(Debug, Clone, Default)]
pub struct Nd6Plan {
    /// Each port's IPv6 address, prefix and gateway, indexed as the
    /// snapshot's ports.
    pub ports: Vec<Option<PortIpv6>>,
    /// The IPv6 real and sorry servers (sorted, no duplicates).
    pub servers: Vec<Ipv6Addr>,
    /// Addresses announced with unsolicited advertisements: (port, address,
    /// is a VIP). Port addresses first, then the IPv6 VIPs (on the port
    /// whose IPv6 subnet holds them, else the first port with an IPv6
    /// address); VIPs only while this director is the `[ha]` master.
    pub owned: Vec<(usize, Ipv6Addr, bool)>,
}

impl Nd6Plan {
    pub fn build(cfg: &Config, ports: &[PortInfo]) -> Nd6Plan {
        let v6: Vec<Option<PortIpv6>> = ports
            .iter()
            .map(|p| {
                cfg.ports
                    .iter()
                    .find(|c| c.name == p.name)
                    .and_then(|c| c.ipv6)
            })
            .collect();
        let mut servers: Vec<Ipv6Addr> = cfg
            .services
            .iter()
            .flat_map(|s| {
                s.servers
                    .iter()
                    .map(|d| d.address)
                    .chain(s.sorry_server.map(|a| a.ip()))
            })
            .filter_map(|a| match a {
                std::net::IpAddr::V6(a) => Some(a),
                std::net::IpAddr::V4(_) => None,
            })
            .collect();
        servers.sort_unstable();
        servers.dedup();
        let mut owned: Vec<(usize, Ipv6Addr, bool)> = v6
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i, p.as_ref()?.address, false)))
            .collect();
        let first = owned.first().map(|o| o.0);
        let mut vips: Vec<Ipv6Addr> = cfg
            .services
            .iter()
            .filter_map(|s| match s.vip {
                std::net::IpAddr::V6(a) => Some(a),
                std::net::IpAddr::V4(_) => None,
            })
            .collect();
        vips.sort_unstable();
        vips.dedup();
        for vip in vips {
            let on_link = v6
                .iter()
                .position(|p| p.as_ref().is_some_and(|p| p.contains(vip)));
            if let Some(port) = on_link.or(first) {
                owned.push((port, vip, true));
            }
        }
        Nd6Plan {
            ports: v6,
            servers,
            owned,
        }
    }

    /// Port `port`'s IPv6 address.
    #[inline]
    pub fn addr(&self, port: usize) -> Option<Ipv6Addr> {
        Some(self.ports.get(port)?.as_ref()?.address)
    }

    /// Whether `ip` is on port `port`'s IPv6 subnet.
    #[inline]
    pub fn on_link(&self, port: usize, ip: Ipv6Addr) -> bool {
        self.ports
            .get(port)
            .is_some_and(|p| p.as_ref().is_some_and(|p| p.contains(ip)))
    }

    /// Whether `ip` is on an attached IPv6 subnet of some port, port
    /// `first` tested first (the arrival port of a client's frame: one
    /// prefix compare in the common case). The same as `route(ip)` giving
    /// `ip` itself as the next hop.
    #[inline]
    pub fn is_attached(&self, first: usize, ip: Ipv6Addr) -> bool {
        self.on_link(first, ip)
            || self
                .ports
                .iter()
                .any(|p| p.as_ref().is_some_and(|p| p.contains(ip)))
    }

    /// The port and next hop for `ip`: itself on an attached IPv6 subnet,
    /// else the first port's IPv6 gateway.
    pub fn route(&self, ip: Ipv6Addr) -> Option<(usize, Ipv6Addr)> {
        let mut gw = None;
        for (i, p) in self.ports.iter().enumerate() {
            let Some(p) = p else { continue };
            if p.contains(ip) {
                return Some((i, ip));
            }
            if gw.is_none() {
                gw = p.gateway.map(|g| (i, g));
            }
        }
        gw
    }

    /// The IPv6 next hops the configuration names: the ports' IPv6
    /// gateways and every IPv6 server's next hop (reserved neighbour
    /// entries, kept resolved).
    pub fn next_hops(&self) -> Vec<Ipv6Addr> {
        let gateways = self.ports.iter().flatten().filter_map(|p| p.gateway);
        let servers = self
            .servers
            .iter()
            .filter_map(|&s| self.route(s).map(|(_, nh)| nh));
        gateways.chain(servers).collect()
    }
}

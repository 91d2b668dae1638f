//! The rules pass: what relates two or more values. It runs on typed values,
//! so it serves both a file (after the schema pass, on the parts that passed
//! it) and a configuration changed in code ([`Config::validate`]).
//!
//! Errors carry key paths only; the file loader adds the lines.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod peers;

use super::schema::is_contiguous;
use super::*;
use peers::{check_bgp, check_ha};

/// What the rules look at: the parts of a configuration that were built,
/// each with its index in the file.
pub(super) struct Scope<'a> {
    pub dpdk: Option<&'a DpdkConfig>,
    pub ports: Vec<(usize, &'a PortConfig)>,
    /// Every `[[port]]` is in `ports`; otherwise reachability is not judged.
    pub all_ports: bool,
    pub services: Vec<(usize, &'a ServiceConfig)>,
    pub notify: Option<&'a NotifyConfig>,
    pub ha: Option<&'a HaConfig>,
    pub control: Option<&'a ControlConfig>,
    pub bgp: Option<&'a BgpConfig>,
}

impl<'a> Scope<'a> {
    pub fn whole(cfg: &'a Config) -> Scope<'a> {
        Scope {
            dpdk: Some(&cfg.dpdk),
            ports: cfg.ports.iter().enumerate().collect(),
            all_ports: true,
            services: cfg.services.iter().enumerate().collect(),
            notify: Some(&cfg.notify),
            ha: cfg.ha.as_ref(),
            control: Some(&cfg.control),
            bgp: cfg.bgp.as_ref(),
        }
    }
}

/// Collected errors.
struct Out(Vec<ConfigError>);

impl Out {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::new(path, 0, message));
    }
}

pub(super) fn check(scope: &Scope) -> Vec<ConfigError> {
    let mut out = Out(Vec::new());
    if let Some(dpdk) = scope.dpdk {
        check_dpdk(dpdk, &mut out);
    }
    check_ports(scope, &mut out);
    check_snat(scope, &mut out);
    let mut seen = HashMap::new();
    for &(i, svc) in &scope.services {
        // A service over several ports claims each of them.
        for &port in svc.vports() {
            let key = (svc.protocol, svc.vip, port);
            match seen.get(&key) {
                Some(first) => out.push(
                    format!("service[{i}]"),
                    format!(
                        "{}:{}:{port} is already defined by service[{first}]",
                        svc.protocol,
                        host_part(svc.vip)
                    ),
                ),
                None => {
                    seen.insert(key, i);
                }
            }
        }
        check_service(scope, i, svc, &mut out);
    }
    if let Some(notify) = scope.notify {
        check_notify(notify, &mut out);
    }
    if let Some(ha) = scope.ha {
        check_ha(scope, ha, &mut out);
    }
    if let Some(control) = scope.control {
        check_control(scope, control, &mut out);
    }
    if scope.bgp.is_some() {
        check_bgp(scope, &mut out);
    }
    out.0
}

fn check_dpdk(d: &DpdkConfig, out: &mut Out) {
    if d.lcores.is_empty() {
        out.push("dpdk.cores", "lists no lcore");
    } else if d.workers == 0 {
        out.push("dpdk.workers", "must be at least 1");
    } else if d.workers > d.lcores.len() - 1 {
        out.push(
            "dpdk.workers",
            format!(
                "{} workers need {} lcores, but cores \"{}\" has {} (the first is the control core)",
                d.workers,
                d.workers + 1,
                d.cores,
                d.lcores.len()
            ),
        );
    }
}

/// What a device string attaches to: the kernel interface of an
/// af_packet/pcap vdev (`iface=`), else the string up to its first comma (a
/// PCI address or a vdev name).
fn device_iface(device: &str) -> String {
    let mut parts = device.split(',');
    let head = parts.next().unwrap_or("").trim();
    if head.starts_with("net_af_packet") || head.starts_with("net_pcap") {
        if let Some(i) = parts.find_map(|kv| kv.trim().strip_prefix("iface=")) {
            return format!("iface:{i}");
        }
    }
    head.to_string()
}

fn check_ports(scope: &Scope, out: &mut Out) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut addresses: HashMap<IpAddr, usize> = HashMap::new();
    let mut ifaces: HashMap<String, usize> = HashMap::new();
    for &(i, port) in &scope.ports {
        // Two ports on one interface (the same `iface=` of net_af_packet or
        // net_pcap, or the same PCI address) would read each other's frames.
        let iface = device_iface(&port.device);
        match ifaces.get(&iface) {
            Some(first) => out.push(
                format!("port[{i}].device"),
                format!("`{}` uses the same interface as port[{first}]", port.device),
            ),
            None => {
                ifaces.insert(iface, i);
            }
        }
        match names.get(port.name.as_str()) {
            Some(first) => out.push(
                format!("port[{i}].name"),
                format!("port name `{}` is already used by port[{first}]", port.name),
            ),
            None => {
                names.insert(&port.name, i);
            }
        }
        let own = std::iter::once(IpAddr::V4(port.address))
            .chain(port.ipv6.map(|v6| IpAddr::V6(v6.address)));
        for ip in own {
            match addresses.get(&ip) {
                Some(first) => out.push(
                    format!("port[{i}].address"),
                    format!("{ip} is already the address of port[{first}]"),
                ),
                None => {
                    addresses.insert(ip, i);
                }
            }
        }
        if let Some(v6) = port.ipv6 {
            if let Some(gw) = v6.gateway {
                if !v6.contains(gw) || gw == v6.address {
                    out.push(
                        format!("port[{i}].gateway"),
                        format!(
                            "{gw} is not another host on this port's subnet {}",
                            v6.subnet()
                        ),
                    );
                }
            }
        }
        if port.device.starts_with("net_af_packet") && port.mtu > AF_PACKET_MAX_MTU {
            // DPDK 22.11's af_packet reports 1518-byte frames at most, and
            // ethdev refuses a bigger MTU: say so before start-up does.
            out.push(
                format!("port[{i}].mtu"),
                format!(
                    "{}: net_af_packet takes frames of at most 1518 bytes (mtu at most {AF_PACKET_MAX_MTU})",
                    port.mtu
                ),
            );
        }
        if let Some(gw) = port.gateway {
            if !port.contains(gw) || gw == port.address {
                out.push(
                    format!("port[{i}].gateway"),
                    format!(
                        "{gw} is not another host on this port's subnet {}",
                        port.subnet()
                    ),
                );
            }
        }
    }
}

/// `[[port]] snat_addresses`: full-NAT source addresses must be hosts of
/// their port's subnet (the servers reach them on-link and ARP for them),
/// and belong to nothing else: not a VIP, another port's address, or
/// another port's (or this list's) source address.
fn check_snat(scope: &Scope, out: &mut Out) {
    for &(i, svc) in &scope.services {
        for (j, srv) in svc.servers.iter().enumerate() {
            if svc.ops && srv.effective_forward(svc) == Forward::Fnat {
                out.push(
                    format!("service[{i}].server[{j}].forward"),
                    format!(
                        "{}: fnat needs a connection entry for the reply, which one-packet scheduling (ops) does not make",
                        srv.ident(svc)
                    ),
                );
            }
        }
    }
    let vips: Vec<Ipv4Addr> = scope
        .services
        .iter()
        .filter_map(|(_, s)| s.vip_v4())
        .collect();
    let mut seen: HashMap<Ipv4Addr, String> = HashMap::new();
    for &(i, port) in &scope.ports {
        seen.insert(port.address, format!("the address of port[{i}]"));
    }
    for &(i, port) in &scope.ports {
        for (j, &a) in port.snat_addresses.iter().enumerate() {
            let at = format!("port[{i}].snat_addresses[{j}]");
            let host = u32::from(a) & !u32::from(port.netmask());
            let all = !u32::from(port.netmask());
            if !port.contains(a) || (port.prefix_len <= 30 && (host == 0 || host == all)) {
                out.push(
                    at,
                    format!(
                        "{a} is not a host address on this port's subnet {} (servers reach the full-NAT source on-link)",
                        port.subnet()
                    ),
                );
                continue;
            }
            if vips.contains(&a) {
                out.push(
                    at,
                    format!("{a} is a VIP; a full-NAT source must be an address of its own"),
                );
                continue;
            }
            match seen.get(&a) {
                Some(what) if *what == format!("the address of port[{i}]") => {}
                Some(what) => out.push(at, format!("{a} is already {what}")),
                None => {
                    seen.insert(a, at);
                }
            }
        }
    }
}

/// A service over several ports (`ports`): its servers keep the client's
/// destination port (as those of an all-ports service without a port do),
/// so a NAT server with a port of its own would send every port's traffic
/// to one; and a probe that connects then needs `connect_port`.
fn check_grouped(i: usize, svc: &ServiceConfig, out: &mut Out) {
    for (j, srv) in svc.servers.iter().enumerate() {
        if matches!(srv.effective_forward(svc), Forward::Nat | Forward::Fnat) && srv.port != 0 {
            out.push(
                format!("service[{i}].server[{j}].port"),
                format!(
                    "a NAT server of a service over several ports ({}) keeps the client's destination port: leave `port` out",
                    svc.port_list()
                ),
            );
        }
    }
    if let Some(hc) = &svc.health_check {
        let connects = !matches!(hc.kind, HealthCheckKind::Exec | HealthCheckKind::None);
        if connects && hc.connect_port.is_none() {
            out.push(
                format!("service[{i}].health_check"),
                format!(
                    "a {} check of a service over several ports needs `connect_port`: its servers have no port of their own",
                    hc.kind
                ),
            );
        }
    }
}

/// The largest MTU a `net_af_packet` port can run with.
const AF_PACKET_MAX_MTU: u16 = 1500;

fn check_service(scope: &Scope, i: usize, svc: &ServiceConfig, out: &mut Out) {
    let at = |key: &str| format!("service[{i}].{key}");
    if let Some(port) = own_ip(scope, svc.vip) {
        out.push(
            at("vip"),
            format!(
                "{} is the address of port `{}`; a VIP needs an address of its own",
                svc.vip, port.name
            ),
        );
    }
    let flags = svc.sched_flags;
    for (on, name, sched) in [
        (flags.sh_port, "sh-port", SchedKind::Sh),
        (flags.sh_fallback, "sh-fallback", SchedKind::Sh),
        (flags.mh_port, "mh-port", SchedKind::Mh),
        (flags.mh_fallback, "mh-fallback", SchedKind::Mh),
    ] {
        if on && svc.scheduler != sched {
            out.push(
                at("scheduler_flags"),
                format!(
                    "`{name}` applies only to scheduler {sched}, not {}",
                    svc.scheduler
                ),
            );
        }
    }
    if !is_contiguous(svc.persistence_netmask) {
        out.push(
            at("persistence_netmask"),
            format!("{} is not a contiguous netmask", svc.persistence_netmask),
        );
    }
    if let Some(sorry) = svc.sorry_server {
        // The data plane reaches a sorry server by NAT, whatever the service's
        // forward: it need not hold the VIP.
        if sorry.is_ipv6() != svc.is_ipv6() {
            out.push(at("sorry_server"), family_mismatch(svc, sorry.ip(), false));
        } else if let Err(msg) = reachable_ip(scope, sorry.ip(), Forward::Nat) {
            out.push(at("sorry_server"), msg);
        }
    }
    check_persistence_family(i, svc, out);
    if let Some(hc) = &svc.health_check {
        if hc.kind == HealthCheckKind::Exec && hc.script.is_none() {
            out.push(at("health_check.script"), "kind \"exec\" needs a `script`");
        }
        if hc.tls_ca.is_some() && !hc.tls_verify {
            out.push(
                at("health_check.tls_ca"),
                "has no effect without tls_verify = true (set both, or neither)",
            );
        }
    }
    if svc.is_grouped() {
        check_grouped(i, svc, out);
    }
    if svc.ops && svc.protocol != Protocol::Udp {
        out.push(
            at("ops"),
            "one-packet scheduling is for UDP services (TCP needs its connection entry)",
        );
    }
    if svc.persistence_timeout == 0 && svc.persistence_netmask != Ipv4Addr::BROADCAST {
        out.push(
            at("persistence_netmask"),
            "has no effect without persistence_timeout (set both, or neither)",
        );
    }
    let v4_ports = scope.ports.iter().filter(|_| !svc.is_ipv6());
    for (p, vip) in v4_ports.filter_map(|&(_, p)| Some((p, svc.vip_v4()?))) {
        if p.prefix_len < 31 && p.contains(vip) {
            let host = !u32::from(p.netmask());
            let a = u32::from(vip);
            if a & host == host || a & host == 0 {
                out.push(
                    at("vip"),
                    format!(
                        "{} is the {} address of port `{}`'s subnet {}",
                        svc.vip,
                        if a & host == 0 {
                            "network"
                        } else {
                            "broadcast"
                        },
                        p.name,
                        p.subnet()
                    ),
                );
            }
        }
    }

    let mut seen: HashMap<(IpAddr, u16), usize> = HashMap::new();
    for (j, srv) in svc.servers.iter().enumerate() {
        let at = |key: &str| format!("service[{i}].server[{j}]{key}");
        let forward = srv.effective_forward(svc);
        let port = srv.effective_port(svc);
        match seen.get(&(srv.address, port)) {
            Some(first) => {
                let what = match forward {
                    Forward::Nat | Forward::Fnat => endpoint(srv.address, port),
                    Forward::Dr | Forward::Tun => srv.address.to_string(),
                };
                out.push(
                    at(""),
                    format!("{what} is already in this service (server[{first}])"),
                );
            }
            None => {
                seen.insert((srv.address, port), j);
            }
        }
        if srv.weight > MAX_WEIGHT {
            out.push(
                at(".weight"),
                format!("{} is outside 0..{MAX_WEIGHT}", srv.weight),
            );
        }
        if srv.upper_threshold > 0 && srv.lower_threshold > srv.upper_threshold {
            out.push(
                at(".lower_threshold"),
                format!(
                    "{} is above upper_threshold {}",
                    srv.lower_threshold, srv.upper_threshold
                ),
            );
        }
        let nat64 = svc.is_ipv6() && srv.address.is_ipv4() && forward == Forward::Fnat;
        if srv.address.is_ipv6() != svc.is_ipv6() && !nat64 {
            out.push(at(".address"), family_mismatch(svc, srv.address, true));
        } else if nat64 && svc.servers.iter().any(|s| s.address.is_ipv6()) {
            out.push(
                at(".address"),
                format!(
                    "{} is an IPv4 server (NAT64) but the service also has IPv6 servers: a NAT64 service's servers are all IPv4",
                    srv.address
                ),
            );
        } else if srv.address == svc.vip {
            out.push(
                at(".address"),
                format!("{} is the service's own VIP", srv.address),
            );
        } else if let Some(port) = own_ip(scope, srv.address) {
            out.push(
                at(".address"),
                format!(
                    "{} is the director's own address (port `{}`)",
                    srv.address, port.name
                ),
            );
        } else if let Err(msg) = reachable_ip(scope, srv.address, forward) {
            out.push(at(".address"), msg);
        }
    }
}

/// A server (or sorry server) of another family than the VIP: NAT, DR and
/// TUN keep the packet's family. NAT64 is a case of full-NAT: an IPv4
/// server of an IPv6 VIP with `forward = "fnat"` is accepted (the caller
/// checks), so a server's message says so for that one case.
fn family_mismatch(svc: &ServiceConfig, ip: IpAddr, server: bool) -> String {
    let fam = |v6: bool| if v6 { "IPv6" } else { "IPv4" };
    let hint = if server && svc.is_ipv6() && ip.is_ipv4() {
        " (an IPv4 server of an IPv6 VIP is NAT64: forward = \"fnat\")"
    } else {
        ""
    };
    format!(
        "{ip} is {} but the VIP {} is {}: a service's servers are in its VIP's family{hint}",
        fam(ip.is_ipv6()),
        svc.vip,
        fam(svc.is_ipv6())
    )
}

/// `persistence_netmask` is IPv4's, `persistence_prefix` IPv6's: each is
/// refused on a service of the other family, rather than ignored.
fn check_persistence_family(i: usize, svc: &ServiceConfig, out: &mut Out) {
    let at = |key: &str| format!("service[{i}].{key}");
    if svc.is_ipv6() {
        if svc.persistence_netmask != Ipv4Addr::BROADCAST {
            out.push(
                at("persistence_netmask"),
                format!(
                    "is for IPv4 services; the IPv6 VIP {} takes a prefix length: persistence_prefix = 64",
                    svc.vip
                ),
            );
        }
        if svc.persistence_prefix == 0 || svc.persistence_prefix > 128 {
            out.push(
                at("persistence_prefix"),
                format!("{} is outside 1..128", svc.persistence_prefix),
            );
        }
        if svc.persistence_timeout == 0 && svc.persistence_prefix != 128 {
            out.push(
                at("persistence_prefix"),
                "has no effect without persistence_timeout (set both, or neither)",
            );
        }
    } else if svc.persistence_prefix != 128 {
        out.push(
            at("persistence_prefix"),
            format!(
                "is for IPv6 services; the IPv4 VIP {} takes persistence_netmask (e.g. \"255.255.255.0\")",
                svc.vip
            ),
        );
    }
}

fn check_notify(n: &NotifyConfig, out: &mut Out) {
    if n.smtp.is_some() && n.to.is_empty() {
        out.push("notify.to", "`smtp` is set but `to` names no recipient");
    }
    if n.smtp.is_none() && !n.to.is_empty() {
        out.push(
            "notify.smtp",
            "`to` names recipients but no `smtp` relay is set",
        );
    }
}

/// `[control] metrics` must not be reachable by clients: the exception path
/// hands the kernel every frame for a port's own address, so a listener on
/// that address, or on all of them, answers the client side.
fn check_control(scope: &Scope, c: &ControlConfig, out: &mut Out) {
    let Some(addr) = c.metrics else { return };
    let tapped = || {
        scope
            .ports
            .iter()
            .map(|&(_, p)| p)
            .filter(|p| p.exception_path)
    };
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) => Some(ip),
        std::net::IpAddr::V6(ip) => ip.to_ipv4_mapped(),
    };
    let why = if addr.ip().is_unspecified() || ip.is_some_and(|ip| ip.is_unspecified()) {
        tapped().next().map(|p| {
            format!(
                "it listens on every address, port {}'s {} included",
                p.name, p.address
            )
        })
    } else {
        ip.and_then(|ip| tapped().find(|p| p.address == ip))
            .map(|p| format!("it is port {}'s address", p.name))
    };
    if let Some(why) = why {
        out.push(
            "control.metrics",
            format!(
                "{addr} would be reachable by clients through the exception path ({why}); \
                 bind 127.0.0.1 or a management address"
            ),
        );
    }
}

/// Not 0.0.0.0, loopback, multicast or broadcast (as the schema pass's
/// `parse_unicast`).
fn is_unicast(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast())
}

/// The port called `name`.
fn named_port<'a>(scope: &Scope<'a>, name: &str) -> Option<&'a PortConfig> {
    scope.ports.iter().map(|&(_, p)| p).find(|p| p.name == name)
}

/// "ports: client, servers".
fn port_names(scope: &Scope) -> String {
    let names: Vec<&str> = scope.ports.iter().map(|(_, p)| p.name.as_str()).collect();
    if names.is_empty() {
        "there is no port".to_string()
    } else {
        format!("ports: {}", names.join(", "))
    }
}

/// The port whose own address `ip` is.
fn own_address<'a>(scope: &Scope<'a>, ip: Ipv4Addr) -> Option<&'a PortConfig> {
    scope
        .ports
        .iter()
        .map(|&(_, p)| p)
        .find(|p| p.address == ip)
}

/// The port whose own address (of either family) `ip` is.
fn own_ip<'a>(scope: &Scope<'a>, ip: IpAddr) -> Option<&'a PortConfig> {
    match ip {
        IpAddr::V4(v4) => own_address(scope, v4),
        IpAddr::V6(v6) => scope
            .ports
            .iter()
            .map(|&(_, p)| p)
            .find(|p| p.ipv6.is_some_and(|x| x.address == v6)),
    }
}

/// The port whose attached subnet holds `ip`.
fn attached<'a>(scope: &Scope<'a>, ip: Ipv4Addr) -> Option<&'a PortConfig> {
    scope.ports.iter().map(|&(_, p)| p).find(|p| p.contains(ip))
}

/// Whether a server at `ip` can be reached with `forward`: DR rewrites only
/// the MAC, so the server must be on an attached subnet; NAT and TUN are
/// routed, so an attached subnet or some port's gateway will do.
fn reachable(scope: &Scope, ip: Ipv4Addr, forward: Forward) -> Result<(), String> {
    if !scope.all_ports || attached(scope, ip).is_some() {
        return Ok(());
    }
    let subnets = subnets(scope);
    match forward {
        Forward::Dr => Err(format!(
            "{ip} is not on a directly attached subnet ({subnets}), which dr needs"
        )),
        _ if scope.ports.iter().any(|(_, p)| p.gateway.is_some()) => Ok(()),
        _ => Err(format!(
            "{ip} is not reachable with {forward}: not on an attached subnet ({subnets}) and no port has a gateway"
        )),
    }
}

/// [`reachable`] for either family.
fn reachable_ip(scope: &Scope, ip: IpAddr, forward: Forward) -> Result<(), String> {
    match ip {
        IpAddr::V4(v4) => reachable(scope, v4, forward),
        IpAddr::V6(v6) => reachable6(scope, v6, forward),
    }
}

/// [`reachable`] over the ports' IPv6 subnets and gateways.
fn reachable6(scope: &Scope, ip: Ipv6Addr, forward: Forward) -> Result<(), String> {
    let v6 = || scope.ports.iter().filter_map(|&(_, p)| Some((p, p.ipv6?)));
    if !scope.all_ports || v6().any(|(_, a)| a.contains(ip)) {
        return Ok(());
    }
    let list: Vec<String> = v6()
        .map(|(p, a)| format!("{} {}", p.name, a.subnet()))
        .collect();
    let subnets = if list.is_empty() {
        "no port has an IPv6 address".to_string()
    } else {
        list.join(", ")
    };
    match forward {
        Forward::Dr => Err(format!(
            "{ip} is not on a directly attached IPv6 subnet ({subnets}), which dr needs"
        )),
        _ if v6().any(|(_, a)| a.gateway.is_some()) => Ok(()),
        _ => Err(format!(
            "{ip} is not reachable with {forward}: not on an attached IPv6 subnet ({subnets}) and no port has an IPv6 gateway"
        )),
    }
}

/// "client 198.18.0.0/24, servers 198.19.0.0/24".
fn subnets(scope: &Scope) -> String {
    let list: Vec<String> = scope
        .ports
        .iter()
        .map(|(_, p)| format!("{} {}", p.name, p.subnet()))
        .collect();
    if list.is_empty() {
        "no port".to_string()
    } else {
        list.join(", ")
    }
}

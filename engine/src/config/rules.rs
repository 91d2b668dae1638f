//! The rules pass: what relates two or more values. It runs on typed values,
//! so it serves both a file (after the schema pass, on the parts that passed
//! it) and a configuration changed in code ([`Config::validate`]).
//!
//! Errors carry key paths only; the file loader adds the lines.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::schema::is_contiguous;
use super::*;

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
    let mut seen = HashMap::new();
    for &(i, svc) in &scope.services {
        let key = (svc.protocol, svc.vip, svc.port);
        match seen.get(&key) {
            Some(first) => out.push(
                format!("service[{i}]"),
                format!("{} is already defined by service[{first}]", svc.key()),
            ),
            None => {
                seen.insert(key, i);
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

fn check_ports(scope: &Scope, out: &mut Out) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut addresses: HashMap<Ipv4Addr, usize> = HashMap::new();
    for &(i, port) in &scope.ports {
        match names.get(port.name.as_str()) {
            Some(first) => out.push(
                format!("port[{i}].name"),
                format!("port name `{}` is already used by port[{first}]", port.name),
            ),
            None => {
                names.insert(&port.name, i);
            }
        }
        match addresses.get(&port.address) {
            Some(first) => out.push(
                format!("port[{i}].address"),
                format!("{} is already the address of port[{first}]", port.address),
            ),
            None => {
                addresses.insert(port.address, i);
            }
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

fn check_service(scope: &Scope, i: usize, svc: &ServiceConfig, out: &mut Out) {
    let at = |key: &str| format!("service[{i}].{key}");
    if let Some(port) = own_address(scope, svc.vip) {
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
        if let Err(msg) = reachable(scope, *sorry.ip(), Forward::Nat) {
            out.push(at("sorry_server"), msg);
        }
    }
    if let Some(hc) = &svc.health_check {
        if hc.kind == HealthCheckKind::Exec && hc.script.is_none() {
            out.push(at("health_check.script"), "kind \"exec\" needs a `script`");
        }
    }

    let mut seen: HashMap<(Ipv4Addr, u16), usize> = HashMap::new();
    for (j, srv) in svc.servers.iter().enumerate() {
        let at = |key: &str| format!("service[{i}].server[{j}]{key}");
        let forward = srv.effective_forward(svc);
        let port = srv.effective_port(svc);
        match seen.get(&(srv.address, port)) {
            Some(first) => {
                let what = match forward {
                    Forward::Nat => format!("{}:{port}", srv.address),
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
        if srv.address == svc.vip {
            out.push(
                at(".address"),
                format!("{} is the service's own VIP", srv.address),
            );
        } else if let Some(port) = own_address(scope, srv.address) {
            out.push(
                at(".address"),
                format!(
                    "{} is the director's own address (port `{}`)",
                    srv.address, port.name
                ),
            );
        } else if let Err(msg) = reachable(scope, srv.address, forward) {
            out.push(at(".address"), msg);
        }
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

fn check_ha(scope: &Scope, ha: &HaConfig, out: &mut Out) {
    let Some(peer) = ha.peer else { return };
    if let Some(port) = own_address(scope, peer) {
        out.push(
            "ha.peer",
            format!(
                "{peer} is this director's own address (port `{}`)",
                port.name
            ),
        );
    } else if scope.all_ports && attached(scope, peer).is_none() {
        out.push(
            "ha.peer",
            format!(
                "{peer} is not on an attached subnet ({}); adverts go to the peer's link",
                subnets(scope)
            ),
        );
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

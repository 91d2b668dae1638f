//! Live changes (`rvs ctl add-/edit-/del-service`, `add-/edit-/del-server`,
//! `set-timeouts`) applied to a copy of the running [`Config`].
//!
//! Each change is parsed (every error names the field it is about), applied
//! to a clone, and the clone is run through [`Config::validate`] — the rules
//! pass of `rvs check` — so a change is refused exactly when a file holding
//! the result would be. Only then does the controller publish it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::ctl_proto::{Request, ServerArgs, ServiceArgs};
use crate::config::{
    endpoint, host_part, port_list, Config, Forward, Protocol, SchedFlags, ServerConfig,
    ServiceConfig,
};
use crate::sched::SchedKind;

/// The key of a service: protocol, VIP, port (or ports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceKey {
    pub protocol: Protocol,
    pub vip: IpAddr,
    /// The first of `ports` for a service over several.
    pub port: u16,
    /// All ports of a service over several (`80,443`); empty for one port.
    pub ports: Vec<u16>,
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.protocol,
            host_part(self.vip),
            port_list(self.vports())
        )
    }
}

impl ServiceKey {
    pub fn matches(&self, s: &ServiceConfig) -> bool {
        s.protocol == self.protocol && s.vip == self.vip && s.vports() == self.vports()
    }

    fn vports(&self) -> &[u16] {
        if self.ports.is_empty() {
            std::slice::from_ref(&self.port)
        } else {
            &self.ports
        }
    }
}

/// `PROTO:VIP:PORT`, e.g. `tcp:198.18.0.100:80` (port 0: all ports), or
/// `PROTO:VIP:PORT,PORT,...` for a service over several ports; an IPv6 VIP
/// in brackets: `tcp:[2001:db8::100]:80`.
pub fn parse_service(s: &str) -> Result<ServiceKey, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "service: `{s}` is not PROTO:VIP:PORT (e.g. tcp:198.18.0.100:80, tcp:198.18.0.100:80,443 or tcp:[2001:db8::100]:80)"
        )
    };
    let (proto, rest) = t.split_once(':').ok_or_else(bad)?;
    let (vip, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (vip, after) = v6.split_once(']').ok_or_else(bad)?;
            (vip, after.strip_prefix(':').ok_or_else(bad)?)
        }
        None => match rest.split_once(':') {
            // An IPv6 VIP needs brackets: its groups would read as ports.
            Some((_, p)) if p.contains(':') => {
                return Err(format!(
                    "service: write an IPv6 VIP in brackets: `{proto}:[ADDRESS]:PORT` (in `{s}`)"
                ))
            }
            Some(parts) => parts,
            None => return Err(bad()),
        },
    };
    let protocol = Protocol::from_name(&proto.to_ascii_lowercase()).ok_or_else(|| {
        format!(
            "service: unknown protocol `{proto}` in `{s}` (valid: {})",
            Protocol::valid_names()
        )
    })?;
    let vip = parse_unicast(vip).map_err(|m| format!("service: {m}"))?;
    let mut ports: Vec<u16> = Vec::new();
    for p in port.split(',') {
        let p = p.trim();
        let n = p
            .parse::<u16>()
            .map_err(|_| format!("service: `{p}` in `{s}` is not a port (0..65535)"))?;
        if ports.contains(&n) {
            return Err(format!("service: port {n} is listed twice in `{s}`"));
        }
        ports.push(n);
    }
    if ports.len() > 1 && ports.contains(&0) {
        return Err(format!(
            "service: port 0 (all ports) cannot be one of several in `{s}`"
        ));
    }
    let port = ports[0];
    if ports.len() == 1 {
        ports.clear();
    }
    Ok(ServiceKey {
        protocol,
        vip,
        port,
        ports,
    })
}

/// `IP:PORT` (port 1..65535), or `IP` alone (port `None`); IPv6 as
/// `[ADDRESS]:PORT`, `[ADDRESS]` or a bare `ADDRESS`.
pub fn parse_server(s: &str) -> Result<(IpAddr, Option<u16>), String> {
    let t = s.trim();
    let (ip, port) = if let Some(v6) = t.strip_prefix('[') {
        match v6.split_once(']') {
            Some((ip, "")) => (ip, None),
            Some((ip, p)) => match p.strip_prefix(':') {
                Some(p) => (ip, Some(p)),
                None => return Err(format!("server: `{s}` is not [IPV6]:PORT")),
            },
            None => return Err(format!("server: `{s}` is not [IPV6]:PORT")),
        }
    } else if t.matches(':').count() > 1 {
        // A bare IPv6 address: no port (that needs the brackets).
        (t, None)
    } else {
        match t.rsplit_once(':') {
            Some((ip, port)) => (ip, Some(port)),
            None => (t, None),
        }
    };
    let ip = parse_unicast(ip).map_err(|m| format!("server: {m}"))?;
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u32>() {
            Ok(n @ 1..=65535) => Some(n as u16),
            _ => return Err(format!("server: `{p}` in `{s}` is not a port (1..65535)")),
        },
    };
    Ok((ip, port))
}

/// An address a packet can be sent to (the configuration file's rule).
fn parse_unicast(s: &str) -> Result<IpAddr, String> {
    crate::config::parse_unicast_ip(s)
}

fn parse_forward(s: &str) -> Result<Forward, String> {
    Forward::from_name(s).ok_or_else(|| {
        format!(
            "forward: unknown forward method `{s}` (valid: {})",
            Forward::valid_names()
        )
    })
}

fn parse_scheduler(s: &str) -> Result<SchedKind, String> {
    SchedKind::from_name(s).ok_or_else(|| {
        format!(
            "scheduler: unknown scheduler `{s}` (valid: {})",
            SchedKind::valid_names()
        )
    })
}

/// The index of service `key` in `cfg`; the error names it and the
/// services there are (also for `list --service`, `zero --service`).
pub fn find_service(cfg: &Config, key: &ServiceKey) -> Result<usize, String> {
    cfg.services
        .iter()
        .position(|s| key.matches(s))
        .ok_or_else(|| {
            let have: Vec<String> = cfg.services.iter().map(|s| s.key()).collect();
            format!(
                "service: no service {key} (the services are: {})",
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            )
        })
}

/// The server of `svc` at `ip` (and `port`, when given: its configured or
/// its effective port).
fn find_server(
    svc: &ServiceConfig,
    key: &ServiceKey,
    ip: IpAddr,
    port: Option<u16>,
    text: &str,
) -> Result<usize, String> {
    // One identity rule (`ServerConfig::ident`): address and the port
    // packets go to. Only when no server has that identity does a DR/TUN
    // server's own configured port (which it ignores) name it.
    let select = |exact: bool| -> Vec<usize> {
        svc.servers
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.address == ip
                    && port.is_none_or(|p| {
                        if exact {
                            s.effective_port(svc) == p
                        } else {
                            s.port == p
                        }
                    })
            })
            .map(|(i, _)| i)
            .collect()
    };
    let mut hits = select(true);
    if hits.is_empty() {
        hits = select(false);
    }
    match hits.as_slice() {
        [i] => Ok(*i),
        [] => {
            let have: Vec<String> = svc.servers.iter().map(|s| s.ident(svc)).collect();
            Err(format!(
                "server: {key} has no server {text} (its servers are: {})",
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ))
        }
        _ => Err(format!(
            "server: {key} has several servers at {ip}; give IP:PORT"
        )),
    }
}

fn apply_service_args(s: &mut ServiceConfig, a: &ServiceArgs) -> Result<(), String> {
    if let Some(name) = &a.scheduler {
        s.scheduler = parse_scheduler(name)?;
    }
    if let Some(flags) = &a.flags {
        let mut f = SchedFlags::default();
        for n in flags {
            if !f.set(n) {
                return Err(format!(
                    "flags: unknown scheduler flag `{n}` (valid: {})",
                    SchedFlags::NAMES.join(", ")
                ));
            }
        }
        s.sched_flags = f;
    }
    if let Some(fw) = &a.forward {
        s.forward = parse_forward(fw)?;
    }
    if let Some(p) = a.persistence {
        s.persistence_timeout = p;
    }
    if let Some(o) = a.ops {
        s.ops = o;
    }
    if let Some(m) = &a.persistence_netmask {
        s.persistence_netmask = m
            .trim()
            .parse()
            .map_err(|_| format!("persistence_netmask: `{m}` is not a netmask"))?;
    }
    if let Some(p) = a.persistence_prefix {
        s.persistence_prefix = p;
    }
    if let Some(sorry) = &a.sorry_server {
        s.sorry_server = if sorry.trim().is_empty() {
            None
        } else {
            match parse_server(sorry) {
                Ok((ip, Some(port))) => Some(SocketAddr::new(ip, port)),
                Ok((_, None)) => {
                    return Err(format!("sorry_server: `{sorry}` is not IP:PORT"));
                }
                Err(m) => return Err(format!("sorry_{m}")),
            }
        };
    }
    if let Some(q) = a.quorum {
        s.quorum = q;
    }
    Ok(())
}

fn apply_server_args(s: &mut ServerConfig, a: &ServerArgs) -> Result<(), String> {
    if let Some(w) = a.weight {
        s.weight = w;
    }
    if let Some(fw) = &a.forward {
        s.forward = Some(parse_forward(fw)?);
    }
    if let Some(u) = a.upper_threshold {
        s.upper_threshold = u;
    }
    if let Some(l) = a.lower_threshold {
        s.lower_threshold = l;
    }
    Ok(())
}

/// `set-timeouts` (`ipvsadm --set tcp tcpfin udp`): each given non-zero
/// value replaces `[timeouts] tcp_established`, `tcp_fin`, `udp`; 0 or
/// absent leaves it, as ipvsadm does. The workers take the new values with
/// the snapshot: new connections at once, existing ones at their next
/// packet (IPVS re-arms a connection's timer on each packet, from the
/// timeout table of that moment).
fn set_timeouts(
    cfg: &mut Config,
    tcp: Option<u32>,
    tcpfin: Option<u32>,
    udp: Option<u32>,
) -> Result<String, String> {
    let set = |v: Option<u32>, slot: &mut u32| match v {
        Some(n) if n > 0 => {
            *slot = n;
            true
        }
        _ => false,
    };
    let t = &mut cfg.timeouts;
    let changed = [
        set(tcp, &mut t.tcp_established),
        set(tcpfin, &mut t.tcp_fin),
        set(udp, &mut t.udp),
    ];
    if !changed.contains(&true) {
        return Err(
            "set-timeouts: nothing to change (give --tcp, --tcpfin or --udp in seconds; 0 leaves a timeout unchanged)"
                .to_string(),
        );
    }
    Ok(format!(
        "set timeouts (tcp tcpfin udp): {} {} {}",
        t.tcp_established, t.tcp_fin, t.udp
    ))
}

/// Applies a change request to a copy of `cfg` and validates the result as
/// `rvs check` would. Returns the new configuration and what was done.
pub fn apply(cfg: &Config, req: &Request) -> Result<(Config, String), String> {
    let mut new = cfg.clone();
    let msg = match req {
        Request::AddService(a) => {
            let key = parse_service(&a.service)?;
            if new.services.iter().any(|s| key.matches(s)) {
                return Err(format!("service: {key} already exists"));
            }
            let mut s = ServiceConfig {
                vip: key.vip,
                port: key.port,
                ports: key.ports.clone(),
                protocol: key.protocol,
                scheduler: SchedKind::Wlc,
                sched_flags: SchedFlags::default(),
                forward: Forward::Nat,
                persistence_timeout: 0,
                persistence_netmask: Ipv4Addr::BROADCAST,
                persistence_prefix: 128,
                sorry_server: None,
                quorum: 1,
                ops: false,
                servers: Vec::new(),
                health_check: None,
            };
            apply_service_args(&mut s, a)?;
            new.services.push(s);
            format!("added service {key}")
        }
        Request::EditService(a) => {
            let key = parse_service(&a.service)?;
            let i = find_service(&new, &key)?;
            let unchanged = ServiceArgs {
                service: a.service.clone(),
                ..ServiceArgs::default()
            };
            if *a == unchanged {
                return Err("edit-service: nothing to change (give --scheduler, --forward, --persistence, ...)".to_string());
            }
            apply_service_args(&mut new.services[i], a)?;
            format!("changed service {key}")
        }
        Request::DelService { service } => {
            let key = parse_service(service)?;
            let i = find_service(&new, &key)?;
            new.services.remove(i);
            format!("deleted service {key}")
        }
        Request::AddServer(a) => {
            let key = parse_service(&a.service)?;
            let i = find_service(&new, &key)?;
            let (ip, port) = parse_server(&a.server)?;
            let svc = &new.services[i];
            let mut s = ServerConfig {
                address: ip,
                // A grouped service's NAT servers have no port of their own.
                port: port.unwrap_or(if svc.is_grouped() { 0 } else { svc.port }),
                weight: 1,
                forward: None,
                upper_threshold: 0,
                lower_threshold: 0,
                notify_up: None,
                notify_down: None,
            };
            apply_server_args(&mut s, a)?;
            let port = s.effective_port(svc);
            if svc
                .servers
                .iter()
                .any(|o| o.address == ip && o.effective_port(svc) == port)
            {
                let ep = endpoint(ip, port);
                return Err(format!("server: {ep} is already a server of {key}"));
            }
            new.services[i].servers.push(s);
            format!("added server {} to {key}", endpoint(ip, port))
        }
        Request::EditServer(a) => {
            let key = parse_service(&a.service)?;
            let i = find_service(&new, &key)?;
            let (ip, port) = parse_server(&a.server)?;
            let j = find_server(&new.services[i], &key, ip, port, &a.server)?;
            if a.weight.is_none()
                && a.forward.is_none()
                && a.upper_threshold.is_none()
                && a.lower_threshold.is_none()
            {
                return Err("edit-server: nothing to change (give --weight, --forward, --upper-threshold or --lower-threshold)".to_string());
            }
            apply_server_args(&mut new.services[i].servers[j], a)?;
            let s = &new.services[i].servers[j];
            format!(
                "changed server {} of {key} (weight {})",
                s.ident(&new.services[i]),
                s.weight
            )
        }
        Request::DelServer { service, server } => {
            let key = parse_service(service)?;
            let i = find_service(&new, &key)?;
            let (ip, port) = parse_server(server)?;
            let j = find_server(&new.services[i], &key, ip, port, server)?;
            let ident = new.services[i].servers[j].ident(&new.services[i]);
            new.services[i].servers.remove(j);
            format!("deleted server {ident} from {key}")
        }
        Request::SetTimeouts { tcp, tcpfin, udp } => set_timeouts(&mut new, *tcp, *tcpfin, *udp)?,
        Request::List { .. }
        | Request::Conns { .. }
        | Request::Status {}
        | Request::Zero { .. }
        | Request::Save { .. }
        | Request::BgpWithdraw { .. }
        | Request::BgpAnnounce { .. } => return Err("not a configuration change".to_string()),
    };
    let errors = new.validate();
    if !errors.is_empty() {
        let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        return Err(format!("refused: {}", list.join("; ")));
    }
    Ok((new, msg))
}

#[cfg(test)]
mod tests;

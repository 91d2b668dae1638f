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
mod tests {
    use super::*;
    use crate::config;

    const CFG: &str = concat!(
        crate::control::two_port_director!(),
        r#"
[[service]]
vip = "198.18.0.100"
port = 80
scheduler = "wrr"
  [[service.server]]
  address = "198.19.0.11"
  port = 8080
  weight = 3
  [[service.server]]
  address = "198.19.0.12"
  port = 8080
  weight = 2
[[service]]
vip = "198.18.0.100"
port = 53
protocol = "udp"
scheduler = "rr"
  [[service.server]]
  address = "198.19.0.11"
  port = 5353
"#
    );

    fn cfg() -> Config {
        config::parse(CFG).unwrap()
    }

    fn server(service: &str, server: &str) -> ServerArgs {
        ServerArgs {
            service: service.into(),
            server: server.into(),
            ..ServerArgs::default()
        }
    }

    #[test]
    fn service_keys_parse() {
        let k = parse_service("tcp:198.18.0.100:80").unwrap();
        assert_eq!(k.to_string(), "tcp:198.18.0.100:80");
        assert_eq!(
            parse_service("UDP:198.18.0.100:0").unwrap().protocol,
            Protocol::Udp
        );
        for (bad, want) in [
            ("198.18.0.100:80", "is not PROTO:VIP:PORT"),
            ("tcp", "is not PROTO:VIP:PORT"),
            ("sctp:198.18.0.100:80", "unknown protocol `sctp`"),
            ("tcp:198.18.0:80", "`198.18.0` is not an IPv4 address"),
            ("tcp:0.0.0.0:80", "0.0.0.0 is not a unicast address"),
            (
                "tcp:198.18.0.100:65536",
                "`65536` in `tcp:198.18.0.100:65536` is not a port",
            ),
            ("tcp:198.18.0.100:http", "`http` in"),
        ] {
            let e = parse_service(bad).unwrap_err();
            assert!(e.starts_with("service: ") && e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn server_addresses_parse() {
        assert_eq!(
            parse_server("198.19.0.14:8080").unwrap(),
            ("198.19.0.14".parse().unwrap(), Some(8080))
        );
        assert_eq!(
            parse_server("198.19.0.14").unwrap(),
            ("198.19.0.14".parse().unwrap(), None)
        );
        for (bad, want) in [
            ("198.19.0.14:0", "is not a port (1..65535)"),
            ("198.19.0.14:70000", "is not a port"),
            ("198.19.0:80", "is not an IPv4 address"),
            ("not-an-address", "is not an IPv4 address"),
            ("255.255.255.255:80", "not a unicast address"),
        ] {
            let e = parse_server(bad).unwrap_err();
            assert!(e.starts_with("server: ") && e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn add_edit_del_server() {
        let c = cfg();
        let mut a = server("tcp:198.18.0.100:80", "198.19.0.14:8080");
        a.weight = Some(2);
        let (c2, msg) = apply(&c, &Request::AddServer(a)).unwrap();
        assert_eq!(msg, "added server 198.19.0.14:8080 to tcp:198.18.0.100:80");
        let s = &c2.services[0].servers[2];
        assert_eq!(
            (s.address.to_string(), s.port, s.weight),
            ("198.19.0.14".into(), 8080, 2)
        );
        // the original is untouched
        assert_eq!(c.services[0].servers.len(), 2);

        let mut e = server("tcp:198.18.0.100:80", "198.19.0.11:8080");
        e.weight = Some(0);
        let (c3, _) = apply(&c2, &Request::EditServer(e)).unwrap();
        assert_eq!(c3.services[0].servers[0].weight, 0);
        assert_eq!(c3.services[0].servers[1].weight, 2);

        // by address alone when it is unique
        let mut e = server("tcp:198.18.0.100:80", "198.19.0.12");
        e.weight = Some(7);
        let (c4, _) = apply(&c3, &Request::EditServer(e)).unwrap();
        assert_eq!(c4.services[0].servers[1].weight, 7);

        let (c5, msg) = apply(
            &c4,
            &Request::DelServer {
                service: "tcp:198.18.0.100:80".into(),
                server: "198.19.0.11:8080".into(),
            },
        )
        .unwrap();
        assert_eq!(
            msg,
            "deleted server 198.19.0.11:8080 from tcp:198.18.0.100:80"
        );
        let left: Vec<String> = c5.services[0]
            .servers
            .iter()
            .map(|s| s.address.to_string())
            .collect();
        assert_eq!(left, ["198.19.0.12", "198.19.0.14"]);
        assert!(c5.validate().is_empty());
    }

    /// One identity rule (issue 14 item 3): a NAT server at IP:8080 and a
    /// DR server at the same IP configured with port 8080 (which DR
    /// ignores: it keeps the VIP port 80) are `IP:8080` and `IP:80`, in
    /// replies and lookups alike.
    #[test]
    fn nat_and_dr_server_at_one_address_have_distinct_identities() {
        let c = cfg();
        let mut dr = server("tcp:198.18.0.100:80", "198.19.0.12:8080");
        dr.forward = Some("dr".into());
        dr.weight = Some(3);
        // 198.19.0.12:8080 (NAT) exists; DR at .12 is .12:80, which does not
        let (c2, msg) = apply(&c, &Request::AddServer(dr.clone())).unwrap();
        assert_eq!(msg, "added server 198.19.0.12:80 to tcp:198.18.0.100:80");
        let e = apply(&c2, &Request::AddServer(dr)).unwrap_err();
        assert_eq!(
            e,
            "server: 198.19.0.12:80 is already a server of tcp:198.18.0.100:80"
        );
        let svc = &c2.services[0];
        let idents: Vec<String> = svc.servers.iter().map(|s| s.ident(svc)).collect();
        assert_eq!(
            idents,
            ["198.19.0.11:8080", "198.19.0.12:8080", "198.19.0.12:80"]
        );

        // IP:8080 names the NAT server, IP:80 the DR one
        let mut e = server("tcp:198.18.0.100:80", "198.19.0.12:8080");
        e.weight = Some(5);
        let (c3, msg) = apply(&c2, &Request::EditServer(e)).unwrap();
        assert_eq!(
            msg,
            "changed server 198.19.0.12:8080 of tcp:198.18.0.100:80 (weight 5)"
        );
        assert_eq!(c3.services[0].servers[1].weight, 5);
        assert_eq!(c3.services[0].servers[2].weight, 3);
        let (c4, msg) = apply(
            &c3,
            &Request::DelServer {
                service: "tcp:198.18.0.100:80".into(),
                server: "198.19.0.12:80".into(),
            },
        )
        .unwrap();
        assert_eq!(
            msg,
            "deleted server 198.19.0.12:80 from tcp:198.18.0.100:80"
        );
        assert_eq!(c4.services[0].servers.len(), 2);
        assert_eq!(c4.services[0].servers[1].forward, None);

        // the address alone is ambiguous, and the message lists identities
        let mut e = server("tcp:198.18.0.100:80", "198.19.0.12");
        e.weight = Some(1);
        let err = apply(&c2, &Request::EditServer(e)).unwrap_err();
        assert!(err.contains("several servers at 198.19.0.12"), "{err}");
    }

    #[test]
    fn add_edit_del_service() {
        let c = cfg();
        let a = ServiceArgs {
            service: "tcp:198.18.0.100:8080".into(),
            scheduler: Some("rr".into()),
            persistence: Some(30),
            ..ServiceArgs::default()
        };
        let (c2, msg) = apply(&c, &Request::AddService(a)).unwrap();
        assert_eq!(msg, "added service tcp:198.18.0.100:8080");
        let s = &c2.services[2];
        assert_eq!(s.scheduler, SchedKind::Rr);
        assert_eq!(s.persistence_timeout, 30);
        assert_eq!(s.forward, Forward::Nat);
        assert!(s.servers.is_empty());

        // defaults as a file gets them: wlc, nat
        let (c3, _) = apply(
            &c2,
            &Request::AddService(ServiceArgs {
                service: "udp:198.18.0.101:0".into(),
                ..ServiceArgs::default()
            }),
        )
        .unwrap();
        assert_eq!(c3.services[3].scheduler, SchedKind::Wlc);

        let (c4, _) = apply(
            &c3,
            &Request::EditService(ServiceArgs {
                service: "tcp:198.18.0.100:8080".into(),
                scheduler: Some("sh".into()),
                flags: Some(vec!["sh-port".into()]),
                ..ServiceArgs::default()
            }),
        )
        .unwrap();
        assert_eq!(c4.services[2].scheduler, SchedKind::Sh);
        assert!(c4.services[2].sched_flags.sh_port);

        let (c5, _) = apply(
            &c4,
            &Request::DelService {
                service: "tcp:198.18.0.100:80".into(),
            },
        )
        .unwrap();
        assert_eq!(c5.services.len(), 3);
        assert!(c5.services.iter().all(|s| s.port != 80));
    }

    #[test]
    fn a_service_over_several_ports_by_its_name() {
        let k = parse_service("tcp:198.18.0.100:8080,8443").unwrap();
        assert_eq!((k.port, k.ports.as_slice()), (8080, &[8080, 8443][..]));
        assert_eq!(k.to_string(), "tcp:198.18.0.100:8080,8443");
        for (bad, want) in [
            ("tcp:198.18.0.100:80,80", "port 80 is listed twice"),
            (
                "tcp:198.18.0.100:0,80",
                "port 0 (all ports) cannot be one of several",
            ),
            (
                "tcp:198.18.0.100:80,",
                "`` in `tcp:198.18.0.100:80,` is not a port",
            ),
        ] {
            let e = parse_service(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
        let add = |c: &Config, svc: &str| {
            apply(
                c,
                &Request::AddService(ServiceArgs {
                    service: svc.into(),
                    ..ServiceArgs::default()
                }),
            )
        };
        let c = cfg();
        let (c, msg) = add(&c, "tcp:198.18.0.100:8080,8443").unwrap();
        assert_eq!(msg, "added service tcp:198.18.0.100:8080,8443");
        assert_eq!(c.services[2].ports, [8080, 8443]);
        // One of its ports taken by the existing :80 service.
        let e = add(&c, "tcp:198.18.0.100:443,80").unwrap_err();
        assert!(e.contains("tcp:198.18.0.100:80 is already defined"), "{e}");
        // Its NAT servers keep the client's port: none given is 0, one
        // given is refused.
        let (c, _) = apply(
            &c,
            &Request::AddServer(server("tcp:198.18.0.100:8080,8443", "198.19.0.14")),
        )
        .unwrap();
        assert_eq!(c.services[2].servers[0].port, 0);
        let e = apply(
            &c,
            &Request::AddServer(server("tcp:198.18.0.100:8080,8443", "198.19.0.15:8080")),
        )
        .unwrap_err();
        assert!(e.contains("keeps the client's destination port"), "{e}");
        // Only the whole name finds it.
        let e = apply(
            &c,
            &Request::DelService {
                service: "tcp:198.18.0.100:8080".into(),
            },
        )
        .unwrap_err();
        assert!(e.contains("8080,8443"), "lists the services there are: {e}");
    }

    /// Every refusal names what it is about; the running config is untouched.
    #[test]
    fn bad_changes_are_refused_with_the_field() {
        let c = cfg();
        let mut w = server("tcp:198.18.0.100:80", "198.19.0.11:8080");
        w.weight = Some(70000);
        let mut thr = server("tcp:198.18.0.100:80", "198.19.0.11:8080");
        thr.upper_threshold = Some(10);
        thr.lower_threshold = Some(20);
        let mut fw = server("tcp:198.18.0.100:80", "198.19.0.11:8080");
        fw.forward = Some("masq".into());
        let mut dr = server("tcp:198.18.0.100:80", "198.20.0.5:8080");
        dr.forward = Some("dr".into());
        let cases: Vec<(Request, &str)> = vec![
            (
                Request::AddServer(server("tcp:198.18.0.100:81", "198.19.0.14:8080")),
                "service: no service tcp:198.18.0.100:81 (the services are: tcp:198.18.0.100:80, udp:198.18.0.100:53)",
            ),
            (
                Request::AddServer(server("tcp:198.18.0.100:80", "198.19.0.11:8080")),
                "server: 198.19.0.11:8080 is already a server of tcp:198.18.0.100:80",
            ),
            (
                Request::AddServer(server("tcp:198.18.0.100:80", "198.19.0.300:8080")),
                "server: `198.19.0.300` is not an IPv4 address",
            ),
            (
                Request::AddServer(server("tcp:198.18.0.100:80", "198.18.0.2:8080")),
                "refused: service[0].server[2].address: 198.18.0.2 is the director's own address (port `client`)",
            ),
            (
                Request::AddServer(dr),
                "refused: service[0].server[2].address: 198.20.0.5 is not on a directly attached subnet",
            ),
            (
                Request::EditServer(w),
                "refused: service[0].server[0].weight: 70000 is outside 0..65535",
            ),
            (
                Request::EditServer(thr),
                "refused: service[0].server[0].lower_threshold: 20 is above upper_threshold 10",
            ),
            (Request::EditServer(fw), "forward: unknown forward method `masq`"),
            (
                Request::EditServer(server("tcp:198.18.0.100:80", "198.19.0.11:8080")),
                "edit-server: nothing to change",
            ),
            (
                Request::DelServer {
                    service: "tcp:198.18.0.100:80".into(),
                    server: "198.19.0.13:8080".into(),
                },
                "server: tcp:198.18.0.100:80 has no server 198.19.0.13:8080 (its servers are: 198.19.0.11:8080, 198.19.0.12:8080)",
            ),
            (
                Request::AddService(ServiceArgs {
                    service: "tcp:198.18.0.100:80".into(),
                    ..ServiceArgs::default()
                }),
                "service: tcp:198.18.0.100:80 already exists",
            ),
            (
                Request::AddService(ServiceArgs {
                    service: "tcp:198.18.0.2:80".into(),
                    ..ServiceArgs::default()
                }),
                "refused: service[2].vip: 198.18.0.2 is the address of port `client`",
            ),
            (
                Request::AddService(ServiceArgs {
                    service: "tcp:198.18.0.100:8080".into(),
                    scheduler: Some("fastest".into()),
                    ..ServiceArgs::default()
                }),
                "scheduler: unknown scheduler `fastest` (valid: rr, wrr,",
            ),
            (
                Request::AddService(ServiceArgs {
                    service: "tcp:198.18.0.100:8080".into(),
                    scheduler: Some("rr".into()),
                    flags: Some(vec!["sh-port".into()]),
                    ..ServiceArgs::default()
                }),
                "refused: service[2].scheduler_flags: `sh-port` applies only to scheduler sh, not rr",
            ),
            (
                Request::EditService(ServiceArgs {
                    service: "tcp:198.18.0.100:80".into(),
                    persistence_netmask: Some("255.0.255.0".into()),
                    ..ServiceArgs::default()
                }),
                "refused: service[0].persistence_netmask: 255.0.255.0 is not a contiguous netmask",
            ),
            (
                Request::EditService(ServiceArgs {
                    service: "tcp:198.18.0.100:80".into(),
                    ..ServiceArgs::default()
                }),
                "edit-service: nothing to change",
            ),
            (
                Request::DelService {
                    service: "udp:198.18.0.100:80".into(),
                },
                "service: no service udp:198.18.0.100:80",
            ),
            (Request::List { service: None }, "not a configuration change"),
            (
                Request::SetTimeouts {
                    tcp: Some(0),
                    tcpfin: None,
                    udp: Some(0),
                },
                "set-timeouts: nothing to change",
            ),
        ];
        for (req, want) in cases {
            let e = apply(&c, &req).unwrap_err();
            assert!(e.starts_with(want), "{req:?}:\n got  {e}\n want {want}");
        }
    }

    /// `ipvsadm --set 0 60 2`: 0 and absent leave a timeout as it was.
    #[test]
    fn set_timeouts_changes_only_what_is_given() {
        let c = cfg();
        let (next, msg) = apply(
            &c,
            &Request::SetTimeouts {
                tcp: Some(0),
                tcpfin: Some(60),
                udp: Some(2),
            },
        )
        .unwrap();
        assert_eq!(msg, "set timeouts (tcp tcpfin udp): 900 60 2");
        let t = &next.timeouts;
        assert_eq!((t.tcp_established, t.tcp_fin, t.udp), (900, 60, 2));
        // the rest of [timeouts] and the services are untouched
        assert_eq!(t.tcp_time_wait, c.timeouts.tcp_time_wait);
        assert_eq!(next.services, c.services);
        let (next, msg) = apply(
            &next,
            &Request::SetTimeouts {
                tcp: Some(3600),
                tcpfin: None,
                udp: None,
            },
        )
        .unwrap();
        assert_eq!(msg, "set timeouts (tcp tcpfin udp): 3600 60 2");
        assert_eq!(next.timeouts.tcp_established, 3600);
    }
}

//! `[[service]]` and its `[[service.server]]`s and `health_check`: the
//! typed structs and what they derive (identities, effective ports,
//! scheduler flags).

use super::*;

/// `scheduler_flags`: ipvsadm's `-b` flags for sh and mh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags {
    /// "sh-port": hash the source port too.
    pub sh_port: bool,
    /// "sh-fallback": walk to the next usable bucket.
    pub sh_fallback: bool,
    /// "mh-port".
    pub mh_port: bool,
    /// "mh-fallback".
    pub mh_fallback: bool,
}

impl SchedFlags {
    /// Every flag name, in the order error messages list them.
    pub const NAMES: [&'static str; 4] = ["sh-port", "sh-fallback", "mh-port", "mh-fallback"];

    /// Sets the flag called `name`; false if there is no such flag.
    pub fn set(&mut self, name: &str) -> bool {
        match name {
            "sh-port" => self.sh_port = true,
            "sh-fallback" => self.sh_fallback = true,
            "mh-port" => self.mh_port = true,
            "mh-fallback" => self.mh_fallback = true,
            _ => return false,
        }
        true
    }

    /// The names of the flags that are set.
    pub fn names(&self) -> Vec<&'static str> {
        let set = [
            self.sh_port,
            self.sh_fallback,
            self.mh_port,
            self.mh_fallback,
        ];
        Self::NAMES
            .into_iter()
            .zip(set)
            .filter_map(|(n, on)| on.then_some(n))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        *self == SchedFlags::default()
    }
}

/// `[[service]]`: one virtual service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// IPv4 or IPv6; all of its servers are of the same family (SPEC §5).
    pub vip: IpAddr,
    /// 0 = all ports. The first of `ports` for a service over several.
    pub port: u16,
    /// `ports = [80, 443]`: the ports of a service over several (IPVS's
    /// fwmark service), which share one server list, scheduler and
    /// persistence table so a client's HTTP and HTTPS meet on one server.
    /// Empty for a one-port service (then `port` is its port).
    pub ports: Vec<u16>,
    /// Default tcp.
    pub protocol: Protocol,
    /// Default wlc (ipvsadm's).
    pub scheduler: SchedKind,
    /// Default none.
    pub sched_flags: SchedFlags,
    /// The default for its servers. Default nat.
    pub forward: Forward,
    /// Seconds; 0 = off (the default).
    pub persistence_timeout: u32,
    /// Contiguous; default 255.255.255.255. IPv4 services only.
    pub persistence_netmask: Ipv4Addr,
    /// `persistence_prefix`: what `persistence_netmask` is for an IPv6
    /// service, as a prefix length (1..=128, default 128; 64 puts a whole
    /// /64 on one server). IPv6 services only.
    pub persistence_prefix: u8,
    /// Used while no server is up; reached by NAT whatever `forward` is.
    /// In the VIP's family.
    pub sorry_server: Option<SocketAddr>,
    /// Sum of live weights needed for the service to be up (keepalived).
    /// Default 1.
    pub quorum: u32,
    /// One-packet scheduling (ipvsadm `--ops`, UDP only): every datagram
    /// is scheduled on its own and no connection entry is made. Default
    /// false.
    pub ops: bool,
    /// In configuration order.
    pub servers: Vec<ServerConfig>,
    /// `None` when the section is absent.
    pub health_check: Option<HealthCheck>,
}

impl ServiceConfig {
    /// "tcp:198.18.0.100:80" (or "tcp:198.18.0.100:80,443" for a service
    /// over several ports), as `rvs ctl --service` writes it.
    /// An IPv6 service writes its VIP in brackets: "tcp:[2001:db8::100]:80".
    pub fn key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.protocol,
            host_part(self.vip),
            self.port_list()
        )
    }

    /// The VIP of an IPv4 service: the IPv4 data path, VRRP and sync only
    /// deal with these.
    pub fn vip_v4(&self) -> Option<Ipv4Addr> {
        match self.vip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        }
    }

    /// Whether the VIP is IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.vip.is_ipv6()
    }

    /// Whether the data plane forwards this IPv6 service (issue 13): NAT,
    /// DR and TUN to IPv6 servers, with persistence, one-packet scheduling
    /// and an (IPv6, NAT) sorry server as IPv4's.
    pub fn forwards_ipv6(&self) -> bool {
        self.is_ipv6()
            && !self.servers.is_empty()
            && self.servers.iter().all(|s| {
                s.address.is_ipv6()
                    && matches!(
                        s.effective_forward(self),
                        Forward::Nat | Forward::Dr | Forward::Tun
                    )
            })
    }

    /// Whether the data plane forwards this service as NAT64 (issue 13):
    /// an IPv6 VIP whose servers are all IPv4 and reached by full-NAT
    /// (`forward = "fnat"`), one connection per flow (no persistence,
    /// one-packet scheduling or sorry server).
    pub fn forwards_nat64(&self) -> bool {
        self.is_ipv6()
            && !self.ops
            && self.sorry_server.is_none()
            && !self.servers.is_empty()
            && self
                .servers
                .iter()
                .all(|s| s.address.is_ipv4() && s.effective_forward(self) == Forward::Fnat)
    }

    /// Every VIP port this service answers on: `ports`, else `port`.
    pub fn vports(&self) -> &[u16] {
        if self.ports.is_empty() {
            std::slice::from_ref(&self.port)
        } else {
            &self.ports
        }
    }

    /// Whether this service spans several ports (`ports = [...]`).
    pub fn is_grouped(&self) -> bool {
        self.ports.len() > 1
    }

    /// "80" or "80,443": the port part of the service's name.
    pub fn port_list(&self) -> String {
        port_list(self.vports())
    }
}

/// "80,443": ports joined as a service's name writes them.
pub fn port_list(ports: &[u16]) -> String {
    let v: Vec<String> = ports.iter().map(u16::to_string).collect();
    v.join(",")
}

/// `[[service.server]]`: one real server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// In the service's family.
    pub address: IpAddr,
    /// 1..=65535 when given; when left out, the service's port (0 for an
    /// all-ports service: keep the packet's port). DR and TUN ignore it.
    pub port: u16,
    /// 0..=65535; default 1. 0 = no new connections.
    pub weight: u32,
    /// Overrides the service's `forward`.
    pub forward: Option<Forward>,
    /// Max active + inactive connections; 0 = none.
    pub upper_threshold: u32,
    /// 0 = 3/4 of `upper_threshold`.
    pub lower_threshold: u32,
    /// Command line run when a health check marks this server up
    /// (keepalived's `notify_up`).
    pub notify_up: Option<String>,
    /// Command line run when a health check marks this server down
    /// (keepalived's `notify_down`).
    pub notify_down: Option<String>,
}

impl ServerConfig {
    /// This server's forwarding method: its own, else the service's.
    pub fn effective_forward(&self, service: &ServiceConfig) -> Forward {
        self.forward.unwrap_or(service.forward)
    }

    /// The port packets go to: the service's port for DR and TUN (they keep
    /// the VIP port), this server's port for NAT. 0 (the client's
    /// destination port) for every server of a service over several ports,
    /// as for an all-ports service.
    pub fn effective_port(&self, service: &ServiceConfig) -> u16 {
        match self.effective_forward(service) {
            Forward::Nat | Forward::Fnat => self.port,
            Forward::Dr | Forward::Tun if service.is_grouped() => 0,
            Forward::Dr | Forward::Tun => service.port,
        }
    }

    /// The server's name everywhere (ctl, `list`, JSON, logs, mail):
    /// `ADDRESS:PORT` with the port packets go to, so a DR or TUN server
    /// shows the VIP's port as ipvsadm shows it. Unique within a service
    /// (`rvs check` refuses two servers with one identity). IPv6:
    /// `[ADDRESS]:PORT`.
    pub fn ident(&self, service: &ServiceConfig) -> String {
        endpoint(self.address, self.effective_port(service))
    }

    /// The address of a server of an IPv4 service.
    pub fn address_v4(&self) -> Option<Ipv4Addr> {
        match self.address {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        }
    }
}

/// `[service.health_check]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub kind: HealthCheckKind,
    /// http, https: the path to GET. Default "/".
    pub path: String,
    /// http, https: the status that means up. Default 200.
    pub expect_status: u16,
    /// http, https: MD5 of the body, lowercase hex (keepalived's `digest`).
    pub digest: Option<String>,
    /// http, https: the `Host` header (keepalived's `virtualhost`); also
    /// the TLS server name when `sni` is not given. Default: the server's
    /// address and port.
    pub host: Option<String>,
    /// https: the TLS server name (SNI, and the name verified). Default
    /// `host`, else none (the server's address).
    pub sni: Option<String>,
    /// https: verify the server's certificate. Default false, as
    /// keepalived's SSL_GET: a health check asks "does it answer", not
    /// "is it who it says".
    pub tls_verify: bool,
    /// https with `tls_verify`: PEM file of the CA certificates to trust
    /// (default: the public web roots).
    pub tls_ca: Option<String>,
    /// tcp, http, https, dns: the port probed instead of the server's.
    pub connect_port: Option<u16>,
    /// Failed probes retried this many times within one round, with
    /// `delay_before_retry_ms` between them, before the round counts as
    /// one failure towards `fall`. Default 0.
    pub retry: u32,
    /// Default 1000 (keepalived's 1 s).
    pub delay_before_retry_ms: u32,
    /// A server new to the pool starts down until its first successful
    /// check (keepalived's `alpha`). Default false: it starts up.
    pub alpha: bool,
    /// dns: the name asked for. Default "." (the root).
    pub dns_name: String,
    /// dns: the record type asked for. Default SOA (keepalived's).
    pub dns_type: DnsType,
    /// exec: the command line to run; exit code 0 means up.
    pub script: Option<String>,
    /// exec: the exit code sets the weight (keepalived's `misc_dynamic`):
    /// 0 = up with the configured weight, 1 = down, 2..=255 = up with
    /// weight code - 2.
    pub dynamic_weight: bool,
    /// Default 1000.
    pub interval_ms: u32,
    /// Default 500.
    pub timeout_ms: u32,
    /// Consecutive failures to mark down. Default 3.
    pub fall: u32,
    /// Consecutive successes to mark up. Default 2.
    pub rise: u32,
    /// Default remove.
    pub on_failure: OnFailure,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            kind: HealthCheckKind::None,
            path: "/".to_string(),
            expect_status: 200,
            digest: None,
            host: None,
            sni: None,
            tls_verify: false,
            tls_ca: None,
            connect_port: None,
            retry: 0,
            delay_before_retry_ms: 1000,
            alpha: false,
            dns_name: ".".to_string(),
            dns_type: DnsType::Soa,
            script: None,
            dynamic_weight: false,
            interval_ms: 1000,
            timeout_ms: 500,
            fall: 3,
            rise: 2,
            on_failure: OnFailure::Remove,
        }
    }
}

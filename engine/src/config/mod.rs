//! The configuration file (SPEC §4): typed structs, parsing and validation.
//!
//! [`load`] / [`parse`] read TOML with spans kept, then make two passes, each
//! of which collects every error it finds (key path, line, message):
//!
//! 1. the schema pass (`schema.rs`) walks every table: each key must be known,
//!    each value of the right type, syntax and range; it builds the typed
//!    structs below, with the SPEC's defaults for what is left out;
//! 2. the rules pass (`rules.rs`) checks what relates two or more values:
//!    workers against lcores, duplicate ports, overlapping services, the same
//!    server twice, thresholds, reachability of DR/TUN servers, the `[ha]`
//!    peers and virtual addresses against the ports, and so on. It also
//!    looks at the one file the configuration names that must be right
//!    before the director runs: `[ha] auth_key_file` (it exists, is a
//!    regular file, mode 0600 or stricter, at least 16 bytes).
//!
//! The rules pass is also [`Config::validate`], for a configuration changed in
//! code (a live `rvs ctl add-server`, a reload), so that a change is checked as
//! `rvs check` checks a file.
//!
//! Every struct is `Clone + Debug + PartialEq`, so that a reload can diff the
//! running configuration against the new one.

mod error;
pub mod host;
mod lcores;
mod reader;
mod rules;
pub mod save;
mod schema;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::sched::SchedKind;

pub use error::{ConfigError, ConfigErrors};
pub use lcores::{parse_lcores, LcoreMap};
pub(crate) use schema::parse_unicast_ip;

/// Where `rvs` looks for its configuration when no `-c FILE` is given.
pub const DEFAULT_PATH: &str = "/etc/rvs/rvs.toml";

/// Largest real-server weight (ipvsadm's range is 0..=65535).
pub const MAX_WEIGHT: u32 = 65535;

/// Lcore ids are below this (DPDK's default `RTE_MAX_LCORE`).
pub const MAX_LCORES: u32 = 128;

/// Reads and validates the configuration file at `path`.
///
/// Errors name the file as `path` was given.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_named(&text, &file),
        Err(e) => Err(ConfigErrors {
            file,
            errors: vec![ConfigError::new("", 0, format!("cannot read: {e}"))],
        }),
    }
}

/// Parses and validates configuration text; errors name the file `<config>`.
pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
    parse_named(text, "<config>")
}

/// Parses and validates configuration text; errors name the file `file`.
pub fn parse_named(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    schema::parse(text).map_err(|errors| ConfigErrors {
        file: file.to_string(),
        errors,
    })
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub dpdk: DpdkConfig,
    /// `[[port]]`: at least one.
    pub ports: Vec<PortConfig>,
    /// `[[service]]`: may be empty (services can be added live).
    pub services: Vec<ServiceConfig>,
    pub timeouts: Timeouts,
    pub control: ControlConfig,
    /// `[notify]`; when the section is absent nothing is notified.
    pub notify: NotifyConfig,
    /// `[ha]`; `None` when the section is absent: a standalone director that
    /// owns its VIPs and sends no adverts. A present section needs `vrid`
    /// (and `auth_key_file` while `sync` is on) and fills in the SPEC's
    /// defaults for the rest.
    pub ha: Option<HaConfig>,
    /// `[bgp]`; `None` when the section is absent: nothing is announced and
    /// no BIRD is asked anything.
    pub bgp: Option<BgpConfig>,
}

impl Config {
    /// Number of real servers over all services.
    pub fn server_count(&self) -> usize {
        self.services.iter().map(|s| s.servers.len()).sum()
    }

    /// The port whose attached subnet holds `ip`, if any.
    pub fn port_for(&self, ip: Ipv4Addr) -> Option<&PortConfig> {
        self.ports.iter().find(|p| p.contains(ip))
    }

    /// The port whose attached IPv6 subnet holds `ip`, if any.
    pub fn port_for6(&self, ip: Ipv6Addr) -> Option<&PortConfig> {
        self.ports
            .iter()
            .find(|p| p.ipv6.as_ref().is_some_and(|v6| v6.contains(ip)))
    }

    /// The `[ha] port`'s configuration; `None` without `[ha]`.
    pub fn ha_port(&self) -> Option<&PortConfig> {
        let ha = self.ha.as_ref()?;
        self.ports.iter().find(|p| p.name == ha.port)
    }

    /// The addresses a VRRP advert lists (SPEC §7): every IPv4 service VIP in
    /// configuration order, then the `[ha] virtual_addresses`, without
    /// duplicates (just the VIPs without `[ha]`). An IPv4 advert cannot
    /// carry IPv6 VIPs (VRRPv3 has one address family per router).
    pub fn vrrp_addresses(&self) -> Vec<Ipv4Addr> {
        let vips = self.services.iter().filter_map(|s| s.vip_v4());
        let virtual_addresses = self.ha.iter().flat_map(|h| &h.virtual_addresses);
        let mut out: Vec<Ipv4Addr> = Vec::new();
        for ip in vips.chain(virtual_addresses.map(|v| v.address)) {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
        out
    }

    /// Checks the rules that relate two or more values (see the module
    /// docs). Errors carry key paths and line 0: there is no file.
    ///
    /// A configuration from [`load`]/[`parse`] always passes (unless its
    /// `[ha] auth_key_file` changed since); run this after changing one in
    /// code.
    pub fn validate(&self) -> Vec<ConfigError> {
        rules::check(&rules::Scope::whole(self))
    }

    /// Advice that does not refuse the configuration (`rvs check` prints
    /// it; `rvs run` logs it). With `[bgp]`, a service not scheduled by
    /// `mh` lets each director pick a different real server for the same
    /// flow: a flow the router moves to another director (one left or came
    /// back) then lands on another server and breaks.
    ///
    /// An IPv6 service is configured, listed and health-checked, but the
    /// data plane forwards only those `forwards_ipv6`/`forwards_nat64`
    /// take: said for each other.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let fnat = self.services.iter().any(|svc| {
            svc.servers
                .iter()
                .any(|s| s.effective_forward(svc) == Forward::Fnat)
        });
        for (i, p) in self.ports.iter().enumerate() {
            // Full-NAT replies to a local tuple are taken by the data plane:
            // a kernel connection from the port's own address on such a port
            // (health checks use Linux's ephemeral range) would lose its.
            let (lo, hi) = p.snat_ports;
            if fnat && p.exception_path && p.snat_addresses.is_empty() && lo <= 60999 && hi >= 32768
            {
                out.push(format!(
                    "port[{i}].snat_ports: \"{lo}-{hi}\" overlaps Linux's ephemeral ports (32768-60999) on the port's own address {}: a health check's reply to such a port that is also a full-NAT local tuple is taken for the connection; keep below 32768 or give snat_addresses",
                    p.address
                ));
            }
        }
        for (i, svc) in self.services.iter().enumerate() {
            if svc.is_ipv6() && !svc.forwards_ipv6() && !svc.forwards_nat64() {
                // NAT64 reaches no sorry server (its `ops` is refused:
                // full-NAT needs the connection).
                let nat64 = !svc.servers.is_empty()
                    && svc
                        .servers
                        .iter()
                        .all(|s| s.address.is_ipv4() && s.effective_forward(svc) == Forward::Fnat);
                let why = if nat64 {
                    "the data plane does not forward a NAT64 service (fnat to IPv4 servers) with a sorry server yet"
                } else {
                    "the data plane does not forward IPv6 yet except NAT, DR and TUN to IPv6 servers and NAT64 (fnat to IPv4 servers)"
                };
                out.push(format!(
                    "service[{i}].vip: {} is IPv6: configured, listed and health-checked, but {why} (its frames go to the kernel)",
                    svc.key()
                ));
            }
        }
        if self.bgp.is_some() {
            for (i, svc) in self.services.iter().enumerate() {
                if svc.scheduler != crate::sched::SchedKind::Mh {
                    out.push(format!(
                        "service[{i}].scheduler: {} uses {} behind [bgp]: directors do not agree on the real server of a flow the router moves between them; use mh (with the same servers, weights and order on every director)",
                        svc.key(),
                        svc.scheduler
                    ));
                }
            }
        }
        out
    }
}

/// `[dpdk]`: EAL and threads.
#[derive(Debug, Clone, PartialEq)]
pub struct DpdkConfig {
    /// `cores` as written: EAL `--lcores` syntax ("0-1", "0@0,1@1,2@1").
    pub cores: String,
    /// `cores` parsed, sorted by lcore id. The first (lowest) is EAL's main
    /// lcore, the control core; workers run on the others.
    pub lcores: Vec<LcoreMap>,
    /// Worker threads, 1 ..= lcores - 1. Default 1.
    pub workers: usize,
    /// false -> EAL `--no-huge`. Default false.
    pub hugepages: bool,
    /// EAL `-m`. Default 512.
    pub memory_mb: u32,
    /// Passed to EAL as is. Default empty.
    pub extra_args: Vec<String>,
}

impl DpdkConfig {
    /// The control (EAL main) lcore.
    pub fn main_lcore(&self) -> LcoreMap {
        self.lcores[0]
    }

    /// The lcores the workers run on: the `workers` lcores after the main one.
    pub fn worker_lcores(&self) -> &[LcoreMap] {
        let end = (1 + self.workers).min(self.lcores.len());
        &self.lcores[1.min(end)..end]
    }
}

/// `[[port]]`: one DPDK port and the director's own address on it.
#[derive(Debug, Clone, PartialEq)]
pub struct PortConfig {
    pub name: String,
    /// A vdev string ("net_af_packet0,iface=veth-c") or a PCI address.
    pub device: String,
    /// From `address = "A.B.C.D/N"` (or the IPv4 element of the list form).
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 element of `address = ["A.B.C.D/N", "X:Y::Z/N"]` and the
    /// IPv6 `gateway`; `None` for an IPv4-only port (SPEC §5).
    pub ipv6: Option<PortIpv6>,
    /// Default 1500; 576..=9000.
    pub mtu: u16,
    /// `exception_path` (default true): the port's address lives on a kernel
    /// TAP interface, and frames for it (and IPv6) go to the kernel (SPEC §2).
    pub exception_path: bool,
    /// `tap_name`: that interface's name; default "rvs-" + the port name
    /// (cut to 15 characters).
    pub tap_name: String,
    /// `snat_addresses`: the source addresses of full-NAT connections
    /// leaving by this port (on its subnet). Empty: the port's own address.
    pub snat_addresses: Vec<Ipv4Addr>,
    /// `snat_ports = "LO-HI"`: their local port range, default
    /// [`PortConfig::DEFAULT_SNAT_PORTS`].
    pub snat_ports: (u16, u16),
}

impl PortConfig {
    /// The default full-NAT local port range: below Linux's ephemeral
    /// range (32768-60999), so the local ports never meet the kernel's own
    /// connections from the port's address (health checks through the
    /// exception path), whose replies go to the kernel.
    pub const DEFAULT_SNAT_PORTS: (u16, u16) = (1024, 32767);

    /// The full-NAT source addresses of this port: `snat_addresses`, else
    /// its own address.
    pub fn snat_addrs(&self) -> Vec<Ipv4Addr> {
        if self.snat_addresses.is_empty() {
            vec![self.address]
        } else {
            self.snat_addresses.clone()
        }
    }

    pub fn netmask(&self) -> Ipv4Addr {
        prefix_mask(self.prefix_len)
    }

    /// The attached subnet's network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) & u32::from(self.netmask()))
    }

    /// Whether `ip` is on this port's attached subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::from(self.netmask());
        u32::from(ip) & mask == u32::from(self.address) & mask
    }

    /// "198.18.0.0/24".
    pub fn subnet(&self) -> String {
        format!("{}/{}", self.network(), self.prefix_len)
    }
}

/// A port's own IPv6 address, its prefix and its IPv6 gateway: kept apart
/// from the IPv4 fields so that every IPv4 user of `PortConfig` stays as it
/// was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortIpv6 {
    pub address: Ipv6Addr,
    /// 1..=128.
    pub prefix_len: u8,
    pub gateway: Option<Ipv6Addr>,
}

impl PortIpv6 {
    /// Whether `ip` is on this port's attached IPv6 subnet.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        let mask = prefix_mask6(self.prefix_len);
        u128::from(ip) & mask == u128::from(self.address) & mask
    }

    /// "2001:db8:0:1::/64".
    pub fn subnet(&self) -> String {
        let net = Ipv6Addr::from(u128::from(self.address) & prefix_mask6(self.prefix_len));
        format!("{net}/{}", self.prefix_len)
    }
}

/// The mask of an IPv6 prefix length (0..=128) as a number.
pub fn prefix_mask6(prefix_len: u8) -> u128 {
    match prefix_len {
        0 => 0,
        n => u128::MAX << (128 - u32::from(n.min(128))),
    }
}

/// "198.18.0.100:80" or "[2001:db8::100]:80": how every listing, message
/// and `rvs ctl` argument writes an endpoint (SPEC §5).
pub fn endpoint(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

/// "198.18.0.100" or "[2001:db8::100]": an address as the host part of
/// `HOST:PORT` or `PROTO:HOST:PORTS`, where an IPv6 address needs brackets
/// to keep its colons apart from the port's.
pub fn host_part(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The netmask of a prefix length (0..=32).
pub fn prefix_mask(prefix_len: u8) -> Ipv4Addr {
    match prefix_len {
        0 => Ipv4Addr::UNSPECIFIED,
        n => Ipv4Addr::from(u32::MAX << (32 - u32::from(n.min(32)))),
    }
}

/// Declares a plain enum whose values have one configuration name each.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order error messages list them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name used in the configuration file.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Case-insensitive, as `rvs ctl` reads `TCP:VIP:PORT` and
            /// ipvsadm users write `-s WRR`.
            pub fn from_name(s: &str) -> Option<$name> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name().eq_ignore_ascii_case(s))
            }

            /// "a, b, c" for error messages.
            pub fn valid_names() -> String {
                Self::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_enum! {
    /// A service's transport protocol.
    Protocol {
        Tcp = "tcp",
        Udp = "udp",
    }
}

named_enum! {
    /// How packets reach a real server (IPVS's forwarding methods).
    Forward {
        Nat = "nat",
        Dr = "dr",
        Tun = "tun",
        /// Full-NAT (DPVS): the source becomes a local address of the
        /// egress port too, so the server needs no route back.
        Fnat = "fnat",
    }
}

named_enum! {
    /// What a health check does.
    HealthCheckKind {
        Tcp = "tcp",
        Http = "http",
        /// HTTP over TLS (keepalived's SSL_GET).
        Https = "https",
        /// A DNS query over UDP (keepalived's DNS_CHECK).
        Dns = "dns",
        Exec = "exec",
        None = "none",
    }
}

named_enum! {
    /// The record type a `dns` health check asks for (keepalived's
    /// DNS_CHECK `type`).
    DnsType {
        A = "A",
        Ns = "NS",
        Cname = "CNAME",
        Soa = "SOA",
        Mx = "MX",
        Txt = "TXT",
        Aaaa = "AAAA",
    }
}

named_enum! {
    /// What happens to a server a health check marks down.
    OnFailure {
        /// Take it out of the pool.
        Remove = "remove",
        /// Keep it with weight 0 (keepalived's `inhibit_on_failure`).
        WeightZero = "weight-zero",
    }
}

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

/// `[timeouts]`: seconds, IPVS defaults; all at least 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    /// 900.
    pub tcp_established: u32,
    /// FIN_WAIT. 120.
    pub tcp_fin: u32,
    /// 300.
    pub udp: u32,
    /// Connections per director; the table is allocated up front. 1048576.
    pub max_connections: u32,
    /// 60.
    pub tcp_syn_recv: u32,
    /// 120.
    pub tcp_time_wait: u32,
    /// 10.
    pub tcp_close: u32,
    /// 60.
    pub tcp_close_wait: u32,
    /// 30.
    pub tcp_last_ack: u32,
    /// Answer SYNs to NAT TCP services with SYN cookies and open the
    /// connection to the real server only once the client's ACK proves the
    /// cookie (the synproxy, `dataplane::pipeline::synproxy`). Off.
    pub syn_cookies: bool,
    /// A packet of a connection whose real server is gone (deleted, its
    /// service deleted, or marked down by a health check) expires the
    /// connection at once; a TCP segment from the client is answered with
    /// an RST from the VIP, and a client's SYN or UDP datagram is scheduled
    /// afresh (IPVS `expire_nodest_conn`, plus the RST). Off, the packets of
    /// a deleted server's connections are dropped and the entry lives until
    /// its timeout (IPVS's default). On: the client learns at once instead
    /// of hanging.
    pub expire_nodest_conn: bool,
    /// A persistence template whose server has weight 0 (drained) is
    /// expired when next used, so the client's new connections go to a
    /// server that takes new work (IPVS `expire_quiescent_template`). Off:
    /// the template keeps sending them to the drained server, as IPVS does.
    pub expire_quiescent_template: bool,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_established: 900,
            tcp_fin: 120,
            udp: 300,
            max_connections: 1 << 20,
            tcp_syn_recv: 60,
            tcp_time_wait: 120,
            tcp_close: 10,
            tcp_close_wait: 60,
            tcp_last_ack: 30,
            syn_cookies: false,
            expire_nodest_conn: true,
            expire_quiescent_template: false,
        }
    }
}

/// `[control]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlConfig {
    /// The API socket. Default /run/rvs/rvs.sock.
    pub socket: PathBuf,
    /// Where to serve Prometheus metrics; off by default.
    pub metrics: Option<SocketAddr>,
    /// On SIGINT/SIGTERM, how long established connections may keep
    /// flowing (new ones refused) before the director exits; 0 exits at
    /// once. 0 ..= 3600000, default 5000.
    pub drain_timeout_ms: u64,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from("/run/rvs/rvs.sock"),
            metrics: None,
            drain_timeout_ms: 5000,
        }
    }
}

/// An SMTP relay: `host` or `host:port` (port 25 when left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpRelay {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for SmtpRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// `[notify]`. The default notifies nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    pub smtp: Option<SmtpRelay>,
    /// Default "rvs@localhost".
    pub from: String,
    /// Required (non-empty) when `smtp` is set.
    pub to: Vec<String>,
    /// Gets each event as JSON on stdin.
    pub exec: Option<PathBuf>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            smtp: None,
            from: "rvs@localhost".to_string(),
            to: Vec::new(),
            exec: None,
        }
    }
}

/// `[ha]`: failover between two or more directors (VRRPv3, RFC 5798) and
/// connection sync (SPEC §7).
#[derive(Debug, Clone, PartialEq)]
pub struct HaConfig {
    /// The virtual router id, 1..=255, the same on every director of the
    /// group. Required.
    pub vrid: u8,
    /// 1..=254 (255 is VRRP's address owner); the highest wins. Default 100.
    pub priority: u8,
    /// The `[[port]]` whose segment carries adverts and sync. Default: the
    /// port named "server" or "servers", else the last port.
    pub port: String,
    /// Unicast adverts and sync go to these, on the `port`'s subnet; empty
    /// (the default) = multicast to 224.0.0.18.
    pub peers: Vec<Ipv4Addr>,
    /// 10..=40950 in steps of 10 (VRRPv3 counts centiseconds); default 100.
    pub advert_interval_ms: u32,
    /// A higher priority takes the master role back. Default true.
    pub preempt: bool,
    /// ...after this delay (and after its bulk sync has arrived); at most
    /// [`HaConfig::MAX_PREEMPT_DELAY_MS`]. Default 0.
    pub preempt_delay_ms: u32,
    /// Addresses that move with the master besides the VIPs.
    pub virtual_addresses: Vec<VirtualAddress>,
    /// Stream connection state to the peers. Default true.
    pub sync: bool,
    /// UDP port of the sync messages. Default 8848.
    pub sync_port: u16,
    /// The shared secret of the sync HMAC (mode 0600, at least
    /// [`HaConfig::MIN_KEY_LEN`] bytes); required when `sync` is on.
    pub auth_key_file: Option<PathBuf>,
}

impl HaConfig {
    pub const DEFAULT_PRIORITY: u8 = 100;
    pub const DEFAULT_ADVERT_INTERVAL_MS: u32 = 100;
    pub const MAX_PREEMPT_DELAY_MS: u32 = 3_600_000;
    pub const DEFAULT_SYNC_PORT: u16 = 8848;
    /// Shortest `auth_key_file`, in bytes.
    pub const MIN_KEY_LEN: u64 = 16;

    /// An `[ha]` with the given required values and the SPEC's defaults for
    /// the rest (sync on, so `auth_key_file` still has to be set).
    pub fn new(vrid: u8, port: impl Into<String>) -> HaConfig {
        HaConfig {
            vrid,
            priority: Self::DEFAULT_PRIORITY,
            port: port.into(),
            peers: Vec::new(),
            advert_interval_ms: Self::DEFAULT_ADVERT_INTERVAL_MS,
            preempt: true,
            preempt_delay_ms: 0,
            virtual_addresses: Vec::new(),
            sync: true,
            sync_port: Self::DEFAULT_SYNC_PORT,
            auth_key_file: None,
        }
    }

    /// The advert interval as VRRPv3 sends it: centiseconds (12 bits).
    pub fn advert_interval_cs(&self) -> u16 {
        (self.advert_interval_ms / 10).min(0x0fff) as u16
    }
}

/// `[bgp]`: the VIPs are announced through BIRD 2 running beside rvs
/// (ECMP scale-out, SPEC §7). rvs writes `routes_file` and asks BIRD to
/// reconfigure through `bird_socket`; it never speaks BGP itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpConfig {
    /// BIRD's control socket (what `birdc -s` takes). Default
    /// /run/bird/bird.ctl.
    pub bird_socket: PathBuf,
    /// The `protocol static rvs_vips` file bird.conf includes; rewritten
    /// atomically. Default /etc/bird/rvs-vips.conf.
    pub routes_file: PathBuf,
    /// When a VIP is withdrawn. Default: all three.
    pub withdraw_on: WithdrawOn,
    /// On SIGTERM/SIGINT, the time between the withdrawal and the drain:
    /// the router needs it to move the flows to the other directors before
    /// this one refuses new connections. 0..=600000, default 3000.
    pub shutdown_grace_ms: u32,
}

impl BgpConfig {
    pub const MAX_SHUTDOWN_GRACE_MS: u32 = 600_000;
}

impl Default for BgpConfig {
    fn default() -> Self {
        BgpConfig {
            bird_socket: PathBuf::from("/run/bird/bird.ctl"),
            routes_file: PathBuf::from("/etc/bird/rvs-vips.conf"),
            withdraw_on: WithdrawOn::default(),
            shutdown_grace_ms: 3000,
        }
    }
}

/// `[bgp] withdraw_on`: which events withdraw a VIP. An operator's
/// `rvs ctl bgp withdraw` always does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WithdrawOn {
    /// "shutdown": SIGTERM/SIGINT withdraws every VIP before the drain.
    pub shutdown: bool,
    /// "no-server": a VIP none of whose services has a live server.
    pub no_server: bool,
    /// "backup": every VIP while the director is not master of its `[ha]`
    /// group.
    pub backup: bool,
}

impl WithdrawOn {
    /// The names `withdraw_on` takes.
    pub const NAMES: [&'static str; 3] = ["shutdown", "no-server", "backup"];

    /// Nothing set.
    pub const NONE: WithdrawOn = WithdrawOn {
        shutdown: false,
        no_server: false,
        backup: false,
    };

    /// Sets the event `name`; false if it is not one of [`Self::NAMES`].
    pub fn set(&mut self, name: &str) -> bool {
        match name {
            "shutdown" => self.shutdown = true,
            "no-server" => self.no_server = true,
            "backup" => self.backup = true,
            _ => return false,
        }
        true
    }
}

impl Default for WithdrawOn {
    fn default() -> Self {
        WithdrawOn {
            shutdown: true,
            no_server: true,
            backup: true,
        }
    }
}

/// One of `[ha] virtual_addresses`: "ADDRESS/PREFIX@PORT".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualAddress {
    pub address: Ipv4Addr,
    /// The same as the port's.
    pub prefix_len: u8,
    /// The `[[port]]` it lives on (the `[ha] port` when `@PORT` is left out).
    pub port: String,
}

/// "198.19.0.1/24@server".
impl fmt::Display for VirtualAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.address, self.prefix_len, self.port)
    }
}

//! The configuration file (SPEC §4): typed structs, parsing and validation.
//!
//! [`load`] / [`parse`] read TOML with spans kept, then make two passes, each
//! of which collects every error it finds (key path, line, message):
//!
//! 1. the schema pass (`schema/`) walks every table: each key must be known,
//!    each value of the right type, syntax and range; it builds the typed
//!    structs (below; services and servers in `service.rs`, `[ha]` and
//!    `[bgp]` in `peers.rs`), with the SPEC's defaults for what is left out;
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
mod peers;
mod reader;
mod rules;
pub mod save;
mod schema;
mod service;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::sched::SchedKind;

pub use error::{ConfigError, ConfigErrors};
pub use lcores::{parse_lcores, LcoreMap};
pub use peers::*;
pub(crate) use schema::parse_unicast_ip;
pub use service::*;

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

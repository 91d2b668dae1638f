//! The `rvs ctl` wire protocol: requests, responses and the views they
//! carry. Shared by the director (`control::api`) and the client
//! (`cli/src/ctl.rs`).
//!
//! Newline-delimited JSON over a Unix stream socket: the client writes one
//! request object on one line, the director answers with one response
//! object on one line; a connection may carry several requests in turn.
//! See the module docs of [`super::api`] for limits and errors.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

/// Longest request line the director reads (bytes, newline excluded).
pub const MAX_REQUEST: usize = 64 * 1024;

/// Connections `list --conns` shows at most, unless the request says.
pub const DEFAULT_CONN_LIMIT: usize = 10_000;

/// One request. `{"cmd": "list"}`, `{"cmd": "add-server", "service":
/// "tcp:198.18.0.100:80", "server": "198.19.0.14:8080", "weight": 2}`, ...
/// Unknown commands and unknown fields are errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Services, servers, counters and rates ([`ListView`]), in
    /// configuration order; only `service` (`PROTO:VIP:PORT`) when given
    /// (an unknown one is an error).
    // (Struct variants, not unit ones: serde then refuses extra fields, as
    // for every other command.)
    List {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
    },
    /// The connection tables ([`ConnsView`]), at most `limit` entries
    /// (counted before the `service` filter).
    Conns {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
    },
    /// Role, peer, sync, workers, health of each server ([`StatusView`]).
    Status {},
    /// Resets the service and server counters shown by `list`: all of
    /// them, or those of `service` and its servers.
    Zero {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
    },
    /// `ipvsadm --set tcp tcpfin udp`: changes `[timeouts] tcp_established`,
    /// `tcp_fin` and `udp` (seconds); an absent or 0 value leaves that one
    /// unchanged, at least one must change.
    SetTimeouts {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tcp: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tcpfin: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        udp: Option<u32>,
    },
    /// Writes the running configuration as TOML to `file` (an absolute
    /// path; default: the file rvs was started with).
    Save {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<String>,
    },
    AddService(ServiceArgs),
    EditService(ServiceArgs),
    DelService {
        service: String,
    },
    AddServer(ServerArgs),
    EditServer(ServerArgs),
    DelServer {
        service: String,
        server: String,
    },
    /// `[bgp]` maintenance: stop announcing the VIP of `service`
    /// (`PROTO:VIP:PORT`; the route is the VIP's, so every service on it
    /// goes) until `bgp-announce`. Not a configuration change: a restart
    /// announces again.
    BgpWithdraw {
        service: String,
    },
    /// Ends a `bgp-withdraw`; the VIP is announced again if the other
    /// rules allow (a live server, master, not stopping).
    BgpAnnounce {
        service: String,
    },
}

impl Request {
    /// Whether the request changes the configuration.
    pub fn is_change(&self) -> bool {
        !matches!(
            self,
            Request::List { .. }
                | Request::Conns { .. }
                | Request::Status {}
                | Request::Zero { .. }
                | Request::Save { .. }
                | Request::BgpWithdraw { .. }
                | Request::BgpAnnounce { .. }
        )
    }
}

/// `add-service` / `edit-service`. Strings are parsed by the director, so
/// every client gets the same checks and messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceArgs {
    /// `PROTO:VIP:PORT`, e.g. `tcp:198.18.0.100:80`.
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    /// Scheduler flags (`sh-port`, `sh-fallback`, `mh-port`, `mh-fallback`);
    /// given, they replace the service's flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<String>,
    /// Seconds; 0 = off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_netmask: Option<String>,
    /// IPv6 services: the client prefix length persistence groups by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_prefix: Option<u8>,
    /// `IP:PORT`; an empty string removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    /// One-packet scheduling (UDP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<bool>,
}

/// `add-server` / `edit-server`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerArgs {
    /// `PROTO:VIP:PORT`.
    pub service: String,
    /// `IP:PORT`, or `IP` (the service's port).
    pub server: String,
    /// 0..=65535; 0 drains (no new connections, existing ones live on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_threshold: Option<u32>,
}

/// One response: `{"ok": true, "result": ...}` or `{"ok": false, "error":
/// "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

impl Response {
    pub fn ok(result: impl Serialize) -> Response {
        match serde_json::to_value(result) {
            Ok(v) => Response {
                ok: true,
                error: None,
                result: Some(v),
            },
            Err(e) => Response::error(format!("internal error: {e}")),
        }
    }

    pub fn error(msg: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(msg.into()),
            result: None,
        }
    }

    /// The response as one line, newline included.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"ok":false,"error":"internal error: unserialisable response"}"#.to_string()
        });
        s.push('\n');
        s
    }
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeResult {
    pub message: String,
    /// The snapshot generation now in force.
    pub generation: u64,
}

/// Per-second rates, as `ipvsadm --rate` shows them (bytes per second).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub cps: u64,
    pub in_pps: u64,
    pub out_pps: u64,
    pub in_bps: u64,
    pub out_bps: u64,
}

/// `list`: every service in configuration order with its servers (the
/// text listing sorts them as `ipvsadm -L -n` does unless `--nosort`; the
/// JSON keeps this order, the order the schedulers walk servers in).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListView {
    /// rvs version.
    pub version: String,
    /// Connection table size (`[timeouts] max_connections`).
    pub size: u64,
    /// Snapshot generation.
    pub generation: u64,
    /// The timeouts `ipvsadm --set` changes (`list --timeout`).
    #[serde(default)]
    pub timeouts: TimeoutsView,
    pub services: Vec<ServiceView>,
}

/// `[timeouts] tcp_established`, `tcp_fin`, `udp` in seconds: what
/// `ipvsadm -L --timeout` prints and `ipvsadm --set` changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutsView {
    pub tcp: u32,
    pub tcpfin: u32,
    pub udp: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    /// `tcp` | `udp`.
    pub protocol: String,
    /// IPv4 or IPv6 (JSON: the bare address, without brackets).
    pub vip: IpAddr,
    /// The first of `ports` for a service over several.
    pub port: u16,
    /// Every port of a service over several (`ports = [80, 443]`); absent
    /// for a one-port service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    pub scheduler: String,
    #[serde(default)]
    pub flags: Vec<String>,
    /// Default forwarding method of its servers.
    pub forward: String,
    /// Persistence timeout, seconds; 0 = off.
    pub persistence: u32,
    pub persistence_netmask: Ipv4Addr,
    /// IPv6 services: the client prefix length persistence groups by
    /// (`persistence_prefix`); 128 for IPv4 services.
    #[serde(default = "full_prefix")]
    pub persistence_prefix: u8,
    #[serde(default)]
    pub sorry_server: Option<String>,
    pub quorum: u32,
    /// One-packet scheduling (ipvsadm's `ops` flag).
    #[serde(default)]
    pub ops: bool,
    pub active: u64,
    pub inactive: u64,
    /// Counters since start or the last `zero`, over all servers the
    /// service ever had (as IPVS counts a service).
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub rate: Rates,
    pub servers: Vec<ServerView>,
}

impl ServiceView {
    /// `tcp:198.18.0.100:80` (`tcp:198.18.0.100:80,443` for several ports).
    /// An IPv6 VIP in brackets: `tcp:[2001:db8::100]:80`.
    pub fn key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.protocol,
            crate::config::host_part(self.vip),
            self.port_list()
        )
    }

    /// "80" or "80,443".
    pub fn port_list(&self) -> String {
        if self.ports.is_empty() {
            self.port.to_string()
        } else {
            crate::config::port_list(&self.ports)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerView {
    /// In the service's family.
    pub address: IpAddr,
    /// As configured (the effective port for dr/tun is the service's).
    pub port: u16,
    /// `nat` | `dr` | `tun`.
    pub forward: String,
    /// As configured (`edit-server --weight`).
    pub weight: u32,
    /// The weight in the pool: 0 while a health check inhibits it.
    pub effective_weight: u32,
    /// In the pool (not removed by a health check).
    pub up: bool,
    /// What health checking says (`no-check`, `up`, `down`, ...).
    pub health: String,
    pub upper_threshold: u32,
    pub lower_threshold: u32,
    pub overloaded: bool,
    /// Live persistence templates that send clients to it (ipvsadm's
    /// `PersistConn`).
    #[serde(default)]
    pub persistent_conns: u64,
    pub active: u64,
    pub inactive: u64,
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub rate: Rates,
}

/// `persistence_prefix` when a reply leaves it out (an older director).
fn full_prefix() -> u8 {
    128
}

impl Default for ServiceView {
    fn default() -> Self {
        ServiceView {
            protocol: String::new(),
            vip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            ports: Vec::new(),
            scheduler: String::new(),
            flags: Vec::new(),
            forward: String::new(),
            persistence: 0,
            persistence_netmask: Ipv4Addr::BROADCAST,
            persistence_prefix: 128,
            sorry_server: None,
            quorum: 0,
            ops: false,
            active: 0,
            inactive: 0,
            conns: 0,
            in_packets: 0,
            out_packets: 0,
            in_bytes: 0,
            out_bytes: 0,
            rate: Rates::default(),
            servers: Vec::new(),
        }
    }
}

impl Default for ServerView {
    fn default() -> Self {
        ServerView {
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            forward: String::new(),
            weight: 0,
            effective_weight: 0,
            up: false,
            health: String::new(),
            upper_threshold: 0,
            lower_threshold: 0,
            overloaded: false,
            persistent_conns: 0,
            active: 0,
            inactive: 0,
            conns: 0,
            in_packets: 0,
            out_packets: 0,
            in_bytes: 0,
            out_bytes: 0,
            rate: Rates::default(),
        }
    }
}

/// One tracked connection (`list --conns`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    /// `tcp` | `udp` | the protocol number.
    pub protocol: String,
    /// Addresses of either family (an IPv6 connection's, or a NAT64 one's
    /// IPv6 client and VIP with its IPv4 server).
    pub client: IpAddr,
    pub cport: u16,
    pub vip: IpAddr,
    pub vport: u16,
    pub server: IpAddr,
    pub sport: u16,
    /// IPVS state name (`ESTABLISHED`, `TIME_WAIT`, ...; `UDP` for UDP).
    pub state: String,
    /// Milliseconds until it expires.
    pub expires_ms: u64,
    pub forward: String,
    pub worker: usize,
    #[serde(default)]
    pub template: bool,
    #[serde(default)]
    pub synced: bool,
    /// Full-NAT: the director-side tuple the server sees as its client
    /// (absent for the other methods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<std::net::SocketAddrV4>,
    /// An IPv6 service's persistence template: what its key is made of
    /// (absent for everything else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix6: Option<TemplatePrefix6>,
}

/// The key of an IPv6 persistence template. The template table stores
/// the 32-bit fold of the client prefix (`fold6`), not the prefix: the
/// listing's `client` is the prefix of a listed connection that folds to
/// it (`known`), else `::` (no such connection listed: the prefix is not
/// known, only its fold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplatePrefix6 {
    /// The service's `persistence_prefix`.
    pub len: u8,
    /// The template's key: the fold of the client prefix.
    pub fold: u32,
    /// `client` is a client prefix the template serves.
    pub known: bool,
}

/// `list --conns`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnsView {
    /// Connections in the tables (may exceed `conns.len()`).
    pub total: u64,
    /// Fewer shown than there are.
    pub truncated: bool,
    /// Workers that did not answer within the deadline.
    #[serde(default)]
    pub missing_workers: Vec<usize>,
    pub conns: Vec<ConnInfo>,
}

/// `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    /// The file SIGHUP re-reads.
    pub config: String,
    pub generation: u64,
    /// `standalone` (no `[ha]`), `master`, `backup` or `init`.
    pub role: String,
    /// The current master when backup, else the first configured peer.
    #[serde(default)]
    pub peer: Option<Ipv4Addr>,
    /// Connection sync: `off`, or `on` (with `[ha] sync = true`).
    pub sync: String,
    /// `[ha]`: VRRP and sync state and counters (SPEC §7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha: Option<crate::control::ha::HaView>,
    /// `[bgp]`: each VIP's announcement and the link to BIRD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<crate::control::bgp::BgpView>,
    /// Changes made through the API since the file was last (re)loaded; a
    /// SIGHUP reload replaces them with the file.
    pub api_changes: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub workers: Vec<WorkerView>,
    pub services: Vec<ServiceHealthView>,
    /// The ports' device counters, with `rx_ring_drops` (af_packet).
    #[serde(default)]
    pub ports: Vec<crate::dataplane::counters::PortStats>,
    /// The packet mempool; absent when the director has none (tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mbufs: Option<MbufPoolView>,
}

/// Usage of the packet mempool: `in_use` must stay flat under steady
/// traffic (a leak grows it until rx stops; see `perf/soak.sh`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MbufPoolView {
    /// Mbufs taken from the pool (rings, workers, per-lcore caches).
    pub in_use: u32,
    /// The pool's size.
    pub size: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    pub id: usize,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub handoffs_in: u64,
    pub handoffs_out: u64,
    pub conns_created: u64,
    pub conns_expired: u64,
    /// Evicted to make room in a full table (embryonic TCP, idle UDP).
    #[serde(default)]
    pub conns_evicted: u64,
    /// Segments of moved flows forwarded to the `mh` pick (scale-out rescue).
    #[serde(default)]
    pub rescued: u64,
    /// Frames the established fast path forwarded (the rest took the full
    /// path): with `rx_packets`, the fast path's share.
    #[serde(default)]
    pub established_hits: u64,
    /// Connections in its table now.
    pub conns: u64,
    /// Its table's size.
    pub capacity: u64,
    pub drops_total: u64,
    /// Non-zero drop counters by reason.
    pub drops: BTreeMap<String, u64>,
    /// Busy share, frames/s, cycles per frame, burst size (the last
    /// second) and the cycle counters since start.
    #[serde(default)]
    pub cost: crate::control::cost::WorkerCost,
    /// What backs its connection table, read from the kernel now:
    /// `dpdk hugetlbfs 2 MiB pages`, `heap thp (AnonHugePages 62 of 64
    /// MiB)`, `heap 4 KiB pages`.
    #[serde(default)]
    pub conn_memory: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceHealthView {
    pub service: String,
    /// `none` when no health check is configured, else its kind.
    pub check: String,
    pub servers: Vec<ServerHealthView>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerHealthView {
    pub server: String,
    pub weight: u32,
    pub up: bool,
    /// `no-check`, `unknown`, `up`, `down`, `inhibited`.
    pub health: String,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Request, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    #[test]
    fn requests_parse() {
        assert_eq!(
            parse(r#"{"cmd":"list"}"#),
            Ok(Request::List { service: None })
        );
        assert_eq!(
            parse(r#"{"cmd":"list","service":"udp:198.18.0.100:53"}"#),
            Ok(Request::List {
                service: Some("udp:198.18.0.100:53".into())
            })
        );
        assert_eq!(parse(r#"{"cmd":"status"}"#), Ok(Request::Status {}));
        assert_eq!(
            parse(r#"{"cmd":"zero"}"#),
            Ok(Request::Zero { service: None })
        );
        assert_eq!(
            parse(r#"{"cmd":"zero","service":"tcp:198.18.0.100:80"}"#),
            Ok(Request::Zero {
                service: Some("tcp:198.18.0.100:80".into())
            })
        );
        assert_eq!(
            parse(r#"{"cmd":"conns"}"#),
            Ok(Request::Conns {
                limit: None,
                service: None
            })
        );
        assert_eq!(
            parse(r#"{"cmd":"conns","limit":5}"#),
            Ok(Request::Conns {
                limit: Some(5),
                service: None
            })
        );
        assert_eq!(
            parse(r#"{"cmd":"set-timeouts","udp":2}"#),
            Ok(Request::SetTimeouts {
                tcp: None,
                tcpfin: None,
                udp: Some(2)
            })
        );
        assert_eq!(
            parse(
                r#"{"cmd":"add-server","service":"tcp:198.18.0.100:80","server":"198.19.0.14:8080","weight":2}"#
            ),
            Ok(Request::AddServer(ServerArgs {
                service: "tcp:198.18.0.100:80".into(),
                server: "198.19.0.14:8080".into(),
                weight: Some(2),
                ..ServerArgs::default()
            }))
        );
        assert_eq!(
            parse(r#"{"cmd":"del-service","service":"udp:198.18.0.100:53"}"#),
            Ok(Request::DelService {
                service: "udp:198.18.0.100:53".into()
            })
        );
        assert_eq!(
            parse(
                r#"{"cmd":"edit-service","service":"tcp:1.2.3.4:80","scheduler":"rr","persistence":30}"#
            ),
            Ok(Request::EditService(ServiceArgs {
                service: "tcp:1.2.3.4:80".into(),
                scheduler: Some("rr".into()),
                persistence: Some(30),
                ..ServiceArgs::default()
            }))
        );
    }

    #[test]
    fn bad_requests_are_refused() {
        for bad in [
            "",
            "garbage",
            "{}",
            "[]",
            r#"{"cmd":"reboot"}"#,
            r#"{"cmd":"list","extra":1}"#,
            r#"{"cmd":"add-server","service":"tcp:1.2.3.4:80"}"#,
            r#"{"cmd":"add-server","service":"tcp:1.2.3.4:80","server":"1.2.3.5:80","bogus":1}"#,
            r#"{"cmd":"edit-server","service":"x","server":"y","weight":-1}"#,
            r#"{"cmd":"edit-server","service":"x","server":"y","weight":"3"}"#,
            r#"{"cmd":"del-server","service":"x"}"#,
            r#"{"cmd":"list""#,
            r#"{"cmd":"list","service":80}"#,
            r#"{"cmd":"zero","server":"x"}"#,
            r#"{"cmd":"set-timeouts","udp":-1}"#,
            r#"{"cmd":"set-timeouts","tcp":"900"}"#,
            r#"{"cmd":"set-timeouts","tcp_fin":120}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn requests_round_trip() {
        for r in [
            Request::List { service: None },
            Request::List {
                service: Some("tcp:198.18.0.100:80".into()),
            },
            Request::Conns {
                limit: Some(3),
                service: Some("udp:198.18.0.100:53".into()),
            },
            Request::Zero { service: None },
            Request::Zero {
                service: Some("tcp:198.18.0.100:80".into()),
            },
            Request::SetTimeouts {
                tcp: Some(900),
                tcpfin: None,
                udp: Some(0),
            },
            Request::AddService(ServiceArgs {
                service: "tcp:198.18.0.100:8080".into(),
                scheduler: Some("wrr".into()),
                flags: Some(vec!["sh-port".into()]),
                ..ServiceArgs::default()
            }),
            Request::DelServer {
                service: "a".into(),
                server: "b".into(),
            },
        ] {
            let line = serde_json::to_string(&r).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(parse(&line), Ok(r));
        }
    }

    #[test]
    fn responses_are_one_line() {
        let r = Response::error("no service tcp:1.2.3.4:80\nsecond line");
        let line = r.to_line();
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
        let back: Response = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
        let ok = Response::ok(ChangeResult {
            message: "m".into(),
            generation: 4,
        });
        assert_eq!(
            ok.to_line(),
            "{\"ok\":true,\"result\":{\"generation\":4,\"message\":\"m\"}}\n"
        );
    }
}

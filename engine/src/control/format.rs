//! Text output of `rvs ctl`, in the layout an `ipvsadm -L -n` user reads
//! without thinking (ipvsadm's own column widths; numbers are exact, as
//! with `ipvsadm --exact`).

use std::fmt::Write;

use super::ctl_proto::{ConnsView, ListView, Rates, ServerView, ServiceView, StatusView};

/// Which columns `list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMode {
    /// Forward, Weight, ActiveConn, InActConn.
    Plain,
    /// `--stats`: Conns, InPkts, OutPkts, InBytes, OutBytes.
    Stats,
    /// `--rate`: CPS, InPPS, OutPPS, InBPS, OutBPS.
    Rate,
    /// `--thresholds`: Uthreshold, Lthreshold, ActiveConn, InActConn.
    Thresholds,
    /// `--persistent-conn`: Weight, PersistConn, ActiveConn, InActConn.
    PersistConn,
    /// `--timeout`: the one line `ipvsadm -L --timeout` prints.
    Timeout,
}

/// How `list` prints, besides its columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListOpts {
    /// `--exact`: no K, M, G rounding.
    pub exact: bool,
    /// `--nosort`: configuration order (the order the schedulers walk
    /// servers in) instead of ipvsadm's sort.
    pub nosort: bool,
}

/// The listing in `ipvsadm -L -n`'s order: services by protocol (TCP
/// before UDP), VIP and port; each service's servers by address and port.
pub fn sorted(v: &ListView) -> ListView {
    let mut v = v.clone();
    v.services
        .sort_by(|a, b| (&a.protocol, a.vip, a.port).cmp(&(&b.protocol, b.vip, b.port)));
    for s in &mut v.services {
        s.servers.sort_by_key(|d| (d.address, d.port));
    }
    v
}

/// ipvsadm's name of a forwarding method.
pub fn forward_name(f: &str) -> &'static str {
    match f {
        "nat" => "Masq",
        "dr" => "Route",
        "tun" => "Tunnel",
        _ => "?",
    }
}

fn service_name(s: &ServiceView) -> String {
    format!(
        "{}  {}:{}",
        s.protocol.to_ascii_uppercase(),
        crate::config::host_part(s.vip),
        s.port_list()
    )
}

/// `ADDRESS:PORT`, `[ADDRESS]:PORT` for IPv6 (ipvsadm's form).
fn server_name(s: &ServerView) -> String {
    crate::config::endpoint(s.address, s.port)
}

/// A counter in an 8-character column, as ipvsadm's `print_largenum`
/// rounds it (K, M, G, T above 8 digits) unless `exact`.
pub fn largenum(n: u64, exact: bool) -> String {
    const K: u64 = 1_000;
    if exact || n < 100_000_000 {
        format!("{n:>8}")
    } else if n < 1_000_000_000 {
        format!("{:>7}K", n / K)
    } else if n < 100_000_000_000 {
        format!("{:>7}M", n / (K * K))
    } else if n < 100_000_000_000_000 {
        format!("{:>7}G", n / (K * K * K))
    } else {
        format!("{:>7}T", n / (K * K * K * K))
    }
}

fn nums(out: &mut String, v: [u64; 5], exact: bool) {
    for n in v {
        let _ = write!(out, " {}", largenum(n, exact));
    }
    out.push('\n');
}

fn rates(r: &Rates) -> [u64; 5] {
    [r.cps, r.in_pps, r.out_pps, r.in_bps, r.out_bps]
}

/// `rvs ctl list [--stats | --rate]`, large counters rounded as ipvsadm
/// does.
pub fn list(v: &ListView, mode: ListMode) -> String {
    list_exact(v, mode, false)
}

/// `list`, with `--exact` counters when `exact`.
pub fn list_exact(v: &ListView, mode: ListMode, exact: bool) -> String {
    list_with(
        v,
        mode,
        ListOpts {
            exact,
            nosort: false,
        },
    )
}

/// ipvsadm's service line: `TCP  VIP:PORT sched (flags) persistent N mask M ops`.
fn service_line(out: &mut String, s: &ServiceView) {
    let _ = write!(out, "{} {}", service_name(s), s.scheduler);
    if !s.flags.is_empty() {
        let _ = write!(out, " ({})", s.flags.join(","));
    }
    if s.persistence > 0 {
        let _ = write!(out, " persistent {}", s.persistence);
        if s.vip.is_ipv6() {
            // ipvsadm prints an IPv6 service's mask as a prefix length.
            if s.persistence_prefix != 128 {
                let _ = write!(out, " mask {}", s.persistence_prefix);
            }
        } else if s.persistence_netmask != std::net::Ipv4Addr::BROADCAST {
            let _ = write!(out, " mask {}", s.persistence_netmask);
        }
    }
    if s.ops {
        out.push_str(" ops");
    }
    out.push('\n');
}

/// `rvs ctl list [--stats | --rate | --thresholds | --persistent-conn |
/// --timeout] [--exact] [--nosort]`.
pub fn list_with(v: &ListView, mode: ListMode, opts: ListOpts) -> String {
    let exact = opts.exact;
    let mut out = String::new();
    if mode == ListMode::Timeout {
        let t = &v.timeouts;
        let _ = writeln!(
            out,
            "Timeout (tcp tcpfin udp): {} {} {}",
            t.tcp, t.tcpfin, t.udp
        );
        return out;
    }
    let sorted_view;
    let v = if opts.nosort {
        v
    } else {
        sorted_view = sorted(v);
        &sorted_view
    };
    let _ = writeln!(
        out,
        "IP Virtual Server version {} (size={})",
        v.version, v.size
    );
    match mode {
        ListMode::Plain => {
            out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
            out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
        }
        ListMode::Stats => {
            let _ = writeln!(
                out,
                "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
                "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
            );
        }
        ListMode::Rate => {
            let _ = writeln!(
                out,
                "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
                "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
            );
        }
        ListMode::Thresholds => out.push_str(
            "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn\n  -> RemoteAddress:Port\n",
        ),
        ListMode::PersistConn => out.push_str(
            "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn\n  -> RemoteAddress:Port\n",
        ),
        ListMode::Timeout => {}
    }
    for s in &v.services {
        match mode {
            ListMode::Timeout => {}
            ListMode::Thresholds => {
                service_line(&mut out, s);
                for d in &s.servers {
                    let _ = writeln!(
                        out,
                        "  -> {:<28} {:<10} {:<10} {:<10} {:<10}",
                        server_name(d),
                        d.upper_threshold,
                        d.lower_threshold,
                        d.active,
                        d.inactive
                    );
                }
            }
            ListMode::PersistConn => {
                service_line(&mut out, s);
                for d in &s.servers {
                    let _ = writeln!(
                        out,
                        "  -> {:<28} {:<9} {:<11} {:<10} {:<10}",
                        server_name(d),
                        d.effective_weight,
                        d.persistent_conns,
                        d.active,
                        d.inactive
                    );
                }
            }
            ListMode::Plain => {
                service_line(&mut out, s);
                for d in &s.servers {
                    let _ = writeln!(
                        out,
                        "  -> {:<28} {:<7} {:<6} {:<10} {:<10}{}",
                        server_name(d),
                        forward_name(&d.forward),
                        d.effective_weight,
                        d.active,
                        d.inactive,
                        if d.up { "" } else { " (down)" }
                    );
                }
            }
            ListMode::Stats => {
                let _ = write!(out, "{:<33}", service_name(s));
                nums(
                    &mut out,
                    [
                        s.conns,
                        s.in_packets,
                        s.out_packets,
                        s.in_bytes,
                        s.out_bytes,
                    ],
                    exact,
                );
                for d in &s.servers {
                    let _ = write!(out, "  -> {:<28}", server_name(d));
                    nums(
                        &mut out,
                        [
                            d.conns,
                            d.in_packets,
                            d.out_packets,
                            d.in_bytes,
                            d.out_bytes,
                        ],
                        exact,
                    );
                }
            }
            ListMode::Rate => {
                let _ = write!(out, "{:<33}", service_name(s));
                nums(&mut out, rates(&s.rate), exact);
                for d in &s.servers {
                    let _ = write!(out, "  -> {:<28}", server_name(d));
                    nums(&mut out, rates(&d.rate), exact);
                }
            }
        }
    }
    out
}

/// `rvs ctl list --conns`, as `ipvsadm -L -n -c`.
pub fn conns(v: &ConnsView) -> String {
    let mut out = String::from("IPVS connection entries\n");
    let _ = writeln!(
        out,
        "pro expire {:<11} {:<18} {:<18} destination",
        "state", "source", "virtual"
    );
    for c in &v.conns {
        let secs = c.expires_ms.div_ceil(1000);
        // `SocketAddr` writes IPv6 as `[addr]:port`, IPv4 as `addr:port`.
        let source = std::net::SocketAddr::new(c.client, c.cport).to_string();
        let virt = std::net::SocketAddr::new(c.vip, c.vport).to_string();
        let dest = std::net::SocketAddr::new(c.server, c.sport).to_string();
        // Full-NAT: the second tuple, local -> server, is what the server
        // sees.
        let mut local = c.local.map(|l| format!(" local {l}")).unwrap_or_default();
        // An IPv6 template: keyed by the fold of the client prefix.
        if let Some(k) = c.prefix6 {
            let _ = write!(local, " prefix /{} fold {:#010x}", k.len, k.fold);
            if !k.known {
                local.push_str(" (prefix not known: no connection of it listed)");
            }
        }
        let _ = writeln!(
            out,
            "{:<3} {:02}:{:02}  {:<11} {source:<18} {virt:<18} {dest}{local}",
            c.protocol.to_ascii_uppercase(),
            secs / 60,
            secs % 60,
            c.state,
        );
    }
    if v.truncated {
        let _ = writeln!(out, "({} of {} connections shown)", v.conns.len(), v.total);
    }
    if !v.missing_workers.is_empty() {
        let ws: Vec<String> = v.missing_workers.iter().map(|w| w.to_string()).collect();
        let _ = writeln!(
            out,
            "(worker(s) {} did not answer in time: their connections are missing)",
            ws.join(", ")
        );
    }
    out
}

fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}:{m:02}:{s:02}")
    } else {
        format!("{h}:{m:02}:{s:02}")
    }
}

/// `rvs ctl status`.
/// The `[bgp]` lines of `status`: BIRD's state, then one line per VIP.
fn bgp_status(out: &mut String, b: &crate::control::bgp::BgpView) {
    let _ = writeln!(
        out,
        "bgp: bird {} ({} reconfigures, {} failures{}) socket {} routes {}",
        b.bird,
        b.reconfigures,
        b.failures,
        b.bird_error
            .as_deref()
            .map_or_else(String::new, |e| format!("; last error: {e}")),
        b.bird_socket,
        b.routes_file
    );
    for vip in &b.vips {
        let _ = writeln!(
            out,
            "  {:<18} {:<9} ({}) since {}",
            vip.vip.to_string(),
            vip.state,
            vip.reason,
            unix_utc(vip.since)
        );
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
fn unix_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn status(v: &StatusView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rvs {} (pid {}), up {}, config {} (generation {})",
        v.version,
        v.pid,
        duration(v.uptime_secs),
        v.config,
        v.generation
    );
    let _ = writeln!(
        out,
        "role: {}  peer: {}  sync: {}",
        v.role,
        v.peer.map_or_else(|| "-".to_string(), |p| p.to_string()),
        v.sync
    );
    if let Some(h) = &v.ha {
        let _ = writeln!(
            out,
            "ha: vrid {} priority {}  master {} (priority {})  last change: {}  last takeover: {}",
            h.vrid,
            h.priority,
            h.master.map_or_else(|| "-".to_string(), |m| m.to_string()),
            h.master_priority
                .map_or_else(|| "-".to_string(), |p| p.to_string()),
            h.last_change.as_deref().unwrap_or("-"),
            h.last_takeover.as_deref().unwrap_or("-"),
        );
        let _ = writeln!(
            out,
            "ha adverts: {} sent, {} received, {} ignored ({} from non-peers), {} malformed",
            h.adverts_sent,
            h.adverts_received,
            h.adverts_ignored,
            h.adverts_ignored_non_peer,
            h.adverts_bad
        );
        let _ = writeln!(
            out,
            "ha sync: {} messages sent, {} received, {} bad; {} records sent, {} synced in; bulk {} ({} records, {} requests, {} served)",
            h.sync_sent,
            h.sync_received,
            h.sync_bad,
            h.records_sent,
            h.conns_synced,
            h.bulk.state,
            h.bulk.records,
            h.bulk.requests,
            h.bulk.served
        );
    }
    if let Some(b) = &v.bgp {
        bgp_status(&mut out, b);
    }
    let _ = writeln!(
        out,
        "reloads: {} ok, {} refused; live changes since the file was loaded: {}{}",
        v.reloads_ok,
        v.reloads_failed,
        v.api_changes,
        if v.api_changes > 0 {
            " (a reload (SIGHUP) replaces them with the file)"
        } else {
            ""
        }
    );
    out.push_str("workers:\n");
    let _ = writeln!(
        out,
        "  {:<6} {:>12} {:>12} {:>10} {:>10} {:>19} {:>10}",
        "worker", "rx", "tx", "handoff-in", "handoff-out", "conns/size", "drops"
    );
    for w in &v.workers {
        let _ = writeln!(
            out,
            "  {:<6} {:>12} {:>12} {:>10} {:>10} {:>19} {:>10}",
            w.id,
            w.rx_packets,
            w.tx_packets,
            w.handoffs_in,
            w.handoffs_out,
            format!("{}/{}", w.conns, w.capacity),
            w.drops_total
        );
        let c = &w.cost;
        let _ = writeln!(
            out,
            "         busy {:.1}%, {:.0} frames/s, {:.0} cycles/frame, burst {:.1}",
            c.busy_pct, c.frames_per_sec, c.cycles_per_frame, c.avg_burst
        );
        if w.established_hits > 0 {
            let share = 100.0 * w.established_hits as f64 / w.rx_packets.max(1) as f64;
            let _ = writeln!(
                out,
                "         established fast path: {} frames ({share:.1}% of rx)",
                w.established_hits
            );
        }
        if !w.conn_memory.is_empty() {
            let _ = writeln!(out, "         connection table: {}", w.conn_memory);
        }
        if w.rescued > 0 {
            let _ = writeln!(out, "         rescued: {}", w.rescued);
        }
        if !w.drops.is_empty() {
            let d: Vec<String> = w.drops.iter().map(|(k, n)| format!("{k}={n}")).collect();
            let _ = writeln!(out, "         drops: {}", d.join(", "));
        }
    }
    if !v.ports.is_empty() {
        out.push_str("ports:\n");
        let _ = writeln!(
            out,
            "  {:<16} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10}",
            "port", "rx", "tx", "missed", "ring-drops", "rx-errors", "tx-errors"
        );
        for p in &v.ports {
            let _ = writeln!(
                out,
                "  {:<16} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10}",
                p.name, p.ipackets, p.opackets, p.imissed, p.rx_ring_drops, p.ierrors, p.oerrors
            );
        }
    }
    out.push_str("services:\n");
    if v.services.is_empty() {
        out.push_str("  (none)\n");
    }
    for s in &v.services {
        let _ = writeln!(out, "  {}  health check: {}", s.service, s.check);
        for d in &s.servers {
            let _ = writeln!(
                out,
                "    -> {:<21} weight {:<5} {:<4} health: {}{}",
                d.server,
                d.weight,
                if d.up { "up" } else { "down" },
                d.health,
                if d.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", d.detail)
                }
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::ctl_proto::{ConnInfo, ServerHealthView, ServiceHealthView, WorkerView};

    fn view() -> ListView {
        let srv = |last: u8, w: u32, active: u64, inactive: u64, conns: u64| ServerView {
            address: std::net::Ipv4Addr::new(198, 19, 0, last).into(),
            port: 8080,
            forward: "nat".into(),
            weight: w,
            effective_weight: w,
            up: true,
            health: "no-check".into(),
            active,
            inactive,
            conns,
            in_packets: conns * 5,
            out_packets: conns * 4,
            in_bytes: conns * 400,
            out_bytes: conns * 600,
            ..ServerView::default()
        };
        ListView {
            version: "0.1.0".into(),
            size: 65536,
            generation: 3,
            timeouts: Default::default(),
            services: vec![
                ServiceView {
                    protocol: "tcp".into(),
                    vip: "198.18.0.100".parse().unwrap(),
                    port: 80,
                    scheduler: "wrr".into(),
                    forward: "nat".into(),
                    persistence_netmask: std::net::Ipv4Addr::BROADCAST,
                    conns: 15,
                    in_packets: 75,
                    out_packets: 60,
                    in_bytes: 6000,
                    out_bytes: 9000,
                    servers: vec![srv(11, 3, 2, 10, 10), srv(12, 2, 0, 5, 5)],
                    ..ServiceView::default()
                },
                ServiceView {
                    protocol: "udp".into(),
                    vip: "198.18.0.100".parse().unwrap(),
                    port: 53,
                    scheduler: "sh".into(),
                    flags: vec!["sh-port".into()],
                    forward: "dr".into(),
                    persistence: 300,
                    persistence_netmask: "255.255.255.0".parse().unwrap(),
                    rate: Rates {
                        cps: 1,
                        in_pps: 2,
                        out_pps: 3,
                        in_bps: 4,
                        out_bps: 123456789,
                    },
                    servers: vec![],
                    ..ServiceView::default()
                },
            ],
        }
    }

    #[test]
    fn plain_list_is_ipvsadm_layout() {
        let want = "\
IP Virtual Server version 0.1.0 (size=65536)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.100:80 wrr
  -> 198.19.0.11:8080             Masq    3      2          10        
  -> 198.19.0.12:8080             Masq    2      0          5         
UDP  198.18.0.100:53 sh (sh-port) persistent 300 mask 255.255.255.0
";
        assert_eq!(list(&view(), ListMode::Plain), want);
    }

    #[test]
    fn large_counters_round_as_ipvsadm_unless_exact() {
        assert_eq!(largenum(99_999_999, false), "99999999");
        assert_eq!(largenum(123_456_789, false), " 123456K");
        assert_eq!(largenum(12_345_678_901, false), "  12345M");
        assert_eq!(largenum(123_456_789_012, false), "    123G");
        assert_eq!(largenum(123_456_789_012_345, false), "    123T");
        assert_eq!(largenum(12_345_678_901, true), "12345678901");
        let mut v = view();
        v.services[0].in_bytes = 12_345_678_901;
        let text = list(&v, ListMode::Stats);
        let line = text.lines().find(|l| l.starts_with("TCP")).unwrap();
        assert!(
            line.ends_with("    75       60   12345M     9000"),
            "{line}"
        );
        let exact = list_exact(&v, ListMode::Stats, true);
        assert!(exact.contains(" 12345678901 "), "{exact}");
    }

    #[test]
    fn a_server_out_of_the_pool_shows_weight_0_and_down() {
        let mut v = view();
        let d = &mut v.services[0].servers[1];
        d.up = false;
        d.effective_weight = 0;
        let text = list(&v, ListMode::Plain);
        assert!(
            text.contains(
                "  -> 198.19.0.12:8080             Masq    0      0          5          (down)\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn stats_and_rate_lists() {
        let want = "\
IP Virtual Server version 0.1.0 (size=65536)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  198.18.0.100:80                    15       75       60     6000     9000
  -> 198.19.0.11:8080                   10       50       40     4000     6000
  -> 198.19.0.12:8080                    5       25       20     2000     3000
UDP  198.18.0.100:53                     0        0        0        0        0
";
        assert_eq!(list(&view(), ListMode::Stats), want);
        let out = list(&view(), ListMode::Rate);
        assert!(out.contains(
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n"
        ));
        assert!(out.contains(
            "UDP  198.18.0.100:53                     1        2        3        4  123456K\n"
        ));
    }

    #[test]
    fn conns_list_is_ipvsadm_layout() {
        let v = ConnsView {
            total: 3,
            truncated: true,
            missing_workers: vec![1],
            conns: vec![ConnInfo {
                protocol: "tcp".into(),
                client: "198.18.0.10".parse().unwrap(),
                cport: 40000,
                vip: "198.18.0.100".parse().unwrap(),
                vport: 80,
                server: "198.19.0.11".parse().unwrap(),
                sport: 8080,
                state: "ESTABLISHED".into(),
                expires_ms: 899_001,
                forward: "nat".into(),
                worker: 0,
                template: false,
                synced: false,
                local: None,
                prefix6: None,
            }],
        };
        let want = "\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 15:00  ESTABLISHED 198.18.0.10:40000  198.18.0.100:80    198.19.0.11:8080
(1 of 3 connections shown)
(worker(s) 1 did not answer in time: their connections are missing)
";
        assert_eq!(conns(&v), want);
    }

    #[test]
    fn status_text() {
        let v = StatusView {
            version: "0.1.0".into(),
            pid: 42,
            uptime_secs: 3725,
            config: "/etc/rvs/rvs.toml".into(),
            generation: 2,
            role: "standalone".into(),
            sync: "off".into(),
            api_changes: 1,
            workers: vec![WorkerView {
                id: 0,
                rx_packets: 10,
                tx_packets: 9,
                conns: 1,
                capacity: 65536,
                drops_total: 1,
                drops: [("no_server".to_string(), 1)].into_iter().collect(),
                cost: crate::control::cost::WorkerCost {
                    busy_pct: 12.34,
                    frames_per_sec: 250_000.0,
                    cycles_per_frame: 187.6,
                    avg_burst: 7.3,
                    ..Default::default()
                },
                conn_memory: "dpdk hugetlbfs 2 MiB pages".into(),
                ..WorkerView::default()
            }],
            services: vec![ServiceHealthView {
                service: "tcp:198.18.0.100:80".into(),
                check: "none".into(),
                servers: vec![ServerHealthView {
                    server: "198.19.0.11:8080".into(),
                    weight: 3,
                    up: true,
                    health: "no-check".into(),
                    detail: "no check configured".into(),
                }],
            }],
            ..StatusView::default()
        };
        let s = status(&v);
        assert!(s.starts_with("rvs 0.1.0 (pid 42), up 1:02:05, config /etc/rvs/rvs.toml (generation 2)\nrole: standalone  peer: -  sync: off\n"), "{s}");
        assert!(s.contains("live changes since the file was loaded: 1 (a reload (SIGHUP) replaces them with the file)"));
        assert!(s.contains("         drops: no_server=1\n"), "{s}");
        assert!(
            s.contains("         busy 12.3%, 250000 frames/s, 188 cycles/frame, burst 7.3\n"),
            "{s}"
        );
        assert!(s.contains("1/65536"));
        assert!(
            s.contains("         connection table: dpdk hugetlbfs 2 MiB pages\n"),
            "{s}"
        );
        assert!(s.contains(
            "    -> 198.19.0.11:8080      weight 3     up   health: no-check (no check configured)\n"
        ), "{s}");
        assert!(!s.contains("bgp:"));
    }

    #[test]
    fn status_bgp_lines() {
        use crate::control::bgp::{BgpView, BgpVipView};
        let v = StatusView {
            bgp: Some(BgpView {
                bird_socket: "/run/bird/bird.ctl".into(),
                routes_file: "/etc/bird/rvs-vips.conf".into(),
                bird: "error".into(),
                bird_error: Some("cannot connect".into()),
                reconfigures: 3,
                failures: 1,
                vips: vec![
                    BgpVipView {
                        vip: "198.18.0.100".parse().unwrap(),
                        state: "announced".into(),
                        reason: "live".into(),
                        since: 1_700_000_000,
                    },
                    BgpVipView {
                        vip: "198.18.0.101".parse().unwrap(),
                        state: "withdrawn".into(),
                        reason: "operator".into(),
                        since: 951_782_400,
                    },
                ],
            }),
            ..StatusView::default()
        };
        let s = status(&v);
        assert!(s.contains("bgp: bird error (3 reconfigures, 1 failures; last error: cannot connect) socket /run/bird/bird.ctl routes /etc/bird/rvs-vips.conf\n"), "{s}");
        assert!(
            s.contains("  198.18.0.100       announced (live) since 2023-11-14 22:13:20 UTC\n"),
            "{s}"
        );
        assert!(
            s.contains("  198.18.0.101       withdrawn (operator) since 2000-02-29 00:00:00 UTC\n"),
            "{s}"
        );
    }

    /// The view as configured in another order: UDP before TCP, rs2
    /// before rs1; with thresholds and persistence templates.
    fn unsorted() -> ListView {
        let mut v = view();
        v.services.reverse();
        v.services[1].servers.reverse();
        let rs2 = &mut v.services[1].servers[0];
        rs2.upper_threshold = 10000;
        rs2.lower_threshold = 100;
        rs2.persistent_conns = 7;
        v.services[1].servers[1].persistent_conns = 1;
        v.services[1].persistence = 60;
        v
    }

    #[test]
    fn list_sorts_as_ipvsadm_unless_nosort() {
        let sorted_text = "\
IP Virtual Server version 0.1.0 (size=65536)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.100:80 wrr persistent 60
  -> 198.19.0.11:8080             Masq    3      2          10        
  -> 198.19.0.12:8080             Masq    2      0          5         
UDP  198.18.0.100:53 sh (sh-port) persistent 300 mask 255.255.255.0
";
        assert_eq!(list(&unsorted(), ListMode::Plain), sorted_text);
        let config_order = "\
IP Virtual Server version 0.1.0 (size=65536)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
UDP  198.18.0.100:53 sh (sh-port) persistent 300 mask 255.255.255.0
TCP  198.18.0.100:80 wrr persistent 60
  -> 198.19.0.12:8080             Masq    2      0          5         
  -> 198.19.0.11:8080             Masq    3      2          10        
";
        let nosort = ListOpts {
            exact: false,
            nosort: true,
        };
        assert_eq!(
            list_with(&unsorted(), ListMode::Plain, nosort),
            config_order
        );
        // addresses sort as numbers, not text: .9 before .10, port 80 before 443
        let mut v = unsorted();
        let mk = |addr: [u8; 4], port| ServerView {
            address: addr.into(),
            port,
            ..ServerView::default()
        };
        v.services[1].servers = vec![
            mk([198, 19, 0, 10], 80),
            mk([198, 19, 0, 9], 443),
            mk([198, 19, 0, 9], 80),
        ];
        v.services[0].vip = "198.18.0.99".parse().unwrap();
        let s = sorted(&v);
        let order: Vec<String> = s.services[0].servers.iter().map(server_name).collect();
        assert_eq!(order, ["198.19.0.9:80", "198.19.0.9:443", "198.19.0.10:80"]);
        assert_eq!(
            s.services[0].protocol, "tcp",
            "TCP before UDP whatever the VIP"
        );
    }

    #[test]
    fn thresholds_and_persistent_conn_columns() {
        let want = "\
IP Virtual Server version 0.1.0 (size=65536)
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn
  -> RemoteAddress:Port
TCP  198.18.0.100:80 wrr persistent 60
  -> 198.19.0.11:8080             0          0          2          10        
  -> 198.19.0.12:8080             10000      100        0          5         
UDP  198.18.0.100:53 sh (sh-port) persistent 300 mask 255.255.255.0
";
        assert_eq!(list(&unsorted(), ListMode::Thresholds), want);
        let want = "\
IP Virtual Server version 0.1.0 (size=65536)
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn
  -> RemoteAddress:Port
TCP  198.18.0.100:80 wrr persistent 60
  -> 198.19.0.11:8080             3         1           2          10        
  -> 198.19.0.12:8080             2         7           0          5         
UDP  198.18.0.100:53 sh (sh-port) persistent 300 mask 255.255.255.0
";
        assert_eq!(list(&unsorted(), ListMode::PersistConn), want);
    }

    #[test]
    fn timeout_line_is_ipvsadm_s() {
        let mut v = view();
        v.timeouts = crate::control::ctl_proto::TimeoutsView {
            tcp: 900,
            tcpfin: 120,
            udp: 2,
        };
        assert_eq!(
            list(&v, ListMode::Timeout),
            "Timeout (tcp tcpfin udp): 900 120 2\n"
        );
    }
}

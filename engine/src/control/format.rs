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
mod tests;

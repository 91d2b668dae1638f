//! `[control] metrics = "IP:PORT"`: the counters in the Prometheus text
//! exposition format (version 0.0.4), served at `GET /metrics` by a small
//! thread on a std `TcpListener` (one short-lived thread per scrape, at most
//! [`MAX_SCRAPES`] at once). Each connection has deadlines, not just
//! timeouts between reads: [`REQUEST_DEADLINE`] from its accept to send the
//! whole request head (else `408` and closed), then [`ANSWER_DEADLINE`] to
//! take the answer; a client that trickles bytes cannot hold a slot longer.
//! A client beyond the slots gets `503` at once, written without blocking
//! the accept loop.
//!
//! The bind should not be reachable by clients: `rvs check` refuses
//! `0.0.0.0`/`::` and the ports' own addresses (which the exception path
//! hands to the kernel).
//!
//! Everything is rendered at scrape time from what the workers and the
//! controller share: the current snapshot (services, servers, weights, up),
//! the servers' per-worker counters summed, the workers' own counters, and
//! the controller's [`ControlInfo`]. Counters are the raw totals since the
//! director started: `rvs ctl zero` does not reset them (Prometheus counters
//! only go up; use `rate()`).
//!
//! Labels: `service="tcp:198.18.0.100:80"`, `server="198.19.0.11:8080"`,
//! `worker="0"`, `reason="no_server"`; an IPv6 endpoint in brackets, as
//! everywhere else: `service="tcp:[2001:db8::100]:80"`,
//! `server="[2001:db8::11]:8080"`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{
    AtomicU64, AtomicUsize,
    Ordering::{AcqRel, Relaxed},
};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::ctl_proto::MbufPoolView;
use super::stats::Counts;
use crate::dataplane::counters::{Drop, PortStats, WorkerStats};
use crate::dataplane::Shared;
use crate::packet::DropReason;

/// Scrapes served at once.
pub const MAX_SCRAPES: usize = 16;
/// How long a client has, from its accept, to send its request head.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// How long it has, once the answer is ready, to take all of it.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(5);
/// Longest request head read.
const MAX_HEAD: u64 = 8192;

/// A metric family computed from one `T`: name (or suffix), help, value.
type Field<T> = (&'static str, &'static str, fn(&T) -> u64);

/// What the controller publishes for the metrics (and nothing else).
pub struct ControlInfo {
    pub started: Instant,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    pub api_ok: AtomicU64,
    pub api_errors: AtomicU64,
    pub api_changes: AtomicU64,
    /// Each worker's connection table size.
    pub capacity_per_worker: AtomicU64,
    /// `[ha]`: the HA thread's view, once it runs.
    pub ha: std::sync::Mutex<Option<Arc<std::sync::Mutex<crate::control::ha::HaView>>>>,
    /// `[bgp]`: each VIP and whether it is announced (`None` without
    /// `[bgp]`); the controller replaces it on every change.
    pub bgp: std::sync::Mutex<Option<Vec<(std::net::Ipv4Addr, bool)>>>,
}

impl ControlInfo {
    pub fn new(capacity_per_worker: u64) -> ControlInfo {
        ControlInfo {
            started: Instant::now(),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            api_ok: AtomicU64::new(0),
            api_errors: AtomicU64::new(0),
            api_changes: AtomicU64::new(0),
            capacity_per_worker: AtomicU64::new(capacity_per_worker),
            ha: std::sync::Mutex::new(None),
            bgp: std::sync::Mutex::new(None),
        }
    }
}

/// Binds `addr` and serves scrapes on a thread.
pub fn start(addr: SocketAddr, shared: Arc<Shared>, info: Arc<ControlInfo>) -> Result<()> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("control.metrics: cannot bind {addr}"))?;
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("rvs-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(stream) = conn else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let accepted = Instant::now();
                if active.fetch_add(1, AcqRel) >= MAX_SCRAPES {
                    active.fetch_sub(1, AcqRel);
                    refuse(stream);
                    continue;
                }
                let slot = SlotGuard(active.clone());
                let (shared, info) = (shared.clone(), info.clone());
                // On a spawn error the closure, and so the guard, is dropped.
                let _ = std::thread::Builder::new()
                    .name("rvs-scrape".into())
                    .spawn(move || {
                        let _slot = slot;
                        serve(stream, accepted, &shared, &info);
                    });
            }
        })
        .context("cannot start the metrics thread")?;
    tracing::info!(%addr, "metrics at http://{addr}/metrics");
    Ok(())
}

/// Holds a scrape slot until dropped.
struct SlotGuard(Arc<AtomicUsize>);

impl std::ops::Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, AcqRel);
    }
}

/// `503` to a client beyond the slots, from the accept loop: never blocks
/// (non-blocking socket, what fits in its send buffer, which a fresh socket
/// has room for).
fn refuse(stream: TcpStream) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    // Take what the client already sent, so the close is not a reset that
    // could discard the answer before the client reads it.
    let mut sink = [0u8; 1024];
    let _ = (&stream).read(&mut sink);
    let _ = respond(
        &mut &stream,
        "503 Service Unavailable",
        "too many scrapes\n",
    );
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// A stream whose every read and write must end by `until`: each call gets
/// the time left as its timeout, and none is started after it.
struct Deadline<'a> {
    s: &'a TcpStream,
    until: Instant,
}

impl Deadline<'_> {
    fn left(&self) -> std::io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        Ok(left)
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.s.set_read_timeout(Some(self.left()?))?;
        (&mut &*self.s).read(buf)
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.s.set_write_timeout(Some(self.left()?))?;
        (&mut &*self.s).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn respond(s: &mut impl Write, status: &str, body: &str) -> std::io::Result<()> {
    let ctype = if status.starts_with("200") {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    s.flush()
}

/// Reads a request head (up to its blank line, or the end of the stream)
/// and returns its first line.
fn read_head(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut first = String::new();
    r.read_line(&mut first)?;
    // Read (and ignore) the headers, up to the blank line.
    loop {
        let mut h = String::new();
        match r.read_line(&mut h) {
            Ok(0) => break,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => break,
            Err(e) => return Err(e),
        }
    }
    Ok(first)
}

fn serve(stream: TcpStream, accepted: Instant, shared: &Shared, info: &ControlInfo) {
    let reader = Deadline {
        s: &stream,
        until: accepted + REQUEST_DEADLINE,
    };
    let first = match read_head(&mut BufReader::new(reader.take(MAX_HEAD))) {
        Ok(first) => first,
        Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
            // Too slow: say so if it fits, and close.
            let _ = stream.set_nonblocking(true);
            let _ = respond(
                &mut &stream,
                "408 Request Timeout",
                "no complete request in time\n",
            );
            return;
        }
        Err(_) => return,
    };
    let mut parts = first.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", render(shared, info)),
        ("GET", "/") => ("200 OK", "rvs: metrics at /metrics\n".to_string()),
        ("GET", _) => ("404 Not Found", "not found: try /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "only GET\n".to_string()),
    };
    let mut out = Deadline {
        s: &stream,
        until: Instant::now() + ANSWER_DEADLINE,
    };
    let _ = respond(&mut out, status, &body);
}

/// Escapes a label value.
/// A service's label: `proto:vip:ports`, an IPv6 VIP in brackets.
fn service_label(proto: u8, vip: std::net::IpAddr, port: u16, ports: &[u16]) -> String {
    let proto = match proto {
        crate::conn::PROTO_TCP => "tcp".to_string(),
        crate::conn::PROTO_UDP => "udp".to_string(),
        p => p.to_string(),
    };
    let ports = if ports.is_empty() {
        port.to_string()
    } else {
        crate::config::port_list(ports)
    };
    format!("{proto}:{}:{ports}", crate::config::host_part(vip))
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family being written.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: u64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", esc(val));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {v}");
    }
}

/// The whole exposition.
/// `[bgp]`: 1 per announced VIP, 0 per withdrawn one (nothing without
/// `[bgp]`).
fn render_bgp(o: &mut Out, info: &ControlInfo) {
    let vips = {
        let g = info.bgp.lock().unwrap_or_else(|e| e.into_inner());
        match &*g {
            Some(v) => v.clone(),
            None => return,
        }
    };
    o.family(
        "rvs_bgp_announced",
        "gauge",
        "Whether this director announces the VIP through BIRD (1) or withdrew it (0).",
    );
    for (vip, on) in vips {
        o.sample(
            "rvs_bgp_announced",
            &[("vip", &vip.to_string())],
            u64::from(on),
        );
    }
}

/// `[ha]`: role, adverts and sync counters (nothing without `[ha]`).
fn render_ha(o: &mut Out, info: &ControlInfo) {
    let view = {
        let g = info.ha.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_ref() {
            Some(v) => v.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            None => return,
        }
    };
    o.family(
        "rvs_ha_role",
        "gauge",
        "1 for the director's current VRRP role (init, backup, master).",
    );
    for r in ["init", "backup", "master"] {
        o.sample("rvs_ha_role", &[("role", r)], u64::from(view.role == r));
    }
    o.family("rvs_ha_priority", "gauge", "This director's VRRP priority.");
    o.sample("rvs_ha_priority", &[], u64::from(view.priority));
    o.family(
        "rvs_ha_transitions_total",
        "counter",
        "VRRP role changes since start.",
    );
    o.sample("rvs_ha_transitions_total", &[], view.transitions);
    o.family(
        "rvs_ha_adverts_total",
        "counter",
        "VRRP adverts, by what happened to them.",
    );
    for (k, v) in [
        ("sent", view.adverts_sent),
        ("received", view.adverts_received),
        ("ignored", view.adverts_ignored),
        ("ignored_non_peer", view.adverts_ignored_non_peer),
        ("malformed", view.adverts_bad),
    ] {
        o.sample("rvs_ha_adverts_total", &[("result", k)], v);
    }
    o.family(
        "rvs_ha_sync_messages_total",
        "counter",
        "Connection-sync datagrams: sent, received (authenticated), bad (failed authentication, malformed or replayed).",
    );
    for (k, v) in [
        ("sent", view.sync_sent),
        ("received", view.sync_received),
        ("bad", view.sync_bad),
    ] {
        o.sample("rvs_ha_sync_messages_total", &[("result", k)], v);
    }
    o.family(
        "rvs_ha_sync_records_total",
        "counter",
        "Connection and template records sent to the peers and received from them.",
    );
    o.sample(
        "rvs_ha_sync_records_total",
        &[("direction", "sent")],
        view.records_sent,
    );
    o.sample(
        "rvs_ha_sync_records_total",
        &[("direction", "received")],
        view.conns_synced,
    );
    o.family(
        "rvs_ha_bulk_done",
        "gauge",
        "1 once this director has its bulk copy (or needs none).",
    );
    o.sample(
        "rvs_ha_bulk_done",
        &[],
        u64::from(matches!(
            view.bulk.state.as_str(),
            "done" | "not-needed" | "gave-up"
        )),
    );
}

/// The packet mempool's usage; `None` without the DPDK data plane (unit
/// tests, fuzzing) or before the pool exists.
pub fn mbuf_pool() -> Option<MbufPoolView> {
    #[cfg(feature = "dpdk")]
    {
        crate::dataplane::mbuf::packet_pool_usage()
            .map(|(in_use, size)| MbufPoolView { in_use, size })
    }
    #[cfg(not(feature = "dpdk"))]
    {
        None
    }
}

pub fn render(shared: &Shared, info: &ControlInfo) -> String {
    let mut o = Out(String::with_capacity(16 * 1024));
    let snap = shared.snapshot.load_full();

    o.family("rvs_info", "gauge", "rvs build information.");
    o.sample("rvs_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);
    o.family(
        "rvs_uptime_seconds",
        "gauge",
        "Seconds since the control thread started.",
    );
    o.sample("rvs_uptime_seconds", &[], info.started.elapsed().as_secs());
    o.family(
        "rvs_config_generation",
        "gauge",
        "Generation of the configuration snapshot the workers run.",
    );
    o.sample("rvs_config_generation", &[], snap.generation);
    o.family(
        "rvs_config_reloads_total",
        "counter",
        "SIGHUP reloads, applied or refused.",
    );
    o.sample(
        "rvs_config_reloads_total",
        &[("result", "ok")],
        info.reloads_ok.load(Relaxed),
    );
    o.sample(
        "rvs_config_reloads_total",
        &[("result", "error")],
        info.reloads_failed.load(Relaxed),
    );
    o.family(
        "rvs_api_requests_total",
        "counter",
        "Control API requests answered, by result.",
    );
    o.sample(
        "rvs_api_requests_total",
        &[("result", "ok")],
        info.api_ok.load(Relaxed),
    );
    o.sample(
        "rvs_api_requests_total",
        &[("result", "error")],
        info.api_errors.load(Relaxed),
    );

    if let Some(m) = mbuf_pool() {
        o.family(
            "rvs_mbuf_pool_in_use",
            "gauge",
            "Mbufs of the packet pool in use (rings, workers, lcore caches); flat under steady traffic.",
        );
        o.sample("rvs_mbuf_pool_in_use", &[], u64::from(m.in_use));
        o.family("rvs_mbuf_pool_size", "gauge", "Mbufs in the packet pool.");
        o.sample("rvs_mbuf_pool_size", &[], u64::from(m.size));
    }

    render_ha(&mut o, info);
    render_bgp(&mut o, info);

    // Services and servers of the running snapshot. A service counts the
    // traffic of every server it ever had, as IPVS counts a service.
    let entries = shared.registry.entries();
    let mut per_service: HashMap<u16, Counts> = HashMap::new();
    for (svc, _, _, d) in &entries {
        let e = per_service.entry(*svc).or_default();
        *e = e.plus(Counts::of(d));
    }
    let svc_name = |s: &crate::dataplane::snapshot::Service| {
        service_label(s.proto, s.vip.into(), s.port, &s.ports)
    };
    let svc_name6 = |s: &crate::dataplane::snapshot::Service6| {
        service_label(s.proto, s.vip.into(), s.port, &s.ports)
    };
    fn load<A>(servers: &[crate::dataplane::snapshot::Server<A>]) -> (u64, u64) {
        servers.iter().fold((0u64, 0u64), |(a, i), d| {
            (
                a + u64::from(d.shared.active()),
                i + u64::from(d.shared.inactive()),
            )
        })
    }
    let counts_of = |id: u16| per_service.get(&id).copied().unwrap_or_default();
    let services: Vec<(String, Counts, u64, u64)> = snap
        .services
        .iter()
        .map(|s| {
            let (a, i) = load(&s.servers);
            (svc_name(s), counts_of(s.id), a, i)
        })
        .chain(snap.services6.iter().map(|s| {
            let (a, i) = load(&s.servers);
            (svc_name6(s), counts_of(s.id), a, i)
        }))
        .collect();
    let counter_fields: [Field<Counts>; 5] = [
        ("connections_total", "Connections scheduled", |c| c.conns),
        ("in_packets_total", "Packets client -> server", |c| {
            c.in_packets
        }),
        ("out_packets_total", "Packets server -> client", |c| {
            c.out_packets
        }),
        ("in_bytes_total", "Bytes client -> server (frames)", |c| {
            c.in_bytes
        }),
        ("out_bytes_total", "Bytes server -> client (frames)", |c| {
            c.out_bytes
        }),
    ];
    for (suffix, help, get) in counter_fields {
        let name = format!("rvs_service_{suffix}");
        o.family(&name, "counter", &format!("{help}, per virtual service."));
        for (s, c, _, _) in &services {
            o.sample(&name, &[("service", s)], get(c));
        }
    }
    o.family(
        "rvs_service_active_connections",
        "gauge",
        "Active connections (TCP established and opening), per service.",
    );
    for (s, _, a, _) in &services {
        o.sample("rvs_service_active_connections", &[("service", s)], *a);
    }
    o.family(
        "rvs_service_inactive_connections",
        "gauge",
        "Inactive connections (other TCP states, UDP), per service.",
    );
    for (s, _, _, i) in &services {
        o.sample("rvs_service_inactive_connections", &[("service", s)], *i);
    }

    struct Srv {
        service: String,
        server: String,
        c: Counts,
        active: u64,
        inactive: u64,
        weight: u64,
        up: u64,
    }
    fn srv<A: Into<std::net::IpAddr> + Copy>(
        service: &str,
        d: &crate::dataplane::snapshot::Server<A>,
    ) -> Srv {
        Srv {
            service: service.to_string(),
            // `[addr]:port` for an IPv6 server.
            server: std::net::SocketAddr::new(d.addr.into(), d.port).to_string(),
            c: Counts::of(&d.shared),
            active: u64::from(d.shared.active()),
            inactive: u64::from(d.shared.inactive()),
            weight: u64::from(d.weight),
            up: u64::from(d.usable),
        }
    }
    let servers: Vec<Srv> = snap
        .services
        .iter()
        .flat_map(|s| {
            let name = svc_name(s);
            s.servers.iter().map(|d| srv(&name, d)).collect::<Vec<_>>()
        })
        .chain(snap.services6.iter().flat_map(|s| {
            let name = svc_name6(s);
            s.servers.iter().map(|d| srv(&name, d)).collect::<Vec<_>>()
        }))
        .collect();
    for (suffix, help, get) in counter_fields {
        let name = format!("rvs_server_{suffix}");
        o.family(&name, "counter", &format!("{help}, per real server."));
        for d in &servers {
            o.sample(
                &name,
                &[("service", &d.service), ("server", &d.server)],
                get(&d.c),
            );
        }
    }
    let gauges: [Field<Srv>; 4] = [
        (
            "rvs_server_active_connections",
            "Active connections, per real server.",
            |d| d.active,
        ),
        (
            "rvs_server_inactive_connections",
            "Inactive connections, per real server.",
            |d| d.inactive,
        ),
        (
            "rvs_server_weight",
            "Weight in the pool (0: drained or inhibited).",
            |d| d.weight,
        ),
        (
            "rvs_server_up",
            "1 when the server is in the pool, 0 when a health check removed it.",
            |d| d.up,
        ),
    ];
    for (name, help, get) in gauges {
        o.family(name, "gauge", help);
        for d in &servers {
            o.sample(
                name,
                &[("service", &d.service), ("server", &d.server)],
                get(d),
            );
        }
    }

    // Workers.
    let ws = &shared.worker_stats;
    let worker_counters: [Field<WorkerStats>; 29] = [
        (
            "rvs_worker_loop_cycles_total",
            "TSC cycles of the worker's poll loops.",
            |w| w.loop_cycles.get(),
        ),
        (
            "rvs_worker_busy_cycles_total",
            "TSC cycles of the poll loops that moved frames (busy share: rate of this / rate of loop cycles).",
            |w| w.busy_cycles.get(),
        ),
        (
            "rvs_worker_busy_frames_total",
            "Frames the busy loops took in (cycles per frame: rate of busy cycles / rate of this).",
            |w| w.busy_frames.get(),
        ),
        (
            "rvs_worker_empty_poll_cycles_total",
            "Of the busy cycles, those of rx polls that returned nothing (testpmd's --record-core-cycles leaves them out).",
            |w| w.empty_poll_cycles.get(),
        ),
        (
            "rvs_worker_rx_bursts_total",
            "Port rx bursts that returned frames (burst size: rate of rx packets / rate of this).",
            |w| w.rx_bursts.get(),
        ),
        ("rvs_worker_rx_packets_total", "Frames received.", |w| {
            w.rx_packets.get()
        }),
        ("rvs_worker_tx_packets_total", "Frames sent.", |w| {
            w.tx_packets.get()
        }),
        (
            "rvs_worker_handoffs_in_total",
            "Frames handed to this worker by others.",
            |w| w.handoffs_in.get(),
        ),
        (
            "rvs_worker_handoffs_out_total",
            "Frames this worker handed to their owner.",
            |w| w.handoffs_out.get(),
        ),
        (
            "rvs_worker_connections_created_total",
            "Connections created.",
            |w| w.conns_created.get(),
        ),
        (
            "rvs_worker_connections_expired_total",
            "Connections expired.",
            |w| w.conns_expired.get(),
        ),
        (
            "rvs_worker_connections_evicted_total",
            "Embryonic or idle UDP connections evicted to make room in a full table.",
            |w| w.conns_evicted.get(),
        ),
        (
            "rvs_worker_syn_cookies_sent_total",
            "SYN-ACKs with a SYN cookie sent by the synproxy.",
            |w| w.syn_cookies_sent.get(),
        ),
        (
            "rvs_worker_syn_cookies_ok_total",
            "Connections the synproxy opened after a valid cookie ACK.",
            |w| w.syn_cookies_ok.get(),
        ),
        (
            "rvs_worker_established_hits_total",
            "Frames the established fast path forwarded (the others took the full path).",
            |w| w.established_hits.get(),
        ),
        (
            "rvs_worker_rescued_total",
            "Segments of moved flows (no entry, not a SYN) forwarded to the mh pick on a DR/TUN service.",
            |w| w.rescued.get(),
        ),
        (
            "rvs_worker_nodest_expired_total",
            "Connections expired by their next packet because their real server was gone.",
            |w| w.nodest_expired.get(),
        ),
        (
            "rvs_worker_nodest_rst_sent_total",
            "RSTs sent to clients whose connection's real server was gone.",
            |w| w.nodest_rst_sent.get(),
        ),
        (
            "rvs_worker_sync_records_total",
            "Connection-sync records reported to the HA thread.",
            |w| w.sync_reported.get(),
        ),
        (
            "rvs_worker_sync_lost_total",
            "Connection-sync records lost to a full queue.",
            |w| w.sync_lost.get(),
        ),
        (
            "rvs_worker_sync_installed_total",
            "Synced connections and templates installed from a peer.",
            |w| w.sync_installed.get(),
        ),
        ("rvs_worker_arp_replies_total", "ARP replies sent.", |w| {
            w.arp_replies_sent.get()
        }),
        ("rvs_worker_arp_requests_total", "ARP requests sent.", |w| {
            w.arp_requests_sent.get()
        }),
        (
            "rvs_worker_nd_adverts_total",
            "IPv6 neighbour advertisements sent (answers to solicitations).",
            |w| w.nd_adverts_sent.get(),
        ),
        (
            "rvs_worker_nd_solicits_total",
            "IPv6 neighbour solicitations sent (resolving servers and gateways).",
            |w| w.nd_solicits_sent.get(),
        ),
        (
            "rvs_worker_nd_unsolicited_total",
            "Unsolicited IPv6 neighbour advertisements sent for owned addresses.",
            |w| w.nd_unsolicited_sent.get(),
        ),
        (
            "rvs_worker_fragments_forwarded_total",
            "IPv4 fragments forwarded (first and later ones).",
            |w| w.frags_forwarded.get(),
        ),
        (
            "rvs_worker_fragments_held_total",
            "Later IPv4 fragments held until their first fragment came.",
            |w| w.frags_held.get(),
        ),
        (
            "rvs_worker_fragment_entries_evicted_total",
            "Live fragment-table entries evicted to make room.",
            |w| w.frags_evicted.get(),
        ),
    ];
    let ids: Vec<String> = (0..ws.len()).map(|i| i.to_string()).collect();
    for (name, help, get) in worker_counters {
        o.family(name, "counter", help);
        for (i, w) in ws.iter().enumerate() {
            o.sample(name, &[("worker", &ids[i])], get(w));
        }
    }
    o.family(
        "rvs_worker_connections",
        "gauge",
        "Connections in the worker's table.",
    );
    for (i, w) in ws.iter().enumerate() {
        o.sample(
            "rvs_worker_connections",
            &[("worker", &ids[i])],
            w.conns.get(),
        );
    }
    o.family(
        "rvs_worker_connection_capacity",
        "gauge",
        "Size of the worker's connection table.",
    );
    let cap = info.capacity_per_worker.load(Relaxed);
    for id in &ids {
        o.sample("rvs_worker_connection_capacity", &[("worker", id)], cap);
    }
    o.family(
        "rvs_worker_drops_total",
        "counter",
        "Frames dropped, by worker and reason (parser and data plane).",
    );
    for (i, w) in ws.iter().enumerate() {
        for d in DropReason::ALL {
            o.sample(
                "rvs_worker_drops_total",
                &[("worker", &ids[i]), ("reason", d.as_str())],
                w.parse_drops[d.index()].get(),
            );
        }
        for d in Drop::ALL {
            o.sample(
                "rvs_worker_drops_total",
                &[("worker", &ids[i]), ("reason", d.as_str())],
                w.drops[d as usize].get(),
            );
        }
    }
    render_ports(&mut o, &shared.port_stats());
    o.0
}

/// The ports' device counters (refreshed about once a second).
fn render_ports(o: &mut Out, ports: &[PortStats]) {
    let fields: [Field<PortStats>; 5] = [
        (
            "rvs_port_rx_packets_total",
            "Frames the device received.",
            |p| p.ipackets,
        ),
        (
            "rvs_port_tx_packets_total",
            "Frames the device sent.",
            |p| p.opackets,
        ),
        (
            "rvs_port_rx_missed_total",
            "Frames the device dropped for lack of RX descriptors (imissed).",
            |p| p.imissed,
        ),
        (
            "rvs_port_rx_nombuf_total",
            "Frames dropped for lack of mbufs.",
            |p| p.rx_nombuf,
        ),
        (
            "rvs_port_rx_ring_drops_total",
            "net_af_packet: frames the kernel dropped at the PMD's full RX ring.",
            |p| p.rx_ring_drops,
        ),
    ];
    for (name, help, get) in fields {
        o.family(name, "counter", help);
        for p in ports {
            o.sample(name, &[("port", &p.name)], get(p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::snapshot::{AllUp, Snapshot};

    const CFG: &str = r#"
[dpdk]
cores = "0-2"
workers = 2
[[port]]
name = "servers"
device = "net_null0"
address = "198.19.0.1/24"
[[service]]
vip = "198.18.0.100"
port = 80
  [[service.server]]
  address = "198.19.0.11"
  port = 8080
  weight = 3
[[service]]
vip = "198.18.0.100"
port = 53
protocol = "udp"
  [[service.server]]
  address = "198.19.0.12"
  port = 5353
"#;

    /// A strict reading of the text format: every sample belongs to the
    /// family declared just before it by `# HELP` and `# TYPE`, names and
    /// label names are valid, values are numbers, no family appears twice.
    /// A sample: name, labels, value.
    type Sample = (String, Vec<(String, String)>, f64);

    fn check_exposition(text: &str) -> Vec<Sample> {
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.chars().enumerate().all(|(i, c)| {
                    c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
                })
        };
        let mut samples = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let (mut help, mut typ): (Option<String>, Option<String>) = (None, None);
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(name_ok(&name), "{line}");
                assert!(seen.insert(name.clone()), "family {name} twice");
                help = Some(name);
                typ = None;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut p = rest.split(' ');
                let name = p.next().unwrap();
                let kind = p.next().unwrap();
                assert_eq!(Some(name), help.as_deref(), "{line}");
                assert!(["counter", "gauge"].contains(&kind), "{line}");
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "{line}");
                }
                typ = Some(name.to_string());
            } else {
                assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
                let (series, value) = line.rsplit_once(' ').unwrap();
                let v: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
                let (name, labels) = match series.split_once('{') {
                    Some((n, l)) => (n, l.strip_suffix('}').expect(line)),
                    None => (series, ""),
                };
                assert_eq!(
                    Some(name),
                    typ.as_deref(),
                    "sample outside its family: {line}"
                );
                let mut ls = Vec::new();
                if !labels.is_empty() {
                    for kv in labels.split("\",") {
                        let (k, v) = kv.split_once("=\"").expect(line);
                        assert!(name_ok(k), "{line}");
                        ls.push((k.to_string(), v.trim_end_matches('"').to_string()));
                    }
                }
                samples.push((name.to_string(), ls, v));
            }
        }
        samples
    }

    fn get(s: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        let hits: Vec<f64> = s
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels.len() == l.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(k2, v2)| k2 == k && v2 == v))
            })
            .map(|x| x.2)
            .collect();
        assert_eq!(hits.len(), 1, "{name} {labels:?}");
        hits[0]
    }

    #[test]
    fn exposition_is_valid_and_counts_are_right() {
        let cfg = crate::config::parse(CFG).unwrap();
        let shared = Shared::new(2);
        let snap = Snapshot::build(&cfg, &[], &shared.registry, 7, &AllUp).unwrap();
        let d = snap.services[0].servers[0].shared.clone();
        d.per_worker[0].conns.add(3);
        d.per_worker[1].conns.add(2);
        d.per_worker[1].in_bytes.add(1000);
        d.per_worker[0].active.add(1);
        shared.publish(snap);
        shared.worker_stats[1].rx_packets.add(42);
        shared.worker_stats[0].drops[Drop::NoServer as usize].add(5);
        shared.worker_stats[1].parse_drops[DropReason::ALL[0].index()].add(2);
        let info = ControlInfo::new(32768);
        info.reloads_failed.store(1, Relaxed);
        *shared.port_stats.lock().unwrap() = vec![PortStats {
            name: "net_af_packet0".to_string(),
            ipackets: 10,
            rx_ring_drops: 7,
            ..PortStats::default()
        }];

        let text = render(&shared, &info);
        let s = check_exposition(&text);
        let svc = ("service", "tcp:198.18.0.100:80");
        let srv = ("server", "198.19.0.11:8080");
        assert_eq!(get(&s, "rvs_config_generation", &[]), 7.0);
        let port = [("port", "net_af_packet0")];
        assert_eq!(get(&s, "rvs_port_rx_ring_drops_total", &port), 7.0);
        assert_eq!(get(&s, "rvs_port_rx_packets_total", &port), 10.0);
        assert_eq!(
            get(&s, "rvs_config_reloads_total", &[("result", "error")]),
            1.0
        );
        assert_eq!(get(&s, "rvs_service_connections_total", &[svc]), 5.0);
        assert_eq!(get(&s, "rvs_server_connections_total", &[svc, srv]), 5.0);
        assert_eq!(get(&s, "rvs_server_in_bytes_total", &[svc, srv]), 1000.0);
        assert_eq!(get(&s, "rvs_server_active_connections", &[svc, srv]), 1.0);
        assert_eq!(get(&s, "rvs_service_active_connections", &[svc]), 1.0);
        assert_eq!(get(&s, "rvs_server_weight", &[svc, srv]), 3.0);
        assert_eq!(get(&s, "rvs_server_up", &[svc, srv]), 1.0);
        assert_eq!(
            get(
                &s,
                "rvs_server_connections_total",
                &[
                    ("service", "udp:198.18.0.100:53"),
                    ("server", "198.19.0.12:5353")
                ]
            ),
            0.0
        );
        assert_eq!(
            get(&s, "rvs_worker_rx_packets_total", &[("worker", "1")]),
            42.0
        );
        assert_eq!(
            get(
                &s,
                "rvs_worker_drops_total",
                &[("worker", "0"), ("reason", "no_server")]
            ),
            5.0
        );
        assert_eq!(
            get(
                &s,
                "rvs_worker_drops_total",
                &[("worker", "1"), ("reason", DropReason::ALL[0].as_str())]
            ),
            2.0
        );
        assert_eq!(
            get(&s, "rvs_worker_connection_capacity", &[("worker", "0")]),
            32768.0
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn http_endpoint_serves_metrics_and_refuses_the_rest() {
        let shared = Arc::new(Shared::new(1));
        let info = Arc::new(ControlInfo::new(1024));
        // find a free port
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        start(addr, shared, info).unwrap();
        let get = |req: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let r = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Type: text/plain; version=0.0.4"));
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        check_exposition(body);
        assert!(get("GET /nope HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get("POST /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(get("garbage\r\n\r\n").starts_with("HTTP/1.1 405"));
    }
}

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

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::AcqRel};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::dataplane::Shared;

mod render;

pub use render::{mbuf_pool, render};

/// Scrapes served at once.
pub const MAX_SCRAPES: usize = 16;
/// How long a client has, from its accept, to send its request head.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// How long it has, once the answer is ready, to take all of it.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(5);
/// Longest request head read.
const MAX_HEAD: u64 = 8192;

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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::render::esc;
    use super::*;
    use crate::dataplane::counters::{Drop, PortStats};
    use crate::dataplane::snapshot::{AllUp, Snapshot};
    use crate::packet::DropReason;

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

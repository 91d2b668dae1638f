//! One health check of one server: `tcp` (connect), `http` and `https`
//! (GET, status, optional MD5 digest of the body: [`super::web`]), `dns`
//! (a query answered without error: [`super::dns`]) and `exec` (a
//! command's exit code, optionally its weight).
//!
//! Every probe is bounded by the check's `timeout_ms` as a whole, not per
//! system call: a server that accepts and then trickles or never answers
//! fails at the deadline. Probes use ordinary kernel sockets; on a director
//! whose ports are bound to DPDK they leave through the exception path.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use super::proc::{printable, run_bounded};
use super::{dns, web};
use crate::config::{DnsType, HealthCheck, HealthCheckKind, ServerConfig, ServiceConfig};

/// Largest body read for a digest (bigger bodies fail the check).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// What one server's check thread runs. Two specs that compare equal run
/// the same probes, so a reload that leaves it alone keeps the thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub kind: HealthCheckKind,
    /// Where tcp, http, https and dns connect (the server's address, its
    /// port or `connect_port`); exec gets its address and port.
    pub target: SocketAddr,
    pub path: String,
    pub expect_status: u16,
    /// Lowercase hex MD5 of the body.
    pub digest: Option<String>,
    /// The `Host` header; `None`: the target.
    pub host: Option<String>,
    /// The TLS server name; `None`: the host's name, else none.
    pub sni: Option<String>,
    pub tls_verify: bool,
    pub tls_ca: Option<String>,
    pub dns_name: String,
    pub dns_type: DnsType,
    pub script: Option<String>,
    pub dynamic_weight: bool,
    /// Probes retried within one round after a failure.
    pub retry: u32,
    pub delay_before_retry: Duration,
    pub interval: Duration,
    pub timeout: Duration,
}

/// What a probe says of the server's weight (`dynamic_weight` exec
/// checks; every other probe says [`Weight::Keep`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// No word on it: the weight stays what it is.
    Keep,
    /// Back to the configured weight (exit status 0).
    Configured,
    /// This weight (exit status 2..=255: status - 2).
    Set(u32),
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `Ok(what was seen)` or `Err(why it failed)`.
    pub result: Result<String, String>,
    pub weight: Weight,
}

impl CheckSpec {
    /// The spec of `srv`'s check in `svc`: `Ok(None)` when the service has
    /// no check (absent or kind `none`), `Err` when it cannot run (why).
    pub fn of(svc: &ServiceConfig, srv: &ServerConfig) -> Result<Option<CheckSpec>, String> {
        let Some(hc) = &svc.health_check else {
            return Ok(None);
        };
        if hc.kind == HealthCheckKind::None {
            return Ok(None);
        }
        let own = if srv.port != 0 { srv.port } else { svc.port };
        let port = hc.connect_port.unwrap_or(own);
        if port == 0 && hc.kind != HealthCheckKind::Exec {
            return Err(format!(
                "no port to check: {} is a server of an all-ports service without a port of its own (set connect_port)",
                srv.address
            ));
        }
        Ok(Some(CheckSpec::new(hc, SocketAddr::new(srv.address, port))))
    }

    pub fn new(hc: &HealthCheck, target: SocketAddr) -> CheckSpec {
        CheckSpec {
            kind: hc.kind,
            target,
            path: hc.path.clone(),
            expect_status: hc.expect_status,
            digest: hc.digest.as_ref().map(|d| d.to_ascii_lowercase()),
            host: hc.host.clone(),
            sni: hc.sni.clone(),
            tls_verify: hc.tls_verify,
            tls_ca: hc.tls_ca.clone(),
            dns_name: hc.dns_name.clone(),
            dns_type: hc.dns_type,
            script: hc.script.clone(),
            dynamic_weight: hc.dynamic_weight,
            retry: hc.retry,
            delay_before_retry: Duration::from_millis(u64::from(hc.delay_before_retry_ms)),
            interval: Duration::from_millis(u64::from(hc.interval_ms.max(1))),
            timeout: Duration::from_millis(u64::from(hc.timeout_ms.max(1))),
        }
    }

    /// Runs one probe: `Ok(what was seen)` or `Err(why it failed)`.
    pub fn run(&self) -> Result<String, String> {
        self.probe().result
    }

    /// Runs one probe, with what it says of the weight.
    pub fn probe(&self) -> Outcome {
        let deadline = Instant::now() + self.timeout;
        let result = match self.kind {
            HealthCheckKind::Tcp => tcp(self.target, self.timeout),
            HealthCheckKind::Http => web::get(self, false, deadline),
            HealthCheckKind::Https => web::get(self, true, deadline),
            HealthCheckKind::Dns => dns::query(self, deadline),
            HealthCheckKind::Exec => return exec(self),
            HealthCheckKind::None => Ok("not checked".to_string()),
        };
        Outcome {
            result,
            weight: Weight::Keep,
        }
    }
}

impl fmt::Display for CheckSpec {
    /// "http GET http://198.19.0.12:8080/ expecting 200, every 1000 ms,
    /// timeout 500 ms".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            HealthCheckKind::Tcp => write!(f, "tcp connect to {}", self.target)?,
            HealthCheckKind::Http | HealthCheckKind::Https => {
                let scheme = if self.kind == HealthCheckKind::Https {
                    "https"
                } else {
                    "http"
                };
                write!(
                    f,
                    "{} GET {scheme}://{}{} expecting {}",
                    self.kind, self.target, self.path, self.expect_status
                )?;
                if let Some(h) = &self.host {
                    write!(f, " with Host {h}")?;
                }
                if let Some(d) = &self.digest {
                    write!(f, " and body MD5 {d}")?;
                }
                if self.kind == HealthCheckKind::Https {
                    if let Some(n) = &self.sni {
                        write!(f, ", TLS name {n}")?;
                    }
                    f.write_str(if self.tls_verify {
                        ", certificate verified"
                    } else {
                        ", certificate not verified"
                    })?;
                }
            }
            HealthCheckKind::Dns => write!(
                f,
                "dns {} {} query to {}",
                self.dns_type, self.dns_name, self.target
            )?,
            HealthCheckKind::Exec => {
                write!(
                    f,
                    "exec `{} {} {}`",
                    self.script.as_deref().unwrap_or("?"),
                    self.target.ip(),
                    self.target.port()
                )?;
                if self.dynamic_weight {
                    f.write_str(" (exit status sets the weight)")?;
                }
            }
            HealthCheckKind::None => write!(f, "none")?,
        }
        write!(
            f,
            ", every {} ms, timeout {} ms",
            self.interval.as_millis(),
            self.timeout.as_millis()
        )?;
        if self.retry > 0 {
            write!(
                f,
                ", {} retries {} ms apart",
                self.retry,
                self.delay_before_retry.as_millis()
            )?;
        }
        Ok(())
    }
}

pub(super) fn left(deadline: Instant, timeout: Duration) -> Result<Duration, String> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err(timed_out(timeout))
    } else {
        Ok(d)
    }
}

pub(super) fn timed_out(timeout: Duration) -> String {
    format!("timed out after {} ms", timeout.as_millis())
}

pub(super) fn io_err(what: &str, e: &io::Error, timeout: Duration) -> String {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!("{what}: {}", timed_out(timeout))
        }
        _ => format!("{what}: {e}"),
    }
}

fn connect(target: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    TcpStream::connect_timeout(&target, timeout).map_err(|e| io_err("connect", &e, timeout))
}

fn tcp(target: SocketAddr, timeout: Duration) -> Result<String, String> {
    let t0 = Instant::now();
    let s = connect(target, timeout)?;
    drop(s);
    Ok(format!("connected in {} ms", t0.elapsed().as_millis()))
}

/// Whether a response passes: the expected status and, if a digest is
/// configured, a body whose MD5 (lowercase hex) is that digest.
pub fn check_response(
    status: u16,
    body: Option<&[u8]>,
    expect_status: u16,
    digest: Option<&str>,
) -> Result<String, String> {
    if status != expect_status {
        return Err(format!("HTTP status {status}, expected {expect_status}"));
    }
    match (digest, body) {
        (None, _) => Ok(format!("HTTP {status}")),
        (Some(_), None) => Err("no body to digest".to_string()),
        (Some(want), Some(body)) => {
            let got = format!("{:x}", md5::compute(body));
            if got.eq_ignore_ascii_case(want) {
                Ok(format!("HTTP {status}, body MD5 {got}"))
            } else {
                Err(format!(
                    "body MD5 {got} ({} bytes), expected {want}",
                    body.len()
                ))
            }
        }
    }
}

/// Splits a `script` command line into words: whitespace separates, single
/// and double quotes group, a backslash escapes the next character. No
/// shell is involved.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => match chars.next() {
                Some(n) => {
                    cur.push(n);
                    in_word = true;
                }
                None => return Err("trailing backslash".to_string()),
            },
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".to_string());
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn exec(spec: &CheckSpec) -> Outcome {
    let fail = |why: String| Outcome {
        result: Err(why),
        weight: Weight::Keep,
    };
    let line = spec.script.as_deref().unwrap_or("");
    let words = match split_words(line) {
        Ok(w) => w,
        Err(e) => return fail(format!("script `{line}`: {e}")),
    };
    let Some((prog, args)) = words.split_first() else {
        return fail("empty script".to_string());
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .arg(spec.target.ip().to_string())
        .arg(spec.target.port().to_string());
    let fin = match run_bounded(cmd, None, spec.timeout) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot run `{}`: {e}", printable(prog, 200))),
    };
    let mut what = fin.describe(spec.timeout);
    let out = fin.output_line();
    if !out.is_empty() {
        what = format!("{what}: {out}");
    }
    if fin.output_bytes > (2 * super::proc::KEEP) as u64 {
        what = format!("{what} ({} bytes of output discarded)", fin.output_bytes);
    }
    let code = fin.status.and_then(|s| s.code());
    let weight = match (spec.dynamic_weight, code) {
        (true, Some(0)) => Weight::Configured,
        (true, Some(c @ 2..=255)) => Weight::Set(c as u32 - 2),
        _ => Weight::Keep,
    };
    let took = fin.took.as_millis();
    let result = match weight {
        Weight::Set(w) => Ok(format!("{what} in {took} ms: weight {w}")),
        _ if fin.success() => Ok(format!("{what} in {took} ms")),
        _ => Err(what),
    };
    Outcome { result, weight }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};

    pub(crate) fn spec(kind: HealthCheckKind, target: impl Into<SocketAddr>) -> CheckSpec {
        let hc = HealthCheck {
            kind,
            path: "/health".to_string(),
            interval_ms: 100,
            timeout_ms: 400,
            ..HealthCheck::default()
        };
        CheckSpec::new(&hc, target.into())
    }

    #[test]
    fn status_and_digest() {
        // MD5("hello") = 5d41402abc4b2a76b9719d911017c592
        let d = "5d41402abc4b2a76b9719d911017c592";
        assert_eq!(check_response(200, None, 200, None), Ok("HTTP 200".into()));
        assert_eq!(
            check_response(503, Some(b"hello"), 200, Some(d)),
            Err("HTTP status 503, expected 200".into())
        );
        assert_eq!(
            check_response(200, Some(b"hello"), 200, Some(d)),
            Ok(format!("HTTP 200, body MD5 {d}"))
        );
        assert_eq!(
            check_response(200, Some(b"hello"), 200, Some(&d.to_uppercase())),
            Ok(format!("HTTP 200, body MD5 {d}"))
        );
        let e = check_response(200, Some(b"hellO"), 200, Some(d)).unwrap_err();
        assert!(
            e.starts_with("body MD5 ") && e.ends_with(&format!("expected {d}")),
            "{e}"
        );
        // a 301 may be what is expected
        assert!(check_response(301, None, 301, None).is_ok());
    }

    #[test]
    fn words() {
        assert_eq!(
            split_words("/bin/check  --x 'a b' \"c \\\" d\" e\\ f").unwrap(),
            vec!["/bin/check", "--x", "a b", "c \" d", "e f"]
        );
        assert_eq!(split_words("''").unwrap(), vec![""]);
        assert!(split_words("'open").is_err());
        assert!(split_words("x\\").is_err());
        assert!(split_words("   ").unwrap().is_empty());
    }

    /// A one-shot server on loopback that answers each connection with
    /// `reply` (or holds it open without answering when `reply` is None).
    fn serve(reply: Option<&'static [u8]>, conns: usize) -> SocketAddrV4 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let SocketAddr::V4(addr) = l.local_addr().unwrap() else {
            unreachable!()
        };
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for _ in 0..conns {
                let Ok((mut s, _)) = l.accept() else { return };
                let mut buf = [0u8; 1024];
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let _ = s.read(&mut buf);
                match reply {
                    Some(r) => {
                        let _ = s.write_all(r);
                    }
                    None => held.push(s),
                }
            }
            std::thread::sleep(Duration::from_secs(2));
        });
        addr
    }

    #[test]
    fn http_against_a_local_server() {
        let a = serve(
            Some(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            2,
        );
        let mut s = spec(HealthCheckKind::Http, a);
        assert!(s.run().unwrap().starts_with("HTTP 200 in "));
        s.digest = Some("5d41402abc4b2a76b9719d911017c592".into());
        assert!(s.run().unwrap().contains("body MD5"));

        let a = serve(Some(b"HTTP/1.1 500 Oops\r\n\r\n"), 1);
        let s = spec(HealthCheckKind::Http, a);
        assert_eq!(s.run(), Err("HTTP status 500, expected 200".into()));

        let a = serve(Some(b"\x16\x03\x01 garbage garbage"), 1);
        let s = spec(HealthCheckKind::Http, a);
        let e = s.run().unwrap_err();
        assert!(e.starts_with("not an HTTP response"), "{e}");
    }

    #[test]
    fn a_server_that_never_answers_fails_at_the_deadline() {
        let a = serve(None, 1);
        let s = spec(HealthCheckKind::Http, a);
        let t0 = Instant::now();
        let e = s.run().unwrap_err();
        let took = t0.elapsed();
        assert!(e.contains("timed out after 400 ms"), "{e}");
        assert!(
            took >= Duration::from_millis(380) && took < Duration::from_millis(1500),
            "{took:?}"
        );
    }

    #[test]
    fn tcp_connect_and_refusal() {
        let a = serve(Some(b""), 1);
        assert!(spec(HealthCheckKind::Tcp, a)
            .run()
            .unwrap()
            .starts_with("connected"));
        // a port nobody listens on (bind, learn it, close)
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let SocketAddr::V4(closed) = l.local_addr().unwrap() else {
            unreachable!()
        };
        drop(l);
        let e = spec(HealthCheckKind::Tcp, closed).run().unwrap_err();
        assert!(e.starts_with("connect: "), "{e}");
        let e = spec(HealthCheckKind::Http, closed).run().unwrap_err();
        assert!(e.starts_with("connect: "), "{e}");
    }

    /// tcp, http and exec checks of an IPv6 server (`[::1]:port`): they
    /// connect to it, http names it `[::1]:port` in its Host header, exec
    /// gets the bare address and the port, and the messages write the
    /// endpoint in brackets.
    #[test]
    fn ipv6_checks_reach_a_listener_on_loopback() {
        let l = TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, 0)).expect("[::1] on lo");
        let target = l.local_addr().unwrap();
        let port = target.port();
        let server = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for i in 0..2 {
                let (mut s, peer) = l.accept().unwrap();
                assert!(peer.is_ipv6());
                if i == 0 {
                    continue; // the tcp check: connect only
                }
                let mut buf = [0u8; 1024];
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let n = s.read(&mut buf).unwrap_or(0);
                requests.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
            requests
        });
        let tcp = spec(HealthCheckKind::Tcp, target);
        assert_eq!(
            tcp.to_string().split(',').next().unwrap(),
            format!("tcp connect to [::1]:{port}")
        );
        assert!(tcp.run().unwrap().starts_with("connected"));
        let http = spec(HealthCheckKind::Http, target);
        assert!(http.to_string().starts_with(&format!(
            "http GET http://[::1]:{port}/health expecting 200"
        )));
        assert!(http.run().unwrap().starts_with("HTTP 200 in "));
        let requests = server.join().unwrap();
        assert!(
            requests[0].starts_with("GET /health HTTP/1.1\r\n"),
            "{requests:?}"
        );
        assert!(
            requests[0]
                .to_ascii_lowercase()
                .contains(&format!("\r\nhost: [::1]:{port}\r\n")),
            "{requests:?}"
        );
        // Nobody listens any more: refused, the message names the endpoint.
        let e = spec(HealthCheckKind::Tcp, target).run().unwrap_err();
        assert!(e.starts_with("connect: "), "{e}");
        let mut exec = spec(HealthCheckKind::Exec, target);
        exec.script = Some(format!("/bin/sh -c 'test \"$0 $1\" = \"::1 {port}\"'"));
        assert!(exec.run().unwrap().starts_with("exit status 0"));
    }

    #[test]
    fn exec_gets_address_and_port() {
        let target = SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 12), 8080);
        let mut s = spec(HealthCheckKind::Exec, target);
        s.script = Some("/bin/sh -c 'test \"$0 $1\" = \"198.19.0.12 8080\"'".into());
        assert!(s.run().unwrap().starts_with("exit status 0"));
        s.script = Some("/bin/sh -c 'echo \"$0 is sick\" >&2; exit 2'".into());
        assert_eq!(s.run(), Err("exit status 2: 198.19.0.12 is sick".into()));
        s.script = Some("/bin/sh -c 'sleep 5'".into());
        assert_eq!(s.run(), Err("timed out after 400 ms (killed)".into()));
        s.script = Some("/nonexistent/check".into());
        assert!(s
            .run()
            .unwrap_err()
            .starts_with("cannot run `/nonexistent/check`"));
    }

    #[test]
    fn descriptions() {
        let target = SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 12), 8080);
        let mut s = spec(HealthCheckKind::Http, target);
        s.digest = Some("abc".into());
        assert_eq!(
            s.to_string(),
            "http GET http://198.19.0.12:8080/health expecting 200 and body MD5 abc, every 100 ms, timeout 400 ms"
        );
        let mut s = spec(HealthCheckKind::Https, target);
        s.host = Some("www.example.org".into());
        s.retry = 2;
        assert_eq!(
            s.to_string(),
            "https GET https://198.19.0.12:8080/health expecting 200 with Host www.example.org, certificate not verified, every 100 ms, timeout 400 ms, 2 retries 1000 ms apart"
        );
        let mut s = spec(HealthCheckKind::Dns, SocketAddrV4::new(*target.ip(), 53));
        s.dns_name = "example.org".into();
        assert_eq!(
            s.to_string(),
            "dns SOA example.org query to 198.19.0.12:53, every 100 ms, timeout 400 ms"
        );
    }

    #[test]
    fn dynamic_weight_from_the_exit_status() {
        let target = SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 12), 8080);
        let mut s = spec(HealthCheckKind::Exec, target);
        s.dynamic_weight = true;
        let run = |s: &mut CheckSpec, code: u32| {
            s.script = Some(format!("/bin/sh -c 'exit {code}'"));
            s.probe()
        };
        let o = run(&mut s, 0);
        assert_eq!((o.result.is_ok(), o.weight), (true, Weight::Configured));
        let o = run(&mut s, 1);
        assert_eq!(o.result, Err("exit status 1".into()));
        assert_eq!(o.weight, Weight::Keep);
        let o = run(&mut s, 2);
        assert_eq!(o.weight, Weight::Set(0));
        assert!(o.result.unwrap().ends_with("ms: weight 0"));
        let o = run(&mut s, 7);
        assert_eq!(o.weight, Weight::Set(5));
        let o = run(&mut s, 255);
        assert_eq!(o.weight, Weight::Set(253));
        // without dynamic_weight only 0 passes and the weight is never touched
        s.dynamic_weight = false;
        let o = run(&mut s, 7);
        assert_eq!((o.result.is_err(), o.weight), (true, Weight::Keep));
        // killed at the deadline: a failure, the weight kept
        s.dynamic_weight = true;
        s.script = Some("/bin/sh -c 'sleep 5'".into());
        let o = s.probe();
        assert_eq!((o.result.is_err(), o.weight), (true, Weight::Keep));
    }
}

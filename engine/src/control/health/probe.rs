//! One health check of one server: `tcp` (connect), `http` (GET, status,
//! optional MD5 digest of the body) and `exec` (a command's exit code).
//!
//! Every probe is bounded by the check's `timeout_ms` as a whole, not per
//! system call: a server that accepts and then trickles or never answers
//! fails at the deadline. Probes use ordinary kernel sockets; on a director
//! whose ports are bound to DPDK they leave through the exception path.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use super::proc::{printable, run_bounded};
use crate::config::{HealthCheck, HealthCheckKind, ServerConfig, ServiceConfig};

/// Largest response header block read.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest body read for a digest (bigger bodies fail the check).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// What one server's check thread runs. Two specs that compare equal run
/// the same probes, so a reload that leaves it alone keeps the thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub kind: HealthCheckKind,
    /// Where tcp and http connect; exec gets its address and port.
    pub target: SocketAddrV4,
    pub path: String,
    pub expect_status: u16,
    /// Lowercase hex MD5 of the body.
    pub digest: Option<String>,
    pub script: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
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
        let port = if srv.port != 0 { srv.port } else { svc.port };
        if port == 0 && hc.kind != HealthCheckKind::Exec {
            return Err(format!(
                "no port to check: {} is a server of an all-ports service without a port of its own",
                srv.address
            ));
        }
        Ok(Some(CheckSpec::new(
            hc,
            SocketAddrV4::new(srv.address, port),
        )))
    }

    pub fn new(hc: &HealthCheck, target: SocketAddrV4) -> CheckSpec {
        CheckSpec {
            kind: hc.kind,
            target,
            path: hc.path.clone(),
            expect_status: hc.expect_status,
            digest: hc.digest.as_ref().map(|d| d.to_ascii_lowercase()),
            script: hc.script.clone(),
            interval: Duration::from_millis(u64::from(hc.interval_ms.max(1))),
            timeout: Duration::from_millis(u64::from(hc.timeout_ms.max(1))),
        }
    }

    /// Runs one check: `Ok(what was seen)` or `Err(why it failed)`.
    pub fn run(&self) -> Result<String, String> {
        let deadline = Instant::now() + self.timeout;
        match self.kind {
            HealthCheckKind::Tcp => tcp(self.target, self.timeout),
            HealthCheckKind::Http => http(self, deadline),
            HealthCheckKind::Exec => exec(self),
            HealthCheckKind::None => Ok("not checked".to_string()),
        }
    }
}

impl fmt::Display for CheckSpec {
    /// "http GET http://198.19.0.12:8080/ expecting 200, every 1000 ms,
    /// timeout 500 ms".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            HealthCheckKind::Tcp => write!(f, "tcp connect to {}", self.target)?,
            HealthCheckKind::Http => {
                write!(
                    f,
                    "http GET http://{}{} expecting {}",
                    self.target, self.path, self.expect_status
                )?;
                if let Some(d) = &self.digest {
                    write!(f, " and body MD5 {d}")?;
                }
            }
            HealthCheckKind::Exec => write!(
                f,
                "exec `{} {} {}`",
                self.script.as_deref().unwrap_or("?"),
                self.target.ip(),
                self.target.port()
            )?,
            HealthCheckKind::None => write!(f, "none")?,
        }
        write!(
            f,
            ", every {} ms, timeout {} ms",
            self.interval.as_millis(),
            self.timeout.as_millis()
        )
    }
}

fn left(deadline: Instant, timeout: Duration) -> Result<Duration, String> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err(timed_out(timeout))
    } else {
        Ok(d)
    }
}

fn timed_out(timeout: Duration) -> String {
    format!("timed out after {} ms", timeout.as_millis())
}

fn io_err(what: &str, e: &io::Error, timeout: Duration) -> String {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!("{what}: {}", timed_out(timeout))
        }
        _ => format!("{what}: {e}"),
    }
}

fn connect(target: SocketAddrV4, timeout: Duration) -> Result<TcpStream, String> {
    TcpStream::connect_timeout(&SocketAddr::V4(target), timeout)
        .map_err(|e| io_err("connect", &e, timeout))
}

fn tcp(target: SocketAddrV4, timeout: Duration) -> Result<String, String> {
    let t0 = Instant::now();
    let s = connect(target, timeout)?;
    drop(s);
    Ok(format!("connected in {} ms", t0.elapsed().as_millis()))
}

fn http(spec: &CheckSpec, deadline: Instant) -> Result<String, String> {
    let t0 = Instant::now();
    let mut s = connect(spec.target, left(deadline, spec.timeout)?)?;
    let _ = s.set_nodelay(true);
    let req = request(spec);
    s.set_write_timeout(Some(left(deadline, spec.timeout)?))
        .map_err(|e| format!("socket: {e}"))?;
    s.write_all(req.as_bytes())
        .map_err(|e| io_err("sending the request", &e, spec.timeout))?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    let mut eof = false;
    let mut head: Option<Head> = None;
    loop {
        if head.is_none() {
            head = parse_head(&buf, eof)?;
            if let Some(h) = &head {
                // Without a digest the status decides: no need for the body.
                if spec.digest.is_none() {
                    return verdict(spec, h.status, None, t0);
                }
            }
        }
        if let Some(h) = &head {
            if let Some(body) = body_of(h, &buf[h.body_start..], eof)? {
                return verdict(spec, h.status, Some(&body), t0);
            }
        }
        if eof {
            // parse_head/body_of reported what an early close means
            return Err("connection closed before a complete response".to_string());
        }
        if buf.len() > MAX_HEAD + MAX_BODY + 64 * 1024 {
            return Err(format!(
                "response larger than {} bytes",
                MAX_HEAD + MAX_BODY
            ));
        }
        s.set_read_timeout(Some(left(deadline, spec.timeout)?))
            .map_err(|e| format!("socket: {e}"))?;
        match s.read(&mut chunk) {
            Ok(0) => eof = true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let what = if buf.is_empty() {
                    "no response"
                } else {
                    "incomplete response"
                };
                return Err(io_err(what, &e, spec.timeout));
            }
        }
    }
}

/// The GET request of an http check (HTTP/1.0, as keepalived's HTTP_GET).
pub fn request(spec: &CheckSpec) -> String {
    format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: rvs-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        spec.path, spec.target
    )
}

fn verdict(
    spec: &CheckSpec,
    status: u16,
    body: Option<&[u8]>,
    t0: Instant,
) -> Result<String, String> {
    check_response(status, body, spec.expect_status, spec.digest.as_deref())
        .map(|s| format!("{s} in {} ms", t0.elapsed().as_millis()))
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

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub content_length: Option<usize>,
    pub chunked: bool,
    /// Offset of the body in the buffer.
    pub body_start: usize,
}

/// Parses the status line and headers at the start of `buf`. `Ok(None)`:
/// more bytes needed. Anything that is not an HTTP/1.x response is an
/// error as soon as it shows.
pub fn parse_head(buf: &[u8], eof: bool) -> Result<Option<Head>, String> {
    const PREFIX: &[u8] = b"HTTP/";
    let n = buf.len().min(PREFIX.len());
    if buf[..n] != PREFIX[..n] {
        return Err(format!("not an HTTP response: {}", quote(buf)));
    }
    let end = find(buf, b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| find(buf, b"\n\n").map(|i| (i, i + 2)));
    let Some((head_end, body_start)) = end else {
        if buf.len() > MAX_HEAD {
            return Err(format!("response head longer than {MAX_HEAD} bytes"));
        }
        if eof {
            return Err(if buf.is_empty() {
                "connection closed without a response".to_string()
            } else {
                format!("connection closed inside the response head: {}", quote(buf))
            });
        }
        return Ok(None);
    };
    if head_end > MAX_HEAD {
        return Err(format!("response head longer than {MAX_HEAD} bytes"));
    }
    let text = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| format!("response head is not text: {}", quote(buf)))?;
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let status_line = lines.next().unwrap_or("");
    let status = parse_status_line(status_line)?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed header line {}", quote(line.as_bytes())));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let v: usize = value
                .parse()
                .map_err(|_| format!("bad Content-Length {}", quote(value.as_bytes())))?;
            content_length = Some(v);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    Ok(Some(Head {
        status,
        content_length,
        chunked,
        body_start,
    }))
}

/// "HTTP/1.1 200 OK" -> 200.
pub fn parse_status_line(line: &str) -> Result<u16, String> {
    let bad = || format!("malformed status line {}", quote(line.as_bytes()));
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        return Err(bad());
    }
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let status: u16 = code.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&status) {
        return Err(bad());
    }
    Ok(status)
}

/// The body, once complete: by Content-Length, chunked, or up to the close.
pub fn body_of(head: &Head, data: &[u8], eof: bool) -> Result<Option<Vec<u8>>, String> {
    if head.chunked {
        return match decode_chunked(data)? {
            Some(b) => Ok(Some(b)),
            None if eof => Err("connection closed inside a chunked body".to_string()),
            None => Ok(None),
        };
    }
    if let Some(len) = head.content_length {
        if len > MAX_BODY {
            return Err(format!("body of {len} bytes is larger than {MAX_BODY}"));
        }
        if data.len() >= len {
            return Ok(Some(data[..len].to_vec()));
        }
        if eof {
            return Err(format!(
                "connection closed after {} of {len} body bytes",
                data.len()
            ));
        }
        return Ok(None);
    }
    if data.len() > MAX_BODY {
        return Err(format!("body larger than {MAX_BODY} bytes"));
    }
    Ok(eof.then(|| data.to_vec()))
}

/// Decodes a chunked body; `Ok(None)` until the last chunk is in.
pub fn decode_chunked(mut data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(data, b"\r\n") else {
            if data.len() > 1024 {
                return Err("malformed chunk size line".to_string());
            }
            return Ok(None);
        };
        let line = std::str::from_utf8(&data[..eol])
            .map_err(|_| "malformed chunk size line".to_string())?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("malformed chunk size {}", quote(line.as_bytes())))?;
        data = &data[eol + 2..];
        if size == 0 {
            // trailers are not needed for the digest
            return Ok(Some(out));
        }
        if out.len() + size > MAX_BODY {
            return Err(format!("body larger than {MAX_BODY} bytes"));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        if &data[size..size + 2] != b"\r\n" {
            return Err("malformed chunk (no CRLF after the data)".to_string());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The first bytes of `b`, quoted and printable, for messages.
fn quote(b: &[u8]) -> String {
    let cut = &b[..b.len().min(40)];
    let s: String = cut.escape_ascii().to_string();
    if b.len() > 40 {
        format!("\"{s}\"…")
    } else {
        format!("\"{s}\"")
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

fn exec(spec: &CheckSpec) -> Result<String, String> {
    let line = spec.script.as_deref().unwrap_or("");
    let words = split_words(line).map_err(|e| format!("script `{line}`: {e}"))?;
    let Some((prog, args)) = words.split_first() else {
        return Err("empty script".to_string());
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .arg(spec.target.ip().to_string())
        .arg(spec.target.port().to_string());
    let fin = run_bounded(cmd, None, spec.timeout)
        .map_err(|e| format!("cannot run `{}`: {e}", printable(prog, 200)))?;
    let mut what = fin.describe(spec.timeout);
    let out = fin.output_line();
    if !out.is_empty() {
        what = format!("{what}: {out}");
    }
    if fin.output_bytes > (2 * super::proc::KEEP) as u64 {
        what = format!("{what} ({} bytes of output discarded)", fin.output_bytes);
    }
    if fin.success() {
        Ok(format!("{what} in {} ms", fin.took.as_millis()))
    } else {
        Err(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};

    fn spec(kind: HealthCheckKind, target: SocketAddrV4) -> CheckSpec {
        CheckSpec {
            kind,
            target,
            path: "/health".to_string(),
            expect_status: 200,
            digest: None,
            script: None,
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(400),
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 200 OK"), Ok(200));
        assert_eq!(
            parse_status_line("HTTP/1.0 503 Service Unavailable"),
            Ok(503)
        );
        assert_eq!(parse_status_line("HTTP/1.1 204"), Ok(204));
        for bad in [
            "HTTP/1.1 20 OK",
            "HTTP/1.1 2000 OK",
            "HTTP/2 200",
            "HTTP/1.1 abc",
            "ICY 200 OK",
            "HTTP/1.1 999 Nope",
            "",
        ] {
            let e = parse_status_line(bad).unwrap_err();
            assert!(e.starts_with("malformed status line"), "{bad}: {e}");
        }
    }

    #[test]
    fn heads() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello";
        let h = parse_head(r, false).unwrap().unwrap();
        assert_eq!(
            h,
            Head {
                status: 200,
                content_length: Some(5),
                chunked: false,
                body_start: r.len() - 5
            }
        );
        assert_eq!(
            body_of(&h, &r[h.body_start..], false).unwrap().unwrap(),
            b"hello"
        );
        // incomplete: more needed, then an early close is an error
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nConte", false), Ok(None));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nConte", true)
            .unwrap_err()
            .contains("closed inside the response head"));
        assert_eq!(parse_head(b"HTT", false), Ok(None));
        assert!(parse_head(b"", true)
            .unwrap_err()
            .contains("without a response"));
        // bare LF line ends are accepted
        let h = parse_head(b"HTTP/1.0 404 Not Found\nA: b\n\nx", true)
            .unwrap()
            .unwrap();
        assert_eq!(h.status, 404);
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false)
                .unwrap_err()
                .contains("Content-Length")
        );
    }

    #[test]
    fn garbage_is_refused_at_once() {
        let e = parse_head(b"\x00\xffgarbage", false).unwrap_err();
        assert!(e.starts_with("not an HTTP response"), "{e}");
        let e = parse_head(b"SSH-2.0-OpenSSH", false).unwrap_err();
        assert!(e.contains("SSH-2.0"), "{e}");
        let e = parse_head(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", false).unwrap_err();
        assert!(e.contains("malformed header"), "{e}");
        let long = [
            b"HTTP/1.1 200 OK\r\n".as_slice(),
            &vec![b'a'; MAX_HEAD + 10],
        ]
        .concat();
        assert!(parse_head(&long, false)
            .unwrap_err()
            .contains("longer than"));
    }

    #[test]
    fn bodies() {
        let h = Head {
            status: 200,
            content_length: None,
            chunked: false,
            body_start: 0,
        };
        assert_eq!(body_of(&h, b"abc", false), Ok(None));
        assert_eq!(body_of(&h, b"abc", true), Ok(Some(b"abc".to_vec())));
        let h = Head {
            content_length: Some(4),
            ..h
        };
        assert_eq!(body_of(&h, b"abc", false), Ok(None));
        assert!(body_of(&h, b"abc", true).unwrap_err().contains("3 of 4"));
        let h = Head {
            content_length: Some(MAX_BODY + 1),
            ..h
        };
        assert!(body_of(&h, b"", false).is_err());
    }

    #[test]
    fn chunked_bodies() {
        let b = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\n";
        assert_eq!(decode_chunked(b), Ok(Some(b"Wikipedia".to_vec())));
        assert_eq!(decode_chunked(b"4\r\nWi"), Ok(None));
        assert_eq!(decode_chunked(b"4\r\nWiki\r\n"), Ok(None));
        assert!(decode_chunked(b"zz\r\n").is_err());
        assert!(decode_chunked(b"2\r\nabc\r\n0\r\n\r\n").is_err());
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
        assert!(s.run().unwrap_err().starts_with("not an HTTP response"));
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
        assert!(request(&s).starts_with("GET /health HTTP/1.0\r\nHost: 198.19.0.12:8080\r\n"));
        assert!(request(&s).ends_with("\r\n\r\n"));
    }
}

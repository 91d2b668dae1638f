//! http and https checks against real servers on loopback: a rustls TLS
//! server with a certificate made by `openssl req` at test time, and a
//! plain TCP server; each records what the probe sent (Host header, TLS
//! server name).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::*;
use crate::config::{HealthCheck, HealthCheckKind};

const NAME: &str = "rs.example.test";

/// A self-signed end-entity certificate for NAME (CA:FALSE, so it can be
/// its own trust anchor for `tls_ca`): (dir, cert.pem, key.pem).
fn certificate() -> (PathBuf, PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "rvs-web-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("req.cnf");
    std::fs::write(
        &conf,
        format!(
            "[req]\nprompt = no\ndistinguished_name = dn\nx509_extensions = v3\n[dn]\nCN = {NAME}\n\
             [v3]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = digitalSignature\n\
             extendedKeyUsage = serverAuth\nsubjectAltName = DNS:{NAME}\n"
        ),
    )
    .unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let st = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-config"])
        .arg(&conf)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (ci/setup.sh installs it)");
    assert!(
        st.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    (dir, cert, key)
}

/// What a test server saw of one request: the TLS server name (https)
/// and the Host header.
#[derive(Debug, Default)]
struct Seen {
    sni: Option<String>,
    host: Option<String>,
}

fn host_header(head: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.trim().to_string())
}

fn read_head(s: &mut impl Read) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && buf.len() < 16384 {
        match s.read(&mut b) {
            Ok(1) => buf.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn listener() -> (TcpListener, SocketAddrV4) {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let SocketAddr::V4(a) = l.local_addr().unwrap() else {
        unreachable!()
    };
    (l, a)
}

/// A TLS server answering `conns` connections with `reply`.
fn tls_server(
    cert: &PathBuf,
    key: &PathBuf,
    reply: &'static [u8],
    conns: usize,
) -> (SocketAddrV4, Receiver<Seen>) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let cfg = Arc::new(cfg);
    let (l, addr) = listener();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..conns {
            let Ok((s, _)) = l.accept() else { return };
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, s);
            let head = read_head(&mut tls);
            let seen = Seen {
                sni: tls.conn.server_name().map(str::to_string),
                host: host_header(&head),
            };
            if !head.is_empty() {
                let _ = tls.write_all(reply);
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
            let _ = tx.send(seen);
        }
    });
    (addr, rx)
}

/// A plain TCP server answering `conns` connections with `reply`, or
/// holding them open without a byte when `reply` is None.
fn tcp_server(reply: Option<&'static [u8]>, conns: usize) -> (SocketAddrV4, Receiver<Seen>) {
    let (l, addr) = listener();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for _ in 0..conns {
            let Ok((mut s, _)) = l.accept() else { return };
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            match reply {
                Some(r) => {
                    let head = read_head(&mut s);
                    let _ = s.write_all(r);
                    let _ = tx.send(Seen {
                        sni: None,
                        host: host_header(&head),
                    });
                }
                None => held.push(s),
            }
        }
        std::thread::sleep(Duration::from_secs(3));
    });
    (addr, rx)
}

fn spec(
    kind: HealthCheckKind,
    target: SocketAddrV4,
    f: impl FnOnce(&mut HealthCheck),
) -> CheckSpec {
    let mut hc = HealthCheck {
        kind,
        path: "/health".to_string(),
        timeout_ms: 1500,
        ..HealthCheck::default()
    };
    f(&mut hc);
    CheckSpec::new(&hc, target.into())
}

fn seen(rx: &Receiver<Seen>) -> Seen {
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the server saw a request")
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
/// MD5("hello").
const HELLO_MD5: &str = "5d41402abc4b2a76b9719d911017c592";

#[test]
fn https_without_verification_with_host_and_sni() {
    let (dir, cert, key) = certificate();
    let (a, rx) = tls_server(&cert, &key, OK, 3);
    // defaults: no Host given -> address:port, no SNI (an IP is not sent)
    let s = spec(HealthCheckKind::Https, a, |_| {});
    let r = s.run().unwrap();
    assert!(r.starts_with("HTTP 200 in "), "{r}");
    let got = seen(&rx);
    assert_eq!(got.host.as_deref(), Some(a.to_string().as_str()));
    assert_eq!(got.sni, None);
    // host: the Host header and the TLS name; the digest over TLS
    let s = spec(HealthCheckKind::Https, a, |h| {
        h.host = Some(format!("{NAME}:8443"));
        h.digest = Some(HELLO_MD5.into());
    });
    assert!(s.run().unwrap().contains(&format!("body MD5 {HELLO_MD5}")));
    let got = seen(&rx);
    assert_eq!(got.host.as_deref(), Some("rs.example.test:8443"));
    assert_eq!(got.sni.as_deref(), Some(NAME));
    // sni overrides the name from host
    let s = spec(HealthCheckKind::Https, a, |h| {
        h.host = Some("vhost.example.test".into());
        h.sni = Some("other.example.test".into());
    });
    s.run().unwrap();
    let got = seen(&rx);
    assert_eq!(got.host.as_deref(), Some("vhost.example.test"));
    assert_eq!(got.sni.as_deref(), Some("other.example.test"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn https_with_verification() {
    let (dir, cert, key) = certificate();
    let (a, _rx) = tls_server(&cert, &key, OK, 4);
    let ca = cert.display().to_string();
    // the right CA and name: passes
    let s = spec(HealthCheckKind::Https, a, |h| {
        h.tls_verify = true;
        h.tls_ca = Some(ca.clone());
        h.sni = Some(NAME.into());
    });
    assert!(s.run().unwrap().starts_with("HTTP 200"));
    // another name: the certificate does not match
    let s = spec(HealthCheckKind::Https, a, |h| {
        h.tls_verify = true;
        h.tls_ca = Some(ca.clone());
        h.sni = Some("wrong.example.test".into());
    });
    let e = s.run().unwrap_err();
    assert!(
        e.starts_with("TLS or I/O: invalid peer certificate: ") && e.contains("not valid for name"),
        "{e}"
    );
    // the system's CAs do not know a self-signed certificate
    let s = spec(HealthCheckKind::Https, a, |h| {
        h.tls_verify = true;
        h.sni = Some(NAME.into());
    });
    let e = s.run().unwrap_err();
    assert!(
        e.starts_with("TLS or I/O: invalid peer certificate: "),
        "{e}"
    );
    // no verification: the same server passes
    let s = spec(HealthCheckKind::Https, a, |h| h.sni = Some(NAME.into()));
    assert!(s.run().is_ok());
    // a CA file that is not there: said so, no connection
    let s = spec(HealthCheckKind::Https, a, |h| {
        h.tls_verify = true;
        h.tls_ca = Some("/nonexistent/ca.pem".into());
    });
    assert!(s
        .run()
        .unwrap_err()
        .starts_with("tls_ca /nonexistent/ca.pem: "));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn https_failures() {
    let (dir, cert, key) = certificate();
    // status
    let (a, _rx) = tls_server(
        &cert,
        &key,
        b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n",
        1,
    );
    let e = spec(HealthCheckKind::Https, a, |_| {}).run().unwrap_err();
    assert_eq!(e, "HTTP status 503, expected 200");
    // a plain HTTP server on the https port (it answers at once, as one
    // that does not understand the ClientHello): the handshake fails
    let (l, a) = listener();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let e = spec(HealthCheckKind::Https, a, |_| {}).run().unwrap_err();
    assert!(e.starts_with("TLS or I/O: "), "{e}");
    // a server that accepts and never answers the ClientHello: the whole
    // probe is bounded by timeout_ms
    let (a, _rx) = tcp_server(None, 1);
    let s = spec(HealthCheckKind::Https, a, |h| h.timeout_ms = 400);
    let t0 = Instant::now();
    let e = s.run().unwrap_err();
    let took = t0.elapsed();
    assert_eq!(e, "timed out after 400 ms");
    assert!(
        took >= Duration::from_millis(380) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn http_host_header_and_garbage() {
    let (a, rx) = tcp_server(Some(OK), 2);
    spec(HealthCheckKind::Http, a, |_| {}).run().unwrap();
    assert_eq!(seen(&rx).host.as_deref(), Some(a.to_string().as_str()));
    spec(HealthCheckKind::Http, a, |h| {
        h.host = Some("www.example.test".into())
    })
    .run()
    .unwrap();
    assert_eq!(seen(&rx).host.as_deref(), Some("www.example.test"));
    let (a, _rx) = tcp_server(Some(b"\x16\x03\x01 garbage garbage\r\n\r\n"), 1);
    let e = spec(HealthCheckKind::Http, a, |_| {}).run().unwrap_err();
    assert!(e.starts_with("not an HTTP response"), "{e}");
    // a redirect is not followed: it is the status seen
    let (a, _rx) = tcp_server(
        Some(b"HTTP/1.1 301 Moved\r\nLocation: http://198.18.0.1/\r\nContent-Length: 0\r\n\r\n"),
        1,
    );
    let r = spec(HealthCheckKind::Http, a, |h| h.expect_status = 301).run();
    assert!(r.unwrap().starts_with("HTTP 301"));
}

#[test]
fn a_body_too_big_for_the_digest_fails() {
    let (l, a) = listener();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        read_head(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..(MAX_BODY / chunk.len() + 2) {
            if s.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let e = spec(HealthCheckKind::Http, a, |h| {
        h.digest = Some(HELLO_MD5.into());
        h.timeout_ms = 5000;
    })
    .run()
    .unwrap_err();
    assert_eq!(e, format!("body larger than {MAX_BODY} bytes"));
}

#[test]
fn host_names() {
    assert_eq!(host_name("www.example.org:8443"), "www.example.org");
    assert_eq!(host_name("www.example.org"), "www.example.org");
    assert_eq!(host_name("[::1]:443"), "[::1]");
    assert_eq!(host_name("[::1]"), "[::1]");
    assert_eq!(host_name("198.19.0.11:80"), "198.19.0.11");
}

//! `http` and `https` checks (keepalived's HTTP_GET and SSL_GET) through
//! `ureq` with `rustls`, not a hand-written HTTP parser.
//!
//! The request always goes to the server's own address (a resolver that
//! answers every name with it: no DNS lookup, whatever `host` says), with
//! the `Host` header set to `host` (keepalived's `virtualhost`) or, by
//! default, the server's address and port. For https the TLS server name
//! is `sni`, else `host`'s name, else none (the address); the certificate
//! is not verified unless `tls_verify` is set, as keepalived's SSL_GET: the
//! check asks "does the service answer", and a director that pulls every
//! server when a certificate expires causes the outage it guards against.
//!
//! The whole exchange (connect, handshake, request, head and body) is
//! bounded by `timeout_ms`: ureq's overall timeout is a deadline on every
//! read and write. Redirects are not followed (a 301 is what it is, and
//! may be what `expect_status` wants), and no connection is pooled.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::probe::{check_response, io_err, timed_out, CheckSpec, MAX_BODY};

/// One GET of `spec`'s path; `tls` for https.
pub fn get(spec: &CheckSpec, tls: bool, deadline: Instant) -> Result<String, String> {
    let t0 = Instant::now();
    let target = spec.target;
    let left = deadline.saturating_duration_since(t0);
    if left.is_zero() {
        return Err(timed_out(spec.timeout));
    }
    let mut builder = ureq::AgentBuilder::new()
        .timeout(left)
        .redirects(0)
        .max_idle_connections(0)
        .no_delay(true)
        .user_agent("rvs-health-check")
        .resolver(move |_: &str| -> io::Result<Vec<SocketAddr>> { Ok(vec![target]) });
    if tls {
        builder = builder.tls_config(tls_config(spec)?);
    }
    let agent = builder.build();
    let host = spec.host.clone().unwrap_or_else(|| target.to_string());
    let url = format!(
        "{}://{}:{}{}",
        if tls { "https" } else { "http" },
        url_host(spec, tls),
        target.port(),
        spec.path
    );
    let resp = match agent.get(&url).set("Host", &host).call() {
        Ok(r) => r,
        // 4xx and 5xx: a response all the same, judged by expect_status
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => return Err(transport(&t, spec, tls)),
    };
    let status = resp.status();
    let body = if spec.digest.is_some() && status == spec.expect_status {
        Some(read_body(resp, spec)?)
    } else {
        None
    };
    check_response(
        status,
        body.as_deref(),
        spec.expect_status,
        spec.digest.as_deref(),
    )
    .map(|s| format!("{s} in {} ms", t0.elapsed().as_millis()))
}

/// The URL's host: what TLS names (and, without `host`, nothing else
/// reads it). For http the address itself.
fn url_host(spec: &CheckSpec, tls: bool) -> String {
    let name = if tls {
        spec.sni
            .clone()
            .or_else(|| spec.host.as_deref().map(|h| host_name(h).to_string()))
    } else {
        None
    };
    // An IPv6 address in brackets, as a URL writes it.
    name.unwrap_or_else(|| crate::config::host_part(spec.target.ip()))
}

/// "www.example.org:8443" -> "www.example.org"; "[::1]:443" -> "[::1]".
pub fn host_name(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']')) =>
        {
            name
        }
        _ => host,
    }
}

fn read_body(resp: ureq::Response, spec: &CheckSpec) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    resp.into_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| io_err("reading the body", &e, spec.timeout))?;
    if body.len() > MAX_BODY {
        return Err(format!("body larger than {MAX_BODY} bytes"));
    }
    Ok(body)
}

/// A transport error in the words of the other probes: "connect: ...",
/// "timed out after N ms", "not an HTTP response: ...".
fn transport(t: &ureq::Transport, spec: &CheckSpec, tls: bool) -> String {
    let io = io_cause(t);
    if let Some(e) = io {
        if matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) {
            return timed_out(spec.timeout);
        }
    }
    let detail = || {
        t.message()
            .map(str::to_string)
            .unwrap_or_else(|| t.to_string())
    };
    match (t.kind(), io) {
        (ureq::ErrorKind::ConnectionFailed, Some(e)) if !tls || is_os(e) => format!("connect: {e}"),
        (ureq::ErrorKind::ConnectionFailed, None) => format!("connect: {}", detail()),
        (ureq::ErrorKind::BadStatus | ureq::ErrorKind::BadHeader, _) => {
            format!("not an HTTP response: {}", detail())
        }
        // TLS failures (handshake, certificate) come as io errors
        // wrapping rustls's
        (_, Some(e)) if tls => format!("TLS or I/O: {e}"),
        // without TLS, an io error that is not the system's is ureq's
        // parser refusing what came back
        (_, Some(e)) if !is_os(e) => format!("not an HTTP response: {e}"),
        (_, Some(e)) => format!("I/O: {e}"),
        (_, None) => detail(),
    }
}

/// An error from the system (connect refused, unreachable), not from TLS.
fn is_os(e: &io::Error) -> bool {
    e.raw_os_error().is_some()
}

/// The io::Error under a transport error, if any.
fn io_cause(t: &ureq::Transport) -> Option<&io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(t);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cur = e.source();
    }
    None
}

/// The system's CA bundle (Debian's ca-certificates), trusted by
/// `tls_verify` without `tls_ca`.
pub const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The TLS client configuration of `spec`: verifying against `tls_ca` (or
/// the system's CAs), or not verifying at all. The verifying one is built
/// per probe, so a renewed CA file is read without a reload.
fn tls_config(spec: &CheckSpec) -> Result<Arc<ClientConfig>, String> {
    static NO_VERIFY: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if !spec.tls_verify {
        return Ok(NO_VERIFY
            .get_or_init(|| {
                let cfg = builder()
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
                    .with_no_client_auth();
                Arc::new(cfg)
            })
            .clone());
    }
    let ca = spec.tls_ca.as_deref().unwrap_or(SYSTEM_CAS);
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("tls_ca {ca}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_ca {ca}: {e}"))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("tls_ca {ca}: no usable certificate in it"));
    }
    Ok(Arc::new(
        builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
}

/// Accepts any certificate (`tls_verify = false`); the handshake's
/// signatures are still checked, so the peer holds the key it shows.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;

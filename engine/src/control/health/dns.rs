//! `dns` checks (keepalived's DNS_CHECK): one query over UDP to the
//! server, built and parsed with `hickory-proto`, sent with a plain std
//! socket under the check's deadline.
//!
//! Success is a reply from the server's address that carries the query's
//! id, has QR set (a response) and RCODE NOERROR. Answers are not
//! required: an authoritative server asked for a name it has with no
//! record of that type answers NOERROR with none, and is healthy. Replies
//! with another id (late answers to an earlier query, spoofs) are skipped
//! until the deadline.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Instant;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::probe::{io_err, left, CheckSpec};
use crate::config::DnsType;

/// Largest reply read (EDNS-less DNS over UDP is at most 512 bytes; some
/// servers send more).
const MAX_REPLY: usize = 4096;

/// The record type asked for.
pub fn record_type(t: DnsType) -> RecordType {
    match t {
        DnsType::A => RecordType::A,
        DnsType::Ns => RecordType::NS,
        DnsType::Cname => RecordType::CNAME,
        DnsType::Soa => RecordType::SOA,
        DnsType::Mx => RecordType::MX,
        DnsType::Txt => RecordType::TXT,
        DnsType::Aaaa => RecordType::AAAA,
    }
}

/// The wire bytes of a recursion-desired query for `name` of type `t`.
pub fn build_query(id: u16, name: &str, t: DnsType) -> Result<Vec<u8>, String> {
    let name = Name::from_ascii(name).map_err(|e| format!("dns_name `{name}`: {e}"))?;
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(name, record_type(t)));
    msg.to_vec()
        .map_err(|e| format!("cannot build the query: {e}"))
}

/// Judges a reply to query `id`: `Ok(None)` when it is not a reply to it
/// (another id: skip it), `Ok(Some(what))` when it passes, `Err(why)`.
pub fn judge(id: u16, reply: &[u8]) -> Result<Option<String>, String> {
    let msg = match Message::from_vec(reply) {
        Ok(m) => m,
        // a mangled reply to our id is a failure; anything else is noise
        Err(e) if reply.len() >= 2 && u16::from_be_bytes([reply[0], reply[1]]) == id => {
            return Err(format!("malformed DNS reply ({} bytes): {e}", reply.len()))
        }
        Err(_) => return Ok(None),
    };
    if msg.metadata.id != id {
        return Ok(None);
    }
    if msg.metadata.message_type != MessageType::Response {
        return Err("a DNS message with our id that is not a response (QR clear)".to_string());
    }
    let rcode = msg.metadata.response_code;
    if rcode != ResponseCode::NoError {
        return Err(format!("DNS rcode {rcode}"));
    }
    Ok(Some(format!(
        "DNS NOERROR, {} answer(s){}",
        msg.answers.len(),
        if msg.metadata.authoritative {
            ", authoritative"
        } else {
            ""
        }
    )))
}

/// One query to `spec.target`, answered before the deadline.
pub fn query(spec: &CheckSpec, deadline: Instant) -> Result<String, String> {
    let t0 = Instant::now();
    let id = query_id();
    let q = build_query(id, &spec.dns_name, spec.dns_type)?;
    let any: IpAddr = match spec.target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = UdpSocket::bind((any, 0)).map_err(|e| format!("socket: {e}"))?;
    // connected: the kernel drops datagrams from any other address, and a
    // port unreachable shows as ECONNREFUSED
    sock.connect(spec.target)
        .map_err(|e| format!("socket: {e}"))?;
    sock.send(&q)
        .map_err(|e| io_err("sending the query", &e, spec.timeout))?;
    let mut buf = [0u8; MAX_REPLY];
    loop {
        sock.set_read_timeout(Some(left(deadline, spec.timeout)?))
            .map_err(|e| format!("socket: {e}"))?;
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err("no DNS server: port unreachable".to_string())
            }
            Err(e) => return Err(io_err("no reply", &e, spec.timeout)),
        };
        if let Some(what) = judge(id, &buf[..n])? {
            return Ok(format!("{what} in {} ms", t0.elapsed().as_millis()));
        }
    }
}

/// A query id no one can guess from the last (RandomState is seeded from
/// the OS once per process and stepped per instance).
fn query_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() as u16
}

#[cfg(test)]
mod tests;

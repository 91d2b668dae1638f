//! The records a sync message carries (connections and persistence
//! templates, IPv4, IPv6 and NAT64), written and read: the record table of
//! the [module documentation](super).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

/// One synced connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRecord {
    pub proto: u8,
    /// `TcpState as u8`.
    pub state: u8,
    pub method: u8,
    pub flags: u8,
    pub client: Ipv4Addr,
    pub cport: u16,
    pub vip: Ipv4Addr,
    pub vport: u16,
    pub server: Ipv4Addr,
    pub sport: u16,
    /// Time left before expiry.
    pub timeout_ms: u32,
    /// Full-NAT: the local (director-side) address and port.
    pub local: Option<(Ipv4Addr, u16)>,
}

impl ConnRecord {
    /// Value length on the wire.
    fn value_len(&self) -> usize {
        if self.local.is_some() {
            CONN_FNAT_LEN
        } else {
            CONN_LEN
        }
    }
}

/// One synced persistence template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateRecord {
    pub proto: u8,
    pub vip: Ipv4Addr,
    pub vport: u16,
    pub client_net: Ipv4Addr,
    pub server: Ipv4Addr,
    pub sport: u16,
    pub timeout_ms: u32,
}

/// One synced IPv6 connection (NAT over IPv6: no local tuple).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn6Record {
    pub proto: u8,
    /// `TcpState as u8`.
    pub state: u8,
    pub method: u8,
    pub flags: u8,
    pub client: Ipv6Addr,
    pub cport: u16,
    pub vip: Ipv6Addr,
    pub vport: u16,
    pub server: Ipv6Addr,
    pub sport: u16,
    /// Time left before expiry.
    pub timeout_ms: u32,
}

/// One synced NAT64 connection: IPv6 client and VIP, IPv4 server, and
/// the IPv4 local tuple (full-NAT's) the server's replies come back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn64Record {
    pub proto: u8,
    /// `TcpState as u8`.
    pub state: u8,
    pub method: u8,
    pub flags: u8,
    pub client: Ipv6Addr,
    pub cport: u16,
    pub vip: Ipv6Addr,
    pub vport: u16,
    pub server: Ipv4Addr,
    pub sport: u16,
    /// Time left before expiry.
    pub timeout_ms: u32,
    /// The local (director-side) address and port.
    pub local: (Ipv4Addr, u16),
}

/// One synced persistence template of an IPv6 service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template6Record {
    pub proto: u8,
    pub vip: Ipv6Addr,
    pub vport: u16,
    /// The service's `persistence_prefix` on the sender.
    pub prefix_len: u8,
    /// The client's prefix, host bits clear.
    pub client_net: Ipv6Addr,
    pub server: Ipv6Addr,
    pub sport: u16,
    pub timeout_ms: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Conn(ConnRecord),
    Template(TemplateRecord),
    Conn6(Conn6Record),
    Conn64(Conn64Record),
    Template6(Template6Record),
}

impl Record {
    /// Encoded size, type and length bytes included.
    pub fn wire_len(&self) -> usize {
        2 + match self {
            Record::Conn(c) => c.value_len(),
            Record::Template(_) => TEMPLATE_LEN,
            Record::Conn6(_) => CONN6_LEN,
            Record::Conn64(_) => CONN64_LEN,
            Record::Template6(_) => TEMPLATE6_LEN,
        }
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) {
        match self {
            Record::Conn(c) => {
                out.extend_from_slice(&[record_type::CONN, c.value_len() as u8]);
                out.extend_from_slice(&[c.proto, c.state, c.method, c.flags]);
                out.extend_from_slice(&c.client.octets());
                out.extend_from_slice(&c.cport.to_be_bytes());
                out.extend_from_slice(&c.vip.octets());
                out.extend_from_slice(&c.vport.to_be_bytes());
                out.extend_from_slice(&c.server.octets());
                out.extend_from_slice(&c.sport.to_be_bytes());
                out.extend_from_slice(&c.timeout_ms.to_be_bytes());
                if let Some((laddr, lport)) = c.local {
                    out.extend_from_slice(&laddr.octets());
                    out.extend_from_slice(&lport.to_be_bytes());
                }
            }
            Record::Template(t) => {
                out.extend_from_slice(&[record_type::TEMPLATE, TEMPLATE_LEN as u8]);
                out.push(t.proto);
                out.extend_from_slice(&t.vip.octets());
                out.extend_from_slice(&t.vport.to_be_bytes());
                out.extend_from_slice(&t.client_net.octets());
                out.extend_from_slice(&t.server.octets());
                out.extend_from_slice(&t.sport.to_be_bytes());
                out.extend_from_slice(&t.timeout_ms.to_be_bytes());
            }
            Record::Conn6(c) => {
                out.extend_from_slice(&[record_type::CONN6, CONN6_LEN as u8]);
                out.extend_from_slice(&[c.proto, c.state, c.method, c.flags]);
                out.extend_from_slice(&c.client.octets());
                out.extend_from_slice(&c.cport.to_be_bytes());
                out.extend_from_slice(&c.vip.octets());
                out.extend_from_slice(&c.vport.to_be_bytes());
                out.extend_from_slice(&c.server.octets());
                out.extend_from_slice(&c.sport.to_be_bytes());
                out.extend_from_slice(&c.timeout_ms.to_be_bytes());
            }
            Record::Conn64(c) => {
                out.extend_from_slice(&[record_type::CONN64, CONN64_LEN as u8]);
                out.extend_from_slice(&[c.proto, c.state, c.method, c.flags]);
                out.extend_from_slice(&c.client.octets());
                out.extend_from_slice(&c.cport.to_be_bytes());
                out.extend_from_slice(&c.vip.octets());
                out.extend_from_slice(&c.vport.to_be_bytes());
                out.extend_from_slice(&c.server.octets());
                out.extend_from_slice(&c.sport.to_be_bytes());
                out.extend_from_slice(&c.timeout_ms.to_be_bytes());
                out.extend_from_slice(&c.local.0.octets());
                out.extend_from_slice(&c.local.1.to_be_bytes());
            }
            Record::Template6(t) => {
                out.extend_from_slice(&[record_type::TEMPLATE6, TEMPLATE6_LEN as u8]);
                out.push(t.proto);
                out.extend_from_slice(&t.vip.octets());
                out.extend_from_slice(&t.vport.to_be_bytes());
                out.push(t.prefix_len);
                out.extend_from_slice(&t.client_net.octets());
                out.extend_from_slice(&t.server.octets());
                out.extend_from_slice(&t.sport.to_be_bytes());
                out.extend_from_slice(&t.timeout_ms.to_be_bytes());
            }
        }
    }
}

pub(super) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(super) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(super) fn be64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(w)
}

pub(super) fn addr(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::from(be32(b, at))
}

pub(super) fn addr6(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(o)
}

pub(super) fn decode_records(body: &[u8], count: usize) -> Result<Vec<Record>, SyncError> {
    // Every record takes at least 2 bytes; known ones at least 23.
    if count > body.len() / 2 {
        return Err(SyncError::Malformed("record count"));
    }
    let mut out = Vec::with_capacity(count.min(body.len() / (2 + TEMPLATE_LEN)));
    let mut rest = body;
    let mut seen = 0usize;
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err(SyncError::Malformed("record header"));
        }
        let (t, len) = (rest[0], usize::from(rest[1]));
        if rest.len() < 2 + len {
            return Err(SyncError::Malformed("record overruns body"));
        }
        let v = &rest[2..2 + len];
        rest = &rest[2 + len..];
        seen += 1;
        match t {
            record_type::CONN => {
                if len < CONN_LEN {
                    return Err(SyncError::Malformed("short conn record"));
                }
                out.push(Record::Conn(ConnRecord {
                    proto: v[0],
                    state: v[1],
                    method: v[2],
                    flags: v[3],
                    client: addr(v, 4),
                    cport: be16(v, 8),
                    vip: addr(v, 10),
                    vport: be16(v, 14),
                    server: addr(v, 16),
                    sport: be16(v, 20),
                    timeout_ms: be32(v, 22),
                    local: (len >= CONN_FNAT_LEN).then(|| (addr(v, 26), be16(v, 30))),
                }));
            }
            record_type::TEMPLATE => {
                if len < TEMPLATE_LEN {
                    return Err(SyncError::Malformed("short template record"));
                }
                out.push(Record::Template(TemplateRecord {
                    proto: v[0],
                    vip: addr(v, 1),
                    vport: be16(v, 5),
                    client_net: addr(v, 7),
                    server: addr(v, 11),
                    sport: be16(v, 15),
                    timeout_ms: be32(v, 17),
                }));
            }
            record_type::CONN6 => {
                if len < CONN6_LEN {
                    return Err(SyncError::Malformed("short conn6 record"));
                }
                out.push(Record::Conn6(Conn6Record {
                    proto: v[0],
                    state: v[1],
                    method: v[2],
                    flags: v[3],
                    client: addr6(v, 4),
                    cport: be16(v, 20),
                    vip: addr6(v, 22),
                    vport: be16(v, 38),
                    server: addr6(v, 40),
                    sport: be16(v, 56),
                    timeout_ms: be32(v, 58),
                }));
            }
            record_type::CONN64 => {
                if len < CONN64_LEN {
                    return Err(SyncError::Malformed("short conn64 record"));
                }
                out.push(Record::Conn64(Conn64Record {
                    proto: v[0],
                    state: v[1],
                    method: v[2],
                    flags: v[3],
                    client: addr6(v, 4),
                    cport: be16(v, 20),
                    vip: addr6(v, 22),
                    vport: be16(v, 38),
                    server: addr(v, 40),
                    sport: be16(v, 44),
                    timeout_ms: be32(v, 46),
                    local: (addr(v, 50), be16(v, 54)),
                }));
            }
            record_type::TEMPLATE6 => {
                if len < TEMPLATE6_LEN {
                    return Err(SyncError::Malformed("short template6 record"));
                }
                out.push(Record::Template6(Template6Record {
                    proto: v[0],
                    vip: addr6(v, 1),
                    vport: be16(v, 17),
                    prefix_len: v[19],
                    client_net: addr6(v, 20),
                    server: addr6(v, 36),
                    sport: be16(v, 52),
                    timeout_ms: be32(v, 54),
                }));
            }
            _ => {} // a later version's record type: skipped
        }
    }
    if seen != count {
        return Err(SyncError::Malformed("record count"));
    }
    Ok(out)
}

//! Connection-sync messages: the master streams connection records and
//! persistence templates to its peers in UDP datagrams; a (re)starting
//! director asks for a bulk copy.
//!
//! Every message is authenticated with HMAC-SHA256 under the shared
//! `auth_key_file`, and the MAC is checked (in constant time) before any
//! field past the version byte is interpreted, so forged or corrupted input
//! never reaches the record parser. [`ReplayGuard`] then drops replays.
//!
//! # Wire format (version 1)
//!
//! All integers big-endian. A message is a 32-byte header, a body of
//! `body_len` bytes, and a 32-byte MAC:
//!
//! | offset | size | field    | meaning                                               |
//! |-------:|-----:|----------|-------------------------------------------------------|
//! | 0      | 4    | magic    | `"RVSY"` (`52 56 53 59`)                               |
//! | 4      | 1    | version  | 1 ([`VERSION`]); anything else is refused             |
//! | 5      | 1    | kind     | 1 records, 2 bulk request, 3 bulk end ([`kind`])      |
//! | 6      | 2    | body_len | bytes between the header and the MAC                  |
//! | 8      | 4    | sender   | IPv4 address of the sending director                  |
//! | 12     | 8    | boot     | random per process start of the sender                |
//! | 20     | 8    | seq      | per (sender, boot), +1 for every message              |
//! | 28     | 2    | count    | records in the body (0 for control messages)          |
//! | 30     | 2    | reserved | 0 on send, ignored on receive                         |
//! | 32     | n    | body     | see below                                             |
//! | 32 + n | 32   | mac      | HMAC-SHA256(key, bytes 0 .. 32 + n)                   |
//!
//! Body of kind 1 (records): `count` records, each `type:u8 len:u8
//! value[len]`. A type this version does not know is skipped; a known type
//! whose `len` exceeds its size carries fields appended by a later version,
//! which are ignored. So records can grow without a version bump.
//!
//! | type | record   | value (`len` >= this)                                                                                          |
//! |-----:|----------|----------------------------------------------------------------------------------------------------------------|
//! | 1    | conn     | 26 bytes: proto:1 state:1 method:1 flags:1 client:4 cport:2 vip:4 vport:2 server:4 sport:2 timeout_ms:4         |
//! | 2    | template | 21 bytes: proto:1 vip:4 vport:2 client_net:4 server:4 sport:2 timeout_ms:4                                      |
//! | 3    | conn6    | 62 bytes: proto:1 state:1 method:1 flags:1 client:16 cport:2 vip:16 vport:2 server:16 sport:2 timeout_ms:4      |
//! | 4    | conn64   | 56 bytes: proto:1 state:1 method:1 flags:1 client:16 cport:2 vip:16 vport:2 server:4 sport:2 timeout_ms:4 laddr:4 lport:2 |
//! | 5    | template6| 58 bytes: proto:1 vip:16 vport:2 prefix_len:1 client_net:16 server:16 sport:2 timeout_ms:4                      |
//!
//! An IPv6 connection (type 3, [`CONN6_LEN`]) is the conn record with
//! 16-byte addresses: a new type rather than a longer conn record, so a
//! peer that predates it skips it whole (as it skips any unknown type)
//! instead of reading the first 26 bytes as an IPv4 connection. Longer
//! values carry fields of a later version, ignored.
//!
//! A NAT64 connection (type 4, [`CONN64_LEN`]: an IPv6 client and VIP, an
//! IPv4 server, and the IPv4 local tuple the director sends to the server
//! from) is a type of its own for the same reason: a peer that predates it
//! skips it whole, where a longer conn6 record would be read as a NAT over
//! IPv6 one to a server that does not exist.
//!
//! An IPv6 service's persistence template (type 5, [`TEMPLATE6_LEN`])
//! carries the client prefix itself (`client_net`, host bits clear) and its
//! length, not only the 32-bit fold the template table keys it by
//! (`pipeline/persist6.rs`): the receiver derives the fold, and refuses a
//! record whose prefix length is not its service's (its key would name
//! other clients there). A bulk copy's type 5 records come from the
//! template table, which keeps only the fold: their `client_net` is the
//! prefix's key form (the fold in the first 32 bits, zeros after; the
//! prefix itself for lengths up to 32), from which the receiver derives
//! the same key (`pipeline/ha_templates.rs`).
//!
//! A full-NAT connection's record (method 3) appends its local tuple,
//! `laddr:4 lport:2` (`len` 32, [`CONN_FNAT_LEN`]): the address and port
//! the director sends to the server from and the server's replies come
//! back to. A receiver that predates it reads the first 26 bytes and skips
//! the rest (and ignores full-NAT records); a `len` of 32 or more is read
//! as carrying it (a later version appending fields to conn records keeps
//! these 6 bytes, zero for the other methods).
//!
//! Body of kind 2 (bulk request): `id:u64`. Body of kind 3 (bulk end):
//! `id:u64 records:u64`.
//!
//! A message never exceeds [`MAX_DATAGRAM`] (1400) bytes, so it is never
//! fragmented on a 1500-byte link under IPv4 + UDP (28 bytes) and whatever
//! encapsulation the exception path adds: at most 1336 body bytes, that is
//! 47 connection records (39 full-NAT ones, 20 IPv6 ones, 23 NAT64 ones)
//! or 58 templates (22 IPv6 ones).

use std::fmt;
use std::net::Ipv4Addr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Wire format version.
pub const VERSION: u8 = 1;
/// First four bytes of every message.
pub const MAGIC: [u8; 4] = *b"RVSY";
/// An encoded message never exceeds this many bytes.
pub const MAX_DATAGRAM: usize = 1400;
/// Shortest accepted key.
pub const MIN_KEY_LEN: usize = 16;
/// Fixed header.
pub const HEADER_LEN: usize = 32;
/// HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;
/// Largest body that keeps a message within [`MAX_DATAGRAM`].
pub const MAX_BODY: usize = MAX_DATAGRAM - HEADER_LEN - MAC_LEN;

/// Message kinds (header byte 5).
pub mod kind {
    pub const RECORDS: u8 = 1;
    pub const BULK_REQUEST: u8 = 2;
    pub const BULK_END: u8 = 3;
}

/// Record types (first byte of a record).
pub mod record_type {
    pub const CONN: u8 = 1;
    pub const TEMPLATE: u8 = 2;
    pub const CONN6: u8 = 3;
    pub const CONN64: u8 = 4;
    pub const TEMPLATE6: u8 = 5;
}

/// Value length of a connection record in this version.
pub const CONN_LEN: usize = 26;
/// Value length of a connection record with the local tuple of a full-NAT
/// connection appended.
pub const CONN_FNAT_LEN: usize = CONN_LEN + 6;
/// Value length of a template record in this version.
pub const TEMPLATE_LEN: usize = 21;
/// Value length of an IPv6 connection record in this version.
pub const CONN6_LEN: usize = 62;
/// Value length of a NAT64 connection record in this version.
pub const CONN64_LEN: usize = 56;
/// Value length of an IPv6 template record in this version.
pub const TEMPLATE6_LEN: usize = 58;

/// Why a message was refused (or, for `KeyTooShort` and `TooLarge`, not
/// built).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("message shorter than header + MAC")]
    Short,
    #[error("bad magic")]
    BadMagic,
    #[error("unsupported sync version {0}")]
    BadVersion(u8),
    #[error("authentication failed")]
    BadMac,
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// Authentic but inconsistent: a peer with a bug, not an attacker.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    #[error("sync key shorter than {MIN_KEY_LEN} bytes")]
    KeyTooShort,
    /// [`try_encode`]: the records do not fit one datagram.
    #[error("message does not fit {MAX_DATAGRAM} bytes")]
    TooLarge,
}

/// The shared HMAC key. The HMAC state is keyed once here and cloned per
/// message. `Debug` does not print the key.
#[derive(Clone)]
pub struct SyncKey {
    mac: HmacSha256,
}

impl SyncKey {
    /// At least [`MIN_KEY_LEN`] bytes (the key file's contents, as is).
    pub fn new(bytes: &[u8]) -> Result<SyncKey, SyncError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(SyncError::KeyTooShort);
        }
        let mac = HmacSha256::new_from_slice(bytes).map_err(|_| SyncError::KeyTooShort)?;
        Ok(SyncKey { mac })
    }

    /// HMAC-SHA256 of `data`: the tag that follows a message's bytes.
    pub fn mac(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let mut m = self.mac.clone();
        m.update(data);
        m.finalize().into_bytes().into()
    }

    /// Constant-time check of `tag` over `data`.
    fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut m = self.mac.clone();
        m.update(data);
        m.verify_slice(tag).is_ok()
    }
}

impl fmt::Debug for SyncKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SyncKey(..)")
    }
}

mod batcher;
mod records;
mod replay;

pub use batcher::Batcher;
use records::{addr, be16, be64, decode_records};
pub use records::{Conn64Record, Conn6Record, ConnRecord, Record, Template6Record, TemplateRecord};
pub use replay::{ReplayGuard, REPLAY_SENDERS, RETIRED_BOOTS};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Records(Vec<Record>),
    /// "Send me your whole table", from a director that joins or restarts.
    BulkRequest {
        id: u64,
    },
    /// The last message of the bulk copy answering request `id`, with the
    /// number of records the copy carried.
    BulkEnd {
        id: u64,
        records: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub sender: Ipv4Addr,
    /// Random per process start: lets the receiver tell a restart (seq
    /// starts again) from a replay.
    pub boot: u64,
    pub seq: u64,
    pub body: Body,
}

/// Encodes `m`, never exceeding [`MAX_DATAGRAM`]: records that would not fit
/// are left out. Use [`Batcher`] to split a stream of records, or
/// [`try_encode`] to be told.
pub fn encode(m: &Message, key: &SyncKey) -> Vec<u8> {
    encode_counted(m.sender, m.boot, m.seq, &m.body, key).0
}

/// Like [`encode`], but refuses ([`SyncError::TooLarge`]) a message whose
/// records do not all fit.
pub fn try_encode(m: &Message, key: &SyncKey) -> Result<Vec<u8>, SyncError> {
    let (out, n) = encode_counted(m.sender, m.boot, m.seq, &m.body, key);
    match &m.body {
        Body::Records(rs) if n < rs.len() => Err(SyncError::TooLarge),
        _ => Ok(out),
    }
}

/// Encodes and returns how many records went in.
fn encode_counted(
    sender: Ipv4Addr,
    boot: u64,
    seq: u64,
    body: &Body,
    key: &SyncKey,
) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(MAX_DATAGRAM);
    let k = match body {
        Body::Records(_) => kind::RECORDS,
        Body::BulkRequest { .. } => kind::BULK_REQUEST,
        Body::BulkEnd { .. } => kind::BULK_END,
    };
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(k);
    out.extend_from_slice(&[0, 0]); // body_len, below
    out.extend_from_slice(&sender.octets());
    out.extend_from_slice(&boot.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // count, below; reserved
    let mut count = 0usize;
    match body {
        Body::Records(rs) => {
            for r in rs {
                if out.len() - HEADER_LEN + r.wire_len() > MAX_BODY {
                    break;
                }
                r.write(&mut out);
                count += 1;
            }
        }
        Body::BulkRequest { id } => out.extend_from_slice(&id.to_be_bytes()),
        Body::BulkEnd { id, records } => {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&records.to_be_bytes());
        }
    }
    // Both fit 16 bits: the body is at most MAX_BODY bytes of records of
    // at least 23 bytes each.
    let body_len = (out.len() - HEADER_LEN) as u16;
    out[6..8].copy_from_slice(&body_len.to_be_bytes());
    out[28..30].copy_from_slice(&(count as u16).to_be_bytes());
    let tag = key.mac(&out);
    out.extend_from_slice(&tag);
    (out, count)
}

/// Decodes and authenticates one datagram.
///
/// Checks, in this order: length >= header + MAC (`Short`), magic, version,
/// MAC (constant time), then the structure. Never panics; allocates at most
/// one record slot per 23 body bytes.
pub fn decode(buf: &[u8], key: &SyncKey) -> Result<Message, SyncError> {
    if buf.len() < HEADER_LEN + MAC_LEN {
        return Err(SyncError::Short);
    }
    if buf[0..4] != MAGIC {
        return Err(SyncError::BadMagic);
    }
    if buf[4] != VERSION {
        return Err(SyncError::BadVersion(buf[4]));
    }
    let (data, tag) = buf.split_at(buf.len() - MAC_LEN);
    if !key.verify(data, tag) {
        return Err(SyncError::BadMac);
    }
    // Authentic from here on.
    let body = &data[HEADER_LEN..];
    if usize::from(be16(data, 6)) != body.len() {
        return Err(SyncError::Malformed("body length"));
    }
    let count = usize::from(be16(data, 28));
    let body = match data[5] {
        kind::RECORDS => Body::Records(decode_records(body, count)?),
        kind::BULK_REQUEST => {
            if body.len() != 8 {
                return Err(SyncError::Malformed("bulk request length"));
            }
            Body::BulkRequest { id: be64(body, 0) }
        }
        kind::BULK_END => {
            if body.len() != 16 {
                return Err(SyncError::Malformed("bulk end length"));
            }
            Body::BulkEnd {
                id: be64(body, 0),
                records: be64(body, 8),
            }
        }
        k => return Err(SyncError::UnknownKind(k)),
    };
    Ok(Message {
        sender: addr(data, 8),
        boot: be64(data, 12),
        seq: be64(data, 20),
        body,
    })
}

#[cfg(test)]
mod tests;

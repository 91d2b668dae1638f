//! Fuzz the HA codecs: `ha::sync::decode` and `ha::advert::decode_ip`.
//!
//! Input: one mode byte, then the bytes. Both decoders see every input.
//!
//! * Mode bit 0: the bytes are a sync message *without* its MAC; the target
//!   appends the right HMAC under its fixed key, so the fuzzer gets past
//!   authentication to the record parser (a random 32-byte tag is never
//!   right). Without it, the bytes go to `decode` as they are.
//! * Mode bit 1: the bytes are an IPv4 packet whose VRRP checksum is
//!   repaired (where the IP header locates one) before `decode_ip`.
//!
//! Checked: no panic; a decoded sync message re-encodes within
//! `MAX_DATAGRAM` whenever its input did, and decodes to itself (conn
//! records of 32 bytes or more included: they carry a full-NAT local
//! tuple, re-encoded as exactly 32; IPv6 conn records, type 3, of 62
//! bytes or more, re-encoded as exactly 62; NAT64 conn records, type 4,
//! as exactly 56; IPv6 templates, type 5, as exactly 58); a decoded
//! advert re-encodes into a packet that decodes to the same advert.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use engine::ha::advert::{self, PROTO_VRRP};
use engine::ha::sync::{self, SyncError, SyncKey, MAX_DATAGRAM};
use engine::packet::checksum;
use libfuzzer_sys::fuzz_target;

fn key() -> &'static SyncKey {
    static KEY: OnceLock<SyncKey> = OnceLock::new();
    KEY.get_or_init(|| SyncKey::new(b"rvs-fuzz-sync-key-0123456789").expect("key length"))
}

/// Rewrites the VRRP checksum of an IPv4 packet in place, if the header is
/// sane enough to find the VRRP part.
fn fix_vrrp_checksum(p: &mut [u8]) {
    if p.len() < 20 {
        return;
    }
    let ihl = usize::from(p[0] & 0x0F) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if ihl < 20 || total < ihl + 8 || total > p.len() {
        return;
    }
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let vrrp = &mut p[ihl..total];
    vrrp[6] = 0;
    vrrp[7] = 0;
    let c = checksum::ipv4_l4_checksum(src, dst, PROTO_VRRP, vrrp);
    vrrp[6..8].copy_from_slice(&c.to_be_bytes());
}

/// A minimal IPv4 header (no options, TTL 255) around a VRRP payload.
fn wrap(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 255, PROTO_VRRP, 0, 0];
    h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

fn check_sync(buf: &[u8]) {
    let Ok(m) = sync::decode(buf, key()) else {
        return;
    };
    if let sync::Body::Records(rs) = &m.body {
        for r in rs {
            let len = match r {
                sync::Record::Conn6(_) => sync::CONN6_LEN,
                sync::Record::Conn64(_) => sync::CONN64_LEN,
                sync::Record::Template6(_) => sync::TEMPLATE6_LEN,
                _ => continue,
            };
            assert_eq!(r.wire_len(), 2 + len);
        }
    }
    match sync::try_encode(&m, key()) {
        Ok(again) => {
            assert!(again.len() <= MAX_DATAGRAM);
            assert_eq!(sync::decode(&again, key()), Ok(m));
        }
        // Every decoded record came from at least its own encoded size of
        // input, so only an oversized input can fail to re-encode.
        Err(e) => {
            assert_eq!(e, SyncError::TooLarge);
            assert!(buf.len() > MAX_DATAGRAM);
        }
    }
}

fn check_advert(packet: &[u8]) {
    let Ok((src, dst, a)) = advert::decode_ip(packet) else {
        return;
    };
    let again = wrap(src, dst, &advert::encode(&a, src, dst));
    assert_eq!(advert::decode_ip(&again), Ok((src, dst, a)));
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };

    if mode & 1 == 1 {
        let mut signed = bytes.to_vec();
        let tag = key().mac(bytes);
        signed.extend_from_slice(&tag);
        check_sync(&signed);
    } else {
        check_sync(bytes);
    }

    if mode & 2 == 2 {
        let mut p = bytes.to_vec();
        fix_vrrp_checksum(&mut p);
        check_advert(&p);
    } else {
        check_advert(bytes);
    }
});

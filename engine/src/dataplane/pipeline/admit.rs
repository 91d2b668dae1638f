//! Admission of a new connection (SPEC §5 "Hostile traffic", §10): the
//! checks a packet must pass before it may create state. They run only on
//! the slow path (a miss that would schedule a server), so they can afford
//! a full L4 checksum.

use std::net::Ipv4Addr;

use super::super::counters::Drop;
use super::admit_sources::Sources;
use super::schedule::Opening;
use crate::conn::{Method, PROTO_UDP};
use crate::dataplane::snapshot::{Service, Snapshot};
use crate::packet::checksum::ipv4_l4_verify;
use crate::packet::Parsed;

/// Why a packet to a VIP may not open a connection, if it may not.
pub(super) fn refuse_new(snap: &Snapshot, frame: &[u8], p: &Parsed, svc: &Service) -> Option<Drop> {
    if p.is_tcp() && (p.tcp_flags.rst() || p.tcp_flags.fin()) {
        // SYN+RST / SYN+FIN: nothing a client sends to open a connection.
        return Some(Drop::BadTcpFlags);
    }
    refuse_source(snap, frame, p, svc)
}

/// [`refuse_new`] without the flag test: the checks on where a packet comes
/// from and whether it is intact, also for the segment of a moved flow
/// (`rescue`), which may carry FIN or RST.
pub(super) fn refuse_source(
    snap: &Snapshot,
    frame: &[u8],
    p: &Parsed,
    svc: &Service,
) -> Option<Drop> {
    if let Some(d) = refuse_origin(snap, p.src, svc) {
        return Some(d);
    }
    refuse_damaged(frame, p)
}

/// [`refuse_source`] for a frame of the fast shape (`parse_fast`: IPv4
/// at 14 without options, TCP/UDP at 34, not a fragment; `p` its flow,
/// `total` its IP total length), with the snapshot's filter of the
/// sources it may refuse (`admit_sources.rs`): a source outside it skips
/// the walks over the snapshot's addresses and the service's servers,
/// which would all come out "no"; one in it takes them, so every drop is
/// the same. The checksum over the segment at its fixed offset.
#[inline(always)]
pub(super) fn refuse_source_fast(
    sources: &Sources,
    snap: &Snapshot,
    frame: &[u8],
    p: &Opening,
    total: u16,
    svc: &Service,
) -> Option<Drop> {
    if is_reserved(p.src) || sources.may_refuse(p.src) {
        if let Some(d) = refuse_origin(snap, p.src, svc) {
            return Some(d);
        }
    }
    // The segment: from 34 to the IP packet's end (the shape test
    // checked that the frame holds it).
    let seg = frame.get(34..14 + usize::from(total));
    let ok = seg.is_some_and(|seg| {
        (p.protocol == PROTO_UDP && seg.get(6..8) == Some(&[0, 0]))
            || ipv4_l4_verify(p.src, p.dst, p.protocol, seg)
    });
    (!ok).then_some(Drop::BadChecksum)
}

/// A martian source, or one of the service's own servers.
fn refuse_origin(snap: &Snapshot, src: Ipv4Addr, svc: &Service) -> Option<Drop> {
    if is_martian_source(snap, src) {
        return Some(Drop::Martian);
    }
    let mut servers = svc.servers.iter().chain(svc.sorry.as_ref());
    if servers.clone().any(|s| s.addr == src) && !servers.all(|s| s.method == Method::Fnat) {
        // One of the service's own servers: scheduling it to another
        // server would loop on the server segment. Not with full-NAT
        // only: every server then sees the director as its client and
        // answers it (hairpin).
        return Some(Drop::FromRealServer);
    }
    None
}

/// A segment whose checksum does not verify.
#[inline(always)]
fn refuse_damaged(frame: &[u8], p: &Parsed) -> Option<Drop> {
    // A first fragment holds only part of what its checksum covers: it
    // cannot be verified here (the server verifies the reassembled one).
    if !p.fragment && !l4_checksum_ok(frame, p) {
        return Some(Drop::BadChecksum);
    }
    None
}

/// A source in a range no client may use: this network (0/8), loopback,
/// multicast, 240/4 and the limited broadcast.
#[inline(always)]
fn is_reserved(src: Ipv4Addr) -> bool {
    let o = src.octets();
    o[0] == 0 || o[0] == 127 || o[0] >= 224
}

/// A source no packet from a client can carry (Linux's martians): this
/// network (0/8), loopback, multicast, 240/4 and the limited broadcast, a
/// VIP, one of the director's own addresses, or an attached subnet's
/// network or broadcast address.
pub fn is_martian_source(snap: &Snapshot, src: Ipv4Addr) -> bool {
    if is_reserved(src) {
        return true;
    }
    if snap.is_vip(src) || snap.is_own(src) || snap.is_virtual(src) {
        return true;
    }
    let a = u32::from(src);
    snap.ports.iter().any(|pi| {
        let host = !pi.mask;
        pi.on_link(src)
            && host != 0
            && (a & host == host || (pi.mask != u32::MAX - 1 && a & host == 0))
    })
}

/// The TCP or UDP checksum of the packet verifies (UDP without a checksum,
/// 0, passes).
fn l4_checksum_ok(frame: &[u8], p: &Parsed) -> bool {
    // The segment the parser validated (`l4_off..l3_end`, its header there).
    let Some(fr) = p.ipv4(frame) else {
        return false;
    };
    if fr.udp().is_some_and(|u| u.checksum() == 0) {
        return true;
    }
    ipv4_l4_verify(p.src, p.dst, p.protocol, fr.l4_bytes())
}

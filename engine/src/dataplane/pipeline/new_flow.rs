//! The new-flow path: the SYN that opens a NAT or DR connection (or the
//! first datagram of a UDP flow), for a frame of the fast shape, without
//! the full path's re-parse and re-decisions and with the first pass's
//! hash reused for the insert.
//!
//! The established path (`established.rs`) looks every fast-shape
//! segment up, whatever its flags; when it misses, the dispatch
//! (`process_inspected`) makes the checks `ipv4` makes before its lookup
//! that the established path did not (not to one of the director's own
//! addresses, this worker owns the flow; the TTL to decrement and the
//! master were the established path's) and calls this path. (With `[ha]
//! sync` the established path is off and the transition path,
//! `transition.rs`, looks up and misses instead.) The full path would
//! build the summary again, repeat those checks and the miss, and then
//! schedule. This path takes the miss from there and makes exactly
//! `ipv4`'s moves for a plain SYN to a service:
//!
//! * the segment is a SYN without ACK, FIN or RST (anything else that
//!   misses is the full path's: cookie ACKs, rescued flows, SYN+FIN), or
//!   a UDP datagram (the first of its flow: `ipv4` makes the same moves
//!   for it as for a SYN, but the flag tests);
//! * the destination is a VIP with a service of this protocol and port,
//!   neither synproxied nor one-packet (`ops`);
//! * admission as `ipv4` makes it (`admit::refuse_source`: martian source,
//!   one of the service's own servers, the TCP checksum; the first two
//!   asked only of a source the snapshot's filter holds,
//!   `admit_sources.rs`), then draining;
//! * the pick (persistence, scheduler, sorry server), the client's MAC
//!   learned, the connection opened and counted (`open_conn`, given the
//!   first pass's hash of the flow key, which is the new record's inbound
//!   key: the insert does not hash it again);
//! * forwarded: full-NAT by `fnat_forward`, TUN and anything whose next
//!   hop is not in the next-hop cache or that does not fit the egress MTU
//!   by `inbound` (the full path's forwarding, which resolves, queues ARP
//!   and answers too-big), NAT and DR with the fixed-offset rewrite of
//!   `forward::fast` (the same bytes as `inbound`'s) and `inbound`'s
//!   per-server counts, added up in the server's entry of the established
//!   path (`dest_fast.rs`, flushed once per burst), whose remembered next
//!   hop is tried before the next-hop cache.
//!
//! Everything before the pick returns `None` (or the same counted drop
//! `ipv4` makes) before anything is written, so the full path decides as
//! before.

use std::net::Ipv4Addr;

use super::schedule::Opening;
use super::{admit, rewrite_drop, Dest, Frame, Pipeline, Verdict};
use crate::conn::{tcp_flags, ConnId, Dir, KeyHash, Method, PROTO_TCP};
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::{Server, Snapshot};
use crate::forward;
use crate::packet::parse_fast::fast_parsed;

/// The TCP flags a plain SYN has of the four that decide.
const OPEN_MASK: u8 = tcp_flags::SYN | tcp_flags::ACK | tcp_flags::FIN | tcp_flags::RST;

impl Pipeline {
    /// Opens and forwards the connection of `f`, a fast-shape TCP segment
    /// or UDP datagram whose lookup (with `hash`) just missed, when it is a
    /// plain SYN or a datagram to a service (module docs); `None` leaves everything untouched for the
    /// full path.
    ///
    /// Out of line: inlined into the transition path it would cost that
    /// path's segments (the handshake's ACK, the FIN) in register spills.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new_flow<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        hash: KeyHash,
        in_port: usize,
        now_ms: u64,
    ) -> Option<Verdict> {
        // Its own reading of the segment: the flow, the flags and the
        // length at the fast shape's offsets (the first pass checked the
        // shape), no whole summary (`Parsed`); one is made only for the
        // full path's forwarding (`open_forward`).
        let (o, flags, total) = opening(f.data())?;
        let v = self.open_new(snap, f, &o, flags, total, hash, in_port, now_ms)?;
        self.new_flow_hits += 1;
        Some(v)
    }

    /// [`new_flow`](Self::new_flow) but for its count.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn open_new<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Opening,
        flags: u8,
        total: u16,
        hash: KeyHash,
        in_port: usize,
        now_ms: u64,
    ) -> Option<Verdict> {
        if p.protocol == PROTO_TCP && flags & OPEN_MASK != tcp_flags::SYN {
            return None;
        }
        // (Not to a VIP: no service either, so `ipv4`'s `is_vip` test
        // need not be asked first.)
        let svc = snap.service_for(p.protocol, p.dst, p.dst_port)?;
        if svc.synproxy || svc.ops {
            return None;
        }
        // `ipv4`'s order from here: admission, draining, the pick.
        let sources = self.dests.sources(snap);
        if let Some(d) = admit::refuse_source_fast(sources, snap, f.data(), p, total, svc) {
            return Some(self.drop(d));
        }
        if self.shared.is_draining() {
            return Some(self.drop(Drop::Draining));
        }
        let Some((srv, template)) = self.pick(snap, svc, p, now_ms) else {
            return Some(self.drop(Drop::NoServer));
        };
        self.learn_client(snap, f, p, srv, in_port, now_ms);
        // The segment's flags as the state table reads them: a plain SYN
        // selects its SYN row whatever else it carries (ECE, CWR, PSH...),
        // and a datagram's are not read; the constant lets the record's
        // first state be a table read at a known row.
        let syn = tcp_flags::SYN;
        let opened = self.open_conn(snap, svc, p, srv, template, syn, 0, Some(hash), now_ms);
        let (to, id) = match opened {
            Ok(x) => x,
            Err(d) => return Some(self.drop(d)),
        };
        Some(self.open_forward(snap, f, total, to, id, srv, in_port, now_ms))
    }

    /// Forwards the first segment of connection `id` to `to`, as `ipv4`
    /// does after `open_conn`, with the fixed-offset rewrite when the next
    /// hop is cached (module docs).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn open_forward<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        total: u16,
        to: Dest,
        id: ConnId,
        srv: &Server,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        match to.method {
            Method::Fnat => {
                let c = *self.conns.get(id);
                let p = &fast_parsed(f.data());
                return self.fnat_forward(snap, f, p, id, Dir::Inbound, &c, srv, in_port, now_ms);
            }
            Method::Nat | Method::Dr => {}
            Method::Tun => return self.full_forward(snap, f, to, srv, in_port, now_ms),
        }
        // The server's entry of the established path (`dest_fast.rs`): its
        // remembered next hop, the per-burst counts. A server just picked
        // is usable in this snapshot; the table was stamped with it by
        // `open_new`'s `sources`, and nothing since rebuilds it.
        let Some(di) = self.dests.usable_stamped(snap, srv.shared.id) else {
            return self.full_forward(snap, f, to, srv, in_port, now_ms);
        };
        let a = u32::from(to.addr);
        let (port, mtu, macs) = match self.dests.hop(di, a, now_ms, &self.shared.neigh) {
            Some(h) => (h.port, h.port_mtu, h.macs),
            None => match self.hop_hit(snap, to.addr, now_ms) {
                Some(h) => {
                    let h = *h;
                    self.dests.set_hop(di, h);
                    (h.port, h.port_mtu, h.macs)
                }
                None => return self.full_forward(snap, f, to, srv, in_port, now_ms),
            },
        };
        if total > mtu {
            return self.full_forward(snap, f, to, srv, in_port, now_ms);
        }
        let frame = f.data_mut();
        let done = if to.method == Method::Dr {
            forward::dr_fixed_pair(frame, &macs)
        } else {
            let side = forward::NatSide::Dst;
            forward::nat_fixed_pair(frame, side, to.addr, to.port, &macs)
        };
        if let Err(e) = done {
            return self.drop(rewrite_drop(e));
        }
        // IP bytes, as IPVS counts (no Ethernet header or padding), added
        // up per burst.
        self.dests.count(snap, di, false, u64::from(total));
        Verdict::Tx(port as usize)
    }

    /// The full path's forwarding (`inbound`) of the frame, not yet
    /// rewritten, with the summary it reads, made here.
    #[inline(never)]
    fn full_forward<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        to: Dest,
        srv: &Server,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let p = &fast_parsed(f.data());
        self.inbound(snap, f, p, to, srv, in_port, now_ms)
    }
}

/// The flow, the TCP flag byte (0 for UDP) and the IP total length of a
/// frame of the fast shape (IPv4 at 14 without options, TCP or UDP at 34),
/// read at their offsets: what the new-flow path reads of its segment.
/// `None` for a frame too short to hold the headers (none of the fast
/// shape is).
#[inline(always)]
fn opening(frame: &[u8]) -> Option<(Opening, u8, u16)> {
    let h = frame.first_chunk::<42>()?;
    let protocol = h[23];
    let flags = match frame.get(47) {
        Some(&f) if protocol == PROTO_TCP => f,
        _ => 0,
    };
    let o = Opening {
        protocol,
        src: Ipv4Addr::new(h[26], h[27], h[28], h[29]),
        src_port: u16::from_be_bytes([h[34], h[35]]),
        dst: Ipv4Addr::new(h[30], h[31], h[32], h[33]),
        dst_port: u16::from_be_bytes([h[36], h[37]]),
    };
    Some((o, flags, u16::from_be_bytes([h[16], h[17]])))
}

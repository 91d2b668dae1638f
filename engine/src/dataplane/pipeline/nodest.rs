//! A packet of a connection whose real server is gone: deleted (or its
//! service deleted), or marked down by a health check (issue 14, IPVS's
//! `expire_nodest_conn`).
//!
//! Dropping such packets and nothing more leaves the client hanging: its
//! retransmissions find no connection (or the same dead one) until its own
//! timeout gives up, minutes later. With `[timeouts] expire_nodest_conn`
//! (the default) the connection is expired by its next packet and the
//! client is told or served at once:
//!
//! * a client's SYN or UDP datagram is scheduled afresh (as a newer kernel's
//!   IPVS reschedules a SYN), to a live server;
//! * any other client TCP segment is answered with an RST from the VIP
//!   (RFC 793's reset for a segment of an unknown connection), so the
//!   client's socket fails with ECONNRESET instead of retransmitting;
//! * a TCP segment from the server side is dropped and the connection
//!   kept, so that the client's next segment still finds it and gets its
//!   RST; a UDP one expires the connection.
//!
//! Off, IPVS's default: a deleted server's connections keep their entries
//! until they time out (and resume if the server comes back, same address
//! and port), their packets dropped; a server marked down still has its
//! connections expired (SPEC §5), silently.
//!
//! Only reached when the snapshot's server check failed, so established
//! flows pay nothing for it.

use super::synproxy::segment;
use super::{Frame, Looked, Pipeline, Verdict};
use crate::conn::{Conn, ConnId, Dir};
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::Snapshot;
use crate::packet::{Parsed, TcpFlags};

impl Pipeline {
    /// A packet of connection `id`, whose server `snap` no longer has (or
    /// has marked down).
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn nodest<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        id: ConnId,
        dir: Dir,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let c = *self.conns.get(id);
        if !snap.expire_nodest_conn {
            if snap.dest(c.dest()).is_some() {
                // Marked down: expired, as always.
                self.expire_nodest(snap, id, now_ms);
            }
            return self.drop(Drop::ServerGone);
        }
        if dir == Dir::Reply {
            if p.is_udp() {
                self.expire_nodest(snap, id, now_ms);
            }
            return self.drop(Drop::ServerGone);
        }
        self.expire_nodest(snap, id, now_ms);
        let flags = p.tcp_flags;
        if p.is_udp() || (flags.syn() && !flags.ack()) {
            // Schedule it afresh: the lookup now misses. The frame is this
            // worker's already.
            return self.ipv4(snap, f, p, None, Looked::NotYet, in_port, now_ms, true);
        }
        if flags.rst() {
            return self.drop(Drop::ServerGone);
        }
        self.rst_nodest(snap, f, p, &c, now_ms)
    }

    /// Forgets a connection of a gone server, counted.
    fn expire_nodest(&mut self, snap: &Snapshot, id: ConnId, now_ms: u64) {
        self.release(snap, id, now_ms);
        self.stats.nodest_expired.inc();
    }

    /// Answers the client's segment `p` of connection `c` with an RST from
    /// the VIP, written over the frame: RFC 793's reset, `seq = SEG.ACK`
    /// when the segment acknowledges something, else an RST-ACK of all it
    /// carried. The client's view of the sequence numbers is the one on the
    /// wire here (also for a synproxied connection), so it accepts it.
    fn rst_nodest<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        c: &Conn,
        now_ms: u64,
    ) -> Verdict {
        let Some((seq, ack, _)) = segment::numbers(f.data(), p) else {
            return self.drop(Drop::ServerGone);
        };
        let (seq, ack, flags) = if p.tcp_flags.ack() {
            (ack, 0, TcpFlags::RST)
        } else {
            let len = segment::payload_len(f.data(), p) as u32
                + u32::from(p.tcp_flags.syn())
                + u32::from(p.tcp_flags.fin());
            (0, seq.wrapping_add(len), TcpFlags::RST | TcpFlags::ACK)
        };
        let (out, mac) = match self.next_hop(snap, c.client(), now_ms) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        let s = segment::Segment {
            eth_dst: mac,
            eth_src: snap.ports[out].mac,
            src: c.vip(),
            dst: c.client(),
            sport: c.vport(),
            dport: c.cport(),
            seq,
            ack,
            flags,
            window: 0,
            mss: None,
        };
        if !f.resize(segment::FRAME_LEN) || !segment::write(f.data_mut(), &s) {
            return self.drop(Drop::NoHeadroom);
        }
        self.stats.nodest_rst_sent.inc();
        Verdict::Tx(out)
    }
}

//! The synproxy: SYN cookies for NAT TCP services (`[timeouts]
//! syn_cookies = true`, SPEC §5 "Hostile traffic"), as DPVS's synproxy.
//!
//! * A SYN is answered by the director itself, from the VIP, with a SYN-ACK
//!   whose ISN is a SYN cookie ([`cookie`]); nothing is stored, so a SYN
//!   flood costs no table entry and can evict nobody.
//! * The client's ACK (a segment that misses the table) is checked: `ack -
//!   1` must be a cookie of ours for its 4-tuple and `seq - 1`, made in the
//!   current or the previous minute. A bad one is a counted drop
//!   ([`Drop::BadSynCookie`]). A good one schedules a server as any new
//!   connection does (persistence included), creates the connection
//!   (SYN_RECV, flagged [`SYNPROXY`], *pending*) and becomes the SYN to the
//!   server: client address and port to server address and port, seq = the
//!   client's ISN, the MSS the cookie carries, the client's window. Its
//!   payload, if any, is kept (below).
//! * The client's first data segment while the server's answer is awaited
//!   is kept too (one per connection, in a small per-worker ring,
//!   [`held`]), and sent in place of our ACK once the server answers: it
//!   acknowledges the server's SYN as well, and the client's request is
//!   not delayed by a retransmission timeout.
//! * The server's SYN-ACK is not forwarded: it becomes the ACK the client
//!   would have sent (seq = client ISN + 1, ack = server ISN + 1), the
//!   connection turns ESTABLISHED and its shift `delta = server ISN -
//!   cookie` is recorded. A server RST becomes an RST to the client (seq =
//!   cookie + 1) and the connection is released. A server that does not
//!   answer leaves the connection to expire in SYN_RECV (the client is
//!   not told).
//! * While pending, every further client segment is turned into the SYN
//!   again (a lost SYN is recovered by the client's own retransmissions); once
//!   established, a retransmitted server SYN-ACK (our ACK was lost) gets
//!   the ACK again.
//! * For the rest of the connection, client segments have `ack += delta`
//!   and server segments `seq -= delta` (RFC 1624 checksum update), then
//!   the usual NAT rewrite. Other connections pay one flag test
//!   (`Pipeline::existing`).
//!
//! Always on for such services when the key is set, as DPVS does, rather
//! than only under pressure as Linux does: the decision then never depends
//! on what a flood did to the table (a table-fill trigger would hand the
//! attacker the switch and leave legitimate handshakes racing the flood
//! for entries until it flips), and there is one path, always exercised.
//! The price: the options a cookie cannot carry. The SYN-ACK offers only
//! MSS, so connections through the synproxy run without window scaling,
//! SACK and timestamps (the SYN to the server offers none either, so both
//! sides agree).
//!
//! Synproxied connections are not synced to the `[ha]` peer (the sync
//! record has no room for the shift): after a failover they are lost.

mod cookie;
mod held;
pub(super) mod segment;

use super::{admit, Dest, Frame, Opening, Pipeline, Verdict};
use crate::conn::{self, tcp_flags, Conn, ConnId, Dir};
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::{Server, Service, Snapshot};
use crate::packet::ethernet::MacAddr;
use crate::packet::{parse_frame, Parsed, TcpFlags};

use cookie::MSS_TABLE;

/// Connection flag: opened by the synproxy (its sequence numbers shift).
pub(super) const SYNPROXY: u8 = conn::flags::USER2;

/// The window of our SYN-ACK: without window scaling, the largest there is.
const SYNACK_WINDOW: u16 = 65535;

/// IPv4 + TCP header bytes of an MSS-less segment: the MSS a port's MTU
/// allows is `mtu - 40`.
const TCP_IP_HEADERS: u16 = 40;

/// What a synproxied connection keeps besides its record (indexed by
/// `ConnId`; the record's 32 bytes have no room for it).
#[derive(Clone, Copy, Debug, Default)]
struct Shift {
    /// Established: server ISN - cookie. Pending: the cookie (our ISN).
    delta: u32,
    client_isn: u32,
    /// The client's window and the MSS its cookie carried: what the SYN and
    /// the ACK to the server announce.
    window: u16,
    mss: u16,
    /// The server has not answered our SYN yet.
    pending: bool,
    /// A client segment kept meanwhile ([`held::Held`] handle; 0: none).
    held: u16,
}

/// One worker's synproxy state.
pub(super) struct Synproxy {
    key: cookie::CookieKey,
    /// One per connection slot, allocated by [`Synproxy::prepare`] the first
    /// time a snapshot has a synproxy service (16 bytes per connection;
    /// nothing when the feature is never used).
    shifts: Vec<Shift>,
    held: held::Held,
}

impl Synproxy {
    pub(super) fn new() -> Synproxy {
        Synproxy {
            key: cookie::CookieKey::random(),
            shifts: Vec::new(),
            held: held::Held::empty(),
        }
    }

    /// Sizes the shift array for `capacity` connections once a service
    /// uses the synproxy (cold path: a new snapshot).
    pub(super) fn prepare(&mut self, snap: &Snapshot, capacity: usize) {
        if self.shifts.len() < capacity && snap.services.iter().any(|s| s.synproxy) {
            self.shifts = vec![Shift::default(); capacity];
            if self.held.is_empty() {
                self.held = held::Held::new();
            }
        }
    }
}

fn tuple(p: &Parsed) -> cookie::Tuple {
    cookie::Tuple {
        client: p.src,
        cport: p.src_port,
        vip: p.dst,
        vport: p.dst_port,
    }
}

impl Pipeline {
    /// A SYN to a synproxy service (admitted): answer it with a cookie
    /// SYN-ACK from the VIP, written over the SYN, back where it came from.
    #[inline(never)]
    pub(super) fn syn_cookie<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let Some((isn, _, _)) = segment::numbers(f.data(), p) else {
            return self.drop(Drop::RewriteFailed);
        };
        let mss = segment::mss_option(f.data(), p).unwrap_or(MSS_TABLE[0]);
        let ours = self
            .synproxy
            .key
            .make(&tuple(p), isn, cookie::mss_index(mss), now_ms);
        // What the client may send us: the smallest port MTU's worth (the
        // server side may be the narrower one).
        let mtu = snap.ports.iter().map(|pi| pi.mtu).min().unwrap_or(1500);
        let s = segment::Segment {
            eth_dst: MacAddr::from_bytes(&f.data()[6..12]),
            eth_src: snap.ports[in_port].mac,
            src: p.dst,
            dst: p.src,
            sport: p.dst_port,
            dport: p.src_port,
            seq: ours,
            ack: isn.wrapping_add(1),
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: SYNACK_WINDOW,
            mss: Some(mtu.saturating_sub(TCP_IP_HEADERS)),
        };
        if !f.resize(segment::FRAME_LEN) || !segment::write(f.data_mut(), &s) {
            return self.drop(Drop::NoHeadroom);
        }
        self.stats.syn_cookies_sent.inc();
        Verdict::Tx(in_port)
    }

    /// An ACK that matches no connection, to a synproxy service: if it
    /// proves a cookie, open the connection and send the server our SYN.
    #[inline(never)]
    pub(super) fn cookie_ack<F: Frame>(
        &mut self,
        snap: &Snapshot,
        svc: &Service,
        f: &mut F,
        p: &Parsed,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        if p.tcp_flags.rst() || p.tcp_flags.fin() {
            return self.drop(Drop::NoConnection);
        }
        let Some((seq, ack, window)) = segment::numbers(f.data(), p) else {
            return self.drop(Drop::NoConnection);
        };
        let (client_isn, ours) = (seq.wrapping_sub(1), ack.wrapping_sub(1));
        let Some(mss_index) = self.synproxy.key.check(&tuple(p), client_isn, ours, now_ms) else {
            return self.drop(Drop::BadSynCookie);
        };
        if let Some(d) = admit::refuse_new(snap, f.data(), p, svc) {
            return self.drop(d);
        }
        if self.synproxy.shifts.len() < self.conns.capacity() {
            // on_snapshot has not run for this snapshot's synproxy yet.
            return self.drop(Drop::TableFull);
        }
        let o = &Opening::of(p);
        let Some((srv, template)) = self.pick(snap, svc, o, now_ms) else {
            return self.drop(Drop::NoServer);
        };
        self.learn_client(snap, f, o, srv, in_port, now_ms);
        let id = match self.open_conn(
            snap,
            svc,
            o,
            srv,
            template,
            tcp_flags::SYN,
            SYNPROXY,
            None,
            now_ms,
        ) {
            Ok((_, id)) => id,
            Err(d) => return self.drop(d),
        };
        self.stats.syn_cookies_ok.inc();
        let held = if segment::payload_len(f.data(), p) > 0 {
            self.synproxy.held.put(id.0, ours, &f.data()[..p.l3_end()])
        } else {
            None
        };
        self.synproxy.shifts[id.index()] = Shift {
            delta: ours,
            client_isn,
            window,
            mss: MSS_TABLE[usize::from(mss_index)],
            pending: true,
            held: held.unwrap_or(0),
        };
        let c = *self.conns.get(id);
        self.send_syn(snap, f, &c, srv, self.synproxy.shifts[id.index()], now_ms)
    }

    /// A segment of a synproxied connection: the synproxy's own handshake
    /// with the server (`Some`: handled), or the sequence shift, after
    /// which the caller forwards as for any connection (`None`).
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(super) fn synproxied<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        id: ConnId,
        dir: Dir,
        c: &Conn,
        srv: &Server,
        in_port: usize,
        now_ms: u64,
    ) -> Option<Verdict> {
        let Some(&sh) = self.synproxy.shifts.get(id.index()) else {
            return Some(self.drop(Drop::RewriteFailed));
        };
        if sh.pending {
            return Some(match dir {
                Dir::Reply => self.server_handshake(snap, f, p, id, c, srv, sh, in_port, now_ms),
                Dir::Inbound if p.tcp_flags.rst() => {
                    // The client gave up; the server's half-open
                    // connection times out on its own.
                    self.release(snap, id, now_ms);
                    self.drop(Drop::NoConnection)
                }
                Dir::Inbound if sh.held == 0 && segment::payload_len(f.data(), p) > 0 => {
                    // Its first data: kept for when the server answers.
                    match self
                        .synproxy
                        .held
                        .put(id.0, sh.delta, &f.data()[..p.l3_end()])
                    {
                        Some(h) => {
                            self.synproxy.shifts[id.index()].held = h;
                            Verdict::Drop
                        }
                        None => self.send_syn(snap, f, c, srv, sh, now_ms),
                    }
                }
                // The client retransmits: our SYN (or the server's answer)
                // may have been lost.
                Dir::Inbound => self.send_syn(snap, f, c, srv, sh, now_ms),
            });
        }
        if dir == Dir::Reply && p.tcp_flags.syn() {
            // The server repeats its SYN-ACK: our ACK was lost.
            let Some((seq, _, _)) = segment::numbers(f.data(), p) else {
                return Some(self.drop(Drop::RewriteFailed));
            };
            return Some(self.ack_server(snap, f, c, srv, sh, seq, now_ms));
        }
        let shifted = match dir {
            Dir::Inbound => segment::shift(f.data_mut(), p, 0, sh.delta),
            Dir::Reply => segment::shift(f.data_mut(), p, sh.delta.wrapping_neg(), 0),
        };
        if !shifted {
            return Some(self.drop(Drop::RewriteFailed));
        }
        None
    }

    /// The server's answer to our SYN.
    #[allow(clippy::too_many_arguments)]
    fn server_handshake<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        id: ConnId,
        c: &Conn,
        srv: &Server,
        sh: Shift,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let Some((seq, ack, _)) = segment::numbers(f.data(), p) else {
            return self.drop(Drop::RewriteFailed);
        };
        let fl = p.tcp_flags;
        if fl.rst() {
            // Refused: the client, whose side is open, gets an RST at the
            // sequence number it expects from us.
            self.release(snap, id, now_ms);
            return self.rst_client(snap, f, c, sh.delta.wrapping_add(1), now_ms);
        }
        if !(fl.syn() && fl.ack()) || ack != sh.client_isn.wrapping_add(1) {
            return self.drop(Drop::SynproxyPending);
        }
        let opened = self
            .conns
            .on_packet(id, Dir::Reply, tcp_flags::SYN | tcp_flags::ACK, now_ms);
        let acked = self
            .conns
            .on_packet(id, Dir::Inbound, tcp_flags::ACK, now_ms);
        self.count_activity(srv, opened.old_active, acked.new_active);
        let (cookie, handle) = (sh.delta, sh.held);
        let sh = Shift {
            delta: seq.wrapping_sub(cookie),
            pending: false,
            held: 0,
            ..sh
        };
        self.synproxy.shifts[id.index()] = sh;
        if handle != 0 && self.take_held(f, id, handle, cookie) {
            // The client's kept segment goes in place of our ACK.
            if let Ok(p) = parse_frame(f.data()) {
                if p.is_tcp() && segment::shift(f.data_mut(), &p, 0, sh.delta) {
                    let to = Dest {
                        method: c.method(),
                        addr: c.server(),
                        port: c.sport(),
                    };
                    return self.inbound(snap, f, &p, to, srv, in_port, now_ms);
                }
            }
        }
        self.ack_server(snap, f, c, srv, sh, seq, now_ms)
    }

    /// Writes the segment kept under `handle` for connection `id` (and
    /// `cookie`) over `f`, if it is still there.
    fn take_held<F: Frame>(&mut self, f: &mut F, id: ConnId, handle: u16, cookie: u32) -> bool {
        let Some(bytes) = self.synproxy.held.take(handle, id.0, cookie) else {
            return false;
        };
        if !f.resize(bytes.len()) {
            return false;
        }
        f.data_mut()[..bytes.len()].copy_from_slice(bytes);
        true
    }

    /// Our SYN to the server, written over `f`.
    fn send_syn<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        c: &Conn,
        srv: &Server,
        sh: Shift,
        now_ms: u64,
    ) -> Verdict {
        let seg = |eth_dst, eth_src| segment::Segment {
            eth_dst,
            eth_src,
            src: c.client(),
            dst: c.server(),
            sport: c.cport(),
            dport: c.sport(),
            seq: sh.client_isn,
            ack: 0,
            flags: TcpFlags::SYN,
            window: sh.window,
            mss: Some(sh.mss),
        };
        self.send_to_server(snap, f, c, srv, seg, now_ms)
    }

    /// The ACK completing the server's handshake (`server_isn` from its
    /// SYN-ACK), written over `f`.
    #[allow(clippy::too_many_arguments)]
    fn ack_server<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        c: &Conn,
        srv: &Server,
        sh: Shift,
        server_isn: u32,
        now_ms: u64,
    ) -> Verdict {
        let seg = |eth_dst, eth_src| segment::Segment {
            eth_dst,
            eth_src,
            src: c.client(),
            dst: c.server(),
            sport: c.cport(),
            dport: c.sport(),
            seq: sh.client_isn.wrapping_add(1),
            ack: server_isn.wrapping_add(1),
            flags: TcpFlags::ACK,
            window: sh.window,
            mss: None,
        };
        self.send_to_server(snap, f, c, srv, seg, now_ms)
    }

    /// Writes the segment `seg(next hop MAC, port MAC)` over `f` towards
    /// the connection's server; counts it as the server's inbound traffic.
    fn send_to_server<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        c: &Conn,
        srv: &Server,
        seg: impl Fn(MacAddr, MacAddr) -> segment::Segment,
        now_ms: u64,
    ) -> Verdict {
        let (out, mac) = match self.next_hop(snap, c.server(), now_ms) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        let s = seg(mac, snap.ports[out].mac);
        if !f.resize(segment::FRAME_LEN) || !segment::write(f.data_mut(), &s) {
            return self.drop(Drop::NoHeadroom);
        }
        let k = &srv.shared.per_worker[self.worker];
        k.in_packets.inc();
        k.in_bytes
            .add(u64::from(TCP_IP_HEADERS) + if s.mss.is_some() { 4 } else { 0 });
        Verdict::Tx(out)
    }

    /// An RST from the VIP to the client with sequence number `seq`,
    /// written over `f`.
    fn rst_client<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        c: &Conn,
        seq: u32,
        now_ms: u64,
    ) -> Verdict {
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
            ack: 0,
            flags: TcpFlags::RST,
            window: 0,
            mss: None,
        };
        if !f.resize(segment::FRAME_LEN) || !segment::write(f.data_mut(), &s) {
            return self.drop(Drop::NoHeadroom);
        }
        Verdict::Tx(out)
    }

    /// Moves one connection between the server's active and inactive counts
    /// when its activity changed.
    fn count_activity(&self, srv: &Server, was: bool, is: bool) {
        srv.count_activity(self.worker, was, is);
    }
}

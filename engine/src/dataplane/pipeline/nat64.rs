//! NAT64 (issue 13): full-NAT across families, an IPv6 VIP with IPv4
//! servers (DPVS's NAT64). A client's TCP/UDP flow to a NAT64 VIP is
//! scheduled as any IPv6 service's, then leaves as IPv4 from a local tuple
//! (`laddr:lport`, IPv4 full-NAT's) to the server; the server's reply to
//! the local tuple comes back as IPv6 from the VIP to the client. The
//! headers are translated by [`forward::nat64_write_v4`]/`_v6` (RFC 7915).
//!
//! # The connection
//!
//! A record of the IPv6 table (`nat6.rs`), method `Fnat`: the client and
//! the VIP as address ids (`conn/addr6.rs`), the server as its plain IPv4
//! address, and the local tuple in the table's full-NAT side array. Its
//! inbound key is the IPv6 flow's (ids), its reply key the IPv4 reply's
//! own tuple (`server:sport -> laddr:lport`), so the IPv4 path finds a
//! reply to the local tuple in the IPv6 table when the IPv4 one misses
//! (`fnat.rs` asks [`nat64_reply`](Pipeline::nat64_reply)).
//!
//! # Local ports
//!
//! Taken from the same per-worker pool as IPv4 full-NAT's (the IPv6 table
//! borrows the IPv4 table's pool around each insert and remove,
//! [`ConnTable::swap_snat_pools`]): a worker hands out only ports whose
//! replies land on it, no two connections of either kind hold one tuple,
//! exhaustion is counted `snat_exhausted` and refuses the connection, and
//! a connection's port goes back to the pool when it is removed for any
//! reason.
//!
//! # Sizes
//!
//! The IPv6 header is 20 bytes longer: the frame shrinks by 20 at the
//! front on the way in and grows by 20 on the way back (IPv6 extension
//! headers and IPv4 options are not carried over). A SYN's MSS, both ways,
//! is clamped to the client side's MTU - 60, so the server never sends a
//! segment that would not fit the IPv6 side once translated. A packet that
//! would still not fit its egress MTU is answered as a router would
//! (`nat64_err.rs`: packet-too-big to the client, fragmentation needed to
//! a server that set DF; a server packet without DF is a counted
//! `too_big` drop: rvs does not fragment).
//!
//! # ICMP
//!
//! An ICMPv4 error from the server side quoting a NAT64 flow's packet
//! (port unreachable, fragmentation needed, time exceeded, ...) becomes
//! the matching ICMPv6 error to the client from the VIP (RFC 7915 §4.2,
//! packet-too-big MTU + 20), quoting the packet as the client sent it.
//! An ICMPv6 error from the client side quoting the VIP's packet becomes
//! the ICMPv4 error to the server from the local address (RFC 7915 §5.2,
//! `nat64_err.rs`).
//!
//! # HA sync
//!
//! Reported as IPv6 connections are (new, state changes, every
//! `SYNC_PERIOD`th packet either way, bulk copies), as their own record
//! with the IPv4 server and the local tuple; a backup installs them with
//! the local port reserved in its pool (`ha64.rs`).
//!
//! # Fragments
//!
//! Forwarded one by one both ways, the Fragment header's fields becoming
//! the IPv4 ones and back (`nat64_frag.rs`).
//!
//! # Persistence
//!
//! `persistence_timeout`/`persistence_prefix` as IPv6 services have them:
//! templates of the client's prefix, held by the connections
//! (`persist64.rs`).
//!
//! Not in this cut: sorry servers.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::frag::FragFwd;
use super::frag6::Frag6Fwd;
use super::nat6::{forget6, Conns6};
use super::nat64_frag::frag_fields;
use super::{Frame, Pipeline, Verdict, PERSISTENT};
use crate::conn::{self, Conn, ConnId, Dir, FlowKey, NewConn, TcpState};
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::{Server, Service64, Snapshot};
use crate::forward::{self, FragFields, Icmp64, To4, To6};
use crate::packet::parse_ipv6::Ipv6Parsed;
use crate::packet::Parsed;
use crate::packet::{ipv4, ipv6};

/// IPv6 + TCP header bytes an MSS leaves room for.
const V6_TCP_OVERHEAD: u16 = 60;

impl Pipeline {
    /// Cold: gives the IPv6 table a full-NAT side array (its local tuples;
    /// the ports come from the IPv4 table's pool) once a NAT64 service
    /// exists, and marks the ports of live NAT64 connections held in the
    /// IPv4 table's pool (rebuilt when `snat_*` changed).
    pub(super) fn prepare_nat64(&mut self, snap: &Snapshot) {
        let Some(v6) = self.v6.as_deref_mut() else {
            return;
        };
        if snap.services64.is_empty() && !v6.conns.has_local_tuples() {
            return;
        }
        v6.conns.set_snat(&[], self.worker, self.workers);
        self.conns.reserve_locals_of(&v6.conns);
    }

    /// Keeps the NAT64 services' IPv4 servers resolved, as
    /// `warm_neighbours` does for the IPv4 services' (worker 0).
    pub(super) fn warm_nat64(&mut self, snap: &Snapshot, now_ms: u64) {
        for s in &snap.services64 {
            for srv in &s.servers {
                let _ = self.next_hop(snap, srv.addr, now_ms);
                if self.arp_len == super::ARP_QUEUE {
                    return;
                }
            }
        }
    }

    /// The first packet of a flow to a NAT64 VIP (`nat6.rs` found no IPv6
    /// service there, but this one).
    pub(super) fn new_flow64<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        svc: &Service64,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let tcp = p.protocol == conn::PROTO_TCP;
        if tcp && (!p.tcp_flags.syn() || p.tcp_flags.ack()) {
            return self.drop(Drop::NoConnection);
        }
        if self.shared.is_draining() {
            return self.drop(Drop::Draining);
        }
        if p.hop_limit <= 1 {
            return self.drop(Drop::TtlExceeded);
        }
        let Some((srv, template)) = self.pick64(snap, svc, p, now_ms) else {
            return self.drop(Drop::NoServer);
        };
        let Some((port, _)) = snap.route(srv.addr) else {
            return self.drop(Drop::NoRoute);
        };
        self.learn_client6(snap, f, p, in_port, now_ms);
        let sport = if srv.port != 0 { srv.port } else { p.dst_port };
        // The connection holds the template that sent it to `srv` (as
        // `new_flow6`), given back if no record is made.
        let flags = self.hold6(svc.id, template, srv.shared.id, now_ms);
        let (sid, dest, persist) = (u32::from(svc.id), srv.shared.id, &self.shared.persist);
        let unhold = || {
            if let Some(net) = template.filter(|_| flags & PERSISTENT != 0) {
                persist.release(sid, net, dest, now_ms);
            }
        };
        let Some(v6) = self.v6.as_deref_mut() else {
            unhold();
            return self.drop(Drop::TableFull);
        };
        let ids = [p.src, p.dst].map(|a| v6.addrs.acquire(a));
        let [Some(client), Some(vip)] = ids else {
            for id in ids.into_iter().flatten() {
                v6.addrs.release(id);
            }
            unhold();
            return self.drop(Drop::TableFull);
        };
        let new = NewConn {
            proto: p.protocol,
            client: Ipv4Addr::from(client),
            cport: p.src_port,
            vip: Ipv4Addr::from(vip),
            vport: p.dst_port,
            server: srv.addr,
            sport,
            method: conn::Method::Fnat,
            flags,
            service: svc.id,
            dest: srv.shared.id,
            state: TcpState::None,
        };
        let (stats, worker, persist) = (&self.stats, self.worker, &self.shared.persist);
        let Conns6 { conns, addrs, .. } = &mut *v6;
        if !(self.conns.has_local_tuples() && conns.has_local_tuples()) {
            addrs.release(client);
            addrs.release(vip);
            unhold();
            return self.drop(Drop::SnatExhausted);
        }
        // Whatever is evicted gives back all it holds (an IPv6 NAT one its
        // persistence template too), as `insert6` does.
        let made = conns.with_lent_pools(&mut self.conns, |conns| {
            conns.insert_or_evict_fnat(new, port, now_ms, |c, why| {
                match why {
                    conn::Reclaim::Expired => stats.conns_expired.inc(),
                    conn::Reclaim::Evicted => stats.conns_evicted.inc(),
                }
                forget6(snap, persist, worker, addrs, c, now_ms);
            })
        });
        let id = match made {
            Ok(id) => id,
            Err(e) => {
                addrs.release(client);
                addrs.release(vip);
                unhold();
                return self.drop(match e {
                    conn::FnatError::TableFull => Drop::TableFull,
                    _ => Drop::SnatExhausted,
                });
            }
        };
        self.stats.conns_created.inc();
        let tr = conns.on_packet(id, Dir::Inbound, p.tcp_flags.bits(), now_ms);
        let c = *conns.get(id);
        if self.sync {
            self.report_conn6(id, now_ms);
        }
        let k = &srv.shared.per_worker[self.worker];
        k.conns.inc();
        if tr.new_active {
            k.active.inc();
        } else {
            k.inactive.inc();
        }
        srv.update_overload();
        self.inbound64(snap, f, p, srv, id, &c, in_port, now_ms)
    }

    /// A client's packet of a tracked NAT64 connection (`nat6.rs` found
    /// it by the IPv6 inbound key). Out of line: NAT over IPv6's
    /// `existing6` stays as small as it was.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(super) fn existing64<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        id: ConnId,
        c: &Conn,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let Some(srv) = self.usable64(snap, id, c, now_ms) else {
            return self.drop(Drop::ServerGone);
        };
        if p.hop_limit <= 1 {
            return self.drop(Drop::TtlExceeded);
        }
        self.track64(srv, id, Dir::Inbound, p.tcp_flags.bits(), now_ms);
        self.inbound64(snap, f, p, srv, id, c, in_port, now_ms)
    }

    /// The connection's server, when it is still configured and up; the
    /// connection is forgotten otherwise.
    fn usable64<'s>(
        &mut self,
        snap: &'s Snapshot,
        id: ConnId,
        c: &Conn,
        now_ms: u64,
    ) -> Option<&'s Server> {
        match snap.dest64(c.dest()) {
            Some((_, srv)) if srv.usable => Some(srv),
            _ => {
                self.release6(snap, id, now_ms);
                None
            }
        }
    }

    /// TCP state and the server's active/inactive counts for one packet.
    fn track64(&mut self, srv: &Server, id: ConnId, dir: Dir, flags: u8, now_ms: u64) {
        let Some(v6) = self.v6.as_deref_mut() else {
            return;
        };
        let tr = v6.conns.on_packet(id, dir, flags, now_ms);
        if self.sync {
            self.sync_after_packet6(id, tr.state != tr.old_state, now_ms);
        }
        srv.count_activity(self.worker, tr.old_active, tr.new_active);
    }

    /// The largest MSS the client side takes: its port's MTU less the
    /// IPv6 and TCP headers (1440 for 1500).
    fn mss64(snap: &Snapshot, client: Ipv6Addr) -> u16 {
        let mtu = snap
            .nd6
            .route(client)
            .and_then(|(port, _)| snap.ports.get(port))
            .map_or(1500, |pi| pi.mtu);
        mtu.saturating_sub(V6_TCP_OVERHEAD)
    }

    /// Client -> server: translated to IPv4 from the local tuple.
    #[allow(clippy::too_many_arguments)]
    fn inbound64<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        srv: &Server,
        id: ConnId,
        c: &Conn,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let Some(local) = self.v6.as_deref().and_then(|v6| v6.conns.local(id)) else {
            return self.drop(Drop::RewriteFailed);
        };
        let to = (c.server(), c.sport());
        self.send64_in(snap, f, p, srv, local, to, in_port, now_ms)
    }

    /// Sends a client's packet (or fragment: `nat64_frag.rs`) to server
    /// `srv` as IPv4 from `local` to `to` (ports: 0 for a later fragment,
    /// which has none). The caller checked the hop limit.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send64_in<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        srv: &Server,
        (laddr, lport): (Ipv4Addr, u16),
        (server, sport): (Ipv4Addr, u16),
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let Some(v6) = self.v6.as_deref_mut() else {
            return self.drop(Drop::RewriteFailed);
        };
        v6.ident = v6.ident.wrapping_add(1);
        let ident = v6.ident;
        let (out, mac) = match self.next_hop(snap, server, now_ms) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        let l4_len = p.l4_len();
        let in_len = p.ip_len() as u64;
        let mtu4 = snap.ports[out].mtu;
        if l4_len + ipv4::MIN_HEADER_LEN > usize::from(mtu4) {
            return self.too_big64_in(snap, f, p, in_port, mtu4, now_ms);
        }
        // The layout puts l4_off at least 40 bytes past l3_off (>= 14):
        // beyond NAT64_L4_OFF_V4, so the front can be trimmed to it.
        let l4_off = p.l4_off();
        let Ok(tos) = forward::ipv6_frame(p, f.data()).map(|fr| fr.traffic_class()) else {
            return self.drop(Drop::RewriteFailed);
        };
        let t = To4 {
            src: laddr,
            sport: lport,
            dst: server,
            dport: sport,
            tos,
            ttl: p.hop_limit - 1,
            ident,
        };
        let mss = Self::mss64(snap, p.src);
        f.truncate(p.l3_end());
        if !f.trim_front(l4_off - forward::NAT64_L4_OFF_V4) {
            return self.drop(Drop::RewriteFailed);
        }
        let frag = p.fragment.filter(|fr| !fr.is_atomic());
        let old = (p.src, p.dst);
        let written = match frag {
            None => forward::nat64_write_v4(f.data_mut(), old, p.protocol, &t, mss),
            Some(fr) => {
                let fields = FragFields {
                    ident: fr.ident,
                    offset: fr.offset,
                    more: fr.more,
                };
                forward::nat64_write_v4_frag(f.data_mut(), old, p.protocol, &t, mss, fields)
            }
        };
        if let Err(e) =
            written.and_then(|()| forward::set_macs(f.data_mut(), mac, snap.ports[out].mac))
        {
            return self.drop(super::rewrite_drop(e));
        }
        if let Some(fr) = frag {
            if fr.is_first() {
                let fwd = Frag6Fwd::Nat64 {
                    laddr,
                    server,
                    dest: srv.shared.id,
                };
                self.fragment_out6(p, fwd, now_ms);
            }
            self.stats.frags_forwarded.inc();
        }
        let k = &srv.shared.per_worker[self.worker];
        k.in_packets.inc();
        k.in_bytes.add(in_len);
        Verdict::Tx(out)
    }

    /// An IPv4 packet to a local tuple that no IPv4 full-NAT connection
    /// holds (`fnat.rs` asks after its own lookup missed): a NAT64
    /// connection's reply, translated to IPv6 for the client; `None` when
    /// it is none's.
    pub(super) fn nat64_reply<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        key: &FlowKey,
        in_port: usize,
        now_ms: u64,
    ) -> Option<Verdict> {
        let v6 = self.v6.as_deref()?;
        let (id, dir) = v6.conns.lookup(key, now_ms)?;
        let c = *v6.conns.get(id);
        if dir != Dir::Reply || c.method() != conn::Method::Fnat {
            return None;
        }
        let (client, vip) = (
            v6.addrs.addr(u32::from(c.client())),
            v6.addrs.addr(u32::from(c.vip())),
        );
        let Some(srv) = self.usable64(snap, id, &c, now_ms) else {
            return Some(self.drop(Drop::ServerGone));
        };
        if p.ttl <= 1 {
            return Some(self.drop(Drop::TtlExceeded));
        }
        self.track64(srv, id, Dir::Reply, p.tcp_flags.bits(), now_ms);
        let from = (vip, c.vport());
        let to = (client, c.cport());
        Some(self.send64_out(snap, f, p, srv, from, to, in_port, now_ms))
    }

    /// Sends a server's packet (or fragment: `nat64_frag.rs`) to the
    /// client as IPv6 from `from` to `to` (ports: 0 for a later fragment).
    /// The caller checked the TTL.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send64_out<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        srv: &Server,
        (vip, vport): (Ipv6Addr, u16),
        (client, cport): (Ipv6Addr, u16),
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let (out, mac) = match self.next_hop6(snap, client, now_ms) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        let l4_off = usize::from(p.l4_off());
        let end = p.l3_end();
        let Ok(tos) = forward::ipv4_frame(p, f.data()).map(|fr| fr.tos()) else {
            return self.drop(Drop::RewriteFailed);
        };
        // A fragment keeps its place in a Fragment header.
        let frag = if p.fragment {
            match frag_fields(f.data(), p) {
                Some(fr) => Some(fr),
                None => return self.drop(Drop::RewriteFailed),
            }
        } else {
            None
        };
        let l4_at = if frag.is_some() {
            forward::NAT64_L4_OFF_V6_FRAG
        } else {
            forward::NAT64_L4_OFF_V6
        };
        let mtu6 = snap.ports[out].mtu;
        let headers6 = l4_at - forward::NAT64_L4_OFF_V6 + ipv6::HEADER_LEN;
        if end - l4_off + headers6 > usize::from(mtu6) {
            return self.too_big64_out(snap, f, p, in_port, mtu6, now_ms);
        }
        let first = frag.is_some_and(|fr| fr.offset == 0);
        if first && p.is_udp() && f.data().get(l4_off + 6..l4_off + 8) == Some(&[0, 0]) {
            // A UDP datagram without checksum, fragmented: none can be
            // computed over one fragment (RFC 7915 §4.5).
            return self.drop(Drop::Fragment);
        }
        if first {
            let fwd = FragFwd::Nat64 {
                vip,
                client,
                dest: srv.shared.id,
            };
            self.fragment_out(f.data(), p, fwd, now_ms);
        }
        let t = To6 {
            src: vip,
            sport: vport,
            dst: client,
            dport: cport,
            tc: tos,
            hop_limit: p.ttl - 1,
        };
        f.truncate(end);
        let grown = if l4_off <= l4_at {
            f.prepend(l4_at - l4_off)
        } else {
            f.trim_front(l4_off - l4_at)
        };
        if !grown {
            return self.drop(Drop::RewriteFailed);
        }
        let mss = Self::mss64(snap, client);
        let old = (p.src, p.dst);
        let written = match frag {
            None => forward::nat64_write_v6(f.data_mut(), old, p.protocol, &t, mss),
            Some(fr) => forward::nat64_write_v6_frag(f.data_mut(), old, p.protocol, &t, mss, fr),
        };
        if let Err(e) =
            written.and_then(|()| forward::set_macs(f.data_mut(), mac, snap.ports[out].mac))
        {
            return self.drop(super::rewrite_drop(e));
        }
        if frag.is_some() {
            self.stats.frags_forwarded.inc();
        }
        let k = &srv.shared.per_worker[self.worker];
        k.out_packets.inc();
        k.out_bytes.add(u64::from(p.ip_total_len()));
        Verdict::Tx(out)
    }

    /// An ICMPv4 error to a local tuple whose quote no IPv4 full-NAT
    /// connection matches (`fnat.rs` asks): about a NAT64 connection's
    /// packet to its server, it becomes the matching ICMPv6 error to the
    /// client, counted `icmp_relayed`; an error with no ICMPv6 match is a
    /// counted `icmp_unknown_flow` drop. `None` when it quotes none.
    #[cold]
    #[inline(never)]
    pub(super) fn nat64_icmp<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        key: &FlowKey,
        now_ms: u64,
    ) -> Option<Verdict> {
        let v6 = self.v6.as_deref()?;
        let (id, dir) = v6.conns.lookup(key, now_ms)?;
        let c = *v6.conns.get(id);
        if dir != Dir::Reply || c.method() != conn::Method::Fnat {
            return None;
        }
        let (client, vip) = (
            v6.addrs.addr(u32::from(c.client())),
            v6.addrs.addr(u32::from(c.vip())),
        );
        if snap.dest64(c.dest()).is_none() {
            return Some(self.drop(Drop::ServerGone));
        }
        if p.fragment {
            return Some(self.drop(Drop::IcmpUnknownFlow));
        }
        if p.ttl <= 1 {
            return Some(self.drop(Drop::TtlExceeded));
        }
        let (out, mac) = match self.next_hop6(snap, client, now_ms) {
            Ok(x) => x,
            Err(d) => return Some(self.drop(d)),
        };
        let t = Icmp64 {
            outer_src: vip,
            outer_dst: client,
            quoted_src: (client, c.cport()),
            quoted_dst: (vip, c.vport()),
            hop_limit: p.ttl - 1,
            mtu6: snap.ports[out].mtu,
        };
        let mut buf = [0u8; forward::IPV6_MIN_MTU];
        let n = match forward::ipv4_frame(p, f.data())
            .and_then(|fr| forward::icmp4_to_icmp6(&fr, &t, &mut buf))
        {
            Ok(n) => n,
            Err(_) => return Some(self.drop(Drop::IcmpUnknownFlow)),
        };
        let eth = forward::NAT64_L4_OFF_V6 - ipv6::HEADER_LEN;
        if !f.resize(eth + n) {
            return Some(self.drop(Drop::IcmpUnknownFlow));
        }
        let d = f.data_mut();
        d[eth..eth + n].copy_from_slice(&buf[..n]);
        d[12..14].copy_from_slice(&[0x86, 0xDD]);
        if forward::set_macs(d, mac, snap.ports[out].mac).is_err() {
            return Some(self.drop(Drop::IcmpUnknownFlow));
        }
        self.stats.icmp_relayed.inc();
        Some(Verdict::Tx(out))
    }
}

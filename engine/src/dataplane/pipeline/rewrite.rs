//! A packet with a destination: a tracked connection's next packet, or a
//! new one just scheduled. NAT/DR/TUN rewrite, the egress MTU check and
//! the per-server packet and byte counts.

use super::*;

/// Where an inbound frame goes: method, real server, port.
#[derive(Clone, Copy)]
pub(super) struct Dest {
    pub(super) method: Method,
    pub(super) addr: Ipv4Addr,
    pub(super) port: u16,
}

impl Pipeline {
    /// A packet of a tracked connection.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn existing<F: Frame>(
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
        let srv = match snap.dest(c.dest()) {
            Some((_, srv)) if srv.usable => srv,
            // Deleted, or marked down by a health check (a drained server,
            // weight 0, keeps its connections): nodest.rs.
            _ => return self.nodest(snap, f, p, id, dir, in_port, now_ms),
        };
        if forward::ttl_expired(p) {
            return self.icmp_reply(snap, f, p, in_port, now_ms, None);
        }
        if c.flags() & synproxy::SYNPROXY != 0 {
            // Opened by the synproxy: its own handshake, then shifted
            // sequence numbers. Every other connection pays this test only.
            if let Some(v) = self.synproxied(snap, f, p, id, dir, &c, srv, in_port, now_ms) {
                return v;
            }
        }
        let tr = self.conns.on_packet(id, dir, p.tcp_flags.bits(), now_ms);
        if self.sync {
            self.sync_after_packet(id, tr.state != tr.old_state, now_ms);
        }
        srv.count_activity(self.worker, tr.old_active, tr.new_active);
        if c.method() == Method::Fnat {
            return self.fnat_forward(snap, f, p, id, dir, &c, srv, in_port, now_ms);
        }
        match dir {
            Dir::Inbound => {
                let to = Dest {
                    method: c.method(),
                    addr: c.server(),
                    port: c.sport(),
                };
                self.inbound(snap, f, p, to, srv, in_port, now_ms)
            }
            Dir::Reply => self.reply(
                snap,
                f,
                p,
                c.vip(),
                c.vport(),
                c.client(),
                srv,
                in_port,
                now_ms,
            ),
        }
    }

    /// Client -> real server, by the connection's method.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn inbound<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        to: Dest,
        srv: &Server,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let Dest {
            method,
            addr: server,
            port: sport,
        } = to;
        let (out, mac) = match self.next_hop(snap, server, now_ms) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        let port_mac = snap.ports[out].mac;
        let overhead = if method == Method::Tun {
            forward::TUN_OVERHEAD as u16
        } else {
            0
        };
        if let Some(v) = self.egress_mtu(snap, f, p, in_port, out, overhead, now_ms) {
            return v;
        }
        if p.fragment && p.first_fragment {
            let fwd = frag::FragFwd::Inbound {
                method,
                server,
                dest: srv.shared.id,
            };
            self.fragment_out(f.data(), p, fwd, now_ms);
        }
        // IP bytes, as IPVS counts (no Ethernet header or padding).
        let len = u64::from(p.ip_total_len());
        let done = match method {
            Method::Nat => forward::ipv4_frame(p, f.data_mut())
                .and_then(|mut fr| forward::nat_inbound(&mut fr, server, sport))
                .and_then(|()| forward::set_macs(f.data_mut(), mac, port_mac))
                .map_err(rewrite_drop),
            Method::Dr => forward::ipv4_frame(p, f.data_mut())
                .and_then(|mut fr| forward::dr(&mut fr, mac, port_mac))
                .map_err(rewrite_drop),
            Method::Tun => {
                let port = &snap.ports[out];
                self.tun(f, p, (port.addr, port.mac), server, mac)
            }
            // Full-NAT connections are forwarded by fnat.rs, never here.
            Method::Fnat => Err(Drop::RewriteFailed),
        };
        if let Err(d) = done {
            return self.drop(d);
        }
        let k = &srv.shared.per_worker[self.worker];
        k.in_packets.inc();
        k.in_bytes.add(len);
        if p.fragment {
            self.stats.frags_forwarded.inc();
        }
        Verdict::Tx(out)
    }

    /// Real server -> client (NAT): the source becomes the VIP again.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn reply<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        vip: Ipv4Addr,
        vport: u16,
        client: Ipv4Addr,
        srv: &Server,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let (out, mac) = match self.next_hop(snap, client, now_ms) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        if let Some(v) = self.egress_mtu(snap, f, p, in_port, out, 0, now_ms) {
            return v;
        }
        if p.fragment && p.first_fragment {
            let fwd = frag::FragFwd::Reply {
                vip,
                client,
                dest: srv.shared.id,
            };
            self.fragment_out(f.data(), p, fwd, now_ms);
        }
        // IP bytes, as IPVS counts (no Ethernet header or padding).
        let len = u64::from(p.ip_total_len());
        if let Err(e) = forward::ipv4_frame(p, f.data_mut())
            .and_then(|mut fr| forward::nat_outbound(&mut fr, vip, vport))
            .and_then(|()| forward::set_macs(f.data_mut(), mac, snap.ports[out].mac))
        {
            return self.drop(rewrite_drop(e));
        }
        let k = &srv.shared.per_worker[self.worker];
        k.out_packets.inc();
        k.out_bytes.add(len);
        if p.fragment {
            self.stats.frags_forwarded.inc();
        }
        Verdict::Tx(out)
    }

    /// A packet too big for port `out`'s MTU (with `overhead` bytes of
    /// encapsulation): ICMP frag-needed with the size that fits when DF is
    /// set, else a counted drop (rvs does not fragment). Also refuses a
    /// packet larger than the MTU of the port it arrived on.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn egress_mtu<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        in_port: usize,
        out: usize,
        overhead: u16,
        now_ms: u64,
    ) -> Option<Verdict> {
        if p.ip_total_len().saturating_add(overhead) <= snap.ports[out].mtu {
            return None;
        }
        Some(self.too_big(snap, f, p, in_port, out, overhead, now_ms))
    }

    /// IPIP: grow the frame at the front by an outer IPv4 header (in the
    /// mbuf's headroom), slide the Ethernet header forward (the only bytes
    /// that move), and write the outer header.
    /// `port` is the egress port's address and MAC.
    pub(super) fn tun<F: Frame>(
        &mut self,
        f: &mut F,
        p: &Parsed,
        port: (Ipv4Addr, MacAddr),
        server: Ipv4Addr,
        mac: MacAddr,
    ) -> Result<(), Drop> {
        forward::ipv4_frame(p, f.data_mut())
            .and_then(|mut fr| forward::decrement_ttl(&mut fr))
            .map_err(rewrite_drop)?;
        // Drop Ethernet padding so the outer length is the inner one + 20.
        f.truncate(p.l3_end());
        if !f.prepend(forward::TUN_OVERHEAD) {
            return Err(Drop::NoHeadroom);
        }
        let ident = self.next_tun_ident();
        forward::tun_encap_in_place(f.data_mut(), port.0, server, ident)
            .map_err(|_| Drop::NoHeadroom)?;
        forward::set_macs(f.data_mut(), mac, port.1).map_err(|_| Drop::NoHeadroom)
    }

    /// The outer IP identification of the next IPIP packet: a per-worker
    /// counter, the worker in its top bits (RFC 6864).
    #[inline(always)]
    pub(super) fn next_tun_ident(&mut self) -> u16 {
        self.tun_ident = self.tun_ident.wrapping_add(1);
        self.tun_ident ^ ((self.worker as u16) << 12)
    }
}

/// The drop a failed rewrite counts as: TTL, or a frame its method cannot
/// rewrite.
pub(super) fn rewrite_drop(e: forward::ForwardError) -> Drop {
    match e {
        forward::ForwardError::TtlExpired => Drop::TtlExceeded,
        _ => Drop::RewriteFailed,
    }
}

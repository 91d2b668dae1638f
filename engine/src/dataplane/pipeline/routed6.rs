//! DR/TUN over IPv6 and the ICMPv6 a routed IPv6 hop owes (issue 13):
//!
//! * TUN: the frame grows by an outer IPv6 header (IPv6-in-IPv6, next
//!   header 41) from the egress port's IPv6 address to the server
//!   ([`forward::tun6_encap_in_place`]); DR is [`forward::dr6`], called by
//!   `nat6.rs`'s `inbound6` with the connection's method. DR/TUN
//!   connections live in the IPv6 table as NAT ones do; only the client's
//!   packets cross the director.
//! * Time exceeded (hop limit <= 1) and packet-too-big (the packet, with
//!   any encapsulation, does not fit the egress port's MTU; the MTU said is
//!   what fits) go back to the sender from the arrival port's IPv6 address,
//!   rate-limited by the worker's ICMP token bucket (IPv4's), counted in
//!   `icmp_sent`; refused or over the rate, the packet is a counted
//!   `ttl_exceeded`/`too_big` drop.
//! * An ICMPv6 error (types 1-4) quoting a packet of a tracked flow, taken
//!   by the worker owning that flow: for NAT translated both ways
//!   ([`forward::icmp6_error_nat_inbound`]/`_outbound`); for DR/TUN one
//!   from the client side about the VIP's traffic is relayed to the flow's
//!   server (as IPv4's `icmp_error`). Counted in `icmp_relayed`; an error
//!   of no known flow is an `icmp_unknown_flow` drop.

use std::net::Ipv6Addr;

use super::{rewrite_drop, Frame, Pipeline, Verdict};
use crate::conn::{ConnId, Dir, Method};
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::{fold6, Snapshot};
use crate::forward::{self, ICMP6_ERROR_MAX_LEN};
use crate::packet::ethernet::MacAddr;
use crate::packet::parse_ipv6::Ipv6Parsed;

use super::nat6::ip_len;

impl Pipeline {
    /// IPv6-in-IPv6 towards `server` on egress `out` = (port, next-hop
    /// MAC): the inner hop limit decremented, the outer header in the
    /// mbuf's headroom (the frame was cut to its packet by `route6`).
    pub(super) fn tun6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        out: (usize, MacAddr),
        server: Ipv6Addr,
    ) -> Result<(), Drop> {
        if p.vlan.is_some() {
            return Err(Drop::RewriteFailed);
        }
        let src = snap.nd6.addr(out.0).ok_or(Drop::NoRoute)?;
        forward::ipv6_frame(p, f.data_mut())
            .and_then(|mut fr| forward::decrement_hop_limit(&mut fr))
            .map_err(rewrite_drop)?;
        if !f.prepend(forward::TUN6_OVERHEAD) {
            return Err(Drop::NoHeadroom);
        }
        forward::tun6_encap_in_place(f.data_mut(), src, server).map_err(|_| Drop::NoHeadroom)?;
        forward::set_macs(f.data_mut(), out.1, snap.ports[out.0].mac).map_err(|_| Drop::NoHeadroom)
    }

    /// The slow side of `route6`'s MTU check: packet-too-big saying `mtu`,
    /// unless the packet is larger than its own link allows (nobody should
    /// have sent it: a counted drop).
    #[cold]
    #[inline(never)]
    pub(super) fn too_big6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        in_port: usize,
        mtu: u64,
        now_ms: u64,
    ) -> Verdict {
        if ip_len(p) > u64::from(snap.ports[in_port].mtu) {
            return self.drop(Drop::TooBig);
        }
        self.icmp6_reply(snap, f, p, in_port, now_ms, Some(mtu as u32))
    }

    /// Answers the sender of `f` with ICMPv6 time exceeded (`mtu` None) or
    /// packet-too-big (`mtu` Some) from the arrival port's IPv6 address,
    /// written over the frame; rate-limited with IPv4's token bucket.
    #[cold]
    #[inline(never)]
    pub(super) fn icmp6_reply<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        in_port: usize,
        now_ms: u64,
        mtu: Option<u32>,
    ) -> Verdict {
        self.icmp6_reply_from(f, p, in_port, now_ms, mtu, snap.nd6.addr(in_port))
    }

    /// [`icmp6_reply`](Self::icmp6_reply) from `src` (NAT64 answers a
    /// client from the VIP it sent to); `None`: no address to send from.
    #[cold]
    #[inline(never)]
    pub(super) fn icmp6_reply_from<F: Frame>(
        &mut self,
        f: &mut F,
        p: &Ipv6Parsed,
        in_port: usize,
        now_ms: u64,
        mtu: Option<u32>,
        src: Option<Ipv6Addr>,
    ) -> Verdict {
        let why = if mtu.is_some() {
            Drop::TooBig
        } else {
            Drop::TtlExceeded
        };
        if !self.icmp_allowed(now_ms) {
            return self.drop(why);
        }
        let Some(src) = src else {
            return self.drop(why);
        };
        let mut out = [0u8; ICMP6_ERROR_MAX_LEN];
        let built = forward::ipv6_frame(p, f.data()).and_then(|fr| match mtu {
            None => forward::icmp6_time_exceeded(&fr, src, &mut out),
            Some(m) => forward::icmp6_packet_too_big(&fr, src, m, &mut out),
        });
        let Ok(n) = built else {
            return self.drop(why);
        };
        if !f.resize(n) {
            return self.drop(why);
        }
        f.data_mut()[..n].copy_from_slice(&out[..n]);
        self.icmp_tokens -= 1;
        self.stats.icmp_sent.inc();
        Verdict::Tx(in_port)
    }

    /// An ICMPv6 error quoting a packet of a tracked IPv6 flow: translated
    /// (NAT) or relayed (DR/TUN) to the side that sent the quoted packet.
    #[cold]
    #[inline(never)]
    pub(super) fn icmp_error6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Verdict {
        let Some(q) = p.ipv6(f.data()).and_then(|fr| forward::quoted_flow6(&fr)) else {
            return self.drop(Drop::IcmpUnknownFlow);
        };
        let (cip, cport) = if snap.is_fwd_vip6(q.src) || snap.is_vip64(q.src) {
            (q.dst, q.dst_port)
        } else {
            (q.src, q.src_port)
        };
        if let Some(v) = self.handoff(owned, fold6(cip), cport) {
            return v;
        }
        // The quote travelled the other way: look it up reversed.
        let Some((id, dir)) =
            self.lookup6_tuple(q.protocol, (q.dst, q.dst_port), (q.src, q.src_port), now_ms)
        else {
            return self.drop(Drop::IcmpUnknownFlow);
        };
        let Some(v6) = self.v6.as_deref() else {
            return self.drop(Drop::IcmpUnknownFlow);
        };
        let c = *v6.conns.get(id);
        if c.method() == Method::Fnat {
            // NAT64: the server is IPv4 (nat64_err.rs).
            return self.nat64_icmp6(snap, f, p, id, dir, &c, in_port, now_ms);
        }
        let (client, vip, server) = (
            v6.addrs.addr(u32::from(c.client())),
            v6.addrs.addr(u32::from(c.vip())),
            v6.addrs.addr(u32::from(c.server())),
        );
        let Some((_, srv)) = snap.dest6(c.dest()) else {
            return self.drop(Drop::ServerGone);
        };
        if p.hop_limit <= 1 {
            return self.drop(Drop::TtlExceeded);
        }
        self.stats.icmp_relayed.inc();
        match (dir, c.method()) {
            (Dir::Inbound, Method::Dr | Method::Tun) => {
                let to = (c.method(), server, c.sport());
                self.inbound6(snap, f, p, srv, to, in_port, now_ms)
            }
            (Dir::Inbound, _) => {
                self.icmp6_translated(snap, f, p, server, (server, c.sport()), true, now_ms)
            }
            (Dir::Reply, _) => {
                self.icmp6_translated(snap, f, p, client, (vip, c.vport()), false, now_ms)
            }
        }
    }

    /// Sends a NAT flow's error on towards `to`: inbound (to the server,
    /// about the VIP's reply: outer destination and quoted source become
    /// `addr`) or outbound (to the client: outer source and quoted
    /// destination become the VIP's `addr`).
    #[allow(clippy::too_many_arguments)]
    fn icmp6_translated<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        to: Ipv6Addr,
        addr: (Ipv6Addr, u16),
        inbound: bool,
        now_ms: u64,
    ) -> Verdict {
        let (out, mac) = match self.next_hop6(snap, to, now_ms) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        f.truncate(p.l3_end());
        let port_mac = snap.ports[out].mac;
        let done = forward::ipv6_frame(p, f.data_mut()).and_then(|mut fr| {
            if inbound {
                forward::icmp6_error_nat_inbound(&mut fr, addr.0, addr.1)?;
            } else {
                forward::icmp6_error_nat_outbound(&mut fr, addr.0, addr.1)?;
            }
            forward::set_macs(fr.bytes_mut(), mac, port_mac)
        });
        if done.is_err() {
            return self.drop(Drop::IcmpUnknownFlow);
        }
        Verdict::Tx(out)
    }

    /// The IPv6 connection and direction of a tuple `src -> dst`.
    fn lookup6_tuple(
        &self,
        proto: u8,
        src: (Ipv6Addr, u16),
        dst: (Ipv6Addr, u16),
        now_ms: u64,
    ) -> Option<(ConnId, Dir)> {
        self.v6.as_deref()?.lookup_tuple(proto, src, dst, now_ms)
    }
}

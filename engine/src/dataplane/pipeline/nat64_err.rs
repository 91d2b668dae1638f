//! NAT64's ICMP, the cold half (issue 13): what the IPv6 side reports about
//! a NAT64 flow, and what the director reports itself when a translated
//! packet does not fit.
//!
//! * An ICMPv6 error from the client side quoting the VIP's packet
//!   (`VIP:vport -> client`; `routed6.rs` finds the connection by the quote
//!   and hands it here on the flow's owner worker) becomes the RFC 7915
//!   §5.2 ICMPv4 error to the server, from the local address, quoting
//!   `server:sport -> laddr:lport` as the server sent it
//!   ([`forward::icmp6_to_icmp4`]; packet-too-big: fragmentation needed
//!   with the MTU less 20, at most what both links carry). Counted
//!   `icmp_relayed`; a type with no ICMPv4 meaning, a quote that is not
//!   the flow's or a bad checksum is an `icmp_unknown_flow` drop, as IPv4
//!   counts errors it cannot relay.
//! * Too big after translation, answered as a router would (the worker's
//!   ICMP token bucket, `icmp_sent`; refused or over the rate: a counted
//!   `too_big` drop). Client -> server: ICMPv6 packet-too-big to the
//!   client from the VIP, the MTU the IPv4 egress carries plus the header
//!   bytes the translation saves (20 for a plain packet). Server ->
//!   client with DF: ICMPv4 fragmentation needed to the server from the
//!   local address, the client side's MTU less what the translation adds
//!   (20 without IPv4 options). A server packet with DF clear should be
//!   fragmented (RFC 7915 §4); rvs does not fragment: a counted `too_big`
//!   drop.

use std::net::Ipv4Addr;

use super::nat6::ip_len;
use super::{Frame, Pipeline, Verdict};
use crate::conn::{Conn, ConnId, Dir};
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::Snapshot;
use crate::forward::{self, Icmp46};
use crate::packet::icmpv6::Icmpv6Packet;
use crate::packet::parse_ipv6::Ipv6Parsed;
use crate::packet::Parsed;
use crate::packet::{ipv4, ipv6};

/// Where an IPv4 packet starts in the frames NAT64 writes (untagged).
const ETH_LEN: usize = forward::NAT64_L4_OFF_V6 - ipv6::HEADER_LEN;

impl Pipeline {
    /// An ICMPv6 error from the client side quoting NAT64 connection `id`'s
    /// packet to the client: the ICMPv4 error to the server.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn nat64_icmp6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        id: ConnId,
        dir: Dir,
        c: &Conn,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        if dir != Dir::Inbound {
            return self.drop(Drop::IcmpUnknownFlow);
        }
        if snap.dest64(c.dest()).is_none() {
            return self.drop(Drop::ServerGone);
        }
        if p.hop_limit <= 1 {
            return self.drop(Drop::TtlExceeded);
        }
        let Some(v6) = self.v6.as_deref_mut() else {
            return self.drop(Drop::IcmpUnknownFlow);
        };
        let Some((laddr, lport)) = v6.conns.local(id) else {
            return self.drop(Drop::IcmpUnknownFlow);
        };
        v6.ident = v6.ident.wrapping_add(1);
        let ident = v6.ident;
        let (out, mac) = match self.next_hop(snap, c.server(), now_ms) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        let t = Icmp46 {
            outer_src: laddr,
            outer_dst: c.server(),
            quoted_src: (c.server(), c.sport()),
            quoted_dst: (laddr, lport),
            ttl: p.hop_limit - 1,
            ident,
            // RFC 7915 §5.2: min(MTU - 20, the IPv4 next hop's, the IPv6
            // next hop's - 20).
            mtu4: snap.ports[out].mtu.min(
                snap.ports[in_port]
                    .mtu
                    .saturating_sub(forward::NAT64_GROWTH),
            ),
        };
        let mut buf = [0u8; forward::ICMP4_ERROR_MAX];
        let built = forward::ipv6_frame(p, f.data())
            .ok()
            .filter(|fr| Icmpv6Packet::new_unchecked(fr.l4_bytes()).verify_checksum(p.src, p.dst))
            .ok_or(forward::ForwardError::Mismatch)
            .and_then(|fr| forward::icmp6_to_icmp4(&fr, &t, &mut buf));
        let Ok(n) = built else {
            return self.drop(Drop::IcmpUnknownFlow);
        };
        if !f.resize(ETH_LEN + n) {
            return self.drop(Drop::IcmpUnknownFlow);
        }
        let d = f.data_mut();
        d[ETH_LEN..ETH_LEN + n].copy_from_slice(&buf[..n]);
        d[12..14].copy_from_slice(&[0x08, 0x00]);
        if forward::set_macs(d, mac, snap.ports[out].mac).is_err() {
            return self.drop(Drop::IcmpUnknownFlow);
        }
        self.stats.icmp_relayed.inc();
        Verdict::Tx(out)
    }

    /// A client's packet that would not fit the IPv4 egress MTU `mtu4`
    /// once translated: packet-too-big from the VIP, saying the largest
    /// IPv6 packet of its kind that fits (its headers are `l4_off - l3_off`
    /// bytes, an IPv4 header 20).
    #[cold]
    #[inline(never)]
    pub(super) fn too_big64_in<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        in_port: usize,
        mtu4: u16,
        now_ms: u64,
    ) -> Verdict {
        if ip_len(p) > u64::from(snap.ports[in_port].mtu) {
            // Bigger than its own link allows: nobody should have sent it.
            return self.drop(Drop::TooBig);
        }
        let saved = p.layout().header_len().saturating_sub(ipv4::MIN_HEADER_LEN) as u16;
        let mtu = u32::from(mtu4) + u32::from(saved);
        self.icmp6_reply_from(f, p, in_port, now_ms, Some(mtu), Some(p.dst))
    }

    /// A server's packet that would not fit the client side's MTU `mtu6`
    /// once translated: with DF, fragmentation needed from the local
    /// address it was sent to, saying the largest IPv4 packet that fits;
    /// without, a counted drop (rvs does not fragment).
    #[cold]
    #[inline(never)]
    pub(super) fn too_big64_out<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        in_port: usize,
        mtu6: u16,
        now_ms: u64,
    ) -> Verdict {
        let dont_frag = forward::ipv4_frame(p, f.data()).is_ok_and(|fr| fr.dont_frag());
        if p.ip_total_len() > snap.ports[in_port].mtu || !dont_frag {
            return self.drop(Drop::TooBig);
        }
        let added = ipv6::HEADER_LEN as u16 - u16::from(p.ip_header_len());
        let mtu = mtu6.saturating_sub(added);
        let laddr: Ipv4Addr = p.dst;
        self.icmp_reply_from(f, p, in_port, now_ms, Some(mtu), laddr)
    }
}

//! One-packet scheduling (`ops`) for IPv6 services (issue 13), as IPv4's
//! `one_packet`: every UDP datagram to the VIP is scheduled on its own and
//! sent by the picked server's method (NAT, DR, TUN) with no connection
//! entry and no address ids taken, so the next one is scheduled afresh (a
//! persistence template still keeps a client prefix on one server). Each
//! datagram counts as a connection of its server, as in IPVS.
//!
//! A NAT server's reply then misses the IPv6 table and is matched by its
//! source instead ([`ops_reply6`]): the first one-packet service with a
//! NAT server (or sorry server) at that address and port, rewritten back
//! from its VIP. NAT64 has no `ops`: full-NAT needs the connection entry
//! for the reply (`rvs check` refuses it).

use std::net::Ipv6Addr;

use super::{Frame, Pipeline, Verdict};
use crate::conn::Method;
use crate::dataplane::snapshot::{Server, Service6, Snapshot};
use crate::packet::ipv6::next_header;
use crate::packet::parse_ipv6::Ipv6Parsed;

impl Pipeline {
    /// Sends one datagram of a one-packet service to `srv` (just picked),
    /// counting it as a connection of `srv`. Kept out of line, as is the
    /// reply's match: inlined, they changed how the compiler laid out the
    /// IPv4 path (TUN +36 instructions a packet under callgrind).
    #[inline(never)]
    pub(super) fn one_packet6<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        srv: &Server<Ipv6Addr>,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        srv.shared.per_worker[self.worker].conns.inc();
        // DR/TUN keep the VIP port, as `new_flow6` does.
        let port = if srv.method == Method::Nat && srv.port != 0 {
            srv.port
        } else {
            p.dst_port
        };
        self.inbound6(
            snap,
            f,
            p,
            srv,
            (srv.method, srv.addr, port),
            in_port,
            now_ms,
        )
    }

    /// A UDP datagram from an IPv6 server that matched no connection: the
    /// reply of a one-packet NAT service, sent to the client from the VIP,
    /// or `None` (not one).
    #[cold]
    #[inline(never)]
    pub(super) fn ops_reply6_forward<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        in_port: usize,
        now_ms: u64,
    ) -> Option<Verdict> {
        if p.protocol != next_header::UDP {
            return None;
        }
        let (svc, srv, vport) = ops_reply6(snap, p.protocol, p.src, p.src_port)?;
        if p.hop_limit <= 1 {
            return Some(self.icmp6_reply(snap, f, p, in_port, now_ms, None));
        }
        Some(self.reply6(snap, f, p, srv, (svc.vip, vport, p.dst), in_port, now_ms))
    }
}

/// The first one-packet IPv6 service of protocol `proto` with a NAT server
/// (or sorry server) at `src:sport`, and the VIP port the client used (the
/// server's port for a port-0 or several-ports service, whose servers keep
/// the client's destination port), as `Snapshot::ops_reply` for IPv4.
pub(super) fn ops_reply6(
    snap: &Snapshot,
    proto: u8,
    src: Ipv6Addr,
    sport: u16,
) -> Option<(&Service6, &Server<Ipv6Addr>, u16)> {
    snap.services6
        .iter()
        .filter(|s| s.ops && s.proto == proto)
        .find_map(|svc| {
            let srv = svc.servers.iter().chain(svc.sorry.as_ref()).find(|d| {
                d.method == Method::Nat && d.addr == src && (d.port == sport || d.port == 0)
            })?;
            let vport = if svc.port == 0 || srv.port == 0 {
                sport
            } else {
                svc.port
            };
            Some((svc, srv, vport))
        })
}

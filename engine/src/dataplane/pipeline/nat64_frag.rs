//! NAT64 of fragments (issue 13; RFC 7915 §5.1.1, §4.1), forwarded one by
//! one as `frag.rs`/`frag6.rs` forward fragments, never reassembled.
//!
//! * A client's IPv6 datagram in fragments: the first (offset 0, with the
//!   ports) finds or opens its connection as a whole packet does and
//!   leaves as an IPv4 fragment (`send64_in`: identification = the low 16
//!   bits of the Fragment header's, offset and MF copied, DF clear); as it
//!   leaves, the IPv6 fragment table remembers the datagram (source,
//!   destination, 32-bit identification) -> [`Frag6Fwd::Nat64`] (local
//!   address, server). The later ones are found by that key (`frag6.rs`:
//!   handed to the worker that saw the first, or held until it comes) and
//!   translated with the same addresses, no ports ([`nat64_later_in`]).
//! * A server's IPv4 datagram in fragments to a local tuple: the first
//!   finds the connection by its ports (`fnat.rs` -> `nat64_reply`) and
//!   leaves as IPv6 with a Fragment header (`send64_out`: identification =
//!   the IPv4 one, offset and M copied); the IPv4 fragment table remembers
//!   (source, destination, protocol, identification) -> [`FragFwd::Nat64`]
//!   (VIP, client), and the later ones, sent to the port's own address,
//!   follow it ([`nat64_later_out`], reached through `fnat.rs` and
//!   `frag.rs` as full-NAT's later fragments are).
//!
//! Counted as the other fragment paths: `frags_forwarded` per fragment
//! sent, the server's in/out packets and bytes, `frag_no_first` and
//! `frags_evicted` by the tables. A fragment that does not fit its egress
//! MTU once translated is a `too_big` drop (fragments carry no DF: rvs
//! does not fragment further); a fragmented server UDP datagram without
//! checksum a `fragment` drop (none can be computed over one fragment).
//!
//! [`FragFwd::Nat64`]: super::frag::FragFwd::Nat64
//! [`Frag6Fwd::Nat64`]: super::frag6::Frag6Fwd::Nat64
//! [`nat64_later_in`]: Pipeline::nat64_later_in
//! [`nat64_later_out`]: Pipeline::nat64_later_out

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Frame, Pipeline, Verdict};
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::{Server, Snapshot};
use crate::forward::FragFields;
use crate::packet::parse_ipv6::Ipv6Parsed;
use crate::packet::Parsed;

/// The identification, offset and MF of the IPv4 fragment `p` describes
/// in `frame`.
pub(super) fn frag_fields(frame: &[u8], p: &Parsed) -> Option<FragFields> {
    let fr = p.ipv4(frame)?;
    let ip = fr.ip();
    Some(FragFields {
        ident: u32::from(ip.ident()),
        offset: ip.frag_offset(),
        more: ip.more_frags(),
    })
}

impl Pipeline {
    /// A later fragment of a client's datagram whose first fragment went
    /// to `server` from `laddr` (`frag6.rs` found it).
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn nat64_later_in<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Ipv6Parsed,
        (laddr, server): (Ipv4Addr, Ipv4Addr),
        srv: &Server,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        if p.hop_limit <= 1 {
            return self.drop(Drop::TtlExceeded);
        }
        self.send64_in(snap, f, p, srv, (laddr, 0), (server, 0), in_port, now_ms)
    }

    /// A later fragment of a server's datagram whose first fragment went
    /// to `client` from `vip` (`frag.rs` found it and checked the TTL).
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn nat64_later_out<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        (vip, client): (Ipv6Addr, Ipv6Addr),
        srv: &Server,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        self.send64_out(snap, f, p, srv, (vip, 0), (client, 0), in_port, now_ms)
    }
}

//! The rescue of moved flows (SPEC §7 "Scale-out", issue 15): with several
//! directors behind a router's ECMP, a router that moves a flow (a director
//! left, or came back) delivers its next segments to a director that never
//! saw its SYN. On a service scheduled by `mh` whose replies bypass the
//! director (every server, sorry server included, DR or TUN), that director
//! computes the same Maglev table from the same configuration, so the `mh`
//! pick for the flow is the server the flow already talks to: the segment
//! is forwarded there instead of being dropped, as Katran and GLB do, and
//! counted `rescued`. A synced entry (`[ha] sync` to every peer) is found by
//! the ordinary lookup first, so it wins (it is exact even when the pool
//! changed since the flow began).
//!
//! What qualifies: TCP with ACK and without SYN (every segment of an open
//! connection carries ACK; a bare RST or anything else stays the counted
//! `no_connection` drop). FIN and RST with ACK are rescued too: the entry
//! then goes straight to CLOSE (IPVS's input-only table) and lives 10 s,
//! and a lone RST forwarded to the server that owns the flow is what the
//! client meant (the server ignores it when no socket matches). A NAT
//! server anywhere in the service, a non-`mh` scheduler or a synproxy
//! service keeps the `no_connection` drop: NAT replies must come back
//! through the director that rewrote them, another scheduler's pick is not
//! the same on every director, and a synproxied flow's sequence shift is
//! known only where it began.
//!
//! Not a hole: the segment passes the admission a SYN passes (martian
//! source, from a real server, L4 checksum; draining; TTL), picks through
//! persistence as a SYN does, and takes its entry through the same
//! `insert_or_evict` (a full table evicts only embryonic TCP, UDP or
//! another rescued entry, never an established connection). The entry is
//! opened ESTABLISHED (IPVS's input-only table: ACK on NONE), so the rest of
//! the flow takes the fast path, but flagged [`conn::flags::RESCUED`], which
//! keeps it evictable by idle time: a flood of spoofed ACKs can fill the
//! free slots but cannot hold them against new connections, and a real
//! moved flow that keeps sending stays young.

use super::{admit, Frame, Opening, Pipeline, Verdict};
use crate::conn::{self, Method};
use crate::dataplane::counters::Drop;
use crate::dataplane::snapshot::{Service, Snapshot};
use crate::forward;
use crate::packet::Parsed;
use crate::sched::SchedKind;

/// May a TCP segment that missed the table on `svc` be rescued?
#[inline]
pub(super) fn eligible(svc: &Service, p: &Parsed) -> bool {
    p.is_tcp()
        && p.tcp_flags.ack()
        && !p.tcp_flags.syn()
        && !svc.synproxy
        && !svc.ops
        && svc.sched.kind() == SchedKind::Mh
        && svc
            .servers
            .iter()
            .chain(svc.sorry.as_ref())
            .all(|s| matches!(s.method, Method::Dr | Method::Tun))
}

impl Pipeline {
    /// Forwards a segment of a moved flow to the `mh` pick (with
    /// persistence, the template's server first) and opens its entry,
    /// ESTABLISHED and flagged rescued. `svc` passed [`eligible`].
    #[inline(never)]
    pub(super) fn rescue<F: Frame>(
        &mut self,
        snap: &Snapshot,
        svc: &Service,
        f: &mut F,
        p: &Parsed,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        if let Some(d) = admit::refuse_source(snap, f.data(), p, svc) {
            return self.drop(d);
        }
        if self.shared.is_draining() {
            return self.drop(Drop::Draining);
        }
        if forward::ttl_expired(p) {
            return self.icmp_reply(snap, f, p, in_port, now_ms, None);
        }
        let o = &Opening::of(p);
        let Some((srv, template)) = self.pick(snap, svc, o, now_ms) else {
            return self.drop(Drop::NoServer);
        };
        let flags = p.tcp_flags.bits();
        let (to, _) = match self.open_conn(
            snap,
            svc,
            o,
            srv,
            template,
            flags,
            conn::flags::RESCUED,
            None,
            now_ms,
        ) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        self.stats.rescued.inc();
        self.inbound(snap, f, p, to, srv, in_port, now_ms)
    }
}

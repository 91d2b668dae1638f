//! ICMP the director sends (time exceeded, fragmentation needed, rate
//! limited) and ICMP errors about tracked flows, translated or relayed.

use super::*;

/// ICMP errors a worker may send: tokens per millisecond and burst.
pub(super) const ICMP_PER_MS: u64 = 1;

pub(super) const ICMP_BURST: u64 = 100;

impl Pipeline {
    /// The slow side of [`egress_mtu`](Self::egress_mtu), kept out of line
    /// so the per-packet path stays small.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn too_big<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        in_port: usize,
        out: usize,
        overhead: u16,
        now_ms: u64,
    ) -> Verdict {
        let mtu = snap.ports[out].mtu;
        let len = p.ip_total_len();
        if len > snap.ports[in_port].mtu {
            // Bigger than its own link allows: nobody should have sent it.
            return self.drop(Drop::TooBig);
        }
        if forward::ipv4_frame(p, f.data()).is_ok_and(|fr| fr.dont_frag()) {
            return self.icmp_reply(snap, f, p, in_port, now_ms, Some(mtu - overhead));
        }
        self.drop(Drop::TooBig)
    }

    /// Answers the sender of `f` with ICMP time-exceeded (`mtu` None) or
    /// fragmentation-needed (`mtu` Some), from the port's address,
    /// rate-limited per worker as the kernel does.
    pub(super) fn icmp_reply<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        in_port: usize,
        now_ms: u64,
        mtu: Option<u16>,
    ) -> Verdict {
        let src = snap.ports[in_port].addr;
        self.icmp_reply_from(f, p, in_port, now_ms, mtu, src)
    }

    /// Refills the worker's ICMP token bucket (ICMP_PER_MS tokens a
    /// millisecond, ICMP_BURST at most): true when one may be sent (the
    /// caller takes the token once it is built).
    pub(super) fn icmp_allowed(&mut self, now_ms: u64) -> bool {
        let refill = now_ms
            .saturating_sub(self.icmp_last_ms)
            .saturating_mul(ICMP_PER_MS);
        self.icmp_tokens = (self.icmp_tokens + refill).min(ICMP_BURST);
        self.icmp_last_ms = now_ms;
        self.icmp_tokens != 0
    }

    /// [`icmp_reply`](Self::icmp_reply) from `src` (NAT64 answers a
    /// server from the local address its packet was sent to).
    pub(super) fn icmp_reply_from<F: Frame>(
        &mut self,
        f: &mut F,
        p: &Parsed,
        in_port: usize,
        now_ms: u64,
        mtu: Option<u16>,
        src: Ipv4Addr,
    ) -> Verdict {
        let why = if mtu.is_some() {
            Drop::TooBig
        } else {
            Drop::TtlExceeded
        };
        if !self.icmp_allowed(now_ms) {
            return self.drop(why);
        }
        let mut out = [0u8; forward::ICMP_ERROR_MAX_LEN];
        let built = match mtu {
            None => forward::ipv4_frame(p, f.data())
                .and_then(|fr| forward::icmp_time_exceeded(&fr, src, &mut out)),
            Some(m) => forward::ipv4_frame(p, f.data())
                .and_then(|fr| forward::icmp_frag_needed(&fr, src, m, &mut out)),
        };
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

    /// An ICMP error quoting a packet of a tracked connection: translated
    /// (NAT) or passed on (DR/TUN) to the side that sent the quoted packet.
    pub(super) fn icmp_error<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Verdict {
        let Some(q) = quoted_flow(f.data(), p) else {
            return self.drop(Drop::IcmpUnknownFlow);
        };
        if q.protocol != conn::PROTO_TCP && q.protocol != conn::PROTO_UDP {
            return self.drop(Drop::IcmpUnknownFlow);
        }
        let (cip, cport) = if snap.is_vip(q.src) {
            (q.dst, q.dst_port)
        } else {
            (q.src, q.src_port)
        };
        if let Some(v) = self.handoff(owned, cip, cport) {
            return v;
        }
        // The quote travelled the other way: look it up reversed.
        let key = FlowKey::new(q.protocol, q.dst, q.dst_port, q.src, q.src_port);
        let Some((id, dir)) = self.conns.lookup(&key, now_ms) else {
            return self.drop(Drop::IcmpUnknownFlow);
        };
        let c = *self.conns.get(id);
        let Some((_, srv)) = snap.dest(c.dest()) else {
            return self.drop(Drop::ServerGone);
        };
        if forward::ttl_expired(p) {
            return self.drop(Drop::TtlExceeded);
        }
        if c.method() == Method::Fnat {
            return self.fnat_icmp(snap, f, p, id, dir, &c, now_ms);
        }
        self.stats.icmp_relayed.inc();
        match (dir, c.method()) {
            (Dir::Inbound, Method::Dr | Method::Tun) => {
                let to = Dest {
                    method: c.method(),
                    addr: c.server(),
                    port: c.sport(),
                };
                self.inbound(snap, f, p, to, srv, in_port, now_ms)
            }
            (Dir::Inbound, Method::Nat | Method::Fnat) => {
                let (out, mac) = match self.next_hop(snap, c.server(), now_ms) {
                    Ok(x) => x,
                    Err(d) => return self.drop(d),
                };
                let done = forward::ipv4_frame(p, f.data_mut())
                    .and_then(|mut fr| {
                        forward::icmp_error_nat_inbound(&mut fr, c.server(), c.sport())
                    })
                    .and_then(|()| forward::set_macs(f.data_mut(), mac, snap.ports[out].mac));
                if done.is_err() {
                    return self.drop(Drop::IcmpUnknownFlow);
                }
                Verdict::Tx(out)
            }
            (Dir::Reply, _) => {
                let (out, mac) = match self.next_hop(snap, c.client(), now_ms) {
                    Ok(x) => x,
                    Err(d) => return self.drop(d),
                };
                let done = forward::ipv4_frame(p, f.data_mut())
                    .and_then(|mut fr| {
                        forward::icmp_error_nat_outbound(&mut fr, c.vip(), c.vport())
                    })
                    .and_then(|()| forward::set_macs(f.data_mut(), mac, snap.ports[out].mac));
                if done.is_err() {
                    return self.drop(Drop::IcmpUnknownFlow);
                }
                Verdict::Tx(out)
            }
        }
    }
}

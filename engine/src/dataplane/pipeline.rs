//! What a worker does with one frame: parse, find or create the connection,
//! rewrite, and say where the frame goes. No DPDK types: the worker loop
//! hands in its mbuf through the `Frame` trait, and tests hand in byte
//! buffers (pcap-in/pcap-out style).
//!
//! Per frame this does no allocation, takes no lock and makes no syscall;
//! shared state is read through relaxed atomics (snapshot, neighbour table,
//! server counters) and written only in this worker's own counters.

mod admit;
mod established;
mod fnat;
mod frag;
mod ha;
mod nat6;
mod nd;
mod nodest;
mod rescue;
mod synproxy;
mod v6;

pub use frag::{FragDirectory, FragHold, FRAG_ENTRIES, FRAG_LIFETIME_MS, HOLD_MS, HOLD_SLOTS};

use std::net::Ipv4Addr;
use std::sync::Arc;

use super::counters::{Drop, WorkerStats};
use super::neigh::{NeighTable, Resolution};
use super::region::TableMemory;
use super::snapshot::{LiveDests, Server, Service, Snapshot};
use super::Shared;
use crate::conn::{self, ConnId, ConnTable, Dir, FlowKey, KeyHash, Method, NewConn, TcpState};
use crate::forward;
use crate::packet::arp::{self, ArpPacket};
use crate::packet::ethernet::{EtherType, EthernetFrame, MacAddr};
use crate::packet::parse_fast::parse_fast;
use crate::packet::{parse_frame, quoted_flow, DropReason, L3Class, Parsed};
use crate::sched::persist::PersistTable;
use crate::sched::SchedInput;

/// A frame buffer the pipeline can rewrite in place: an mbuf, or a byte
/// buffer with headroom in tests.
pub trait Frame {
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the frame at the front by `len` bytes (mbuf headroom).
    fn prepend(&mut self, len: usize) -> bool;
    /// Removes `len` bytes at the front.
    fn trim_front(&mut self, len: usize) -> bool;
    /// Shortens the frame to `len` bytes.
    fn truncate(&mut self, len: usize);
    /// Sets the frame's length, growing into the tailroom if needed.
    fn resize(&mut self, len: usize) -> bool;
}

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send on this port (index into the snapshot's ports).
    Tx(usize),
    /// Another worker owns the flow: hand the frame over.
    Handoff(usize),
    /// For the director itself: to the kernel through the arrival port's TAP.
    Kernel,
    /// Free it (already counted where it was decided).
    Drop,
    /// A later IPv4 fragment whose first fragment has not been seen yet:
    /// keep the frame in a [`FragHold`] (which retries it), or drop it
    /// counted as `frag_hold_full` when the hold is full.
    Hold,
}

/// A frame after the first pass over its burst ([`Pipeline::inspect`]).
#[derive(Clone, Copy, Debug)]
pub struct Inspected {
    pub parsed: Result<Parsed, DropReason>,
    /// The flow key's hash in this worker's table (TCP/UDP with ports).
    pub hash: Option<KeyHash>,
}

impl Inspected {
    pub const EMPTY: Inspected = Inspected {
        parsed: Err(DropReason::TruncatedEthernet),
        hash: None,
    };
}

/// Where an inbound frame goes: method, real server, port.
#[derive(Clone, Copy)]
struct Dest {
    method: Method,
    addr: Ipv4Addr,
    port: u16,
}

/// Next hops one worker remembers (direct-mapped by address).
const HOP_CACHE: usize = 16;
/// How long a remembered next hop is used without asking the neighbour
/// table again (which is where refresh requests and expiry are decided).
/// A changed MAC is seen at once: a hit re-reads the neighbour entry's version.
const HOP_CACHE_MS: u64 = 100;

/// A resolved next hop, valid for one snapshot (routes) while the
/// neighbour entry it came from is unchanged (same version), until `until_ms`.
/// With it, what the established fast path needs of its egress port (MAC,
/// address, MTU), so that path reads nothing else of the snapshot.
#[derive(Clone, Copy)]
struct Hop {
    ip: u32,
    port: u32,
    mac: MacAddr,
    port_mac: MacAddr,
    port_mtu: u16,
    port_addr: Ipv4Addr,
    until_ms: u64,
    generation: u64,
    snapshot: usize,
    entry: usize,
    version: u64,
}

impl Hop {
    const EMPTY: Hop = Hop {
        ip: 0,
        port: 0,
        mac: MacAddr([0; 6]),
        port_mac: MacAddr([0; 6]),
        port_mtu: 0,
        port_addr: Ipv4Addr::UNSPECIFIED,
        until_ms: 0,
        generation: 0,
        snapshot: 0,
        entry: 0,
        version: 0,
    };
}

/// ICMP errors a worker may send: tokens per millisecond and burst.
const ICMP_PER_MS: u64 = 1;
const ICMP_BURST: u64 = 100;

/// Connection flag: holds a persistence template (released when it ends).
const PERSISTENT: u8 = conn::flags::USER1;

/// Length of the ARP request frames the director sends (minimum frame).
pub const ARP_FRAME_LEN: usize = 60;
/// ARP requests one worker may queue between two bursts.
const ARP_QUEUE: usize = 16;
/// How often worker 0 walks the configured next hops to keep them resolved.
const NEIGH_WARM_MS: u64 = 1000;

pub struct Pipeline {
    pub worker: usize,
    pub workers: usize,
    /// The redirection table the NIC's RSS uses too: the owner of a flow
    /// is the queue RSS delivers it to (`conn::rss`).
    reta: conn::rss::Reta,
    pub conns: ConnTable,
    pub stats: Arc<WorkerStats>,
    shared: Arc<Shared>,
    arp_queue: [(usize, Ipv4Addr); ARP_QUEUE],
    arp_len: usize,
    last_warm_ms: u64,
    warm_generation: u64,
    tun_ident: u16,
    icmp_tokens: u64,
    icmp_last_ms: u64,
    hops: [Hop; HOP_CACHE],
    /// `[ha]`: this director owns the VIPs (read once per loop).
    master: bool,
    /// `[ha] sync`: report connections to the HA thread.
    sync: bool,
    /// Worker-side sync and failover state (bulk walk, gratuitous ARP).
    ha: ha::WorkerHa,
    /// Datagrams whose first fragment this worker forwarded.
    frags: frag::FragTable,
    /// IPv6 neighbour discovery (solicitations to send, announcements).
    nd: nd::WorkerNd,
    /// SYN cookie secret and the sequence shifts of synproxied connections.
    synproxy: synproxy::Synproxy,
    /// Frames the established fast path forwarded (a plain count: only
    /// this worker writes or reads it).
    established_hits: u64,
    /// IPv6 connections (nat6.rs), made with the first IPv6 service.
    v6: Option<Box<nat6::Conns6>>,
}

impl Pipeline {
    pub fn new(worker: usize, workers: usize, capacity: usize, shared: &Arc<Shared>) -> Pipeline {
        Self::with_table_memory(worker, workers, capacity, shared, TableMemory::default())
    }

    /// As [`new`](Self::new), with the connection table in memory of the
    /// kind `mem` asks for (DPDK hugepages where the EAL has them); which
    /// memory it got is logged and shown by `rvs ctl status`.
    pub fn with_table_memory(
        worker: usize,
        workers: usize,
        capacity: usize,
        shared: &Arc<Shared>,
        mem: TableMemory,
    ) -> Pipeline {
        let conns = ConnTable::with_capacity_in(capacity.max(1), mem, None);
        let spans = conns.memory_spans();
        if let Some(m) = shared.conn_memory.get(worker) {
            *m.lock().unwrap_or_else(|p| p.into_inner()) = Some(spans);
        }
        Pipeline {
            worker,
            workers,
            reta: conn::rss::Reta::new(workers),
            conns,
            stats: shared.worker_stats[worker].clone(),
            shared: shared.clone(),
            arp_queue: [(0, Ipv4Addr::UNSPECIFIED); ARP_QUEUE],
            arp_len: 0,
            last_warm_ms: 0,
            warm_generation: 0,
            tun_ident: 0,
            icmp_tokens: ICMP_BURST,
            icmp_last_ms: 0,
            hops: [Hop::EMPTY; HOP_CACHE],
            master: shared.ha.is_master(),
            sync: shared.ha.sync.load(std::sync::atomic::Ordering::Acquire),
            ha: ha::WorkerHa::default(),
            frags: frag::FragTable::new(),
            nd: nd::WorkerNd::default(),
            synproxy: synproxy::Synproxy::new(),
            established_hits: 0,
            v6: None,
        }
    }

    /// Frames the established fast path forwarded so far
    /// (`pipeline/established.rs`); the others took the full path.
    pub fn established_hits(&self) -> u64 {
        self.established_hits
    }

    fn neigh(&self) -> &NeighTable {
        &self.shared.neigh
    }

    fn persist(&self) -> &PersistTable {
        &self.shared.persist
    }

    #[inline]
    fn drop(&self, d: Drop) -> Verdict {
        self.stats.count_drop(d);
        Verdict::Drop
    }

    /// Processes one frame that arrived on port `in_port`. `owned` is true
    /// for frames another worker handed over (ownership already decided).
    pub fn process<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Verdict {
        let i = self.inspect(f.data());
        self.process_inspected(snap, f, &i, in_port, now_ms, owned)
    }

    /// The first pass over a burst: parse the frame and hash its flow key
    /// (the lookup reuses the hash).
    #[inline]
    pub fn inspect(&self, frame: &[u8]) -> Inspected {
        // The common shape: TCP/UDP with ports, nothing more to check.
        if let Some(p) = parse_fast(frame) {
            let h = self.conns.key_hash(&FlowKey::new(
                p.protocol, p.src, p.src_port, p.dst, p.dst_port,
            ));
            return Inspected {
                parsed: Ok(p),
                hash: Some(h),
            };
        }
        match parse_frame(frame) {
            Ok(p) if p.has_l4 && (p.is_tcp() || p.is_udp()) => {
                let h = self.conns.key_hash(&FlowKey::new(
                    p.protocol, p.src, p.src_port, p.dst, p.dst_port,
                ));
                Inspected {
                    parsed: Ok(p),
                    hash: Some(h),
                }
            }
            parsed => Inspected { parsed, hash: None },
        }
    }

    /// The second pass: prefetch the connection-table bucket the frame will
    /// look up. Issued back to back for the whole burst, the prefetches'
    /// TLB misses are walked in parallel rather than one per parsed frame.
    #[inline]
    pub fn prefetch_bucket(&self, i: &Inspected) {
        if let Some(h) = i.hash {
            self.conns.prefetch_hashed(h);
        }
    }

    /// The third pass: read the (prefetched) bucket and prefetch the
    /// connection record it points at.
    #[inline]
    pub fn prefetch_conn(&self, i: &Inspected) {
        if let Some(h) = i.hash {
            self.conns.prefetch_conn_hashed(h);
        }
    }

    /// `process` for a frame already looked at by [`inspect`](Self::inspect).
    pub fn process_inspected<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        i: &Inspected,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Verdict {
        let parsed = &i.parsed;
        let p = match parsed {
            Ok(p) => p,
            Err(r) => {
                self.stats.parse_drop(*r);
                return Verdict::Drop;
            }
        };
        let Some(port) = snap.ports.get(in_port) else {
            return self.drop(Drop::NoRoute);
        };
        let dst_mac = MacAddr::from_bytes(&f.data()[..6]);
        let broadcast = dst_mac.is_broadcast();
        if dst_mac != port.mac && !broadcast {
            // Link-local IPv4 multicast (224.0.0.0/24: VRRP adverts, the
            // sync group) is the kernel's, as a NIC would deliver it.
            if dst_mac.is_multicast()
                && port.kernel
                && p.l3 == L3Class::Ipv4
                && u32::from(p.dst) >> 8 == 0xE0_00_00
            {
                return self.to_kernel();
            }
            // IPv6 multicast (33:33:..): a solicitation for one of our
            // addresses is sent to its solicited-node group.
            if p.l3 == L3Class::Ipv6 && dst_mac.0[..2] == [0x33, 0x33] {
                return self.ipv6(snap, f, in_port, true, now_ms, owned);
            }
            return self.drop(Drop::NotForUs);
        }
        match p.l3 {
            L3Class::Arp => self.arp(snap, f, p, in_port, now_ms),
            L3Class::Ipv4 if !broadcast => {
                // The established fast path first (pipeline/established.rs).
                if let Some(v) = self.established(snap, f, p, i.hash, now_ms, owned) {
                    return v;
                }
                self.ipv4(snap, f, p, i.hash, in_port, now_ms, owned)
            }
            L3Class::Ipv4 => self.drop(Drop::NotForUs),
            L3Class::Ipv6 if !broadcast => self.ipv6(snap, f, in_port, false, now_ms, owned),
            _ => self.drop(Drop::NotIpv4),
        }
    }

    /// Answers requests for our addresses and VIPs; learns from requests to
    /// us and from replies.
    fn arp<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        let port = &snap.ports[in_port];
        let Ok(eth) = EthernetFrame::new_checked(f.data()) else {
            return self.drop(Drop::ArpIgnored);
        };
        let Ok(a) = ArpPacket::new_checked(eth.payload()) else {
            return self.drop(Drop::ArpIgnored);
        };
        let (sha, spa, tpa) = (a.sha(), a.spa(), a.tpa());
        // The VIPs and virtual addresses belong to the [ha] master only.
        let ours = tpa == port.addr
            || (self.master
                && (snap.is_vip(tpa)
                    || snap.is_virtual(tpa)
                    || (snap.has_fnat && port.snat_addrs.contains(&tpa))));
        match p.arp_op {
            arp::op::REQUEST if ours => {
                if port.on_link(spa) {
                    self.neigh().learn(spa, sha, now_ms);
                }
                if arp::reply_in_place(f.data_mut(), port.mac).is_err() {
                    return self.drop(Drop::ArpIgnored);
                }
                self.stats.arp_replies_sent.inc();
                Verdict::Tx(in_port)
            }
            arp::op::REPLY if tpa == port.addr && port.on_link(spa) => {
                self.neigh().learn_reply(spa, sha, now_ms);
                // The kernel behind the TAP may be waiting for it too.
                if port.kernel {
                    return self.to_kernel();
                }
                Verdict::Drop
            }
            _ => {
                // A gratuitous ARP moving a known neighbour is checked with
                // a request of our own, not believed (see neigh.rs).
                if spa == tpa && port.on_link(spa) {
                    self.neigh().recheck(spa, sha, now_ms);
                }
                self.drop(Drop::ArpIgnored)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn ipv4<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        hash: Option<KeyHash>,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Verdict {
        if snap.is_own(p.dst) {
            if snap.has_fnat {
                // A full-NAT server answers the port's own address.
                if let Some(v) = self.fnat_to_own(snap, f, p, hash, in_port, now_ms, owned) {
                    return v;
                }
            }
            // The director's own traffic (health checks, sync, ping) is the
            // kernel's, through the port's TAP.
            if snap.ports[in_port].kernel && snap.ports[in_port].addr == p.dst {
                return self.to_kernel();
            }
            return self.drop(Drop::ToDirector);
        }
        if !self.master {
            // A backup forwards nothing (its peer owns the addresses).
            return self.drop(Drop::NotMaster);
        }
        if p.fragment {
            if !p.first_fragment {
                return self.later_fragment(snap, f, p, in_port, now_ms, owned);
            }
            if !(p.is_tcp() || p.is_udp()) {
                // Only TCP/UDP datagrams have connections to follow.
                return self.drop(Drop::Fragment);
            }
        }
        if p.is_icmp_error() {
            return self.icmp_error(snap, f, p, in_port, now_ms, owned);
        }
        let to_vip = snap.is_vip(p.dst);
        if !(p.is_tcp() || p.is_udp()) {
            return self.drop(if to_vip {
                Drop::UnsupportedProtocol
            } else {
                Drop::NoService
            });
        }
        // The client's address and port own the flow in both directions.
        let (cip, cport) = if to_vip {
            (p.src, p.src_port)
        } else {
            (p.dst, p.dst_port)
        };
        if let Some(v) = self.handoff(owned, cip, cport) {
            return v;
        }
        let key = FlowKey::new(p.protocol, p.src, p.src_port, p.dst, p.dst_port);
        let flags = p.tcp_flags.bits();
        let hash = hash.unwrap_or_else(|| self.conns.key_hash(&key));
        if let Some((id, dir)) = self.conns.lookup_hashed(&key, hash, now_ms) {
            if !(dir == Dir::Inbound && self.conns.wants_reschedule(id, flags)) {
                return self.existing(snap, f, p, id, dir, in_port, now_ms);
            }
            // A new SYN on a connection in TIME_WAIT/CLOSE: schedule afresh.
            self.release(snap, id, now_ms);
        }
        if !to_vip {
            if snap.has_ops && p.is_udp() {
                if let Some((svc, srv, vport)) = snap.ops_reply(p.protocol, p.src, p.src_port) {
                    if forward::ttl_expired(p) {
                        return self.icmp_reply(snap, f, p, in_port, now_ms, None);
                    }
                    return self.reply(snap, f, p, svc.vip, vport, p.dst, srv, in_port, now_ms);
                }
            }
            return self.drop(Drop::NoService);
        }
        let Some(svc) = snap.service_for(p.protocol, p.dst, p.dst_port) else {
            return self.drop(Drop::NoService);
        };
        if p.is_tcp() && (!p.tcp_flags.syn() || p.tcp_flags.ack()) {
            if svc.synproxy && p.tcp_flags.ack() && !p.tcp_flags.syn() {
                // Perhaps the ACK of a SYN cookie.
                return self.cookie_ack(snap, svc, f, p, in_port, now_ms);
            }
            if rescue::eligible(svc, p) {
                // A flow another director began (SPEC §7 "Scale-out").
                return self.rescue(snap, svc, f, p, in_port, now_ms);
            }
            return self.drop(Drop::NoConnection);
        }
        if let Some(d) = admit::refuse_new(snap, f.data(), p, svc) {
            return self.drop(d);
        }
        if self.shared.is_draining() {
            return self.drop(Drop::Draining);
        }
        if forward::ttl_expired(p) {
            return self.icmp_reply(snap, f, p, in_port, now_ms, None);
        }
        if svc.synproxy {
            return self.syn_cookie(snap, f, p, in_port, now_ms);
        }
        let Some((srv, template)) = self.pick(snap, svc, p, now_ms) else {
            return self.drop(Drop::NoServer);
        };
        self.learn_client(snap, f, p, srv, in_port, now_ms);
        if svc.ops {
            return self.one_packet(snap, f, p, srv, in_port, now_ms);
        }
        let (to, id) = match self.open_conn(snap, svc, p, srv, template, flags, 0, now_ms) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        if to.method == Method::Fnat {
            let c = *self.conns.get(id);
            return self.fnat_forward(snap, f, p, id, Dir::Inbound, &c, srv, in_port, now_ms);
        }
        self.inbound(snap, f, p, to, srv, in_port, now_ms)
    }

    /// A new NAT client on an attached subnet (DR/TUN replies bypass us):
    /// its first packet says where it is, so the reply need not wait for
    /// ARP (an ARP-learned entry is never overwritten here).
    #[inline]
    fn learn_client<F: Frame>(
        &self,
        snap: &Snapshot,
        f: &F,
        p: &Parsed,
        srv: &Server,
        in_port: usize,
        now_ms: u64,
    ) {
        let port = &snap.ports[in_port];
        if matches!(srv.method, Method::Nat | Method::Fnat)
            && port.on_link(p.src)
            && self.neigh().peek(p.src, now_ms).is_none()
        {
            let mac = MacAddr::from_bytes(&f.data()[6..12]);
            if !mac.is_multicast() && !snap.ports.iter().any(|pi| pi.mac == mac) {
                self.neigh().learn(p.src, mac, now_ms);
            }
        }
    }

    /// Creates the connection of `p` to `srv` (picked, with the client net
    /// of the persistence template that chose it), as if its first segment
    /// had TCP flags `tcp_flags`, with connection flags `extra` (besides the
    /// persistence hold). Counts it; the caller forwards.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn open_conn(
        &mut self,
        snap: &Snapshot,
        svc: &Service,
        p: &Parsed,
        srv: &Server,
        template: Option<Ipv4Addr>,
        tcp_flags: u8,
        extra: u8,
        now_ms: u64,
    ) -> Result<(Dest, ConnId), Drop> {
        let new = NewConn {
            proto: p.protocol,
            client: p.src,
            cport: p.src_port,
            vip: p.dst,
            vport: p.dst_port,
            server: srv.addr,
            // DR/TUN keep the VIP port; so does NAT to a server of a
            // port-0 ("all ports") service without a port of its own, as
            // IPVS keeps the client's destination port.
            sport: if matches!(srv.method, Method::Nat | Method::Fnat) && srv.port != 0 {
                srv.port
            } else {
                p.dst_port
            },
            method: srv.method,
            // The connection holds the template that sent it to `srv` (the
            // sorry server has none), and is marked so only when the hold
            // succeeded; the hold goes back if the record cannot be made.
            flags: extra
                | if template.is_some_and(|net| {
                    self.persist()
                        .hold(u32::from(svc.id), net, srv.shared.id, now_ms)
                }) {
                    PERSISTENT
                } else {
                    0
                },
            service: svc.id,
            dest: srv.shared.id,
            state: TcpState::None,
        };
        let made = if srv.method == Method::Fnat {
            self.insert_fnat(snap, new, now_ms)
        } else {
            self.insert_conn(snap, new, now_ms)
                .map_err(|_| Drop::TableFull)
        };
        let id = match made {
            Ok(id) => id,
            Err(d) => {
                // No connection: give its hold back.
                if let Some(net) = template.filter(|_| new.flags & PERSISTENT != 0) {
                    self.persist()
                        .release(u32::from(svc.id), net, srv.shared.id, now_ms);
                }
                return Err(d);
            }
        };
        self.stats.conns_created.inc();
        let tr = self.conns.on_packet(id, Dir::Inbound, tcp_flags, now_ms);
        if self.sync {
            self.report_conn(id, now_ms);
        }
        let c = &srv.shared.per_worker[self.worker];
        c.conns.inc();
        if tr.new_active {
            c.active.inc();
        } else {
            c.inactive.inc();
        }
        srv.update_overload();
        let to = Dest {
            method: srv.method,
            addr: new.server,
            port: new.sport,
        };
        Ok((to, id))
    }

    /// One-packet scheduling (`ops`): the datagram goes to the server just
    /// picked and no connection entry is made, so the next one is scheduled
    /// afresh (a template, with persistence, still sends a client net to
    /// one server). It counts as a connection of the server, as in IPVS;
    /// a NAT server's reply is matched by its source (`Snapshot::ops_reply`).
    fn one_packet<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        srv: &Server,
        in_port: usize,
        now_ms: u64,
    ) -> Verdict {
        srv.shared.per_worker[self.worker].conns.inc();
        let to = Dest {
            method: srv.method,
            addr: srv.addr,
            port: if srv.method == Method::Nat && srv.port != 0 {
                srv.port
            } else {
                p.dst_port
            },
        };
        self.inbound(snap, f, p, to, srv, in_port, now_ms)
    }

    /// Creates a connection. A full table reclaims an expired record or
    /// evicts an embryonic TCP / idle UDP one (conn module docs,
    /// "Pressure"); the record removed gives back its counts as an expiry
    /// does.
    fn insert_conn(
        &mut self,
        snap: &Snapshot,
        new: NewConn,
        now_ms: u64,
    ) -> Result<ConnId, conn::TableFull> {
        let (stats, persist, worker) = (&self.stats, &self.shared.persist, self.worker);
        self.conns.insert_or_evict(new, now_ms, |c, why| {
            match why {
                conn::Reclaim::Expired => stats.conns_expired.inc(),
                conn::Reclaim::Evicted => stats.conns_evicted.inc(),
            }
            release_template(snap, persist, c, now_ms);
            uncount(snap, worker, c);
        })
    }

    /// Picks a server for a new connection: the persistence template's, the
    /// scheduler's, or the sorry server. With the server comes the client
    /// net of the persistence template that chose it, if one did (never for
    /// the sorry server): the new connection holds that template.
    fn pick<'s>(
        &self,
        snap: &'s Snapshot,
        svc: &'s Service,
        p: &Parsed,
        now_ms: u64,
    ) -> Option<(&'s Server, Option<Ipv4Addr>)> {
        let sorry = || svc.sorry.as_ref().map(|s| (s, None));
        if svc.sorry_only {
            // quorum lost: the sorry server takes every new connection
            return sorry();
        }
        let input = SchedInput {
            src_ip: p.src,
            src_port: p.src_port,
            dst_ip: p.dst,
            dst_port: p.dst_port,
            now_ms,
        };
        if svc.persistence_ms > 0 {
            // IPVS persistence: a template (service, client net) -> server.
            let net = crate::sched::mask(p.src, svc.persistence_mask);
            let sid = u32::from(svc.id);
            // With `expire_quiescent_template`, a drained server's (weight
            // 0) template is dropped here too, so the client is scheduled
            // afresh.
            let quiescent = snap.expire_quiescent_template;
            let usable = |id: u32| {
                svc.servers
                    .iter()
                    .any(|s| s.shared.id == id && s.usable && !(quiescent && s.weight == 0))
            };
            let id = match self
                .persist()
                .lookup_valid(sid, net, now_ms, svc.persistence_ms, usable)
            {
                Some(id) => Some(id),
                None => svc
                    .sched
                    .schedule(&LiveDests(&svc.servers), &input)
                    .map(|i| svc.servers[i].shared.id)
                    .map(|id| {
                        let id = self
                            .persist()
                            .insert(sid, net, id, now_ms, svc.persistence_ms);
                        if self.sync {
                            self.report_template(svc, net, id);
                        }
                        id
                    }),
            };
            return match id.and_then(|id| svc.servers.iter().find(|s| s.shared.id == id)) {
                Some(s) => Some((s, Some(net))),
                None => sorry(),
            };
        }
        svc.sched
            .schedule(&LiveDests(&svc.servers), &input)
            .map(|i| (&svc.servers[i], None))
            .or_else(sorry)
    }

    /// A packet of a tracked connection.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn existing<F: Frame>(
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
        if tr.old_active != tr.new_active {
            let k = &srv.shared.per_worker[self.worker];
            if tr.new_active {
                k.inactive.dec();
                k.active.inc();
            } else {
                k.active.dec();
                k.inactive.inc();
            }
            srv.update_overload();
        }
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
    fn inbound<F: Frame>(
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
        let len = u64::from(p.ip_total_len);
        let done = match method {
            Method::Nat => forward::nat_inbound(f.data_mut(), p, server, sport)
                .and_then(|()| forward::set_macs(f.data_mut(), mac, port_mac))
                .map_err(rewrite_drop),
            Method::Dr => forward::dr(f.data_mut(), p, mac, port_mac).map_err(rewrite_drop),
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

    /// A packet too big for port `out`'s MTU (with `overhead` bytes of
    /// encapsulation): ICMP frag-needed with the size that fits when DF is
    /// set, else a counted drop (rvs does not fragment). Also refuses a
    /// packet larger than the MTU of the port it arrived on.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn egress_mtu<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        in_port: usize,
        out: usize,
        overhead: u16,
        now_ms: u64,
    ) -> Option<Verdict> {
        if p.ip_total_len.saturating_add(overhead) <= snap.ports[out].mtu {
            return None;
        }
        Some(self.too_big(snap, f, p, in_port, out, overhead, now_ms))
    }

    /// The slow side of [`egress_mtu`](Self::egress_mtu), kept out of line
    /// so the per-packet path stays small.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn too_big<F: Frame>(
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
        let len = p.ip_total_len;
        if len > snap.ports[in_port].mtu {
            // Bigger than its own link allows: nobody should have sent it.
            return self.drop(Drop::TooBig);
        }
        if p.dont_frag {
            return self.icmp_reply(snap, f, p, in_port, now_ms, Some(mtu - overhead));
        }
        self.drop(Drop::TooBig)
    }

    /// IPIP: grow the frame at the front by an outer IPv4 header (in the
    /// mbuf's headroom), slide the Ethernet header forward (the only bytes
    /// that move), and write the outer header.
    /// `port` is the egress port's address and MAC.
    fn tun<F: Frame>(
        &mut self,
        f: &mut F,
        p: &Parsed,
        port: (Ipv4Addr, MacAddr),
        server: Ipv4Addr,
        mac: MacAddr,
    ) -> Result<(), Drop> {
        forward::decrement_ttl(f.data_mut(), p).map_err(rewrite_drop)?;
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
    fn next_tun_ident(&mut self) -> u16 {
        self.tun_ident = self.tun_ident.wrapping_add(1);
        self.tun_ident ^ ((self.worker as u16) << 12)
    }

    /// The hand-off to the worker that owns the flow of `client:cport`, when
    /// that is not this one (and no worker decided it already). Where the
    /// port's RSS hashes the client's address (`dataplane::rss`) the frame
    /// is already on its owner's queue and this check is two table reads;
    /// the ring carries only what RSS cannot steer.
    #[inline]
    fn handoff(&self, owned: bool, client: Ipv4Addr, cport: u16) -> Option<Verdict> {
        if owned || self.workers == 1 {
            return None;
        }
        let owner = self.reta.owner(client, cport);
        (owner != self.worker).then_some(Verdict::Handoff(owner))
    }

    #[inline]
    fn to_kernel(&self) -> Verdict {
        self.stats.to_kernel.inc();
        Verdict::Kernel
    }

    /// Answers the sender of `f` with ICMP time-exceeded (`mtu` None) or
    /// fragmentation-needed (`mtu` Some), from the port's address,
    /// rate-limited per worker as the kernel does.
    fn icmp_reply<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        in_port: usize,
        now_ms: u64,
        mtu: Option<u16>,
    ) -> Verdict {
        let why = if mtu.is_some() {
            Drop::TooBig
        } else {
            Drop::TtlExceeded
        };
        // Token bucket: ICMP_PER_MS tokens a millisecond, ICMP_BURST at most.
        let refill = now_ms
            .saturating_sub(self.icmp_last_ms)
            .saturating_mul(ICMP_PER_MS);
        self.icmp_tokens = (self.icmp_tokens + refill).min(ICMP_BURST);
        self.icmp_last_ms = now_ms;
        if self.icmp_tokens == 0 {
            return self.drop(why);
        }
        let src = snap.ports[in_port].addr;
        let mut out = [0u8; forward::ICMP_ERROR_MAX_LEN];
        let built = match mtu {
            None => forward::icmp_time_exceeded(f.data(), p, src, &mut out),
            Some(m) => forward::icmp_frag_needed(f.data(), p, src, m, &mut out),
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
    fn icmp_error<F: Frame>(
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
                let done = forward::icmp_error_nat_inbound(f.data_mut(), p, c.server(), c.sport())
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
                let done = forward::icmp_error_nat_outbound(f.data_mut(), p, c.vip(), c.vport())
                    .and_then(|()| forward::set_macs(f.data_mut(), mac, snap.ports[out].mac));
                if done.is_err() {
                    return self.drop(Drop::IcmpUnknownFlow);
                }
                Verdict::Tx(out)
            }
        }
    }

    /// Real server -> client (NAT): the source becomes the VIP again.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn reply<F: Frame>(
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
        let len = u64::from(p.ip_total_len);
        if let Err(e) = forward::nat_outbound(f.data_mut(), p, vip, vport)
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

    /// The port and next-hop MAC for `ip`; queues an ARP request when the
    /// neighbour is unknown or due for a refresh.
    #[inline(always)]
    fn next_hop(
        &mut self,
        snap: &Snapshot,
        ip: Ipv4Addr,
        now_ms: u64,
    ) -> Result<(usize, MacAddr), Drop> {
        if let Some(h) = self.hop_hit(snap, ip, now_ms) {
            return Ok((h.port as usize, h.mac));
        }
        let a = u32::from(ip);
        let slot = hop_slot(a);
        let at = snap as *const Snapshot as usize;
        let (port, nh) = snap.route(ip).ok_or(Drop::NoRoute)?;
        match self.neigh().resolve(nh, now_ms) {
            Resolution::Mac(m, stamp) => {
                let pi = &snap.ports[port];
                self.hops[slot] = Hop {
                    ip: a,
                    port: port as u32,
                    mac: m,
                    port_mac: pi.mac,
                    port_mtu: pi.mtu,
                    port_addr: pi.addr,
                    until_ms: now_ms + HOP_CACHE_MS,
                    generation: snap.generation,
                    snapshot: at,
                    entry: stamp.entry,
                    version: stamp.version,
                };
                Ok((port, m))
            }
            Resolution::MacRefresh(m) => {
                self.queue_arp(port, nh);
                Ok((port, m))
            }
            Resolution::Request => {
                self.queue_arp(port, nh);
                Err(Drop::NeighbourUnresolved)
            }
            Resolution::Pending => Err(Drop::NeighbourUnresolved),
        }
    }

    /// The remembered next hop of `ip`, while it is valid: the same
    /// snapshot (routes, ports), the neighbour entry unchanged since (a MAC
    /// change shows at once), and asked of the neighbour table less than
    /// [`HOP_CACHE_MS`] ago.
    #[inline(always)]
    fn hop_hit(&self, snap: &Snapshot, ip: Ipv4Addr, now_ms: u64) -> Option<&Hop> {
        let a = u32::from(ip);
        let h = &self.hops[hop_slot(a)];
        let at = snap as *const Snapshot as usize;
        (h.ip == a
            && now_ms < h.until_ms
            && h.generation == snap.generation
            && h.snapshot == at
            && self.neigh().version(h.entry) == h.version)
            .then_some(h)
    }

    fn queue_arp(&mut self, port: usize, ip: Ipv4Addr) {
        if self.arp_len < ARP_QUEUE {
            self.arp_queue[self.arp_len] = (port, ip);
            self.arp_len += 1;
        }
    }

    /// The next ARP request the worker should send: (port, address).
    pub fn take_arp_request(&mut self) -> Option<(usize, Ipv4Addr)> {
        if self.arp_len == 0 {
            return None;
        }
        self.arp_len -= 1;
        Some(self.arp_queue[self.arp_len])
    }

    /// Writes an ARP request for `ip` from port `port` into `buf`
    /// (`ARP_FRAME_LEN` bytes).
    pub fn build_arp_request(
        &self,
        snap: &Snapshot,
        port: usize,
        ip: Ipv4Addr,
        buf: &mut [u8],
    ) -> bool {
        snap.ports
            .get(port)
            .is_some_and(|pi| write_arp_request(pi.mac, pi.addr, ip, buf))
    }

    /// Takes in what a new configuration changes for this worker's own
    /// state: the connection timeouts (`[timeouts]`), and the synproxy's
    /// per-connection shifts the first time a service uses it.
    pub fn on_snapshot(&mut self, snap: &Snapshot) {
        self.conns.set_timeouts(snap.timeouts);
        if snap.has_fnat {
            self.conns
                .set_snat(&snap.snat_specs(), self.worker, self.workers);
        }
        self.synproxy.prepare(snap, self.conns.capacity());
        self.prepare_v6(snap);
    }

    /// Bounded background work, once per loop: expire connections, and
    /// (worker 0) keep the configured next hops resolved.
    pub fn housekeeping(&mut self, snap: &Snapshot, now_ms: u64, budget: usize) {
        let worker = self.worker;
        let stats = self.stats.clone();
        let persist = &self.shared.persist;
        self.conns.expire_some(now_ms, budget, |c| {
            stats.conns_expired.inc();
            release_template(snap, persist, c, now_ms);
            uncount(snap, worker, c);
        });
        self.expire_v6(snap, now_ms, budget);
        self.stats
            .conns
            .set((self.conns.len() + self.conns6_len()) as u64);
        // Worker 0 keeps the next hops resolved: every second, and at once
        // when a new configuration may have brought new servers.
        let due = now_ms.saturating_sub(self.last_warm_ms) >= NEIGH_WARM_MS
            || snap.generation != self.warm_generation;
        if self.worker == 0 && due {
            self.last_warm_ms = now_ms;
            self.warm_generation = snap.generation;
            self.warm_neighbours(snap, now_ms);
            self.warm_neighbours6(snap, now_ms);
        }
    }

    /// Asks for the MACs of every configured server and gateway that is
    /// unknown or getting old, so first packets rarely wait for ARP.
    fn warm_neighbours(&mut self, snap: &Snapshot, now_ms: u64) {
        for p in &snap.ports {
            if let Some(g) = p.gateway {
                let _ = self.next_hop(snap, g, now_ms);
            }
        }
        for s in &snap.services {
            for srv in s.servers.iter().chain(s.sorry.as_ref()) {
                let _ = self.next_hop(snap, srv.addr, now_ms);
                if self.arp_len == ARP_QUEUE {
                    return;
                }
            }
        }
    }

    /// Forgets a connection, giving back its count.
    fn release(&mut self, snap: &Snapshot, id: ConnId, now_ms: u64) {
        if let Some(c) = self.conns.remove(id) {
            release_template(snap, &self.shared.persist, &c, now_ms);
            uncount(snap, self.worker, &c);
        }
    }
}

/// The next-hop cache slot of address `a` (direct-mapped).
#[inline(always)]
fn hop_slot(a: u32) -> usize {
    (a.wrapping_mul(0x9E37_79B1) >> 28) as usize % HOP_CACHE
}

/// Writes a broadcast ARP request for `tpa` from `mac`/`spa` into `buf`
/// (`ARP_FRAME_LEN` bytes); a gratuitous ARP has `spa == tpa`.
fn write_arp_request(mac: MacAddr, spa: Ipv4Addr, tpa: Ipv4Addr, buf: &mut [u8]) -> bool {
    if buf.len() < ARP_FRAME_LEN {
        return false;
    }
    buf[..ARP_FRAME_LEN].fill(0);
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.set_dst(MacAddr::BROADCAST);
    eth.set_src(mac);
    eth.set_ethertype(EtherType::ARP);
    let mut a = ArpPacket::new_unchecked(eth.payload_mut());
    a.set_ethernet_ipv4();
    a.set_op(arp::op::REQUEST);
    a.set_sha(mac);
    a.set_spa(spa);
    a.set_tha(MacAddr::ZERO);
    a.set_tpa(tpa);
    true
}

/// The drop a failed rewrite counts as: TTL, or a frame its method cannot
/// rewrite.
fn rewrite_drop(e: forward::ForwardError) -> Drop {
    match e {
        forward::ForwardError::TtlExpired => Drop::TtlExceeded,
        _ => Drop::RewriteFailed,
    }
}

/// Gives back a finished connection's active/inactive count on its server,
/// also when the server has been deleted since (its counters outlive it).
fn uncount(snap: &Snapshot, worker: usize, c: &conn::Conn) {
    let Some(d) = snap.counters(c.dest()) else {
        return;
    };
    let k = &d.per_worker[worker];
    if c.is_active() {
        k.active.dec();
    } else {
        k.inactive.dec();
    }
    if let Some((_, srv)) = snap.dest(c.dest()) {
        srv.update_overload();
    }
}

/// A connection that held a persistence template ended: give back its hold
/// on exactly that template, (service, client net, server), found from the
/// record alone, also when the service has been deleted or its netmask
/// changed since (the snapshot knows every netmask a service id has used;
/// the current one is tried first).
fn release_template(snap: &Snapshot, persist: &PersistTable, c: &conn::Conn, now_ms: u64) {
    if c.flags() & PERSISTENT == 0 {
        return;
    }
    let svc = c.service();
    for &m in snap.persist_masks(svc) {
        let net = crate::sched::mask(c.client(), m);
        if persist.release(u32::from(svc), net, c.dest(), now_ms) {
            return;
        }
    }
}

/// A frame in a plain byte buffer with headroom in front, as an mbuf has:
/// for tests and tools that drive the pipeline without DPDK.
pub struct VecFrame {
    buf: Vec<u8>,
    start: usize,
}

impl VecFrame {
    /// DPDK's default mbuf headroom.
    pub const HEADROOM: usize = 128;

    pub fn new(frame: &[u8]) -> VecFrame {
        let mut buf = vec![0u8; Self::HEADROOM + frame.len()];
        buf[Self::HEADROOM..].copy_from_slice(frame);
        VecFrame {
            buf,
            start: Self::HEADROOM,
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.buf[self.start..].to_vec()
    }
}

impl Frame for VecFrame {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }
    fn prepend(&mut self, len: usize) -> bool {
        if len > self.start {
            return false;
        }
        self.start -= len;
        true
    }
    fn trim_front(&mut self, len: usize) -> bool {
        if self.start + len > self.buf.len() {
            return false;
        }
        self.start += len;
        true
    }
    fn truncate(&mut self, len: usize) {
        self.buf.truncate(self.start + len);
    }
    fn resize(&mut self, len: usize) -> bool {
        self.buf.resize(self.start + len, 0);
        true
    }
}

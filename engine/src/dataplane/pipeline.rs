//! What a worker does with one frame: parse, find or create the connection,
//! rewrite, and say where the frame goes. No DPDK types: the worker loop
//! hands in its mbuf through the `Frame` trait, and tests hand in byte
//! buffers (pcap-in/pcap-out style).
//!
//! Per frame this does no allocation, takes no lock and makes no syscall;
//! shared state is read through relaxed atomics (snapshot, neighbour table,
//! server counters) and written only in this worker's own counters.
//!
//! This file is the top of the path, read as DPDK's l3fwd: [`Pipeline::
//! process_inspected`] dispatches by EtherType, and `ipv4` decides for one
//! IPv4 packet. Each job it hands off has its own module:
//!
//! | module | job |
//! |---|---|
//! | `frame` | the buffer a frame is rewritten in (mbuf or test bytes) |
//! | `established` | the fast path for a steady packet of a tracked flow |
//! | `established6` | the same for IPv6 NAT/DR, and the first pass's IPv6 flow |
//! | `transition` | a tracked flow's segment that only moves its TCP state |
//! | `new_flow` | the SYN that opens a NAT/DR connection, on the lookup's miss |
//! | `transition6` | the same two for IPv6 NAT/DR |
//! | `admit` | checks a packet must pass before it creates state |
//! | `schedule` | pick a server, open and count a connection; release it |
//! | `rewrite` | NAT/DR/TUN rewrite of a packet with a destination, MTU check |
//! | `nexthop` | route, neighbour MAC and the per-worker next-hop cache |
//! | `arp` | ARP answers, learning, and the request queue |
//! | `icmp` | ICMP the director sends, ICMP errors about tracked flows |
//! | `housekeeping` | expiry, new configurations, next hops kept warm |
//! | `fnat`, `synproxy`, `rescue`, `nodest`, `frag`, `ha` | full-NAT, SYN proxy, moved flows, lost servers, fragments, HA sync |
//! | `v6`, `nat6`, `nd` | IPv6 dispatch, NAT over IPv6, neighbour discovery |
//! | `ops6` | one-packet scheduling of IPv6 services |

mod admit;
mod admit_sources;
mod arp;
mod dest_fast;
mod dest_fast6;
mod established;
mod established6;
mod fnat;
mod frag;
mod frag6;
mod frame;
mod ha;
mod ha6;
mod ha64;
mod ha_templates;
mod housekeeping;
mod icmp;
mod nat6;
mod nat64;
mod nat64_err;
mod nat64_frag;
mod nd;
mod new_flow;
mod nexthop;
mod nodest;
mod ops6;
mod pending;
mod persist6;
mod persist64;
mod rescue;
mod rewrite;
mod routed6;
mod schedule;
mod synproxy;
mod transition;
mod transition6;
mod v6;

pub use arp::ARP_FRAME_LEN;
pub use established6::Flow6;
pub use frag::{FragDirectory, FragHold, FRAG_ENTRIES, FRAG_LIFETIME_MS, HOLD_MS, HOLD_SLOTS};
pub use frame::{Frame, VecFrame};

use arp::{write_arp_request, ARP_QUEUE};
use established::Looked;
use icmp::ICMP_BURST;
use nexthop::{Hop, HOP_CACHE};
/// The template key of an IPv6 client (`list --conns` rebuilds it too).
pub use persist6::{client_net6, prefix6};
use rewrite::{rewrite_drop, Dest};
use schedule::{release_template, uncount, Opening, PERSISTENT};

use std::net::Ipv4Addr;
use std::sync::Arc;

use super::counters::{Drop, WorkerStats};
use super::neigh::{NeighTable, Resolution};
use super::region::TableMemory;
use super::snapshot::{LiveDests, Server, Service, Snapshot};
use super::Shared;
use crate::conn::{
    self, ConnId, ConnTable, Dir, FlowKey, Hint, KeyHash, Method, NewConn, TcpState,
};
use crate::forward;
use crate::packet::ethernet::{EtherType, EthernetFrame, MacAddr};
use crate::packet::parse_fast::{fast_parsed, is_fast_shape};
use crate::packet::{parse_frame_full, quoted_flow, DropReason, L3Class, Parsed};
use crate::sched::persist::PersistTable;
use crate::sched::SchedInput;

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
    /// What the full parser made of the frame; not filled in (left as it
    /// was) for a frame of the fast shape (`fast`).
    pub parsed: Result<Parsed, DropReason>,
    /// The flow key's hash in this worker's table (TCP/UDP with ports).
    pub hash: Option<KeyHash>,
    /// The frame has the shape `parse_fast` takes (untagged IPv4 without
    /// options, TCP/UDP, not a fragment, checked): its fields are read at
    /// fixed offsets when they are needed, and `parsed` is not used.
    pub fast: bool,
    /// The frame has the common IPv6 shape (`packet::parse_fast6`) and
    /// this worker an IPv6 table: `flow6` is its flow there, `hash` is
    /// `None` and `parsed` is not filled in (pipeline/established6.rs).
    pub fast6: bool,
    pub flow6: Flow6,
    /// What the second pass found in the flow's bucket
    /// ([`prefetch_conns`](Pipeline::prefetch_conns)), for the established
    /// path's lookup to try first (`ConnTable::lookup_hinted`). Written by
    /// that pass, not by `inspect_into`'s fast shape: a caller reusing an
    /// `Inspected` runs both passes (a stale hint would only cost the
    /// lookup its first guess: it is checked against the key).
    pub hint: Hint,
}

impl Inspected {
    pub const EMPTY: Inspected = Inspected {
        parsed: Err(DropReason::TruncatedEthernet),
        hash: None,
        fast: false,
        fast6: false,
        flow6: Flow6::NONE,
        hint: Hint::NONE,
    };
}

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
    /// `master && !sync`: the established fast paths may run (one test
    /// per packet; set with the two, between bursts).
    fast_on: bool,
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
    /// The millisecond of the last flush of the per-server counts
    /// ([`end_burst`](Self::end_burst)).
    counts_flushed_ms: u64,
    /// Frames the transition path forwarded (`pipeline/transition.rs`).
    transition_hits: u64,
    /// SYNs the new-flow path decided (`pipeline/new_flow.rs`).
    new_flow_hits: u64,
    /// The fast path's per-server state: usable, next hop, pending counts
    /// (pipeline/dest_fast.rs).
    dests: dest_fast::DestTable,
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
            fast_on: shared.ha.is_master()
                && !shared.ha.sync.load(std::sync::atomic::Ordering::Acquire),
            ha: ha::WorkerHa::default(),
            frags: frag::FragTable::new(),
            nd: nd::WorkerNd::default(),
            synproxy: synproxy::Synproxy::new(),
            established_hits: 0,
            counts_flushed_ms: 0,
            transition_hits: 0,
            new_flow_hits: 0,
            dests: dest_fast::DestTable::new(worker),
            v6: None,
        }
    }

    /// Frames the established fast path forwarded so far
    /// (`pipeline/established.rs`); the others took the full path.
    pub fn established_hits(&self) -> u64 {
        self.established_hits
    }

    /// Frames the transition path forwarded so far
    /// (`pipeline/transition.rs`): tracked flows' state-changing segments.
    pub fn transition_hits(&self) -> u64 {
        self.transition_hits
    }

    /// SYNs the new-flow path decided so far (`pipeline/new_flow.rs`):
    /// opened and forwarded, or refused as the full path would.
    pub fn new_flow_hits(&self) -> u64 {
        self.new_flow_hits
    }

    /// The tables `rvs ctl list --conns` walks (`conn_dump`): IPv4, and
    /// IPv6 with its address ids.
    pub fn dump_tables(&self) -> super::conn_dump::Tables<'_> {
        super::conn_dump::Tables {
            v4: &self.conns,
            v6: self.v6.as_deref().map(|v6| (&v6.conns, &v6.addrs)),
        }
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
        let v = self.process_inspected(snap, f, &i, in_port, now_ms, owned);
        self.flush_counts(snap);
        v
    }

    /// After a burst of [`process_inspected`](Self::process_inspected)
    /// calls (the worker: once per loop, busy or idle): the per-server
    /// packet and byte counts of the established fast path reach the
    /// server counters (pipeline/dest_fast.rs) once per millisecond. At the
    /// short bursts of a modest rate (1-4 frames), a flush per loop was
    /// some 50 instructions per burst; a count now waits at most a
    /// millisecond of loops (exact meanwhile: `pending.rs`), and a full
    /// list of servers still flushes at once.
    #[inline]
    pub fn end_burst(&mut self, snap: &Snapshot, now_ms: u64) {
        if now_ms != self.counts_flushed_ms {
            self.counts_flushed_ms = now_ms;
            self.flush_counts(snap);
        }
    }

    /// The per-server counts of the fast paths to the server counters now
    /// (every `process`; a worker's exit; tests).
    #[inline]
    pub fn flush_counts(&mut self, snap: &Snapshot) {
        self.dests.flush(snap);
        if let Some(v6) = self.v6.as_deref_mut() {
            v6.dests.flush(snap);
        }
    }

    /// The first pass over a burst: parse the frame, hash its flow key
    /// (the lookup reuses the hash) and prefetch the key's bucket.
    #[inline]
    pub fn inspect(&self, frame: &[u8]) -> Inspected {
        let mut i = Inspected::EMPTY;
        self.inspect_into(frame, &mut i);
        if i.fast6 {
            // IPv6 resolves its ids in the second pass (established6.rs).
            self.prefetch_conn(&mut i);
        }
        i
    }

    /// [`inspect`](Self::inspect) into the burst's array: a frame of the
    /// common shape writes its hash and a flag, nothing else (no `Parsed`
    /// stored and read back per frame).
    ///
    /// The bucket is prefetched here, as soon as its hash is known, not in
    /// a pass of its own: the first pass spends some 100 instructions per
    /// frame and no wait on memory (the frames are in cache), so each
    /// bucket's miss, TLB walk included, runs under the rest of the pass
    /// (a burst of 32 is a few hundred ns of it, more than a miss), with
    /// as many in flight as the pass issues per miss time, which the line
    /// fill buffers and page walkers cap anyway. A separate pass issued
    /// them back to back just before the record pass read the first of
    /// them, so the wait for it was exposed; fused, every bucket has had
    /// the whole first pass to arrive, and the burst saves a loop.
    #[inline]
    pub fn inspect_into(&self, frame: &[u8], out: &mut Inspected) {
        // The common shape: TCP/UDP with ports, nothing more to check.
        if is_fast_shape(frame) {
            let h = self.conns.key_hash_wire(&established::fast_key(frame));
            self.conns.prefetch_hashed(h);
            out.hash = Some(h);
            out.fast = true;
            // `hint` is not reset: the second pass (`prefetch_conns`)
            // writes it for every frame with a hash, and a hint is only
            // ever a first guess that `lookup_hinted` checks against the
            // key, its use and its expiry (two stores per frame saved).
            return;
        }
        if self.inspect6(frame, out) {
            return;
        }
        *out = self.inspect_full(frame);
        if let Some(h) = out.hash {
            self.conns.prefetch_hashed(h);
        }
    }

    /// The full parser's `Inspected` (any other shape).
    #[inline]
    fn inspect_full(&self, frame: &[u8]) -> Inspected {
        match parse_frame_full(frame) {
            Ok(p) if p.has_l4 && (p.is_tcp() || p.is_udp()) => {
                let h = self.conns.key_hash(&FlowKey::new(
                    p.protocol, p.src, p.src_port, p.dst, p.dst_port,
                ));
                Inspected {
                    parsed: Ok(p),
                    hash: Some(h),
                    ..Inspected::EMPTY
                }
            }
            parsed => Inspected {
                parsed,
                ..Inspected::EMPTY
            },
        }
    }

    /// The second pass over a burst (after [`inspect_into`](Self::inspect_into)
    /// for every frame): read each frame's (prefetched) bucket and prefetch
    /// the connection record it points at, keeping which
    /// (`Inspected::hint`). The table is read through one view for the
    /// whole burst (`ConnTable::entry_prefetch`).
    #[inline]
    pub fn prefetch_conns(&self, insp: &mut [Inspected]) {
        let t = self.conns.entry_prefetch();
        let mut v6 = false;
        for i in insp.iter_mut() {
            if let Some(h) = i.hash {
                i.hint = t.entry(h);
            } else {
                v6 |= i.fast6;
            }
        }
        if v6 {
            // IPv6: ids, hash, bucket prefetch, then the buckets and their
            // records, for the whole burst in one call (established6.rs).
            self.prefetch_conns6(insp);
        }
    }

    /// [`prefetch_conns`](Self::prefetch_conns) for one frame.
    #[inline]
    pub fn prefetch_conn(&self, i: &mut Inspected) {
        self.prefetch_conns(std::slice::from_mut(i));
    }

    /// `process` for a frame already looked at by [`inspect`](Self::inspect).
    ///
    /// The common shape, unicast to the arrival port, tries the
    /// established fast path first (pipeline/established.rs), inlined into
    /// the caller's burst loop; the full path, out of line, takes what it
    /// declines, with what its lookup found. (Inlined together, the full
    /// path's register pressure and frame cost the fast path a few dozen
    /// instructions per packet in spills.)
    #[inline(always)]
    pub fn process_inspected<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        i: &Inspected,
        in_port: usize,
        now_ms: u64,
        owned: bool,
    ) -> Verdict {
        // What the established fast path found of the flow, if it looked.
        let mut looked = Looked::NotYet;
        if i.fast {
            // The common shape, unicast to the arrival port: the
            // established fast path first (pipeline/established.rs), from
            // the frame's bytes.
            if let (Some(h), Some(port)) = (i.hash, snap.ports.get(in_port)) {
                // The MAC filter and the fields on one length check.
                if let Some((p, dst_mac)) = established::Head::read(f.data()) {
                    if mac_eq(&dst_mac, &port.mac.0) {
                        match self.established(snap, f, p, h, i.hint, now_ms, owned) {
                            Ok(v) => return v,
                            // A segment that only moves the TCP state
                            // (transition.rs), with the record found.
                            Err(Looked::Hit(id, dir)) => {
                                if self.owns(snap, &p.key, owned) {
                                    if let Some(v) = self.moves(snap, f, id, dir, now_ms) {
                                        return v;
                                    }
                                }
                                looked = Looked::Hit(id, dir);
                            }
                            // The first of a flow (new_flow.rs): `ipv4`'s
                            // checks before its lookup (the TTL and the
                            // master were the established path's).
                            Err(Looked::Miss) => {
                                looked = Looked::Miss;
                                if self.decides(snap, &p.key, owned) {
                                    if let Some(v) = self.new_flow(snap, f, h, in_port, now_ms) {
                                        return v;
                                    }
                                }
                            }
                            // No lookup made (`[ha] sync`, TTL): the
                            // transition path's own (transition.rs).
                            Err(Looked::NotYet) => {
                                match self.transition(snap, f, i, now_ms, owned, &mut looked) {
                                    transition::Next::Done(v) => return v,
                                    transition::Next::NewFlow => {
                                        if let Some(v) = self.new_flow(snap, f, h, in_port, now_ms)
                                        {
                                            return v;
                                        }
                                    }
                                    transition::Next::Full => {}
                                }
                            }
                        }
                    }
                }
            }
        } else if i.fast6 {
            // Common-shape IPv6: its established fast path, which hands
            // what it found to the transition and new-flow paths
            // (pipeline/established6.rs, transition6.rs; out of line).
            // (No hash: an address had no id in the first pass, so no
            // connection could be found there; `transition6` resolves again.)
            let v = if i.flow6.hash.is_some() {
                self.established6(snap, f, i, in_port, now_ms, owned)
            } else {
                self.unresolved6(snap, f, i, in_port, now_ms, owned)
            };
            if let Some(v) = v {
                return v;
            }
        }
        self.process_full(snap, f, i, in_port, now_ms, owned, looked)
    }

    /// The full path of [`process_inspected`](Self::process_inspected).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn process_full<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        i: &Inspected,
        in_port: usize,
        now_ms: u64,
        owned: bool,
        looked: Looked,
    ) -> Verdict {
        let fast_p: Parsed;
        let full6: Result<Parsed, DropReason>;
        let p = if i.fast {
            // The summary only when the fast path declined.
            fast_p = fast_parsed(f.data());
            &fast_p
        } else {
            let parsed = if i.fast6 {
                // Common-shape IPv6 its fast path declined: the parse.
                full6 = parse_frame_full(f.data());
                &full6
            } else {
                &i.parsed
            };
            match parsed {
                Ok(p) => p,
                Err(r) => {
                    self.stats.parse_drop(*r);
                    return Verdict::Drop;
                }
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
                self.ipv4(snap, f, p, i.hash, looked, in_port, now_ms, owned)
            }
            L3Class::Ipv4 => self.drop(Drop::NotForUs),
            L3Class::Ipv6 if !broadcast => self.ipv6(snap, f, in_port, false, now_ms, owned),
            _ => self.drop(Drop::NotIpv4),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn ipv4<F: Frame>(
        &mut self,
        snap: &Snapshot,
        f: &mut F,
        p: &Parsed,
        hash: Option<KeyHash>,
        looked: Looked,
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
        let found = match looked {
            Looked::Hit(id, dir) => Some((id, dir)),
            Looked::Miss => None,
            Looked::NotYet => {
                let hash = hash.unwrap_or_else(|| self.conns.key_hash(&key));
                self.conns.lookup_hashed(&key, hash, now_ms)
            }
        };
        if let Some((id, dir)) = found {
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
        let o = &Opening::of(p);
        let Some((srv, template)) = self.pick(snap, svc, o, now_ms) else {
            return self.drop(Drop::NoServer);
        };
        self.learn_client(snap, f, o, srv, in_port, now_ms);
        if svc.ops {
            return self.one_packet(snap, f, p, srv, in_port, now_ms);
        }
        let (to, id) = match self.open_conn(snap, svc, o, srv, template, flags, 0, hash, now_ms) {
            Ok(x) => x,
            Err(d) => return self.drop(d),
        };
        if to.method == Method::Fnat {
            let c = *self.conns.get(id);
            return self.fnat_forward(snap, f, p, id, Dir::Inbound, &c, srv, in_port, now_ms);
        }
        self.inbound(snap, f, p, to, srv, in_port, now_ms)
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
}

/// Two MACs equal, as a 4-byte and a 2-byte compare (a `[u8; 6]` compare
/// assembles each side into one word first).
#[inline(always)]
fn mac_eq(a: &[u8; 6], b: &[u8; 6]) -> bool {
    let w = |m: &[u8; 6]| u32::from_ne_bytes([m[0], m[1], m[2], m[3]]);
    let h = |m: &[u8; 6]| u16::from_ne_bytes([m[4], m[5]]);
    w(a) == w(b) && h(a) == h(b)
}

//! Per-worker counters. Each worker writes only its own (a relaxed load and
//! store, no atomic read-modify-write, no shared cache line); the control
//! thread sums them when it reports.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::packet::DropReason;

/// Why the data plane (rather than the parser) dropped a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Drop {
    /// Ethernet destination is neither this port's MAC nor broadcast.
    NotForUs,
    /// Neither IPv4 nor ARP (IPv6 goes to the exception path once it exists).
    NotIpv4,
    /// An IPv4 packet to the director's own address (exception path: issue 7).
    ToDirector,
    /// An ARP frame we do not answer (not for our addresses).
    ArpIgnored,
    /// IPv4 to an address that is neither a VIP nor a tracked connection.
    NoService,
    /// A TCP segment other than a SYN for a connection we do not track.
    NoConnection,
    /// No server could be scheduled (all down, drained or overloaded).
    NoServer,
    /// The connection table is full.
    TableFull,
    /// No port reaches the destination.
    NoRoute,
    /// The next hop's MAC is not known yet (an ARP request went out).
    NeighbourUnresolved,
    /// TTL would reach zero.
    TtlExceeded,
    /// An IPv4 fragment of a datagram other than TCP/UDP (no connection
    /// to follow).
    Fragment,
    /// Protocol other than TCP/UDP to a VIP.
    UnsupportedProtocol,
    /// A worker's hand-off ring was full.
    HandoffFull,
    /// The TX queue did not take the frame.
    TxFull,
    /// A multi-segment mbuf (jumbo frames are not enabled).
    MultiSegment,
    /// The connection's server was removed from the configuration.
    ServerGone,
    /// The frame would need room the mbuf does not have.
    NoHeadroom,
    /// Too big for the next hop's MTU after encapsulation, DF clear (rvs
    /// does not fragment), or an ICMP frag-needed over the rate limit.
    TooBig,
    /// An ICMP error that quotes no tracked connection (or garbage).
    IcmpUnknownFlow,
    /// Traffic for a VIP (or through a virtual address) while this
    /// director is not the `[ha]` master.
    NotMaster,
    /// A new connection from an impossible source (0/8, 127/8, multicast,
    /// 240/4, broadcast, a VIP, the director's own or a subnet's broadcast
    /// address), as a Linux router drops martians.
    Martian,
    /// A new connection to a VIP from one of that service's own real
    /// servers (it would loop on the server segment).
    FromRealServer,
    /// A packet that would create state failed its TCP/UDP checksum.
    BadChecksum,
    /// A TCP segment with SYN and RST or FIN together: never opens a
    /// connection (IPVS skips RST).
    BadTcpFlags,
    /// The rewrite of a frame failed (malformed for its method).
    RewriteFailed,
    /// A later IPv4 fragment whose first fragment was not seen within the
    /// hold time (or that another worker handed over by a stale guess).
    FragNoFirst,
    /// A later IPv4 fragment that arrived before its first fragment while
    /// the worker's fragment hold was full.
    FragHoldFull,
    /// An ACK to a synproxy service that matches no connection and whose
    /// acknowledgement is no valid SYN cookie (forged, or older than two
    /// cookie windows).
    BadSynCookie,
    /// A server segment other than SYN-ACK or RST on a synproxied
    /// connection still waiting for the server's answer to the director's
    /// SYN.
    SynproxyPending,
    /// A new connection while the director drains before exit (SIGTERM).
    Draining,
    /// A new full-NAT connection found no free local port of its worker
    /// on the egress port (`[[port]] snat_ports`): refused, no live tuple
    /// reused.
    SnatExhausted,
}

impl Drop {
    pub const ALL: [Drop; 32] = [
        Drop::NotForUs,
        Drop::NotIpv4,
        Drop::ToDirector,
        Drop::ArpIgnored,
        Drop::NoService,
        Drop::NoConnection,
        Drop::NoServer,
        Drop::TableFull,
        Drop::NoRoute,
        Drop::NeighbourUnresolved,
        Drop::TtlExceeded,
        Drop::Fragment,
        Drop::UnsupportedProtocol,
        Drop::HandoffFull,
        Drop::TxFull,
        Drop::MultiSegment,
        Drop::ServerGone,
        Drop::NoHeadroom,
        Drop::TooBig,
        Drop::IcmpUnknownFlow,
        Drop::NotMaster,
        Drop::Martian,
        Drop::FromRealServer,
        Drop::BadChecksum,
        Drop::BadTcpFlags,
        Drop::RewriteFailed,
        Drop::FragNoFirst,
        Drop::FragHoldFull,
        Drop::BadSynCookie,
        Drop::SynproxyPending,
        Drop::Draining,
        Drop::SnatExhausted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Drop::NotForUs => "not_for_us",
            Drop::NotIpv4 => "not_ipv4",
            Drop::ToDirector => "to_director",
            Drop::ArpIgnored => "arp_ignored",
            Drop::NoService => "no_service",
            Drop::NoConnection => "no_connection",
            Drop::NoServer => "no_server",
            Drop::TableFull => "table_full",
            Drop::NoRoute => "no_route",
            Drop::NeighbourUnresolved => "neighbour_unresolved",
            Drop::TtlExceeded => "ttl_exceeded",
            Drop::Fragment => "fragment",
            Drop::UnsupportedProtocol => "unsupported_protocol",
            Drop::HandoffFull => "handoff_full",
            Drop::TxFull => "tx_full",
            Drop::MultiSegment => "multi_segment",
            Drop::ServerGone => "server_gone",
            Drop::NoHeadroom => "no_headroom",
            Drop::TooBig => "too_big",
            Drop::IcmpUnknownFlow => "icmp_unknown_flow",
            Drop::NotMaster => "not_master",
            Drop::Martian => "martian",
            Drop::FromRealServer => "from_real_server",
            Drop::BadChecksum => "bad_checksum",
            Drop::BadTcpFlags => "bad_tcp_flags",
            Drop::RewriteFailed => "rewrite_failed",
            Drop::FragNoFirst => "frag_no_first",
            Drop::FragHoldFull => "frag_hold_full",
            Drop::BadSynCookie => "bad_syn_cookie",
            Drop::SynproxyPending => "synproxy_pending",
            Drop::Draining => "draining",
            Drop::SnatExhausted => "snat_exhausted",
        }
    }
}

/// A counter written by one thread and read by others.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        // Single writer: a plain load and store, no locked instruction.
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }
    #[inline]
    pub fn dec(&self) {
        self.add(u64::MAX)
    }
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed)
    }
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// One worker's counters.
#[derive(Default)]
pub struct WorkerStats {
    pub rx_packets: Counter,
    pub tx_packets: Counter,
    pub handoffs_out: Counter,
    pub handoffs_in: Counter,
    pub conns_created: Counter,
    pub conns_expired: Counter,
    /// Live connections evicted from a full table to make room (embryonic
    /// TCP or idle UDP; conn module docs, "Pressure").
    pub conns_evicted: Counter,
    pub arp_replies_sent: Counter,
    pub arp_requests_sent: Counter,
    /// Neighbour advertisements sent in answer to solicitations for the
    /// ports' IPv6 addresses and the IPv6 VIPs (IPv6's ARP replies).
    pub nd_adverts_sent: Counter,
    /// Neighbour solicitations sent to resolve IPv6 servers and gateways
    /// (IPv6's ARP requests).
    pub nd_solicits_sent: Counter,
    /// Unsolicited neighbour advertisements for owned IPv6 addresses (at
    /// start, on a new configuration, on takeover: IPv6's gratuitous ARP).
    pub nd_unsolicited_sent: Counter,
    /// ICMP errors the director generated (time exceeded, frag needed).
    pub icmp_sent: Counter,
    /// ICMP errors relayed for tracked connections.
    pub icmp_relayed: Counter,
    /// Frames handed to the kernel (exception path) and sent for it.
    pub to_kernel: Counter,
    pub from_kernel: Counter,
    /// Sync records reported to the HA thread, and those lost to a full queue.
    pub sync_reported: Counter,
    pub sync_lost: Counter,
    /// Connections installed from a peer's sync (new or updated), and
    /// records that matched no service or server here (or, full-NAT, no
    /// free local port of the receiving worker).
    pub sync_installed: Counter,
    pub sync_unknown: Counter,
    /// Gratuitous ARP sent on takeover.
    pub garp_sent: Counter,
    /// IPv4 fragments forwarded (first and later ones).
    pub frags_forwarded: Counter,
    /// Later fragments held because they came before their first.
    pub frags_held: Counter,
    /// Live fragment-table entries evicted to make room (oldest first).
    pub frags_evicted: Counter,
    /// SYN-ACKs with a SYN cookie the synproxy answered SYNs with.
    pub syn_cookies_sent: Counter,
    /// Connections the synproxy opened after a valid cookie ACK.
    pub syn_cookies_ok: Counter,
    /// Segments of moved flows (no entry, not a SYN) forwarded to the `mh`
    /// pick, each opening its entry (pipeline `rescue`).
    pub rescued: Counter,
    /// Frames the established fast path forwarded (`pipeline/established.rs`;
    /// the rest took the full path). Published once per loop from the
    /// worker's plain count, never per packet.
    pub established_hits: Counter,
    /// Connections expired by their next packet because their real server
    /// was gone (`[timeouts] expire_nodest_conn`, or marked down).
    pub nodest_expired: Counter,
    /// RSTs sent to clients whose connection's server was gone.
    pub nodest_rst_sent: Counter,
    pub parse_drops: [Counter; DropReason::ALL.len()],
    pub drops: [Counter; Drop::ALL.len()],
    /// Connections in this worker's table (written after each burst).
    pub conns: Counter,
    /// Cost accounting, VPP's `show runtime` (written once per poll loop,
    /// never per packet): the loop's TSC cycles...
    pub loop_cycles: Counter,
    /// ...those of the loops that moved frames...
    pub busy_cycles: Counter,
    /// ...the frames those loops moved (received from a port, its TAP or
    /// another worker's ring)...
    pub busy_frames: Counter,
    /// ...the cycles those loops spent in port rx polls that returned
    /// nothing (testpmd's `--record-core-cycles` leaves such polls out: it
    /// counts a stream's rx and tx only when the rx returned frames; busy
    /// cycles less these are the figure comparable with testpmd's)...
    pub empty_poll_cycles: Counter,
    /// ...and the port rx bursts that returned frames (average burst size
    /// = `rx_packets / rx_bursts`).
    pub rx_bursts: Counter,
}

impl WorkerStats {
    #[inline]
    pub fn count_drop(&self, d: Drop) {
        self.drops[d as usize].inc();
    }
    #[inline]
    pub fn parse_drop(&self, d: DropReason) {
        self.parse_drops[d.index()].inc();
    }
}

/// Counters summed over workers, for reports.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct StatsReport {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub handoffs: u64,
    pub conns_created: u64,
    pub conns_expired: u64,
    pub conns_evicted: u64,
    pub conns: u64,
    pub arp_replies_sent: u64,
    pub arp_requests_sent: u64,
    pub icmp_sent: u64,
    pub icmp_relayed: u64,
    pub to_kernel: u64,
    pub from_kernel: u64,
    pub sync_reported: u64,
    pub sync_lost: u64,
    pub sync_installed: u64,
    pub sync_unknown: u64,
    pub garp_sent: u64,
    pub frags_forwarded: u64,
    pub frags_held: u64,
    pub frags_evicted: u64,
    pub syn_cookies_sent: u64,
    pub syn_cookies_ok: u64,
    pub rescued: u64,
    pub nodest_expired: u64,
    pub nodest_rst_sent: u64,
    /// Every drop reason (parser's and data plane's) with its count.
    pub drops: std::collections::BTreeMap<String, u64>,
    pub drops_total: u64,
    /// The devices' own counters (frames the NIC or its ring lost before
    /// rvs saw them are `imissed`/`rx_nombuf`, not drops of ours).
    pub ports: Vec<PortStats>,
}

/// One DPDK port's device counters (`rte_eth_stats`).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortStats {
    pub name: String,
    pub ipackets: u64,
    pub opackets: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
    /// `net_af_packet` only: frames the kernel dropped because the PMD's
    /// RX ring was full (its sockets' `PACKET_STATISTICS`; the PMD leaves
    /// `imissed` at 0).
    #[serde(default)]
    pub rx_ring_drops: u64,
}

impl StatsReport {
    pub fn sum<'a>(workers: impl IntoIterator<Item = &'a WorkerStats>) -> StatsReport {
        let mut r = StatsReport::default();
        for d in DropReason::ALL {
            r.drops.insert(d.as_str().to_string(), 0);
        }
        for d in Drop::ALL {
            r.drops.insert(d.as_str().to_string(), 0);
        }
        for w in workers {
            r.rx_packets += w.rx_packets.get();
            r.tx_packets += w.tx_packets.get();
            r.handoffs += w.handoffs_out.get();
            r.conns_created += w.conns_created.get();
            r.conns_expired += w.conns_expired.get();
            r.conns_evicted += w.conns_evicted.get();
            r.conns += w.conns.get();
            r.arp_replies_sent += w.arp_replies_sent.get();
            r.arp_requests_sent += w.arp_requests_sent.get();
            r.icmp_sent += w.icmp_sent.get();
            r.icmp_relayed += w.icmp_relayed.get();
            r.to_kernel += w.to_kernel.get();
            r.from_kernel += w.from_kernel.get();
            r.sync_reported += w.sync_reported.get();
            r.sync_lost += w.sync_lost.get();
            r.sync_installed += w.sync_installed.get();
            r.sync_unknown += w.sync_unknown.get();
            r.garp_sent += w.garp_sent.get();
            r.frags_forwarded += w.frags_forwarded.get();
            r.frags_held += w.frags_held.get();
            r.frags_evicted += w.frags_evicted.get();
            r.syn_cookies_sent += w.syn_cookies_sent.get();
            r.syn_cookies_ok += w.syn_cookies_ok.get();
            r.rescued += w.rescued.get();
            r.nodest_expired += w.nodest_expired.get();
            r.nodest_rst_sent += w.nodest_rst_sent.get();
            for d in DropReason::ALL {
                *r.drops.get_mut(d.as_str()).unwrap() += w.parse_drops[d.index()].get();
            }
            for d in Drop::ALL {
                *r.drops.get_mut(d.as_str()).unwrap() += w.drops[d as usize].get();
            }
        }
        r.drops_total = r.drops.values().sum();
        r
    }
}

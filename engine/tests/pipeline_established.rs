//! The established fast path (`pipeline/established.rs`) through the worker
//! pipeline with byte buffers: steady packets of NAT (TCP both ways, UDP),
//! DR and TUN connections take it and leave with exactly the bytes the full
//! path writes (built independently with etherparse, checksums computed
//! from scratch); and what it caches is dropped the moment it goes stale: a
//! neighbour's new MAC, a server removed or drained by a new snapshot are
//! honoured by the very next packet of an established connection.
#![cfg(feature = "dpdk")]

use std::net::Ipv4Addr;
use std::sync::Arc;

use engine::config;
use engine::dataplane::pipeline::{Frame, Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, DestShared, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use etherparse::{Ipv4HeaderSlice, PacketBuilder, SlicedPacket};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];
const RS_MAC: [u8; 6] = [2, 0, 0, 1, 0, 11];
const RS_MOVED: [u8; 6] = [2, 0, 0, 1, 0xee, 11];
const VIP: [u8; 4] = [198, 18, 0, 100];
const CLIENT: [u8; 4] = [198, 18, 0, 10];
const PORT1_ADDR: [u8; 4] = [198, 19, 0, 1];
const RS: [u8; 4] = [198, 19, 0, 11];

/// NAT on 80/tcp and 53/udp, DR on 81, TUN on 82, all to one server;
/// `weight` is the NAT server's.
fn cfg(with_server: bool, weight: u32) -> String {
    let nat = if with_server {
        format!("  [[service.server]]\n  address = \"198.19.0.11\"\n  port = 8080\n  weight = {weight}\n")
    } else {
        String::new()
    };
    format!(
        r#"
[dpdk]
cores = "0@0,1@1"
workers = 1

[[port]]
name = "client"
device = "net_af_packet0,iface=dc"
address = "198.18.0.2/24"

[[port]]
name = "servers"
device = "net_af_packet1,iface=ds"
address = "198.19.0.1/24"

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "wlc"
forward = "nat"
{nat}
[[service]]
vip = "198.18.0.100"
port = 53
protocol = "udp"
scheduler = "rr"
forward = "nat"
  [[service.server]]
  address = "198.19.0.11"
  port = 5353

[[service]]
vip = "198.18.0.100"
port = 81
protocol = "tcp"
scheduler = "rr"
forward = "dr"
  [[service.server]]
  address = "198.19.0.11"

[[service]]
vip = "198.18.0.100"
port = 82
protocol = "tcp"
scheduler = "rr"
forward = "tun"
  [[service.server]]
  address = "198.19.0.11"
"#
    )
}

struct Rig {
    shared: Arc<Shared>,
    ports: Vec<PortInfo>,
    snap: Arc<Snapshot>,
    generation: u64,
    w: Pipeline,
}

impl Rig {
    fn new() -> Rig {
        let c = config::parse(&cfg(true, 1)).expect("config");
        let ports = vec![
            PortInfo::new(&c.ports[0], MacAddr(PORT0_MAC)),
            PortInfo::new(&c.ports[1], MacAddr(PORT1_MAC)),
        ];
        let shared = Arc::new(Shared::new(1));
        let w = Pipeline::new(0, 1, 1024, &shared);
        let snap = Arc::new(Snapshot::build(&c, &ports, &shared.registry, 1, &AllUp).unwrap());
        shared.neigh.learn(Ipv4Addr::from(RS), MacAddr(RS_MAC), 0);
        shared
            .neigh
            .learn(Ipv4Addr::from(CLIENT), MacAddr(CLIENT_MAC), 0);
        let mut r = Rig {
            shared,
            ports,
            snap,
            generation: 1,
            w,
        };
        r.w.on_snapshot(&r.snap);
        r
    }

    /// A new configuration, as a reload or `rvs ctl` edit publishes it.
    fn publish(&mut self, with_server: bool, weight: u32) {
        let c = config::parse(&cfg(with_server, weight)).expect("config");
        self.generation += 1;
        self.snap = Arc::new(
            Snapshot::build(
                &c,
                &self.ports,
                &self.shared.registry,
                self.generation,
                &AllUp,
            )
            .unwrap(),
        );
        self.w.on_snapshot(&self.snap);
    }

    /// Runs a frame; returns the verdict, the frame as it left, and
    /// whether the fast path forwarded it.
    fn run(&mut self, port: usize, frame: &[u8], now: u64) -> (Verdict, Vec<u8>, bool) {
        let before = self.w.established_hits();
        let mut f = VecFrame::new(frame);
        let v = self.w.process(&self.snap, &mut f, port, now, false);
        (v, f.to_vec(), self.w.established_hits() > before)
    }
}

/// Client -> VIP:`vport`, TCP with `flags` ("S", "A", "PA"...).
fn to_vip(vport: u16, flags: &str, seq: u32, payload: &[u8]) -> Vec<u8> {
    tcp(
        CLIENT_MAC, PORT0_MAC, CLIENT, VIP, 64, 40000, vport, flags, seq, payload,
    )
}

#[allow(clippy::too_many_arguments)]
fn tcp(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    sport: u16,
    dport: u16,
    flags: &str,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(smac, dmac)
        .ipv4(src, dst, ttl)
        .tcp(sport, dport, seq, 64240);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(7);
    }
    if flags.contains('P') {
        b = b.psh();
    }
    if flags.contains('F') {
        b = b.fin();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// Opens the NAT connection 40000 -> VIP:80 (SYN, the server's SYN-ACK,
/// ACK: all on the full path) and returns the time after it.
fn open_nat(r: &mut Rig) -> u64 {
    let (v, _, fast) = r.run(0, &to_vip(80, "S", 1, b""), 10);
    assert_eq!((v, fast), (Verdict::Tx(1), false));
    let synack = tcp(
        RS_MAC, PORT1_MAC, RS, CLIENT, 64, 8080, 40000, "SA", 100, b"",
    );
    let (v, _, fast) = r.run(1, &synack, 11);
    assert_eq!((v, fast), (Verdict::Tx(0), false));
    let (v, _, fast) = r.run(0, &to_vip(80, "A", 2, b""), 12);
    assert_eq!(
        (v, fast),
        (Verdict::Tx(1), false),
        "SYN_RECV -> ESTABLISHED"
    );
    13
}

/// What the full path makes of client data to VIP:80 (NAT to RS:8080,
/// TTL - 1, next hop `mac`): built from scratch by etherparse.
fn nat_in_expected(mac: [u8; 6], seq: u32, payload: &[u8]) -> Vec<u8> {
    tcp(
        PORT1_MAC, mac, CLIENT, RS, 63, 40000, 8080, "PA", seq, payload,
    )
}

#[test]
fn steady_nat_tcp_and_udp_take_the_fast_path_with_exact_bytes() {
    let mut r = Rig::new();
    let mut now = open_nat(&mut r);
    // Client data: the fast path, and the bytes a from-scratch build has.
    for seq in 3..6 {
        let (v, out, fast) = r.run(0, &to_vip(80, "PA", seq, b"hello"), now);
        assert_eq!((v, fast), (Verdict::Tx(1), true));
        assert_eq!(out, nat_in_expected(RS_MAC, seq, b"hello"));
        now += 1;
    }
    // Server data: source back to VIP:80, to the client's MAC.
    let data = tcp(
        RS_MAC, PORT1_MAC, RS, CLIENT, 64, 8080, 40000, "PA", 101, b"world",
    );
    let (v, out, fast) = r.run(1, &data, now);
    assert_eq!((v, fast), (Verdict::Tx(0), true));
    let want = tcp(
        PORT0_MAC, CLIENT_MAC, VIP, CLIENT, 63, 80, 40000, "PA", 101, b"world",
    );
    assert_eq!(out, want);
    // A FIN is a transition: the full path, which tracks it.
    let (v, _, fast) = r.run(0, &to_vip(80, "FA", 9, b""), now);
    assert_eq!((v, fast), (Verdict::Tx(1), false));
    // UDP: the first datagram opens the connection, the second is steady.
    let dgram = |ttl: u8, sport: u16, dport: u16, src, dst, macs: ([u8; 6], [u8; 6])| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(macs.0, macs.1)
            .ipv4(src, dst, ttl)
            .udp(sport, dport)
            .write(&mut v, b"query")
            .unwrap();
        v
    };
    let q = dgram(64, 40001, 53, CLIENT, VIP, (CLIENT_MAC, PORT0_MAC));
    let want = dgram(63, 40001, 5353, CLIENT, RS, (PORT1_MAC, RS_MAC));
    let (v, out, fast) = r.run(0, &q, now);
    assert_eq!((v, fast, &out), (Verdict::Tx(1), false, &want));
    let (v, out, fast) = r.run(0, &q, now);
    assert_eq!((v, fast, &out), (Verdict::Tx(1), true, &want));
    // Per-server accounting as the full path does it: 3 fast + SYN + ACK +
    // FIN in, the SYN-ACK and the data out (IP bytes).
    let srv = &r.snap.services[0].servers[0].shared.per_worker[0];
    assert_eq!((srv.in_packets.get(), srv.out_packets.get()), (6, 2));
    assert_eq!(srv.in_bytes.get(), 3 * 45 + 3 * 40);
}

#[test]
fn a_neighbour_mac_change_is_honoured_by_the_next_established_packet() {
    let mut r = Rig::new();
    let now = open_nat(&mut r);
    let (_, out, fast) = r.run(0, &to_vip(80, "PA", 3, b"a"), now);
    assert!(fast);
    assert_eq!(out, nat_in_expected(RS_MAC, 3, b"a"));
    // The server's MAC changes (its NIC was swapped, a failover...).
    r.shared
        .neigh
        .learn(Ipv4Addr::from(RS), MacAddr(RS_MOVED), now);
    let (v, out, fast) = r.run(0, &to_vip(80, "PA", 4, b"b"), now);
    assert_eq!(
        (v, fast),
        (Verdict::Tx(1), false),
        "the stale hop is not used"
    );
    assert_eq!(out, nat_in_expected(RS_MOVED, 4, b"b"));
    // ... and the refreshed hop is the fast path's again.
    let (v, out, fast) = r.run(0, &to_vip(80, "PA", 5, b"c"), now);
    assert_eq!((v, fast), (Verdict::Tx(1), true));
    assert_eq!(out, nat_in_expected(RS_MOVED, 5, b"c"));
}

#[test]
fn a_server_removed_or_drained_is_honoured_by_the_next_established_packet() {
    let mut r = Rig::new();
    let now = open_nat(&mut r);
    assert!(r.run(0, &to_vip(80, "PA", 3, b"a"), now).2);
    // Drained (weight 0): it keeps its connections; the first packet after
    // the new snapshot is the full path's, the next the fast path's again.
    r.publish(true, 0);
    let (v, out, fast) = r.run(0, &to_vip(80, "PA", 4, b"b"), now);
    assert_eq!((v, fast), (Verdict::Tx(1), false));
    assert_eq!(out, nat_in_expected(RS_MAC, 4, b"b"));
    let (v, out, fast) = r.run(0, &to_vip(80, "PA", 5, b"c"), now);
    assert_eq!((v, fast), (Verdict::Tx(1), true));
    assert_eq!(out, nat_in_expected(RS_MAC, 5, b"c"));
    // Removed: the very next packet is the full path's no-destination
    // case (expire_nodest_conn: an RST back to the client).
    r.publish(false, 1);
    let rst_before = r.shared.worker_stats[0].nodest_rst_sent.get();
    let (v, out, fast) = r.run(0, &to_vip(80, "PA", 6, b"d"), now);
    assert_eq!((v, fast), (Verdict::Tx(0), false));
    assert_eq!(
        r.shared.worker_stats[0].nodest_rst_sent.get(),
        rst_before + 1
    );
    let p = SlicedPacket::from_ethernet(&out).expect("etherparse");
    let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP: {out:02x?}")
    };
    assert!(t.rst(), "an RST to the client");
}

#[test]
fn steady_dr_and_tun_take_the_fast_path_with_exact_bytes() {
    let mut r = Rig::new();
    // DR: only the MACs and the TTL change. SYN and ACK (SYN_RECV ->
    // ESTABLISHED) on the full path, then the data is steady.
    for (flags, fast) in [("S", false), ("A", false), ("PA", true), ("PA", true)] {
        let (v, out, was_fast) = r.run(0, &to_vip(81, flags, 5, b"dr"), 20);
        assert_eq!((v, was_fast), (Verdict::Tx(1), fast), "{flags}");
        let want = tcp(
            PORT1_MAC, RS_MAC, CLIENT, VIP, 63, 40000, 81, flags, 5, b"dr",
        );
        assert_eq!(out, want, "{flags}");
    }
    // TUN: the inner packet TTL - 1, an outer header from the port's
    // address to the server; identical to the full path's but for the
    // outer identification (a per-worker counter).
    let mut outs = Vec::new();
    for (flags, fast) in [("S", false), ("A", false), ("PA", true), ("PA", true)] {
        let (v, out, was_fast) = r.run(0, &to_vip(82, flags, 5, b"tun"), 30);
        assert_eq!((v, was_fast), (Verdict::Tx(1), fast), "{flags}");
        assert_eq!(out[..12], [RS_MAC, PORT1_MAC].concat());
        let outer = Ipv4HeaderSlice::from_slice(&out[14..]).expect("outer IPv4");
        let h = outer.to_header();
        assert_eq!(
            h.calc_header_checksum(),
            h.header_checksum,
            "outer checksum"
        );
        assert_eq!((outer.source(), outer.destination()), (PORT1_ADDR, RS));
        assert_eq!((outer.protocol().0, outer.ttl()), (4, 63));
        let inner = tcp(
            CLIENT_MAC, PORT0_MAC, CLIENT, VIP, 63, 40000, 82, flags, 5, b"tun",
        );
        assert_eq!(out[34..], inner[14..], "{flags}: the inner packet");
        assert_eq!(outer.dont_fragment(), inner[20] & 0x40 != 0, "DF copied");
        assert_eq!(usize::from(outer.total_len()), out.len() - 14);
        outs.push((outer.identification(), out));
    }
    // Outer identifications count up, fast path or not.
    let ids: Vec<u16> = outs.iter().map(|o| o.0).collect();
    assert_eq!(
        ids,
        (0..4).map(|i| ids[0].wrapping_add(i)).collect::<Vec<_>>()
    );
}

/// Runs `frames` as the worker runs a burst (`inspect`, then
/// `process_inspected` each), without ending it; returns the verdicts.
fn burst(r: &mut Rig, frames: &[Vec<u8>], now: u64) -> Vec<Verdict> {
    frames
        .iter()
        .map(|b| {
            let mut f = VecFrame::new(b);
            let i = r.w.inspect(f.data());
            r.w.process_inspected(&r.snap, &mut f, &i, 0, now, false)
        })
        .collect()
}

/// In packets and IP bytes of worker 0 on a server.
fn in_counts(s: &DestShared) -> (u64, u64) {
    let k = &s.per_worker[0];
    (k.in_packets.get(), k.in_bytes.get())
}

/// The fast path's per-server counts wait in the worker's entry for the
/// server (`pipeline/dest_fast.rs`) until the worker's first loop end of
/// the next millisecond (`end_burst`) or an explicit flush, and a new
/// snapshot flushes them before anything else: the totals are exact then,
/// also for a server the reload removed, whose next packet is then not
/// forwarded to it.
#[test]
fn per_server_counts_are_exact_once_a_millisecond_and_across_a_reload() {
    let mut r = Rig::new();
    let now = open_nat(&mut r);
    let srv = r.snap.services[0].servers[0].shared.clone();
    // SYN and ACK, 40 IP bytes each, counted by the full path.
    assert_eq!(in_counts(&srv), (2, 80));
    let data: Vec<Vec<u8>> = (3..8).map(|s| to_vip(80, "PA", s, b"hello")).collect();
    let hits = r.w.established_hits();
    // The worker's loop end in the millisecond of the last flush waits.
    r.w.end_burst(&r.snap, now);
    assert_eq!(burst(&mut r, &data[..3], now), vec![Verdict::Tx(1); 3]);
    assert_eq!(r.w.established_hits(), hits + 3);
    r.w.end_burst(&r.snap, now);
    assert_eq!(in_counts(&srv), (2, 80), "pending within the millisecond");
    // The next millisecond's first loop end flushes, once.
    r.w.end_burst(&r.snap, now + 1);
    assert_eq!(in_counts(&srv), (5, 80 + 3 * 45));
    r.w.end_burst(&r.snap, now + 1);
    assert_eq!(in_counts(&srv), (5, 80 + 3 * 45));
    // Two more, then a reload removes the server before the burst ends.
    assert_eq!(burst(&mut r, &data[3..], now), vec![Verdict::Tx(1); 2]);
    assert_eq!(r.w.established_hits(), hits + 5);
    r.publish(false, 1);
    assert_eq!(in_counts(&srv), (7, 80 + 5 * 45));
    let (v, out, fast) = r.run(0, &to_vip(80, "PA", 8, b"hello"), now);
    assert_eq!((v, fast), (Verdict::Tx(0), false), "an RST to the client");
    assert_eq!(out[..6], CLIENT_MAC);
    r.w.flush_counts(&r.snap);
    assert_eq!(in_counts(&srv), (7, 80 + 5 * 45));
}

/// A snapshot the worker has not been told about yet (no `on_snapshot`,
/// as a caller may hand one straight in): the fast path sees that its
/// server entries were built from another one and rebuilds them first, so
/// a server the new snapshot removed gets nothing more.
#[test]
fn a_server_removed_is_honoured_before_on_snapshot() {
    let mut r = Rig::new();
    let now = open_nat(&mut r);
    assert!(r.run(0, &to_vip(80, "PA", 3, b"a"), now).2);
    let srv = r.snap.services[0].servers[0].shared.clone();
    let c = config::parse(&cfg(false, 1)).expect("config");
    r.generation += 1;
    r.snap =
        Arc::new(Snapshot::build(&c, &r.ports, &r.shared.registry, r.generation, &AllUp).unwrap());
    let (v, out, fast) = r.run(0, &to_vip(80, "PA", 4, b"b"), now);
    assert_eq!((v, fast), (Verdict::Tx(0), false), "an RST to the client");
    assert_eq!(out[..6], CLIENT_MAC);
    // Counted: SYN, ACK and the one fast packet before the reload.
    assert_eq!(in_counts(&srv), (3, 80 + 41));
}

//! The transition path (`pipeline/transition.rs`) checked against the full
//! path: two directors with the same configuration get the same segments;
//! one runs the worker's path (`Pipeline::process`: established fast path,
//! then the transition path), the other is forced onto the full path (an
//! `Inspected` of the full parser, as for a frame of another shape). After
//! every segment both must agree exactly: verdict, bytes out, the
//! connection's TCP state, every per-server counter (active, inactive,
//! connections, packets and bytes each way) and every worker counter. And
//! the state-changing segments (the handshake's ACK, the server's SYN-ACK,
//! FINs, an RST) must have taken the transition path, TUN's the full path.
#![cfg(feature = "dpdk")]

use std::net::Ipv4Addr;
use std::sync::Arc;

use engine::config;
use engine::conn::{FlowKey, Hint, TcpState};
use engine::dataplane::counters::{Drop, StatsReport};
use engine::dataplane::pipeline::{Inspected, Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use engine::packet::parse_frame_full;
use etherparse::PacketBuilder;

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];
const RS_MAC: [u8; 6] = [2, 0, 0, 1, 0, 11];
const VIP: [u8; 4] = [198, 18, 0, 100];
const CLIENT: [u8; 4] = [198, 18, 0, 10];
const RS: [u8; 4] = [198, 19, 0, 11];

/// NAT on 80, DR on 81, TUN on 82, persistent NAT on 84, all TCP; UDP NAT
/// on 85 and DR on 86; all to one server.
const CFG: &str = r#"
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
  [[service.server]]
  address = "198.19.0.11"
  port = 8080

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

[[service]]
vip = "198.18.0.100"
port = 84
protocol = "tcp"
scheduler = "rr"
forward = "nat"
persistence_timeout = 60
  [[service.server]]
  address = "198.19.0.11"
  port = 8084

[[service]]
vip = "198.18.0.100"
port = 85
protocol = "udp"
scheduler = "rr"
forward = "nat"
  [[service.server]]
  address = "198.19.0.11"
  port = 8085

[[service]]
vip = "198.18.0.100"
port = 86
protocol = "udp"
scheduler = "rr"
forward = "dr"
  [[service.server]]
  address = "198.19.0.11"
"#;

/// One director.
struct Director {
    shared: Arc<Shared>,
    snap: Snapshot,
    w: Pipeline,
}

impl Director {
    fn new() -> Director {
        Director::with(CFG)
    }

    fn with(cfg: &str) -> Director {
        let c = config::parse(cfg).expect("config");
        let ports = vec![
            PortInfo::new(&c.ports[0], MacAddr(PORT0_MAC)),
            PortInfo::new(&c.ports[1], MacAddr(PORT1_MAC)),
        ];
        let shared = Arc::new(Shared::new(1));
        let mut w = Pipeline::new(0, 1, 1024, &shared);
        let snap = Snapshot::build(&c, &ports, &shared.registry, 1, &AllUp).unwrap();
        shared.neigh.learn(Ipv4Addr::from(RS), MacAddr(RS_MAC), 0);
        shared
            .neigh
            .learn(Ipv4Addr::from(CLIENT), MacAddr(CLIENT_MAC), 0);
        w.on_snapshot(&snap);
        Director { shared, snap, w }
    }

    /// The worker's path: first pass, established, transition, full.
    fn run(&mut self, port: usize, frame: &[u8], now: u64) -> (Verdict, Vec<u8>) {
        let mut f = VecFrame::new(frame);
        let v = self.w.process(&self.snap, &mut f, port, now, false);
        (v, f.to_vec())
    }

    /// The full path only: the full parser's summary, not the fast shape.
    fn run_full(&mut self, port: usize, frame: &[u8], now: u64) -> (Verdict, Vec<u8>) {
        let p = parse_frame_full(frame).expect("parses");
        let key = FlowKey::new(p.protocol, p.src, p.src_port, p.dst, p.dst_port);
        let i = Inspected {
            parsed: Ok(p),
            hash: Some(self.w.conns.key_hash(&key)),
            fast: false,
            ..Inspected::EMPTY
        };
        let mut f = VecFrame::new(frame);
        let v = self
            .w
            .process_inspected(&self.snap, &mut f, &i, port, now, false);
        (v, f.to_vec())
    }

    /// Every counter of the one server of service `svc`: active, inactive,
    /// connections, packets and bytes in and out.
    fn server(&self, svc: usize) -> [u64; 7] {
        let k = &self.snap.services[svc].servers[0].shared.per_worker[0];
        [
            k.active.get(),
            k.inactive.get(),
            k.conns.get(),
            k.in_packets.get(),
            k.in_bytes.get(),
            k.out_packets.get(),
            k.out_bytes.get(),
        ]
    }

    /// The TCP state of the connection of client port `cport` to `vport`.
    fn state(&self, cport: u16, vport: u16, now: u64) -> Option<TcpState> {
        let key = FlowKey::new(6, Ipv4Addr::from(CLIENT), cport, Ipv4Addr::from(VIP), vport);
        let (id, _) = self.w.conns.lookup(&key, now)?;
        Some(self.w.conns.get(id).state())
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::to_value(StatsReport::sum([&*self.shared.worker_stats[0]])).unwrap()
    }
}

#[allow(clippy::too_many_arguments)]
fn tcp(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(smac, dmac)
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1000, 64240);
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
    if flags.contains('R') {
        b = b.rst();
    }
    if flags.contains('E') {
        b = b.ece();
    }
    if flags.contains('C') {
        b = b.cwr();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// A frame and the port it arrives on.
type Segment = (usize, Vec<u8>);

/// Client port `cport` -> VIP:`vport`.
fn from_client(cport: u16, vport: u16, flags: &str, payload: &[u8]) -> Segment {
    let f = tcp(
        CLIENT_MAC, PORT0_MAC, CLIENT, VIP, cport, vport, flags, payload,
    );
    (0, f)
}

/// The NAT server's segment to client port `cport`.
fn from_server(cport: u16, flags: &str, payload: &[u8]) -> Segment {
    let f = tcp(RS_MAC, PORT1_MAC, RS, CLIENT, 8080, cport, flags, payload);
    (1, f)
}

/// Runs one segment through both directors and checks they agree on
/// everything; returns the verdict and the state after it.
fn both(
    fast: &mut Director,
    full: &mut Director,
    seg: &Segment,
    cport: u16,
    vport: u16,
    now: u64,
) -> (Verdict, Option<TcpState>) {
    let (port, frame) = seg;
    let a = fast.run(*port, frame, now);
    let b = full.run_full(*port, frame, now);
    assert_eq!(a, b, "verdict and bytes out");
    let svc = match vport {
        85 => 4,
        86 => 5,
        v => usize::from(v - 80).min(3),
    };
    assert_eq!(fast.server(svc), full.server(svc), "server counters");
    let st = fast.state(cport, vport, now);
    assert_eq!(st, full.state(cport, vport, now), "TCP state");
    assert_eq!(fast.stats(), full.stats(), "worker counters");
    (a.0, st)
}

#[test]
fn state_changing_segments_take_the_transition_path_exactly_as_the_full_path() {
    let (mut a, mut b) = (Director::new(), Director::new());
    let hits = |d: &Director| (d.w.transition_hits(), d.w.established_hits());
    use TcpState::{Close, Established, FinWait, SynRecv};

    // NAT: the handshake (the client's ACK moves the state; the server's
    // SYN-ACK goes to the full path: the client's next hop is not cached
    // yet, its full-path resolution caches it), data (established path),
    // then both FINs and the last ACK. States checked where the IPVS table
    // is plain; every state is checked against the full path's.
    let steps: [(Segment, Option<TcpState>, (u64, u64)); 7] = [
        (from_client(40000, 80, "S", b""), Some(SynRecv), (0, 0)),
        (from_server(40000, "SA", b""), None, (0, 0)),
        (from_client(40000, 80, "A", b""), Some(Established), (1, 0)),
        (
            from_client(40000, 80, "PA", b"hello"),
            Some(Established),
            (1, 1),
        ),
        (from_client(40000, 80, "FA", b""), None, (2, 1)),
        (from_server(40000, "FA", b""), None, (3, 1)),
        (from_client(40000, 80, "A", b""), None, (4, 1)),
    ];
    let mut t = 10;
    for (i, (seg, state, h)) in steps.into_iter().enumerate() {
        let (v, st) = both(&mut a, &mut b, &seg, 40000, 80, t);
        assert!(matches!(v, Verdict::Tx(_)), "step {i}: {v:?}");
        assert!(st.is_some(), "step {i}");
        if state.is_some() {
            assert_eq!(st, state, "step {i}");
        }
        assert_eq!(hits(&a), h, "step {i}: (transition, established) hits");
        t += 1;
    }
    // Active while established, inactive after the FIN, one connection.
    assert_eq!(a.server(0)[..3], [0, 1, 1]);

    // NAT: an RST ends an established connection (active -> inactive).
    both(
        &mut a,
        &mut b,
        &from_client(40001, 80, "S", b""),
        40001,
        80,
        t,
    );
    let (_, st) = both(
        &mut a,
        &mut b,
        &from_client(40001, 80, "A", b""),
        40001,
        80,
        t,
    );
    assert_eq!(
        (st, a.server(0)[..2].to_vec()),
        (Some(Established), vec![1, 1])
    );
    let (v, st) = both(
        &mut a,
        &mut b,
        &from_client(40001, 80, "R", b""),
        40001,
        80,
        t,
    );
    assert_eq!((v, st), (Verdict::Tx(1), Some(Close)));
    assert_eq!(a.server(0)[..3], [0, 2, 2]);
    assert_eq!(hits(&a), (6, 1));

    // DR: the client's ACK and FIN take the transition path too.
    for (flags, state) in [("S", SynRecv), ("A", Established), ("FA", FinWait)] {
        let (v, st) = both(
            &mut a,
            &mut b,
            &from_client(40002, 81, flags, b""),
            40002,
            81,
            t,
        );
        assert_eq!((v, st), (Verdict::Tx(1), Some(state)), "DR {flags}");
    }
    assert_eq!(hits(&a), (8, 1));
    assert_eq!(a.server(1)[..3], [0, 1, 1]);

    // TUN: the full path (the encapsulation is not this path's).
    for (flags, state) in [("S", SynRecv), ("A", Established), ("FA", FinWait)] {
        let (v, st) = both(
            &mut a,
            &mut b,
            &from_client(40003, 82, flags, b""),
            40003,
            82,
            t,
        );
        assert_eq!((v, st), (Verdict::Tx(1), Some(state)), "TUN {flags}");
    }
    assert_eq!(hits(&a), (8, 1));

    // A SYN on the NAT connection in TIME_WAIT schedules afresh (the full
    // path's release): the same on both.
    t += 1;
    let (v, st) = both(
        &mut a,
        &mut b,
        &from_client(40000, 80, "S", b""),
        40000,
        80,
        t,
    );
    assert_eq!((v, st), (Verdict::Tx(1), Some(SynRecv)));
    assert_eq!(hits(&a), (8, 1));
}

#[test]
fn a_cold_next_hop_or_a_segment_too_big_is_left_to_the_full_path() {
    let (mut a, mut b) = (Director::new(), Director::new());
    both(
        &mut a,
        &mut b,
        &from_client(41000, 80, "S", b""),
        41000,
        80,
        10,
    );
    // 1 s later the next-hop cache entry (100 ms) is stale: the full path.
    let (v, st) = both(
        &mut a,
        &mut b,
        &from_client(41000, 80, "A", b""),
        41000,
        80,
        1010,
    );
    assert_eq!((v, st), (Verdict::Tx(1), Some(TcpState::Established)));
    assert_eq!(a.w.transition_hits(), 0);
    // Its next-hop lookup refilled the cache: a FIN now takes the path.
    let (v, st) = both(
        &mut a,
        &mut b,
        &from_client(41000, 80, "FA", b""),
        41000,
        80,
        1011,
    );
    assert_eq!(v, Verdict::Tx(1));
    assert_ne!(st, Some(TcpState::Established));
    assert_eq!(a.w.transition_hits(), 1);
    // A segment larger than the egress MTU (1500): the full path's ICMP.
    let big = vec![0u8; 1480];
    both(
        &mut a,
        &mut b,
        &from_client(41000, 80, "A", &big),
        41000,
        80,
        1012,
    );
    assert_eq!(a.w.transition_hits(), 1);
}

/// The new-flow path (`pipeline/new_flow.rs`): a SYN whose lookup misses
/// opens its connection there, exactly as the full path would (verdict,
/// bytes, state, server and worker counters after every segment), and
/// what it does not take (or refuses) comes out the same too.
#[test]
fn a_syn_opens_its_connection_on_the_new_flow_path_exactly_as_the_full_path() {
    let (mut a, mut b) = (Director::new(), Director::new());
    let drops = |d: &Director, r: Drop| d.shared.worker_stats[0].drops[r as usize].get();
    use TcpState::{Established, SynRecv};
    let mut t = 10;
    // The first SYN warms the next-hop cache (its hop is resolved by the
    // full path's forwarding, `inbound`); the path took it all the same.
    for (cport, vport) in [
        (42000, 80),
        (42001, 80),
        (42002, 81),
        (42003, 82),
        (42004, 84),
    ] {
        let (v, st) = both(
            &mut a,
            &mut b,
            &from_client(cport, vport, "S", b""),
            cport,
            vport,
            t,
        );
        assert_eq!((v, st), (Verdict::Tx(1), Some(SynRecv)), "{vport}");
        let (v, st) = both(
            &mut a,
            &mut b,
            &from_client(cport, vport, "A", b""),
            cport,
            vport,
            t,
        );
        assert_eq!((v, st), (Verdict::Tx(1), Some(Established)), "{vport}");
        t += 1;
    }
    assert_eq!(a.w.new_flow_hits(), 5);
    // NAT: one connection each, active; DR and TUN too.
    assert_eq!(a.server(0)[..3], [2, 0, 2]);
    assert_eq!(a.server(1)[..3], [1, 0, 1]);
    assert_eq!(a.server(2)[..3], [1, 0, 1]);
    // Persistence: the connection holds its template, a second one from the
    // same client is sent by it, with the same counts on both.
    both(
        &mut a,
        &mut b,
        &from_client(42005, 84, "S", b""),
        42005,
        84,
        t,
    );
    assert_eq!(a.server(3)[..4], [2, 0, 2, 3], "SYN_RECV counts active");
    assert_eq!(a.w.new_flow_hits(), 6);

    // Refused as the full path refuses, counted the same: a bad TCP
    // checksum, a SYN from the service's own server.
    let (port, mut bad) = from_client(42010, 80, "S", b"");
    bad[14 + 20 + 16] ^= 0x55;
    let (v, st) = both(&mut a, &mut b, &(port, bad), 42010, 80, t);
    assert_eq!((v, st), (Verdict::Drop, None));
    assert_eq!(drops(&a, Drop::BadChecksum), 1);
    let from_rs = tcp(RS_MAC, PORT1_MAC, RS, VIP, 8080, 80, "S", b"");
    let (v, _) = both(&mut a, &mut b, &(1, from_rs), 8080, 80, t);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(drops(&a, Drop::FromRealServer), 1);
    assert_eq!(a.w.new_flow_hits(), 8);

    // Left to the full path: SYN+FIN (bad flags), no service on the port,
    // an ACK without connection, a TTL of 1 (ICMP time exceeded).
    let (v, _) = both(
        &mut a,
        &mut b,
        &from_client(42011, 80, "SF", b""),
        42011,
        80,
        t,
    );
    assert_eq!(v, Verdict::Drop);
    assert_eq!(drops(&a, Drop::BadTcpFlags), 1);
    let (v, _) = both(
        &mut a,
        &mut b,
        &from_client(42012, 83, "S", b""),
        42012,
        83,
        t,
    );
    assert_eq!(v, Verdict::Drop);
    assert_eq!(drops(&a, Drop::NoService), 1);
    let (v, _) = both(
        &mut a,
        &mut b,
        &from_client(42013, 80, "A", b""),
        42013,
        80,
        t,
    );
    assert_eq!(v, Verdict::Drop);
    assert_eq!(drops(&a, Drop::NoConnection), 1);
    let (port, mut low) = from_client(42014, 80, "S", b"");
    low[14 + 8] = 1;
    let ck = engine::packet::checksum::checksum(&{
        let mut h = low[14..34].to_vec();
        h[10] = 0;
        h[11] = 0;
        h
    });
    low[24..26].copy_from_slice(&ck.to_be_bytes());
    let (v, st) = both(&mut a, &mut b, &(port, low), 42014, 80, t);
    assert_eq!((v, st), (Verdict::Tx(0), None));
    assert_eq!(a.w.new_flow_hits(), 8);

    // Draining: refused, counted `draining`, on both.
    a.shared
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    b.shared
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let (v, st) = both(
        &mut a,
        &mut b,
        &from_client(42015, 80, "S", b""),
        42015,
        80,
        t,
    );
    assert_eq!((v, st), (Verdict::Drop, None));
    assert_eq!(drops(&a, Drop::Draining), 1);
    assert_eq!(a.w.new_flow_hits(), 9);
}

/// A SYN carrying other flags than the four the state table reads (PSH,
/// ECN's ECE and CWR, URG-less payload) opens its connection on the
/// new-flow path, which hands the state table the SYN row alone, in the
/// same state with the same timer as the full path, which reads the whole
/// flag byte: NAT, DR and TUN, then the handshake's ACK.
#[test]
fn a_syn_with_more_flags_opens_on_the_new_flow_path_as_the_full_path() {
    let (mut a, mut b) = (Director::new(), Director::new());
    let mut t = 10;
    let mut cport = 43000;
    for flags in ["S", "SP", "SEC", "SPEC", "SE", "SC"] {
        for vport in [80, 81, 82] {
            let syn = from_client(cport, vport, flags, b"hi");
            let (v, st) = both(&mut a, &mut b, &syn, cport, vport, t);
            assert_eq!((v, st), (Verdict::Tx(1), Some(TcpState::SynRecv)));
            // The same timer: both expire the record at the same moment.
            let key = FlowKey::new(6, Ipv4Addr::from(CLIENT), cport, Ipv4Addr::from(VIP), vport);
            let left = |d: &Director| {
                let (id, _) = d.w.conns.lookup(&key, t).unwrap();
                d.w.conns.time_left_ms(id, t)
            };
            assert_eq!(left(&a), left(&b), "{flags} {vport}");
            let ack = from_client(cport, vport, "A", b"");
            let (_, st) = both(&mut a, &mut b, &ack, cport, vport, t);
            assert_eq!(st, Some(TcpState::Established));
            cport += 1;
            t += 1;
        }
    }
    assert_eq!(a.w.new_flow_hits(), 18);
    assert_eq!(b.w.new_flow_hits(), 0);
}

/// The worker's passes over one burst (`inspect_into`, which prefetches
/// the bucket, then `prefetch_conns`, then `process_inspected` for each
/// frame), as `worker.rs` and `rvs-perf pipeline` run them, then a flush
/// of the per-server counts (the worker's `end_burst`: once a millisecond).
fn burst(d: &mut Director, segs: &[Segment], now: u64) -> Vec<(Verdict, Vec<u8>)> {
    let mut insp = vec![Inspected::EMPTY; segs.len()];
    for ((_, frame), x) in segs.iter().zip(insp.iter_mut()) {
        d.w.inspect_into(frame, x);
    }
    d.w.prefetch_conns(&mut insp);
    let mut out = Vec::new();
    for ((port, frame), x) in segs.iter().zip(&insp) {
        let mut f = VecFrame::new(frame);
        let v = d.w.process_inspected(&d.snap, &mut f, x, *port, now, false);
        out.push((v, f.to_vec()));
    }
    d.w.flush_counts(&d.snap);
    out
}

#[test]
fn whole_connections_in_one_burst_match_the_full_path_frame_by_frame() {
    // The benchmark's shape (`rvs-perf pipeline --conns`): each
    // connection's SYN, ACK, data and FIN in the same burst, so the
    // prefetch pass finds none of them (the SYN is processed after it) and
    // the transition path looks the FIN up itself; the per-server counts
    // of the new-flow and transition paths add up per burst (dest_fast.rs)
    // and must be exact once the burst is done.
    let (mut a, mut b) = (Director::new(), Director::new());
    // The first SYN warms the next-hop cache on both.
    both(
        &mut a,
        &mut b,
        &from_client(43000, 80, "S", b""),
        43000,
        80,
        5,
    );
    let t = 10;
    let mut segs = Vec::new();
    for (cport, vport) in [(43001, 80), (43002, 81), (43003, 80), (43004, 81)] {
        for (flags, payload) in [("S", &b""[..]), ("A", b""), ("PA", b"data"), ("FA", b"")] {
            segs.push(from_client(cport, vport, flags, payload));
        }
    }
    // A reply in the same burst, and its connection's next segment.
    segs.push(from_server(43003, "A", b"reply"));
    segs.push(from_client(43003, 80, "A", b""));
    let (tr0, nf0) = (a.w.transition_hits(), a.w.new_flow_hits());
    let got = burst(&mut a, &segs, t);
    let want: Vec<_> = segs
        .iter()
        .map(|(port, frame)| b.run_full(*port, frame, t))
        .collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "segment {i}: verdict and bytes out");
        assert!(matches!(g.0, Verdict::Tx(_)), "segment {i}: {:?}", g.0);
    }
    for svc in 0..2 {
        assert_eq!(
            a.server(svc),
            b.server(svc),
            "service {svc}: server counters"
        );
    }
    assert_eq!(a.stats(), b.stats(), "worker counters");
    for (cport, vport) in [(43001, 80), (43002, 81), (43003, 80), (43004, 81)] {
        assert_eq!(
            a.state(cport, vport, t),
            b.state(cport, vport, t),
            "{cport}"
        );
    }
    // Four SYNs opened on the new-flow path; the four ACKs and FINs
    // forwarded by the transition path (the client's ACK after the FIN
    // too: it moves the NAT connection on).
    assert_eq!(a.w.new_flow_hits() - nf0, 4);
    assert!(
        a.w.transition_hits() - tr0 >= 8,
        "{}",
        a.w.transition_hits() - tr0
    );
    // NAT: 2 connections + the warm-up's, DR 2; every packet and byte
    // counted.
    assert_eq!(a.server(0)[2], 3);
    assert_eq!(a.server(1)[2], 2);
}

/// A UDP datagram from `src`:`sport` to `dst`:`dport`, arriving on `port`.
fn udp(port: usize, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, data: &[u8]) -> Segment {
    let (smac, dmac) = if port == 0 {
        (CLIENT_MAC, PORT0_MAC)
    } else {
        (RS_MAC, PORT1_MAC)
    };
    let mut v = Vec::new();
    PacketBuilder::ethernet2(smac, dmac)
        .ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut v, data)
        .unwrap();
    (port, v)
}

#[test]
fn a_udp_flows_first_datagram_opens_it_on_the_new_flow_path_exactly_as_the_full_path() {
    let (mut a, mut b) = (Director::new(), Director::new());
    let drops = |d: &Director, r: Drop| d.shared.worker_stats[0].drops[r as usize].get();
    let t = 10;
    // NAT: the first datagram opens the flow (the first of all also warms
    // the next-hop cache), the next is the established path's, the
    // server's reply too once its next hop is known.
    for (sport, n) in [(44000, 1), (44001, 2)] {
        let (v, _) = both(
            &mut a,
            &mut b,
            &udp(0, CLIENT, VIP, sport, 85, b"datagram"),
            sport,
            85,
            t,
        );
        assert_eq!(v, Verdict::Tx(1));
        assert_eq!(a.w.new_flow_hits(), n);
        let (v, _) = both(
            &mut a,
            &mut b,
            &udp(0, CLIENT, VIP, sport, 85, b"second"),
            sport,
            85,
            t,
        );
        assert_eq!(v, Verdict::Tx(1));
        let (v, _) = both(
            &mut a,
            &mut b,
            &udp(1, RS, CLIENT, 8085, sport, b"reply!"),
            sport,
            85,
            t,
        );
        assert_eq!(v, Verdict::Tx(0));
    }
    assert_eq!(a.w.new_flow_hits(), 2);
    // Two connections, inactive (UDP), every packet counted.
    assert_eq!(a.server(4)[..4], [0, 2, 2, 4]);
    assert_eq!(a.server(4)[5], 2);
    // DR, and a datagram without a checksum (0: none, accepted).
    let (port, mut nock) = udp(0, CLIENT, VIP, 44002, 86, b"datagram");
    nock[14 + 20 + 6] = 0;
    nock[14 + 20 + 7] = 0;
    let (v, _) = both(&mut a, &mut b, &(port, nock), 44002, 86, t);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(a.w.new_flow_hits(), 3);
    assert_eq!(a.server(5)[..3], [0, 1, 1]);
    // Refused as the full path refuses, counted the same: a bad checksum,
    // a datagram from the service's own server; left to it: no service on
    // the port (counted there), a TTL of 1.
    let (port, mut bad) = udp(0, CLIENT, VIP, 44003, 85, b"datagram");
    bad[14 + 20 + 6] ^= 0x55;
    let (v, _) = both(&mut a, &mut b, &(port, bad), 44003, 85, t);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(drops(&a, Drop::BadChecksum), 1);
    let (v, _) = both(
        &mut a,
        &mut b,
        &udp(1, RS, VIP, 8085, 85, b"datagram"),
        8085,
        85,
        t,
    );
    assert_eq!(v, Verdict::Drop);
    assert_eq!(drops(&a, Drop::FromRealServer), 1);
    assert_eq!(a.w.new_flow_hits(), 5);
    let (v, _) = both(
        &mut a,
        &mut b,
        &udp(0, CLIENT, VIP, 44004, 87, b"datagram"),
        44004,
        87,
        t,
    );
    assert_eq!(v, Verdict::Drop);
    assert_eq!(drops(&a, Drop::NoService), 1);
    let (port, mut low) = udp(0, CLIENT, VIP, 44005, 85, b"datagram");
    low[14 + 8] = 1;
    let ck = engine::packet::checksum::checksum(&{
        let mut h = low[14..34].to_vec();
        h[10] = 0;
        h[11] = 0;
        h
    });
    low[24..26].copy_from_slice(&ck.to_be_bytes());
    let (v, _) = both(&mut a, &mut b, &(port, low), 44005, 85, t);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(a.w.new_flow_hits(), 5);

    // A flow's first two datagrams in one burst: the first opens it, the
    // second finds it (the prefetch pass did not).
    let segs = [
        udp(0, CLIENT, VIP, 44010, 85, b"datagram"),
        udp(0, CLIENT, VIP, 44010, 85, b"second"),
    ];
    let got = burst(&mut a, &segs, t);
    for (i, ((port, frame), g)) in segs.iter().zip(&got).enumerate() {
        assert_eq!(g, &b.run_full(*port, frame, t), "datagram {i}");
    }
    assert_eq!(a.server(4), b.server(4));
    assert_eq!(a.stats(), b.stats());
    assert_eq!(a.w.new_flow_hits(), 6);
}

/// The established path looks up every fast-shape segment, whatever its
/// flags: a miss goes from the dispatch to the new-flow path (after
/// `ipv4`'s checks), which takes only a plain SYN. A FIN, an RST or an ACK
/// no connection holds is the full path's, as before: the same verdict,
/// bytes and counters, and neither fast path counts it.
#[test]
fn a_segment_no_connection_holds_other_than_a_syn_is_left_to_the_full_path() {
    let (mut a, mut b) = (Director::new(), Director::new());
    let hits = |d: &Director| {
        (
            d.w.transition_hits(),
            d.w.established_hits(),
            d.w.new_flow_hits(),
        )
    };
    let mut t = 10;
    let drops = |d: &Director, r: Drop| d.shared.worker_stats[0].drops[r as usize].get();
    for (i, flags) in ["A", "FA", "R", "PA", "SA"].into_iter().enumerate() {
        let cport = 43000 + i as u16;
        let (v, st) = both(
            &mut a,
            &mut b,
            &from_client(cport, 80, flags, b"x"),
            cport,
            80,
            t,
        );
        assert_eq!((v, st), (Verdict::Drop, None), "{flags}");
        assert_eq!(hits(&a), (0, 0, 0), "{flags}");
        t += 1;
    }
    assert_eq!(drops(&a, Drop::NoConnection), 5);
    // A plain SYN after them opens on the new-flow path.
    let (v, st) = both(
        &mut a,
        &mut b,
        &from_client(43100, 80, "S", b""),
        43100,
        80,
        t,
    );
    assert_eq!((v, st), (Verdict::Tx(1), Some(TcpState::SynRecv)));
    assert_eq!(hits(&a), (0, 0, 1));
}

/// With `[ha] sync` the established path makes no lookup (each packet may
/// report the connection): the transition path looks the segment up
/// itself, forwards the handshake's ACK, the data and the FIN, and hands
/// the SYN's miss to the new-flow path, exactly as the full path (bytes,
/// states, server and worker counters, the sync reports among them).
#[test]
fn with_sync_the_transition_path_looks_up_itself_exactly_as_the_full_path() {
    let (mut a, mut b) = (Director::new(), Director::new());
    for d in [&mut a, &mut b] {
        d.shared
            .ha
            .sync
            .store(true, std::sync::atomic::Ordering::Release);
        d.w.ha_poll(&d.snap, 0);
    }
    let hits = |d: &Director| {
        (
            d.w.transition_hits(),
            d.w.established_hits(),
            d.w.new_flow_hits(),
        )
    };
    use TcpState::{Established, FinWait, SynRecv};
    let steps = [
        ("S", SynRecv, (0, 0, 1)),
        ("A", Established, (1, 0, 1)),
        ("PA", Established, (2, 0, 1)),
        ("FA", FinWait, (3, 0, 1)),
    ];
    for (t, (flags, state, h)) in (10..).zip(steps) {
        let payload: &[u8] = if flags == "PA" { b"hello" } else { b"" };
        let seg = from_client(44000, 81, flags, payload);
        let (v, st) = both(&mut a, &mut b, &seg, 44000, 81, t);
        assert_eq!((v, st), (Verdict::Tx(1), Some(state)), "{flags}");
        assert_eq!(
            hits(&a),
            h,
            "{flags}: (transition, established, new-flow) hits"
        );
    }
    // Active after the ACK, inactive after the FIN: one connection (DR).
    assert_eq!(a.server(1)[..3], [0, 1, 1]);
}

/// The active/inactive move of the transition path goes through the
/// server's entry of the fast path (`dest_fast.rs`): for a server without
/// an upper threshold straight to its counters, clearing an overload flag
/// a worker on an older snapshot left set; for one with a threshold
/// through the snapshot's server, which recomputes the flag. Either way
/// the counts and the flag are the full path's.
#[test]
fn the_active_inactive_move_keeps_counts_and_overload_flag_as_the_full_path() {
    let overloaded = |d: &Director, svc: usize| {
        d.snap.services[svc].servers[0]
            .shared
            .overloaded
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    // No threshold (DR on 81), the flag found set: the FIN's move clears it.
    let (mut a, mut b) = (Director::new(), Director::new());
    let mut t = 10;
    for (flags, state) in [("S", TcpState::SynRecv), ("A", TcpState::Established)] {
        let (v, st) = both(
            &mut a,
            &mut b,
            &from_client(45000, 81, flags, b""),
            45000,
            81,
            t,
        );
        assert_eq!((v, st), (Verdict::Tx(1), Some(state)), "{flags}");
        t += 1;
    }
    for d in [&a, &b] {
        d.snap.services[1].servers[0]
            .shared
            .overloaded
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let (v, st) = both(
        &mut a,
        &mut b,
        &from_client(45000, 81, "FA", b""),
        45000,
        81,
        t,
    );
    assert_eq!((v, st), (Verdict::Tx(1), Some(TcpState::FinWait)));
    assert_eq!(a.w.transition_hits(), 2);
    assert_eq!(a.server(1)[..3], [0, 1, 1]);
    assert!(!overloaded(&a, 1) && !overloaded(&b, 1));

    // An upper threshold of 2 (NAT on 80): two connections set the flag,
    // their FINs move them to inactive and leave it set (still 2), on the
    // transition path as on the full path.
    let cfg = CFG.replacen(
        "  port = 8080\n",
        "  port = 8080\n  upper_threshold = 2\n  lower_threshold = 1\n",
        1,
    );
    assert_ne!(cfg, CFG);
    let (mut a, mut b) = (Director::with(&cfg), Director::with(&cfg));
    for cport in [45100, 45101] {
        both(
            &mut a,
            &mut b,
            &from_client(cport, 80, "S", b""),
            cport,
            80,
            t,
        );
        both(
            &mut a,
            &mut b,
            &from_client(cport, 80, "A", b""),
            cport,
            80,
            t,
        );
    }
    assert_eq!(a.server(0)[..3], [2, 0, 2]);
    assert!(overloaded(&a, 0) && overloaded(&b, 0));
    for cport in [45100, 45101] {
        let (v, st) = both(
            &mut a,
            &mut b,
            &from_client(cport, 80, "FA", b""),
            cport,
            80,
            t,
        );
        // (NAT without a reply seen: the input-only table's state.)
        assert_eq!((v, st), (Verdict::Tx(1), Some(TcpState::CloseWait)));
    }
    assert_eq!(a.w.transition_hits(), 4);
    assert_eq!(a.server(0)[..3], [0, 2, 2]);
    assert!(overloaded(&a, 0) && overloaded(&b, 0));
    // A third SYN finds the server overloaded: refused on both.
    let (v, st) = both(
        &mut a,
        &mut b,
        &from_client(45102, 80, "S", b""),
        45102,
        80,
        t,
    );
    assert_eq!((v, st), (Verdict::Drop, None));
}

/// The flow key of `frame`, as the full parser reads it.
fn parse_key(frame: &[u8]) -> FlowKey {
    let p = parse_frame_full(frame).expect("parses");
    FlowKey::new(p.protocol, p.src, p.src_port, p.dst, p.dst_port)
}

/// `burst` with the caller's `Inspected` array, reused from one burst to
/// the next as `worker.rs` reuses its own: `inspect_into` leaves a fast
/// frame's `hint` as the last burst left it, and `prefetch_conns` must
/// write it for every frame with a hash. Each frame's hint is checked
/// against the one a fresh `Inspected` gets.
fn burst_reusing(
    d: &mut Director,
    insp: &mut [Inspected],
    segs: &[Segment],
    now: u64,
) -> Vec<(Verdict, Vec<u8>)> {
    let insp = &mut insp[..segs.len()];
    for ((_, frame), x) in segs.iter().zip(insp.iter_mut()) {
        d.w.inspect_into(frame, x);
    }
    d.w.prefetch_conns(insp);
    for ((_, frame), x) in segs.iter().zip(insp.iter()) {
        let mut fresh = [Inspected::EMPTY];
        d.w.inspect_into(frame, &mut fresh[0]);
        d.w.prefetch_conns(&mut fresh);
        assert_eq!(x.hint, fresh[0].hint, "the second pass's hint");
        assert_eq!(x.hash, fresh[0].hash);
        // A tracked flow's frame names its record, an untracked one's
        // none (whatever the array held before).
        let tracked = d.w.conns.lookup(&parse_key(frame), now).is_some();
        assert_eq!(x.hint != Hint::NONE, tracked, "hint of a tracked flow");
    }
    // The burst's frames are of different connections: different hints.
    for (i, x) in insp.iter().enumerate() {
        for y in &insp[i + 1..] {
            assert!(x.hint == Hint::NONE || x.hint != y.hint);
        }
    }
    let mut out = Vec::new();
    for ((port, frame), x) in segs.iter().zip(insp.iter()) {
        let mut f = VecFrame::new(frame);
        let v = d.w.process_inspected(&d.snap, &mut f, x, *port, now, false);
        out.push((v, f.to_vec()));
    }
    d.w.flush_counts(&d.snap);
    out
}

#[test]
fn segments_in_separate_bursts_with_a_reused_first_pass_array_match_the_full_path() {
    // Each connection's segments an RTT apart (one burst per kind), in an
    // order that changes from burst to burst, so that every slot of the
    // reused array holds another connection's hint (or none) from the
    // burst before: the second pass replaces it, and each path forwards
    // exactly as the full path.
    let (mut a, mut b) = (Director::new(), Director::new());
    both(
        &mut a,
        &mut b,
        &from_client(44000, 80, "S", b""),
        44000,
        80,
        5,
    );
    let t = 10;
    let conns = [(44001, 80), (44002, 81), (44003, 80)];
    let mut insp = vec![Inspected::EMPTY; 8];
    let (es0, tr0, nf0) = (
        a.w.established_hits(),
        a.w.transition_hits(),
        a.w.new_flow_hits(),
    );
    let rounds: [(&str, &[u8], [usize; 3]); 4] = [
        ("S", b"", [0, 1, 2]),
        ("A", b"", [2, 0, 1]),
        ("PA", b"data", [1, 2, 0]),
        ("FA", b"", [0, 2, 1]),
    ];
    for (n, (flags, payload, order)) in rounds.iter().enumerate() {
        let segs: Vec<_> = order
            .iter()
            .map(|&c| from_client(conns[c].0, conns[c].1, flags, payload))
            .collect();
        let now = t + n as u64;
        let got = burst_reusing(&mut a, &mut insp, &segs, now);
        for (i, (g, (port, frame))) in got.iter().zip(&segs).enumerate() {
            let w = b.run_full(*port, frame, now);
            assert_eq!(*g, w, "round {flags}, segment {i}: verdict and bytes out");
            assert!(matches!(g.0, Verdict::Tx(_)), "{flags} {i}: {:?}", g.0);
        }
        for &(cport, vport) in &conns {
            assert_eq!(
                a.state(cport, vport, now),
                b.state(cport, vport, now),
                "{flags} {cport}: TCP state"
            );
        }
        for svc in 0..2 {
            assert_eq!(a.server(svc), b.server(svc), "{flags}: service {svc}");
        }
        assert_eq!(a.stats(), b.stats(), "{flags}: worker counters");
    }
    // The client's FIN: NAT's input table, DR's input-only one.
    for &(cport, vport) in &conns {
        let want = if vport == 80 {
            TcpState::CloseWait
        } else {
            TcpState::FinWait
        };
        assert_eq!(a.state(cport, vport, t + 3), Some(want), "{cport}");
    }
    // Which path took each frame: the SYNs the new-flow path, the data
    // the established path, the ACKs and FINs the transition path.
    assert_eq!(a.w.new_flow_hits() - nf0, 3);
    assert_eq!(a.w.established_hits() - es0, 3);
    assert_eq!(a.w.transition_hits() - tr0, 6);
    // Active/inactive: the three closing connections are inactive, the
    // warm-up's SYN_RECV active.
    assert_eq!(a.server(0)[..2], [1, 2]);
    assert_eq!(a.server(1)[..2], [0, 1]);
}

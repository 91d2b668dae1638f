//! The IPv6 transition and new-flow paths (`pipeline/transition6.rs`)
//! checked against the full path, as `pipeline_transition` checks IPv4's:
//! two directors with the same configuration get the same frames; one runs
//! the worker's passes over a burst (first pass, prefetch pass, established
//! path, transition/new-flow paths), the other is forced onto the full path
//! (an `Inspected` of the full parser, as for a frame of another shape).
//! Whole connections in one burst (SYN, ACK, data, FIN each, as `rvs-perf
//! pipeline --conns` sends them) must leave exactly the same verdicts,
//! bytes, TCP states, per-server counters and worker counters, and the
//! SYNs must have been opened by the new-flow path, the ACKs and FINs
//! forwarded by the transition path. The bytes are also checked against
//! etherparse's own build of the expected frame.
#![cfg(feature = "dpdk")]

use std::net::Ipv6Addr;

use engine::dataplane::counters::{Drop, StatsReport};
use engine::dataplane::pipeline::{Inspected, VecFrame, Verdict};
use engine::packet::ethernet::MacAddr;
use engine::packet::parse_frame_full;
use etherparse::PacketBuilder;

mod v6_common;
use v6_common::{tcp6, Rig, CLIENT, CLIENT_MAC};

const PORT0_MAC: [u8; 6] = v6_common::PORT0_MAC.0;
const PORT1_MAC: [u8; 6] = v6_common::PORT1_MAC.0;
const RS_MAC: [u8; 6] = [2, 0x5e, 0, 0, 0, 0x11];
/// A client the director has not seen: its address has no id in the first
/// pass, so even its data is resolved again (`transition6`).
const CLIENT2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x20);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x100);
const RS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x11);

/// NAT on 80/tcp (server port 8080), DR on 81/tcp, TUN on 82/tcp, NAT on
/// 53/udp (5353): one server each.
const CFG: &str = r#"
[dpdk]
cores = "0@0,1@1"
workers = 1

[[port]]
name = "client"
device = "net_af_packet0,iface=dc"
address = ["198.18.0.2/24", "2001:db8:0:1::2/64"]

[[port]]
name = "servers"
device = "net_af_packet1,iface=ds"
address = ["198.19.0.1/24", "2001:db8:0:2::1/64"]
exception_path = false

[[service]]
vip = "2001:db8:0:1::100"
port = 80
scheduler = "wlc"
  [[service.server]]
  address = "2001:db8:0:2::11"
  port = 8080

[[service]]
vip = "2001:db8:0:1::100"
port = 81
forward = "dr"
  [[service.server]]
  address = "2001:db8:0:2::11"

[[service]]
vip = "2001:db8:0:1::100"
port = 82
forward = "tun"
  [[service.server]]
  address = "2001:db8:0:2::11"

[[service]]
vip = "2001:db8:0:1::100"
port = 53
protocol = "udp"
  [[service.server]]
  address = "2001:db8:0:2::11"
  port = 5353
"#;

/// One director: the server's MAC learned from its advertisement, the
/// client's from an earlier packet.
fn director() -> Rig {
    let r = Rig::with(CFG, &[(RS, RS_MAC)]);
    r.shared.neigh6.learn(CLIENT, MacAddr(CLIENT_MAC), 1_000);
    r
}

impl Rig {
    /// The full path only: the full parser's summary, not the fast shape.
    fn run_full(&mut self, port: usize, frame: &[u8], now: u64) -> (Verdict, Vec<u8>) {
        let i = Inspected {
            parsed: Ok(parse_frame_full(frame).expect("parses")),
            ..Inspected::EMPTY
        };
        let snap = self.snap();
        let mut f = VecFrame::new(frame);
        let v = self
            .w
            .process_inspected(&snap, &mut f, &i, port, now, false);
        self.w.flush_counts(&snap);
        (v, f.to_vec())
    }

    /// The worker's passes over one burst (`inspect_into`, then
    /// `prefetch_conns`, then `process_inspected` for each frame), as
    /// `worker.rs` and `rvs-perf pipeline` run them, then a flush of the
    /// per-server counts (the worker's `end_burst`: once a millisecond).
    fn burst(&mut self, segs: &[(usize, Vec<u8>)], now: u64) -> Vec<(Verdict, Vec<u8>)> {
        let mut insp = vec![Inspected::EMPTY; segs.len()];
        for ((_, frame), x) in segs.iter().zip(insp.iter_mut()) {
            self.w.inspect_into(frame, x);
            assert!(x.fast6, "the common IPv6 shape");
        }
        self.w.prefetch_conns(&mut insp);
        let snap = self.snap();
        let mut out = Vec::new();
        for ((port, frame), x) in segs.iter().zip(&insp) {
            let mut f = VecFrame::new(frame);
            let v = self
                .w
                .process_inspected(&snap, &mut f, x, *port, now, false);
            out.push((v, f.to_vec()));
        }
        self.w.flush_counts(&snap);
        out
    }

    /// Every counter of every server (by registry order): connections,
    /// active, inactive, packets and bytes each way.
    fn servers(&self) -> Vec<[u64; 7]> {
        self.shared
            .registry
            .entries()
            .into_iter()
            .map(|e| {
                let d = e.3;
                [
                    d.total(|c| &c.conns),
                    d.total(|c| &c.active),
                    d.total(|c| &c.inactive),
                    d.total(|c| &c.in_packets),
                    d.total(|c| &c.out_packets),
                    d.total(|c| &c.in_bytes),
                    d.total(|c| &c.out_bytes),
                ]
            })
            .collect()
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::to_value(StatsReport::sum([&*self.shared.worker_stats[0]])).unwrap()
    }
}

fn from_client(cport: u16, vport: u16, flags: &str, payload: &[u8]) -> (usize, Vec<u8>) {
    from(CLIENT, cport, vport, flags, payload)
}

fn from(client: Ipv6Addr, cport: u16, vport: u16, flags: &str, payload: &[u8]) -> (usize, Vec<u8>) {
    let f = tcp6(
        (CLIENT_MAC, PORT0_MAC),
        client,
        cport,
        VIP6,
        vport,
        64,
        flags,
        payload,
    );
    (0, f)
}

fn from_server(sport: u16, cport: u16, flags: &str, payload: &[u8]) -> (usize, Vec<u8>) {
    let f = tcp6(
        (RS_MAC, PORT1_MAC),
        RS,
        sport,
        CLIENT,
        cport,
        64,
        flags,
        payload,
    );
    (1, f)
}

fn udp6(cport: u16, payload: &[u8]) -> (usize, Vec<u8>) {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv6(CLIENT.octets(), VIP6.octets(), 64)
        .udp(cport, 53)
        .write(&mut v, payload)
        .unwrap();
    (0, v)
}

/// Runs `segs` as one burst on `a` and one by one on the full path of `b`;
/// asserts every frame leaves both the same way, and the counters agree.
fn same(a: &mut Rig, b: &mut Rig, segs: &[(usize, Vec<u8>)], now: u64) -> Vec<(Verdict, Vec<u8>)> {
    let got = a.burst(segs, now);
    let want: Vec<_> = segs
        .iter()
        .map(|(port, frame)| b.run_full(*port, frame, now))
        .collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "frame {i}: verdict and bytes out");
    }
    assert_eq!(a.servers(), b.servers(), "server counters");
    assert_eq!(a.stats(), b.stats(), "worker counters");
    assert_eq!(a.w.conns6_len(), b.w.conns6_len(), "IPv6 connections");
    got
}

#[test]
fn whole_ipv6_connections_in_one_burst_match_the_full_path() {
    let (mut a, mut b) = (director(), director());
    // A first connection with the server's SYN-ACK, frame by frame: the
    // full path resolves (and caches) the server's and the client's next
    // hops on both.
    for s in [
        from_client(41000, 80, "S", b""),
        from_server(8080, 41000, "SA", b""),
        from_client(41000, 80, "A", b""),
    ] {
        same(&mut a, &mut b, std::slice::from_ref(&s), 2_005);
    }
    let (tr0, nf0) = (a.w.transition_hits(), a.w.new_flow_hits());
    let mut segs = Vec::new();
    let conns = [
        (CLIENT, 41001, 80),
        (CLIENT, 41002, 81),
        (CLIENT2, 41003, 80),
        (CLIENT2, 41004, 81),
    ];
    for (client, cport, vport) in conns {
        for (flags, payload) in [("S", &b""[..]), ("A", b""), ("PA", b"data"), ("FA", b"")] {
            segs.push(from(client, cport, vport, flags, payload));
        }
    }
    // The server's FIN of the first connection, the client's last ACK,
    // and a UDP flow's first datagrams.
    segs.push(from_server(8080, 41000, "FA", b""));
    segs.push(from_client(41000, 80, "A", b""));
    segs.push(udp6(5000, b"query"));
    segs.push(udp6(5000, b"again"));
    same(&mut a, &mut b, &segs, 2_010);
    // Four SYNs and the UDP flow opened on the new-flow path; the ACKs and
    // FINs (the server's and the client's after it too) forwarded by the
    // transition path.
    assert_eq!(a.w.new_flow_hits() - nf0, 5);
    assert_eq!(a.w.transition_hits() - tr0, 10);
    // The bytes as etherparse builds them: NAT to the server's port, DR
    // to the VIP unchanged, hop limit 63, the next hops' MACs.
    let out = a.burst(&[from_client(41005, 80, "S", b"")], 2_011);
    let want = tcp6((PORT1_MAC, RS_MAC), CLIENT, 41005, RS, 8080, 63, "S", b"");
    assert_eq!(out, vec![(Verdict::Tx(1), want)]);
    let out = a.burst(&[from_client(41005, 80, "FA", b"")], 2_012);
    let want = tcp6((PORT1_MAC, RS_MAC), CLIENT, 41005, RS, 8080, 63, "FA", b"");
    assert_eq!(out, vec![(Verdict::Tx(1), want)]);
    let out = a.burst(&[from_client(41006, 81, "S", b"")], 2_013);
    let want = tcp6((PORT1_MAC, RS_MAC), CLIENT, 41006, VIP6, 81, 63, "S", b"");
    assert_eq!(out, vec![(Verdict::Tx(1), want)]);
    let out = a.burst(&[from_server(8080, 41005, "A", b"")], 2_014);
    let want = tcp6(
        (PORT0_MAC, CLIENT_MAC),
        VIP6,
        80,
        CLIENT,
        41005,
        63,
        "A",
        b"",
    );
    assert_eq!(out, vec![(Verdict::Tx(0), want)]);
    assert_eq!(a.w.new_flow_hits() - nf0, 7);
    assert_eq!(a.w.transition_hits() - tr0, 12);
}

#[test]
fn what_the_new_paths_leave_the_full_path_decides_as_before() {
    let (mut a, mut b) = (director(), director());
    same(&mut a, &mut b, &[from_client(42000, 80, "S", b"")], 2_005);
    let (tr0, nf0) = (a.w.transition_hits(), a.w.new_flow_hits());
    let segs = [
        // TUN: opened by the new-flow path, encapsulated by `inbound6`;
        // its ACK is the full path's.
        from_client(42001, 82, "S", b""),
        from_client(42001, 82, "A", b""),
        // No service on the port; an ACK of no connection; SYN+ACK.
        from_client(42002, 83, "S", b""),
        from_client(42003, 80, "A", b""),
        from_client(42004, 80, "SA", b""),
        // A server's segment of no connection.
        from_server(8080, 42005, "A", b""),
        // RST of the NAT connection: a transition.
        from_client(42000, 80, "R", b""),
    ];
    same(&mut a, &mut b, &segs, 2_010);
    assert_eq!(a.w.new_flow_hits() - nf0, 1);
    assert_eq!(a.w.transition_hits() - tr0, 1);
    // A hop limit of 1: the full path's time-exceeded.
    let mut syn = from_client(42006, 80, "S", b"");
    syn.1[21] = 1;
    same(&mut a, &mut b, &[syn], 2_020);
    assert_eq!(a.w.new_flow_hits() - nf0, 1);
}

/// New clients' connections interleaved in one burst (each SYN before the
/// other's ACK, so the flow the new-flow path opened last is not the
/// frame's for half of them: its ids come from the id table) and a new
/// client's UDP flows (a datagram after its flow's first takes the
/// established path on the one lookup): the same verdicts, bytes and
/// counters as the full path. Each new client's MAC is learned from its
/// first packet; an existing client's fresh entry is kept whatever MAC a
/// new connection of it comes from.
#[test]
fn interleaved_new_clients_in_one_burst_match_the_full_path() {
    let (mut a, mut b) = (director(), director());
    same(&mut a, &mut b, &[from_client(43000, 80, "S", b"")], 2_005);
    let hits = |r: &Rig| {
        (
            r.w.established_hits(),
            r.w.transition_hits(),
            r.w.new_flow_hits(),
        )
    };
    let (es0, tr0, nf0) = hits(&a);
    let client = |n: u16| Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, n);
    let (c3, c4, c5) = (client(0x30), client(0x40), client(0x50));
    let (m3, m4, m5) = (
        [2, 0x33, 0, 0, 0, 3],
        [2, 0x44, 0, 0, 0, 4],
        [2, 0x55, 0, 0, 0, 5],
    );
    let tcp = |c: Ipv6Addr, m: [u8; 6], cport: u16, flags: &str, payload: &[u8]| {
        (
            0,
            tcp6((m, PORT0_MAC), c, cport, VIP6, 80, 64, flags, payload),
        )
    };
    let udp = |cport: u16, payload: &[u8]| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(m5, PORT0_MAC)
            .ipv6(c5.octets(), VIP6.octets(), 64)
            .udp(cport, 53)
            .write(&mut v, payload)
            .unwrap();
        (0, v)
    };
    let segs = [
        tcp(c3, m3, 43001, "S", b""),
        tcp(c4, m4, 43002, "S", b""),
        tcp(c3, m3, 43001, "A", b""),
        tcp(c4, m4, 43002, "A", b""),
        tcp(c3, m3, 43001, "PA", b"data"),
        tcp(c4, m4, 43002, "PA", b"more"),
        tcp(c3, m3, 43001, "FA", b""),
        tcp(c4, m4, 43002, "FA", b""),
        udp(5001, b"q1"),
        udp(5001, b"q2"),
        udp(5002, b"x"),
        udp(5001, b"q3"),
        // The known client from another MAC: its fresh entry stays.
        tcp(CLIENT, m4, 43003, "S", b""),
    ];
    let got = same(&mut a, &mut b, &segs, 2_010);
    let (es, tr, nf) = hits(&a);
    // Two SYNs, two UDP flows, the known client's SYN opened; the ACKs
    // and FINs transitions; the data and the later datagrams established.
    assert_eq!((es - es0, tr - tr0, nf - nf0), (4, 4, 5));
    // The bytes as etherparse builds them: NAT to the server's port, hop
    // limit 63, the server's MAC.
    let want = tcp6((PORT1_MAC, RS_MAC), c3, 43001, RS, 8080, 63, "PA", b"data");
    assert_eq!(got[4], (Verdict::Tx(1), want));
    let mut want = Vec::new();
    PacketBuilder::ethernet2(PORT1_MAC, RS_MAC)
        .ipv6(c5.octets(), RS.octets(), 63)
        .udp(5001, 5353)
        .write(&mut want, b"q3")
        .unwrap();
    assert_eq!(got[11], (Verdict::Tx(1), want));
    for (ip, mac) in [(c3, m3), (c4, m4), (c5, m5), (CLIENT, CLIENT_MAC)] {
        for r in [&a, &b] {
            assert_eq!(r.shared.neigh6.peek(ip, 2_010), Some(MacAddr(mac)), "{ip}");
        }
    }
}

/// The hits of the three fast paths: (established, transition, new-flow).
fn hits(r: &Rig) -> (u64, u64, u64) {
    (
        r.w.established_hits(),
        r.w.transition_hits(),
        r.w.new_flow_hits(),
    )
}

/// Connections with their segments apart, as `rvs-perf pipeline
/// --segments apart` sends them (the SYNs in one burst, then their ACKs,
/// their data, their FINs; the server's replies in between): the first
/// pass resolves the ids of every segment after the SYN, so the
/// established path looks each one up, forwards the data and hands the
/// ACKs and FINs (and the server's) it found to the transition path's
/// commit (`moves6`), with no lookup of its own. The same verdicts, bytes
/// and counters as the full path, and the bytes as etherparse builds them.
#[test]
fn segments_apart_are_looked_up_once_and_match_the_full_path() {
    let (mut a, mut b) = (director(), director());
    let conns = [
        (CLIENT, 46001, 80),
        (CLIENT, 46002, 81),
        (CLIENT2, 46003, 80),
    ];
    let burst = |flags: &str, payload: &[u8]| -> Vec<(usize, Vec<u8>)> {
        conns
            .iter()
            .map(|&(c, cport, vport)| from(c, cport, vport, flags, payload))
            .collect()
    };
    let h0 = hits(&a);
    same(&mut a, &mut b, &burst("S", b""), 3_000);
    assert_eq!(hits(&a), (h0.0, h0.1, h0.2 + 3), "SYNs: new-flow path");
    let acks = same(&mut a, &mut b, &burst("A", b""), 3_001);
    assert_eq!(hits(&a), (h0.0, h0.1 + 3, h0.2 + 3), "ACKs: transition");
    // The server's first segment: the full path's (the client's next hop
    // is not cached yet: it resolves and remembers it).
    let reply = same(
        &mut a,
        &mut b,
        &[from_server(8080, 46001, "PA", b"hi")],
        3_002,
    );
    assert_eq!(
        hits(&a),
        (h0.0, h0.1 + 3, h0.2 + 3),
        "first reply: full path"
    );
    let data = same(&mut a, &mut b, &burst("PA", b"data"), 3_003);
    assert_eq!(
        hits(&a),
        (h0.0 + 3, h0.1 + 3, h0.2 + 3),
        "data: established"
    );
    let fins = same(&mut a, &mut b, &burst("FA", b""), 3_004);
    let sfin = same(
        &mut a,
        &mut b,
        &[from_server(8080, 46001, "FA", b"")],
        3_005,
    );
    // The server's FIN too, on the hop its first segment cached.
    assert_eq!(hits(&a), (h0.0 + 3, h0.1 + 7, h0.2 + 3), "FINs: transition");
    // NAT to the server's port, DR to the VIP unchanged, hop limit 63.
    let nat = |flags: &str, payload: &[u8]| {
        tcp6(
            (PORT1_MAC, RS_MAC),
            CLIENT,
            46001,
            RS,
            8080,
            63,
            flags,
            payload,
        )
    };
    let dr = tcp6((PORT1_MAC, RS_MAC), CLIENT, 46002, VIP6, 81, 63, "FA", b"");
    assert_eq!(acks[0], (Verdict::Tx(1), nat("A", b"")));
    assert_eq!(data[0], (Verdict::Tx(1), nat("PA", b"data")));
    assert_eq!(fins[0], (Verdict::Tx(1), nat("FA", b"")));
    assert_eq!(fins[1], (Verdict::Tx(1), dr));
    let back = |flags: &str, payload: &[u8]| {
        let f = tcp6(
            (PORT0_MAC, CLIENT_MAC),
            VIP6,
            80,
            CLIENT,
            46001,
            63,
            flags,
            payload,
        );
        vec![(Verdict::Tx(0), f)]
    };
    assert_eq!(reply, back("PA", b"hi"));
    assert_eq!(sfin, back("FA", b""));
    // Active after the ACKs, inactive after the FINs (three connections).
    let s = a.servers();
    assert_eq!(s.iter().map(|c| c[0]).sum::<u64>(), 3);
    assert_eq!(s.iter().map(|c| c[1]).sum::<u64>(), 0);
}

/// A new client's SYN: its address has no id, so the first pass hashes no
/// flow, and the dispatch's call for such a frame (`unresolved6`) resolves
/// it again and, finding no id, sends it straight to the new-flow path.
/// Opened there (NAT, DR) with the full path's bytes and counters. A SYN
/// that must not open a connection is the full path's exactly as before
/// (verdict, bytes, server and worker counters), counted by no fast path:
/// to a port with no service, a SYN+ACK, a hop limit of 1, to another MAC,
/// a flow RSS gives another worker (handed over), and any SYN on an `[ha]`
/// backup.
#[test]
fn a_new_clients_syn_opens_on_the_new_flow_path_or_is_the_full_paths_as_before() {
    let client = |n: u16| Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x600 + n);
    let (mut a, mut b) = (director(), director());
    let h0 = hits(&a);
    let nat = same(
        &mut a,
        &mut b,
        &[from(client(1), 44001, 80, "S", b"")],
        3_000,
    );
    let want = tcp6(
        (PORT1_MAC, RS_MAC),
        client(1),
        44001,
        RS,
        8080,
        63,
        "S",
        b"",
    );
    assert_eq!(nat, vec![(Verdict::Tx(1), want)]);
    let dr = same(
        &mut a,
        &mut b,
        &[from(client(2), 44002, 81, "S", b"")],
        3_000,
    );
    let want = tcp6(
        (PORT1_MAC, RS_MAC),
        client(2),
        44002,
        VIP6,
        81,
        63,
        "S",
        b"",
    );
    assert_eq!(dr, vec![(Verdict::Tx(1), want)]);
    assert_eq!(
        hits(&a),
        (h0.0, h0.1, h0.2 + 2),
        "opened by the new-flow path"
    );
    assert_eq!(a.w.conns6_len(), 2);

    let mut low = from(client(5), 44005, 80, "S", b"");
    low.1[21] = 1;
    let mut elsewhere = from(client(6), 44006, 80, "S", b"");
    elsewhere.1[5] ^= 0x10;
    let no_service = a.drops(Drop::NoService);
    for (what, seg, verdict) in [
        (
            "no service",
            from(client(3), 44003, 83, "S", b""),
            Verdict::Drop,
        ),
        (
            "SYN+ACK",
            from(client(4), 44004, 80, "SA", b""),
            Verdict::Drop,
        ),
        ("hop limit 1", low, Verdict::Tx(0)),
        ("another MAC", elsewhere, Verdict::Drop),
    ] {
        let got = same(&mut a, &mut b, &[seg], 3_001);
        assert_eq!(got[0].0, verdict, "{what}");
        assert_eq!(
            hits(&a),
            (h0.0, h0.1, h0.2 + 2),
            "{what}: no path counts it"
        );
    }
    assert_eq!(a.drops(Drop::NoService) - no_service, 1);
    assert_eq!(a.w.conns6_len(), 2);

    // Two workers: the flows RSS gives worker 1 are handed over (by the
    // client), the others opened here.
    let two = || {
        let r = Rig::with_workers(CFG, &[(RS, RS_MAC)], 2);
        r.shared.neigh6.learn(CLIENT, MacAddr(CLIENT_MAC), 1_000);
        r
    };
    let (mut a, mut b) = (two(), two());
    let h0 = hits(&a);
    let (mut opened, mut handed) = (0, 0);
    for n in 0..16 {
        let got = same(
            &mut a,
            &mut b,
            &[from(client(0x10 + n), 44100 + n, 80, "S", b"")],
            3_002,
        );
        match got[0].0 {
            Verdict::Tx(1) => opened += 1,
            Verdict::Handoff(1) => handed += 1,
            v => panic!("SYN {n}: {v:?}"),
        }
    }
    assert!(
        opened > 0 && handed > 0,
        "opened {opened}, handed over {handed}"
    );
    assert_eq!(hits(&a), (h0.0, h0.1, h0.2 + opened));
    assert_eq!(a.w.conns6_len(), opened as usize);

    // A backup opens nothing: every SYN is the full path's.
    let (mut a, mut b) = (director(), director());
    for r in [&mut a, &mut b] {
        r.shared.ha.set_master(false);
        let snap = r.snap();
        r.w.ha_poll(&snap, 0);
    }
    let h0 = hits(&a);
    for (n, vport) in [(0x20, 80), (0x21, 81)] {
        let got = same(
            &mut a,
            &mut b,
            &[from(client(n), 44200 + n, vport, "S", b"")],
            3_003,
        );
        assert_ne!(got[0].0, Verdict::Tx(1), "backup, to {vport}");
    }
    assert_eq!(hits(&a), h0, "backup: no path counts it");
    assert_eq!(a.w.conns6_len(), 0);
}

/// The established path looks up every segment whose ids the first pass
/// resolved, whatever its flags: a miss goes to the new-flow path, which
/// takes only a plain SYN (or a UDP datagram). An ACK, a FIN, an RST, data
/// or a SYN+ACK no connection holds is the full path's, as before: the
/// same verdict, bytes and counters, and no path counts it.
#[test]
fn a_segment_no_connection_holds_other_than_a_syn_is_left_to_the_full_path() {
    let (mut a, mut b) = (director(), director());
    // A connection of the client: its address and the VIP have ids, so
    // the first pass hashes the other segments' flows.
    same(&mut a, &mut b, &[from_client(47000, 80, "S", b"")], 3_000);
    let h0 = hits(&a);
    let drops0 = a.drops(engine::dataplane::counters::Drop::NoConnection);
    for (i, flags) in ["A", "FA", "R", "PA", "SA"].into_iter().enumerate() {
        let cport = 47001 + i as u16;
        let payload: &[u8] = if flags == "PA" { b"x" } else { b"" };
        let got = same(
            &mut a,
            &mut b,
            &[from_client(cport, 80, flags, payload)],
            3_001,
        );
        assert_eq!(got[0].0, Verdict::Drop, "{flags}");
        assert_eq!(hits(&a), h0, "{flags}: no path counts it");
    }
    let drops = a.drops(engine::dataplane::counters::Drop::NoConnection);
    assert_eq!(drops - drops0, 5);
    // A plain SYN after them opens on the new-flow path.
    let got = same(&mut a, &mut b, &[from_client(47100, 80, "S", b"")], 3_002);
    assert_eq!(got[0].0, Verdict::Tx(1));
    assert_eq!(hits(&a), (h0.0, h0.1, h0.2 + 1));
}

/// With `[ha] sync` the established path makes no lookup (each packet may
/// report the connection): the transition path looks every segment up
/// itself, opens the SYN on the new-flow path and forwards the ACK, the
/// data and the FIN, exactly as the full path (bytes, states, server and
/// worker counters, and the connections reported to the HA thread).
#[test]
fn with_sync_the_transition_path_looks_up_itself_exactly_as_the_full_path() {
    let (mut a, mut b) = (director(), director());
    for r in [&mut a, &mut b] {
        r.shared
            .ha
            .sync
            .store(true, std::sync::atomic::Ordering::Release);
        let snap = r.snap();
        r.w.ha_poll(&snap, 0);
    }
    let reported = |r: &Rig| {
        let mut v = Vec::new();
        while let Some(x) = r.shared.ha.out[0].pop() {
            v.push(x);
        }
        v
    };
    let h0 = hits(&a);
    let steps = [
        ("S", &b""[..], (0, 0, 1)),
        ("A", b"", (0, 1, 1)),
        ("PA", b"hello", (0, 2, 1)),
        ("FA", b"", (0, 3, 1)),
    ];
    let mut sent = 0;
    for (t, (flags, payload, h)) in (3_000..).zip(steps) {
        for vport in [80, 81] {
            let got = same(
                &mut a,
                &mut b,
                &[from_client(48000, vport, flags, payload)],
                t,
            );
            assert_eq!(got[0].0, Verdict::Tx(1), "{flags} to {vport}");
        }
        let h = (h0.0 + 2 * h.0, h0.1 + 2 * h.1, h0.2 + 2 * h.2);
        assert_eq!(hits(&a), h, "{flags}: (established, transition, new-flow)");
        let (ra, rb) = (reported(&a), reported(&b));
        assert_eq!(ra, rb, "{flags}: the sync reports");
        sent += ra.len();
    }
    // Each opening and each state change at least (SYN, ACK, FIN).
    assert!(sent >= 6, "reported: {sent}");
}

/// The active/inactive move of the transition path goes through the
/// server's entry (`dest_fast6.rs`): for a server without an upper
/// threshold straight to its counters, clearing an overload flag a worker
/// on an older snapshot left set; for one with a threshold through the
/// snapshot's server, which recomputes the flag. Either way the counts and
/// the flag are the full path's.
#[test]
fn the_active_inactive_move_keeps_counts_and_overload_flag_as_the_full_path() {
    let flag = |r: &Rig, svc: usize| {
        r.snap().services6[svc].servers[0]
            .shared
            .overloaded
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let load = |r: &Rig, svc: usize| {
        let d = r.snap().services6[svc].servers[0].shared.clone();
        [
            d.total(|c| &c.conns),
            d.total(|c| &c.active),
            d.total(|c| &c.inactive),
        ]
    };
    let svc_of = |r: &Rig, vport: u16| {
        r.snap()
            .services6
            .iter()
            .position(|s| s.port == vport)
            .expect("service")
    };
    // No threshold (DR on 81), the flag found set: the FIN's move clears it.
    let (mut a, mut b) = (director(), director());
    let dr = svc_of(&a, 81);
    for (t, flags) in [(3_000, "S"), (3_001, "A")] {
        let got = same(&mut a, &mut b, &[from_client(49000, 81, flags, b"")], t);
        assert_eq!(got[0].0, Verdict::Tx(1), "{flags}");
    }
    for r in [&a, &b] {
        r.snap().services6[dr].servers[0]
            .shared
            .overloaded
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let h0 = hits(&a);
    same(&mut a, &mut b, &[from_client(49000, 81, "FA", b"")], 3_002);
    assert_eq!(hits(&a), (h0.0, h0.1 + 1, h0.2));
    assert_eq!(load(&a, dr), [1, 0, 1]);
    assert!(!flag(&a, dr) && !flag(&b, dr));

    // An upper threshold of 2 (NAT on 80): two connections set the flag,
    // their FINs move them to inactive and leave it set (still 2), on the
    // transition path as on the full path.
    let cfg = CFG.replacen(
        "  port = 8080\n",
        "  port = 8080\n  upper_threshold = 2\n  lower_threshold = 1\n",
        1,
    );
    assert_ne!(cfg, CFG);
    let with = |cfg: &str| {
        let r = Rig::with(cfg, &[(RS, RS_MAC)]);
        r.shared.neigh6.learn(CLIENT, MacAddr(CLIENT_MAC), 1_000);
        r
    };
    let (mut a, mut b) = (with(&cfg), with(&cfg));
    let nat = svc_of(&a, 80);
    for (t, flags) in [(3_000, "S"), (3_001, "A")] {
        let segs = [
            from_client(49100, 80, flags, b""),
            from_client(49101, 80, flags, b""),
        ];
        same(&mut a, &mut b, &segs, t);
    }
    assert_eq!(load(&a, nat), [2, 2, 0]);
    assert!(flag(&a, nat) && flag(&b, nat));
    let h0 = hits(&a);
    let fins = [
        from_client(49100, 80, "FA", b""),
        from_client(49101, 80, "FA", b""),
    ];
    let got = same(&mut a, &mut b, &fins, 3_002);
    assert!(got.iter().all(|(v, _)| *v == Verdict::Tx(1)));
    assert_eq!(hits(&a), (h0.0, h0.1 + 2, h0.2));
    assert_eq!(load(&a, nat), [2, 0, 2]);
    assert!(flag(&a, nat) && flag(&b, nat));
    // A third SYN finds the server overloaded: refused on both.
    let got = same(&mut a, &mut b, &[from_client(49102, 80, "S", b"")], 3_003);
    assert_eq!(got[0].0, Verdict::Drop);
}

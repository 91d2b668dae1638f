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

use engine::dataplane::counters::StatsReport;
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
        self.w.end_burst(&snap);
        (v, f.to_vec())
    }

    /// The worker's passes over one burst (`inspect_into`, then
    /// `prefetch_conns`, then `process_inspected` for each frame) and
    /// `end_burst`, as `worker.rs` and `rvs-perf pipeline` run them.
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
        self.w.end_burst(&snap);
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

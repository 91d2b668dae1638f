//! The worker pipeline driven with byte buffers, GLB style: frames built and
//! checked with etherparse (an independent parser), through ARP, scheduling,
//! NAT both ways, ownership hand-off and counted drops.
#![cfg(feature = "dpdk")]

use std::net::Ipv4Addr;
use std::sync::Arc;

use engine::config;
use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::{Frame, Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];
const RS_MAC: [[u8; 6]; 3] = [
    [2, 0, 0, 1, 0, 11],
    [2, 0, 0, 1, 0, 12],
    [2, 0, 0, 1, 0, 13],
];
const VIP: [u8; 4] = [198, 18, 0, 100];
const CLIENT: [u8; 4] = [198, 18, 0, 10];
const RS: [[u8; 4]; 3] = [[198, 19, 0, 11], [198, 19, 0, 12], [198, 19, 0, 13]];

const CFG: &str = r#"
[dpdk]
cores = "0@0,1@1,2@1"
workers = 2

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
scheduler = "wrr"
forward = "nat"
  [[service.server]]
  address = "198.19.0.11"
  port = 8080
  weight = 3
  [[service.server]]
  address = "198.19.0.12"
  port = 8080
  weight = 2
  [[service.server]]
  address = "198.19.0.13"
  port = 8080
  weight = 1

[[service]]
vip = "198.18.0.100"
port = 53
protocol = "udp"
scheduler = "rr"
  [[service.server]]
  address = "198.19.0.11"
  port = 5353
  [[service.server]]
  address = "198.19.0.12"
  port = 5353
"#;

struct Rig {
    shared: Arc<Shared>,
    snap: Snapshot,
    workers: Vec<Pipeline>,
}

fn rig(workers: usize) -> Rig {
    rig_with(CFG, workers)
}

fn rig_with(text: &str, workers: usize) -> Rig {
    let cfg = config::parse(text).expect("config");
    let ports = vec![
        PortInfo::new(&cfg.ports[0], MacAddr(PORT0_MAC)),
        PortInfo::new(&cfg.ports[1], MacAddr(PORT1_MAC)),
    ];
    let shared = Arc::new(Shared::new(workers));
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).unwrap();
    let workers = (0..workers)
        .map(|w| Pipeline::new(w, workers, 1024, &shared))
        .collect();
    Rig {
        shared,
        snap,
        workers,
    }
}

impl Rig {
    /// Runs a frame through worker `w`, following hand-offs; returns the
    /// verdict and the frame as it left.
    fn run(&mut self, w: usize, port: usize, frame: &[u8], now: u64) -> (Verdict, Vec<u8>) {
        let mut f = VecFrame::new(frame);
        let mut v = self.workers[w].process(&self.snap, &mut f, port, now, false);
        if let Verdict::Handoff(o) = v {
            v = self.workers[o].process(&self.snap, &mut f, port, now, true);
        }
        (v, f.to_vec())
    }

    fn learn_servers(&self) {
        for (ip, mac) in RS.iter().zip(RS_MAC) {
            self.shared
                .neigh
                .learn(Ipv4Addr::from(*ip), MacAddr(mac), 0);
        }
        self.shared
            .neigh
            .learn(Ipv4Addr::from(CLIENT), MacAddr(CLIENT_MAC), 0);
    }

    fn drops(&self, d: Drop) -> u64 {
        self.shared
            .worker_stats
            .iter()
            .map(|s| s.drops[d as usize].get())
            .sum()
    }
}

fn tcp_frame(sport: u16, syn: bool, ack: bool, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, VIP, 64)
        .tcp(sport, 80, 1000, 64240);
    if syn {
        b = b.syn();
    }
    if ack {
        b = b.ack(1);
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn reply_frame(rs: usize, cport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(RS_MAC[rs], PORT1_MAC)
        .ipv4(RS[rs], CLIENT, 64)
        .tcp(8080, cport, 5000, 64240)
        .syn()
        .ack(1001)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// Checks every checksum with etherparse and returns (src, dst, sport,
/// dport, ttl, eth dst, eth src, payload).
/// (src, dst, sport, dport, ttl, eth dst, eth src, payload)
type Decoded = ([u8; 4], [u8; 4], u16, u16, u8, [u8; 6], [u8; 6], Vec<u8>);

fn decode(frame: &[u8]) -> Decoded {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse");
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else {
        panic!("no eth")
    };
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("no ipv4")
    };
    let h = ip.header().to_header();
    assert_eq!(
        h.calc_header_checksum(),
        h.header_checksum,
        "IPv4 header checksum"
    );
    let (sport, dport, payload) = match p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
            assert_eq!(want, t.checksum(), "TCP checksum");
            (t.source_port(), t.destination_port(), t.payload().to_vec())
        }
        Some(TransportSlice::Udp(u)) => {
            let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
            assert_eq!(want, u.checksum(), "UDP checksum");
            (u.source_port(), u.destination_port(), u.payload().to_vec())
        }
        _ => panic!("no transport"),
    };
    (
        h.source,
        h.destination,
        sport,
        dport,
        h.time_to_live,
        eth.destination(),
        eth.source(),
        payload,
    )
}

#[test]
fn arp_for_the_vip_is_answered() {
    let mut r = rig(1);
    let mut req = Vec::new();
    req.extend_from_slice(&[0xff; 6]);
    req.extend_from_slice(&CLIENT_MAC);
    req.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    req.extend_from_slice(&CLIENT_MAC);
    req.extend_from_slice(&CLIENT);
    req.extend_from_slice(&[0; 6]);
    req.extend_from_slice(&VIP);
    let (v, out) = r.run(0, 0, &req, 5);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(&out[0..6], &CLIENT_MAC);
    assert_eq!(&out[6..12], &PORT0_MAC);
    assert_eq!(&out[20..22], &[0, 2], "op = reply");
    assert_eq!(&out[22..28], &PORT0_MAC, "sha");
    assert_eq!(&out[28..32], &VIP, "spa");
    assert_eq!(&out[32..38], &CLIENT_MAC, "tha");
    assert_eq!(&out[38..42], &CLIENT, "tpa");
    // The requester was learned.
    assert_eq!(
        r.shared.neigh.peek(Ipv4Addr::from(CLIENT), 5),
        Some(MacAddr(CLIENT_MAC))
    );
}

#[test]
fn unresolved_server_queues_an_arp_request_and_drops() {
    let mut r = rig(1);
    let (v, _) = r.run(0, 0, &tcp_frame(40000, true, false, b""), 10);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(r.drops(Drop::NeighbourUnresolved), 1);
    let (port, ip) = r.workers[0].take_arp_request().expect("an ARP request");
    assert_eq!((port, ip), (1, Ipv4Addr::from(RS[0])));
    let mut buf = [0u8; 60];
    assert!(r.workers[0].build_arp_request(&r.snap, port, ip, &mut buf));
    assert_eq!(&buf[0..6], &[0xff; 6]);
    assert_eq!(&buf[6..12], &PORT1_MAC);
    assert_eq!(&buf[20..22], &[0, 1]);
    assert_eq!(&buf[28..32], &[198, 19, 0, 1]);
    assert_eq!(&buf[38..42], &RS[0]);
}

#[test]
fn nat_both_ways_with_exact_bytes_and_wrr_order() {
    let mut r = rig(1);
    r.learn_servers();
    // wrr 3,2,1 -> A A B A B C, each new connection a fresh client port.
    let mut picked = Vec::new();
    for i in 0..12u16 {
        let (v, out) = r.run(0, 0, &tcp_frame(40000 + i, true, false, b""), 10);
        assert_eq!(v, Verdict::Tx(1));
        let (src, dst, sport, dport, ttl, edst, esrc, _) = decode(&out);
        assert_eq!((src, sport), (CLIENT, 40000 + i));
        assert_eq!(dport, 8080);
        assert_eq!(ttl, 63);
        assert_eq!(esrc, PORT1_MAC);
        let idx = RS.iter().position(|a| *a == dst).expect("a real server");
        assert_eq!(edst, RS_MAC[idx]);
        picked.push(idx);
    }
    assert_eq!(picked, vec![0, 0, 1, 0, 1, 2, 0, 0, 1, 0, 1, 2]);

    // Data on an established flow keeps its server and its payload.
    let (v, out) = r.run(
        0,
        0,
        &tcp_frame(40002, false, true, b"GET / HTTP/1.0\r\n\r\n"),
        11,
    );
    assert_eq!(v, Verdict::Tx(1));
    let (_, dst, _, _, _, _, _, payload) = decode(&out);
    assert_eq!(dst, RS[1]);
    assert_eq!(payload, b"GET / HTTP/1.0\r\n\r\n");

    // The reply gets the VIP back as its source.
    let (v, out) = r.run(0, 1, &reply_frame(1, 40002, b"server rs2\n"), 12);
    assert_eq!(v, Verdict::Tx(0));
    let (src, dst, sport, dport, ttl, edst, esrc, payload) = decode(&out);
    assert_eq!((src, sport), (VIP, 80));
    assert_eq!((dst, dport), (CLIENT, 40002));
    assert_eq!(ttl, 63);
    assert_eq!((edst, esrc), (CLIENT_MAC, PORT0_MAC));
    assert_eq!(payload, b"server rs2\n");

    // Compare the whole frame with one etherparse builds from the expected fields.
    let mut want = Vec::new();
    PacketBuilder::ethernet2(PORT0_MAC, CLIENT_MAC)
        .ipv4(VIP, CLIENT, 63)
        .tcp(80, 40002, 5000, 64240)
        .syn()
        .ack(1001)
        .write(&mut want, b"server rs2\n")
        .unwrap();
    assert_eq!(out, want);
}

#[test]
fn udp_service_round_robin_and_reply() {
    let mut r = rig(1);
    r.learn_servers();
    let mut got = Vec::new();
    for i in 0..4u16 {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv4(CLIENT, VIP, 64)
            .udp(50000 + i, 53)
            .write(&mut f, b"q")
            .unwrap();
        let (v, out) = r.run(0, 0, &f, 1);
        assert_eq!(v, Verdict::Tx(1));
        let (_, dst, _, dport, _, _, _, _) = decode(&out);
        assert_eq!(dport, 5353);
        got.push(RS.iter().position(|a| *a == dst).unwrap());
    }
    assert_eq!(got, vec![0, 1, 0, 1]);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(RS_MAC[1], PORT1_MAC)
        .ipv4(RS[1], CLIENT, 64)
        .udp(5353, 50001)
        .write(&mut f, b"rs2:q")
        .unwrap();
    let (v, out) = r.run(0, 1, &f, 2);
    assert_eq!(v, Verdict::Tx(0));
    let (src, _, sport, dport, _, _, _, payload) = decode(&out);
    assert_eq!((src, sport, dport), (VIP, 53, 50001));
    assert_eq!(payload, b"rs2:q");
}

#[test]
fn garbage_and_strays_are_counted_drops() {
    let mut r = rig(1);
    r.learn_servers();
    // ACK for a flow nobody opened.
    let (v, _) = r.run(0, 0, &tcp_frame(41000, false, true, b"x"), 1);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(r.drops(Drop::NoConnection), 1);
    // A reply for no connection.
    let (v, _) = r.run(0, 1, &reply_frame(0, 41001, b""), 1);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(r.drops(Drop::NoService), 1);
    // Not addressed to our MAC.
    let mut f = tcp_frame(41002, true, false, b"");
    f[0..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
    assert_eq!(r.run(0, 0, &f, 1).0, Verdict::Drop);
    assert_eq!(r.drops(Drop::NotForUs), 1);
    // TTL 1.
    let mut f = tcp_frame(41003, true, false, b"");
    f[22] = 1;
    let c = etherparse::Ipv4HeaderSlice::from_slice(&f[14..])
        .unwrap()
        .to_header()
        .calc_header_checksum();
    f[24..26].copy_from_slice(&c.to_be_bytes());
    // TTL 1: never forwarded; answered with ICMP time exceeded.
    assert_eq!(r.run(0, 0, &f, 1).0, Verdict::Tx(0));
    assert_eq!(r.shared.worker_stats[0].icmp_sent.get(), 1);
    assert_eq!(r.workers[0].conns.len(), 0);
    // Truncated and bad-IHL frames are parser drops.
    let stats = r.shared.worker_stats[0].clone();
    let before: u64 = stats.parse_drops.iter().map(|c| c.get()).sum();
    let f = tcp_frame(41004, true, false, b"");
    assert_eq!(r.run(0, 0, &f[..20], 1).0, Verdict::Drop);
    let mut g = f.clone();
    g[14] = 0x43;
    assert_eq!(r.run(0, 0, &g, 1).0, Verdict::Drop);
    let after: u64 = stats.parse_drops.iter().map(|c| c.get()).sum();
    assert_eq!(after - before, 2);
}

#[test]
fn two_workers_hand_off_to_the_owner_and_keep_wrr_exact() {
    let mut r = rig(2);
    r.learn_servers();
    let mut handoffs = 0;
    let mut counts = [0usize; 3];
    for i in 0..60u16 {
        let frame = tcp_frame(42000 + i, true, false, b"");
        // Everything arrives on worker 0 (a one-queue device).
        let mut f = VecFrame::new(&frame);
        let mut v = r.workers[0].process(&r.snap, &mut f, 0, 1, false);
        if let Verdict::Handoff(o) = v {
            assert_eq!(o, 1);
            handoffs += 1;
            v = r.workers[1].process(&r.snap, &mut f, 0, 1, true);
        }
        assert_eq!(v, Verdict::Tx(1));
        let (_, dst, ..) = decode(f.data());
        counts[RS.iter().position(|a| *a == dst).unwrap()] += 1;
    }
    assert!(handoffs > 10 && handoffs < 50, "handoffs {handoffs}");
    assert_eq!(counts, [30, 20, 10]);
    // Each worker holds exactly the connections it owns.
    let total: usize = r.workers.iter().map(|w| w.conns.len()).sum();
    assert_eq!(total, 60);
    assert_eq!(r.workers[1].conns.len(), handoffs);
}

#[test]
fn deleting_a_server_drops_its_connections_and_gives_back_their_counts() {
    let mut r = rig(1);
    r.learn_servers();
    // wrr 3,2,1: the third connection goes to rs2.
    for i in 0..3u16 {
        assert_eq!(
            r.run(0, 0, &tcp_frame(43000 + i, true, false, b""), 1).0,
            Verdict::Tx(1)
        );
    }
    let rs2 = r.snap.services[0].servers[1].shared.clone();
    assert_eq!((rs2.active(), rs2.inactive()), (1, 0));
    // A new snapshot without rs2 (same registry: the others keep their ids).
    let mut cfg = config::parse(CFG).unwrap();
    cfg.services[0].servers.remove(1);
    let ports = r.snap.ports.clone();
    r.snap = Snapshot::build(&cfg, &ports, &r.shared.registry, 2, &AllUp).unwrap();
    // (expire_nodest_conn, the default: its next segment gets an RST back.)
    let (v, _) = r.run(0, 0, &tcp_frame(43002, false, true, b"x"), 2);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(r.shared.worker_stats[0].nodest_rst_sent.get(), 1);
    assert_eq!(
        (rs2.active(), rs2.inactive()),
        (0, 0),
        "the count came back"
    );
    // rs1's connections are untouched.
    let (v, out) = r.run(0, 0, &tcp_frame(43000, false, true, b"y"), 3);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(decode(&out).1, RS[0]);
}

#[test]
fn configured_timeouts_reach_the_connection_table() {
    let cfg = config::parse(&format!("{CFG}\n[timeouts]\nudp = 5\n")).expect("config");
    let ports = vec![
        PortInfo::new(&cfg.ports[0], MacAddr(PORT0_MAC)),
        PortInfo::new(&cfg.ports[1], MacAddr(PORT1_MAC)),
    ];
    let shared = Arc::new(Shared::new(1));
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).unwrap();
    let mut w = Pipeline::new(0, 1, 1024, &shared);
    w.on_snapshot(&snap);
    for (ip, mac) in RS.iter().zip(RS_MAC) {
        shared.neigh.learn(Ipv4Addr::from(*ip), MacAddr(mac), 0);
    }
    let mut f = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, VIP, 64)
        .udp(50000, 53)
        .write(&mut f, b"q")
        .unwrap();
    let mut vf = VecFrame::new(&f);
    assert_eq!(w.process(&snap, &mut vf, 0, 1_000, false), Verdict::Tx(1));
    w.housekeeping(&snap, 5_900, 4096);
    assert_eq!(w.conns.len(), 1, "alive before its 5 s");
    w.housekeeping(&snap, 6_100, 4096);
    assert_eq!(
        w.conns.len(),
        0,
        "expired after udp = 5 s, not IPVS's 300 s"
    );
}

#[test]
fn a_neighbour_mac_change_is_used_by_the_next_frame() {
    // Workers remember resolved next hops; a changed MAC must still be
    // used at once (a cache hit re-reads the neighbour entry's MAC).
    let mut r = rig(1);
    r.learn_servers();
    let (v, out) = r.run(0, 0, &tcp_frame(41000, true, false, b""), 10);
    assert_eq!(v, Verdict::Tx(1));
    let (_, dst, ..) = decode(&out);
    let idx = RS.iter().position(|a| *a == dst).expect("a real server");
    assert_eq!(decode(&out).5, RS_MAC[idx]);
    let moved = [0x02, 0xAA, 0xBB, 0xCC, 0xDD, idx as u8];
    r.shared
        .neigh
        .learn(Ipv4Addr::from(RS[idx]), MacAddr(moved), 10);
    let (v, out) = r.run(0, 0, &tcp_frame(41000, false, true, b"x"), 10);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(decode(&out).1, RS[idx]);
    assert_eq!(decode(&out).5, moved);
    // Learning the same MAC again keeps the cache (and the frame right).
    r.shared
        .neigh
        .learn(Ipv4Addr::from(RS[idx]), MacAddr(moved), 11);
    let (_, out) = r.run(0, 0, &tcp_frame(41000, false, true, b"y"), 11);
    assert_eq!(decode(&out).5, moved);
}

/// One-packet scheduling (issue 14): 30 datagrams from one source port are
/// each scheduled (rr over the two servers, 15/15 in order, whichever
/// worker they reach), no connection entry is made, and each server's reply
/// leaves from the VIP with valid checksums.
#[test]
fn one_packet_scheduling_schedules_every_datagram() {
    let text = CFG.replace("scheduler = \"rr\"\n", "scheduler = \"rr\"\nops = true\n");
    assert!(text.contains("ops = true"));
    let mut r = rig_with(&text, 2);
    r.learn_servers();
    let mut got = Vec::new();
    for i in 0..30u64 {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv4(CLIENT, VIP, 64)
            .udp(40000, 53)
            .write(&mut f, format!("q{i}").as_bytes())
            .unwrap();
        let (v, out) = r.run((i % 2) as usize, 0, &f, 1 + i);
        assert_eq!(v, Verdict::Tx(1), "datagram {i}");
        let (src, dst, sport, dport, ttl, eth_dst, _, payload) = decode(&out);
        assert_eq!((src, sport, dport, ttl), (CLIENT, 40000, 5353, 63));
        let k = RS.iter().position(|a| *a == dst).unwrap();
        assert_eq!(eth_dst, RS_MAC[k]);
        assert_eq!(payload, format!("q{i}").as_bytes());
        got.push(k);
    }
    assert_eq!(got, [0, 1].repeat(15));
    let created: u64 = r
        .shared
        .worker_stats
        .iter()
        .map(|s| s.conns_created.get())
        .sum();
    assert_eq!(created, 0, "one-packet scheduling made connection entries");
    // the servers' replies, matched by their source, leave from the VIP
    for (k, w) in [(0usize, 0usize), (1, 1)] {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(RS_MAC[k], PORT1_MAC)
            .ipv4(RS[k], CLIENT, 64)
            .udp(5353, 40000)
            .write(&mut f, b"rs:q")
            .unwrap();
        let (v, out) = r.run(w, 1, &f, 100);
        assert_eq!(v, Verdict::Tx(0));
        let (src, dst, sport, dport, _, eth_dst, eth_src, payload) = decode(&out);
        assert_eq!((src, dst, sport, dport), (VIP, CLIENT, 53, 40000));
        assert_eq!((eth_dst, eth_src), (CLIENT_MAC, PORT0_MAC));
        assert_eq!(payload, b"rs:q");
    }
    // a datagram from a server port that is no service's is still a stray
    let mut f = Vec::new();
    PacketBuilder::ethernet2(RS_MAC[0], PORT1_MAC)
        .ipv4(RS[0], CLIENT, 64)
        .udp(5354, 40000)
        .write(&mut f, b"x")
        .unwrap();
    let before = r.drops(Drop::NoService);
    assert_eq!(r.run(0, 1, &f, 101).0, Verdict::Drop);
    assert_eq!(r.drops(Drop::NoService), before + 1);
}

//! Hostile neighbours (rvs issue 12, item 5) through the worker pipeline:
//! an on-link spoofer floods ARP and NAT SYNs from random sources and
//! claims a configured real server's address, while the server's MAC
//! really changes. The configured server stays resolved, is never sent to
//! the spoofer, and its new MAC is used within one refresh. Forwarded
//! frames are checked with etherparse; ARP requests byte by byte.
#![cfg(feature = "dpdk")]

use std::net::Ipv4Addr;
use std::sync::Arc;

use engine::config;
use engine::dataplane::counters::Drop;
use engine::dataplane::neigh::{ANSWER_MS, REFRESH_MS, RETRY_MS};
use engine::dataplane::pipeline::{Pipeline, VecFrame, Verdict, ARP_FRAME_LEN};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];
const RS_MAC: [u8; 6] = [2, 0, 0, 1, 0, 11];
const RS_MOVED: [u8; 6] = [2, 0, 0, 1, 0xee, 11];
const SPOOF_MAC: [u8; 6] = [2, 0x66, 0x66, 0x66, 0x66, 0x66];
const BCAST: [u8; 6] = [0xff; 6];
const VIP: [u8; 4] = [198, 18, 0, 100];
const CLIENT: [u8; 4] = [198, 18, 0, 10];
const PORT1_ADDR: [u8; 4] = [198, 19, 0, 1];
const RS: [u8; 4] = [198, 19, 0, 11];
const RS_NEW: [u8; 4] = [198, 19, 0, 12];

fn cfg(server: [u8; 4]) -> String {
    let [a, b, c, d] = server;
    format!(
        r#"
[dpdk]
cores = "0@0,1@1"
workers = 1

[[port]]
name = "client"
device = "net_af_packet0,iface=dc"
address = "198.18.0.2/16"

[[port]]
name = "servers"
device = "net_af_packet1,iface=ds"
address = "198.19.0.1/16"

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "rr"
forward = "nat"
  [[service.server]]
  address = "{a}.{b}.{c}.{d}"
  port = 8080
"#
    )
}

struct Rig {
    shared: Arc<Shared>,
    w: Pipeline,
    ports: Vec<PortInfo>,
    generation: u64,
}

impl Rig {
    fn new(server: [u8; 4]) -> Rig {
        let shared = Arc::new(Shared::new(1));
        let w = Pipeline::new(0, 1, 1 << 16, &shared);
        let c = config::parse(&cfg(server)).expect("config");
        let ports = vec![
            PortInfo::new(&c.ports[0], MacAddr(PORT0_MAC)),
            PortInfo::new(&c.ports[1], MacAddr(PORT1_MAC)),
        ];
        let mut r = Rig {
            shared,
            w,
            ports,
            generation: 0,
        };
        r.publish(server);
        r
    }

    /// Publishes the configuration with `server` as the only real server
    /// (as the controller does on start, `rvs ctl` edits and reloads).
    fn publish(&mut self, server: [u8; 4]) {
        let c = config::parse(&cfg(server)).expect("config");
        self.generation += 1;
        let snap = Snapshot::build(
            &c,
            &self.ports,
            &self.shared.registry,
            self.generation,
            &AllUp,
        )
        .unwrap();
        self.shared.publish(snap);
        let snap = self.shared.snapshot.load_full();
        self.w.on_snapshot(&snap);
    }

    fn run(&mut self, port: usize, frame: &[u8], now: u64) -> (Verdict, Vec<u8>) {
        let snap = self.shared.snapshot.load_full();
        let mut f = VecFrame::new(frame);
        let v = self.w.process(&snap, &mut f, port, now, false);
        (v, f.to_vec())
    }

    /// The ARP requests the worker queued, as (port, target) after checking
    /// the frame it would send.
    fn arp_requests(&mut self) -> Vec<(usize, Ipv4Addr)> {
        let snap = self.shared.snapshot.load_full();
        let mut out = Vec::new();
        while let Some((p, ip)) = self.w.take_arp_request() {
            let mut buf = [0u8; ARP_FRAME_LEN];
            assert!(self.w.build_arp_request(&snap, p, ip, &mut buf));
            let mac = if p == 1 { PORT1_MAC } else { PORT0_MAC };
            assert_eq!(buf[0..6], BCAST, "broadcast");
            assert_eq!(buf[6..12], mac, "from the port's MAC");
            assert_eq!(buf[12..14], [8, 6], "ARP");
            assert_eq!(buf[20..22], [0, 1], "request");
            assert_eq!(buf[22..28], mac, "sender MAC");
            assert_eq!(buf[38..42], ip.octets(), "target address");
            out.push((p, ip));
        }
        out
    }

    fn drops(&self, d: Drop) -> u64 {
        self.shared.worker_stats[0].drops[d as usize].get()
    }
}

fn syn(src: [u8; 4], src_mac: [u8; 6], sport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(src_mac, PORT0_MAC)
        .ipv4(src, VIP, 64)
        .tcp(sport, 80, 1000, 64240)
        .syn()
        .write(&mut v, b"")
        .unwrap();
    v
}

fn data(sport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, VIP, 64)
        .tcp(sport, 80, 1001, 64240)
        .ack(1)
        .write(&mut v, b"x")
        .unwrap();
    v
}

/// An Ethernet/ARP frame (padded to the minimum size).
fn arp(op: u16, dst: [u8; 6], sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut v = Vec::with_capacity(60);
    v.extend_from_slice(&dst);
    v.extend_from_slice(&sha);
    v.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4]);
    v.extend_from_slice(&op.to_be_bytes());
    v.extend_from_slice(&sha);
    v.extend_from_slice(&spa);
    v.extend_from_slice(if op == 2 { &PORT1_MAC } else { &[0; 6] });
    v.extend_from_slice(&tpa);
    v.resize(60, 0);
    v
}

/// The server's answer to our request.
fn reply(mac: [u8; 6], spa: [u8; 4]) -> Vec<u8> {
    arp(2, PORT1_MAC, mac, spa, PORT1_ADDR)
}

/// Destination MAC and address of a forwarded frame (etherparse).
fn dest(frame: &[u8]) -> ([u8; 6], [u8; 4]) {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse");
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else {
        panic!("no eth")
    };
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("no ipv4")
    };
    (eth.destination(), ip.header().destination())
}

/// A small deterministic generator (xorshift) for the spoofer's choices.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn mac(&mut self) -> [u8; 6] {
        let b = self.next().to_le_bytes();
        [2, b[1], b[2], b[3], b[4], b[5]]
    }
}

/// The spoofer: NAT SYNs from random client-side sources, then an ARP
/// request to us from every on-link address of both ports (each with its
/// own made-up MAC), interleaved with claims that the configured server is
/// at the spoofer's MAC (requests to us, unsolicited replies, gratuitous
/// ARP). Returns the frames sent.
fn flood(r: &mut Rig, now: u64, claim: [u8; 4]) -> usize {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut sent = 0;
    for i in 0..5000u16 {
        let b = rng.next().to_le_bytes();
        let src = [198, 18, b[0] | 1, b[1] | 1];
        r.run(0, &syn(src, rng.mac(), 1024 + i), now);
        sent += 1;
    }
    for (port, net, us) in [(0, [198, 18], [198, 18, 0, 2]), (1, [198, 19], PORT1_ADDR)] {
        for host in 2..=0xFFFEu32 {
            let [_, _, c, d] = host.to_be_bytes();
            let spa = [net[0], net[1], c, d];
            if spa == RS || spa == RS_NEW || spa == us || spa == CLIENT || spa == VIP {
                continue;
            }
            r.run(port, &arp(1, BCAST, rng.mac(), spa, us), now);
            sent += 1;
            if host % 4096 == 0 {
                r.run(1, &arp(1, BCAST, SPOOF_MAC, claim, PORT1_ADDR), now);
                r.run(1, &arp(2, PORT1_MAC, SPOOF_MAC, claim, PORT1_ADDR), now);
                r.run(1, &arp(1, BCAST, SPOOF_MAC, claim, claim), now);
                sent += 3;
            }
        }
    }
    sent
}

#[test]
fn a_spoofer_cannot_move_a_configured_server_and_its_real_move_is_followed() {
    let mut r = Rig::new(RS);
    let t0 = 1_000;
    // First SYN: the server is unknown; the request goes out.
    let (v, _) = r.run(0, &syn(CLIENT, CLIENT_MAC, 40000), t0);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(r.drops(Drop::NeighbourUnresolved), 1);
    assert_eq!(r.arp_requests(), vec![(1, Ipv4Addr::from(RS))]);
    r.run(1, &reply(RS_MAC, RS), t0 + 1);
    let (v, out) = r.run(0, &syn(CLIENT, CLIENT_MAC, 40000), t0 + 2);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(dest(&out), (RS_MAC, RS));

    let t1 = t0 + 10;
    let sent = flood(&mut r, t1, RS);
    assert!(sent > 130_000, "{sent}");
    let live = r.shared.neigh.entries(t1).len();
    assert!(
        live > 60_000,
        "the spoofer filled the table: {live} entries"
    );
    assert_eq!(
        r.shared.neigh.peek(Ipv4Addr::from(RS), t1),
        Some(MacAddr(RS_MAC))
    );

    // Traffic still goes to the server; the claims made us ask again.
    let t2 = t1 + RETRY_MS;
    let (v, out) = r.run(0, &data(40000), t2);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(dest(&out), (RS_MAC, RS), "not to the spoofer");
    assert_eq!(r.arp_requests(), vec![(1, Ipv4Addr::from(RS))]);
    r.run(1, &reply(RS_MAC, RS), t2 + 1);
    let (_, out) = r.run(0, &data(40000), t2 + 2);
    assert_eq!(dest(&out), (RS_MAC, RS));

    // The server's NIC is replaced. Until the refresh the old MAC is used
    // (a worker re-asks the table at least every 100 ms); the refresh
    // request's reply moves traffic at once.
    let t3 = t2 + 1 + REFRESH_MS;
    let (_, out) = r.run(0, &data(40000), t3 - 200);
    assert_eq!(dest(&out), (RS_MAC, RS));
    assert!(r.arp_requests().is_empty());
    let (v, out) = r.run(0, &data(40000), t3);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(dest(&out), (RS_MAC, RS));
    assert_eq!(r.arp_requests(), vec![(1, Ipv4Addr::from(RS))]);
    // The answer moves traffic; the spoofer's late reply and request
    // (outside ANSWER_MS of our request) do not.
    r.run(1, &reply(RS_MOVED, RS), t3 + 1);
    let (_, out) = r.run(0, &data(40000), t3 + 2);
    assert_eq!(dest(&out), (RS_MOVED, RS), "the new MAC within one refresh");
    r.run(1, &reply(SPOOF_MAC, RS), t3 + ANSWER_MS + 1);
    r.run(
        1,
        &arp(1, BCAST, SPOOF_MAC, RS, PORT1_ADDR),
        t3 + ANSWER_MS + 2,
    );
    let (_, out) = r.run(0, &data(40000), t3 + ANSWER_MS + 3);
    assert_eq!(dest(&out), (RS_MOVED, RS));
}

#[test]
fn a_server_added_after_the_flood_is_resolved() {
    let mut r = Rig::new(RS);
    let t1 = 1_000;
    flood(&mut r, t1, RS_NEW);
    assert!(r.shared.neigh.entries(t1).len() > 60_000);
    // (The flood's SYNs asked for the old server.)
    assert_eq!(r.arp_requests(), vec![(1, Ipv4Addr::from(RS))]);
    // `rvs ctl` replaces the server: its address gets a reserved entry.
    r.publish(RS_NEW);
    let t2 = t1 + 10;
    let (v, _) = r.run(0, &syn(CLIENT, CLIENT_MAC, 41000), t2);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(
        r.arp_requests(),
        vec![(1, Ipv4Addr::from(RS_NEW))],
        "a request goes out although the table is full"
    );
    r.run(1, &reply(RS_MAC, RS_NEW), t2 + 1);
    let (v, out) = r.run(0, &syn(CLIENT, CLIENT_MAC, 41000), t2 + 2);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(dest(&out), (RS_MAC, RS_NEW));
    // An unconfigured neighbour whose probe window the flood filled: the
    // client (its SYN could not be learned from, no slot was free). The
    // server's answer to it still makes the worker ask, not wait for ever.
    assert_eq!(r.shared.neigh.peek(Ipv4Addr::from(CLIENT), t2 + 2), None);
    let mut synack = Vec::new();
    PacketBuilder::ethernet2(RS_MAC, PORT1_MAC)
        .ipv4(RS_NEW, CLIENT, 64)
        .tcp(8080, 41000, 5000, 64240)
        .syn()
        .ack(1001)
        .write(&mut synack, b"")
        .unwrap();
    let (v, _) = r.run(1, &synack, t2 + 3);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(r.arp_requests(), vec![(0, Ipv4Addr::from(CLIENT))]);
    r.run(
        0,
        &arp(2, PORT0_MAC, CLIENT_MAC, CLIENT, [198, 18, 0, 2]),
        t2 + 4,
    );
    let (v, out) = r.run(1, &synack, t2 + 5);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(dest(&out), (CLIENT_MAC, CLIENT));
}

//! The rescue of moved flows (SPEC §7 "Scale-out", issue 15): a non-SYN
//! TCP segment that misses the table on an `mh` DR/TUN service goes to the
//! server a SYN of the same flow gets on another director with the same
//! configuration (a second, fresh pipeline here), opens its entry, and
//! counts `rescued`; every other service keeps the `no_connection` drop;
//! a flood of spoofed ACKs evicts no established connection.
#![cfg(feature = "dpdk")]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use engine::config;
use engine::conn::{flags, FlowKey, TcpState};
use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::{Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use etherparse::{Ipv4HeaderSlice, PacketBuilder, SlicedPacket, TransportSlice};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];
const VIP: [u8; 4] = [198, 18, 0, 100];
const SERVERS: [u8; 3] = [11, 12, 13];

/// Port 80: mh DR (mh-port, so client ports spread); 81: mh TUN; 82: mh
/// NAT; 83: rr DR; 84: mh DR with persistence.
const CFG: &str = r#"
[dpdk]
cores = "0@0,1@1"
workers = 1

[[port]]
name = "client"
device = "net_null0"
address = "198.18.0.2/24"

[[port]]
name = "servers"
device = "net_null1"
address = "198.19.0.1/24"

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "mh"
scheduler_flags = ["mh-port"]
forward = "dr"
  [[service.server]]
  address = "198.19.0.11"
  [[service.server]]
  address = "198.19.0.12"
  [[service.server]]
  address = "198.19.0.13"

[[service]]
vip = "198.18.0.100"
port = 81
protocol = "tcp"
scheduler = "mh"
scheduler_flags = ["mh-port"]
forward = "tun"
  [[service.server]]
  address = "198.19.0.11"
  [[service.server]]
  address = "198.19.0.12"
  [[service.server]]
  address = "198.19.0.13"

[[service]]
vip = "198.18.0.100"
port = 82
protocol = "tcp"
scheduler = "mh"
scheduler_flags = ["mh-port"]
forward = "nat"
  [[service.server]]
  address = "198.19.0.11"
  port = 8080
  [[service.server]]
  address = "198.19.0.12"
  port = 8080

[[service]]
vip = "198.18.0.100"
port = 83
protocol = "tcp"
scheduler = "rr"
forward = "dr"
  [[service.server]]
  address = "198.19.0.11"
  [[service.server]]
  address = "198.19.0.12"

[[service]]
vip = "198.18.0.100"
port = 84
protocol = "tcp"
scheduler = "mh"
forward = "dr"
persistence_timeout = 300
  [[service.server]]
  address = "198.19.0.11"
  [[service.server]]
  address = "198.19.0.12"
  [[service.server]]
  address = "198.19.0.13"
"#;

/// One director: its own shared state, snapshot and worker.
struct Rig {
    shared: Arc<Shared>,
    snap: Snapshot,
    w: Pipeline,
}

fn rig(capacity: usize) -> Rig {
    let cfg = config::parse(CFG).expect("config");
    let ports = vec![
        PortInfo::new(&cfg.ports[0], MacAddr(PORT0_MAC)),
        PortInfo::new(&cfg.ports[1], MacAddr(PORT1_MAC)),
    ];
    let shared = Arc::new(Shared::new(1));
    for last in SERVERS {
        shared
            .neigh
            .learn(Ipv4Addr::new(198, 19, 0, last), server_mac(last), 0);
    }
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).unwrap();
    let w = Pipeline::new(0, 1, capacity, &shared);
    Rig { shared, snap, w }
}

fn server_mac(last: u8) -> MacAddr {
    MacAddr([2, 0, 0, 1, 0, last])
}

/// The server a frame sent to the servers' segment is for, by its MAC.
fn server_of(out: &[u8]) -> u8 {
    assert_eq!(&out[6..12], &PORT1_MAC, "source MAC is the servers port's");
    let last = out[5];
    assert!(SERVERS.contains(&last), "not a server MAC: {:?}", &out[..6]);
    assert_eq!(&out[..6], &server_mac(last).0);
    last
}

impl Rig {
    fn run(&mut self, frame: &[u8], now_ms: u64) -> (Verdict, Vec<u8>) {
        let mut f = VecFrame::new(frame);
        let v = self.w.process(&self.snap, &mut f, 0, now_ms, false);
        (v, f.to_vec())
    }
    fn drops(&self, d: Drop) -> u64 {
        self.shared.worker_stats[0].drops[d as usize].get()
    }
    fn rescued(&self) -> u64 {
        self.shared.worker_stats[0].rescued.get()
    }
    fn evicted(&self) -> u64 {
        self.shared.worker_stats[0].conns_evicted.get()
    }
    /// (state, flags, server) of the entry of `client:cport -> VIP:vport`.
    fn entry(&self, client: [u8; 4], cport: u16, vport: u16) -> Option<(TcpState, u8, Ipv4Addr)> {
        let key = FlowKey::new(6, client.into(), cport, VIP.into(), vport);
        let (id, _) = self.w.conns.lookup(&key, 0)?;
        let c = self.w.conns.get(id);
        Some((c.state(), c.flags(), c.server()))
    }
}

/// A client segment to the VIP; `flags` from "SAFRP" (ACK number 5000 when
/// 'A' is set).
fn seg(client: [u8; 4], cport: u16, vport: u16, flags: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(client, VIP, 64)
        .tcp(cport, vport, 1000, 64240);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(5000);
    }
    if flags.contains('F') {
        b = b.fin();
    }
    if flags.contains('R') {
        b = b.rst();
    }
    if flags.contains('P') {
        b = b.psh();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// A DR frame as it must leave: the same IP packet, TTL one less, new MACs.
fn check_dr(input: &[u8], out: &[u8], client: [u8; 4], payload: &[u8]) {
    assert_eq!(out.len(), input.len());
    let p = SlicedPacket::from_ethernet(out).expect("parses");
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4");
    };
    let h = ip.header();
    assert_eq!(h.ttl(), 63);
    assert_eq!(h.source(), client);
    assert_eq!(h.destination(), VIP);
    assert_eq!(
        h.header_checksum(),
        h.to_header().calc_header_checksum(),
        "IPv4 checksum"
    );
    let Some(TransportSlice::Tcp(t)) = &p.transport else {
        panic!("not TCP");
    };
    assert_eq!(t.payload(), payload);
    // Everything but the MACs, the TTL and the IP checksum is unchanged.
    assert_eq!(&out[14..22], &input[14..22]);
    assert_eq!(out[23], input[23]);
    assert_eq!(&out[26..], &input[26..]);
}

#[test]
fn ack_on_dr_mh_goes_where_a_syn_would_on_another_director() {
    let mut a = rig(1024);
    let mut b = rig(1024);
    let client = [198, 18, 0, 10];
    let payload = b"GET /moved HTTP/1.1\r\n\r\n";
    let mut seen = BTreeSet::new();
    for (i, cport) in (40_000u16..40_060).enumerate() {
        let ack = seg(client, cport, 80, "AP", payload);
        let (va, out_a) = a.run(&ack, 10);
        assert_eq!(va, Verdict::Tx(1), "rescued to the servers port");
        check_dr(&ack, &out_a, client, payload);
        let (vb, out_b) = b.run(&seg(client, cport, 80, "S", b""), 10);
        assert_eq!(vb, Verdict::Tx(1));
        let (sa, sb) = (server_of(&out_a), server_of(&out_b));
        assert_eq!(sa, sb, "client port {cport}: rescue and SYN disagree");
        seen.insert(sa);
        let (state, fl, srv) = a.entry(client, cport, 80).expect("entry created");
        assert_eq!(state, TcpState::Established);
        assert_ne!(fl & flags::RESCUED, 0);
        assert_eq!(srv, Ipv4Addr::new(198, 19, 0, sa));
        assert_eq!(a.rescued(), i as u64 + 1);
    }
    assert_eq!(seen.len(), 3, "the flows spread over every server");
    // The rest of each flow takes its entry: no second rescue.
    let (v, out) = a.run(&seg(client, 40_000, 80, "A", b""), 20);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(
        Ipv4Addr::new(198, 19, 0, server_of(&out)),
        a.entry(client, 40_000, 80).unwrap().2
    );
    assert_eq!(a.rescued(), 60);
    assert_eq!(a.shared.worker_stats[0].conns_created.get(), 60);
    assert_eq!(a.drops(Drop::NoConnection), 0);
    assert_eq!(b.rescued(), 0);
}

#[test]
fn ack_on_tun_mh_is_encapsulated_to_the_syn_pick() {
    let mut a = rig(1024);
    let mut b = rig(1024);
    let client = [198, 18, 0, 11];
    let payload = b"more bytes of a moved flow";
    for cport in 50_000u16..50_020 {
        let ack = seg(client, cport, 81, "AP", payload);
        let (va, out) = a.run(&ack, 10);
        assert_eq!(va, Verdict::Tx(1));
        let (_, out_b) = b.run(&seg(client, cport, 81, "S", b""), 10);
        let server = server_of(&out_b);
        assert_eq!(server_of(&out), server);
        // Outer header: servers-port address -> the server, IPIP.
        let outer = Ipv4HeaderSlice::from_slice(&out[14..]).expect("outer IPv4");
        assert_eq!(outer.protocol(), etherparse::IpNumber::IPV4);
        assert_eq!(outer.source(), [198, 19, 0, 1]);
        assert_eq!(outer.destination(), [198, 19, 0, server]);
        assert_eq!(outer.total_len() as usize, ack.len() - 14 + 20);
        assert_eq!(
            outer.header_checksum(),
            outer.to_header().calc_header_checksum()
        );
        // Inner: the client's packet, TTL one less.
        let inner = SlicedPacket::from_ip(&out[34..]).expect("inner parses");
        let Some(etherparse::NetSlice::Ipv4(ip)) = &inner.net else {
            panic!("inner not IPv4");
        };
        assert_eq!(ip.header().source(), client);
        assert_eq!(ip.header().destination(), VIP);
        assert_eq!(ip.header().ttl(), 63);
        let Some(TransportSlice::Tcp(t)) = &inner.transport else {
            panic!("inner not TCP");
        };
        assert_eq!(t.payload(), payload);
        assert_eq!(&out[34 + 26..], &ack[14 + 26..]);
        let (state, fl, srv) = a.entry(client, cport, 81).unwrap();
        assert_eq!(
            (state, fl & flags::RESCUED != 0, srv),
            (
                TcpState::Established,
                true,
                Ipv4Addr::new(198, 19, 0, server)
            )
        );
    }
    assert_eq!(a.rescued(), 20);
}

#[test]
fn nat_and_non_mh_services_still_drop() {
    let mut r = rig(1024);
    let client = [198, 18, 0, 12];
    for (n, vport) in [82u16, 83].into_iter().enumerate() {
        let (v, _) = r.run(&seg(client, 40_000, vport, "AP", b"x"), 10);
        assert_eq!(v, Verdict::Drop, "port {vport}");
        assert_eq!(r.drops(Drop::NoConnection), n as u64 + 1);
        assert!(r.entry(client, 40_000, vport).is_none());
    }
    assert_eq!(r.rescued(), 0);
    assert_eq!(r.w.conns.len(), 0);
}

#[test]
fn only_acks_that_pass_admission_are_rescued() {
    let mut r = rig(1024);
    let c = [198, 18, 0, 13];
    // No ACK flag (a bare RST, a flagless segment): the old drop.
    for (i, fl) in ["R", "", "F"].into_iter().enumerate() {
        assert_eq!(r.run(&seg(c, 40_001, 80, fl, b""), 10).0, Verdict::Drop);
        assert_eq!(r.drops(Drop::NoConnection), i as u64 + 1, "flags {fl:?}");
    }
    // SYN+ACK to a VIP: the old drop.
    assert_eq!(r.run(&seg(c, 40_002, 80, "SA", b""), 10).0, Verdict::Drop);
    assert_eq!(r.drops(Drop::NoConnection), 4);
    // A bad checksum: no entry.
    let mut bad = seg(c, 40_003, 80, "AP", b"data");
    *bad.last_mut().unwrap() ^= 0xff;
    assert_eq!(r.run(&bad, 10).0, Verdict::Drop);
    assert_eq!(r.drops(Drop::BadChecksum), 1);
    // A martian source: no entry.
    assert_eq!(
        r.run(&seg([127, 0, 0, 1], 40_004, 80, "A", b""), 10).0,
        Verdict::Drop
    );
    assert_eq!(r.drops(Drop::Martian), 1);
    // One of the service's own servers: no entry.
    assert_eq!(
        r.run(&seg([198, 19, 0, 12], 40_005, 80, "A", b""), 10).0,
        Verdict::Drop
    );
    assert_eq!(r.drops(Drop::FromRealServer), 1);
    assert_eq!(r.w.conns.len(), 0);
    assert_eq!(r.rescued(), 0);
    // FIN+ACK and RST+ACK of a moved flow are forwarded: the entry is in
    // CLOSE (10 s), as IPVS's input-only table has it.
    for (i, fl) in ["FA", "RA"].into_iter().enumerate() {
        let cport = 40_010 + i as u16;
        let (v, out) = r.run(&seg(c, cport, 80, fl, b""), 10);
        assert_eq!(v, Verdict::Tx(1), "flags {fl}");
        server_of(&out);
        let (state, fl_, _) = r.entry(c, cport, 80).unwrap();
        assert_eq!(state, TcpState::Close);
        assert_ne!(fl_ & flags::RESCUED, 0);
    }
    assert_eq!(r.rescued(), 2);
}

#[test]
fn persistence_template_comes_before_mh() {
    let mut r = rig(1024);
    let client = [198, 18, 0, 14];
    let svc = r.snap.service_for(6, VIP.into(), 84).expect("service 84");
    let sid = u32::from(svc.id);
    // The server mh would pick for this client (port 0: no mh-port), from
    // a second director's SYN.
    let mut b = rig(1024);
    let (_, out) = b.run(&seg(client, 1, 84, "S", b""), 10);
    let mh_pick = server_of(&out);
    // A template (synced, or from an earlier connection) naming another one.
    let other = *SERVERS.iter().find(|&&s| s != mh_pick).unwrap();
    let dest = svc
        .servers
        .iter()
        .find(|s| s.addr == Ipv4Addr::new(198, 19, 0, other))
        .unwrap()
        .shared
        .id;
    r.shared
        .persist
        .insert(sid, client.into(), dest, 10, 300_000);
    let (v, out) = r.run(&seg(client, 40_000, 84, "AP", b"x"), 20);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(server_of(&out), other, "the template wins over mh");
    let (_, fl, _) = r.entry(client, 40_000, 84).unwrap();
    assert_ne!(fl & flags::RESCUED, 0);
    assert_ne!(fl & flags::USER1, 0, "the entry holds its template");
    // Without a template, mh decides (and a template is made).
    let c2 = [198, 18, 0, 15];
    let (_, out_b) = b.run(&seg(c2, 1, 84, "S", b""), 10);
    let (_, out) = r.run(&seg(c2, 40_000, 84, "A", b""), 20);
    assert_eq!(server_of(&out), server_of(&out_b));
    assert_eq!(r.rescued(), 2);
}

/// A spoofed source for flood segment `i` (198.18.1.0 and up: not on the
/// client link, not martian).
fn spoofed(i: u32) -> [u8; 4] {
    let a = u32::from(Ipv4Addr::new(198, 18, 1, 1)) + i;
    a.to_be_bytes()
}

#[test]
fn spoofed_ack_flood_into_a_full_table_evicts_no_established_connection() {
    let mut r = rig(64);
    let cap = r.w.conns.capacity();
    // Fill the table with established connections (SYN, then ACK).
    let legit: Vec<([u8; 4], u16)> = (0..cap as u16)
        .map(|i| ([198, 18, 0, 20 + (i % 8) as u8], 30_000 + i))
        .collect();
    for &(c, p) in &legit {
        assert_eq!(r.run(&seg(c, p, 80, "S", b""), 10).0, Verdict::Tx(1));
        assert_eq!(r.run(&seg(c, p, 80, "A", b""), 11).0, Verdict::Tx(1));
    }
    assert_eq!(r.w.conns.len(), cap);
    // 2000 spoofed ACKs, a millisecond apart: each refused, none rescued.
    for i in 0..2000u32 {
        let (v, _) = r.run(
            &seg(spoofed(i), 12_345, 80, "AP", b"junk"),
            20 + u64::from(i),
        );
        assert_eq!(v, Verdict::Drop);
    }
    assert_eq!(r.drops(Drop::TableFull), 2000);
    assert_eq!(r.rescued(), 0);
    assert_eq!(r.evicted(), 0);
    for &(c, p) in &legit {
        assert_eq!(
            r.entry(c, p, 80).map(|e| e.0),
            Some(TcpState::Established),
            "{c:?}:{p} lost"
        );
    }
}

#[test]
fn rescued_entries_give_way_to_new_connections_but_established_stay() {
    let mut r = rig(64);
    let cap = r.w.conns.capacity();
    let half = cap / 2;
    let legit: Vec<([u8; 4], u16)> = (0..half as u16)
        .map(|i| ([198, 18, 0, 30], 31_000 + i))
        .collect();
    for &(c, p) in &legit {
        r.run(&seg(c, p, 80, "S", b""), 10);
        r.run(&seg(c, p, 80, "A", b""), 11);
    }
    // Spoofed ACKs take the rest of the free slots (that much a flood can
    // do); once the table is full they only push out one another.
    for i in 0..cap as u32 {
        let (v, _) = r.run(&seg(spoofed(i), 12_345, 80, "A", b""), 20);
        assert_eq!(v, Verdict::Tx(1));
    }
    assert_eq!(r.rescued(), cap as u64);
    assert_eq!(r.w.conns.len(), cap);
    assert_eq!(r.evicted(), half as u64);
    assert_eq!(r.drops(Drop::TableFull), 0);
    // New clients still get in: each evicts an idle rescued entry.
    for i in 0..(cap - half) as u16 {
        let (v, _) = r.run(&seg([198, 18, 0, 40], 32_000 + i, 80, "S", b""), 5_000);
        assert_eq!(v, Verdict::Tx(1), "new client {i} refused");
        let e = r
            .entry([198, 18, 0, 40], 32_000 + i, 80)
            .expect("its entry");
        assert_eq!(e.0, TcpState::SynRecv);
    }
    assert_eq!(r.evicted(), cap as u64);
    assert_eq!(r.drops(Drop::TableFull), 0);
    for &(c, p) in &legit {
        assert_eq!(r.entry(c, p, 80).map(|e| e.0), Some(TcpState::Established));
    }
}

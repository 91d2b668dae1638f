//! Failover in the worker pipeline, driven with byte buffers: two
//! directors (master and backup) with the same configuration, the sync
//! records the master's workers report carried to the backup's install
//! queues (what the HA thread does over UDP), then a takeover: the
//! backup forwards the established connection to the same real server,
//! with exact bytes checked by etherparse.
#![cfg(feature = "dpdk")]

use std::net::Ipv4Addr;
use std::sync::Arc;

use engine::config;
use engine::conn::TcpState;
use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::{Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::ha::sync::Record;
use engine::packet::ethernet::MacAddr;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];
const RS_MAC: [[u8; 6]; 2] = [[2, 0, 0, 1, 0, 11], [2, 0, 0, 1, 0, 12]];
const VIP: [u8; 4] = [198, 18, 0, 100];
const GW: [u8; 4] = [198, 19, 0, 1];
const CLIENT: [u8; 4] = [198, 18, 0, 10];
const RS: [[u8; 4]; 2] = [[198, 19, 0, 11], [198, 19, 0, 12]];

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
address = "198.19.0.2/24"

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "rr"
forward = "nat"
  [[service.server]]
  address = "198.19.0.11"
  port = 8080
  [[service.server]]
  address = "198.19.0.12"
  port = 8080

[ha]
vrid = 51
priority = 150
port = "servers"
peers = ["198.19.0.3"]
virtual_addresses = ["198.19.0.1/24@servers"]
sync = false
"#;

/// One director: its shared state, snapshot and a worker.
struct Director {
    shared: Arc<Shared>,
    snap: Snapshot,
    w: Pipeline,
}

fn director(master: bool) -> Director {
    let cfg = config::parse(CFG).expect("config");
    let ports = vec![
        PortInfo::new(&cfg.ports[0], MacAddr(PORT0_MAC)),
        PortInfo::new(&cfg.ports[1], MacAddr(PORT1_MAC)),
    ];
    let shared = Arc::new(Shared::new(1));
    shared.ha.enable(false);
    shared.ha.set_master(master);
    for (ip, mac) in RS.iter().zip(RS_MAC) {
        shared.neigh.learn(Ipv4Addr::from(*ip), MacAddr(mac), 0);
    }
    shared
        .neigh
        .learn(Ipv4Addr::from(CLIENT), MacAddr(CLIENT_MAC), 0);
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).unwrap();
    let mut w = Pipeline::new(0, 1, 1024, &shared);
    w.ha_poll(&snap, 0);
    Director { shared, snap, w }
}

impl Director {
    fn run(&mut self, port: usize, frame: &[u8], now: u64) -> (Verdict, Vec<u8>) {
        let mut f = VecFrame::new(frame);
        let v = self.w.process(&self.snap, &mut f, port, now, false);
        (v, f.to_vec())
    }

    fn drops(&self, d: Drop) -> u64 {
        self.shared.worker_stats[0].drops[d as usize].get()
    }

    /// Everything its worker reported for the peers.
    fn reported(&self) -> Vec<Record> {
        let mut v = Vec::new();
        while let Some(r) = self.shared.ha.out[0].pop() {
            v.push(r);
        }
        v
    }
}

fn tcp(sport: u16, flags: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, VIP, 64)
        .tcp(sport, 80, 1000, 64240);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(1);
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn reply(rs: usize, cport: u16, flags: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(RS_MAC[rs], PORT1_MAC)
        .ipv4(RS[rs], CLIENT, 64)
        .tcp(8080, cport, 5000, 64240);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(1001);
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn arp_request(target: [u8; 4]) -> Vec<u8> {
    let mut req = Vec::new();
    req.extend_from_slice(&[0xff; 6]);
    req.extend_from_slice(&CLIENT_MAC);
    req.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    req.extend_from_slice(&CLIENT_MAC);
    req.extend_from_slice(&CLIENT);
    req.extend_from_slice(&[0; 6]);
    req.extend_from_slice(&target);
    req
}

/// (src, dst, sport, dport, eth dst, payload), every checksum verified.
fn decode(frame: &[u8]) -> ([u8; 4], [u8; 4], u16, u16, [u8; 6], Vec<u8>) {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse");
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else {
        panic!("no eth")
    };
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("no ipv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.calc_header_checksum(), h.header_checksum);
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("no tcp")
    };
    let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
    assert_eq!(want, t.checksum(), "TCP checksum");
    (
        h.source,
        h.destination,
        t.source_port(),
        t.destination_port(),
        eth.destination(),
        t.payload().to_vec(),
    )
}

#[test]
fn a_backup_answers_no_arp_for_owned_addresses_and_forwards_nothing() {
    let mut b = director(false);
    let (v, _) = b.run(0, &arp_request(VIP), 1);
    assert_eq!(v, Verdict::Drop, "backup answered ARP for the VIP");
    let (v, _) = b.run(1, &arp_request(GW), 1);
    assert_eq!(
        v,
        Verdict::Drop,
        "backup answered ARP for the virtual address"
    );
    // its own address is still its own
    let (v, out) = b.run(0, &arp_request([198, 18, 0, 2]), 1);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(&out[28..32], &[198, 18, 0, 2]);
    let (v, _) = b.run(0, &tcp(40000, "S", b""), 2);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(b.drops(Drop::NotMaster), 1);
    assert_eq!(b.w.conns.len(), 0);

    let mut m = director(true);
    for target in [VIP, GW] {
        let port = if target == VIP { 0 } else { 1 };
        let (v, out) = m.run(port, &arp_request(target), 1);
        assert_eq!(v, Verdict::Tx(port), "master must answer for {target:?}");
        assert_eq!(&out[20..22], &[0, 2]);
        assert_eq!(&out[28..32], &target, "spa");
    }
}

#[test]
fn vrrp_multicast_reaches_the_kernel() {
    let mut d = director(false);
    let mut f = Vec::new();
    f.extend_from_slice(&engine::ha::advert::MCAST_MAC);
    f.extend_from_slice(&[2, 0, 0, 9, 9, 9]);
    f.extend_from_slice(&[0x08, 0x00]);
    let adv = engine::ha::advert::Advert {
        vrid: 51,
        priority: 100,
        interval_cs: 10,
        addrs: vec![Ipv4Addr::from(VIP)],
    };
    let src = Ipv4Addr::new(198, 19, 0, 3);
    let body = engine::ha::advert::encode(&adv, src, engine::ha::advert::MCAST_GROUP);
    let total = 20 + body.len();
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0,
        0,
        255,
        112,
        0,
        0,
    ];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&[224, 0, 0, 18]);
    let ck = {
        let mut s = 0u32;
        for c in ip.chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    };
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&body);
    let (v, _) = d.run(1, &f, 1);
    assert_eq!(v, Verdict::Kernel);
    // a multicast frame for anything else is not ours
    f[0..6].copy_from_slice(&[0x01, 0, 0x5e, 0x01, 0x02, 0x03]);
    f[30..34].copy_from_slice(&[239, 1, 2, 3]);
    let (v, _) = d.run(1, &f, 1);
    assert_eq!(v, Verdict::Drop);
}

#[test]
fn synced_connection_survives_takeover_on_the_same_server() {
    let mut m = director(true);
    m.shared
        .ha
        .sync
        .store(true, std::sync::atomic::Ordering::Release);
    m.w.ha_poll(&m.snap, 0);
    let mut b = director(false);

    // Two connections through the master: rr puts them on rs1 and rs2.
    for (i, cport) in [40001u16, 40002].into_iter().enumerate() {
        let (v, out) = m.run(0, &tcp(cport, "S", b""), 10);
        assert_eq!(v, Verdict::Tx(1));
        let (_, dst, _, dport, _, _) = decode(&out);
        assert_eq!((dst, dport), (RS[i], 8080));
        let (v, _) = m.run(1, &reply(i, cport, "SA", b""), 11);
        assert_eq!(v, Verdict::Tx(0));
        let (v, _) = m.run(0, &tcp(cport, "A", b""), 12);
        assert_eq!(v, Verdict::Tx(1));
    }
    let recs = m.reported();
    // new (SYN_RECV) and ESTABLISHED for each
    let states: Vec<(u16, u8)> = recs
        .iter()
        .map(|r| match r {
            Record::Conn(c) => (c.cport, c.state),
            other => panic!("no persistence or IPv6 here: {other:?}"),
        })
        .collect();
    assert_eq!(
        states,
        [
            (40001, TcpState::SynRecv as u8),
            (40001, TcpState::Established as u8),
            (40002, TcpState::SynRecv as u8),
            (40002, TcpState::Established as u8),
        ]
    );
    // established packets report nothing more, until the 50th
    for i in 0..49 {
        m.run(0, &tcp(40001, "A", b"more"), 13 + i);
    }
    assert!(m.reported().is_empty());
    m.run(0, &tcp(40001, "A", b"more"), 62);
    assert_eq!(m.reported().len(), 1, "the 50th packet refreshes the peer");

    // The HA thread carries them to the backup, whose worker installs them.
    for r in recs {
        b.shared.ha.install[0].push(r).unwrap();
    }
    b.w.ha_poll(&b.snap, 20);
    assert_eq!(b.w.conns.len(), 2);
    assert_eq!(b.shared.worker_stats[0].sync_installed.get(), 4);
    let active: u32 = b.snap.services[0]
        .servers
        .iter()
        .map(|s| s.shared.active())
        .sum();
    assert_eq!(active, 2, "synced ESTABLISHED connections count as active");
    // still backup: the established segment is dropped
    let (v, _) = b.run(0, &tcp(40002, "A", b"x"), 21);
    assert_eq!(v, Verdict::Drop);

    // Takeover: the same mid-connection segment now goes to rs2, and the
    // server's reply back to the client from the VIP.
    b.shared.ha.set_master(true);
    b.w.ha_poll(&b.snap, 30);
    let (v, out) = b.run(0, &tcp(40002, "A", b"hello"), 31);
    assert_eq!(v, Verdict::Tx(1));
    let (src, dst, sport, dport, eth_dst, payload) = decode(&out);
    assert_eq!((src, dst, sport, dport), (CLIENT, RS[1], 40002, 8080));
    assert_eq!(eth_dst, RS_MAC[1]);
    assert_eq!(payload, b"hello");
    let (v, out) = b.run(1, &reply(1, 40002, "A", b"world"), 32);
    assert_eq!(v, Verdict::Tx(0));
    let (src, dst, sport, dport, eth_dst, payload) = decode(&out);
    assert_eq!((src, dst, sport, dport), (VIP, CLIENT, 80, 40002));
    assert_eq!(eth_dst, CLIENT_MAC);
    assert_eq!(payload, b"world");
    assert_eq!(b.drops(Drop::NoConnection), 0);
}

#[test]
fn a_record_for_an_unknown_server_is_counted_not_installed() {
    let mut b = director(false);
    let rec = engine::ha::sync::ConnRecord {
        proto: 6,
        state: TcpState::Established as u8,
        method: 0,
        flags: 0,
        client: Ipv4Addr::from(CLIENT),
        cport: 1234,
        vip: Ipv4Addr::from(VIP),
        vport: 80,
        server: Ipv4Addr::new(198, 19, 0, 99),
        sport: 8080,
        timeout_ms: 900_000,
        local: None,
    };
    b.shared.ha.install[0].push(Record::Conn(rec)).unwrap();
    b.w.ha_poll(&b.snap, 1);
    assert_eq!(b.w.conns.len(), 0);
    assert_eq!(b.shared.worker_stats[0].sync_unknown.get(), 1);
}

#[test]
fn bulk_walk_reports_every_live_connection_then_says_done() {
    let mut m = director(true);
    for cport in 41000..41100u16 {
        let (v, _) = m.run(0, &tcp(cport, "S", b""), 10);
        assert_eq!(v, Verdict::Tx(1));
    }
    assert!(m.reported().is_empty(), "sync off: nothing reported");
    let n = m.shared.ha.request_bulk();
    assert!(!m.shared.ha.bulk_walked(n));
    let mut polls = 0;
    while !m.shared.ha.bulk_walked(n) {
        m.w.ha_poll(&m.snap, 20);
        polls += 1;
        assert!(polls < 10, "the walk of 1024 slots takes one poll");
    }
    let mut ports: Vec<u16> = m
        .reported()
        .into_iter()
        .map(|r| match r {
            Record::Conn(c) => c.cport,
            _ => 0,
        })
        .collect();
    ports.sort_unstable();
    assert_eq!(ports, (41000..41100).collect::<Vec<_>>());
}

#[test]
fn takeover_sends_five_rounds_of_gratuitous_arp() {
    let mut m = director(true);
    m.shared.ha.request_garp();
    m.w.ha_poll(&m.snap, 1);
    let mut sent = Vec::new();
    for _ in 0..10 {
        while let Some((port, ip)) = m.w.take_garp(&m.snap) {
            let mut buf = [0u8; 60];
            assert!(m.w.build_garp(&m.snap, port, ip, &mut buf));
            assert_eq!(&buf[0..6], &[0xff; 6]);
            let mac = if port == 0 { PORT0_MAC } else { PORT1_MAC };
            assert_eq!(&buf[6..12], &mac);
            assert_eq!(&buf[12..14], &[0x08, 0x06]);
            assert_eq!(&buf[20..22], &[0, 1], "a request");
            assert_eq!(&buf[22..28], &mac, "sha");
            assert_eq!(&buf[28..32], &ip.octets(), "spa");
            assert_eq!(&buf[38..42], &ip.octets(), "tpa = spa");
            sent.push((port, ip));
        }
    }
    let one = [(0, Ipv4Addr::from(VIP)), (1, Ipv4Addr::from(GW))];
    assert_eq!(sent.len(), 10);
    for round in sent.chunks(2) {
        assert_eq!(round, one);
    }
}

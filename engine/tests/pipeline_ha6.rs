//! HA sync of IPv6 connections through the worker pipeline (issue 13): the
//! master reports an IPv6 connection's records (new, ESTABLISHED) as
//! sync record type 3, they travel through the real codec (encode, HMAC,
//! decode) to a backup, whose worker installs them in its IPv6 table; after
//! a takeover the backup forwards the established connection's segments to
//! the same real server and the server's replies back from the VIP, byte
//! for byte as etherparse reads them. A bulk walk reports the IPv6 table
//! too; a record for a server the backup does not have is counted.
#![cfg(feature = "dpdk")]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering::Release;
use std::sync::Arc;

use engine::config;
use engine::conn::TcpState;
use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::{Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::ha::sync::{self, Body, Conn6Record, Message, Record, SyncKey};
use engine::packet::ethernet::MacAddr;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];
const CLIENT_MAC: [u8; 6] = [2, 0xc1, 0, 0, 0, 0x10];
const RS_MAC: [[u8; 6]; 2] = [[2, 0x5e, 0, 0, 0, 0x11], [2, 0x5e, 0, 0, 0, 0x12]];
const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x10);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x100);
const RS: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x11),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x12),
];

const CFG: &str = r#"
[dpdk]
cores = "0@0,1@1"
workers = 1

[[port]]
name = "client"
device = "net_null0"
address = ["198.18.0.2/24", "2001:db8:0:1::2/64"]

[[port]]
name = "servers"
device = "net_null1"
address = ["198.19.0.2/24", "2001:db8:0:2::2/64"]
exception_path = false

[[service]]
vip = "2001:db8:0:1::100"
port = 80
scheduler = "rr"
  [[service.server]]
  address = "2001:db8:0:2::11"
  port = 8080
  [[service.server]]
  address = "2001:db8:0:2::12"
  port = 8080

[ha]
vrid = 51
priority = 150
port = "servers"
peers = ["198.19.0.3"]
sync = false
"#;

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
        shared.neigh6.learn(*ip, MacAddr(mac), 0);
    }
    shared.neigh6.learn(CLIENT, MacAddr(CLIENT_MAC), 0);
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).unwrap();
    assert_eq!(snap.services6.len(), 1);
    let mut w = Pipeline::new(0, 1, 1024, &shared);
    w.on_snapshot(&snap);
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

    fn reported(&self) -> Vec<Record> {
        let mut v = Vec::new();
        while let Some(r) = self.shared.ha.out[0].pop() {
            v.push(r);
        }
        v
    }

    /// (active, inactive) over the service's servers.
    fn load(&self) -> (u32, u32) {
        self.snap.services6[0]
            .servers
            .iter()
            .fold((0, 0), |(a, i), s| {
                (a + s.shared.active(), i + s.shared.inactive())
            })
    }
}

fn client_seg(cport: u16, flags: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv6(CLIENT.octets(), VIP6.octets(), 64)
        .tcp(cport, 80, 1000, 64240);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(5001);
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn server_seg(rs: usize, cport: u16, flags: &str, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(RS_MAC[rs], PORT1_MAC)
        .ipv6(RS[rs].octets(), CLIENT.octets(), 64)
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

/// (src, sport, dst, dport, hop limit, eth dst, payload), the TCP
/// checksum verified.
fn decode(frame: &[u8]) -> (Ipv6Addr, u16, Ipv6Addr, u16, u8, [u8; 6], Vec<u8>) {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse");
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else {
        panic!("no eth")
    };
    let Some(NetSlice::Ipv6(ip)) = p.net else {
        panic!("not IPv6")
    };
    let h = ip.header();
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP")
    };
    let want = t
        .to_header()
        .calc_checksum_ipv6_raw(h.source(), h.destination(), t.payload())
        .unwrap();
    assert_eq!(want, t.checksum(), "TCP checksum");
    (
        Ipv6Addr::from(h.source()),
        t.source_port(),
        Ipv6Addr::from(h.destination()),
        t.destination_port(),
        h.hop_limit(),
        eth.destination(),
        t.payload().to_vec(),
    )
}

/// A master whose workers report to the HA thread (`sync` on).
fn master() -> Director {
    let mut m = director(true);
    m.shared.ha.sync.store(true, Release);
    m.w.ha_poll(&m.snap, 0);
    m
}

/// Carries records from the master to the backup as the HA thread does:
/// one authenticated datagram, decoded on the other side.
fn carry(recs: Vec<Record>, b: &Director) {
    let key = SyncKey::new(b"0123456789abcdef-ha6-test").unwrap();
    let m = Message {
        sender: Ipv4Addr::new(198, 19, 0, 2),
        boot: 1,
        seq: 1,
        body: Body::Records(recs),
    };
    let wire = sync::try_encode(&m, &key).expect("fits one datagram");
    let got = sync::decode(&wire, &key).expect("decodes");
    let Body::Records(recs) = got.body else {
        panic!("records")
    };
    for r in recs {
        b.shared.ha.install[0].push(r).unwrap();
    }
}

#[test]
fn a_synced_ipv6_connection_goes_on_after_takeover() {
    let mut m = master();
    let mut b = director(false);

    // Two connections through the master: rr puts them on rs1 and rs2.
    for (i, cport) in [40001u16, 40002].into_iter().enumerate() {
        let (v, out) = m.run(0, &client_seg(cport, "S", b""), 10);
        assert_eq!(v, Verdict::Tx(1));
        assert_eq!(decode(&out).2, RS[i]);
        assert_eq!(
            m.run(1, &server_seg(i, cport, "SA", b""), 11).0,
            Verdict::Tx(0)
        );
        assert_eq!(m.run(0, &client_seg(cport, "A", b""), 12).0, Verdict::Tx(1));
    }
    let recs = m.reported();
    let want = |cport: u16, rs: usize, state: TcpState, timeout_ms: u32| {
        Record::Conn6(Conn6Record {
            proto: 6,
            state: state as u8,
            method: 0,
            flags: 0,
            client: CLIENT,
            cport,
            vip: VIP6,
            vport: 80,
            server: RS[rs],
            sport: 8080,
            timeout_ms,
        })
    };
    // New (SYN_RECV, 60 s left), then ESTABLISHED (900 s), for each.
    assert_eq!(
        recs,
        [
            want(40001, 0, TcpState::SynRecv, 60_000),
            want(40001, 0, TcpState::Established, 900_000),
            want(40002, 1, TcpState::SynRecv, 60_000),
            want(40002, 1, TcpState::Established, 900_000),
        ]
    );
    // Established packets report nothing more, until the 50th.
    for i in 0..49 {
        m.run(0, &client_seg(40001, "A", b"more"), 13 + i);
    }
    assert!(m.reported().is_empty());
    m.run(0, &client_seg(40001, "A", b"more"), 62);
    assert_eq!(m.reported().len(), 1, "the 50th packet refreshes the peer");

    carry(recs, &b);
    b.w.ha_poll(&b.snap, 20);
    assert_eq!(b.w.conns6_len(), 2);
    assert_eq!(b.w.conns.len(), 0, "not in the IPv4 table");
    assert_eq!(b.shared.worker_stats[0].sync_installed.get(), 4);
    assert_eq!(
        b.load(),
        (2, 0),
        "synced ESTABLISHED connections are active"
    );
    // Still backup: the established segment is dropped.
    assert_eq!(b.run(0, &client_seg(40002, "A", b"x"), 21).0, Verdict::Drop);
    assert_eq!(b.drops(Drop::NotMaster), 1);

    // Takeover: the mid-connection segment goes to rs2, the reply back
    // from the VIP.
    b.shared.ha.set_master(true);
    b.w.ha_poll(&b.snap, 30);
    let (v, out) = b.run(0, &client_seg(40002, "A", b"hello"), 31);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(
        decode(&out),
        (CLIENT, 40002, RS[1], 8080, 63, RS_MAC[1], b"hello".to_vec())
    );
    let (v, out) = b.run(1, &server_seg(1, 40002, "A", b"world"), 32);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(
        decode(&out),
        (VIP6, 80, CLIENT, 40002, 63, CLIENT_MAC, b"world".to_vec())
    );
    assert_eq!(b.drops(Drop::NoConnection), 0);
    assert_eq!(b.drops(Drop::NoService), 0);
}

#[test]
fn a_later_record_moves_the_connection_and_an_unknown_server_is_counted() {
    let mut b = director(false);
    let rec = |server: Ipv6Addr, state: TcpState| Conn6Record {
        proto: 6,
        state: state as u8,
        method: 0,
        flags: 0,
        client: CLIENT,
        cport: 1234,
        vip: VIP6,
        vport: 80,
        server,
        sport: 8080,
        timeout_ms: 900_000,
    };
    carry(
        vec![
            Record::Conn6(rec(RS[0], TcpState::SynRecv)),
            Record::Conn6(rec(RS[0], TcpState::Established)),
        ],
        &b,
    );
    b.w.ha_poll(&b.snap, 1);
    assert_eq!((b.w.conns6_len(), b.load()), (1, (1, 0)));
    // The peer moved it to rs2: one connection, on rs2.
    carry(vec![Record::Conn6(rec(RS[1], TcpState::Established))], &b);
    b.w.ha_poll(&b.snap, 2);
    assert_eq!(b.w.conns6_len(), 1);
    let on = |i: usize| b.snap.services6[0].servers[i].shared.active();
    assert_eq!((on(0), on(1)), (0, 1));
    // A server this director does not have, and a DR record: counted.
    let mut dr = rec(RS[0], TcpState::Established);
    dr.method = 1;
    dr.cport = 1235;
    carry(
        vec![
            Record::Conn6(rec(
                "2001:db8:0:2::99".parse().unwrap(),
                TcpState::Established,
            )),
            Record::Conn6(dr),
        ],
        &b,
    );
    b.w.ha_poll(&b.snap, 3);
    assert_eq!(b.w.conns6_len(), 1);
    assert_eq!(b.shared.worker_stats[0].sync_unknown.get(), 2);
    assert_eq!(b.shared.worker_stats[0].sync_installed.get(), 3);
}

#[test]
fn a_bulk_walk_reports_the_ipv6_connections_too() {
    let mut m = director(true);
    for cport in 41000..41050u16 {
        assert_eq!(m.run(0, &client_seg(cport, "S", b""), 10).0, Verdict::Tx(1));
    }
    assert!(m.reported().is_empty(), "sync off: nothing reported");
    let n = m.shared.ha.request_bulk();
    let mut polls = 0;
    while !m.shared.ha.bulk_walked(n) {
        m.w.ha_poll(&m.snap, 20);
        polls += 1;
        assert!(polls < 10, "two tables of 1024 slots take two polls");
    }
    let mut ports: Vec<u16> = m
        .reported()
        .into_iter()
        .map(|r| match r {
            Record::Conn6(c) => {
                assert_eq!(
                    (c.client, c.vip, c.state),
                    (CLIENT, VIP6, TcpState::SynRecv as u8)
                );
                c.cport
            }
            other => panic!("{other:?}"),
        })
        .collect();
    ports.sort_unstable();
    assert_eq!(ports, (41000..41050).collect::<Vec<_>>());
}

//! HA sync of IPv6 connections through the worker pipeline (issue 13): the
//! master reports an IPv6 connection's records (new, ESTABLISHED) as
//! sync record type 3, they travel through the real codec (encode, HMAC,
//! decode) to a backup, whose worker installs them in its IPv6 table; after
//! a takeover the backup forwards the established connection's segments to
//! the same real server and the server's replies back from the VIP, byte
//! for byte as etherparse reads them. A bulk walk reports the IPv6 table
//! too; a record for a server the backup does not have is counted.
//!
//! NAT64 connections (type 4) the same way, with their local tuple: the
//! backup holds the local port in its pool, translates both directions
//! after a takeover byte for byte, and never hands the port to a new
//! connection. Persistence templates of IPv6 services (type 5): installed
//! on the backup and honoured there for another client of the /64.
#![cfg(feature = "dpdk")]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering::Release;
use std::sync::Arc;

use engine::config;
use engine::conn::TcpState;
use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::{client_net6, Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::ha::sync::{
    self, Body, Conn64Record, Conn6Record, Message, Record, SyncKey, Template6Record,
};
use engine::packet::ethernet::MacAddr;
use etherparse::{
    IpHeaders, IpNumber, Ipv4Header, Ipv6Header, NetSlice, PacketBuilder, SlicedPacket,
    TransportSlice,
};

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
        assert!(polls <= 64, "bounded: 1024 slots per table per poll");
    }
    // Both connection tables' 1024 slots with the first 1024 of the
    // template table's 65536, then 1024 template slots per poll.
    assert_eq!(polls, m.shared.persist.capacity() / 1024);
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

// ---------------------------------------------------------------------
// NAT64 connections (sync record type 4) and IPv6 persistence templates
// (type 5).
// ---------------------------------------------------------------------

/// The servers' port address: NAT64's local address.
const LADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
const RS4: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 19, 0, 11), Ipv4Addr::new(198, 19, 0, 12)];
const VIP64: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x100);
/// Clients on the client port's /48: C1 and C1B share a /64, C2 and C3
/// each have their own.
const C1: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 1, 0, 0, 0, 0x10);
const C1B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 1, 0, 0, 0, 0x20);
const C2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 2, 0, 0, 0, 0x10);
const C3: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 3, 0, 0, 0, 0x10);

/// A NAT64 service on port 80 (two IPv4 servers, four local ports) and a
/// persistent NAT over IPv6 one on port 443 (one /64, one server).
const CFG64: &str = r#"
[dpdk]
cores = "0@0,1@1"
workers = 1

[[port]]
name = "client"
device = "net_null0"
address = ["198.18.0.2/24", "2001:db8:100::2/48"]

[[port]]
name = "servers"
device = "net_null1"
address = ["198.19.0.2/24", "2001:db8:0:2::2/64"]
exception_path = false
snat_ports = "2000-2003"

[[service]]
vip = "2001:db8:100::100"
port = 80
scheduler = "rr"
forward = "fnat"
  [[service.server]]
  address = "198.19.0.11"
  port = 8080
  [[service.server]]
  address = "198.19.0.12"
  port = 8080

[[service]]
vip = "2001:db8:100::100"
port = 443
scheduler = "rr"
persistence_timeout = 300
persistence_prefix = 64
  [[service.server]]
  address = "2001:db8:0:2::11"
  port = 8443
  [[service.server]]
  address = "2001:db8:0:2::12"
  port = 8443

[ha]
vrid = 51
priority = 150
port = "servers"
peers = ["198.19.0.3"]
sync = false
"#;

fn director64(master: bool, sync_on: bool) -> Director {
    director64_on(CFG64, master, sync_on)
}

/// `director64` over `text`, a variant of [`CFG64`].
fn director64_on(text: &str, master: bool, sync_on: bool) -> Director {
    let cfg = config::parse(text).expect("config");
    let ports = vec![
        PortInfo::new(&cfg.ports[0], MacAddr(PORT0_MAC)),
        PortInfo::new(&cfg.ports[1], MacAddr(PORT1_MAC)),
    ];
    let shared = Arc::new(Shared::new(1));
    shared.ha.enable(false);
    shared.ha.set_master(master);
    shared.ha.sync.store(sync_on, Release);
    for (ip, mac) in RS.iter().zip(RS_MAC) {
        shared.neigh6.learn(*ip, MacAddr(mac), 0);
    }
    for (ip, mac) in RS4.iter().zip(RS_MAC) {
        shared.neigh.learn(*ip, MacAddr(mac), 0);
    }
    for c in [C1, C1B, C2, C3] {
        shared.neigh6.learn(c, MacAddr(CLIENT_MAC), 0);
    }
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).unwrap();
    assert_eq!((snap.services64.len(), snap.services6.len()), (1, 1));
    let mut w = Pipeline::new(0, 1, 1024, &shared);
    w.on_snapshot(&snap);
    w.ha_poll(&snap, 0);
    Director { shared, snap, w }
}

/// A TCP segment (seq 1000, ack 5001 with 'A') in an Ethernet frame
/// around `ip`.
fn seg(
    macs: ([u8; 6], [u8; 6]),
    ip: IpHeaders,
    ports: (u16, u16),
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(macs.0, macs.1)
        .ip(ip)
        .tcp(ports.0, ports.1, 1000, 64240);
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

fn seg6(
    macs: ([u8; 6], [u8; 6]),
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
    hop: u8,
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let ip = Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: 0,
        next_header: IpNumber::TCP,
        hop_limit: hop,
        source: src.0.octets(),
        destination: dst.0.octets(),
    };
    seg(
        macs,
        IpHeaders::Ipv6(ip, Default::default()),
        (src.1, dst.1),
        flags,
        payload,
    )
}

/// Over IPv4 with DF set and identification 0, as NAT64 sends TCP.
fn seg4(
    macs: ([u8; 6], [u8; 6]),
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    ttl: u8,
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, ttl, IpNumber::TCP, src.0.octets(), dst.0.octets()).unwrap();
    ip.dont_fragment = true;
    ip.identification = 0;
    seg(
        macs,
        IpHeaders::Ipv4(ip, Default::default()),
        (src.1, dst.1),
        flags,
        payload,
    )
}

/// A client's segment to the NAT64 VIP.
fn to64(client: Ipv6Addr, cport: u16, flags: &str, payload: &[u8]) -> Vec<u8> {
    seg6(
        (CLIENT_MAC, PORT0_MAC),
        (client, cport),
        (VIP64, 80),
        64,
        flags,
        payload,
    )
}

/// The (source port, destination) of an IPv4 TCP frame, its checksums
/// verified by etherparse.
fn out4(frame: &[u8]) -> (u16, Ipv4Addr) {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse");
    let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(t))) = (p.net, p.transport) else {
        panic!("not IPv4 TCP")
    };
    let h = ip.header().to_header();
    assert_eq!(h.calc_header_checksum(), h.header_checksum);
    let want = t
        .to_header()
        .calc_checksum_ipv4_raw(h.source, h.destination, t.payload())
        .unwrap();
    assert_eq!(want, t.checksum(), "TCP checksum");
    (t.source_port(), h.destination.into())
}

/// (free, owned) local ports on the servers' port.
fn snat(d: &Director) -> (usize, usize) {
    d.w.conns.snat_usage(1)
}

/// A NAT64 connection survives a takeover: its records (type 4, with the
/// IPv4 server and the local tuple) go through the codec to the backup,
/// which installs it holding its local port; as master it translates the
/// next segment of both directions byte for byte as the master did, and
/// its new connections get only the other local ports. A refresh updates
/// it; a record whose local port is held already or in no pool here is
/// counted, not installed.
#[test]
fn a_synced_nat64_connection_goes_on_after_takeover_holding_its_local_port() {
    let mut m = director64(true, true);
    let mut b = director64(false, false);
    let (v, out) = m.run(0, &to64(C1, 40001, "S", b""), 10);
    assert_eq!(v, Verdict::Tx(1));
    let (lport, rs) = out4(&out);
    assert_eq!(rs, RS4[0]);
    assert!((2000..=2003).contains(&lport));
    let synack = seg4(
        (RS_MAC[0], PORT1_MAC),
        (RS4[0], 8080),
        (LADDR, lport),
        64,
        "SA",
        b"",
    );
    assert_eq!(m.run(1, &synack, 11).0, Verdict::Tx(0));
    assert_eq!(m.run(0, &to64(C1, 40001, "A", b""), 12).0, Verdict::Tx(1));
    let recs = m.reported();
    let want = |state: TcpState, timeout_ms: u32| {
        Record::Conn64(Conn64Record {
            proto: 6,
            state: state as u8,
            method: 3,
            flags: 0,
            client: C1,
            cport: 40001,
            vip: VIP64,
            vport: 80,
            server: RS4[0],
            sport: 8080,
            timeout_ms,
            local: (LADDR, lport),
        })
    };
    assert_eq!(
        recs,
        [
            want(TcpState::SynRecv, 60_000),
            want(TcpState::Established, 900_000)
        ]
    );
    // Either direction's packets count towards the periodic refresh.
    for i in 0..49 {
        let d = if i % 2 == 0 {
            to64(C1, 40001, "A", b"more")
        } else {
            seg4(
                (RS_MAC[0], PORT1_MAC),
                (RS4[0], 8080),
                (LADDR, lport),
                64,
                "A",
                b"more",
            )
        };
        assert_ne!(m.run(i % 2, &d, 13 + i as u64).0, Verdict::Drop);
    }
    assert!(m.reported().is_empty());
    m.run(0, &to64(C1, 40001, "A", b"more"), 62);
    assert_eq!(m.reported(), [want(TcpState::Established, 900_000)]);

    carry(recs.clone(), &b);
    b.w.ha_poll(&b.snap, 20);
    assert_eq!(b.w.conns6_len(), 1);
    assert_eq!(b.w.conns.len(), 0, "not in the IPv4 table");
    assert_eq!(b.shared.worker_stats[0].sync_installed.get(), 2);
    assert_eq!(b.shared.worker_stats[0].sync_unknown.get(), 0);
    assert_eq!(snat(&b), (3, 4), "the synced local port is held");
    let on = |d: &Director, i: usize| d.snap.services64[0].servers[i].shared.active();
    assert_eq!((on(&b, 0), on(&b, 1)), (1, 0));
    // A refresh updates it; the same local port for another client, or
    // one in no pool here, is refused.
    carry(vec![recs[1]], &b);
    let Record::Conn64(c) = recs[1] else {
        unreachable!()
    };
    let other = Conn64Record { cport: 40002, ..c };
    let outside = Conn64Record {
        cport: 40003,
        local: (LADDR, 3000),
        ..c
    };
    carry(vec![Record::Conn64(other), Record::Conn64(outside)], &b);
    b.w.ha_poll(&b.snap, 21);
    assert_eq!(b.w.conns6_len(), 1);
    assert_eq!(b.shared.worker_stats[0].sync_installed.get(), 3);
    assert_eq!(b.shared.worker_stats[0].sync_unknown.get(), 2);
    assert_eq!(snat(&b), (3, 4));
    // Still backup: nothing forwarded.
    assert_eq!(b.run(0, &to64(C1, 40001, "A", b"x"), 22).0, Verdict::Drop);
    assert_eq!(b.drops(Drop::NotMaster), 1);

    // Takeover: client -> server as IPv4 from the same local tuple ...
    b.shared.ha.set_master(true);
    b.w.ha_poll(&b.snap, 30);
    let (v, out) = b.run(0, &to64(C1, 40001, "A", b"hello"), 31);
    assert_eq!(v, Verdict::Tx(1));
    let want4 = seg4(
        (PORT1_MAC, RS_MAC[0]),
        (LADDR, lport),
        (RS4[0], 8080),
        63,
        "A",
        b"hello",
    );
    assert_eq!(out, want4, "client -> server after takeover, byte for byte");
    // ... and the server's reply to it as IPv6 from the VIP.
    let answer = seg4(
        (RS_MAC[0], PORT1_MAC),
        (RS4[0], 8080),
        (LADDR, lport),
        64,
        "A",
        b"world",
    );
    let (v, out) = b.run(1, &answer, 32);
    assert_eq!(v, Verdict::Tx(0));
    let want6 = seg6(
        (PORT0_MAC, CLIENT_MAC),
        (VIP64, 80),
        (C1, 40001),
        63,
        "A",
        b"world",
    );
    assert_eq!(out, want6, "server -> client after takeover, byte for byte");
    assert_eq!(decode(&out).6, b"world", "etherparse reads it");
    assert_eq!(b.drops(Drop::NoConnection), 0);

    // New connections on the new master: the three other ports, then
    // exhaustion (counted); never the synced one.
    let mut lports = vec![lport];
    for cport in 41000..41003u16 {
        let (v, out) = b.run(0, &to64(C2, cport, "S", b""), 40);
        assert_eq!(v, Verdict::Tx(1));
        lports.push(out4(&out).0);
    }
    assert_eq!(b.run(0, &to64(C2, 41003, "S", b""), 40).0, Verdict::Drop);
    assert_eq!(b.drops(Drop::SnatExhausted), 1);
    lports.sort_unstable();
    assert_eq!(lports, [2000, 2001, 2002, 2003], "each port once");
}

/// A bulk walk reports the NAT64 connections of the IPv6 table as type 4
/// records with their local tuples.
#[test]
fn a_bulk_walk_reports_nat64_connections_with_their_local_tuples() {
    let mut m = director64(true, false);
    let mut lports = Vec::new();
    for cport in 42000..42003u16 {
        let (v, out) = m.run(0, &to64(C2, cport, "S", b""), 10);
        assert_eq!(v, Verdict::Tx(1));
        lports.push((cport, out4(&out)));
    }
    assert!(m.reported().is_empty(), "sync off: nothing reported");
    let n = m.shared.ha.request_bulk();
    while !m.shared.ha.bulk_walked(n) {
        m.w.ha_poll(&m.snap, 20);
    }
    let mut got: Vec<(u16, (u16, Ipv4Addr))> = m
        .reported()
        .into_iter()
        .map(|r| match r {
            Record::Conn64(c) => {
                assert_eq!((c.client, c.vip, c.method), (C2, VIP64, 3));
                assert_eq!(c.local.0, LADDR);
                (c.cport, (c.local.1, c.server))
            }
            other => panic!("{other:?}"),
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, lports);
}

/// A persistence template of an IPv6 service goes to the backup (type 5,
/// the client's /64 and its length) and is honoured there after a
/// takeover: another client of the same /64 goes to the template's
/// server, where the backup's own rr would have sent a new client first
/// (a client of another /64 shows it). A template with another prefix
/// length than the service's is counted, not installed.
#[test]
fn a_synced_ipv6_template_keeps_a_prefix_on_its_server_after_takeover() {
    let mut m = director64(true, true);
    let mut b = director64(false, false);
    let to443 = |client: Ipv6Addr, cport: u16| {
        seg6(
            (CLIENT_MAC, PORT0_MAC),
            (client, cport),
            (VIP64, 443),
            64,
            "S",
            b"",
        )
    };
    // rr: C2's /64 to rs1, then C1's /64 to rs2.
    for (i, c) in [C2, C1].into_iter().enumerate() {
        let (v, out) = m.run(0, &to443(c, 40010 + i as u16), 10);
        assert_eq!(v, Verdict::Tx(1));
        assert_eq!(decode(&out).2, RS[i]);
    }
    let recs = m.reported();
    let tpl = |net: Ipv6Addr, rs: usize| {
        Record::Template6(Template6Record {
            proto: 6,
            vip: VIP64,
            vport: 443,
            prefix_len: 64,
            client_net: net,
            server: RS[rs],
            sport: 8443,
            timeout_ms: 300_000,
        })
    };
    let conn = |client: Ipv6Addr, cport: u16, rs: usize| {
        Record::Conn6(Conn6Record {
            proto: 6,
            state: TcpState::SynRecv as u8,
            method: 0,
            flags: 0,
            client,
            cport,
            vip: VIP64,
            vport: 443,
            server: RS[rs],
            sport: 8443,
            timeout_ms: 60_000,
        })
    };
    let net1: Ipv6Addr = "2001:db8:100:1::".parse().unwrap();
    let net2: Ipv6Addr = "2001:db8:100:2::".parse().unwrap();
    assert_eq!(
        recs,
        [
            tpl(net2, 0),
            conn(C2, 40010, 0),
            tpl(net1, 1),
            conn(C1, 40011, 1)
        ]
    );
    // A known client again: its template serves it, nothing new to report
    // but the connection.
    m.run(0, &to443(C1B, 40012), 11);
    assert_eq!(m.reported(), [conn(C1B, 40012, 1)]);

    // The templates alone go to the backup (and one of a /56, refused).
    let Record::Template6(t) = tpl(net1, 1) else {
        unreachable!()
    };
    let wrong = Template6Record {
        prefix_len: 56,
        client_net: "2001:db8:100:300::".parse().unwrap(),
        ..t
    };
    let mut only: Vec<Record> = recs
        .into_iter()
        .filter(|r| matches!(r, Record::Template6(_)))
        .collect();
    only.push(Record::Template6(wrong));
    carry(only, &b);
    b.w.ha_poll(&b.snap, 20);
    assert_eq!(b.shared.worker_stats[0].sync_installed.get(), 2);
    assert_eq!(b.shared.worker_stats[0].sync_unknown.get(), 1);
    let svc = u32::from(b.snap.services6[0].id);
    let mut keys: Vec<(u32, Ipv4Addr, u32)> = b
        .shared
        .persist
        .templates(20)
        .into_iter()
        .map(|t| (t.service, t.client_net, t.server_id))
        .collect();
    keys.sort_unstable();
    let id = |i: usize| b.snap.services6[0].servers[i].shared.id;
    let mut want = vec![
        (svc, client_net6(C1, 64), id(1)),
        (svc, client_net6(C2, 64), id(0)),
    ];
    want.sort_unstable();
    assert_eq!(keys, want, "keyed by the fold of the prefix, as pick6 keys");
    assert_eq!(b.w.conns6_len(), 0, "no connection came over");

    // Takeover: C1B (C1's /64) goes to rs2 by the template; C3 (a /64 of
    // its own) to rs1, the backup's rr's first choice.
    b.shared.ha.set_master(true);
    b.w.ha_poll(&b.snap, 30);
    let (v, out) = b.run(0, &to443(C1B, 40020), 31);
    assert_eq!(v, Verdict::Tx(1));
    let (src, sport, dst, dport, hop, mac, _) = decode(&out);
    assert_eq!(
        (src, sport, dst, dport, hop, mac),
        (C1B, 40020, RS[1], 8443, 63, RS_MAC[1])
    );
    let (v, out) = b.run(0, &to443(C3, 40021), 32);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(decode(&out).2, RS[0]);
    assert_eq!(b.drops(Drop::NoServer), 0);
}

/// A backup that joins after the master made its IPv6 templates learns
/// them from the bulk copy (type 5, through the codec): the table keeps
/// only the fold of a prefix, so the record carries the prefix's key form
/// (the fold in the first 32 bits), from which the backup derives the same
/// key. After a takeover another client of C1's /64 goes to C1's server,
/// where the backup's own rr sends a new /64 first.
#[test]
fn a_bulk_copy_carries_ipv6_templates_made_before_the_backup_joined() {
    let mut m = director64(true, true);
    let to443 = |client: Ipv6Addr, cport: u16| {
        seg6(
            (CLIENT_MAC, PORT0_MAC),
            (client, cport),
            (VIP64, 443),
            64,
            "S",
            b"",
        )
    };
    // rr: C2's /64 to rs1, then C1's /64 to rs2.
    for (i, c) in [C2, C1].into_iter().enumerate() {
        let (v, out) = m.run(0, &to443(c, 40010 + i as u16), 10);
        assert_eq!(v, Verdict::Tx(1));
        assert_eq!(decode(&out).2, RS[i]);
    }
    // Streamed as they were made, to no one: the backup starts now.
    assert_eq!(m.reported().len(), 4);
    let mut b = director64(false, false);

    let n = m.shared.ha.request_bulk();
    while !m.shared.ha.bulk_walked(n) {
        m.w.ha_poll(&m.snap, 20);
    }
    let recs = m.reported();
    let mut tpls: Vec<Template6Record> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Template6(t) => Some(*t),
            _ => None,
        })
        .collect();
    tpls.sort_unstable_by_key(|t| t.client_net);
    let tpl = |net: &str, rs: usize| Template6Record {
        proto: 6,
        vip: VIP64,
        vport: 443,
        prefix_len: 64,
        client_net: net.parse().unwrap(),
        server: RS[rs],
        sport: 8443,
        timeout_ms: 300_000 - 10,
    };
    // The folds of 2001:db8:100:1::/64 and 2001:db8:100:2::/64:
    // 0x2001_0db8 ^ 0x0100_0001 and ^ 0x0100_0002.
    assert_eq!(tpls, [tpl("2101:db9::", 1), tpl("2101:dba::", 0)]);
    for (t, c) in tpls.iter().zip([C1, C2]) {
        assert_eq!(client_net6(t.client_net, 64), client_net6(c, 64));
    }
    let mut conns: Vec<(Ipv6Addr, u16, u8)> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Conn6(c) => Some((c.client, c.cport, c.state)),
            _ => None,
        })
        .collect();
    conns.sort_unstable();
    let syn = TcpState::SynRecv as u8;
    assert_eq!(conns, [(C1, 40011, syn), (C2, 40010, syn)]);
    assert_eq!(recs.len(), 4);

    carry(recs, &b);
    b.w.ha_poll(&b.snap, 21);
    assert_eq!(b.shared.worker_stats[0].sync_installed.get(), 4);
    assert_eq!(b.shared.worker_stats[0].sync_unknown.get(), 0);
    assert_eq!(b.w.conns6_len(), 2);
    let svc = u32::from(b.snap.services6[0].id);
    let id = |i: usize| b.snap.services6[0].servers[i].shared.id;
    let mut keys: Vec<(u32, Ipv4Addr, u32, u64)> = b
        .shared
        .persist
        .templates(21)
        .into_iter()
        .map(|t| (t.service, t.client_net, t.server_id, t.left_ms))
        .collect();
    keys.sort_unstable();
    let mut want = vec![
        (svc, client_net6(C1, 64), id(1), 300_000 - 10),
        (svc, client_net6(C2, 64), id(0), 300_000 - 10),
    ];
    want.sort_unstable();
    assert_eq!(
        keys, want,
        "keyed as pick6 keys, with the master's time left"
    );

    // Takeover: C1B (C1's /64) to rs2 by the template; C3 (a /64 of its
    // own) to rs1, the backup's rr's first choice.
    b.shared.ha.set_master(true);
    b.w.ha_poll(&b.snap, 30);
    let (v, out) = b.run(0, &to443(C1B, 40020), 31);
    assert_eq!(v, Verdict::Tx(1));
    let (src, sport, dst, dport, hop, mac, _) = decode(&out);
    assert_eq!(
        (src, sport, dst, dport, hop, mac),
        (C1B, 40020, RS[1], 8443, 63, RS_MAC[1])
    );
    let (v, out) = b.run(0, &to443(C3, 40021), 32);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(decode(&out).2, RS[0]);
    assert_eq!(b.drops(Drop::NoServer), 0);
}

/// NAT64 persistence (`persist64.rs`): a template the master's scheduler
/// makes goes as a type 5 record with the IPv4 server IPv4-mapped (also in
/// a bulk copy); the backup installs it under the same key for the NAT64
/// service, and after a takeover another client of that /64 goes to that
/// IPv4 server while a new /64 gets the backup's own rr pick.
#[test]
fn a_synced_nat64_template_keeps_a_prefix_on_its_ipv4_server_after_takeover() {
    let text = CFG64.replacen(
        "scheduler = \"rr\"\nforward = \"fnat\"\n",
        "scheduler = \"rr\"\nforward = \"fnat\"\npersistence_timeout = 300\npersistence_prefix = 64\n",
        1,
    );
    let mut m = director64_on(&text, true, true);
    let mut b = director64_on(&text, false, false);
    // rr: C2's /64 to rs1, then C1's /64 to rs2.
    for (i, c) in [C2, C1].into_iter().enumerate() {
        let (v, out) = m.run(0, &to64(c, 40010 + i as u16, "S", b""), 10);
        assert_eq!(v, Verdict::Tx(1));
        assert_eq!(out4(&out).1, RS4[i]);
    }
    let tpl = |net: Ipv6Addr, rs: usize| Template6Record {
        proto: 6,
        vip: VIP64,
        vport: 80,
        prefix_len: 64,
        client_net: net,
        server: RS4[rs].to_ipv6_mapped(),
        sport: 8080,
        timeout_ms: 300_000,
    };
    let net1: Ipv6Addr = "2001:db8:100:1::".parse().unwrap();
    let net2: Ipv6Addr = "2001:db8:100:2::".parse().unwrap();
    let only: Vec<Record> = m
        .reported()
        .into_iter()
        .filter(|r| matches!(r, Record::Template6(_)))
        .collect();
    assert_eq!(
        only,
        [
            Record::Template6(tpl(net2, 0)),
            Record::Template6(tpl(net1, 1))
        ]
    );
    carry(only, &b);
    b.w.ha_poll(&b.snap, 20);
    assert_eq!(b.shared.worker_stats[0].sync_installed.get(), 2);
    assert_eq!(b.shared.worker_stats[0].sync_unknown.get(), 0);
    let svc = u32::from(b.snap.services64[0].id);
    let id = |i: usize| b.snap.services64[0].servers[i].shared.id;
    let mut keys: Vec<(u32, Ipv4Addr, u32)> = b
        .shared
        .persist
        .templates(20)
        .into_iter()
        .map(|t| (t.service, t.client_net, t.server_id))
        .collect();
    keys.sort_unstable();
    let mut want = vec![
        (svc, client_net6(C1, 64), id(1)),
        (svc, client_net6(C2, 64), id(0)),
    ];
    want.sort_unstable();
    assert_eq!(keys, want, "keyed as pick64 keys");

    // A bulk copy of the master's table names them alike.
    let n = m.shared.ha.request_bulk();
    while !m.shared.ha.bulk_walked(n) {
        m.w.ha_poll(&m.snap, 20);
    }
    let mut bulk: Vec<Template6Record> = m
        .reported()
        .into_iter()
        .filter_map(|r| match r {
            Record::Template6(t) => Some(t),
            _ => None,
        })
        .collect();
    bulk.sort_unstable_by_key(|t| t.server);
    let key_form =
        |net: Ipv6Addr| Ipv6Addr::from(u128::from(u32::from(client_net6(net, 64))) << 96);
    let bulk_tpl = |net: Ipv6Addr, rs: usize| Template6Record {
        client_net: key_form(net),
        timeout_ms: 300_000 - 10,
        ..tpl(net, rs)
    };
    assert_eq!(bulk, [bulk_tpl(net2, 0), bulk_tpl(net1, 1)]);

    // Takeover: C1B (C1's /64) goes to rs2 by the template; C3 to rs1.
    b.shared.ha.set_master(true);
    b.w.ha_poll(&b.snap, 30);
    let (v, out) = b.run(0, &to64(C1B, 40020, "S", b""), 31);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(out4(&out).1, RS4[1]);
    let (v, out) = b.run(0, &to64(C3, 40021, "S", b""), 32);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(out4(&out).1, RS4[0]);
}

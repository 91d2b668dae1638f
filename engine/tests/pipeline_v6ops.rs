//! One-packet scheduling (`ops`) and sorry servers for IPv6 services
//! through the worker pipeline (issue 13), as IPv4 has them:
//!
//! * ops: six datagrams of one client flow to a NAT rr service land on the
//!   three servers 1,2,3,1,2,3, byte for byte against etherparse, no
//!   connection is made, each counts as a connection of its server, and a
//!   server's reply (no entry to find) leaves from the VIP byte for byte;
//!   DR and TUN ops datagrams likewise, with no connection;
//! * sorry server: with every server at weight 0 (or down, or the quorum
//!   lost) the SYN goes to the sorry server byte for byte and its reply
//!   back from the VIP; a server coming back takes the new connections
//!   while the sorry server keeps its own.
#![cfg(feature = "dpdk")]

mod v6_common;

use std::net::Ipv6Addr;

use engine::config::{ServerConfig, ServiceConfig};
use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::Verdict;
use engine::dataplane::snapshot::{Health, HealthView};
use etherparse::{IpNumber, NetSlice, PacketBuilder, SlicedPacket};
use v6_common::{Rig, CLIENT, CLIENT_MAC, PORT0_MAC, PORT1_ADDR, PORT1_MAC};

const RS_MAC: [[u8; 6]; 3] = [
    [2, 0x5e, 0, 0, 0, 0x11],
    [2, 0x5e, 0, 0, 0, 0x12],
    [2, 0x5e, 0, 0, 0, 0x13],
];
const SORRY_MAC: [u8; 6] = [2, 0x5e, 0, 0, 0, 0x99];
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x100);
const RS: [Ipv6Addr; 3] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x11),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x12),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x13),
];
const SORRY: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x99);

/// UDP 53: ops, NAT rr over three servers at 5353. UDP 54: ops, rr over
/// two DR servers and a TUN one. TCP 80: rr over three NAT servers with a
/// sorry server and quorum 1.
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
port = 53
protocol = "udp"
scheduler = "rr"
ops = true
  [[service.server]]
  address = "2001:db8:0:2::11"
  port = 5353
  [[service.server]]
  address = "2001:db8:0:2::12"
  port = 5353
  [[service.server]]
  address = "2001:db8:0:2::13"
  port = 5353

[[service]]
vip = "2001:db8:0:1::100"
port = 54
protocol = "udp"
scheduler = "rr"
ops = true
forward = "dr"
  [[service.server]]
  address = "2001:db8:0:2::11"
  [[service.server]]
  address = "2001:db8:0:2::12"
  [[service.server]]
  address = "2001:db8:0:2::13"
  forward = "tun"

[[service]]
vip = "2001:db8:0:1::100"
port = 80
scheduler = "rr"
sorry_server = "[2001:db8:0:2::99]:8080"
quorum = 1
  [[service.server]]
  address = "2001:db8:0:2::11"
  port = 8080
  [[service.server]]
  address = "2001:db8:0:2::12"
  port = 8080
  [[service.server]]
  address = "2001:db8:0:2::13"
  port = 8080
"#;

impl Rig {
    fn new() -> Rig {
        let neighbours: Vec<_> = RS
            .into_iter()
            .zip(RS_MAC)
            .chain([(SORRY, SORRY_MAC)])
            .collect();
        let r = Rig::with(CFG, &neighbours);
        assert_eq!(r.snap().services6.len(), 3);
        r
    }

    fn created(&self) -> u64 {
        self.shared.worker_stats[0].conns_created.get()
    }

    /// (conns, in packets, out packets, active + inactive) of the server at
    /// `addr:port` of the service with id `svc`.
    fn counts(&self, svc: u16, addr: Ipv6Addr, port: u16) -> [u64; 4] {
        let d = self
            .shared
            .registry
            .entries()
            .into_iter()
            .find(|e| e.0 == svc && e.1 == addr && e.2 == port)
            .expect("server registered")
            .3;
        [
            d.total(|c| &c.conns),
            d.total(|c| &c.in_packets),
            d.total(|c| &c.out_packets),
            u64::from(d.active()) + u64::from(d.inactive()),
        ]
    }

    /// The id of the IPv6 service on VIP port `port`.
    fn sid(&self, port: u16) -> u16 {
        let snap = self.shared.snapshot.load_full();
        snap.services6.iter().find(|s| s.port == port).unwrap().id
    }
}

/// An Ethernet/IPv6/UDP frame as etherparse writes it (checksum computed
/// over the whole datagram).
fn udp6(
    macs: ([u8; 6], [u8; 6]),
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
    hop: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv6(src.0.octets(), dst.0.octets(), hop)
        .udp(src.1, dst.1)
        .write(&mut v, payload)
        .unwrap();
    v
}

#[derive(Clone, Copy)]
enum Tcp {
    Syn,
    SynAck,
    Ack,
}

/// An Ethernet/IPv6/TCP frame as etherparse writes it.
fn tcp6(
    macs: ([u8; 6], [u8; 6]),
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
    hop: u8,
    flags: Tcp,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv6(src.0.octets(), dst.0.octets(), hop)
        .tcp(src.1, dst.1, 0x1234_5678, 64240);
    let b = match flags {
        Tcp::Syn => b.syn(),
        Tcp::SynAck => b.syn().ack(0x1234_5679),
        Tcp::Ack => b.ack(0x0bad_cafe),
    };
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// The destination address of a forwarded frame (an outer one for TUN).
fn dst_of(out: &[u8]) -> Ipv6Addr {
    let s = SlicedPacket::from_ethernet(out).expect("etherparse parses the output");
    match s.net {
        Some(NetSlice::Ipv6(ip)) => Ipv6Addr::from(ip.header().destination()),
        _ => panic!("not IPv6"),
    }
}

#[test]
fn ops_nat_schedules_every_datagram_and_keeps_no_connection() {
    let mut r = Rig::new();
    let sid = r.sid(53);
    let mut got = Vec::new();
    for i in 0..6u64 {
        let q = format!("query {i}");
        let f = udp6(
            (CLIENT_MAC, PORT0_MAC.0),
            (CLIENT, 40000),
            (VIP6, 53),
            64,
            q.as_bytes(),
        );
        let (v, out) = r.run(0, &f, 2_000 + i);
        assert_eq!(v, Verdict::Tx(1), "datagram {i} to the servers' port");
        let k = RS
            .iter()
            .position(|&a| a == dst_of(&out))
            .expect("a server");
        let want = udp6(
            (PORT1_MAC.0, RS_MAC[k]),
            (CLIENT, 40000),
            (RS[k], 5353),
            63,
            q.as_bytes(),
        );
        assert_eq!(out, want, "datagram {i}, byte for byte");
        got.push(k);
        assert_eq!(r.w.conns6_len(), 0, "no connection entry");
    }
    assert_eq!(got, [0, 1, 2, 0, 1, 2], "rr, each datagram on its own");
    assert_eq!(r.created(), 0, "one-packet scheduling made connections");
    for rs in RS {
        // Two datagrams, counted as two connections, none held.
        assert_eq!(r.counts(sid, rs, 5353), [2, 2, 0, 0], "{rs}");
    }

    // Each server's reply has no entry: matched by its source, it leaves
    // from the VIP to the client (learned from its datagrams).
    for (k, rs) in RS.iter().enumerate() {
        let f = udp6(
            (RS_MAC[k], PORT1_MAC.0),
            (*rs, 5353),
            (CLIENT, 40000),
            64,
            b"answer",
        );
        let (v, out) = r.run(1, &f, 2_100);
        assert_eq!(v, Verdict::Tx(0), "reply of {rs}");
        let want = udp6(
            (PORT0_MAC.0, CLIENT_MAC),
            (VIP6, 53),
            (CLIENT, 40000),
            63,
            b"answer",
        );
        assert_eq!(out, want, "reply of {rs}, byte for byte");
        assert_eq!(r.counts(sid, *rs, 5353), [2, 2, 1, 0]);
    }
    assert_eq!(r.w.conns6_len(), 0);

    // A datagram from a server port no ops service has is still a stray.
    let before = r.drops(Drop::NoService);
    let f = udp6(
        (RS_MAC[0], PORT1_MAC.0),
        (RS[0], 5354),
        (CLIENT, 40000),
        64,
        b"x",
    );
    assert_eq!(r.run(1, &f, 2_200).0, Verdict::Drop);
    assert_eq!(r.drops(Drop::NoService), before + 1);
}

#[test]
fn ops_dr_and_tun_datagrams_keep_no_connection() {
    let mut r = Rig::new();
    let sid = r.sid(54);
    let payload = b"dr or tun";
    let mut got = Vec::new();
    for i in 0..6u64 {
        let f = udp6(
            (CLIENT_MAC, PORT0_MAC.0),
            (CLIENT, 40010),
            (VIP6, 54),
            64,
            payload,
        );
        let (v, out) = r.run(0, &f, 3_000 + i);
        assert_eq!(v, Verdict::Tx(1), "datagram {i}");
        // DR: the MACs and hop limit only; TUN: an outer header from the
        // servers' port's address around the (hop-limit - 1) datagram.
        let inner = udp6(
            (CLIENT_MAC, PORT0_MAC.0),
            (CLIENT, 40010),
            (VIP6, 54),
            63,
            payload,
        );
        let dr = |k: usize| {
            let mut v = inner.clone();
            v[..6].copy_from_slice(&RS_MAC[k]);
            v[6..12].copy_from_slice(&PORT1_MAC.0);
            v
        };
        let mut tun = Vec::new();
        PacketBuilder::ethernet2(PORT1_MAC.0, RS_MAC[2])
            .ipv6(PORT1_ADDR.octets(), RS[2].octets(), 63)
            .write(&mut tun, IpNumber::IPV6, &inner[14..])
            .unwrap();
        let k = if out == dr(0) {
            0
        } else if out == dr(1) {
            1
        } else {
            assert_eq!(out, tun, "datagram {i}: DR or TUN, byte for byte");
            2
        };
        got.push(k);
        assert_eq!(r.w.conns6_len(), 0, "no connection entry");
    }
    assert_eq!(got, [0, 1, 2, 0, 1, 2]);
    assert_eq!(r.created(), 0);
    for rs in RS {
        assert_eq!(r.counts(sid, rs, 54), [2, 2, 0, 0], "{rs}");
    }
}

/// Every server of the TCP service at weight 0, down, or as given.
struct Servers {
    health: Health,
    /// This server is up whatever `health` says.
    up: Option<Ipv6Addr>,
    quorum_lost: bool,
}

impl HealthView for Servers {
    fn health(&self, svc: &ServiceConfig, srv: &ServerConfig) -> Health {
        if svc.port != 80 || self.up == Some(v6_of(srv)) {
            Health::Up
        } else {
            self.health
        }
    }
    fn quorum_lost(&self, svc: &ServiceConfig) -> bool {
        svc.port == 80 && self.quorum_lost
    }
}

fn v6_of(srv: &ServerConfig) -> Ipv6Addr {
    match srv.address {
        std::net::IpAddr::V6(a) => a,
        std::net::IpAddr::V4(_) => Ipv6Addr::UNSPECIFIED,
    }
}

/// The client's SYN from `cport` to `[VIP]:80`.
fn syn(cport: u16) -> Vec<u8> {
    tcp6(
        (CLIENT_MAC, PORT0_MAC.0),
        (CLIENT, cport),
        (VIP6, 80),
        64,
        Tcp::Syn,
        &[],
    )
}

#[test]
fn the_sorry_server_takes_new_connections_when_no_server_can() {
    let mut r = Rig::new();
    let sid = r.sid(80);
    // Every server at weight 0 (keepalived's inhibit_on_failure).
    r.rebuild(&Servers {
        health: Health::Inhibited,
        up: None,
        quorum_lost: false,
    });
    let (v, out) = r.run(0, &syn(41000), 4_000);
    assert_eq!(v, Verdict::Tx(1));
    let want = tcp6(
        (PORT1_MAC.0, SORRY_MAC),
        (CLIENT, 41000),
        (SORRY, 8080),
        63,
        Tcp::Syn,
        &[],
    );
    assert_eq!(out, want, "SYN to the sorry server, byte for byte");
    assert_eq!(r.w.conns6_len(), 1, "a connection of the IPv6 table");
    assert_eq!(r.counts(sid, SORRY, 8080), [1, 1, 0, 1]);

    // Its reply goes back from the VIP.
    let sa = tcp6(
        (SORRY_MAC, PORT1_MAC.0),
        (SORRY, 8080),
        (CLIENT, 41000),
        64,
        Tcp::SynAck,
        &[],
    );
    let (v, out) = r.run(1, &sa, 4_001);
    assert_eq!(v, Verdict::Tx(0));
    let want = tcp6(
        (PORT0_MAC.0, CLIENT_MAC),
        (VIP6, 80),
        (CLIENT, 41000),
        63,
        Tcp::SynAck,
        &[],
    );
    assert_eq!(out, want, "the sorry server's SYN-ACK, byte for byte");
    assert_eq!(r.counts(sid, SORRY, 8080), [1, 1, 1, 1]);

    // Every server down: the sorry server still.
    r.rebuild(&Servers {
        health: Health::Down,
        up: None,
        quorum_lost: false,
    });
    let (v, out) = r.run(0, &syn(41001), 4_002);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(dst_of(&out), SORRY);

    // The second server comes back: it takes the new connections, the
    // sorry server keeps the ones it has.
    r.rebuild(&Servers {
        health: Health::Down,
        up: Some(RS[1]),
        quorum_lost: false,
    });
    for cport in [41002, 41003] {
        let (v, out) = r.run(0, &syn(cport), 4_003);
        assert_eq!(v, Verdict::Tx(1));
        let want = tcp6(
            (PORT1_MAC.0, RS_MAC[1]),
            (CLIENT, cport),
            (RS[1], 8080),
            63,
            Tcp::Syn,
            &[],
        );
        assert_eq!(out, want, "the server back takes new connections");
    }
    let data = tcp6(
        (CLIENT_MAC, PORT0_MAC.0),
        (CLIENT, 41000),
        (VIP6, 80),
        64,
        Tcp::Ack,
        b"GET / HTTP/1.0\r\n\r\n",
    );
    let (v, out) = r.run(0, &data, 4_004);
    assert_eq!(v, Verdict::Tx(1));
    let want = tcp6(
        (PORT1_MAC.0, SORRY_MAC),
        (CLIENT, 41000),
        (SORRY, 8080),
        63,
        Tcp::Ack,
        b"GET / HTTP/1.0\r\n\r\n",
    );
    assert_eq!(out, want, "the sorry server keeps its connection");
    assert_eq!(r.w.conns6_len(), 4);
    assert_eq!(r.counts(sid, SORRY, 8080), [2, 3, 1, 2]);
    assert_eq!(r.counts(sid, RS[1], 8080), [2, 2, 0, 2]);
    assert_eq!(r.drops(Drop::NoServer), 0);
}

#[test]
fn a_lost_quorum_sends_new_connections_to_the_sorry_server() {
    let mut r = Rig::new();
    let sid = r.sid(80);
    r.rebuild(&Servers {
        health: Health::Up,
        up: None,
        quorum_lost: true,
    });
    for cport in [42000, 42001, 42002] {
        let (v, out) = r.run(0, &syn(cport), 5_000);
        assert_eq!(v, Verdict::Tx(1));
        assert_eq!(dst_of(&out), SORRY, "quorum lost: the sorry server");
    }
    assert_eq!(r.counts(sid, SORRY, 8080)[0], 3);
    // Quorum regained: the real servers again, rr from the first.
    r.rebuild(&Servers {
        health: Health::Up,
        up: None,
        quorum_lost: false,
    });
    let got: Vec<Ipv6Addr> = (43000..43003)
        .map(|cport| {
            let (v, out) = r.run(0, &syn(cport), 5_001);
            assert_eq!(v, Verdict::Tx(1));
            dst_of(&out)
        })
        .collect();
    assert_eq!(got, RS);
    assert_eq!(r.counts(sid, SORRY, 8080)[0], 3);
}

#[test]
fn without_a_sorry_server_no_server_is_a_counted_drop() {
    let mut r = Rig::new();
    r.cfg.services[2].sorry_server = None;
    r.rebuild(&Servers {
        health: Health::Down,
        up: None,
        quorum_lost: false,
    });
    assert_eq!(r.run(0, &syn(44000), 6_000).0, Verdict::Drop);
    assert_eq!(r.drops(Drop::NoServer), 1);
    assert_eq!(r.w.conns6_len(), 0);
}

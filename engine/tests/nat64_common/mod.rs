//! The NAT64 pipeline tests' rig (`pipeline_nat64*.rs`): one worker, an
//! IPv6 client port and an IPv4 servers' port, two NAT64 services
//! (`[VIP]:80` TCP rr over three servers, `[VIP]:53` UDP) and an IPv4
//! full-NAT one; frames built with etherparse.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use engine::config;
use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::{Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use etherparse::{
    IpNumber, Ipv4Header, Ipv6Header, NetSlice, PacketBuilder, SlicedPacket, TcpOptionElement,
    TransportSlice,
};

pub const PORT0_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x02]);
pub const PORT1_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x01]);
pub const CLIENT_MAC: [u8; 6] = [2, 0xc1, 0, 0, 0, 0x10];
pub const RS_MAC: [[u8; 6]; 3] = [
    [2, 0x5e, 0, 0, 0, 0x11],
    [2, 0x5e, 0, 0, 0, 0x12],
    [2, 0x5e, 0, 0, 0, 0x13],
];
pub const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x10);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x100);
pub const LADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
pub const RS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(198, 19, 0, 11),
    Ipv4Addr::new(198, 19, 0, 12),
    Ipv4Addr::new(198, 19, 0, 13),
];
pub const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

pub fn cfg(snat: &str) -> String {
    format!(
        r#"
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
address = "198.19.0.1/24"
exception_path = false
{snat}

[timeouts]
udp = 5
tcp_syn_recv = 5

[[service]]
vip = "2001:db8:0:1::100"
port = 80
scheduler = "rr"
forward = "fnat"
  [[service.server]]
  address = "198.19.0.11"
  port = 8080
  [[service.server]]
  address = "198.19.0.12"
  port = 8080
  [[service.server]]
  address = "198.19.0.13"
  port = 8080

[[service]]
vip = "2001:db8:0:1::100"
port = 53
protocol = "udp"
forward = "fnat"
  [[service.server]]
  address = "198.19.0.11"
  port = 5353

[[service]]
vip = "198.18.0.100"
port = 80
forward = "fnat"
  [[service.server]]
  address = "198.19.0.12"
  port = 8080
"#
    )
}

pub struct Rig {
    pub shared: Arc<Shared>,
    /// Worker 0.
    pub w: Pipeline,
    /// Workers 1.. (`with_workers`).
    pub others: Vec<Pipeline>,
}

impl Rig {
    pub fn new(snat: &str) -> Rig {
        Rig::with_workers(snat, 1)
    }

    pub fn with_workers(snat: &str, workers: usize) -> Rig {
        Rig::with_config(&cfg(snat), workers)
    }

    /// The rig over `text`, a variant of [`cfg`]'s (the same services).
    pub fn with_config(text: &str, workers: usize) -> Rig {
        let shared = Arc::new(Shared::new(workers));
        shared.ha.set_master(true);
        let w = Pipeline::new(0, workers, 1 << 12, &shared);
        let others = (1..workers)
            .map(|i| Pipeline::new(i, workers, 1 << 12, &shared))
            .collect();
        let c = config::parse(text).expect("config");
        assert!(
            c.warnings().iter().all(|w| !w.contains("IPv6")),
            "NAT64 services are forwarded: {:?}",
            c.warnings()
        );
        let ports = vec![
            PortInfo::new(&c.ports[0], PORT0_MAC),
            PortInfo::new(&c.ports[1], PORT1_MAC),
        ];
        let snap = Snapshot::build(&c, &ports, &shared.registry, 1, &AllUp).unwrap();
        assert_eq!(snap.services64.len(), 2);
        assert!(snap.services6.is_empty());
        assert!(snap.has_fnat);
        shared.publish(snap);
        // The servers are configured next hops (reserved entries, NAT64's
        // included): they take an answer to the director's request only.
        for ip in RS {
            assert!(shared.neigh.is_reserved(ip), "{ip} reserved");
            let _ = shared.neigh.resolve(ip, 0);
        }
        for (ip, mac) in RS.iter().zip(RS_MAC) {
            shared.neigh.learn_reply(*ip, MacAddr(mac), 1);
        }
        shared.neigh.learn(CLIENT4, MacAddr(CLIENT_MAC), 0);
        let mut r = Rig { shared, w, others };
        let snap = r.shared.snapshot.load_full();
        r.w.on_snapshot(&snap);
        for o in &mut r.others {
            o.on_snapshot(&snap);
        }
        r
    }

    /// One frame through worker `worker` (`owned`: handed over to it).
    pub fn run_on(
        &mut self,
        worker: usize,
        port: usize,
        frame: &[u8],
        now_ms: u64,
        owned: bool,
    ) -> (Verdict, Vec<u8>) {
        let snap = self.shared.snapshot.load_full();
        let mut f = VecFrame::new(frame);
        let w = match worker {
            0 => &mut self.w,
            i => &mut self.others[i - 1],
        };
        let v = w.process(&snap, &mut f, port, now_ms, owned);
        (v, f.to_vec())
    }

    pub fn run(&mut self, port: usize, frame: &[u8], now_ms: u64) -> (Verdict, Vec<u8>) {
        let snap = self.shared.snapshot.load_full();
        let mut f = VecFrame::new(frame);
        let v = self.w.process(&snap, &mut f, port, now_ms, false);
        (v, f.to_vec())
    }

    /// Every non-zero drop counter (for failure messages).
    pub fn all_drops(&self) -> Vec<(Drop, u64)> {
        Drop::ALL
            .iter()
            .map(|&d| (d, self.drops(d)))
            .filter(|&(_, n)| n != 0)
            .collect()
    }

    pub fn drops(&self, d: Drop) -> u64 {
        self.shared.worker_stats[0].drops[d as usize].get()
    }

    /// (conns, in packets, out packets) of an IPv4 server of the NAT64
    /// service `svc_port`.
    pub fn counts(&self, rs: Ipv4Addr, port: u16) -> [u64; 3] {
        let d = self
            .shared
            .registry
            .entries()
            .into_iter()
            .find(|e| e.1 == rs && e.2 == port && e.0 != self.v4_service())
            .expect("server registered")
            .3;
        [
            d.total(|c| &c.conns),
            d.total(|c| &c.in_packets),
            d.total(|c| &c.out_packets),
        ]
    }

    /// The id of the IPv4 full-NAT service (registered last).
    pub fn v4_service(&self) -> u16 {
        let snap = self.shared.snapshot.load_full();
        snap.services[0].id
    }
}

/// A TCP segment over IPv6 (`syn`: a SYN with MSS 1460, else an ACK).
#[allow(clippy::too_many_arguments)]
pub fn tcp6(
    macs: ([u8; 6], [u8; 6]),
    src: (Ipv6Addr, u16),
    dst: (Ipv6Addr, u16),
    hop: u8,
    flags: &str,
    mss: u16,
    payload: &[u8],
) -> Vec<u8> {
    let ip = Ipv6Header {
        traffic_class: 0x28,
        flow_label: Default::default(),
        payload_length: 0,
        next_header: IpNumber::TCP,
        hop_limit: hop,
        source: src.0.octets(),
        destination: dst.0.octets(),
    };
    let b = PacketBuilder::ethernet2(macs.0, macs.1)
        .ip(etherparse::IpHeaders::Ipv6(ip, Default::default()))
        .tcp(src.1, dst.1, 0x1234_5678, 64240);
    build_tcp(b, flags, mss, payload)
}

/// A TCP segment over IPv4, DF set and identification 0 (as NAT64 sends).
#[allow(clippy::too_many_arguments)]
pub fn tcp4(
    macs: ([u8; 6], [u8; 6]),
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    ttl: u8,
    flags: &str,
    mss: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, ttl, IpNumber::TCP, src.0.octets(), dst.0.octets()).unwrap();
    ip.dont_fragment = true;
    ip.identification = 0;
    ip.dscp = etherparse::Ipv4Dscp::try_new(0x28 >> 2).unwrap();
    let b = PacketBuilder::ethernet2(macs.0, macs.1)
        .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
        .tcp(src.1, dst.1, 0x1234_5678, 64240);
    build_tcp(b, flags, mss, payload)
}

pub fn build_tcp(
    b: etherparse::PacketBuilderStep<etherparse::TcpHeader>,
    flags: &str,
    mss: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = b;
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(0x0bad_cafe);
    }
    if mss != 0 {
        b = b
            .options(&[TcpOptionElement::MaximumSegmentSize(mss)])
            .unwrap();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

pub fn syn(cport: u16) -> Vec<u8> {
    tcp6(
        (CLIENT_MAC, PORT0_MAC.0),
        (CLIENT, cport),
        (VIP6, 80),
        64,
        "S",
        1460,
        &[],
    )
}

/// The IPv4 TCP packet's (src, sport, dst, dport), its checksums checked
/// by etherparse.
pub fn tuple4(out: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16) {
    let s = SlicedPacket::from_ethernet(out).expect("etherparse parses the output");
    let Some(NetSlice::Ipv4(ip)) = s.net else {
        panic!("not IPv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.calc_header_checksum(), h.header_checksum, "IPv4 checksum");
    let Some(TransportSlice::Tcp(t)) = s.transport else {
        panic!("not TCP")
    };
    assert_eq!(
        t.to_header()
            .calc_checksum_ipv4_raw(h.source, h.destination, t.payload())
            .unwrap(),
        t.checksum(),
        "TCP checksum"
    );
    (
        h.source.into(),
        t.source_port(),
        h.destination.into(),
        t.destination_port(),
    )
}

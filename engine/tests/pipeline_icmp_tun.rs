//! The pipeline's DR, TUN and ICMP paths with exact bytes checked by
//! etherparse: time-exceeded for TTL 1, frag-needed when IPIP would exceed
//! the MTU, ICMP errors relayed (translated for NAT) in both directions.
#![cfg(feature = "dpdk")]

use std::net::Ipv4Addr;
use std::sync::Arc;

use engine::config;
use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::{Frame, Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use etherparse::{
    Icmpv4Type, IpNumber, Ipv4Header, Ipv4HeaderSlice, NetSlice, PacketBuilder, SlicedPacket,
    TransportSlice,
};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];
const RS_MAC: [u8; 6] = [2, 0, 0, 1, 0, 11];
const VIP: [u8; 4] = [198, 18, 0, 100];
const CLIENT: [u8; 4] = [198, 18, 0, 10];
const RS: [u8; 4] = [198, 19, 0, 11];
const DIRECTOR_S: [u8; 4] = [198, 19, 0, 1];
const DIRECTOR_C: [u8; 4] = [198, 18, 0, 2];

const CFG: &str = r#"
[dpdk]
cores = "0-1"

[[port]]
name = "client"
device = "net_af_packet0,iface=dc"
address = "198.18.0.2/24"

[[port]]
name = "servers"
device = "net_af_packet1,iface=ds"
address = "198.19.0.1/24"
mtu = 1000

[[service]]
vip = "198.18.0.100"
port = 80
scheduler = "rr"
forward = "nat"
  [[service.server]]
  address = "198.19.0.11"
  port = 8080

[[service]]
vip = "198.18.0.100"
port = 81
scheduler = "rr"
forward = "dr"
  [[service.server]]
  address = "198.19.0.11"

[[service]]
vip = "198.18.0.100"
port = 82
scheduler = "rr"
forward = "tun"
  [[service.server]]
  address = "198.19.0.11"
"#;

fn rig() -> (Arc<Shared>, Snapshot, Pipeline) {
    let cfg = config::parse(CFG).expect("config");
    let ports = vec![
        PortInfo::new(&cfg.ports[0], MacAddr(PORT0_MAC)),
        PortInfo::new(&cfg.ports[1], MacAddr(PORT1_MAC)),
    ];
    let shared = Arc::new(Shared::new(1));
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).unwrap();
    shared.neigh.learn(Ipv4Addr::from(RS), MacAddr(RS_MAC), 0);
    shared
        .neigh
        .learn(Ipv4Addr::from(CLIENT), MacAddr(CLIENT_MAC), 0);
    let p = Pipeline::new(0, 1, 1024, &shared);
    (shared, snap, p)
}

fn run(snap: &Snapshot, p: &mut Pipeline, port: usize, frame: &[u8]) -> (Verdict, Vec<u8>) {
    let mut f = VecFrame::new(frame);
    let v = p.process(snap, &mut f, port, 1, false);
    (v, f.data().to_vec())
}

fn syn(dport: u16, ttl: u8, payload: &[u8], df: bool) -> Vec<u8> {
    let mut ip = Ipv4Header::new(0, ttl, IpNumber::TCP, CLIENT, VIP).unwrap();
    ip.dont_fragment = df;
    ip.identification = 0x1234;
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
        .tcp(40000, dport, 1, 64240)
        .syn()
        .write(&mut v, payload)
        .unwrap();
    v
}

fn ip_ok(h: &Ipv4Header) {
    assert_eq!(h.calc_header_checksum(), h.header_checksum, "IPv4 checksum");
}

#[test]
fn ttl_one_gets_time_exceeded_from_the_port_address() {
    let (shared, snap, mut p) = rig();
    let frame = syn(80, 1, b"", true);
    let (v, out) = run(&snap, &mut p, 0, &frame);
    assert_eq!(v, Verdict::Tx(0));
    let pkt = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = pkt.link else {
        panic!()
    };
    assert_eq!((eth.destination(), eth.source()), (CLIENT_MAC, PORT0_MAC));
    let Some(NetSlice::Ipv4(ip)) = pkt.net else {
        panic!()
    };
    let h = ip.header().to_header();
    ip_ok(&h);
    assert_eq!((h.source, h.destination), (DIRECTOR_C, CLIENT));
    let Some(TransportSlice::Icmpv4(icmp)) = pkt.transport else {
        panic!("not icmp")
    };
    assert!(matches!(icmp.icmp_type(), Icmpv4Type::TimeExceeded(_)));
    assert_eq!(
        icmp.checksum(),
        icmp.icmp_type().calc_checksum(icmp.payload())
    );
    // The quote is the original IP header and the first 8 bytes after it.
    assert_eq!(icmp.payload(), &frame[14..14 + 20 + 8]);
    assert_eq!(shared.worker_stats[0].icmp_sent.get(), 1);
    assert_eq!(p.conns.len(), 0, "no connection for an expired packet");
}

#[test]
fn dr_rewrites_only_macs_and_ttl() {
    let (_, snap, mut p) = rig();
    let frame = syn(81, 64, b"hello", true);
    let (v, out) = run(&snap, &mut p, 0, &frame);
    assert_eq!(v, Verdict::Tx(1));
    let mut want = frame.clone();
    want[0..6].copy_from_slice(&RS_MAC);
    want[6..12].copy_from_slice(&PORT1_MAC);
    want[22] = 63;
    let mut h = Ipv4HeaderSlice::from_slice(&want[14..])
        .unwrap()
        .to_header();
    h.time_to_live = 63;
    want[24..26].copy_from_slice(&h.calc_header_checksum().to_be_bytes());
    assert_eq!(out, want);
}

#[test]
fn tun_wraps_the_packet_in_ipip() {
    let (_, snap, mut p) = rig();
    let frame = syn(82, 64, b"hello", true);
    let (v, out) = run(&snap, &mut p, 0, &frame);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(out.len(), frame.len() + 20);
    assert_eq!(&out[0..6], &RS_MAC);
    assert_eq!(&out[6..12], &PORT1_MAC);
    assert_eq!(&out[12..14], &[0x08, 0x00]);
    let outer = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap().to_header();
    ip_ok(&outer);
    assert_eq!(outer.protocol, IpNumber::IPV4);
    assert_eq!((outer.source, outer.destination), (DIRECTOR_S, RS));
    assert_eq!(
        outer.time_to_live, 63,
        "outer TTL copies the decremented inner"
    );
    assert!(outer.dont_fragment);
    assert_eq!(usize::from(outer.total_len), frame.len() - 14 + 20);
    // The inner packet: addresses and ports untouched, TTL - 1, valid sums.
    let inner = SlicedPacket::from_ip(&out[34..]).unwrap();
    let Some(NetSlice::Ipv4(ip)) = inner.net else {
        panic!()
    };
    let ih = ip.header().to_header();
    ip_ok(&ih);
    assert_eq!(
        (ih.source, ih.destination, ih.time_to_live),
        (CLIENT, VIP, 63)
    );
    let Some(TransportSlice::Tcp(t)) = inner.transport else {
        panic!()
    };
    assert_eq!((t.source_port(), t.destination_port()), (40000, 82));
    assert_eq!(t.payload(), b"hello");
    assert_eq!(
        t.to_header().calc_checksum_ipv4(&ih, t.payload()).unwrap(),
        t.checksum()
    );
}

#[test]
fn tun_too_big_with_df_gets_frag_needed_and_without_df_a_counted_drop() {
    let (shared, snap, mut p) = rig();
    let big = vec![7u8; 1000 - 40]; // inner 1000 bytes: 1020 after IPIP > MTU 1000
    let (v, out) = run(&snap, &mut p, 0, &syn(82, 64, &big, true));
    assert_eq!(v, Verdict::Tx(0));
    let pkt = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(NetSlice::Ipv4(ip)) = pkt.net else {
        panic!()
    };
    assert_eq!(ip.header().destination(), CLIENT);
    let Some(TransportSlice::Icmpv4(icmp)) = pkt.transport else {
        panic!()
    };
    match icmp.icmp_type() {
        Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu },
        ) => {
            assert_eq!(next_hop_mtu, 980)
        }
        t => panic!("{t:?}"),
    }
    let (v, _) = run(&snap, &mut p, 0, &syn(82, 64, &big, false));
    assert_eq!(v, Verdict::Drop);
    assert_eq!(shared.worker_stats[0].drops[Drop::TooBig as usize].get(), 1);
}

/// An ICMP frag-needed frame from `src` to `dst` quoting `quoted` (an IP
/// packet), arriving from `mac` on the port with `port_mac`.
fn icmp_error(
    mac: [u8; 6],
    port_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    quoted: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(mac, port_mac)
        .ipv4(src, dst, 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut v, &quoted[..28])
        .unwrap();
    v
}

#[test]
fn icmp_errors_are_translated_both_ways_for_nat() {
    let (shared, snap, mut p) = rig();
    let (v, fwd) = run(&snap, &mut p, 0, &syn(80, 64, b"", true));
    assert_eq!(v, Verdict::Tx(1));
    // 1. The real server side complains about the packet we forwarded
    //    (client -> rs:8080); the client must see it about client -> VIP:80.
    let err = icmp_error(RS_MAC, PORT1_MAC, RS, CLIENT, &fwd[14..]);
    let (v, out) = run(&snap, &mut p, 1, &err);
    assert_eq!(v, Verdict::Tx(0));
    let pkt = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(NetSlice::Ipv4(ip)) = pkt.net else {
        panic!()
    };
    let h = ip.header().to_header();
    ip_ok(&h);
    assert_eq!((h.source, h.destination), (VIP, CLIENT));
    let Some(TransportSlice::Icmpv4(icmp)) = pkt.transport else {
        panic!()
    };
    assert_eq!(
        icmp.checksum(),
        icmp.icmp_type().calc_checksum(icmp.payload())
    );
    let q = Ipv4HeaderSlice::from_slice(icmp.payload())
        .unwrap()
        .to_header();
    ip_ok(&q);
    assert_eq!((q.source, q.destination), (CLIENT, VIP));
    assert_eq!(
        &icmp.payload()[20..24],
        &[0x9c, 0x40, 0, 80],
        "quoted ports 40000 -> 80"
    );

    // 2. A router on the client side complains about a reply (VIP:80 ->
    //    client); the real server must see it about rs:8080 -> client.
    let mut reply = Vec::new();
    PacketBuilder::ipv4(VIP, CLIENT, 60)
        .tcp(80, 40000, 9, 100)
        .syn()
        .ack(2)
        .write(&mut reply, b"")
        .unwrap();
    let err = icmp_error(CLIENT_MAC, PORT0_MAC, [198, 18, 0, 1], VIP, &reply);
    let (v, out) = run(&snap, &mut p, 0, &err);
    assert_eq!(v, Verdict::Tx(1));
    let pkt = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(NetSlice::Ipv4(ip)) = pkt.net else {
        panic!()
    };
    let h = ip.header().to_header();
    ip_ok(&h);
    assert_eq!((h.source, h.destination), ([198, 18, 0, 1], RS));
    let Some(TransportSlice::Icmpv4(icmp)) = pkt.transport else {
        panic!()
    };
    assert_eq!(
        icmp.checksum(),
        icmp.icmp_type().calc_checksum(icmp.payload())
    );
    let q = Ipv4HeaderSlice::from_slice(icmp.payload())
        .unwrap()
        .to_header();
    ip_ok(&q);
    assert_eq!((q.source, q.destination), (RS, CLIENT));
    assert_eq!(
        &icmp.payload()[20..24],
        &[0x1f, 0x90, 0x9c, 0x40],
        "quoted ports 8080 -> 40000"
    );
    assert_eq!(shared.worker_stats[0].icmp_relayed.get(), 2);

    // 3. An error quoting a flow nobody tracks, and a truncated one: drops.
    let mut stray = Vec::new();
    PacketBuilder::ipv4(VIP, CLIENT, 60)
        .tcp(80, 1, 9, 100)
        .syn()
        .write(&mut stray, b"")
        .unwrap();
    let (v, _) = run(
        &snap,
        &mut p,
        0,
        &icmp_error(CLIENT_MAC, PORT0_MAC, [198, 18, 0, 1], VIP, &stray),
    );
    assert_eq!(v, Verdict::Drop);
    let mut cut = icmp_error(CLIENT_MAC, PORT0_MAC, [198, 18, 0, 1], VIP, &reply);
    cut.truncate(14 + 20 + 8 + 10);
    let total = (cut.len() - 14) as u16;
    cut[16..18].copy_from_slice(&total.to_be_bytes());
    let mut h = Ipv4HeaderSlice::from_slice(&cut[14..]).unwrap().to_header();
    h.total_len = total;
    cut[24..26].copy_from_slice(&h.calc_header_checksum().to_be_bytes());
    let (v, _) = run(&snap, &mut p, 0, &cut);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(
        shared.worker_stats[0].drops[Drop::IcmpUnknownFlow as usize].get(),
        2
    );
}

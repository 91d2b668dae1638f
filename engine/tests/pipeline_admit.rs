//! What may open a connection (SPEC §5 "Hostile traffic", issue 12 item
//! 14 and 16): forged sources, SYN+RST, bad checksums and a VIP's own
//! real servers are counted drops that leave no state; a good SYN still
//! opens its connection.
#![cfg(feature = "dpdk")]

use std::net::Ipv4Addr;
use std::sync::Arc;

use engine::config;
use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::{Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use etherparse::PacketBuilder;

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];
const VIP: [u8; 4] = [198, 18, 0, 100];

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
scheduler = "rr"
  [[service.server]]
  address = "198.19.0.11"
  port = 8080

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
    w: Pipeline,
}

fn rig() -> Rig {
    rig_from(CFG)
}

fn rig_from(text: &str) -> Rig {
    let cfg = config::parse(text).expect("config");
    let ports = vec![
        PortInfo::new(&cfg.ports[0], MacAddr(PORT0_MAC)),
        PortInfo::new(&cfg.ports[1], MacAddr(PORT1_MAC)),
    ];
    let shared = Arc::new(Shared::new(1));
    for last in [11u8, 12] {
        shared.neigh.learn(
            Ipv4Addr::new(198, 19, 0, last),
            MacAddr([2, 0, 0, 1, 0, last]),
            0,
        );
    }
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).unwrap();
    let w = Pipeline::new(0, 1, 1024, &shared);
    Rig { shared, snap, w }
}

impl Rig {
    fn run(&mut self, port: usize, frame: &[u8]) -> Verdict {
        let mut f = VecFrame::new(frame);
        self.w.process(&self.snap, &mut f, port, 5, false)
    }
    fn drops(&self, d: Drop) -> u64 {
        self.shared.worker_stats[0].drops[d as usize].get()
    }
}

fn syn_from(src_mac: [u8; 6], src: [u8; 4], flags: &str) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(src_mac, PORT0_MAC)
        .ipv4(src, VIP, 64)
        .tcp(40000, 80, 1000, 64240)
        .syn();
    if flags.contains('R') {
        b = b.rst();
    }
    if flags.contains('F') {
        b = b.fin();
    }
    let mut v = Vec::new();
    b.write(&mut v, b"").unwrap();
    v
}

#[test]
fn forged_sources_are_martians_and_open_nothing() {
    let mut r = rig();
    let martians: [[u8; 4]; 9] = [
        [0, 0, 0, 0],
        [0, 1, 2, 3],
        [127, 0, 0, 1],
        [224, 0, 0, 5],
        [255, 255, 255, 255],
        [240, 1, 1, 1],
        VIP,               // the VIP itself
        [198, 18, 0, 2],   // the director's own address
        [198, 18, 0, 255], // the client subnet's broadcast
    ];
    for (i, src) in martians.iter().enumerate() {
        assert_eq!(
            r.run(0, &syn_from(CLIENT_MAC, *src, "")),
            Verdict::Drop,
            "{src:?}"
        );
        assert_eq!(r.drops(Drop::Martian), i as u64 + 1, "{src:?}");
    }
    assert_eq!(r.w.conns.len(), 0);
    // an ordinary client gets in
    assert_eq!(
        r.run(0, &syn_from(CLIENT_MAC, [198, 18, 0, 10], "")),
        Verdict::Tx(1)
    );
    assert_eq!(r.w.conns.len(), 1);
}

#[test]
fn syn_with_rst_or_fin_opens_nothing() {
    let mut r = rig();
    assert_eq!(
        r.run(0, &syn_from(CLIENT_MAC, [198, 18, 0, 10], "R")),
        Verdict::Drop
    );
    assert_eq!(
        r.run(0, &syn_from(CLIENT_MAC, [198, 18, 0, 10], "F")),
        Verdict::Drop
    );
    assert_eq!(r.drops(Drop::BadTcpFlags), 2);
    assert_eq!(r.w.conns.len(), 0);
}

#[test]
fn a_bad_checksum_opens_nothing() {
    let mut r = rig();
    let mut f = syn_from(CLIENT_MAC, [198, 18, 0, 10], "");
    let ck = 14 + 20 + 16;
    f[ck] ^= 0x55;
    assert_eq!(r.run(0, &f), Verdict::Drop);
    assert_eq!(r.drops(Drop::BadChecksum), 1);
    // UDP: a wrong checksum is refused, "no checksum" (0) is accepted
    let mut u = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4([198, 18, 0, 10], VIP, 64)
        .udp(5000, 53)
        .write(&mut u, b"query")
        .unwrap();
    let uck = 14 + 20 + 6;
    let good = u.clone();
    u[uck] ^= 0x01;
    assert_eq!(r.run(0, &u), Verdict::Drop);
    assert_eq!(r.drops(Drop::BadChecksum), 2);
    let mut none = good.clone();
    none[uck] = 0;
    none[uck + 1] = 0;
    assert_eq!(r.run(0, &none), Verdict::Tx(1));
    assert_eq!(r.w.conns.len(), 1);
}

#[test]
fn a_real_server_of_the_service_cannot_open_a_connection_to_its_vip() {
    let mut r = rig();
    let mut u = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 1, 0, 11], PORT1_MAC)
        .ipv4([198, 19, 0, 11], VIP, 64)
        .udp(5353, 53)
        .write(&mut u, b"echo")
        .unwrap();
    assert_eq!(r.run(1, &u), Verdict::Drop);
    assert_eq!(r.drops(Drop::FromRealServer), 1);
    assert_eq!(r.w.conns.len(), 0);
}

#[test]
fn the_directors_own_mac_is_never_learned_as_a_client() {
    let mut r = rig();
    // a client-side SYN whose source MAC is the director's own port MAC
    assert_eq!(
        r.run(0, &syn_from(PORT0_MAC, [198, 18, 0, 10], "")),
        Verdict::Tx(1)
    );
    assert!(
        r.shared
            .neigh
            .peek(Ipv4Addr::new(198, 18, 0, 10), 5)
            .is_none(),
        "learned the director's own MAC for a client"
    );
    assert_eq!(
        r.run(0, &syn_from(CLIENT_MAC, [198, 18, 0, 11], "")),
        Verdict::Tx(1)
    );
    assert!(r
        .shared
        .neigh
        .peek(Ipv4Addr::new(198, 18, 0, 11), 5)
        .is_some());
}

/// A full-size TCP segment (1754-byte IPv4 packet) with or without DF.
fn big(df: bool, from_server: bool) -> Vec<u8> {
    let payload = vec![0x5a; 1714];
    let mut v = Vec::new();
    let b = if from_server {
        PacketBuilder::ethernet2([2, 0, 0, 1, 0, 11], PORT1_MAC)
            .ipv4([198, 19, 0, 11], [198, 18, 0, 10], 64)
            .tcp(8080, 40000, 5000, 64240)
            .ack(1001)
    } else {
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv4([198, 18, 0, 10], VIP, 64)
            .tcp(40000, 80, 1001, 64240)
            .ack(1)
    };
    b.write(&mut v, &payload).unwrap();
    assert_eq!(v.len() - 14, 1754);
    if !df {
        v[14 + 6] &= !0x40; // clear DF (etherparse sets it)
        v[14 + 10] = 0;
        v[14 + 11] = 0;
        let mut sum = 0u32;
        for c in v[14..34].chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let ck = !(sum as u16);
        v[14 + 10..14 + 12].copy_from_slice(&ck.to_be_bytes());
    }
    v
}

/// An ICMP frag-needed to `to` announcing `mtu`.
fn assert_frag_needed(frame: &[u8], to: [u8; 4], mtu: u16) {
    assert_eq!(&frame[12..14], &[0x08, 0x00]);
    assert_eq!(frame[14 + 9], 1, "ICMP");
    assert_eq!(&frame[14 + 16..14 + 20], &to, "to the sender");
    assert_eq!((frame[34], frame[35]), (3, 4), "frag-needed");
    assert_eq!(
        u16::from_be_bytes([frame[40], frame[41]]),
        mtu,
        "next-hop MTU"
    );
}

#[test]
fn nat_checks_the_egress_mtu_both_ways() {
    // A 1754-byte segment, legal on a 9000-byte link, must cross a 1500 one.
    let inbound = CFG.replacen(
        "address = \"198.18.0.2/24\"",
        "address = \"198.18.0.2/24\"\nmtu = 9000",
        1,
    );
    let mut r = rig_from(&inbound);
    r.shared
        .neigh
        .learn(Ipv4Addr::new(198, 18, 0, 10), MacAddr(CLIENT_MAC), 0);
    assert_eq!(
        r.run(0, &syn_from(CLIENT_MAC, [198, 18, 0, 10], "")),
        Verdict::Tx(1)
    );
    let mut f = VecFrame::new(&big(true, false));
    assert_eq!(r.w.process(&r.snap, &mut f, 0, 6, false), Verdict::Tx(0));
    assert_frag_needed(&f.to_vec(), [198, 18, 0, 10], 1500);
    assert_eq!(r.run(0, &big(false, false)), Verdict::Drop);
    assert_eq!(r.drops(Drop::TooBig), 1, "no DF: dropped, counted");

    // The reply direction: server side 9000, client side 1500.
    let reply = CFG.replacen(
        "address = \"198.19.0.1/24\"",
        "address = \"198.19.0.1/24\"\nmtu = 9000",
        1,
    );
    let mut r = rig_from(&reply);
    r.shared
        .neigh
        .learn(Ipv4Addr::new(198, 18, 0, 10), MacAddr(CLIENT_MAC), 0);
    assert_eq!(
        r.run(0, &syn_from(CLIENT_MAC, [198, 18, 0, 10], "")),
        Verdict::Tx(1)
    );
    let mut f = VecFrame::new(&big(true, true));
    assert_eq!(r.w.process(&r.snap, &mut f, 1, 6, false), Verdict::Tx(1));
    assert_frag_needed(&f.to_vec(), [198, 19, 0, 11], 1500);

    // And a frame bigger than its own ingress link is refused outright.
    let mut r = rig();
    assert_eq!(
        r.run(0, &syn_from(CLIENT_MAC, [198, 18, 0, 10], "")),
        Verdict::Tx(1)
    );
    assert_eq!(r.run(0, &big(true, false)), Verdict::Drop);
    assert_eq!(r.drops(Drop::TooBig), 1);
}

#[test]
fn a_port_zero_service_keeps_the_clients_destination_port() {
    let text = CFG.replace(
        "[[service]]\nvip = \"198.18.0.100\"\nport = 80\nprotocol = \"tcp\"\nscheduler = \"rr\"\n  [[service.server]]\n  address = \"198.19.0.11\"\n  port = 8080\n",
        "[[service]]\nvip = \"198.18.0.100\"\nport = 0\nprotocol = \"tcp\"\nscheduler = \"rr\"\npersistence_timeout = 300\n  [[service.server]]\n  address = \"198.19.0.11\"\n",
    );
    assert!(text.contains("port = 0"), "fixture");
    let mut r = rig_from(&text);
    r.shared
        .neigh
        .learn(Ipv4Addr::new(198, 18, 0, 10), MacAddr(CLIENT_MAC), 0);
    let mut syn = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4([198, 18, 0, 10], VIP, 64)
        .tcp(40000, 443, 1000, 64240)
        .syn()
        .write(&mut syn, b"")
        .unwrap();
    let mut f = VecFrame::new(&syn);
    assert_eq!(r.w.process(&r.snap, &mut f, 0, 5, false), Verdict::Tx(1));
    let out = f.to_vec();
    assert_eq!(&out[30..34], &[198, 19, 0, 11], "to the server");
    assert_eq!(
        u16::from_be_bytes([out[36], out[37]]),
        443,
        "its port is the client's"
    );
    let mut rep = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 1, 0, 11], PORT1_MAC)
        .ipv4([198, 19, 0, 11], [198, 18, 0, 10], 64)
        .tcp(443, 40000, 5000, 64240)
        .syn()
        .ack(1001)
        .write(&mut rep, b"")
        .unwrap();
    let mut f = VecFrame::new(&rep);
    assert_eq!(r.w.process(&r.snap, &mut f, 1, 6, false), Verdict::Tx(0));
    let out = f.to_vec();
    assert_eq!(&out[26..30], &VIP, "from the VIP");
    assert_eq!(u16::from_be_bytes([out[34], out[35]]), 443);
}

/// The new-flow path asks the source tests only of a source the
/// snapshot's filter holds (`admit_sources.rs`): every source the full
/// path refuses is still refused there, counted as before, and the SYN
/// goes that path (`new_flow_hits`); a client (and one that is a
/// server's neighbour on the server subnet) still gets in.
#[test]
fn every_refused_source_is_refused_on_the_new_flow_path() {
    let udp = "protocol = \"udp\"\nscheduler = \"rr\"\n";
    let text = format!(
        "{}[ha]\nvrid = 1\npeers = [\"198.19.0.3\"]\n\
         virtual_addresses = [\"198.19.0.254/24@servers\"]\nsync = false\n",
        CFG.replace(udp, &format!("{udp}sorry_server = \"198.19.0.99:5353\"\n"))
    );
    // The sorry server belongs to the UDP service (the last one in CFG).
    let cfg = config::parse(&text).expect("config");
    assert!(cfg.services[1].sorry_server.is_some());
    let ports = vec![
        PortInfo::new(&cfg.ports[0], MacAddr(PORT0_MAC)),
        PortInfo::new(&cfg.ports[1], MacAddr(PORT1_MAC)),
    ];
    let shared = Arc::new(Shared::new(1));
    shared.ha.set_master(true);
    for last in [11u8, 12, 99] {
        shared.neigh.learn(
            Ipv4Addr::new(198, 19, 0, last),
            MacAddr([2, 0, 0, 1, 0, last]),
            0,
        );
    }
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).unwrap();
    let mut r = Rig {
        w: Pipeline::new(0, 1, 1024, &shared),
        shared,
        snap,
    };
    let udp_from = |src: [u8; 4], sport: u16| {
        let mut u = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv4(src, VIP, 64)
            .udp(sport, 53)
            // (48 bytes at least: what the transition path reads)
            .write(&mut u, b"a query of 14B")
            .unwrap();
        u
    };
    let martians: [[u8; 4]; 8] = [
        VIP,               // a VIP
        [198, 18, 0, 2],   // the director's own address, client port
        [198, 19, 0, 1],   // and server port
        [198, 19, 0, 254], // an [ha] virtual address
        [198, 18, 0, 0],   // the client subnet's network address
        [198, 18, 0, 255], // and broadcast
        [198, 19, 0, 0],   // the server subnet's network address
        [198, 19, 0, 255], // and broadcast
    ];
    let mut hits = 0;
    for (i, src) in martians.iter().enumerate() {
        assert_eq!(
            r.run(0, &syn_from(CLIENT_MAC, *src, "")),
            Verdict::Drop,
            "{src:?}"
        );
        assert_eq!(r.drops(Drop::Martian), 2 * i as u64 + 1, "TCP {src:?}");
        assert_eq!(r.run(0, &udp_from(*src, 5000)), Verdict::Drop, "{src:?}");
        assert_eq!(r.drops(Drop::Martian), 2 * i as u64 + 2, "UDP {src:?}");
        hits += 2;
        assert_eq!(r.w.new_flow_hits(), hits, "{src:?}: on the new-flow path");
    }
    // The service's own servers, the sorry server included (UDP), and a
    // TCP service's server.
    for (n, src) in [[198, 19, 0, 11], [198, 19, 0, 12], [198, 19, 0, 99]]
        .iter()
        .enumerate()
    {
        assert_eq!(r.run(0, &udp_from(*src, 5353)), Verdict::Drop, "{src:?}");
        assert_eq!(r.drops(Drop::FromRealServer), n as u64 + 1, "{src:?}");
    }
    assert_eq!(
        r.run(0, &syn_from(CLIENT_MAC, [198, 19, 0, 11], "")),
        Verdict::Drop
    );
    assert_eq!(r.drops(Drop::FromRealServer), 4);
    hits += 4;
    assert_eq!(r.w.new_flow_hits(), hits);
    assert_eq!(r.drops(Drop::Martian), 16);
    assert_eq!(r.drops(Drop::BadChecksum), 0);
    assert_eq!(r.w.conns.len(), 0);
    // A server of the UDP service only is a client of the TCP one; an
    // ordinary client of both gets in.
    assert_eq!(
        r.run(0, &syn_from(CLIENT_MAC, [198, 19, 0, 12], "")),
        Verdict::Tx(1)
    );
    assert_eq!(
        r.run(0, &syn_from(CLIENT_MAC, [198, 18, 0, 10], "")),
        Verdict::Tx(1)
    );
    assert_eq!(r.run(0, &udp_from([198, 18, 0, 10], 5000)), Verdict::Tx(1));
    assert_eq!(r.w.new_flow_hits(), hits + 3);
    assert_eq!(r.w.conns.len(), 3);
}

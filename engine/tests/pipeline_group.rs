//! A service over several ports (issue 14, `ports = [80, 443]`): each port
//! finds the one service, whose persistence template (client net, service)
//! sends a client's HTTP and HTTPS to one server; NAT keeps the client's
//! destination port; a synced connection and template resolve on the peer.
//! Frames checked with etherparse.

use std::net::Ipv4Addr;
use std::sync::Arc;

use engine::config;
use engine::conn::{TcpState, PROTO_TCP, PROTO_UDP};
use engine::dataplane::pipeline::{Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::ha::sync::{ConnRecord, TemplateRecord};
use engine::packet::ethernet::MacAddr;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const VIP: [u8; 4] = [198, 18, 0, 100];
const A: [u8; 4] = [198, 18, 0, 10];
const B: [u8; 4] = [198, 18, 0, 20];
const RS: [[u8; 4]; 2] = [[198, 19, 0, 11], [198, 19, 0, 12]];
const RS_MAC: [[u8; 6]; 2] = [[2, 0, 0, 1, 0, 0], [2, 0, 0, 1, 0, 1]];

const CFG: &str = r#"
[dpdk]
cores = "0@0,1@1"
workers = 1

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
ports = [80, 443]
scheduler = "rr"
persistence_timeout = 300
  [[service.server]]
  address = "198.19.0.11"
  [[service.server]]
  address = "198.19.0.12"

[[service]]
vip = "198.18.0.100"
port = 8080
scheduler = "rr"
  [[service.server]]
  address = "198.19.0.12"
"#;

struct Rig {
    shared: Arc<Shared>,
    snap: Snapshot,
    p: Pipeline,
}

fn rig() -> Rig {
    let cfg = config::parse(CFG).expect("config");
    let ports = vec![
        PortInfo::new(&cfg.ports[0], MacAddr(PORT0_MAC)),
        PortInfo::new(&cfg.ports[1], MacAddr(PORT1_MAC)),
    ];
    let shared = Arc::new(Shared::new(1));
    for (ip, mac) in RS.iter().zip(RS_MAC) {
        shared.neigh.learn(Ipv4Addr::from(*ip), MacAddr(mac), 0);
    }
    for c in [A, B] {
        shared
            .neigh
            .learn(Ipv4Addr::from(c), MacAddr(CLIENT_MAC), 0);
    }
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).unwrap();
    let p = Pipeline::new(0, 1, 1024, &shared);
    Rig { shared, snap, p }
}

impl Rig {
    fn run(&mut self, port: usize, frame: &[u8], now: u64) -> (Verdict, Vec<u8>) {
        let mut f = VecFrame::new(frame);
        let v = self.p.process(&self.snap, &mut f, port, now, false);
        (v, f.to_vec())
    }
}

fn syn(client: [u8; 4], cport: u16, vport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(client, VIP, 64)
        .tcp(cport, vport, 1000, 64240)
        .syn()
        .write(&mut v, b"")
        .unwrap();
    v
}

fn syn_ack(rs: usize, sport: u16, client: [u8; 4], cport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(RS_MAC[rs], PORT1_MAC)
        .ipv4(RS[rs], client, 64)
        .tcp(sport, cport, 5000, 64240)
        .syn()
        .ack(1001)
        .write(&mut v, b"")
        .unwrap();
    v
}

/// Checks every checksum with etherparse; (src, dst, sport, dport, eth dst).
fn decode(frame: &[u8]) -> ([u8; 4], [u8; 4], u16, u16, [u8; 6]) {
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
    )
}

#[test]
fn each_port_of_the_group_finds_the_one_service() {
    let r = rig();
    let vip = Ipv4Addr::from(VIP);
    let at = |proto, port| r.snap.service_for(proto, vip, port).map(|s| s.id);
    let group = r.snap.services[0].id;
    assert_eq!(at(PROTO_TCP, 80), Some(group));
    assert_eq!(at(PROTO_TCP, 443), Some(group));
    assert_eq!(at(PROTO_TCP, 8080), Some(r.snap.services[1].id));
    assert_ne!(r.snap.services[1].id, group);
    assert_eq!(at(PROTO_TCP, 8443), None);
    assert_eq!(at(PROTO_UDP, 80), None);
    assert_eq!(r.snap.by_port.len(), 3, "one lookup entry per port");
}

#[test]
fn persistence_holds_across_the_ports_and_nat_keeps_the_port() {
    let mut r = rig();
    // A on :80: rr's first pick, .11, reached on port 80.
    let (v, out) = r.run(0, &syn(A, 40001, 80), 10);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(decode(&out), (A, RS[0], 40001, 80, RS_MAC[0]));
    // A on :443: the template sends it to .11 too, on port 443.
    let (v, out) = r.run(0, &syn(A, 40002, 443), 11);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(decode(&out), (A, RS[0], 40002, 443, RS_MAC[0]));
    // B on :443: no template, rr goes on to .12; then B on :80 follows it.
    let (v, out) = r.run(0, &syn(B, 40003, 443), 12);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(decode(&out), (B, RS[1], 40003, 443, RS_MAC[1]));
    let (v, out) = r.run(0, &syn(B, 40004, 80), 13);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(decode(&out), (B, RS[1], 40004, 80, RS_MAC[1]));
    // The replies leave from the VIP port each client used.
    let (v, out) = r.run(1, &syn_ack(0, 443, A, 40002), 14);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(decode(&out), (VIP, A, 443, 40002, CLIENT_MAC));
    let (v, out) = r.run(1, &syn_ack(1, 80, B, 40004), 15);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(decode(&out), (VIP, B, 80, 40004, CLIENT_MAC));
    // One service: four connections on its two servers, two templates
    // held twice each.
    let svc = &r.snap.services[0];
    let conns: Vec<u64> = svc
        .servers
        .iter()
        .map(|s| s.shared.total(|c| &c.conns))
        .collect();
    assert_eq!(conns, [2, 2]);
    let sid = u32::from(svc.id);
    for c in [A, B] {
        assert_eq!(r.shared.persist.holds(sid, Ipv4Addr::from(c), 16), 2);
    }
}

#[test]
fn synced_template_and_connection_resolve_on_the_peer() {
    let mut r = rig();
    // What a master reports: A's template (under the service's first
    // port, as `report_template` names it) on .12, and A's connection on
    // :443 to .12:443.
    let t = TemplateRecord {
        proto: PROTO_TCP,
        vip: Ipv4Addr::from(VIP),
        vport: 80,
        client_net: Ipv4Addr::from(A),
        server: Ipv4Addr::from(RS[1]),
        sport: 0,
        timeout_ms: 300_000,
    };
    r.p.install_template(&r.snap, &t, 1);
    let c = ConnRecord {
        proto: PROTO_TCP,
        state: TcpState::Established as u8,
        method: 0,
        flags: 0,
        client: Ipv4Addr::from(A),
        cport: 40010,
        vip: Ipv4Addr::from(VIP),
        vport: 443,
        server: Ipv4Addr::from(RS[1]),
        sport: 443,
        timeout_ms: 900_000,
        local: None,
    };
    r.p.install(&r.snap, &c, 1);
    let st = &r.shared.worker_stats[0];
    assert_eq!((st.sync_installed.get(), st.sync_unknown.get()), (2, 0));
    assert_eq!(r.p.conns.len(), 1);
    // A's new connection on :80 follows the synced template to .12 (rr
    // alone would pick .11).
    let (v, out) = r.run(0, &syn(A, 40011, 80), 2);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(decode(&out), (A, RS[1], 40011, 80, RS_MAC[1]));
    // The synced :443 connection's segments reach .12:443.
    let mut ack = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(A, VIP, 64)
        .tcp(40010, 443, 1001, 64240)
        .ack(5001)
        .write(&mut ack, b"x")
        .unwrap();
    let (v, out) = r.run(0, &ack, 3);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(decode(&out), (A, RS[1], 40010, 443, RS_MAC[1]));
}

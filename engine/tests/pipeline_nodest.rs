//! Issue 14: `[timeouts] expire_nodest_conn` and
//! `expire_quiescent_template`, driven with byte buffers. A connection whose
//! server is deleted is expired by its next packet, and the client is told
//! (an RST from the VIP, decoded with etherparse, checksums included) or
//! served afresh (a SYN, a UDP datagram); with the key off the entry stays
//! and the client hears nothing. A persistence template pointing at a
//! drained server (weight 0) keeps sending new connections there unless
//! `expire_quiescent_template` is on.

use std::net::Ipv4Addr;
use std::sync::Arc;

use engine::config::{self, Config, ServerConfig, ServiceConfig};
use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::{Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, Health, HealthView, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];
const VIP: [u8; 4] = [198, 18, 0, 100];
const CLIENT: [u8; 4] = [198, 18, 0, 10];
const RS: [[u8; 4]; 2] = [[198, 19, 0, 11], [198, 19, 0, 12]];
const RS_MAC: [[u8; 6]; 2] = [[2, 0, 0, 1, 0, 11], [2, 0, 0, 1, 0, 12]];

/// Services: 0 TCP :80 rr, 1 UDP :53 rr, 2 TCP :443 rr with persistence;
/// each over .11 then .12. `[timeouts]` gets `extra`.
fn cfg_text(extra: &str) -> String {
    format!(
        r#"
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

[timeouts]
{extra}

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

[[service]]
vip = "198.18.0.100"
port = 53
protocol = "udp"
scheduler = "rr"
forward = "nat"
  [[service.server]]
  address = "198.19.0.11"
  port = 5353
  [[service.server]]
  address = "198.19.0.12"
  port = 5353

[[service]]
vip = "198.18.0.100"
port = 443
protocol = "tcp"
scheduler = "rr"
forward = "nat"
persistence_timeout = 60
  [[service.server]]
  address = "198.19.0.11"
  port = 8443
  [[service.server]]
  address = "198.19.0.12"
  port = 8443
"#
    )
}

struct Rig {
    cfg: Config,
    ports: Vec<PortInfo>,
    shared: Arc<Shared>,
    snap: Snapshot,
    p: Pipeline,
    generation: u64,
}

fn rig(extra: &str) -> Rig {
    let cfg = config::parse(&cfg_text(extra)).expect("config");
    let ports = vec![
        PortInfo::new(&cfg.ports[0], MacAddr(PORT0_MAC)),
        PortInfo::new(&cfg.ports[1], MacAddr(PORT1_MAC)),
    ];
    let shared = Arc::new(Shared::new(1));
    for (ip, mac) in RS.iter().zip(RS_MAC) {
        shared.neigh.learn(Ipv4Addr::from(*ip), MacAddr(mac), 0);
    }
    shared
        .neigh
        .learn(Ipv4Addr::from(CLIENT), MacAddr(CLIENT_MAC), 0);
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).unwrap();
    let mut p = Pipeline::new(0, 1, 1024, &shared);
    p.on_snapshot(&snap);
    Rig {
        cfg,
        ports,
        shared,
        snap,
        p,
        generation: 1,
    }
}

/// .11 down by health check, the rest up.
struct FirstDown;

impl HealthView for FirstDown {
    fn health(&self, _: &ServiceConfig, srv: &ServerConfig) -> Health {
        if srv.address == Ipv4Addr::from(RS[0]) {
            Health::Down
        } else {
            Health::Up
        }
    }
}

impl Rig {
    fn rebuild(&mut self, health: &dyn HealthView) {
        self.generation += 1;
        self.snap = Snapshot::build(
            &self.cfg,
            &self.ports,
            &self.shared.registry,
            self.generation,
            health,
        )
        .unwrap();
        self.p.on_snapshot(&self.snap);
    }

    /// Deletes server `i` from every service (`rvs ctl del-server`).
    fn delete_server(&mut self, i: usize) -> Vec<ServerConfig> {
        let gone = self
            .cfg
            .services
            .iter_mut()
            .map(|s| s.servers.remove(i))
            .collect();
        self.rebuild(&AllUp);
        gone
    }

    fn run(&mut self, port: usize, frame: &[u8], now: u64) -> (Verdict, Vec<u8>) {
        let mut f = VecFrame::new(frame);
        let v = self.p.process(&self.snap, &mut f, port, now, false);
        (v, f.to_vec())
    }

    fn drops(&self, d: Drop) -> u64 {
        self.shared.worker_stats[0].drops[d as usize].get()
    }

    fn expired(&self) -> u64 {
        self.shared.worker_stats[0].nodest_expired.get()
    }

    fn rsts(&self) -> u64 {
        self.shared.worker_stats[0].nodest_rst_sent.get()
    }

    /// A client TCP segment to VIP:`vport`; returns where it went, if it
    /// went to a real server (address, port).
    fn tcp_to(&mut self, vport: u16, seg: &Tcp, now: u64) -> Went {
        let (v, out) = self.run(0, &seg.frame(vport), now);
        (v == Verdict::Tx(1)).then(|| {
            let d = decode(&out);
            assert_eq!(d.src, CLIENT, "NAT keeps the client's address");
            (d.dst, d.dport)
        })
    }
}

/// A client segment: source port, seq, ack (None: no ACK flag), flags.
struct Tcp {
    cport: u16,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
    rst: bool,
    payload: &'static [u8],
}

impl Tcp {
    fn syn(cport: u16) -> Tcp {
        Tcp {
            cport,
            seq: 1000,
            ack: None,
            syn: true,
            fin: false,
            rst: false,
            payload: b"",
        }
    }

    fn data(cport: u16, seq: u32, ack: u32, payload: &'static [u8]) -> Tcp {
        Tcp {
            cport,
            seq,
            ack: Some(ack),
            syn: false,
            fin: false,
            rst: false,
            payload,
        }
    }

    fn frame(&self, vport: u16) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv4(CLIENT, VIP, 64)
            .tcp(self.cport, vport, self.seq, 64240);
        if self.syn {
            b = b.syn();
        }
        if self.fin {
            b = b.fin();
        }
        if self.rst {
            b = b.rst();
        }
        if let Some(a) = self.ack {
            b = b.ack(a);
        }
        let mut v = Vec::new();
        b.write(&mut v, self.payload).unwrap();
        v
    }
}

fn udp_frame(cport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, VIP, 64)
        .udp(cport, 53)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// The server's reply on a NAT connection (server side in, port 1).
fn reply_frame(rs: usize, sport: u16, cport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(RS_MAC[rs], PORT1_MAC)
        .ipv4(RS[rs], CLIENT, 64)
        .tcp(sport, cport, 5000, 64240)
        .ack(1006)
        .write(&mut v, b"data")
        .unwrap();
    v
}

/// One frame the director wrote, every checksum verified by etherparse.
#[derive(Debug)]
struct Seg {
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    /// (SYN, ACK, RST, FIN)
    flags: (bool, bool, bool, bool),
    window: u16,
    payload: Vec<u8>,
}

fn decode(frame: &[u8]) -> Seg {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse");
    let Some(etherparse::LinkSlice::Ethernet2(eth)) = p.link else {
        panic!("no eth")
    };
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("no ipv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.calc_header_checksum(), h.header_checksum, "IPv4 checksum");
    match p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let th = t.to_header();
            assert_eq!(
                th.calc_checksum_ipv4(&h, t.payload()).unwrap(),
                t.checksum(),
                "TCP checksum"
            );
            Seg {
                eth_dst: eth.destination(),
                eth_src: eth.source(),
                src: h.source,
                dst: h.destination,
                ttl: h.time_to_live,
                sport: t.source_port(),
                dport: t.destination_port(),
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                flags: (t.syn(), t.ack(), t.rst(), t.fin()),
                window: t.window_size(),
                payload: t.payload().to_vec(),
            }
        }
        Some(TransportSlice::Udp(u)) => {
            let uh = u.to_header();
            assert_eq!(
                uh.calc_checksum_ipv4(&h, u.payload()).unwrap(),
                uh.checksum,
                "UDP checksum"
            );
            Seg {
                eth_dst: eth.destination(),
                eth_src: eth.source(),
                src: h.source,
                dst: h.destination,
                ttl: h.time_to_live,
                sport: u.source_port(),
                dport: u.destination_port(),
                seq: 0,
                ack: 0,
                flags: (false, false, false, false),
                window: 0,
                payload: u.payload().to_vec(),
            }
        }
        _ => panic!("neither TCP nor UDP"),
    }
}

const RST: (bool, bool, bool, bool) = (false, false, true, false);
const RST_ACK: (bool, bool, bool, bool) = (false, true, true, false);

/// Opens a connection from client port `cport` to service :80 (rr: the
/// first goes to .11) and sends 5 bytes of data; the server's ISN is 5000.
fn open(r: &mut Rig, cport: u16, now: u64) -> ([u8; 4], u16) {
    let to = r.tcp_to(80, &Tcp::syn(cport), now).expect("SYN forwarded");
    let data = Tcp::data(cport, 1001, 5001, b"hello");
    assert_eq!(r.tcp_to(80, &data, now + 1), Some(to), "data forwarded");
    to
}

#[test]
fn a_deleted_servers_connection_gets_an_rst_from_the_vip_on_its_next_segment() {
    let mut r = rig("");
    assert_eq!(open(&mut r, 40000, 0), (RS[0], 8080));
    let rs1 = r.snap.services[0].servers[0].shared.clone();
    assert_eq!((rs1.active(), rs1.inactive()), (1, 0));
    r.delete_server(0);
    // The client's next segment: the connection is expired, and the
    // segment is answered with an RST from the VIP (seq = its ACK).
    let (v, out) = r.run(0, &Tcp::data(40000, 1006, 5001, b"more").frame(80), 10);
    assert_eq!(v, Verdict::Tx(0), "back out of the client port");
    assert_eq!(out.len(), 60, "54 bytes of headers, padded");
    let s = decode(&out);
    assert_eq!((s.eth_dst, s.eth_src), (CLIENT_MAC, PORT0_MAC));
    assert_eq!((s.src, s.dst, s.sport, s.dport), (VIP, CLIENT, 80, 40000));
    assert_eq!(s.ttl, 64);
    assert_eq!(s.flags, RST);
    assert_eq!((s.seq, s.ack, s.window), (5001, 0, 0));
    assert!(s.payload.is_empty());
    assert_eq!((r.expired(), r.rsts()), (1, 1));
    assert_eq!(r.drops(Drop::ServerGone), 0, "answered, not dropped");
    assert_eq!(r.p.conns.len(), 0, "the connection is gone");
    assert_eq!(
        (rs1.active(), rs1.inactive()),
        (0, 0),
        "its count came back"
    );
    // Another segment of it (in flight) is no connection of ours any more.
    let (v, _) = r.run(0, &Tcp::data(40000, 1010, 5001, b"late").frame(80), 11);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(r.drops(Drop::NoConnection), 1);
    assert_eq!(r.rsts(), 1);
    // The client's retry (same port) goes to the server that is left.
    assert_eq!(r.tcp_to(80, &Tcp::syn(40000), 12), Some((RS[1], 8080)));
}

#[test]
fn a_segment_without_ack_gets_an_rst_ack_of_all_it_carried() {
    let mut r = rig("");
    open(&mut r, 40000, 0);
    r.delete_server(0);
    // A FIN without ACK carrying 2 bytes: RST-ACK, ack = seq + 2 + 1.
    let fin = Tcp {
        fin: true,
        ack: None,
        ..Tcp::data(40000, 1006, 0, b"ab")
    };
    let (v, out) = r.run(0, &fin.frame(80), 10);
    assert_eq!(v, Verdict::Tx(0));
    let s = decode(&out);
    assert_eq!((s.src, s.dst, s.sport, s.dport), (VIP, CLIENT, 80, 40000));
    assert_eq!(s.flags, RST_ACK);
    assert_eq!((s.seq, s.ack), (0, 1009));
    assert_eq!((r.expired(), r.rsts()), (1, 1));
}

#[test]
fn a_client_rst_and_a_new_syn_on_a_deleted_servers_connection() {
    let mut r = rig("");
    open(&mut r, 40000, 0);
    open(&mut r, 40001, 0); // rr: .12
    r.tcp_to(80, &Tcp::syn(40002), 0); // rr: .11, SYN_RECV
    r.delete_server(0);
    // An RST from the client: expired, nothing answered.
    let rst = Tcp {
        ack: None,
        rst: true,
        ..Tcp::data(40000, 1006, 0, b"")
    };
    assert_eq!(r.run(0, &rst.frame(80), 10).0, Verdict::Drop);
    assert_eq!((r.expired(), r.rsts()), (1, 0));
    assert_eq!(r.drops(Drop::ServerGone), 1);
    // A SYN (retransmitted) on the SYN_RECV entry of .11 is scheduled
    // afresh, at once: to .12.
    assert_eq!(r.tcp_to(80, &Tcp::syn(40002), 20), Some((RS[1], 8080)));
    assert_eq!(r.expired(), 2);
    // .12's connection is untouched.
    let data = Tcp::data(40001, 1006, 5001, b"x");
    assert_eq!(r.tcp_to(80, &data, 30), Some((RS[1], 8080)));
    assert_eq!(r.p.conns.len(), 2);
}

#[test]
fn a_udp_flow_of_a_deleted_server_is_rescheduled_by_its_next_datagram() {
    let mut r = rig("");
    let (v, out) = r.run(0, &udp_frame(50000, b"q1"), 0);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!((decode(&out).dst, decode(&out).dport), (RS[0], 5353));
    r.delete_server(0);
    let (v, out) = r.run(0, &udp_frame(50000, b"q2"), 10);
    assert_eq!(v, Verdict::Tx(1), "this very datagram is scheduled afresh");
    let d = decode(&out);
    assert_eq!((d.eth_dst, d.eth_src), (RS_MAC[1], PORT1_MAC));
    assert_eq!(
        (d.src, d.sport, d.dst, d.dport),
        (CLIENT, 50000, RS[1], 5353)
    );
    assert_eq!(d.payload, b"q2");
    assert_eq!(r.expired(), 1);
    assert_eq!(r.p.conns.len(), 1);
    // and the flow stays there
    let (_, out) = r.run(0, &udp_frame(50000, b"q3"), 20);
    assert_eq!(decode(&out).dst, RS[1]);
    assert_eq!(r.expired(), 1);
}

#[test]
fn with_the_key_off_the_entry_stays_and_the_client_hears_nothing() {
    let mut r = rig("expire_nodest_conn = false");
    assert_eq!(open(&mut r, 40000, 0), (RS[0], 8080));
    let (v, _) = r.run(0, &udp_frame(50000, b"q1"), 0);
    assert_eq!(v, Verdict::Tx(1));
    let gone = r.delete_server(0);
    for now in [10, 20] {
        let (v, _) = r.run(0, &Tcp::data(40000, 1006, 5001, b"more").frame(80), now);
        assert_eq!(v, Verdict::Drop, "IPVS expire_nodest_conn = 0: dropped");
        let (v, _) = r.run(0, &udp_frame(50000, b"q"), now);
        assert_eq!(v, Verdict::Drop);
    }
    assert_eq!(r.drops(Drop::ServerGone), 4);
    assert_eq!((r.expired(), r.rsts()), (0, 0));
    assert_eq!(r.p.conns.len(), 2, "the entries live until they time out");
    // The server comes back (same address and port, same id): the
    // connections resume.
    for (s, srv) in r.cfg.services.iter_mut().zip(gone) {
        s.servers.insert(0, srv);
    }
    r.rebuild(&AllUp);
    let data = Tcp::data(40000, 1006, 5001, b"more");
    assert_eq!(r.tcp_to(80, &data, 30), Some((RS[0], 8080)));
    let (v, out) = r.run(0, &udp_frame(50000, b"q"), 30);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(decode(&out).dst, RS[0]);
}

#[test]
fn a_server_marked_down_is_expired_with_an_rst_or_silently_with_the_key_off() {
    for (extra, rsts) in [("", 1), ("expire_nodest_conn = false", 0)] {
        let mut r = rig(extra);
        open(&mut r, 40000, 0);
        r.rebuild(&FirstDown);
        let (v, out) = r.run(0, &Tcp::data(40000, 1006, 5001, b"more").frame(80), 10);
        if rsts == 1 {
            assert_eq!(v, Verdict::Tx(0), "{extra}");
            assert_eq!(decode(&out).flags, RST);
        } else {
            assert_eq!(v, Verdict::Drop, "{extra}");
            assert_eq!(r.drops(Drop::ServerGone), 1);
        }
        // Marked down: expired either way (SPEC §5).
        assert_eq!((r.expired(), r.rsts()), (1, rsts), "{extra}");
        assert_eq!(r.p.conns.len(), 0, "{extra}");
    }
}

#[test]
fn a_deleted_servers_reply_is_dropped_and_the_client_still_gets_its_rst() {
    let mut r = rig("");
    open(&mut r, 40000, 0);
    // .11 is deleted but still talks: its segment is dropped, the entry
    // kept so that the client's next segment is answered.
    r.delete_server(0);
    let (v, _) = r.run(1, &reply_frame(0, 8080, 40000), 10);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(r.drops(Drop::ServerGone), 1);
    assert_eq!(r.p.conns.len(), 1);
    let (v, out) = r.run(0, &Tcp::data(40000, 1006, 5001, b"more").frame(80), 20);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(decode(&out).flags, RST);
    assert_eq!((r.expired(), r.rsts()), (1, 1));
}

/// Where a connection went: (real server, port), or not forwarded.
type Went = Option<([u8; 4], u16)>;

/// A client with a template to .11 (service :443); .11 is then drained
/// (weight 0). Where do its next connections go?
fn drained_template(extra: &str) -> (Rig, Vec<Went>) {
    let mut r = rig(extra);
    assert_eq!(r.tcp_to(443, &Tcp::syn(40000), 0), Some((RS[0], 8443)));
    assert_eq!(r.tcp_to(443, &Tcp::syn(40001), 1), Some((RS[0], 8443)));
    r.cfg.services[2].servers[0].weight = 0;
    r.rebuild(&AllUp);
    let next = (0..3)
        .map(|i| r.tcp_to(443, &Tcp::syn(40010 + i), 10 + u64::from(i)))
        .collect();
    (r, next)
}

#[test]
fn a_template_keeps_sending_to_a_drained_server_by_default() {
    let (mut r, next) = drained_template("");
    assert_eq!(next, vec![Some((RS[0], 8443)); 3], "IPVS's default");
    // and the drained server's connections flow on
    let data = Tcp::data(40000, 1001, 5001, b"x");
    assert_eq!(r.tcp_to(443, &data, 20), Some((RS[0], 8443)));
}

#[test]
fn expire_quiescent_template_moves_the_client_off_a_drained_server() {
    let (mut r, next) = drained_template("expire_quiescent_template = true");
    assert_eq!(next, vec![Some((RS[1], 8443)); 3], "a new template to .12");
    // Draining still keeps the connections the server has.
    let data = Tcp::data(40000, 1001, 5001, b"x");
    assert_eq!(r.tcp_to(443, &data, 20), Some((RS[0], 8443)));
    assert_eq!((r.expired(), r.rsts()), (0, 0));
}

#[test]
fn the_keys_are_checked_and_default_to_on_and_off() {
    let c = config::parse(&cfg_text("")).unwrap();
    assert!(c.timeouts.expire_nodest_conn);
    assert!(!c.timeouts.expire_quiescent_template);
    let c = config::parse(&cfg_text(
        "expire_nodest_conn = false\nexpire_quiescent_template = true",
    ))
    .unwrap();
    assert!(!c.timeouts.expire_nodest_conn);
    assert!(c.timeouts.expire_quiescent_template);
    for key in ["expire_nodest_conn", "expire_quiescent_template"] {
        let e = config::parse(&cfg_text(&format!("{key} = 1"))).unwrap_err();
        let first = e.errors[0].to_string();
        assert!(
            first.contains(key) && first.contains("true or false"),
            "{first}"
        );
    }
}

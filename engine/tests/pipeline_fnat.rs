//! Full-NAT through the worker pipeline with byte buffers: the inbound and
//! reply rewrites byte for byte (frames built independently with
//! etherparse, checksums checked by etherparse), the local port's owner
//! worker, recycling after expiry and not before, exhaustion refusing
//! without reusing a live tuple, RST then expiry freeing the port, and the
//! hairpin of a client that is one of the servers.
#![cfg(feature = "dpdk")]

use std::net::Ipv4Addr;
use std::sync::Arc;

use engine::config;
use engine::conn::{owner_worker, TcpState};
use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::{FragHold, Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::ha::sync::{ConnRecord, Record};
use engine::packet::ethernet::MacAddr;
use etherparse::{
    icmpv4, EtherType, Ethernet2Header, Icmpv4Type, IpFragOffset, IpNumber, Ipv4Header, NetSlice,
    PacketBuilder, SlicedPacket, TransportSlice, UdpHeader,
};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PORT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const RS_MAC: [[u8; 6]; 3] = [
    [2, 0, 0, 1, 0, 11],
    [2, 0, 0, 1, 0, 12],
    [2, 0, 0, 1, 0, 13],
];
const VIP: [u8; 4] = [198, 18, 0, 100];
const CLIENT: [u8; 4] = [198, 18, 0, 10];
const LADDR: [u8; 4] = [198, 18, 0, 2];
const RS: [[u8; 4]; 3] = [[198, 18, 0, 11], [198, 18, 0, 12], [198, 18, 0, 13]];

/// One-arm: client, servers and the director's only port on one subnet.
fn cfg(workers: usize, port_extra: &str) -> String {
    format!(
        r#"
[dpdk]
cores = "0@0,1@1,2@1"
workers = {workers}

[[port]]
name = "lan"
device = "net_af_packet0,iface=dc"
address = "198.18.0.2/24"
{port_extra}

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "rr"
forward = "fnat"
  [[service.server]]
  address = "198.18.0.11"
  port = 8080
  [[service.server]]
  address = "198.18.0.12"
  port = 8080
  [[service.server]]
  address = "198.18.0.13"
  port = 8080

[timeouts]
tcp_syn_recv = 5
tcp_close = 2
"#
    )
}

struct Rig {
    shared: Arc<Shared>,
    snap: Snapshot,
    workers: Vec<Pipeline>,
}

fn rig(workers: usize, port_extra: &str) -> Rig {
    rig_text(workers, &cfg(workers, port_extra))
}

/// The rig of configuration `text` (its `workers` must be `workers`).
fn rig_text(workers: usize, text: &str) -> Rig {
    let cfg = config::parse(text).expect("config");
    let ports = vec![PortInfo::new(&cfg.ports[0], MacAddr(PORT_MAC))];
    let shared = Arc::new(Shared::new(workers));
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).unwrap();
    assert!(snap.has_fnat);
    let mut ws: Vec<Pipeline> = (0..workers)
        .map(|w| Pipeline::new(w, workers, 1024, &shared))
        .collect();
    for w in &mut ws {
        w.on_snapshot(&snap);
    }
    for (ip, mac) in RS.iter().zip(RS_MAC) {
        shared.neigh.learn(Ipv4Addr::from(*ip), MacAddr(mac), 0);
    }
    shared
        .neigh
        .learn(Ipv4Addr::from(CLIENT), MacAddr(CLIENT_MAC), 0);
    Rig {
        shared,
        snap,
        workers: ws,
    }
}

impl Rig {
    /// Runs a frame through worker `w` as the NIC delivered it (not handed
    /// over): the verdict and the frame as it left.
    fn run(&mut self, w: usize, frame: &[u8], now: u64) -> (Verdict, Vec<u8>) {
        let mut f = VecFrame::new(frame);
        let v = self.workers[w].process(&self.snap, &mut f, 0, now, false);
        (v, f.to_vec())
    }

    fn drops(&self, d: Drop) -> u64 {
        self.shared
            .worker_stats
            .iter()
            .map(|s| s.drops[d as usize].get())
            .sum()
    }

    fn handoffs(&self) -> u64 {
        self.shared
            .worker_stats
            .iter()
            .map(|s| s.handoffs_out.get())
            .sum()
    }

    fn expire(&mut self, now: u64) {
        for w in 0..self.workers.len() {
            self.workers[w].housekeeping(&self.snap, now, 4096);
        }
    }
}

/// A TCP segment with fixed sequence numbers, window and payload; `mac` is
/// (destination, source).
#[allow(clippy::too_many_arguments)]
fn tcp(
    mac: ([u8; 6], [u8; 6]),
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    ttl: u8,
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(mac.1, mac.0)
        .ipv4(src, dst, ttl)
        .tcp(sport, dport, 1000, 64240);
    if flags.contains('S') {
        b = b.syn();
    }
    if flags.contains('A') {
        b = b.ack(5001);
    }
    if flags.contains('R') {
        b = b.rst();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// (src, sport, dst, dport) of a frame whose checksums etherparse verifies.
fn tuple(frame: &[u8]) -> ([u8; 4], u16, [u8; 4], u16) {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse");
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("no ipv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.calc_header_checksum(), h.header_checksum, "IP checksum");
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("no tcp")
    };
    let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
    assert_eq!(want, t.checksum(), "TCP checksum");
    (
        h.source,
        t.source_port(),
        h.destination,
        t.destination_port(),
    )
}

fn from_client(cport: u16, flags: &str, payload: &[u8]) -> Vec<u8> {
    tcp(
        (PORT_MAC, CLIENT_MAC),
        CLIENT,
        cport,
        VIP,
        80,
        64,
        flags,
        payload,
    )
}

/// Both directions of one connection on `workers` workers: exact bytes,
/// the local port owned by the connection's worker, no hand-off.
fn both_ways(workers: usize) {
    let mut r = rig(workers, "");
    let payload = b"GET / HTTP/1.0\r\n\r\n";
    for (i, cport) in (40000u16..40012).enumerate() {
        let w = owner_worker(Ipv4Addr::from(CLIENT), cport, workers);
        let (v, out) = r.run(w, &from_client(cport, "S", payload), 10);
        assert_eq!(v, Verdict::Tx(0), "client {cport}");
        let (src, lport, dst, dport) = tuple(&out);
        assert_eq!(src, LADDR, "the server sees the director as client");
        assert_eq!(dst, RS[i % 3], "rr");
        assert_eq!(dport, 8080);
        assert!(
            (1024..=32767).contains(&lport),
            "default snat_ports: {lport}"
        );
        assert_eq!(
            owner_worker(Ipv4Addr::from(LADDR), lport, workers),
            w,
            "local port {lport} is owned by the connection's worker"
        );
        // Byte for byte what an independent builder makes of the rewritten
        // packet: every other field, the payload and the checksums as
        // recomputed from scratch.
        let rs = i % 3;
        let want = tcp(
            (RS_MAC[rs], PORT_MAC),
            LADDR,
            lport,
            RS[rs],
            8080,
            63,
            "S",
            payload,
        );
        assert_eq!(out, want, "inbound frame");

        // The server's answer goes to the local tuple; it arrives at the
        // director's own address, on the connection's worker.
        let reply = tcp(
            (PORT_MAC, RS_MAC[rs]),
            RS[rs],
            8080,
            LADDR,
            lport,
            64,
            "SA",
            b"hello",
        );
        let (v, out) = r.run(w, &reply, 11);
        assert_eq!(v, Verdict::Tx(0), "reply to {lport}");
        let want = tcp(
            (CLIENT_MAC, PORT_MAC),
            VIP,
            80,
            CLIENT,
            cport,
            63,
            "SA",
            b"hello",
        );
        assert_eq!(tuple(&out), (VIP, 80, CLIENT, cport));
        assert_eq!(out, want, "reply frame");
        // Client ACK: inbound again, same local tuple.
        let (v, out) = r.run(w, &from_client(cport, "A", b""), 12);
        assert_eq!(v, Verdict::Tx(0));
        assert_eq!(tuple(&out), (LADDR, lport, RS[rs], 8080));
    }
    assert_eq!(r.handoffs(), 0, "no hand-off in either direction");
    // A packet to the port address that is no connection's is the kernel's.
    let stray = tcp(
        (PORT_MAC, RS_MAC[0]),
        RS[0],
        8080,
        LADDR,
        40000,
        64,
        "A",
        b"",
    );
    let w = owner_worker(Ipv4Addr::from(LADDR), 40000, workers);
    assert_eq!(
        r.run(w, &stray, 13).0,
        Verdict::Kernel,
        "outside snat_ports"
    );
}

#[test]
fn fnat_both_ways_exact_bytes_one_worker() {
    both_ways(1);
}

#[test]
fn fnat_both_ways_exact_bytes_two_workers_no_handoff() {
    both_ways(2);
}

#[test]
fn fnat_udp_checksum_and_ports() {
    let text = cfg(1, "").replace("protocol = \"tcp\"", "protocol = \"udp\"");
    let c = config::parse(&text).expect("config");
    let ports = vec![PortInfo::new(&c.ports[0], MacAddr(PORT_MAC))];
    let shared = Arc::new(Shared::new(1));
    let snap = Snapshot::build(&c, &ports, &shared.registry, 1, &AllUp).unwrap();
    let mut w = Pipeline::new(0, 1, 64, &shared);
    w.on_snapshot(&snap);
    shared
        .neigh
        .learn(Ipv4Addr::from(RS[0]), MacAddr(RS_MAC[0]), 0);
    let mut b = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT_MAC)
        .ipv4(CLIENT, VIP, 64)
        .udp(5555, 80)
        .write(&mut b, b"query")
        .unwrap();
    let mut f = VecFrame::new(&b);
    assert_eq!(w.process(&snap, &mut f, 0, 1, false), Verdict::Tx(0));
    let out = f.to_vec();
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(u))) = (p.net, p.transport) else {
        panic!("udp")
    };
    let h = ip.header().to_header();
    assert_eq!(h.source, LADDR);
    assert_eq!(h.destination, RS[0]);
    assert_eq!(u.destination_port(), 8080);
    assert_eq!(
        u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap(),
        u.checksum()
    );
    assert_eq!(u.payload(), b"query");
}

/// `snat_ports` of 4: four live connections take the four ports, the fifth
/// is refused and counted while they live, a port comes back once its
/// connection has expired (and is reaped), not before.
#[test]
fn fnat_exhaustion_refuses_and_recycles_after_expiry() {
    let mut r = rig(1, "snat_ports = \"2000-2003\"");
    let mut lports = Vec::new();
    for cport in 41000u16..41004 {
        let (v, out) = r.run(0, &from_client(cport, "S", b""), 100);
        assert_eq!(v, Verdict::Tx(0));
        lports.push(tuple(&out).1);
    }
    lports.sort_unstable();
    assert_eq!(lports, vec![2000, 2001, 2002, 2003]);

    let (v, _) = r.run(0, &from_client(41004, "S", b""), 200);
    assert_eq!(v, Verdict::Drop, "fifth connection refused");
    assert_eq!(r.drops(Drop::SnatExhausted), 1);
    // The four live ones still forward on their own tuples.
    for (i, cport) in (41000u16..41004).enumerate() {
        let (v, out) = r.run(0, &from_client(cport, "S", b""), 300);
        assert_eq!(v, Verdict::Tx(0));
        assert_eq!(tuple(&out).1, 2000 + i as u16, "live tuple kept");
    }
    // Re-armed at 300 with SYN_RECV = 5 s: at 5299 nothing has expired.
    r.expire(5299);
    let (v, _) = r.run(0, &from_client(41004, "S", b""), 5299);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(r.drops(Drop::SnatExhausted), 2, "not before expiry");
    // At 5300 they have; the sweep gives the ports back (FIFO order).
    r.expire(5300);
    let (v, out) = r.run(0, &from_client(41004, "S", b""), 5300);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(tuple(&out).1, 2000, "recycled");
    assert_eq!(r.drops(Drop::SnatExhausted), 2);
}

/// A server's RST moves the connection to CLOSE; its port comes back when
/// that expires (`tcp_close` = 2 s), not at once.
#[test]
fn fnat_rst_then_expiry_frees_the_port() {
    let mut r = rig(1, "snat_ports = \"3000-3000\"");
    let (v, out) = r.run(0, &from_client(42000, "S", b""), 0);
    assert_eq!(v, Verdict::Tx(0));
    let lport = tuple(&out).1;
    assert_eq!(lport, 3000);
    // The server refuses (RST to the local tuple): CLOSE (IPVS output
    // table), relayed to the client.
    let rst = tcp(
        (PORT_MAC, RS_MAC[0]),
        RS[0],
        8080,
        LADDR,
        lport,
        64,
        "RA",
        b"",
    );
    let (v, out) = r.run(0, &rst, 10);
    assert_eq!(v, Verdict::Tx(0), "the RST is forwarded");
    assert_eq!(tuple(&out), (VIP, 80, CLIENT, 42000));
    r.expire(2009);
    let (v, _) = r.run(0, &from_client(42001, "S", b""), 2009);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(r.drops(Drop::SnatExhausted), 1);
    r.expire(2010);
    let (v, out) = r.run(0, &from_client(42001, "S", b""), 2010);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(tuple(&out).1, 3000);
}

/// A client that is one of the servers (hairpin): refused for NAT, let
/// through for full-NAT, where the server sees the director.
#[test]
fn fnat_hairpin_from_a_real_server() {
    let mut r = rig(1, "");
    let syn = tcp((PORT_MAC, RS_MAC[1]), RS[1], 43000, VIP, 80, 64, "S", b"");
    let (v, out) = r.run(0, &syn, 0);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(r.drops(Drop::FromRealServer), 0);
    let (src, lport, dst, _) = tuple(&out);
    assert_eq!(src, LADDR);
    assert_eq!(dst, RS[0], "rr's first pick");
    // The answer goes back to the server that asked, from the VIP.
    let reply = tcp(
        (PORT_MAC, RS_MAC[0]),
        RS[0],
        8080,
        LADDR,
        lport,
        64,
        "SA",
        b"",
    );
    let (v, out) = r.run(0, &reply, 1);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(tuple(&out), (VIP, 80, RS[1], 43000));
    assert_eq!(&out[0..6], &RS_MAC[1]);
}

/// `snat_addresses`: an extra source address of the port is answered for
/// by ARP and used (in turn with none other here) for the local tuple.
#[test]
fn fnat_snat_address_is_used_and_answers_arp() {
    let mut r = rig(1, "snat_addresses = [\"198.18.0.50\"]");
    let (v, out) = r.run(0, &from_client(44000, "S", b""), 0);
    assert_eq!(v, Verdict::Tx(0));
    let (src, lport, _, _) = tuple(&out);
    assert_eq!(src, [198, 18, 0, 50]);
    let reply = tcp(
        (PORT_MAC, RS_MAC[0]),
        RS[0],
        8080,
        [198, 18, 0, 50],
        lport,
        64,
        "SA",
        b"",
    );
    let (v, out) = r.run(0, &reply, 1);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(tuple(&out), (VIP, 80, CLIENT, 44000));
    let mut req = Vec::new();
    req.extend_from_slice(&[0xff; 6]);
    req.extend_from_slice(&RS_MAC[0]);
    req.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    req.extend_from_slice(&RS_MAC[0]);
    req.extend_from_slice(&RS[0]);
    req.extend_from_slice(&[0; 6]);
    req.extend_from_slice(&[198, 18, 0, 50]);
    let (v, out) = r.run(0, &req, 2);
    assert_eq!(v, Verdict::Tx(0), "ARP for the snat address answered");
    assert_eq!(&out[28..32], &[198, 18, 0, 50]);
}

#[test]
fn fnat_config_errors_name_the_key() {
    let bad = |extra: &str| {
        let e = config::parse(&cfg(1, extra)).expect_err(extra);
        e.to_string()
    };
    let e = bad("snat_ports = \"5000-4000\"");
    assert!(e.contains("port[0].snat_ports"), "{e}");
    let e = bad("snat_ports = \"0-10\"");
    assert!(e.contains("port[0].snat_ports"), "{e}");
    let e = bad("snat_addresses = [\"198.19.0.5\"]");
    assert!(
        e.contains("port[0].snat_addresses[0]") && e.contains("subnet"),
        "{e}"
    );
    let e = bad("snat_addresses = [\"198.18.0.100\"]");
    assert!(e.contains("VIP"), "{e}");
}

// ------------------------------------------------------------ ICMP errors

const ROUTER: [u8; 4] = [198, 18, 0, 1];
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x01];

/// An ICMP error frame (`kind`) from `src` to `dst` quoting the first
/// `quote_len` bytes of the IP packet in `about` (an Ethernet frame).
fn icmp_error(
    mac: ([u8; 6], [u8; 6]),
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    kind: Icmpv4Type,
    about: &[u8],
    quote_len: usize,
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(mac.1, mac.0)
        .ipv4(src, dst, ttl)
        .icmpv4(kind)
        .write(&mut v, &about[14..14 + quote_len])
        .unwrap();
    v
}

fn frag_needed(mtu: u16) -> Icmpv4Type {
    Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::FragmentationNeeded {
        next_hop_mtu: mtu,
    })
}

impl Rig {
    /// As [`run`](Self::run), for a frame another worker handed over.
    fn run_owned(&mut self, w: usize, frame: &[u8], now: u64) -> (Verdict, Vec<u8>) {
        let mut f = VecFrame::new(frame);
        let v = self.workers[w].process(&self.snap, &mut f, 0, now, true);
        (v, f.to_vec())
    }

    fn relayed(&self) -> u64 {
        self.shared
            .worker_stats
            .iter()
            .map(|s| s.icmp_relayed.get())
            .sum()
    }
}

/// ICMP errors about a full-NAT connection, both ways, on `workers`
/// workers: from the server side (addressed to the local address, the
/// port's own) to the client, and from the client side (to the VIP) to the
/// server; short (28-byte) and long quotes; exact bytes against frames
/// etherparse builds (its checksums: outer IP, ICMP over the translated
/// quote, the quoted IP header and, in the long quote, the quoted TCP
/// checksum). A server-side error delivered to another worker is handed to
/// the local port's owner.
fn icmp_both_ways(workers: usize) {
    let mut r = rig(workers, "");
    let payload = b"0123456789abcdef";
    let cport = 40100;
    let w = owner_worker(Ipv4Addr::from(CLIENT), cport, workers);
    let syn = from_client(cport, "S", payload);
    let (v, fwd) = r.run(w, &syn, 10);
    assert_eq!(v, Verdict::Tx(0));
    let (_, lport, rs, _) = tuple(&fwd);
    assert_eq!(rs, RS[0]);
    let reply = tcp(
        (PORT_MAC, RS_MAC[0]),
        RS[0],
        8080,
        LADDR,
        lport,
        64,
        "SA",
        b"hello",
    );
    let (v, back) = r.run(w, &reply, 11);
    assert_eq!(v, Verdict::Tx(0));
    let full = 20 + 20 + payload.len();
    for (n, quote) in [28usize, full].into_iter().enumerate() {
        // A router on the server side: the director's SYN (laddr:lport ->
        // rs:8080) does not fit its next hop.
        let err = icmp_error(
            (PORT_MAC, ROUTER_MAC),
            ROUTER,
            LADDR,
            64,
            frag_needed(1400),
            &fwd,
            quote,
        );
        if workers > 1 {
            let other = 1 - w;
            let (v, _) = r.run(other, &err, 12);
            assert_eq!(v, Verdict::Handoff(w), "to the local port's owner");
        }
        let (v, out) = if workers > 1 {
            r.run_owned(w, &err, 12)
        } else {
            r.run(w, &err, 12)
        };
        assert_eq!(v, Verdict::Tx(0), "quote {quote}");
        // The client hears it from the VIP, about the SYN it sent (the
        // quoted TTL is the one the router saw).
        let sent = tcp(
            (PORT_MAC, CLIENT_MAC),
            CLIENT,
            cport,
            VIP,
            80,
            63,
            "S",
            payload,
        );
        let want = icmp_error(
            (CLIENT_MAC, PORT_MAC),
            VIP,
            CLIENT,
            63,
            frag_needed(1400),
            &sent,
            quote,
        );
        assert_eq!(out, want, "server side, quote {quote}");
        assert_eq!(r.relayed(), 2 * n as u64 + 1);

        // A router on the client side: the reply (vip:80 -> client) does
        // not fit. The server hears it from the local address, about the
        // segment it sent to the local tuple.
        let err = icmp_error(
            (PORT_MAC, ROUTER_MAC),
            ROUTER,
            VIP,
            64,
            frag_needed(1300),
            &back,
            quote.min(back.len() - 14),
        );
        let (v, out) = r.run(w, &err, 13);
        assert_eq!(v, Verdict::Tx(0));
        let sent = tcp(
            (PORT_MAC, RS_MAC[0]),
            RS[0],
            8080,
            LADDR,
            lport,
            63,
            "SA",
            b"hello",
        );
        let want = icmp_error(
            (RS_MAC[0], PORT_MAC),
            LADDR,
            RS[0],
            63,
            frag_needed(1300),
            &sent,
            quote.min(back.len() - 14),
        );
        assert_eq!(out, want, "client side, quote {quote}");
        assert_eq!(r.relayed(), 2 * n as u64 + 2);
    }
    assert_eq!(r.drops(Drop::IcmpUnknownFlow), 0);

    // An error quoting the kernel's own traffic from the port address
    // (a source port outside snat_ports) is still the kernel's; one
    // quoting a local tuple no connection holds is too.
    for sport in [40000u16, lport + 1] {
        let own = tcp(
            (RS_MAC[1], PORT_MAC),
            LADDR,
            sport,
            RS[1],
            8080,
            64,
            "S",
            b"",
        );
        let err = icmp_error(
            (PORT_MAC, RS_MAC[1]),
            RS[1],
            LADDR,
            64,
            Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port),
            &own,
            28,
        );
        let w = owner_worker(Ipv4Addr::from(LADDR), sport, workers);
        assert_eq!(r.run(w, &err, 14).0, Verdict::Kernel, "sport {sport}");
    }
    assert_eq!(r.relayed(), 4);
}

#[test]
fn fnat_icmp_errors_translated_both_ways_one_worker() {
    icmp_both_ways(1);
}

#[test]
fn fnat_icmp_errors_translated_both_ways_two_workers() {
    icmp_both_ways(2);
}

/// UDP: the server's port-unreachable about the datagram it got from an
/// extra `snat_addresses` address (not the port's own: the error takes the
/// VIP path) reaches the client from the VIP, the quoted UDP checksum
/// updated for both ends; time-exceeded with TTL 1 is not relayed.
#[test]
fn fnat_icmp_udp_port_unreachable_via_snat_address() {
    const SNAT: [u8; 4] = [198, 18, 0, 50];
    let text = cfg(1, "snat_addresses = [\"198.18.0.50\"]")
        .replace("protocol = \"tcp\"", "protocol = \"udp\"");
    let c = config::parse(&text).expect("config");
    let ports = vec![PortInfo::new(&c.ports[0], MacAddr(PORT_MAC))];
    let shared = Arc::new(Shared::new(1));
    let snap = Snapshot::build(&c, &ports, &shared.registry, 1, &AllUp).unwrap();
    let mut w = Pipeline::new(0, 1, 64, &shared);
    w.on_snapshot(&snap);
    shared
        .neigh
        .learn(Ipv4Addr::from(RS[0]), MacAddr(RS_MAC[0]), 0);
    shared
        .neigh
        .learn(Ipv4Addr::from(CLIENT), MacAddr(CLIENT_MAC), 0);
    let udp = |mac: ([u8; 6], [u8; 6]), src, sport, dst, dport, ttl| {
        let mut b = Vec::new();
        PacketBuilder::ethernet2(mac.1, mac.0)
            .ipv4(src, dst, ttl)
            .udp(sport, dport)
            .write(&mut b, b"query")
            .unwrap();
        b
    };
    let mut f = VecFrame::new(&udp((PORT_MAC, CLIENT_MAC), CLIENT, 5555, VIP, 80, 64));
    assert_eq!(w.process(&snap, &mut f, 0, 1, false), Verdict::Tx(0));
    let fwd = f.to_vec();
    let lport = u16::from_be_bytes([fwd[34], fwd[35]]);
    assert_eq!(&fwd[26..30], &SNAT);
    assert_eq!(
        fwd,
        udp((RS_MAC[0], PORT_MAC), SNAT, lport, RS[0], 8080, 63),
        "forwarded datagram"
    );
    let unreach = Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Port);
    let err = icmp_error(
        (PORT_MAC, RS_MAC[0]),
        RS[0],
        SNAT,
        64,
        unreach.clone(),
        &fwd,
        33,
    );
    let mut f = VecFrame::new(&err);
    assert_eq!(w.process(&snap, &mut f, 0, 2, false), Verdict::Tx(0));
    let sent = udp((PORT_MAC, CLIENT_MAC), CLIENT, 5555, VIP, 80, 63);
    assert_eq!(
        f.to_vec(),
        icmp_error((CLIENT_MAC, PORT_MAC), VIP, CLIENT, 63, unreach, &sent, 33)
    );
    assert_eq!(shared.worker_stats[0].icmp_relayed.get(), 1);
    // TTL 1: never forwarded.
    let err = icmp_error(
        (PORT_MAC, RS_MAC[0]),
        RS[0],
        SNAT,
        1,
        Icmpv4Type::TimeExceeded(icmpv4::TimeExceededCode::TtlExceededInTransit),
        &fwd,
        28,
    );
    let mut f = VecFrame::new(&err);
    assert_eq!(w.process(&snap, &mut f, 0, 3, false), Verdict::Drop);
    assert_eq!(
        shared.worker_stats[0].drops[Drop::TtlExceeded as usize].get(),
        1
    );
}

// -------------------------------------------------------------- fragments

/// A UDP datagram with a valid checksum: its IP payload (UDP header +
/// data).
fn udp_datagram(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut v, &data)
        .unwrap();
    v.split_off(20)
}

/// Cuts `payload` (a UDP datagram's IP payload) into framed fragments of
/// at most `max` bytes (a multiple of 8), IP id `id`, TTL 64; `eth` is
/// (destination, source).
fn fragments(
    eth: ([u8; 6], [u8; 6]),
    src: [u8; 4],
    dst: [u8; 4],
    id: u16,
    payload: &[u8],
    max: usize,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let end = (off + max).min(payload.len());
        let mut h = Ipv4Header::new((end - off) as u16, 64, IpNumber::UDP, src, dst).unwrap();
        h.identification = id;
        h.dont_fragment = false;
        h.more_fragments = end < payload.len();
        h.fragment_offset = IpFragOffset::try_new((off / 8) as u16).unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut f = Vec::new();
        Ethernet2Header {
            destination: eth.0,
            source: eth.1,
            ether_type: EtherType::IPV4,
        }
        .write(&mut f)
        .unwrap();
        h.write(&mut f).unwrap();
        f.extend_from_slice(&payload[off..end]);
        out.push(f);
        off = end;
    }
    out
}

/// The fragment `in_frame` as it must leave: the same IP header (id,
/// offset, MF, length) with `src -> dst` and TTL - 1 (checksum recomputed
/// by etherparse), between `eth` MACs; the payload unchanged except for
/// a first fragment's UDP header (checked by reassembly).
fn check_fragment(
    out: &[u8],
    in_frame: &[u8],
    eth: ([u8; 6], [u8; 6]),
    src: [u8; 4],
    dst: [u8; 4],
) {
    let (e, rest) = Ethernet2Header::from_slice(out).expect("ethernet");
    assert_eq!((e.destination, e.source), eth);
    let (ip, payload) = Ipv4Header::from_slice(rest).expect("ipv4");
    let (mut want, in_payload) = Ipv4Header::from_slice(&in_frame[14..]).unwrap();
    want.source = src;
    want.destination = dst;
    want.time_to_live -= 1;
    want.header_checksum = want.calc_header_checksum();
    assert_eq!(ip, want, "IP header");
    if ip.fragment_offset.value() > 0 {
        assert_eq!(payload, in_payload, "a later fragment's bytes");
    } else {
        assert_eq!(payload[8..], in_payload[8..], "a first fragment's data");
    }
}

/// Puts forwarded fragments back together by offset and checks the UDP
/// checksum over the whole datagram for `src -> dst`: (sport, dport, data).
fn reassemble(outs: &[Vec<u8>], src: [u8; 4], dst: [u8; 4]) -> (u16, u16, Vec<u8>) {
    let mut parts: Vec<(usize, Vec<u8>)> = outs
        .iter()
        .map(|o| {
            let (ip, payload) = Ipv4Header::from_slice(&o[14..]).unwrap();
            (
                usize::from(ip.fragment_offset.value()) * 8,
                payload.to_vec(),
            )
        })
        .collect();
    parts.sort_by_key(|p| p.0);
    let mut dgram = Vec::new();
    for (off, p) in &parts {
        assert_eq!(*off, dgram.len(), "contiguous");
        dgram.extend_from_slice(p);
    }
    let (udp, data) = UdpHeader::from_slice(&dgram).expect("udp");
    assert_eq!(usize::from(udp.length), dgram.len());
    let want = udp.calc_checksum_ipv4_raw(src, dst, data).unwrap();
    assert_eq!(udp.checksum, want, "UDP checksum over the datagram");
    (udp.source_port, udp.destination_port, data.to_vec())
}

impl Rig {
    /// One frame through worker `w`, following a hand-off.
    /// The hand-off, if any, comes back as `Some(owner)`.
    fn run_follow(
        &mut self,
        w: usize,
        frame: &[u8],
        now: u64,
    ) -> (Verdict, Vec<u8>, Option<usize>) {
        let mut f = VecFrame::new(frame);
        let mut v = self.workers[w].process(&self.snap, &mut f, 0, now, false);
        let mut to = None;
        if let Verdict::Handoff(o) = v {
            to = Some(o);
            v = self.workers[o].process(&self.snap, &mut f, 0, now, true);
        }
        (v, f.to_vec(), to)
    }

    fn frags_forwarded(&self) -> u64 {
        self.shared
            .worker_stats
            .iter()
            .map(|s| s.frags_forwarded.get())
            .sum()
    }
}

/// A fragmented UDP datagram each way through a full-NAT connection on
/// two workers: the first fragment opens (or finds) the connection on its
/// owner and is rewritten whole, the later ones arrive at the other worker
/// (RSS cannot hash their ports), are handed to the owner through the
/// fragment directory and get both addresses rewritten; the reassembled
/// datagrams carry the full-NAT ports and a UDP checksum that verifies.
#[test]
fn fnat_fragments_both_ways_two_workers() {
    let text = cfg(2, "").replace("protocol = \"tcp\"", "protocol = \"udp\"");
    let mut r = rig_text(2, &text);
    let cport = 40200;
    let w = owner_worker(Ipv4Addr::from(CLIENT), cport, 2);
    let other = 1 - w;
    let dgram = udp_datagram(CLIENT, VIP, cport, 80, 3000);
    let ins = fragments((PORT_MAC, CLIENT_MAC), CLIENT, VIP, 0x1234, &dgram, 1480);
    assert_eq!(ins.len(), 3);
    let mut outs = Vec::new();
    let (v, first) = r.run(w, &ins[0], 10);
    assert_eq!(v, Verdict::Tx(0));
    let lport = u16::from_be_bytes([first[34], first[35]]);
    check_fragment(&first, &ins[0], (RS_MAC[0], PORT_MAC), LADDR, RS[0]);
    outs.push(first);
    for f in &ins[1..] {
        let (v, out, to) = r.run_follow(other, f, 11);
        assert_eq!(to, Some(w), "handed to the first fragment's worker");
        assert_eq!(v, Verdict::Tx(0));
        check_fragment(&out, f, (RS_MAC[0], PORT_MAC), LADDR, RS[0]);
        outs.push(out);
    }
    let (sport, dport, data) = reassemble(&outs, LADDR, RS[0]);
    assert_eq!((sport, dport), (lport, 8080));
    assert_eq!(data, dgram[8..]);
    assert_eq!(r.frags_forwarded(), 3);

    // The server's answer to the local tuple (the port's own address),
    // fragmented by its kernel: back to the client from the VIP.
    let answer = udp_datagram(RS[0], LADDR, 8080, lport, 4000);
    let ins = fragments((PORT_MAC, RS_MAC[0]), RS[0], LADDR, 0xBEEF, &answer, 1480);
    assert_eq!(ins.len(), 3);
    let mut outs = Vec::new();
    let (v, out) = r.run(w, &ins[0], 12);
    assert_eq!(v, Verdict::Tx(0));
    check_fragment(&out, &ins[0], (CLIENT_MAC, PORT_MAC), VIP, CLIENT);
    outs.push(out);
    for f in &ins[1..] {
        let (v, out, to) = r.run_follow(other, f, 13);
        assert_eq!(to, Some(w), "handed to the first fragment's worker");
        assert_eq!(v, Verdict::Tx(0));
        check_fragment(&out, f, (CLIENT_MAC, PORT_MAC), VIP, CLIENT);
        outs.push(out);
    }
    let (sport, dport, data) = reassemble(&outs, VIP, CLIENT);
    assert_eq!((sport, dport), (80, cport));
    assert_eq!(data, answer[8..]);
    assert_eq!(r.frags_forwarded(), 6);
    assert_eq!(r.drops(Drop::Fragment), 0);
    let conns: usize = r.workers.iter().map(|w| w.conns.len()).sum();
    assert_eq!(conns, 1, "one connection for both datagrams");
    // The server's counters saw 3 + 3 fragments of 3028 + 4028 IP bytes.
    let d = &r.snap.services[0].servers[0].shared;
    let (inp, outp, inb, outb) = d.per_worker.iter().fold((0, 0, 0, 0), |a, k| {
        (
            a.0 + k.in_packets.get(),
            a.1 + k.out_packets.get(),
            a.2 + k.in_bytes.get(),
            a.3 + k.out_bytes.get(),
        )
    });
    assert_eq!((inp, outp), (3, 3));
    assert_eq!((inb, outb), (3008 + 3 * 20, 4008 + 3 * 20));
}

/// Later fragments of a server's answer to the port's own address that
/// come before their first fragment are held (they are from a full-NAT
/// server), then forwarded once it has been; a later fragment to the port
/// address from anyone else, or of a datagram never seen, is the kernel's.
#[test]
fn fnat_reply_fragments_held_until_the_first_then_kernel_for_strangers() {
    let text = cfg(1, "").replace("protocol = \"tcp\"", "protocol = \"udp\"");
    let mut r = rig_text(1, &text);
    let mut b = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT_MAC)
        .ipv4(CLIENT, VIP, 64)
        .udp(40300, 80)
        .write(&mut b, b"q")
        .unwrap();
    let (v, out) = r.run(0, &b, 1);
    assert_eq!(v, Verdict::Tx(0));
    let lport = u16::from_be_bytes([out[34], out[35]]);
    let answer = udp_datagram(RS[0], LADDR, 8080, lport, 3000);
    let ins = fragments((PORT_MAC, RS_MAC[0]), RS[0], LADDR, 77, &answer, 1480);
    let mut hold: FragHold<VecFrame> = FragHold::new();
    for f in ins.iter().skip(1) {
        let mut fr = VecFrame::new(f);
        let v = r.workers[0].process(&r.snap, &mut fr, 0, 20, false);
        assert_eq!(v, Verdict::Hold);
        hold.hold(&r.workers[0], fr, 0, 20);
    }
    let (v, first) = r.run(0, &ins[0], 30);
    assert_eq!(v, Verdict::Tx(0));
    let mut outs = vec![first];
    assert!(hold.begin_retry(&r.workers[0], 30));
    while let Some((f, _, v)) = hold.next_ready(&mut r.workers[0], &r.snap, 30) {
        assert_eq!(v, Verdict::Tx(0));
        outs.push(f.to_vec());
    }
    assert!(hold.is_empty());
    let (sport, dport, data) = reassemble(&outs, VIP, CLIENT);
    assert_eq!((sport, dport), (80, 40300));
    assert_eq!(data, answer[8..]);

    // From a host that is no full-NAT server, or a datagram whose first
    // fragment this director never forwarded: the kernel's.
    let stranger = fragments((PORT_MAC, CLIENT_MAC), CLIENT, LADDR, 78, &answer, 1480);
    assert_eq!(r.run(0, &stranger[1], 40).0, Verdict::Kernel);
    let unseen = fragments((PORT_MAC, RS_MAC[0]), RS[0], LADDR, 79, &answer, 1480);
    let mut fr = VecFrame::new(&unseen[1]);
    assert_eq!(
        r.workers[0].process(&r.snap, &mut fr, 0, 40, false),
        Verdict::Hold,
        "from a full-NAT server: perhaps early"
    );
}

// ---------------------------------------------------------- [ha] and sync

/// `[ha]` on the one-arm port (sync is switched on by hand, as the HA
/// thread would).
const HA: &str = r#"
[ha]
vrid = 51
priority = 150
port = "lan"
peers = ["198.18.0.3"]
sync = false
"#;

/// A director of `workers` workers with `snat_ports` 2000-2007 and `[ha]`,
/// master or backup, syncing.
fn ha_rig(workers: usize, master: bool, port_extra: &str) -> Rig {
    let extra = format!("snat_ports = \"2000-2007\"\n{port_extra}");
    let text = format!("{}{HA}", cfg(workers, &extra));
    let mut r = rig_text(workers, &text);
    r.shared.ha.enable(true);
    r.shared.ha.set_master(master);
    for w in &mut r.workers {
        w.ha_poll(&r.snap, 0);
    }
    r
}

impl Rig {
    /// Everything the workers reported for the peers, per worker.
    fn reported(&self) -> Vec<Vec<Record>> {
        (0..self.workers.len())
            .map(|w| std::iter::from_fn(|| self.shared.ha.out[w].pop()).collect())
            .collect()
    }

    fn poll(&mut self, now: u64) {
        for w in &mut self.workers {
            w.ha_poll(&self.snap, now);
        }
    }

    fn stat(&self, f: impl Fn(&engine::dataplane::counters::WorkerStats) -> u64) -> u64 {
        self.shared.worker_stats.iter().map(|s| f(s)).sum()
    }
}

/// A client port of `CLIENT` owned by worker `w` of `workers`, from `from`.
fn cport_of(w: usize, workers: usize, from: u16) -> u16 {
    (from..)
        .find(|&p| owner_worker(Ipv4Addr::from(CLIENT), p, workers) == w)
        .unwrap()
}

/// Full-NAT connections survive a takeover: the master reports each one
/// with its local tuple; the backup (the same worker count) installs them
/// on the same workers, holding their local ports; as master it forwards
/// the next packet of both directions with exact bytes, and its new
/// connections get only the other local ports (each port once, never a
/// synced one).
#[test]
fn fnat_sync_installs_local_tuple_and_survives_takeover() {
    let workers = 2;
    let mut m = ha_rig(workers, true, "");
    let mut b = ha_rig(workers, false, "");
    // One connection per worker, established.
    let mut conns = Vec::new();
    for w in 0..workers {
        let cport = cport_of(w, workers, 40500);
        let (v, out) = m.run(w, &from_client(cport, "S", b""), 10);
        assert_eq!(v, Verdict::Tx(0));
        let (_, lport, rs, _) = tuple(&out);
        let i = RS.iter().position(|a| *a == rs).unwrap();
        let sa = tcp(
            (PORT_MAC, RS_MAC[i]),
            RS[i],
            8080,
            LADDR,
            lport,
            64,
            "SA",
            b"",
        );
        assert_eq!(m.run(w, &sa, 11).0, Verdict::Tx(0));
        assert_eq!(
            m.run(w, &from_client(cport, "A", b""), 12).0,
            Verdict::Tx(0)
        );
        conns.push((w, cport, lport, i));
    }
    // Reported: SYN_RECV then ESTABLISHED, each with its local tuple.
    let reported = m.reported();
    for &(w, cport, lport, i) in &conns {
        let recs: Vec<ConnRecord> = reported[w]
            .iter()
            .map(|r| match r {
                Record::Conn(c) => *c,
                other => panic!("no persistence, no IPv6: {other:?}"),
            })
            .collect();
        assert_eq!(recs.len(), 2, "worker {w}");
        for (c, st) in recs.iter().zip([TcpState::SynRecv, TcpState::Established]) {
            assert_eq!(c.state, st as u8);
            assert_eq!(c.method, 3, "fnat");
            assert_eq!(c.client, Ipv4Addr::from(CLIENT));
            assert_eq!(c.cport, cport);
            assert_eq!((c.server, c.sport), (Ipv4Addr::from(RS[i]), 8080));
            assert_eq!(c.local, Some((Ipv4Addr::from(LADDR), lport)));
        }
        // Over the wire and back, as the HA thread carries it.
        let key = engine::ha::sync::SyncKey::new(b"0123456789abcdef").unwrap();
        let msg = engine::ha::sync::Message {
            sender: Ipv4Addr::new(198, 18, 0, 2),
            boot: 1,
            seq: 1,
            body: engine::ha::sync::Body::Records(reported[w].clone()),
        };
        let wire = engine::ha::sync::encode(&msg, &key);
        let Ok(got) = engine::ha::sync::decode(&wire, &key) else {
            panic!("decode")
        };
        let engine::ha::sync::Body::Records(rs) = got.body else {
            panic!("records")
        };
        for r in rs {
            let Record::Conn(c) = r else { panic!() };
            // The HA thread's choice of worker: the client's owner.
            let to = owner_worker(c.client, c.cport, workers);
            assert_eq!(to, w);
            b.shared.ha.install[to].push(r).unwrap();
        }
    }
    b.poll(20);
    assert_eq!(b.stat(|s| s.sync_installed.get()), 4);
    assert_eq!(b.stat(|s| s.sync_unknown.get()), 0);
    let held: usize = b
        .workers
        .iter()
        .map(|w| {
            let (free, owned) = w.conns.snat_usage(0);
            owned - free
        })
        .sum();
    assert_eq!(held, 2, "the two synced local ports are held");
    // Still backup: nothing forwarded.
    assert_eq!(
        b.run(conns[0].0, &from_client(conns[0].1, "A", b"x"), 21).0,
        Verdict::Drop
    );

    // Takeover.
    b.shared.ha.set_master(true);
    b.poll(30);
    for &(w, cport, lport, i) in &conns {
        let (v, out) = b.run(w, &from_client(cport, "A", b"hello"), 31);
        assert_eq!(v, Verdict::Tx(0));
        let want = tcp(
            (RS_MAC[i], PORT_MAC),
            LADDR,
            lport,
            RS[i],
            8080,
            63,
            "A",
            b"hello",
        );
        assert_eq!(out, want, "client -> server after takeover");
        let answer = tcp(
            (PORT_MAC, RS_MAC[i]),
            RS[i],
            8080,
            LADDR,
            lport,
            64,
            "A",
            b"world",
        );
        let (v, out) = b.run(w, &answer, 32);
        assert_eq!(v, Verdict::Tx(0));
        let want = tcp(
            (CLIENT_MAC, PORT_MAC),
            VIP,
            80,
            CLIENT,
            cport,
            63,
            "A",
            b"world",
        );
        assert_eq!(out, want, "server -> client after takeover");
    }
    assert_eq!(b.drops(Drop::NoConnection), 0);

    // New connections on the new master: every other local port once,
    // none of the synced ones, then exhaustion.
    let mut lports: Vec<u16> = conns.iter().map(|c| c.2).collect();
    for w in 0..workers {
        let mut from = 41000;
        loop {
            let cport = cport_of(w, workers, from);
            from = cport + 1;
            let (v, out) = b.run(w, &from_client(cport, "S", b""), 40);
            if v == Verdict::Drop {
                break;
            }
            lports.push(tuple(&out).1);
        }
    }
    assert_eq!(b.drops(Drop::SnatExhausted), 2, "one refusal per worker");
    lports.sort_unstable();
    assert_eq!(lports, (2000..=2007).collect::<Vec<_>>(), "each port once");
}

/// Records a backup cannot install are counted `sync_unknown`, never
/// installed: a full-NAT record without its local tuple (an older peer's),
/// one whose local port is held here already, and one whose local port
/// another worker owns (directors with different worker counts).
#[test]
fn fnat_sync_refuses_records_it_cannot_hold() {
    let mut b = ha_rig(2, false, "");
    let lport = (2000u16..)
        .find(|&p| owner_worker(Ipv4Addr::from(LADDR), p, 2) == 0)
        .unwrap();
    let other = (2000u16..)
        .find(|&p| owner_worker(Ipv4Addr::from(LADDR), p, 2) == 1)
        .unwrap();
    let rec = |cport: u16, local: Option<u16>| ConnRecord {
        proto: 6,
        state: TcpState::Established as u8,
        method: 3,
        flags: 0,
        client: Ipv4Addr::from(CLIENT),
        cport,
        vip: Ipv4Addr::from(VIP),
        vport: 80,
        server: Ipv4Addr::from(RS[0]),
        sport: 8080,
        timeout_ms: 900_000,
        local: local.map(|p| (Ipv4Addr::from(LADDR), p)),
    };
    let w0 = cport_of(0, 2, 42000);
    let w0b = cport_of(0, 2, w0 + 1);
    b.workers[0].install(&b.snap, &rec(w0, Some(lport)), 1);
    assert_eq!(b.stat(|s| s.sync_installed.get()), 1);
    // The same connection again (a refresh): updated, not refused.
    b.workers[0].install(&b.snap, &rec(w0, Some(lport)), 2);
    assert_eq!(b.stat(|s| s.sync_installed.get()), 2);
    for (cport, local) in [(w0b, None), (w0b, Some(lport)), (w0b, Some(other))] {
        b.workers[0].install(&b.snap, &rec(cport, local), 3);
    }
    assert_eq!(b.stat(|s| s.sync_unknown.get()), 3);
    assert_eq!(b.workers[0].conns.len(), 1);
    assert_eq!(b.workers[1].conns.len(), 0);
}

/// A takeover announces the extra `snat_addresses` (answered for by ARP on
/// the master only) with gratuitous ARP, as it does the VIPs: five rounds
/// of the VIP, then 198.18.0.50 and .51 (the port's own address, also a
/// source address here, is not announced: it never moves).
#[test]
fn fnat_takeover_sends_gratuitous_arp_for_extra_snat_addresses() {
    let mut b = ha_rig(
        1,
        false,
        "snat_addresses = [\"198.18.0.2\", \"198.18.0.50\", \"198.18.0.51\"]",
    );
    b.shared.ha.request_garp();
    b.poll(1);
    assert_eq!(b.workers[0].take_garp(&b.snap), None, "a backup sends none");
    b.shared.ha.set_master(true);
    b.shared.ha.request_garp();
    b.poll(2);
    let mut sent = Vec::new();
    for _ in 0..10 {
        while let Some((port, ip)) = b.workers[0].take_garp(&b.snap) {
            let mut buf = [0u8; 60];
            assert!(b.workers[0].build_garp(&b.snap, port, ip, &mut buf));
            assert_eq!(&buf[0..6], &[0xff; 6]);
            assert_eq!(&buf[6..12], &PORT_MAC);
            assert_eq!(&buf[12..14], &[0x08, 0x06]);
            assert_eq!(&buf[20..22], &[0, 1], "a request");
            assert_eq!(&buf[22..28], &PORT_MAC, "sha");
            assert_eq!(&buf[28..32], &ip.octets(), "spa");
            assert_eq!(&buf[38..42], &ip.octets(), "tpa = spa");
            sent.push((port, ip));
        }
    }
    let round = [
        (0, Ipv4Addr::from(VIP)),
        (0, Ipv4Addr::new(198, 18, 0, 50)),
        (0, Ipv4Addr::new(198, 18, 0, 51)),
    ];
    assert_eq!(sent.len(), 15);
    for r in sent.chunks(3) {
        assert_eq!(r, round);
    }
    assert_eq!(b.stat(|s| s.garp_sent.get()), 15);
}

/// `forward::icmp_error_fnat` refuses what it cannot translate and leaves
/// the frame as it was: TTL 1, a quote that is not TCP/UDP, a message that
/// is no error, a fragmented error.
#[test]
fn fnat_icmp_rewrite_refusals_leave_the_frame_unchanged() {
    use engine::forward::{icmp_error_fnat, ForwardError, IcmpFnat};
    use engine::packet::parse_frame;
    let t = IcmpFnat {
        outer_src: Ipv4Addr::from(VIP),
        outer_dst: Ipv4Addr::from(CLIENT),
        quoted_src: (Ipv4Addr::from(CLIENT), 40000),
        quoted_dst: (Ipv4Addr::from(VIP), 80),
    };
    let sent = tcp(
        (RS_MAC[0], PORT_MAC),
        LADDR,
        2000,
        RS[0],
        8080,
        63,
        "S",
        b"",
    );
    // `fix` changes the frame's bytes (the IP header checksum is fixed
    // after it), which is then parsed and offered to the rewrite.
    let refuse = |frame: &[u8], fix: &dyn Fn(&mut [u8]), want| {
        let mut f = frame.to_vec();
        fix(&mut f);
        f[24..26].copy_from_slice(&[0, 0]);
        let c = engine::packet::checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        let p = parse_frame(&f).expect("parse");
        let mut g = f.clone();
        assert_eq!(icmp_error_fnat(&mut p.ipv4(&mut g).unwrap(), &t), Err(want));
        assert_eq!(g, f, "unchanged after {want:?}");
    };
    let unreach = frag_needed(1400);
    let ttl1 = icmp_error(
        (PORT_MAC, RS_MAC[0]),
        RS[0],
        LADDR,
        1,
        unreach.clone(),
        &sent,
        28,
    );
    refuse(&ttl1, &|_| {}, ForwardError::TtlExpired);
    let ok = icmp_error(
        (PORT_MAC, RS_MAC[0]),
        RS[0],
        LADDR,
        64,
        unreach.clone(),
        &sent,
        28,
    );
    // MF set; an echo request; a quote that is not an IPv4 header.
    refuse(&ok, &|f| f[20] |= 0x20, ForwardError::Fragmented);
    refuse(&ok, &|f| f[34] = 8, ForwardError::NoQuote);
    refuse(&ok, &|f| f[42] = 0x65, ForwardError::NoQuote);
    let mut echo = Vec::new();
    PacketBuilder::ethernet2(PORT_MAC, RS_MAC[0])
        .ipv4(LADDR, RS[0], 63)
        .icmpv4_echo_request(1, 1)
        .write(&mut echo, b"12345678")
        .unwrap();
    let about_icmp = icmp_error((PORT_MAC, RS_MAC[0]), RS[0], LADDR, 64, unreach, &echo, 28);
    refuse(&about_icmp, &|_| {}, ForwardError::UnsupportedProtocol);
}

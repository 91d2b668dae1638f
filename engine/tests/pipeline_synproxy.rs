//! The synproxy (`[timeouts] syn_cookies = true`) driven with byte
//! buffers: every frame the director writes is decoded with etherparse (an
//! independent parser), checksums included, and the sequence numbers are
//! checked exactly through the cookie handshake, the server handshake and
//! the shifted data that follows.
#![cfg(feature = "dpdk")]

use std::net::Ipv4Addr;
use std::sync::Arc;

use engine::config;
use engine::conn::TcpState;
use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::{Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TcpOptionElement, TransportSlice};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];
const RS_MAC: [u8; 6] = [2, 0, 0, 1, 0, 11];
const VIP: [u8; 4] = [198, 18, 0, 100];
const CLIENT: [u8; 4] = [198, 18, 0, 10];
const RS: [u8; 4] = [198, 19, 0, 11];
const CLIENT_ISN: u32 = 0xFFFF_FF00;
const SERVER_ISN: u32 = 0x1234_5678;

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

[timeouts]
syn_cookies = true

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "rr"
forward = "nat"
  [[service.server]]
  address = "198.19.0.11"
  port = 8080

[[service]]
vip = "198.18.0.100"
port = 81
protocol = "tcp"
scheduler = "rr"
forward = "dr"
  [[service.server]]
  address = "198.19.0.11"
"#;

struct Rig {
    shared: Arc<Shared>,
    snap: Snapshot,
    w: Pipeline,
}

fn rig() -> Rig {
    let cfg = config::parse(CFG).expect("config");
    let ports = vec![
        PortInfo::new(&cfg.ports[0], MacAddr(PORT0_MAC)),
        PortInfo::new(&cfg.ports[1], MacAddr(PORT1_MAC)),
    ];
    let shared = Arc::new(Shared::new(1));
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).unwrap();
    let mut w = Pipeline::new(0, 1, 1024, &shared);
    w.on_snapshot(&snap);
    shared.neigh.learn(Ipv4Addr::from(RS), MacAddr(RS_MAC), 0);
    shared
        .neigh
        .learn(Ipv4Addr::from(CLIENT), MacAddr(CLIENT_MAC), 0);
    Rig { shared, snap, w }
}

impl Rig {
    fn run(&mut self, port: usize, frame: &[u8], now: u64) -> (Verdict, Vec<u8>) {
        let mut f = VecFrame::new(frame);
        let v = self.w.process(&self.snap, &mut f, port, now, false);
        (v, f.to_vec())
    }

    fn drops(&self, d: Drop) -> u64 {
        self.shared.worker_stats[0].drops[d as usize].get()
    }

    fn drops_total(&self) -> u64 {
        self.shared.worker_stats[0]
            .drops
            .iter()
            .map(|c| c.get())
            .sum()
    }

    /// The SYN, answered: returns the cookie (our ISN).
    fn cookie(&mut self, cport: u16, now: u64) -> u32 {
        let (v, out) = self.run(0, &client_syn(cport, 80, Some(1460)), now);
        assert_eq!(v, Verdict::Tx(0));
        decode(&out).seq
    }
}

fn client_syn(cport: u16, vport: u16, mss: Option<u16>) -> Vec<u8> {
    let mut opts = vec![];
    if let Some(m) = mss {
        opts.push(TcpOptionElement::MaximumSegmentSize(m));
    }
    opts.push(TcpOptionElement::SelectiveAcknowledgementPermitted);
    opts.push(TcpOptionElement::WindowScale(7));
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, VIP, 64)
        .tcp(cport, vport, CLIENT_ISN, 64240)
        .syn()
        .options(&opts)
        .unwrap()
        .write(&mut v, &[])
        .unwrap();
    v
}

/// Client -> VIP:80, ACK set.
fn client_ack(cport: u16, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv4(CLIENT, VIP, 64)
        .tcp(cport, 80, seq, 502)
        .ack(ack)
        .write(&mut v, payload)
        .unwrap();
    v
}

/// Server -> client with the given flags.
fn server_seg(cport: u16, seq: u32, ack: u32, syn: bool, rst: bool, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(RS_MAC, PORT1_MAC)
        .ipv4(RS, CLIENT, 64)
        .tcp(8080, cport, seq, 29200)
        .ack(ack);
    if syn {
        b = b.syn();
    }
    if rst {
        b = b.rst();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// One frame the director wrote, every checksum verified.
#[derive(Debug)]
struct Seg {
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    df: bool,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    /// (SYN, ACK, RST, FIN)
    flags: (bool, bool, bool, bool),
    window: u16,
    options: Vec<TcpOptionElement>,
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
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("no tcp")
    };
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
        df: h.dont_fragment,
        sport: t.source_port(),
        dport: t.destination_port(),
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
        flags: (t.syn(), t.ack(), t.rst(), t.fin()),
        window: t.window_size(),
        options: th.options_iterator().map(|o| o.unwrap()).collect(),
        payload: t.payload().to_vec(),
    }
}

const SYN: (bool, bool, bool, bool) = (true, false, false, false);
const SYN_ACK: (bool, bool, bool, bool) = (true, true, false, false);
const ACK: (bool, bool, bool, bool) = (false, true, false, false);
const RST: (bool, bool, bool, bool) = (false, false, true, false);

#[test]
fn syn_is_answered_by_a_cookie_syn_ack_and_no_state() {
    let mut r = rig();
    let (v, out) = r.run(0, &client_syn(40000, 80, Some(1460)), 5_000);
    assert_eq!(v, Verdict::Tx(0), "back out of the client port");
    assert_eq!(out.len(), 60, "58 bytes of headers, padded");
    let s = decode(&out);
    assert_eq!((s.eth_dst, s.eth_src), (CLIENT_MAC, PORT0_MAC));
    assert_eq!((s.src, s.dst, s.sport, s.dport), (VIP, CLIENT, 80, 40000));
    assert_eq!((s.ttl, s.df), (64, true));
    assert_eq!(s.flags, SYN_ACK);
    assert_eq!(s.ack, CLIENT_ISN.wrapping_add(1));
    assert_eq!(s.window, 65535);
    // MSS only (port MTU 1500): no window scaling, SACK or timestamps.
    assert_eq!(s.options, vec![TcpOptionElement::MaximumSegmentSize(1460)]);
    assert!(s.payload.is_empty());
    assert_eq!(r.w.conns.len(), 0, "a cookie creates no connection");
    assert_eq!(r.shared.worker_stats[0].syn_cookies_sent.get(), 1);
    assert_eq!(r.drops_total(), 0);
    // Stateless and deterministic: the same SYN gets the same cookie.
    assert_eq!(r.cookie(40000, 5_001), s.seq);
    assert_ne!(r.cookie(40001, 5_001), s.seq);
}

#[test]
fn ack_with_a_bad_cookie_is_a_counted_drop() {
    let mut r = rig();
    let good = r.cookie(40000, 0);
    for bad in [good ^ 1, good.wrapping_add(1 << 24), 0, 12345] {
        let (v, _) = r.run(
            0,
            &client_ack(40000, CLIENT_ISN + 1, bad.wrapping_add(1), b""),
            10,
        );
        assert_eq!(v, Verdict::Drop);
    }
    // Right cookie, wrong client ISN (seq - 1).
    let (v, _) = r.run(
        0,
        &client_ack(40000, CLIENT_ISN + 2, good.wrapping_add(1), b""),
        10,
    );
    assert_eq!(v, Verdict::Drop);
    // Right cookie for another client port.
    let (v, _) = r.run(
        0,
        &client_ack(40001, CLIENT_ISN + 1, good.wrapping_add(1), b""),
        10,
    );
    assert_eq!(v, Verdict::Drop);
    assert_eq!(r.drops(Drop::BadSynCookie), 6);
    assert_eq!(r.drops_total(), 6);
    assert_eq!(r.w.conns.len(), 0);
    assert_eq!(r.shared.worker_stats[0].syn_cookies_ok.get(), 0);
}

#[test]
fn cookie_handshake_then_server_handshake_then_shifted_data() {
    let mut r = rig();
    let cport = 40000;
    let cookie = r.cookie(cport, 1_000);

    // The client's ACK becomes our SYN to the server: client's address and
    // ISN, the cookie's MSS, the client's window.
    let (v, out) = r.run(
        0,
        &client_ack(
            cport,
            CLIENT_ISN.wrapping_add(1),
            cookie.wrapping_add(1),
            b"",
        ),
        1_010,
    );
    assert_eq!(v, Verdict::Tx(1));
    let s = decode(&out);
    assert_eq!((s.eth_dst, s.eth_src), (RS_MAC, PORT1_MAC));
    assert_eq!((s.src, s.dst, s.sport, s.dport), (CLIENT, RS, cport, 8080));
    assert_eq!((s.flags, s.seq, s.ack), (SYN, CLIENT_ISN, 0));
    assert_eq!(s.window, 502, "the client's window");
    assert_eq!(s.options, vec![TcpOptionElement::MaximumSegmentSize(1460)]);
    assert!(s.payload.is_empty());
    assert_eq!(r.w.conns.len(), 1);
    let (id, c) = r.w.conns.iter().next().unwrap();
    assert_eq!(c.state(), TcpState::SynRecv);
    assert_eq!(r.shared.worker_stats[0].syn_cookies_ok.get(), 1);
    assert_eq!(r.shared.worker_stats[0].conns_created.get(), 1);

    // The client's request, before the server answered: kept, not sent.
    let (v, _) = r.run(
        0,
        &client_ack(
            cport,
            CLIENT_ISN.wrapping_add(1),
            cookie.wrapping_add(1),
            b"GET /",
        ),
        1_020,
    );
    assert_eq!(v, Verdict::Drop);
    assert_eq!(r.drops_total(), 0, "kept, not a drop");

    // The client retransmits while the server has not answered: the SYN
    // goes out again.
    let (v, out) = r.run(
        0,
        &client_ack(
            cport,
            CLIENT_ISN.wrapping_add(1),
            cookie.wrapping_add(1),
            b"GET /",
        ),
        1_200,
    );
    assert_eq!(v, Verdict::Tx(1));
    let s = decode(&out);
    assert_eq!(
        (s.flags, s.seq, s.dst, s.dport),
        (SYN, CLIENT_ISN, RS, 8080)
    );
    assert!(s.payload.is_empty());

    // The server's SYN-ACK is answered, to the server, by the kept request
    // (it carries the ACK the client would have sent); nothing goes to the
    // client.
    let (v, out) = r.run(
        1,
        &server_seg(
            cport,
            SERVER_ISN,
            CLIENT_ISN.wrapping_add(1),
            true,
            false,
            b"",
        ),
        1_300,
    );
    assert_eq!(v, Verdict::Tx(1), "to the server, not the client");
    let s = decode(&out);
    assert_eq!((s.eth_dst, s.eth_src), (RS_MAC, PORT1_MAC));
    assert_eq!((s.src, s.dst, s.sport, s.dport), (CLIENT, RS, cport, 8080));
    assert_eq!(s.flags, ACK);
    assert_eq!(s.seq, CLIENT_ISN.wrapping_add(1));
    assert_eq!(s.ack, SERVER_ISN.wrapping_add(1));
    assert_eq!(s.ttl, 63);
    assert_eq!(s.payload, b"GET /");
    assert_eq!(r.w.conns.get(id).state(), TcpState::Established);

    // Client -> server: ack shifted into the server's numbers, seq kept.
    let (v, out) = r.run(
        0,
        &client_ack(
            cport,
            CLIENT_ISN.wrapping_add(1),
            cookie.wrapping_add(1),
            b"GET /",
        ),
        1_400,
    );
    assert_eq!(v, Verdict::Tx(1));
    let s = decode(&out);
    assert_eq!(
        (s.eth_dst, s.src, s.dst, s.dport),
        (RS_MAC, CLIENT, RS, 8080)
    );
    assert_eq!(s.seq, CLIENT_ISN.wrapping_add(1));
    assert_eq!(s.ack, SERVER_ISN.wrapping_add(1));
    assert_eq!(s.ttl, 63);
    assert_eq!(s.payload, b"GET /");

    // Server -> client: seq shifted into the cookie's numbers, from the VIP.
    let (v, out) = r.run(
        1,
        &server_seg(
            cport,
            SERVER_ISN.wrapping_add(1),
            CLIENT_ISN.wrapping_add(6),
            false,
            false,
            b"200 OK",
        ),
        1_500,
    );
    assert_eq!(v, Verdict::Tx(0));
    let s = decode(&out);
    assert_eq!((s.eth_dst, s.eth_src), (CLIENT_MAC, PORT0_MAC));
    assert_eq!((s.src, s.dst, s.sport, s.dport), (VIP, CLIENT, 80, cport));
    assert_eq!(s.seq, cookie.wrapping_add(1));
    assert_eq!(s.ack, CLIENT_ISN.wrapping_add(6));
    assert_eq!(s.payload, b"200 OK");

    // Further along (both counters past the shift, wrapping the client's).
    let (v, out) = r.run(
        0,
        &client_ack(
            cport,
            CLIENT_ISN.wrapping_add(6),
            cookie.wrapping_add(7),
            b"",
        ),
        1_600,
    );
    assert_eq!(v, Verdict::Tx(1));
    let s = decode(&out);
    assert_eq!(
        (s.seq, s.ack),
        (CLIENT_ISN.wrapping_add(6), SERVER_ISN.wrapping_add(7))
    );

    // A repeated server SYN-ACK (our ACK lost) gets the ACK again.
    let (v, out) = r.run(
        1,
        &server_seg(
            cport,
            SERVER_ISN,
            CLIENT_ISN.wrapping_add(1),
            true,
            false,
            b"",
        ),
        1_700,
    );
    assert_eq!(v, Verdict::Tx(1));
    let s = decode(&out);
    assert_eq!(
        (s.flags, s.seq, s.ack),
        (ACK, CLIENT_ISN.wrapping_add(1), SERVER_ISN.wrapping_add(1))
    );
    assert_eq!(r.drops_total(), 0);
}

#[test]
fn server_syn_ack_gets_a_pure_ack_when_nothing_was_kept() {
    let mut r = rig();
    let cookie = r.cookie(40000, 0);
    let (v, _) = r.run(
        0,
        &client_ack(
            40000,
            CLIENT_ISN.wrapping_add(1),
            cookie.wrapping_add(1),
            b"",
        ),
        1,
    );
    assert_eq!(v, Verdict::Tx(1));
    let (v, out) = r.run(
        1,
        &server_seg(
            40000,
            SERVER_ISN,
            CLIENT_ISN.wrapping_add(1),
            true,
            false,
            b"",
        ),
        2,
    );
    assert_eq!(v, Verdict::Tx(1));
    let s = decode(&out);
    assert_eq!(
        (s.eth_dst, s.src, s.dst, s.sport, s.dport),
        (RS_MAC, CLIENT, RS, 40000, 8080)
    );
    assert_eq!(
        (s.flags, s.seq, s.ack, s.window),
        (
            ACK,
            CLIENT_ISN.wrapping_add(1),
            SERVER_ISN.wrapping_add(1),
            502
        )
    );
    assert!(s.payload.is_empty() && s.options.is_empty());
    // The opening ACK's own payload is kept the same way.
    let cookie = r.cookie(40001, 0);
    let (v, out) = r.run(
        0,
        &client_ack(
            40001,
            CLIENT_ISN.wrapping_add(1),
            cookie.wrapping_add(1),
            b"hi",
        ),
        3,
    );
    assert_eq!(v, Verdict::Tx(1));
    assert!(decode(&out).payload.is_empty(), "the SYN carries no data");
    let (_, out) = r.run(
        1,
        &server_seg(
            40001,
            SERVER_ISN,
            CLIENT_ISN.wrapping_add(1),
            true,
            false,
            b"",
        ),
        4,
    );
    let s = decode(&out);
    assert_eq!(
        (s.flags, s.seq, s.ack),
        (ACK, CLIENT_ISN.wrapping_add(1), SERVER_ISN.wrapping_add(1))
    );
    assert_eq!(s.payload, b"hi");
}

#[test]
fn cookies_of_the_previous_window_pass_older_ones_do_not() {
    let mut r = rig();
    let a = r.cookie(40000, 10_000);
    let b = r.cookie(40001, 10_000);
    // 60 s later: the next window, still accepted.
    let (v, _) = r.run(
        0,
        &client_ack(40000, CLIENT_ISN.wrapping_add(1), a.wrapping_add(1), b""),
        70_000,
    );
    assert_eq!(v, Verdict::Tx(1));
    // 115 s later: two windows on, refused.
    let (v, _) = r.run(
        0,
        &client_ack(40001, CLIENT_ISN.wrapping_add(1), b.wrapping_add(1), b""),
        125_000,
    );
    assert_eq!(v, Verdict::Drop);
    assert_eq!(r.drops(Drop::BadSynCookie), 1);
    assert_eq!(r.shared.worker_stats[0].syn_cookies_ok.get(), 1);
}

#[test]
fn server_refusal_resets_the_client_and_frees_the_connection() {
    let mut r = rig();
    let cookie = r.cookie(40000, 0);
    let (v, _) = r.run(
        0,
        &client_ack(
            40000,
            CLIENT_ISN.wrapping_add(1),
            cookie.wrapping_add(1),
            b"",
        ),
        1,
    );
    assert_eq!(v, Verdict::Tx(1));
    let (v, out) = r.run(
        1,
        &server_seg(40000, 0, CLIENT_ISN.wrapping_add(1), false, true, b""),
        2,
    );
    assert_eq!(v, Verdict::Tx(0));
    let s = decode(&out);
    assert_eq!(
        (s.eth_dst, s.src, s.dst, s.sport, s.dport),
        (CLIENT_MAC, VIP, CLIENT, 80, 40000)
    );
    assert_eq!((s.flags, s.seq), (RST, cookie.wrapping_add(1)));
    assert_eq!(r.w.conns.len(), 0);
}

#[test]
fn small_or_missing_mss_rounds_down_the_table() {
    let mut r = rig();
    for (cport, mss, want) in [
        (40010, None, 536),
        (40011, Some(1400), 1300),
        (40012, Some(9000), 1460),
    ] {
        let (_, out) = r.run(0, &client_syn(cport, 80, mss), 0);
        let cookie = decode(&out).seq;
        let (v, out) = r.run(
            0,
            &client_ack(
                cport,
                CLIENT_ISN.wrapping_add(1),
                cookie.wrapping_add(1),
                b"",
            ),
            1,
        );
        assert_eq!(v, Verdict::Tx(1));
        assert_eq!(
            decode(&out).options,
            vec![TcpOptionElement::MaximumSegmentSize(want)]
        );
    }
}

#[test]
fn dr_service_ignores_syn_cookies() {
    let mut r = rig();
    let (v, out) = r.run(0, &client_syn(40000, 81, Some(1460)), 0);
    assert_eq!(v, Verdict::Tx(1), "forwarded to the server as DR does");
    let s = decode(&out);
    assert_eq!((s.eth_dst, s.dst, s.dport, s.flags), (RS_MAC, VIP, 81, SYN));
    assert_eq!(r.shared.worker_stats[0].syn_cookies_sent.get(), 0);
    assert_eq!(r.w.conns.len(), 1);
}

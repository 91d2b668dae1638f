//! IPv4 fragments through the pipeline (SPEC §5 "Fragments"), with frames
//! built and checked by etherparse: the fragments of one UDP datagram are
//! cut by hand (identification, offset, MF), forwarded by NAT both ways, DR
//! and TUN, and the datagram reassembled from what left must carry the
//! rewritten addresses and ports and a UDP checksum that verifies over the
//! whole of it. Also: fragments that come before their first one are held
//! and released, a first fragment never seen is a counted drop, the
//! fragment table is bounded, and two workers hand fragments to the one
//! that saw the first.
#![cfg(feature = "dpdk")]

use std::net::Ipv4Addr;
use std::sync::Arc;

use engine::config;
use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::{
    FragHold, Pipeline, VecFrame, Verdict, FRAG_ENTRIES, FRAG_LIFETIME_MS, HOLD_MS, HOLD_SLOTS,
};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use etherparse::{
    EtherType, Ethernet2Header, IpFragOffset, IpNumber, Ipv4Header, PacketBuilder, UdpHeader,
};

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];
const RS_MAC: [u8; 6] = [2, 0, 0, 1, 0, 11];
const VIP: [u8; 4] = [198, 18, 0, 100];
const CLIENT: [u8; 4] = [198, 18, 0, 10];
const RS: [u8; 4] = [198, 19, 0, 11];
const DIRECTOR_S: [u8; 4] = [198, 19, 0, 1];

const CFG: &str = r#"
[dpdk]
cores = "0@0,1@1,2@1"
workers = 2

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
port = 53
protocol = "udp"
scheduler = "rr"
forward = "nat"
  [[service.server]]
  address = "198.19.0.11"
  port = 5353

[[service]]
vip = "198.18.0.100"
port = 54
protocol = "udp"
scheduler = "rr"
forward = "dr"
  [[service.server]]
  address = "198.19.0.11"

[[service]]
vip = "198.18.0.100"
port = 55
protocol = "udp"
scheduler = "rr"
forward = "tun"
  [[service.server]]
  address = "198.19.0.11"
"#;

struct Rig {
    shared: Arc<Shared>,
    snap: Snapshot,
    workers: Vec<Pipeline>,
}

fn rig(workers: usize) -> Rig {
    let cfg = config::parse(CFG).expect("config");
    let ports = vec![
        PortInfo::new(&cfg.ports[0], MacAddr(PORT0_MAC)),
        PortInfo::new(&cfg.ports[1], MacAddr(PORT1_MAC)),
    ];
    let shared = Arc::new(Shared::new(workers));
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).unwrap();
    shared.neigh.learn(Ipv4Addr::from(RS), MacAddr(RS_MAC), 0);
    shared
        .neigh
        .learn(Ipv4Addr::from(CLIENT), MacAddr(CLIENT_MAC), 0);
    let workers = (0..workers)
        .map(|w| Pipeline::new(w, workers, 1024, &shared))
        .collect();
    Rig {
        shared,
        snap,
        workers,
    }
}

impl Rig {
    /// One frame through worker 0 (no hand-offs with one worker).
    fn run(&mut self, port: usize, frame: &[u8], now: u64) -> (Verdict, Vec<u8>) {
        self.run_on(0, port, frame, now)
    }

    /// One frame through worker `w`, following a hand-off.
    fn run_on(&mut self, w: usize, port: usize, frame: &[u8], now: u64) -> (Verdict, Vec<u8>) {
        let mut f = VecFrame::new(frame);
        let mut v = self.workers[w].process(&self.snap, &mut f, port, now, false);
        if let Verdict::Handoff(o) = v {
            v = self.workers[o].process(&self.snap, &mut f, port, now, true);
        }
        (v, f.to_vec())
    }

    fn drops(&self, d: Drop) -> u64 {
        self.shared
            .worker_stats
            .iter()
            .map(|s| s.drops[d as usize].get())
            .sum()
    }

    fn drops_total(&self) -> u64 {
        self.shared
            .worker_stats
            .iter()
            .flat_map(|s| s.drops.iter())
            .map(|c| c.get())
            .sum()
    }

    fn forwarded(&self) -> u64 {
        self.shared
            .worker_stats
            .iter()
            .map(|s| s.frags_forwarded.get())
            .sum()
    }
}

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

/// Cuts `payload` (a datagram's IP payload) into fragments of at most
/// `max` bytes (a multiple of 8) and frames each one.
#[allow(clippy::too_many_arguments)]
fn fragments(
    eth: ([u8; 6], [u8; 6]),
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    protocol: IpNumber,
    id: u16,
    payload: &[u8],
    max: usize,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let end = (off + max).min(payload.len());
        let mut h = Ipv4Header::new((end - off) as u16, ttl, protocol, src, dst).unwrap();
        h.identification = id;
        h.dont_fragment = false;
        h.more_fragments = end < payload.len();
        h.fragment_offset = IpFragOffset::try_new((off / 8) as u16).unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut f = Vec::new();
        Ethernet2Header {
            destination: eth.1,
            source: eth.0,
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

/// What a forwarded fragment says, every header checked by etherparse.
struct Out {
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    ip: Ipv4Header,
    payload: Vec<u8>,
}

fn decode(frame: &[u8]) -> Out {
    let (eth, rest) = Ethernet2Header::from_slice(frame).expect("ethernet");
    assert_eq!(eth.ether_type, EtherType::IPV4);
    let (ip, payload) = Ipv4Header::from_slice(rest).expect("ipv4");
    assert_eq!(
        ip.calc_header_checksum(),
        ip.header_checksum,
        "IPv4 checksum"
    );
    Out {
        eth_dst: eth.destination,
        eth_src: eth.source,
        ip,
        payload: payload.to_vec(),
    }
}

/// Puts the fragments' payloads back together by offset (checking they
/// cover the datagram exactly) and checks the UDP checksum over the whole
/// datagram for `src -> dst`; returns (sport, dport, data).
fn reassemble(outs: &[Out], src: [u8; 4], dst: [u8; 4]) -> (u16, u16, Vec<u8>) {
    let mut parts: Vec<(usize, &Out)> = outs
        .iter()
        .map(|o| (usize::from(o.ip.fragment_offset.value()) * 8, o))
        .collect();
    parts.sort_by_key(|p| p.0);
    let mut dgram = Vec::new();
    for (i, (off, o)) in parts.iter().enumerate() {
        assert_eq!(*off, dgram.len(), "fragments are contiguous");
        assert_eq!(o.ip.more_fragments, i + 1 < parts.len(), "MF");
        assert_eq!(o.ip.identification, parts[0].1.ip.identification);
        dgram.extend_from_slice(&o.payload);
    }
    let (udp, data) = UdpHeader::from_slice(&dgram).expect("udp");
    assert_eq!(usize::from(udp.length), dgram.len(), "UDP length");
    let want = udp.calc_checksum_ipv4_raw(src, dst, data).unwrap();
    assert_eq!(udp.checksum, want, "UDP checksum over the datagram");
    (udp.source_port, udp.destination_port, data.to_vec())
}

#[test]
fn nat_fragments_both_ways_exact() {
    let mut r = rig(1);
    let dgram = udp_datagram(CLIENT, VIP, 40000, 53, 3000);
    let ins = fragments(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        VIP,
        64,
        IpNumber::UDP,
        0x1234,
        &dgram,
        1480,
    );
    assert_eq!(ins.len(), 3);
    let mut outs = Vec::new();
    for f in &ins {
        let (v, out) = r.run(0, f, 10);
        assert_eq!(v, Verdict::Tx(1));
        let o = decode(&out);
        assert_eq!((o.eth_dst, o.eth_src), (RS_MAC, PORT1_MAC));
        assert_eq!((o.ip.source, o.ip.destination), (CLIENT, RS));
        assert_eq!(o.ip.time_to_live, 63);
        assert_eq!(o.ip.identification, 0x1234);
        outs.push(o);
    }
    // Later fragments: byte for byte the client's, only the header moved.
    for (o, f) in outs.iter().zip(&ins).skip(1) {
        assert_eq!(o.payload, f[34..]);
    }
    let (sport, dport, data) = reassemble(&outs, CLIENT, RS);
    assert_eq!((sport, dport), (40000, 5353));
    assert_eq!(data, dgram[8..]);
    assert_eq!(r.workers[0].conns.len(), 1);
    assert_eq!(r.forwarded(), 3);

    // The server's answer, fragmented by its kernel, goes back from the VIP.
    let answer = udp_datagram(RS, CLIENT, 5353, 40000, 4000);
    let ins = fragments(
        (RS_MAC, PORT1_MAC),
        RS,
        CLIENT,
        64,
        IpNumber::UDP,
        0xBEEF,
        &answer,
        1480,
    );
    assert_eq!(ins.len(), 3);
    let mut outs = Vec::new();
    for f in &ins {
        let (v, out) = r.run(1, f, 11);
        assert_eq!(v, Verdict::Tx(0));
        let o = decode(&out);
        assert_eq!((o.eth_dst, o.eth_src), (CLIENT_MAC, PORT0_MAC));
        assert_eq!((o.ip.source, o.ip.destination), (VIP, CLIENT));
        assert_eq!(o.ip.time_to_live, 63);
        outs.push(o);
    }
    let (sport, dport, data) = reassemble(&outs, VIP, CLIENT);
    assert_eq!((sport, dport), (53, 40000));
    assert_eq!(data, answer[8..]);
    assert_eq!(r.forwarded(), 6);
    assert_eq!(r.drops_total(), 0);
    let st = &r.shared.worker_stats[0];
    assert_eq!(st.conns_created.get(), 1);
    assert_eq!(st.frags_held.get(), 0);
}

#[test]
fn dr_fragments_change_only_macs_and_ttl() {
    let mut r = rig(1);
    let dgram = udp_datagram(CLIENT, VIP, 40001, 54, 2000);
    let ins = fragments(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        VIP,
        64,
        IpNumber::UDP,
        7,
        &dgram,
        1480,
    );
    for f in &ins {
        let (v, out) = r.run(0, f, 10);
        assert_eq!(v, Verdict::Tx(1));
        let o = decode(&out);
        assert_eq!((o.eth_dst, o.eth_src), (RS_MAC, PORT1_MAC));
        // Exactly the client's fragment with TTL - 1 (and its checksum).
        let (mut want, payload) = Ipv4Header::from_slice(&f[14..]).unwrap();
        want.time_to_live -= 1;
        want.header_checksum = want.calc_header_checksum();
        assert_eq!(o.ip, want);
        assert_eq!(o.payload, payload);
    }
    assert_eq!(r.forwarded(), 2);
}

#[test]
fn tun_fragments_are_wrapped_as_they_are() {
    let mut r = rig(1);
    let dgram = udp_datagram(CLIENT, VIP, 40002, 55, 2000);
    let ins = fragments(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        VIP,
        64,
        IpNumber::UDP,
        8,
        &dgram,
        1400,
    );
    for f in &ins {
        let (v, out) = r.run(0, f, 10);
        assert_eq!(v, Verdict::Tx(1));
        let o = decode(&out);
        assert_eq!((o.eth_dst, o.eth_src), (RS_MAC, PORT1_MAC));
        assert_eq!(o.ip.protocol, IpNumber::IPV4);
        assert_eq!((o.ip.source, o.ip.destination), (DIRECTOR_S, RS));
        // The inner packet: the client's fragment, TTL - 1.
        let (mut want, payload) = Ipv4Header::from_slice(&f[14..]).unwrap();
        want.time_to_live -= 1;
        want.header_checksum = want.calc_header_checksum();
        let (inner, rest) = Ipv4Header::from_slice(&o.payload).unwrap();
        assert_eq!(inner, want);
        assert_eq!(rest, payload);
    }
    assert_eq!(r.forwarded(), 2);
}

#[test]
fn early_fragments_are_held_until_the_first_arrives() {
    let mut r = rig(1);
    let dgram = udp_datagram(CLIENT, VIP, 40003, 53, 4000);
    let ins = fragments(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        VIP,
        64,
        IpNumber::UDP,
        99,
        &dgram,
        1480,
    );
    let mut hold: FragHold<VecFrame> = FragHold::new();
    // The last two come first: held.
    for f in ins.iter().skip(1).rev() {
        let mut fr = VecFrame::new(f);
        let v = r.workers[0].process(&r.snap, &mut fr, 0, 20, false);
        assert_eq!(v, Verdict::Hold);
        hold.hold(&r.workers[0], fr, 0, 20);
    }
    assert_eq!(hold.len(), 2);
    assert_eq!(r.shared.worker_stats[0].frags_held.get(), 2);
    // A retry finds nothing ready; then, nothing learnt and no time
    // passed, no retry is needed.
    assert!(hold.begin_retry(&r.workers[0], 20));
    assert!(hold.next_ready(&mut r.workers[0], &r.snap, 20).is_none());
    assert!(!hold.begin_retry(&r.workers[0], 20));
    assert_eq!(hold.len(), 2);
    // The first arrives 30 ms later (within HOLD_MS): the held ones follow.
    let (v, first) = r.run(0, &ins[0], 50);
    assert_eq!(v, Verdict::Tx(1));
    assert!(hold.begin_retry(&r.workers[0], 50));
    let mut outs = vec![decode(&first)];
    while let Some((f, port, v)) = hold.next_ready(&mut r.workers[0], &r.snap, 50) {
        assert_eq!((port, v), (0, Verdict::Tx(1)));
        outs.push(decode(&f.to_vec()));
    }
    assert!(hold.is_empty());
    for o in &outs {
        assert_eq!((o.ip.source, o.ip.destination), (CLIENT, RS));
        assert_eq!(o.ip.time_to_live, 63);
    }
    let (sport, dport, data) = reassemble(&outs, CLIENT, RS);
    assert_eq!((sport, dport), (40003, 5353));
    assert_eq!(data, dgram[8..]);
    assert_eq!(r.forwarded(), 3);
    assert_eq!(r.drops_total(), 0);
}

#[test]
fn a_first_fragment_never_seen_is_a_counted_drop() {
    let mut r = rig(1);
    let dgram = udp_datagram(CLIENT, VIP, 40004, 53, 3000);
    let ins = fragments(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        VIP,
        64,
        IpNumber::UDP,
        5,
        &dgram,
        1480,
    );
    let mut hold: FragHold<VecFrame> = FragHold::new();
    let mut fr = VecFrame::new(&ins[1]);
    assert_eq!(
        r.workers[0].process(&r.snap, &mut fr, 0, 100, false),
        Verdict::Hold
    );
    hold.hold(&r.workers[0], fr, 0, 100);
    // Still waiting just before its time is up.
    assert!(hold.begin_retry(&r.workers[0], 100 + HOLD_MS - 1));
    assert!(hold
        .next_ready(&mut r.workers[0], &r.snap, 100 + HOLD_MS - 1)
        .is_none());
    assert_eq!(hold.len(), 1);
    // Then dropped, counted.
    assert!(hold.begin_retry(&r.workers[0], 100 + HOLD_MS));
    assert!(hold
        .next_ready(&mut r.workers[0], &r.snap, 100 + HOLD_MS)
        .is_none());
    assert!(hold.is_empty());
    assert_eq!(r.drops(Drop::FragNoFirst), 1);
    assert_eq!(r.forwarded(), 0);

    // A full hold refuses, counted.
    for i in 0..=HOLD_SLOTS {
        let mut fr = VecFrame::new(&ins[1]);
        assert_eq!(
            r.workers[0].process(&r.snap, &mut fr, 0, 300, false),
            Verdict::Hold
        );
        hold.hold(&r.workers[0], fr, 0, 300);
        assert_eq!(hold.len(), (i + 1).min(HOLD_SLOTS));
    }
    assert_eq!(r.drops(Drop::FragHoldFull), 1);
    // Shutdown frees (and counts) what is still held.
    hold.clear(&r.workers[0]);
    assert!(hold.is_empty());
    assert_eq!(r.drops(Drop::FragNoFirst), 1 + HOLD_SLOTS as u64);

    // A later fragment for nobody we serve is not held.
    let stray = fragments(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        [198, 18, 0, 77],
        64,
        IpNumber::UDP,
        5,
        &dgram,
        1480,
    );
    assert_eq!(r.run(0, &stray[1], 400).0, Verdict::Drop);
    assert_eq!(r.drops(Drop::NoService), 1);
    // Fragments of other protocols have no connection to follow.
    let icmp = fragments(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        VIP,
        64,
        IpNumber::ICMP,
        6,
        &[8u8; 3000],
        1480,
    );
    assert_eq!(r.run(0, &icmp[0], 400).0, Verdict::Drop);
    assert_eq!(r.run(0, &icmp[1], 400).0, Verdict::Drop);
    assert_eq!(r.drops(Drop::Fragment), 2);
}

#[test]
fn the_fragment_table_is_bounded_and_forgets() {
    let mut r = rig(1);
    let dgram = udp_datagram(CLIENT, VIP, 40005, 53, 2000);
    let n = FRAG_ENTRIES + 500;
    let mut seconds = Vec::new();
    for id in 0..n as u16 {
        let ins = fragments(
            (CLIENT_MAC, PORT0_MAC),
            CLIENT,
            VIP,
            64,
            IpNumber::UDP,
            id,
            &dgram,
            1480,
        );
        assert_eq!(r.run(0, &ins[0], 1000).0, Verdict::Tx(1));
        seconds.push(ins[1].clone());
    }
    let entries = r.workers[0].frag_entries(1000) as u64;
    let evicted = r.shared.worker_stats[0].frags_evicted.get();
    assert!(entries <= FRAG_ENTRIES as u64, "{entries}");
    assert_eq!(
        entries + evicted,
        n as u64,
        "every datagram kept or counted"
    );
    assert!(evicted >= (n - FRAG_ENTRIES) as u64);
    // The most recent datagram is still known; none is once its life is up.
    let last = seconds.last().unwrap();
    assert_eq!(
        r.run(0, last, 1000 + FRAG_LIFETIME_MS - 1).0,
        Verdict::Tx(1)
    );
    assert_eq!(r.workers[0].frag_entries(1000 + FRAG_LIFETIME_MS), 0);
    assert_eq!(r.run(0, last, 1000 + FRAG_LIFETIME_MS).0, Verdict::Hold);
    assert_eq!(r.workers[0].conns.len(), 1);
}

#[test]
fn two_workers_send_later_fragments_to_the_first_ones_worker() {
    let mut r = rig(2);
    // A client port owned by worker 1, so worker 0 receives everything
    // and must hand over: the first fragment by its ports, the others by
    // the directory.
    let cport = (41000..42000)
        .find(|&p| engine::conn::owner_worker(Ipv4Addr::from(CLIENT), p, 2) == 1)
        .unwrap();
    let dgram = udp_datagram(CLIENT, VIP, cport, 53, 3000);
    let ins = fragments(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        VIP,
        64,
        IpNumber::UDP,
        0x4242,
        &dgram,
        1480,
    );
    let mut outs = Vec::new();
    for f in &ins {
        let mut fr = VecFrame::new(f);
        let v = r.workers[0].process(&r.snap, &mut fr, 0, 10, false);
        assert_eq!(v, Verdict::Handoff(1));
        let v = r.workers[1].process(&r.snap, &mut fr, 0, 10, true);
        assert_eq!(v, Verdict::Tx(1));
        outs.push(decode(&fr.to_vec()));
    }
    let (sport, dport, _) = reassemble(&outs, CLIENT, RS);
    assert_eq!((sport, dport), (cport, 5353));
    assert_eq!(r.shared.worker_stats[1].frags_forwarded.get(), 3);
    assert_eq!(r.shared.worker_stats[0].frags_forwarded.get(), 0);
    assert_eq!(r.workers[0].frag_entries(10), 0);
    // A later fragment worker 1 never heard of, handed over anyway (a
    // stale guess): dropped there, counted, never handed on.
    let other = fragments(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        VIP,
        64,
        IpNumber::UDP,
        0x4243,
        &dgram,
        1480,
    );
    let mut fr = VecFrame::new(&other[1]);
    assert_eq!(
        r.workers[1].process(&r.snap, &mut fr, 0, 10, true),
        Verdict::Drop
    );
    assert_eq!(r.drops(Drop::FragNoFirst), 1);
}

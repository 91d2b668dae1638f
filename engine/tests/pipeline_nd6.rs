//! IPv6 neighbour resolution through the worker pipeline (issue 13, stage
//! 1): worker 0 solicits the configured IPv6 server (a solicitation to its
//! solicited-node group from the port's IPv6 address with a source
//! link-layer option, checked byte by byte and with etherparse); the
//! solicited advertisement that answers it sets the MAC; hearsay (an
//! unsolicited advertisement, a late "answer") never moves it but makes the
//! director ask again; a solicitor's MAC is learned only for an address the
//! table already has; unsolicited advertisements announce the ports'
//! addresses and (master only) the VIPs at start and on takeover.
#![cfg(feature = "dpdk")]

use std::net::Ipv6Addr;
use std::sync::Arc;

use engine::config;
use engine::dataplane::counters::Drop;
use engine::dataplane::neigh::Resolution;
use engine::dataplane::pipeline::{Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use engine::packet::icmpv6::{self, Icmpv6Packet, NaFlags, NDP_FRAME_LEN};
use engine::packet::DropReason;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};

const PORT0_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x02]);
const PORT1_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x01]);
const CLIENT_MAC: MacAddr = MacAddr([2, 0xc1, 0, 0, 0, 0x10]);
const SERVER_MAC: MacAddr = MacAddr([2, 0x5e, 0, 0, 0, 0x11]);
const SPOOF_MAC: MacAddr = MacAddr([2, 0x66, 0x66, 0x66, 0x66, 0x66]);
const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x10);
const PORT0_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 2);
const PORT1_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1);
const SERVER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x11);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x100);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

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
port = 80
  [[service.server]]
  address = "2001:db8:0:2::11"
  port = 8080
"#;

struct Rig {
    shared: Arc<Shared>,
    w: Pipeline,
}

impl Rig {
    fn new(master: bool) -> Rig {
        let shared = Arc::new(Shared::new(1));
        shared.ha.set_master(master);
        let w = Pipeline::new(0, 1, 1 << 12, &shared);
        let c = config::parse(CFG).expect("config");
        let ports = vec![
            PortInfo::new(&c.ports[0], PORT0_MAC),
            PortInfo::new(&c.ports[1], PORT1_MAC),
        ];
        let snap = Snapshot::build(&c, &ports, &shared.registry, 1, &AllUp).unwrap();
        shared.publish(snap);
        let mut r = Rig { shared, w };
        let snap = r.shared.snapshot.load_full();
        r.w.on_snapshot(&snap);
        r
    }

    fn run(&mut self, port: usize, frame: &[u8], now_ms: u64) -> (Verdict, Vec<u8>) {
        let snap = self.shared.snapshot.load_full();
        let mut f = VecFrame::new(frame);
        let v = self.w.process(&snap, &mut f, port, now_ms, false);
        (v, f.to_vec())
    }

    fn housekeeping(&mut self, now_ms: u64) {
        let snap = self.shared.snapshot.load_full();
        self.w.housekeeping(&snap, now_ms, 16);
    }

    /// Every solicitation queued, built into frames.
    fn solicitations(&mut self) -> Vec<(usize, Vec<u8>)> {
        let snap = self.shared.snapshot.load_full();
        let mut out = Vec::new();
        while let Some((port, ip)) = self.w.take_ns_request() {
            let mut buf = vec![0u8; NDP_FRAME_LEN];
            assert!(self.w.build_ns_request(&snap, port, ip, &mut buf));
            out.push((port, buf));
        }
        out
    }

    /// Unsolicited advertisements due now: (port, address) in order.
    fn announcements(&mut self) -> Vec<(usize, Ipv6Addr)> {
        let snap = self.shared.snapshot.load_full();
        let mut out = Vec::new();
        // One round per worker loop, as the worker calls it.
        for _ in 0..10 {
            while let Some(a) = self.w.take_unsolicited_na(&snap) {
                out.push(a);
            }
        }
        out
    }

    fn peek(&self, ip: Ipv6Addr, now_ms: u64) -> Option<MacAddr> {
        self.shared.neigh6.peek(ip, now_ms)
    }
}

/// A neighbour advertisement of `target` at `mac` to `dst`/`dst_mac`.
fn na(target: Ipv6Addr, mac: MacAddr, dst_mac: MacAddr, dst: Ipv6Addr, solicited: bool) -> Vec<u8> {
    let mut buf = vec![0u8; NDP_FRAME_LEN];
    let flags = NaFlags {
        solicited,
        override_: true,
        router: false,
    };
    icmpv6::build_na(&mut buf, mac, target, dst_mac, dst, flags).unwrap();
    buf
}

/// Checks `out` is our solicitation for `target` from `src`/`src_mac`.
fn assert_ns(out: &[u8], src_mac: MacAddr, src: Ipv6Addr, target: Ipv6Addr) {
    let t = target.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    assert_eq!(out.len(), NDP_FRAME_LEN);
    assert_eq!(
        &out[0..6],
        &[0x33, 0x33, 0xff, t[13], t[14], t[15]],
        "solicited-node MAC"
    );
    assert_eq!(&out[6..12], &src_mac.0);
    assert_eq!(&out[12..14], &[0x86, 0xdd]);
    assert_eq!(&out[14..22], &[0x60, 0, 0, 0, 0, 32, 58, 255]);
    assert_eq!(&out[22..38], &src.octets(), "from the port's IPv6 address");
    assert_eq!(&out[38..54], &group.octets(), "to the solicited-node group");
    assert_eq!((out[54], out[55]), (135, 0), "neighbour solicitation");
    assert_eq!(&out[58..62], &[0, 0, 0, 0], "reserved");
    assert_eq!(&out[62..78], &t, "target");
    let mut slla = vec![1, 1];
    slla.extend_from_slice(&src_mac.0);
    assert_eq!(&out[78..86], &slla[..], "source link-layer address option");
    let e = SlicedPacket::from_ethernet(out).expect("etherparse");
    let Some(NetSlice::Ipv6(ip)) = &e.net else {
        panic!("{:?}", e.net)
    };
    assert_eq!(ip.header().source_addr(), src);
    assert_eq!(ip.header().destination_addr(), group);
    assert_eq!(ip.header().hop_limit(), 255);
    let Some(TransportSlice::Icmpv6(m)) = &e.transport else {
        panic!("{:?}", e.transport)
    };
    assert_eq!(m.type_u8(), 135);
    assert!(
        m.is_checksum_valid(src.octets(), group.octets()),
        "checksum"
    );
}

#[test]
fn a_server_is_solicited_and_its_answer_learned() {
    let mut r = Rig::new(true);
    assert!(r.shared.neigh6.is_reserved(SERVER), "configured next hop");
    r.housekeeping(1_000);
    let ns = r.solicitations();
    assert_eq!(ns.len(), 1, "one solicitation, for the server");
    assert_eq!(ns[0].0, 1, "out of the servers' port");
    assert_ns(&ns[0].1, PORT1_MAC, PORT1_ADDR, SERVER);
    // Asked again only after the retry gap.
    r.housekeeping(1_500);
    assert!(r.solicitations().is_empty());

    // The answer: solicited, unicast to the port's address.
    let (v, _) = r.run(
        1,
        &na(SERVER, SERVER_MAC, PORT1_MAC, PORT1_ADDR, true),
        1_200,
    );
    assert_eq!(
        v,
        Verdict::Drop,
        "taken here (no exception path on this port)"
    );
    assert_eq!(r.peek(SERVER, 1_300), Some(SERVER_MAC));
    assert!(matches!(
        r.shared.neigh6.resolve(SERVER, 1_300),
        Resolution::Mac(m, _) if m == SERVER_MAC
    ));
    // Kept resolved: a refresh request after REFRESH_MS, MAC still used.
    let later = 1_200 + engine::dataplane::neigh::REFRESH_MS;
    r.housekeeping(later);
    let ns = r.solicitations();
    assert_eq!(ns.len(), 1, "refresh");
    assert_eq!(r.peek(SERVER, later), Some(SERVER_MAC));
    // Expires without answers.
    assert_eq!(
        r.peek(SERVER, 1_200 + engine::dataplane::neigh::EXPIRE_MS + 1),
        None
    );
    assert_eq!(
        r.shared.worker_stats[0].drops[Drop::NotForUs as usize].get(),
        0
    );
}

#[test]
fn hearsay_never_moves_a_server_but_makes_us_ask() {
    let mut r = Rig::new(true);
    r.housekeeping(1_000);
    assert_eq!(r.solicitations().len(), 1);
    r.run(
        1,
        &na(SERVER, SERVER_MAC, PORT1_MAC, PORT1_ADDR, true),
        1_100,
    );
    assert_eq!(r.peek(SERVER, 1_200), Some(SERVER_MAC));

    // An unsolicited advertisement to all-nodes claiming the server.
    let spoof = na(
        SERVER,
        SPOOF_MAC,
        icmpv6::multicast_mac(ALL_NODES),
        ALL_NODES,
        false,
    );
    let (v, _) = r.run(1, &spoof, 5_000);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(r.peek(SERVER, 5_000), Some(SERVER_MAC), "not believed");
    // A "solicited" one long after our request: not an answer either.
    let late = na(SERVER, SPOOF_MAC, PORT1_MAC, PORT1_ADDR, true);
    r.run(1, &late, 5_001);
    assert_eq!(r.peek(SERVER, 5_001), Some(SERVER_MAC), "no request out");
    // Both make the director ask at its next pass.
    r.housekeeping(5_100);
    let ns = r.solicitations();
    assert_eq!(ns.len(), 1, "the claim is checked");
    assert_ns(&ns[0].1, PORT1_MAC, PORT1_ADDR, SERVER);
    // The true owner answers; a spoofer's second answer is not taken.
    r.run(
        1,
        &na(SERVER, SERVER_MAC, PORT1_MAC, PORT1_ADDR, true),
        5_150,
    );
    r.run(1, &late, 5_160);
    assert_eq!(r.peek(SERVER, 5_200), Some(SERVER_MAC));

    // A solicited advertisement sent to a multicast group is malformed.
    let bad = na(
        SERVER,
        SPOOF_MAC,
        icmpv6::multicast_mac(ALL_NODES),
        ALL_NODES,
        true,
    );
    let (v, _) = r.run(1, &bad, 5_300);
    assert_eq!(v, Verdict::Drop);
    let stats = r.shared.worker_stats[0].clone();
    assert_eq!(stats.parse_drops[DropReason::BadNdp.index()].get(), 1);
    // A hop limit other than 255 (it crossed a router): malformed.
    let mut routed = na(SERVER, SPOOF_MAC, PORT1_MAC, PORT1_ADDR, true);
    routed[21] = 64;
    r.run(1, &routed, 5_301);
    assert_eq!(stats.parse_drops[DropReason::BadNdp.index()].get(), 2);
    assert_eq!(r.peek(SERVER, 5_400), Some(SERVER_MAC));
}

#[test]
fn a_solicitors_mac_is_learned_only_when_we_know_the_address() {
    let mut r = Rig::new(true);
    let mut ns = vec![0u8; NDP_FRAME_LEN];
    icmpv6::build_ns(&mut ns, CLIENT_MAC, CLIENT, PORT0_ADDR).unwrap();
    let (v, _) = r.run(0, &ns, 1_000);
    assert_eq!(v, Verdict::Tx(0), "answered");
    assert_eq!(r.peek(CLIENT, 1_000), None, "a stranger is not learned");
    assert!(r.shared.neigh6.entries(1_000).is_empty());
    // Once we asked for it, its solicitation's option is taken.
    assert_eq!(r.shared.neigh6.resolve(CLIENT, 2_000), Resolution::Request);
    let (v, _) = r.run(0, &ns, 2_100);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(r.peek(CLIENT, 2_100), Some(CLIENT_MAC));
    assert_eq!(
        r.shared.neigh6.entries(2_100),
        vec![(CLIENT, CLIENT_MAC, 0)]
    );
}

#[test]
fn a_solicitation_for_the_taps_link_local_address_goes_to_the_kernel() {
    let mut r = Rig::new(true);
    let ll = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 2);
    let mut ns = vec![0u8; NDP_FRAME_LEN];
    icmpv6::build_ns(&mut ns, CLIENT_MAC, CLIENT, ll).unwrap();
    let (v, _) = r.run(0, &ns, 1_000);
    assert_eq!(v, Verdict::Kernel, "port 0 has an exception path");
    let (v, _) = r.run(1, &ns, 1_000);
    assert_eq!(v, Verdict::Drop, "port 1 has none");
    // Someone else's global address: not ours, not the kernel's.
    let mut other = vec![0u8; NDP_FRAME_LEN];
    icmpv6::build_ns(
        &mut other,
        CLIENT_MAC,
        CLIENT,
        Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x77),
    )
    .unwrap();
    let (v, _) = r.run(0, &other, 1_000);
    assert_eq!(v, Verdict::Drop);
}

#[test]
fn owned_addresses_are_announced_at_start_and_on_takeover() {
    let mut r = Rig::new(true);
    let one = [(0, PORT0_ADDR), (1, PORT1_ADDR), (0, VIP6)];
    let five: Vec<_> = one.iter().cycle().take(15).copied().collect();
    assert_eq!(r.announcements(), five, "five rounds at start");
    assert!(r.announcements().is_empty(), "then quiet");
    r.shared.ha.request_garp();
    assert_eq!(r.announcements(), five, "five rounds on takeover");

    let snap = r.shared.snapshot.load_full();
    let mut buf = vec![0u8; NDP_FRAME_LEN];
    assert!(r.w.build_unsolicited_na(&snap, 0, VIP6, &mut buf));
    assert_eq!(r.shared.worker_stats[0].nd_unsolicited_sent.get(), 1);
    assert_eq!(&buf[0..6], &[0x33, 0x33, 0, 0, 0, 1], "to all-nodes");
    assert_eq!(&buf[6..12], &PORT0_MAC.0);
    assert_eq!(&buf[14..22], &[0x60, 0, 0, 0, 0, 32, 58, 255]);
    assert_eq!(&buf[22..38], &VIP6.octets());
    assert_eq!(&buf[38..54], &ALL_NODES.octets());
    assert_eq!((buf[54], buf[55]), (136, 0));
    assert_eq!(&buf[58..62], &[0x20, 0, 0, 0], "override, not solicited");
    assert_eq!(&buf[62..78], &VIP6.octets());
    assert_eq!(
        &buf[78..86],
        &[2, 1, 2, 0, 0, 0, 0, 2],
        "target link-layer option"
    );
    let e = SlicedPacket::from_ethernet(&buf).expect("etherparse");
    let Some(TransportSlice::Icmpv6(m)) = &e.transport else {
        panic!("{:?}", e.transport)
    };
    assert!(m.is_checksum_valid(VIP6.octets(), ALL_NODES.octets()));
    assert!(Icmpv6Packet::new_unchecked(&buf[54..]).verify_checksum(VIP6, ALL_NODES));

    // A backup announces its own addresses only.
    let mut b = Rig::new(false);
    let own = [(0, PORT0_ADDR), (1, PORT1_ADDR)];
    let five: Vec<_> = own.iter().cycle().take(10).copied().collect();
    assert_eq!(b.announcements(), five);
}

//! IPv6 neighbour discovery through the worker pipeline (issue 13, stage 2
//! in part): a solicitation for a port's own IPv6 address or (on the
//! master) an IPv6 VIP, sent to its solicited-node group or unicast, is
//! answered in place with the right advertisement (checked byte by byte and
//! with etherparse: addresses, hop limit 255, flags S/O, target, target
//! link-layer option, checksum); DAD gets an unsolicited answer to
//! all-nodes; a backup does not answer for VIPs; a solicitation for someone
//! else, or a malformed one, is never answered, and the malformed ones are
//! counted (`bad_ndp`, the parser's reasons).
#![cfg(feature = "dpdk")]

use std::net::Ipv6Addr;
use std::sync::Arc;

use engine::config;
use engine::dataplane::counters::Drop;
use engine::dataplane::pipeline::{Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use engine::packet::icmpv6::{self, Icmpv6Packet, NDP_FRAME_LEN};
use engine::packet::DropReason;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};

const PORT0_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x02]);
const PORT1_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 0x01]);
const CLIENT_MAC: MacAddr = MacAddr([2, 0xc1, 0, 0, 0, 0x10]);
const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x10);
const PORT0_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 2);
const PORT1_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x100);
const OTHER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x77);

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
    fn new() -> Rig {
        let shared = Arc::new(Shared::new(1));
        let w = Pipeline::new(0, 1, 1 << 12, &shared);
        let c = config::parse(CFG).expect("config");
        let ports = vec![
            PortInfo::new(&c.ports[0], PORT0_MAC),
            PortInfo::new(&c.ports[1], PORT1_MAC),
        ];
        assert_eq!(ports[0].addr6, Some(PORT0_ADDR));
        let snap = Snapshot::build(&c, &ports, &shared.registry, 1, &AllUp).unwrap();
        assert!(snap.is_vip6(VIP6) && !snap.is_vip6(OTHER));
        shared.publish(snap);
        let mut r = Rig { shared, w };
        let snap = r.shared.snapshot.load_full();
        r.w.on_snapshot(&snap);
        r
    }

    fn run(&mut self, port: usize, frame: &[u8]) -> (Verdict, Vec<u8>) {
        let snap = self.shared.snapshot.load_full();
        let mut f = VecFrame::new(frame);
        let v = self.w.process(&snap, &mut f, port, 1_000, false);
        (v, f.to_vec())
    }

    fn adverts(&self) -> u64 {
        self.shared.worker_stats[0].nd_adverts_sent.get()
    }

    fn parse_drops(&self, r: DropReason) -> u64 {
        self.shared.worker_stats[0].parse_drops[r.index()].get()
    }

    fn drops(&self, d: Drop) -> u64 {
        self.shared.worker_stats[0].drops[d as usize].get()
    }
}

/// The client's solicitation for `target` to its solicited-node group
/// (what a kernel sends), with a source link-layer option.
fn ns_multicast(target: Ipv6Addr) -> Vec<u8> {
    let mut buf = vec![0u8; NDP_FRAME_LEN];
    icmpv6::build_ns(&mut buf, CLIENT_MAC, CLIENT, target).unwrap();
    buf
}

/// `frame` with new IPv6 addresses, hop limit and Ethernet destination,
/// the ICMPv6 checksum recomputed (a unicast NS, DAD...).
fn rewrite(mut frame: Vec<u8>, dst_mac: MacAddr, src: Ipv6Addr, dst: Ipv6Addr, hop: u8) -> Vec<u8> {
    frame[0..6].copy_from_slice(&dst_mac.0);
    frame[21] = hop;
    frame[22..38].copy_from_slice(&src.octets());
    frame[38..54].copy_from_slice(&dst.octets());
    Icmpv6Packet::new_unchecked(&mut frame[54..]).fill_checksum(src, dst);
    frame
}

/// Checks `out` is the advertisement of `target` from `port_mac` to
/// `dst`/`dst_mac` with `flags` (R, S, O bits), by literal bytes and with
/// etherparse.
fn assert_na(
    out: &[u8],
    port_mac: MacAddr,
    target: Ipv6Addr,
    dst_mac: MacAddr,
    dst: Ipv6Addr,
    flags: u8,
) {
    assert_eq!(out.len(), NDP_FRAME_LEN);
    assert_eq!(&out[0..6], &dst_mac.0, "to the solicitor's MAC");
    assert_eq!(&out[6..12], &port_mac.0, "from the port's MAC");
    assert_eq!(&out[12..14], &[0x86, 0xdd]);
    assert_eq!(
        &out[14..22],
        &[0x60, 0, 0, 0, 0, 32, 58, 255],
        "IPv6, 32 bytes of ICMPv6, hop limit 255"
    );
    assert_eq!(&out[22..38], &target.octets(), "from the target itself");
    assert_eq!(&out[38..54], &dst.octets());
    assert_eq!((out[54], out[55]), (136, 0), "neighbour advertisement");
    assert_eq!(&out[58..62], &[flags, 0, 0, 0]);
    assert_eq!(&out[62..78], &target.octets(), "target");
    let mut tlla = vec![2, 1];
    tlla.extend_from_slice(&port_mac.0);
    assert_eq!(&out[78..86], &tlla[..], "target link-layer address option");

    let e = SlicedPacket::from_ethernet(out).expect("etherparse");
    let Some(NetSlice::Ipv6(ip)) = &e.net else {
        panic!("{:?}", e.net)
    };
    assert_eq!(ip.header().source_addr(), target);
    assert_eq!(ip.header().destination_addr(), dst);
    assert_eq!(ip.header().hop_limit(), 255);
    let Some(TransportSlice::Icmpv6(m)) = &e.transport else {
        panic!("{:?}", e.transport)
    };
    assert_eq!(m.type_u8(), 136);
    assert!(
        m.is_checksum_valid(target.octets(), dst.octets()),
        "checksum"
    );
}

const S_O: u8 = 0x60;
const O: u8 = 0x20;

#[test]
fn solicitations_for_own_addresses_and_vips_are_answered() {
    let mut r = Rig::new();
    // For the VIP, to its solicited-node group (33:33:ff:00:01:00).
    let ns = ns_multicast(VIP6);
    assert_eq!(&ns[0..6], &[0x33, 0x33, 0xff, 0, 0x01, 0]);
    let (v, out) = r.run(0, &ns);
    assert_eq!(v, Verdict::Tx(0));
    assert_na(&out, PORT0_MAC, VIP6, CLIENT_MAC, CLIENT, S_O);

    // For the port's own address.
    let (v, out) = r.run(0, &ns_multicast(PORT0_ADDR));
    assert_eq!(v, Verdict::Tx(0));
    assert_na(&out, PORT0_MAC, PORT0_ADDR, CLIENT_MAC, CLIENT, S_O);

    // Unicast (neighbour unreachability detection), to the port's MAC.
    let uni = rewrite(ns_multicast(VIP6), PORT0_MAC, CLIENT, VIP6, 255);
    let (v, out) = r.run(0, &uni);
    assert_eq!(v, Verdict::Tx(0));
    assert_na(&out, PORT0_MAC, VIP6, CLIENT_MAC, CLIENT, S_O);

    // On the other port, for that port's address, with its MAC.
    let (v, out) = r.run(1, &ns_multicast(PORT1_ADDR));
    assert_eq!(v, Verdict::Tx(1));
    assert_na(&out, PORT1_MAC, PORT1_ADDR, CLIENT_MAC, CLIENT, S_O);

    // Duplicate address detection (source ::, no option): an unsolicited
    // answer (O, not S) to all-nodes.
    let mut dad = ns_multicast(VIP6);
    dad.truncate(NDP_FRAME_LEN - 8);
    dad[18..20].copy_from_slice(&24u16.to_be_bytes());
    let group = icmpv6::solicited_node(VIP6);
    let dad = rewrite(
        dad,
        icmpv6::multicast_mac(group),
        Ipv6Addr::UNSPECIFIED,
        group,
        255,
    );
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    let (v, out) = r.run(0, &dad);
    assert_eq!(v, Verdict::Tx(0));
    assert_na(
        &out,
        PORT0_MAC,
        VIP6,
        MacAddr([0x33, 0x33, 0, 0, 0, 1]),
        all_nodes,
        O,
    );
    assert_eq!(r.adverts(), 5);
}

#[test]
fn solicitations_for_others_and_malformed_ones_are_not_answered() {
    let mut r = Rig::new();
    // Someone else's address, to its group: not ours, dropped.
    let (v, _) = r.run(0, &ns_multicast(OTHER));
    assert_eq!(v, Verdict::Drop);
    assert_eq!(r.drops(Drop::NotForUs), 1);
    // Unicast to us for someone else: the kernel's (exception path).
    let (v, _) = r.run(
        0,
        &rewrite(ns_multicast(OTHER), PORT0_MAC, CLIENT, PORT0_ADDR, 255),
    );
    assert_eq!(v, Verdict::Kernel);

    // Hop limit 254 (it crossed a router), a bad checksum, a multicast NS
    // to another group, DAD with a source link-layer option, an option of
    // length 0: counted bad_ndp, never answered.
    let group = icmpv6::solicited_node(VIP6);
    let gmac = icmpv6::multicast_mac(group);
    let mut bad_sum = ns_multicast(VIP6);
    bad_sum[57] ^= 1;
    let mut zero_opt = ns_multicast(VIP6);
    zero_opt[79] = 0;
    let zero_opt = rewrite(zero_opt, gmac, CLIENT, group, 255);
    let other_group = icmpv6::solicited_node(OTHER);
    let cases = [
        rewrite(ns_multicast(VIP6), gmac, CLIENT, group, 254),
        bad_sum,
        rewrite(
            ns_multicast(VIP6),
            icmpv6::multicast_mac(other_group),
            CLIENT,
            other_group,
            255,
        ),
        rewrite(ns_multicast(VIP6), gmac, Ipv6Addr::UNSPECIFIED, group, 255),
        zero_opt,
    ];
    for (i, frame) in cases.iter().enumerate() {
        let (v, _) = r.run(0, frame);
        assert_eq!(v, Verdict::Drop, "case {i}");
        assert_eq!(r.parse_drops(DropReason::BadNdp), i as u64 + 1, "case {i}");
    }
    // Truncated IPv6 (payload length beyond the frame): the parser's reason.
    let mut short = ns_multicast(VIP6);
    short[18..20].copy_from_slice(&200u16.to_be_bytes());
    let (v, _) = r.run(0, &short);
    assert_eq!(v, Verdict::Drop);
    assert_eq!(r.parse_drops(DropReason::BadIpv6PayloadLength), 1);
    assert_eq!(r.adverts(), 0);
}

#[test]
fn a_backup_answers_for_its_own_address_but_not_for_the_vips() {
    let shared = Arc::new(Shared::new(1));
    shared.ha.set_master(false);
    let c = config::parse(CFG).expect("config");
    let ports = vec![
        PortInfo::new(&c.ports[0], PORT0_MAC),
        PortInfo::new(&c.ports[1], PORT1_MAC),
    ];
    let snap = Snapshot::build(&c, &ports, &shared.registry, 1, &AllUp).unwrap();
    shared.publish(snap);
    let mut w = Pipeline::new(0, 1, 1 << 12, &shared);
    let snap = shared.snapshot.load_full();
    w.on_snapshot(&snap);
    let mut run = |frame: &[u8]| {
        let mut f = VecFrame::new(frame);
        let v = w.process(&snap, &mut f, 0, 1_000, false);
        (v, f.to_vec())
    };
    let (v, _) = run(&ns_multicast(VIP6));
    assert_eq!(v, Verdict::Drop, "a backup answers no NS for a VIP");
    let (v, out) = run(&ns_multicast(PORT0_ADDR));
    assert_eq!(v, Verdict::Tx(0));
    assert_na(&out, PORT0_MAC, PORT0_ADDR, CLIENT_MAC, CLIENT, S_O);
}

//! Flow ownership is the NIC's RSS (SPEC §2, issue 16 item 5): the
//! engine's Toeplitz hash is checked against the Microsoft RSS verification
//! vectors and against DPDK's own `rte_softrss`; and for thousands of NAT
//! flows, the queue a NIC would pick for the client's frame (source fields
//! only, on the client port) and for the real server's reply (destination
//! fields only, on the server port) — DPDK's `rte_softrss` over the frames'
//! bytes, then the RETA the director programs — is the same, and the
//! worker of that queue forwards the frame itself: no hand-off.
#![cfg(feature = "dpdk")]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use engine::config;
use engine::conn::rss::{self, client_hash, client_hash6, owner_worker, toeplitz, Reta, KEY};
use engine::dataplane::neigh::{NeighTable, NeighTable6};
use engine::dataplane::pipeline::{Pipeline, VecFrame, Verdict};
use engine::dataplane::rss::reta_conf;
use engine::dataplane::snapshot::{fold6, AllUp, PortInfo, Snapshot};
use engine::dataplane::{Shared, NEIGH6_ENTRIES, NEIGH_ENTRIES};
use engine::packet::ethernet::MacAddr;
use etherparse::PacketBuilder;

/// The key of the Microsoft RSS specification's verification suite.
const MS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// DPDK's `rte_softrss` over host-order 32-bit words.
fn softrss(words: &[u32], key: &[u8]) -> u32 {
    assert!(key.len() >= 4 * (words.len() + 1));
    let mut w = words.to_vec();
    // SAFETY: w holds words.len() words; the key covers them plus 4 bytes.
    unsafe { dpdk_ffi::rvs_softrss(w.as_mut_ptr(), w.len() as u32, key.as_ptr()) }
}

/// Small deterministic PRNG (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn tuple(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v
}

#[test]
fn rss_toeplitz_matches_microsoft_vectors() {
    // (destination, destination port, source, source port, IPv4 hash,
    // IPv4 with TCP hash) from "Verifying the RSS Hash Calculation".
    type Vector = ([u8; 4], u16, [u8; 4], u16, u32, u32);
    let vectors: [Vector; 5] = [
        (
            [161, 142, 100, 80],
            1766,
            [66, 9, 149, 187],
            2794,
            0x323e_8fc2,
            0x51cc_c178,
        ),
        (
            [65, 69, 140, 83],
            4739,
            [199, 92, 111, 2],
            14230,
            0xd718_262a,
            0xc626_b0ea,
        ),
        (
            [12, 22, 207, 184],
            38024,
            [24, 19, 198, 95],
            12898,
            0xd2d0_a5de,
            0x5c2b_394a,
        ),
        (
            [209, 142, 163, 6],
            2217,
            [38, 27, 205, 30],
            48228,
            0x8298_9176,
            0xafc7_327f,
        ),
        (
            [202, 188, 127, 2],
            1303,
            [153, 39, 163, 191],
            44251,
            0x5d18_09c5,
            0x10e8_28a2,
        ),
    ];
    for (dst, dport, src, sport, ip_hash, tcp_hash) in vectors {
        let t = tuple(src, dst, sport, dport);
        assert_eq!(toeplitz(&MS_KEY, &t[..8]), ip_hash, "{src:?} -> {dst:?}");
        assert_eq!(
            toeplitz(&MS_KEY, &t),
            tcp_hash,
            "{src:?}:{sport} -> {dst:?}:{dport}"
        );
        // DPDK agrees (the words are host order, ports as sport << 16 | dport).
        let words = [
            u32::from_be_bytes(src),
            u32::from_be_bytes(dst),
            u32::from(sport) << 16 | u32::from(dport),
        ];
        assert_eq!(softrss(&words, &MS_KEY), tcp_hash);
        assert_eq!(softrss(&words[..2], &MS_KEY), ip_hash);
    }
}

#[test]
fn rss_toeplitz_equals_dpdk_softrss() {
    let mut rng = Rng(0x5eed_0001);
    for i in 0..20_000 {
        let r = rng.next();
        let s = rng.next();
        let words = [r as u32, (r >> 32) as u32, s as u32];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        let key: &[u8] = if i % 2 == 0 { &MS_KEY } else { &KEY };
        assert_eq!(toeplitz(key, &bytes), softrss(&words, key), "{words:x?}");
    }
}

/// The engine's table hash of (client, port) is DPDK's Toeplitz over the
/// client's fields wherever a NIC puts them: source fields, destination
/// fields, unselected fields zeroed in place or left out.
#[test]
fn rss_client_hash_is_layout_independent() {
    let mut rng = Rng(0x5eed_0002);
    for _ in 0..50_000 {
        let r = rng.next();
        let (ip, port) = (r as u32, (r >> 32) as u16);
        let h = client_hash(Ipv4Addr::from(ip), port);
        let p = u32::from(port);
        assert_eq!(h, toeplitz(&KEY, &tuple(ip.to_be_bytes(), [0; 4], port, 0)));
        assert_eq!(
            h,
            softrss(&[ip, 0, p << 16], &KEY),
            "source, zeroed in place"
        );
        assert_eq!(
            h,
            softrss(&[0, ip, p], &KEY),
            "destination, zeroed in place"
        );
        assert_eq!(h, softrss(&[ip, p << 16], &KEY), "source fields only");
    }
    // The low bits (the RETA index) take every value: the linear map from
    // the folded 16-bit word to them has full rank.
    let mut seen = [false; rss::RETA_SIZE];
    for port in 0..=u16::MAX {
        seen[client_hash(Ipv4Addr::new(198, 18, 0, 1), port) as usize % rss::RETA_SIZE] = true;
    }
    assert!(seen.iter().all(|&s| s));
}

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];
const RS_MAC: [u8; 6] = [2, 0, 0, 1, 0, 11];
const VIP: [u8; 4] = [198, 18, 0, 100];
const RS: [u8; 4] = [198, 19, 0, 11];

const CFG: &str = r#"
[dpdk]
cores = "0@0,1@1,2@1,3@1,4@1"
workers = 4

[[port]]
name = "client"
device = "net_af_packet0,iface=dc"
address = "198.18.0.2/16"

[[port]]
name = "servers"
device = "net_af_packet1,iface=ds"
address = "198.19.0.1/24"

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "rr"
forward = "nat"
  [[service.server]]
  address = "198.19.0.11"
  port = 8080
"#;

/// `Shared` with its neighbour tables keyed from fixed seeds. The NAT tests
/// learn 1,500 clients, more than a probe window holds, and whether one
/// fills (a client's MAC not learned, its reply dropped) must not be a
/// draw of the process's secret: with the one-round slot hash it was, for
/// about 1 secret in 1,300 ("reply on queue 1: left Drop, right Tx(0)").
fn seeded_shared(workers: usize) -> Shared {
    let mut shared = Shared::new(workers);
    shared.neigh = NeighTable::with_seed(NEIGH_ENTRIES, 0x5eed_0003);
    shared.neigh6 = NeighTable6::with_seed(NEIGH6_ENTRIES, 0x5eed_0007);
    shared
}

/// The queue a NIC with this director's RSS set-up picks for `frame`:
/// DPDK's Toeplitz over the IPv4 source (client port) or destination
/// (server port) address and port read from the frame, then entry `hash %
/// size` of the RETA the director programs.
fn nic_queue(
    frame: &[u8],
    client_side: bool,
    reta: &[dpdk_ffi::rte_eth_rss_reta_entry64],
) -> usize {
    let word = |o: usize| u32::from_be_bytes(frame[o..o + 4].try_into().unwrap());
    let port = |o: usize| u32::from(u16::from_be_bytes([frame[o], frame[o + 1]]));
    let (src, dst, sport, dport) = (word(26), word(30), port(34), port(36));
    let words = if client_side {
        [src, 0, sport << 16]
    } else {
        [0, dst, dport]
    };
    let h = softrss(&words, &KEY) as usize % (reta.len() * 64);
    usize::from(reta[h / 64].reta[h % 64])
}

#[test]
fn rss_nat_flows_land_on_their_owner_both_ways() {
    let cfg = config::parse(CFG).expect("config");
    let infos = vec![
        PortInfo::new(&cfg.ports[0], MacAddr(PORT0_MAC)),
        PortInfo::new(&cfg.ports[1], MacAddr(PORT1_MAC)),
    ];
    assert_eq!(
        engine::dataplane::rss::port_roles(&cfg),
        vec![
            engine::dataplane::rss::Role::Client,
            engine::dataplane::rss::Role::Server
        ]
    );
    let mut rng = Rng(0x5eed_0003);
    for workers in [2usize, 3, 4] {
        let shared = Arc::new(seeded_shared(workers));
        let snap = Snapshot::build(&cfg, &infos, &shared.registry, 1, &AllUp).unwrap();
        shared.neigh.learn(Ipv4Addr::from(RS), MacAddr(RS_MAC), 0);
        let mut pl: Vec<Pipeline> = (0..workers)
            .map(|w| Pipeline::new(w, workers, 4096, &shared))
            .collect();
        // Two device RETA sizes: the client port's and the server port's
        // tables need not be the same size.
        let (reta_c, reta_s) = (reta_conf(128, workers), reta_conf(512, workers));
        let soft = Reta::new(workers);
        let mut per_queue = vec![0u32; workers];
        for i in 0..1500u32 {
            let r = rng.next();
            let client = [198, 18, 1 + (i % 64) as u8, (r >> 8) as u8 | 1];
            let cport = 1024 + (r >> 32) as u16 % 60000;
            shared
                .neigh
                .learn(Ipv4Addr::from(client), MacAddr(CLIENT_MAC), 0);
            let mut syn = Vec::new();
            PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
                .ipv4(client, VIP, 64)
                .tcp(cport, 80, 1000, 65535)
                .syn()
                .write(&mut syn, &[])
                .unwrap();
            let q = nic_queue(&syn, true, &reta_c);
            per_queue[q] += 1;
            assert_eq!(q, owner_worker(Ipv4Addr::from(client), cport, workers));
            assert_eq!(q, soft.owner(Ipv4Addr::from(client), cport));
            let mut f = VecFrame::new(&syn);
            assert_eq!(
                pl[q].process(&snap, &mut f, 0, 10, false),
                Verdict::Tx(1),
                "inbound on queue {q}"
            );

            let mut synack = Vec::new();
            PacketBuilder::ethernet2(RS_MAC, PORT1_MAC)
                .ipv4(RS, client, 64)
                .tcp(8080, cport, 5000, 65535)
                .syn()
                .ack(1001)
                .write(&mut synack, &[])
                .unwrap();
            let q2 = nic_queue(&synack, false, &reta_s);
            assert_eq!(q2, q, "the reply reaches the inbound frame's queue");
            let mut f = VecFrame::new(&synack);
            assert_eq!(
                pl[q2].process(&snap, &mut f, 1, 10, false),
                Verdict::Tx(0),
                "reply on queue {q2}"
            );
            // The worker on another queue would have handed it over.
            let other = (q + 1) % workers;
            let mut f = VecFrame::new(&syn);
            assert_eq!(
                pl[other].process(&snap, &mut f, 0, 10, false),
                Verdict::Handoff(q)
            );
        }
        // Every worker got its share of the flows, and the one connection
        // per flow is in its owner's table only.
        assert!(
            per_queue.iter().all(|&n| n > 1500 / workers as u32 / 2),
            "{per_queue:?}"
        );
        for (w, p) in pl.iter().enumerate() {
            assert_eq!(p.conns.len(), per_queue[w] as usize, "worker {w}");
        }
    }
}

/// IPv6: DPDK's Toeplitz over the IPv6 RSS input (source address,
/// destination address, source port, destination port; `rte_softrss`
/// takes the addresses as four host-order words each) of the client's
/// address and port, wherever a NIC puts them, is the engine's IPv6 client
/// hash, which is the IPv4 owner function over the address's 32-bit fold.
#[test]
fn rss_ipv6_client_hash_is_toeplitz_of_the_ipv6_tuple() {
    let mut rng = Rng(0x5eed_0006);
    for _ in 0..20_000 {
        let (r, s) = (rng.next(), rng.next());
        let addr = Ipv6Addr::from(u128::from(r) << 64 | u128::from(s));
        let port = (rng.next() >> 48) as u16;
        let o = addr.octets();
        let a: Vec<u32> = o
            .chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect();
        let p = u32::from(port);
        let h = client_hash6(addr, port);
        let mut bytes = o.to_vec();
        bytes.extend_from_slice(&[0; 16]);
        bytes.extend_from_slice(&port.to_be_bytes());
        bytes.extend_from_slice(&[0, 0]);
        assert_eq!(h, toeplitz(&KEY, &bytes), "{addr} {port}");
        let src = [a[0], a[1], a[2], a[3], 0, 0, 0, 0, p << 16];
        let dst = [0, 0, 0, 0, a[0], a[1], a[2], a[3], p];
        assert_eq!(h, softrss(&src, &KEY), "source, zeroed in place");
        assert_eq!(h, softrss(&dst, &KEY), "destination, zeroed in place");
        assert_eq!(
            h,
            softrss(&[a[0], a[1], a[2], a[3], p << 16], &KEY),
            "source fields only"
        );
        assert_eq!(h, client_hash(fold6(addr), port), "the fold's owner hash");
    }
}

const CLIENT6_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x16];
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x100);
const RS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x11);

const CFG6: &str = r#"
[dpdk]
cores = "0@0,1@1,2@1,3@1,4@1"
workers = 4

[[port]]
name = "client"
device = "net_af_packet0,iface=dc"
address = ["198.18.0.2/16", "2001:db8:0:1::2/64"]

[[port]]
name = "servers"
device = "net_af_packet1,iface=ds"
address = ["198.19.0.1/24", "2001:db8:0:2::1/64"]

[[service]]
vip = "2001:db8:0:1::100"
port = 80
protocol = "tcp"
scheduler = "rr"
forward = "nat"
  [[service.server]]
  address = "2001:db8:0:2::11"
  port = 8080
"#;

/// The queue a NIC with this director's RSS set-up (IPv6 TCP hashed by
/// the source fields on the client port, the destination fields on the
/// server port) picks for an IPv6 `frame`: DPDK's Toeplitz over the
/// frame's bytes, then the director's RETA.
fn nic_queue6(
    frame: &[u8],
    client_side: bool,
    reta: &[dpdk_ffi::rte_eth_rss_reta_entry64],
) -> usize {
    let word = |o: usize| u32::from_be_bytes(frame[o..o + 4].try_into().unwrap());
    let port = |o: usize| u32::from(u16::from_be_bytes([frame[o], frame[o + 1]]));
    let (src, dst) = (22, 38);
    let words = if client_side {
        [
            word(src),
            word(src + 4),
            word(src + 8),
            word(src + 12),
            0,
            0,
            0,
            0,
            port(54) << 16,
        ]
    } else {
        [
            0,
            0,
            0,
            0,
            word(dst),
            word(dst + 4),
            word(dst + 8),
            word(dst + 12),
            port(56),
        ]
    };
    let h = softrss(&words, &KEY) as usize % (reta.len() * 64);
    usize::from(reta[h / 64].reta[h % 64])
}

/// IPv6 NAT flows: the queue a NIC picks for the client's SYN (source
/// fields) and for the server's SYN-ACK (destination fields) is the same,
/// and its worker forwards both itself; any other worker hands them over.
#[test]
fn rss_nat6_flows_land_on_their_owner_both_ways() {
    let cfg = config::parse(CFG6).expect("config");
    let infos = vec![
        PortInfo::new(&cfg.ports[0], MacAddr(PORT0_MAC)),
        PortInfo::new(&cfg.ports[1], MacAddr(PORT1_MAC)),
    ];
    let mut rng = Rng(0x5eed_0007);
    for workers in [2usize, 3, 4] {
        let shared = Arc::new(seeded_shared(workers));
        let snap = Snapshot::build(&cfg, &infos, &shared.registry, 1, &AllUp).unwrap();
        assert_eq!(snap.services6.len(), 1);
        shared.neigh6.learn(RS6, MacAddr(RS_MAC), 0);
        let mut pl: Vec<Pipeline> = (0..workers)
            .map(|w| {
                let mut p = Pipeline::new(w, workers, 4096, &shared);
                p.on_snapshot(&snap);
                p
            })
            .collect();
        let (reta_c, reta_s) = (reta_conf(128, workers), reta_conf(512, workers));
        let mut per_queue = vec![0u32; workers];
        for i in 0..1500u32 {
            let r = rng.next();
            let client = Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                1,
                (r >> 48) as u16,
                (r >> 32) as u16,
                i as u16,
                r as u16 | 1,
            );
            let cport = 1024 + (rng.next() >> 40) as u16 % 60000;
            shared.neigh6.learn(client, MacAddr(CLIENT6_MAC), 0);
            let mut syn = Vec::new();
            PacketBuilder::ethernet2(CLIENT6_MAC, PORT0_MAC)
                .ipv6(client.octets(), VIP6.octets(), 64)
                .tcp(cport, 80, 1000, 65535)
                .syn()
                .write(&mut syn, &[])
                .unwrap();
            let q = nic_queue6(&syn, true, &reta_c);
            per_queue[q] += 1;
            assert_eq!(q, rss::owner_of_hash(client_hash6(client, cport), workers));
            let mut f = VecFrame::new(&syn);
            assert_eq!(
                pl[q].process(&snap, &mut f, 0, 10, false),
                Verdict::Tx(1),
                "inbound on queue {q}"
            );

            let mut synack = Vec::new();
            PacketBuilder::ethernet2(RS_MAC, PORT1_MAC)
                .ipv6(RS6.octets(), client.octets(), 64)
                .tcp(8080, cport, 5000, 65535)
                .syn()
                .ack(1001)
                .write(&mut synack, &[])
                .unwrap();
            let q2 = nic_queue6(&synack, false, &reta_s);
            assert_eq!(q2, q, "the reply reaches the inbound frame's queue");
            let mut f = VecFrame::new(&synack);
            assert_eq!(
                pl[q2].process(&snap, &mut f, 1, 10, false),
                Verdict::Tx(0),
                "reply on queue {q2}"
            );
            let other = (q + 1) % workers;
            for (frame, port) in [(&syn, 0), (&synack, 1)] {
                let mut f = VecFrame::new(frame);
                assert_eq!(
                    pl[other].process(&snap, &mut f, port, 10, false),
                    Verdict::Handoff(q),
                    "worker {other}, port {port}"
                );
            }
        }
        assert!(
            per_queue.iter().all(|&n| n > 1500 / workers as u32 / 2),
            "{per_queue:?}"
        );
    }
}

//! IPv6 services through the worker pipeline, for what the schedulers and
//! persistence do (issue 13): every scheduler the configuration accepts
//! picks the servers of new IPv6 flows in the sequence its semantics give,
//! computed here independently (the least-connection family and lblc/lblcr
//! from their formulas over the counts this test tracks, sh/dh from the
//! kernel's multiplicative hash of `fold6` of the address, mh from its
//! Maglev table and first-slot hash of the fold); thresholds take an
//! overloaded IPv6 server out and bring it back; persistence sends every
//! client of one /64 (`persistence_prefix = 64`) to one server, also for
//! an all-ports service, and its template expires as IPv4's once its
//! connections are gone.
#![cfg(feature = "dpdk")]

mod v6_common;

use std::net::{Ipv4Addr, Ipv6Addr};

use engine::dataplane::pipeline::Verdict;
use engine::dataplane::snapshot::fold6;
use engine::sched::{mh_lookup_slot, mh_table, DestInfo, SchedKind};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use v6_common::{Rig, CLIENT_MAC, PORT0_MAC, PORT1_MAC};

const RS_MAC: [[u8; 6]; 3] = [
    [2, 0x5e, 0, 0, 0, 0x11],
    [2, 0x5e, 0, 0, 0, 0x12],
    [2, 0x5e, 0, 0, 0, 0x13],
];
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
const VIP6_ALL: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x200);
const RS: [Ipv6Addr; 3] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x11),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x12),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x13),
];
const WEIGHTS: [u32; 3] = [3, 2, 1];
/// The kernel's multiplicative hash constant (sh, dh).
const GOLDEN: u32 = 2_654_435_761;

/// One IPv6 TCP service `[VIP6]:80` over the three servers (weights
/// 3,2,1), with `extra` service keys and `server0` keys for the first
/// server; the clients' port holds a /48, so clients of several /64s are
/// on its link.
fn config(sched: &str, extra: &str, server0: &str) -> String {
    format!(
        r#"
[dpdk]
cores = "0@0,1@1"
workers = 1

[[port]]
name = "client"
device = "net_af_packet0,iface=dc"
address = ["198.18.0.2/24", "2001:db8:1::2/48"]

[[port]]
name = "servers"
device = "net_af_packet1,iface=ds"
address = ["198.19.0.1/24", "2001:db8:0:2::1/64"]
exception_path = false

[[service]]
vip = "2001:db8:1::100"
port = 80
scheduler = "{sched}"
{extra}
  [[service.server]]
  address = "2001:db8:0:2::11"
  port = 8080
  weight = 3
  {server0}
  [[service.server]]
  address = "2001:db8:0:2::12"
  port = 8080
  weight = 2
  [[service.server]]
  address = "2001:db8:0:2::13"
  port = 8080
  weight = 1
"#
    )
}

impl Rig {
    fn new(cfg: &str) -> Rig {
        let neighbours: Vec<_> = RS.into_iter().zip(RS_MAC).collect();
        let r = Rig::with(cfg, &neighbours);
        assert_eq!(r.snap().services6.len(), r.cfg.services.len());
        r
    }

    /// A client's SYN to `vip:vport`: the index of the server it went to.
    fn syn(&mut self, client: Ipv6Addr, cport: u16, vip: Ipv6Addr, vport: u16, now: u64) -> usize {
        let f = tcp6(
            CLIENT_MAC,
            PORT0_MAC.0,
            client,
            cport,
            vip,
            vport,
            Flags::Syn,
        );
        let (v, out) = self.run(0, &f, now);
        assert_eq!(v, Verdict::Tx(1), "SYN from [{client}]:{cport} forwarded");
        let (dst, _) = dest(&out);
        RS.iter().position(|&a| a == dst).expect("a real server")
    }

    /// A full handshake: SYN, the server's SYN-ACK, the client's ACK, so
    /// the connection counts as active. The server's index.
    fn open(&mut self, client: Ipv6Addr, cport: u16, now: u64) -> usize {
        let i = self.syn(client, cport, VIP6, 80, now);
        let sa = tcp6(
            RS_MAC[i],
            PORT1_MAC.0,
            RS[i],
            8080,
            client,
            cport,
            Flags::SynAck,
        );
        assert_eq!(self.run(1, &sa, now).0, Verdict::Tx(0), "SYN-ACK back");
        let a = tcp6(CLIENT_MAC, PORT0_MAC.0, client, cport, VIP6, 80, Flags::Ack);
        assert_eq!(self.run(0, &a, now).0, Verdict::Tx(1), "ACK forwarded");
        i
    }

    /// The client closes with an RST: the connection ends.
    fn reset(&mut self, client: Ipv6Addr, cport: u16, now: u64) {
        let f = tcp6(CLIENT_MAC, PORT0_MAC.0, client, cport, VIP6, 80, Flags::Rst);
        assert_eq!(self.run(0, &f, now).0, Verdict::Tx(1));
    }

    /// (active, inactive) of server `i`.
    fn load(&self, i: usize) -> (u32, u32) {
        let d = self
            .shared
            .registry
            .entries()
            .into_iter()
            .find(|e| e.1 == RS[i] && e.2 == 8080)
            .expect("server registered")
            .3;
        (d.active(), d.inactive())
    }

    /// Runs the expiry sweep over the whole table at `now`.
    fn sweep(&mut self, now: u64) {
        let snap = self.shared.snapshot.load_full();
        for _ in 0..64 {
            self.w.housekeeping(&snap, now, 1 << 12);
        }
    }

    /// Expires every connection: `now` beyond their timeouts.
    fn expire_all(&mut self, now: u64) {
        self.sweep(now);
        assert_eq!(self.w.conns6_len(), 0, "every connection expired");
    }
}

#[derive(Clone, Copy)]
enum Flags {
    Syn,
    SynAck,
    Ack,
    Rst,
}

fn tcp6(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: Ipv6Addr,
    sport: u16,
    dst: Ipv6Addr,
    dport: u16,
    flags: Flags,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(smac, dmac)
        .ipv6(src.octets(), dst.octets(), 64)
        .tcp(sport, dport, 0x1000, 64240);
    let b = match flags {
        Flags::Syn => b.syn(),
        Flags::SynAck => b.syn().ack(0x1001),
        Flags::Ack => b.ack(0x2001),
        Flags::Rst => b.rst().ack(0x2001),
    };
    let mut v = Vec::new();
    b.write(&mut v, &[]).unwrap();
    v
}

/// The destination of a forwarded frame, as etherparse reads it.
fn dest(out: &[u8]) -> (Ipv6Addr, u16) {
    let s = SlicedPacket::from_ethernet(out).expect("etherparse parses the output");
    let Some(NetSlice::Ipv6(ip)) = s.net else {
        panic!("not IPv6")
    };
    let Some(TransportSlice::Tcp(t)) = s.transport else {
        panic!("not TCP")
    };
    (
        Ipv6Addr::from(ip.header().destination()),
        t.destination_port(),
    )
}

/// Client `n`: one address per /64 of the clients' /48, varied low bits
/// too, so the hashing schedulers see different folds.
fn client(n: u16) -> Ipv6Addr {
    Ipv6Addr::new(
        0x2001,
        0xdb8,
        1,
        0x10 + n,
        0,
        0,
        n.wrapping_mul(0x3d),
        0x1000 + n * 0x25,
    )
}

/// The first of `cands` with the strictly lowest `cost / weight` (IPVS's
/// scan, ties to the earlier server).
fn least(cands: impl Iterator<Item = usize>, cost: impl Fn(usize) -> u64) -> Option<usize> {
    let mut best: Option<usize> = None;
    for i in cands {
        best = match best {
            Some(b) if cost(i) * u64::from(WEIGHTS[b]) >= cost(b) * u64::from(WEIGHTS[i]) => {
                Some(b)
            }
            _ => Some(i),
        };
    }
    best
}

/// What each scheduler picks for flow `n` given the active connections
/// `act` of the three servers (every earlier flow is established), and
/// `cache`, the lblc/lblcr server of the VIP (`None` before the first).
fn expected(
    kind: SchedKind,
    n: u16,
    act: [u64; 3],
    cache: &mut Vec<usize>,
    rr: &mut usize,
) -> usize {
    let all = 0..3usize;
    // IPVS's overhead: active * 256 + inactive (none inactive here).
    let wlc = |i: usize| act[i] * 256;
    let sed = |i: usize| act[i] + 1;
    let lblc_overloaded = |s: usize| {
        act[s] > u64::from(WEIGHTS[s]) && (0..3).any(|i| act[i] * 2 < u64::from(WEIGHTS[i]))
    };
    match kind {
        SchedKind::Rr => {
            let i = *rr % 3;
            *rr += 1;
            i
        }
        SchedKind::Wrr => [0, 0, 1, 0, 1, 2][n as usize % 6],
        SchedKind::Lc => (0..3).min_by_key(|&i| (act[i], i)).unwrap(),
        SchedKind::Wlc => least(all, wlc).unwrap(),
        SchedKind::Sed => least(all, sed).unwrap(),
        SchedKind::Nq => (0..3)
            .find(|&i| act[i] == 0)
            .unwrap_or_else(|| least(0..3, sed).unwrap()),
        SchedKind::Sh => {
            // 256 buckets, `weight` consecutive ones per server.
            let b = (u32::from(fold6(client(n))).wrapping_mul(GOLDEN) & 255) as usize;
            [0, 0, 0, 1, 1, 2][b % 6]
        }
        SchedKind::Dh => {
            let b = (u32::from(fold6(VIP6)).wrapping_mul(GOLDEN) & 255) as usize;
            b % 3
        }
        SchedKind::Mh => {
            let dests: Vec<DestInfo> = (0..3)
                .map(|i| DestInfo::new(fold6(RS[i]), 8080, WEIGHTS[i], true))
                .collect();
            let table = mh_table(65521, &dests);
            table[mh_lookup_slot(table.len() as u32, fold6(client(n)), 0)].unwrap()
        }
        SchedKind::Lblc => match cache.first() {
            Some(&s) if !lblc_overloaded(s) => s,
            _ => {
                let s = least(0..3, wlc).unwrap();
                *cache = vec![s];
                s
            }
        },
        SchedKind::Lblcr => {
            let s = least(cache.iter().copied(), wlc);
            match s {
                Some(s) if !lblc_overloaded(s) => s,
                _ => {
                    let s = least(0..3, wlc).unwrap();
                    if !cache.contains(&s) {
                        cache.push(s);
                    }
                    s
                }
            }
        }
    }
}

#[test]
fn every_scheduler_picks_ipv6_servers_by_its_semantics() {
    for kind in SchedKind::ALL {
        let mut r = Rig::new(&config(kind.name(), "", ""));
        let (mut act, mut cache, mut rr) = ([0u64; 3], Vec::new(), 0usize);
        let mut got = Vec::new();
        let mut want = Vec::new();
        for n in 0..8u16 {
            want.push(expected(kind, n, act, &mut cache, &mut rr));
            let i = r.open(client(n), 40000 + n, 2_000 + u64::from(n));
            got.push(i);
            act[i] += 1;
        }
        assert_eq!(got, want, "{kind:?} over IPv6");
        for (i, &a) in act.iter().enumerate() {
            assert_eq!(r.load(i), (a as u32, 0), "{kind:?}: server {i} active");
        }
    }
}

#[test]
fn the_hashing_schedulers_spread_ipv6_clients() {
    // Not a vacuous match above: over 8 clients sh and mh reach more than
    // one server, and dh sends all of one VIP to one.
    let picks = |kind: SchedKind| {
        let mut r = Rig::new(&config(kind.name(), "", ""));
        (0..8u16)
            .map(|n| r.syn(client(n), 41000 + n, VIP6, 80, 2_000))
            .collect::<Vec<_>>()
    };
    for kind in [SchedKind::Sh, SchedKind::Mh] {
        let p = picks(kind);
        assert!(p.iter().any(|&i| i != p[0]), "{kind:?}: {p:?}");
    }
    let p = picks(SchedKind::Dh);
    assert!(p.iter().all(|&i| i == p[0]), "dh: {p:?}");
}

#[test]
fn an_ipv6_server_over_its_upper_threshold_is_skipped_until_below_its_lower() {
    // rr; the first server takes at most 2 connections, back at 1.
    let cfg = config("rr", "", "upper_threshold = 2\n  lower_threshold = 1");
    let mut r = Rig::new(&cfg);
    let mut got = Vec::new();
    for n in 0..6u16 {
        got.push(r.open(client(n), 42000 + n, 2_000));
    }
    // 0,1,2,0 (now 2: overloaded), 1,2 (0 skipped), ...
    assert_eq!(got, [0, 1, 2, 0, 1, 2]);
    assert_eq!(r.load(0), (2, 0));
    assert_eq!(r.open(client(6), 42006, 2_000), 1, "server 0 overloaded");
    // One of its connections ends (RST, then CLOSE's 10 s): 1 left is not
    // below the lower threshold 1.
    r.reset(client(0), 42000, 3_000);
    r.sweep(20_000);
    assert_eq!(r.load(0), (1, 0));
    assert_eq!(r.open(client(7), 42007, 20_000), 2);
    assert_eq!(r.open(client(8), 42008, 20_000), 1, "still overloaded at 1");
    r.reset(client(3), 42003, 21_000);
    r.sweep(40_000);
    assert_eq!(r.load(0), (0, 0));
    assert_eq!(r.open(client(9), 42009, 40_000), 2);
    assert_eq!(r.open(client(10), 42010, 40_000), 0, "back below the lower");
}

#[test]
fn persistence_sends_one_prefix_to_one_server_until_the_template_expires() {
    let cfg = config("rr", "persistence_timeout = 2\npersistence_prefix = 64", "");
    let mut r = Rig::new(&cfg);
    let net_a = |host: u16| Ipv6Addr::new(0x2001, 0xdb8, 1, 0xa, 0x1234, 0, 0, host);
    let net_b = |host: u16| Ipv6Addr::new(0x2001, 0xdb8, 1, 0xb, 0, 0, 0, host);
    // rr's first pick, then every client of that /64 sticks to it.
    assert_eq!(r.syn(net_a(1), 40000, VIP6, 80, 2_000), 0);
    assert_eq!(r.syn(net_a(2), 40001, VIP6, 80, 2_001), 0, "same /64");
    assert_eq!(r.syn(net_a(0xffff), 40002, VIP6, 80, 2_002), 0, "same /64");
    assert_eq!(
        r.syn(net_b(1), 40003, VIP6, 80, 2_003),
        1,
        "another /64: rr"
    );
    assert_eq!(r.syn(net_b(9), 40004, VIP6, 80, 2_004), 1);
    assert_eq!(r.syn(net_a(1), 40005, VIP6, 80, 2_005), 0, "a new port too");
    // Held by its connections, the template outlives its 2 s while they
    // live (60 s SYN_RECV timeout).
    assert_eq!(r.syn(net_a(3), 40006, VIP6, 80, 30_000), 0, "held");
    // Every connection gone, the template runs out (IPVS: at the next
    // 60-s re-check after its last connection): rr goes on to server 2.
    r.expire_all(100_000);
    assert_eq!(r.syn(net_a(1), 40007, VIP6, 80, 300_000), 2, "expired");
    assert_eq!(r.syn(net_a(4), 40008, VIP6, 80, 300_001), 2, "new template");
    assert_eq!(r.syn(net_b(1), 40009, VIP6, 80, 300_002), 0, "rr");
}

#[test]
fn persistence_of_an_all_ports_ipv6_service_spans_its_ports() {
    // A port-0 service on a second VIP: a /64's connections to any port
    // go to one server, keeping the port asked for.
    let base = config("rr", "", "");
    let all = r#"
[[service]]
vip = "2001:db8:1::200"
port = 0
scheduler = "rr"
persistence_timeout = 60
persistence_prefix = 64
  [[service.server]]
  address = "2001:db8:0:2::11"
  [[service.server]]
  address = "2001:db8:0:2::12"
  [[service.server]]
  address = "2001:db8:0:2::13"
"#;
    let mut r = Rig::new(&(base + all));
    let a = |h: u16| Ipv6Addr::new(0x2001, 0xdb8, 1, 0xa, 0, 0, 0, h);
    let b = |h: u16| Ipv6Addr::new(0x2001, 0xdb8, 1, 0xb, 0, 0, 0, h);
    let mut go = |c: Ipv6Addr, cport: u16, vport: u16| {
        let f = tcp6(
            CLIENT_MAC,
            PORT0_MAC.0,
            c,
            cport,
            VIP6_ALL,
            vport,
            Flags::Syn,
        );
        let (v, out) = r.run(0, &f, 5_000);
        assert_eq!(v, Verdict::Tx(1));
        let (dst, dport) = dest(&out);
        assert_eq!(dport, vport, "the client's port kept");
        RS.iter().position(|&x| x == dst).unwrap()
    };
    assert_eq!(go(a(1), 50000, 80), 0);
    assert_eq!(go(a(2), 50001, 443), 0, "same /64, another port");
    assert_eq!(go(b(1), 50002, 443), 1);
    assert_eq!(go(a(3), 50003, 22), 0);
    assert_eq!(go(b(2), 50004, 80), 1);
}

#[test]
fn fold_keys_are_what_the_schedulers_see() {
    // The sh/mh expectations above rest on fold6: the xor of the words.
    let a: Ipv6Addr = "2001:db8:1:10::1000".parse().unwrap();
    assert_eq!(fold6(a), Ipv4Addr::from(0x2001_0db8 ^ 0x0001_0010 ^ 0x1000));
}

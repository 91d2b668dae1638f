//! The IPv6 established fast path (`pipeline/established6.rs`) through the
//! worker pipeline with byte buffers: steady packets of IPv6 NAT (TCP both
//! ways, UDP) and DR connections take it and leave with exactly the bytes
//! etherparse builds from scratch (checksums computed over the whole
//! segment, ours incrementally); and everything it must refuse goes to the
//! full path, which decides as before: a hop limit of 1 (time exceeded), a
//! FIN (a transition), a removed server (the connection ends), a neighbour's
//! new MAC (seen by the very next packet), ids freed between the first pass
//! over a burst and the packet (the id table's epoch).
#![cfg(feature = "dpdk")]

use std::net::Ipv6Addr;
use std::sync::Arc;

use engine::config;
use engine::dataplane::counters::Drop;
use engine::dataplane::neigh::Resolution;
use engine::dataplane::pipeline::{Inspected, Pipeline, VecFrame, Verdict};
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::Shared;
use engine::packet::ethernet::MacAddr;
use etherparse::{Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

mod v6_common;
use v6_common::tcp6;

const PORT0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x02];
const PORT1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x01];
const CLIENT_MAC: [u8; 6] = [2, 0xc1, 0, 0, 0, 0x10];
const RS_MAC: [u8; 6] = [2, 0x5e, 0, 0, 0, 0x11];
const RS_MOVED: [u8; 6] = [2, 0x5e, 0, 0, 0xee, 0x11];
const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x10);
const CLIENT2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x20);
const PORT0_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 2);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x100);
const RS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x11);

/// NAT on 80/tcp (the server only `with_server`) and 53/udp, DR on 81.
fn cfg(with_server: bool) -> String {
    cfg_with(with_server, "")
}

/// [`cfg`] with `extra` appended (more services).
fn cfg_with(with_server: bool, extra: &str) -> String {
    let nat = if with_server {
        "  [[service.server]]\n  address = \"2001:db8:0:2::11\"\n  port = 8080\n"
    } else {
        ""
    };
    format!(
        r#"
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

[timeouts]
udp = 5

[[service]]
vip = "2001:db8:0:1::100"
port = 80
scheduler = "rr"
{nat}
[[service]]
vip = "2001:db8:0:1::100"
port = 53
protocol = "udp"
  [[service.server]]
  address = "2001:db8:0:2::11"
  port = 5353

[[service]]
vip = "2001:db8:0:1::100"
port = 81
forward = "dr"
  [[service.server]]
  address = "2001:db8:0:2::11"
{extra}"#
    )
}

struct Rig {
    shared: Arc<Shared>,
    ports: Vec<PortInfo>,
    generation: u64,
    w: Pipeline,
}

impl Rig {
    fn new() -> Rig {
        let shared = Arc::new(Shared::new(1));
        shared.ha.set_master(true);
        let c = config::parse(&cfg(true)).expect("config");
        let ports = vec![
            PortInfo::new(&c.ports[0], MacAddr(PORT0_MAC)),
            PortInfo::new(&c.ports[1], MacAddr(PORT1_MAC)),
        ];
        let w = Pipeline::new(0, 1, 1 << 12, &shared);
        let mut r = Rig {
            shared,
            ports,
            generation: 0,
            w,
        };
        r.publish(true);
        // The server answers the director's solicitation.
        let snap = r.shared.snapshot.load_full();
        r.w.housekeeping(&snap, 1_000, 16);
        while r.w.take_ns_request().is_some() {}
        r.shared.neigh6.learn_reply(RS, MacAddr(RS_MAC), 1_000);
        assert_eq!(r.shared.neigh6.peek(RS, 1_000), Some(MacAddr(RS_MAC)));
        r
    }

    /// A new configuration, as a reload or `rvs ctl` edit publishes it.
    fn publish(&mut self, with_server: bool) {
        self.publish_text(&cfg(with_server));
    }

    /// [`publish`](Self::publish) of the configuration `text`.
    fn publish_text(&mut self, text: &str) {
        let c = config::parse(text).expect("config");
        self.generation += 1;
        let snap = Snapshot::build(
            &c,
            &self.ports,
            &self.shared.registry,
            self.generation,
            &AllUp,
        )
        .unwrap();
        self.shared.publish(snap);
        let snap = self.shared.snapshot.load_full();
        self.w.on_snapshot(&snap);
    }

    /// Runs a frame; returns the verdict, the frame as it left, and whether
    /// the fast path forwarded it.
    fn run(&mut self, port: usize, frame: &[u8], now_ms: u64) -> (Verdict, Vec<u8>, bool) {
        let snap = self.shared.snapshot.load_full();
        let before = self.w.established_hits();
        let mut f = VecFrame::new(frame);
        let v = self.w.process(&snap, &mut f, port, now_ms, false);
        (v, f.to_vec(), self.w.established_hits() > before)
    }

    /// As `run`, in the worker's passes, with `between` run after the passes
    /// that read the frame's address ids (`inspect_into`, `prefetch_conns`)
    /// and before the packet.
    fn run_passes(
        &mut self,
        frame: &[u8],
        now_ms: u64,
        between: impl FnOnce(&mut Rig),
    ) -> (Verdict, Vec<u8>, bool) {
        let snap = self.shared.snapshot.load_full();
        let mut i = Inspected::EMPTY;
        self.w.inspect_into(frame, &mut i);
        assert!(i.fast6, "the common IPv6 shape");
        self.w.prefetch_conns(std::slice::from_mut(&mut i));
        between(self);
        let before = self.w.established_hits();
        let mut f = VecFrame::new(frame);
        let v = self
            .w
            .process_inspected(&snap, &mut f, &i, 0, now_ms, false);
        (v, f.to_vec(), self.w.established_hits() > before)
    }

    fn drops(&self, d: Drop) -> u64 {
        self.shared.worker_stats[0].drops[d as usize].get()
    }

    /// (in packets, out packets, in bytes, out bytes) of the server on `port`.
    fn counts(&self, port: u16) -> [u64; 4] {
        let d = self
            .shared
            .registry
            .entries()
            .into_iter()
            .find(|e| e.1 == RS && e.2 == port)
            .expect("server registered")
            .3;
        [
            d.total(|c| &c.in_packets),
            d.total(|c| &c.out_packets),
            d.total(|c| &c.in_bytes),
            d.total(|c| &c.out_bytes),
        ]
    }
}

/// Client -> VIP:`vport`.
fn from_client(cport: u16, vport: u16, hop: u8, flags: &str, payload: &[u8]) -> Vec<u8> {
    tcp6(
        (CLIENT_MAC, PORT0_MAC),
        CLIENT,
        cport,
        VIP6,
        vport,
        hop,
        flags,
        payload,
    )
}

/// What the full path makes of client data to VIP:80: NAT to RS:8080,
/// hop limit - 1, to the server's MAC `mac`.
fn nat_in(mac: [u8; 6], cport: u16, hop: u8, flags: &str, payload: &[u8]) -> Vec<u8> {
    tcp6(
        (PORT1_MAC, mac),
        CLIENT,
        cport,
        RS,
        8080,
        hop - 1,
        flags,
        payload,
    )
}

/// Opens the NAT connection `cport` -> VIP:80 (SYN, the server's SYN-ACK,
/// the client's ACK: all on the full path).
fn open_nat(r: &mut Rig, cport: u16, now: u64) {
    let (v, out, fast) = r.run(0, &from_client(cport, 80, 64, "S", b""), now);
    assert_eq!((v, fast), (Verdict::Tx(1), false));
    assert_eq!(out, nat_in(RS_MAC, cport, 64, "S", b""));
    let synack = tcp6((RS_MAC, PORT1_MAC), RS, 8080, CLIENT, cport, 64, "SA", b"");
    let (v, _, fast) = r.run(1, &synack, now + 1);
    assert_eq!((v, fast), (Verdict::Tx(0), false));
    let (v, _, fast) = r.run(0, &from_client(cport, 80, 64, "A", b""), now + 2);
    assert_eq!(
        (v, fast),
        (Verdict::Tx(1), false),
        "SYN_RECV -> ESTABLISHED"
    );
}

/// Asserts `out` is a correct IPv6/TCP frame by etherparse's own checksum.
fn checksum_ok(out: &[u8]) {
    let s = SlicedPacket::from_ethernet(out).expect("etherparse parses the output");
    let Some(NetSlice::Ipv6(ip)) = s.net else {
        panic!("not IPv6")
    };
    let h = ip.header();
    let Some(TransportSlice::Tcp(t)) = s.transport else {
        panic!("not TCP")
    };
    let want = t
        .to_header()
        .calc_checksum_ipv6_raw(h.source(), h.destination(), t.payload())
        .unwrap();
    assert_eq!(t.checksum(), want, "TCP checksum");
}

#[test]
fn steady_nat_tcp_and_udp_take_the_fast_path_with_exact_bytes() {
    let mut r = Rig::new();
    open_nat(&mut r, 40000, 2_000);
    let before = r.counts(8080);
    // Client data: the fast path, the bytes of a from-scratch build.
    for (k, payload) in [&b"hello"[..], b"", b"a longer segment of data"]
        .into_iter()
        .enumerate()
    {
        let hop = 64 - k as u8;
        let (v, out, fast) = r.run(0, &from_client(40000, 80, hop, "PA", payload), 2_010);
        assert_eq!((v, fast), (Verdict::Tx(1), true), "segment {k}");
        assert_eq!(out, nat_in(RS_MAC, 40000, hop, "PA", payload));
        checksum_ok(&out);
    }
    // Server data: from the VIP again, to the client's MAC.
    let data = tcp6(
        (RS_MAC, PORT1_MAC),
        RS,
        8080,
        CLIENT,
        40000,
        64,
        "PA",
        b"world",
    );
    let (v, out, fast) = r.run(1, &data, 2_011);
    assert_eq!((v, fast), (Verdict::Tx(0), true));
    let want = tcp6(
        (PORT0_MAC, CLIENT_MAC),
        VIP6,
        80,
        CLIENT,
        40000,
        63,
        "PA",
        b"world",
    );
    assert_eq!(out, want);
    checksum_ok(&out);
    // Counted as the full path counts: IP bytes (40 + 20 + payload).
    let after = r.counts(8080);
    let d: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    assert_eq!(d, [3, 1, 65 + 60 + 84, 65]);

    // UDP: the first datagram opens the connection (full path), the next
    // ones are steady. Ethernet padding is cut as the full path cuts it.
    let dgram = |hop: u8, pad: usize| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
            .ipv6(CLIENT.octets(), VIP6.octets(), hop)
            .udp(5000, 53)
            .write(&mut v, b"query")
            .unwrap();
        v.resize(v.len() + pad, 0);
        v
    };
    let want = |hop: u8| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(PORT1_MAC, RS_MAC)
            .ipv6(CLIENT.octets(), RS.octets(), hop - 1)
            .udp(5000, 5353)
            .write(&mut v, b"query")
            .unwrap();
        v
    };
    let (v, out, fast) = r.run(0, &dgram(64, 0), 2_020);
    assert_eq!((v, fast), (Verdict::Tx(1), false), "a new flow");
    assert_eq!(out, want(64));
    let (v, out, fast) = r.run(0, &dgram(60, 0), 2_021);
    assert_eq!((v, fast), (Verdict::Tx(1), true));
    assert_eq!(out, want(60));
    let (v, out, fast) = r.run(0, &dgram(60, 7), 2_022);
    assert_eq!((v, fast), (Verdict::Tx(1), true));
    assert_eq!(out, want(60), "padding cut");
}

#[test]
fn steady_dr_takes_the_fast_path() {
    let mut r = Rig::new();
    let (v, out, fast) = r.run(0, &from_client(40001, 81, 64, "S", b""), 2_000);
    assert_eq!((v, fast), (Verdict::Tx(1), false));
    // DR: only the MACs and the hop limit change.
    let dr = |hop: u8, flags: &str, payload: &[u8]| {
        tcp6(
            (PORT1_MAC, RS_MAC),
            CLIENT,
            40001,
            VIP6,
            81,
            hop - 1,
            flags,
            payload,
        )
    };
    assert_eq!(out, dr(64, "S", b""));
    // Without replies through the director a DR connection is
    // established by the client's ACK (IPVS's input-only table).
    let (v, _, fast) = r.run(0, &from_client(40001, 81, 64, "A", b""), 2_001);
    assert_eq!((v, fast), (Verdict::Tx(1), false));
    let (v, out, fast) = r.run(0, &from_client(40001, 81, 64, "PA", b"dr data"), 2_002);
    assert_eq!((v, fast), (Verdict::Tx(1), true));
    assert_eq!(out, dr(64, "PA", b"dr data"));
}

#[test]
fn refusals_take_the_full_path_which_decides_as_before() {
    let mut r = Rig::new();
    open_nat(&mut r, 40000, 2_000);
    let counts = r.counts(8080);

    // Hop limit 1: the full path answers time exceeded, quoting the packet.
    let late = from_client(40000, 80, 1, "PA", b"late");
    let (v, out, fast) = r.run(0, &late, 2_010);
    assert_eq!((v, fast), (Verdict::Tx(0), false));
    let s = SlicedPacket::from_ethernet(&out).expect("ICMPv6");
    assert_eq!(out[..6], CLIENT_MAC);
    let Some(NetSlice::Ipv6(ip)) = &s.net else {
        panic!("not IPv6")
    };
    assert_eq!(Ipv6Addr::from(ip.header().source()), PORT0_ADDR);
    assert_eq!(Ipv6Addr::from(ip.header().destination()), CLIENT);
    let Some(TransportSlice::Icmpv6(m)) = &s.transport else {
        panic!("not ICMPv6")
    };
    assert!(matches!(m.icmp_type(), Icmpv6Type::TimeExceeded(_)));
    assert_eq!(m.payload(), &late[14..], "the packet quoted whole");
    assert_eq!(r.counts(8080), counts, "nothing forwarded");

    // A FIN is a transition: the full path tracks it, the same bytes.
    let (v, out, fast) = r.run(0, &from_client(40000, 80, 64, "FA", b""), 2_011);
    assert_eq!((v, fast), (Verdict::Tx(1), false));
    assert_eq!(out, nat_in(RS_MAC, 40000, 64, "FA", b""));
    // Data after the FIN (FIN_WAIT): still the full path's.
    let (v, out, fast) = r.run(0, &from_client(40000, 80, 64, "A", b"x"), 2_012);
    assert_eq!((v, fast), (Verdict::Tx(1), false));
    assert_eq!(out, nat_in(RS_MAC, 40000, 64, "A", b"x"));

    // Another connection, then its server removed: the next packet ends it.
    open_nat(&mut r, 40002, 2_020);
    let data = from_client(40002, 80, 64, "PA", b"data");
    let (_, _, fast) = r.run(0, &data, 2_030);
    assert!(fast);
    r.publish(false);
    let conns = r.w.conns6_len();
    let gone = r.drops(Drop::ServerGone);
    let (v, _, fast) = r.run(0, &data, 2_031);
    assert_eq!((v, fast), (Verdict::Drop, false));
    assert_eq!(r.drops(Drop::ServerGone), gone + 1);
    assert_eq!(r.w.conns6_len(), conns - 1, "the connection ends");
}

#[test]
fn a_stale_next_hop_is_refused_and_a_new_mac_used_at_once() {
    let mut r = Rig::new();
    open_nat(&mut r, 40000, 2_000);
    let data = from_client(40000, 80, 64, "PA", b"data");
    let (_, out, fast) = r.run(0, &data, 2_010);
    assert!(fast);
    assert_eq!(out, nat_in(RS_MAC, 40000, 64, "PA", b"data"));
    // The server moves to another MAC (hearsay, then the answer to the
    // solicitation it makes the director send): the very next packet
    // goes there.
    r.shared.neigh6.recheck(RS, MacAddr(RS_MOVED), 2_011);
    assert!(matches!(
        r.shared.neigh6.resolve(RS, 2_011),
        Resolution::MacRefresh(_)
    ));
    r.shared.neigh6.learn_reply(RS, MacAddr(RS_MOVED), 2_011);
    let (v, out, fast) = r.run(0, &data, 2_012);
    assert_eq!(
        (v, fast),
        (Verdict::Tx(1), false),
        "the cached hop is stale"
    );
    assert_eq!(out, nat_in(RS_MOVED, 40000, 64, "PA", b"data"));
    let (v, out, fast) = r.run(0, &data, 2_013);
    assert_eq!((v, fast), (Verdict::Tx(1), true), "cached again");
    assert_eq!(out, nat_in(RS_MOVED, 40000, 64, "PA", b"data"));
    // After 100 ms the neighbour table is asked again (the full path).
    let (v, out, fast) = r.run(0, &data, 2_200);
    assert_eq!((v, fast), (Verdict::Tx(1), false));
    assert_eq!(out, nat_in(RS_MOVED, 40000, 64, "PA", b"data"));
}

#[test]
fn ids_freed_after_the_first_pass_send_the_packet_to_the_full_path() {
    let mut r = Rig::new();
    open_nat(&mut r, 40000, 2_000);
    // A UDP flow of another client, which expires (5 s) and frees its id.
    let mut q = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, PORT0_MAC)
        .ipv6(CLIENT2.octets(), VIP6.octets(), 64)
        .udp(5000, 53)
        .write(&mut q, b"query")
        .unwrap();
    let (v, _, _) = r.run(0, &q, 2_001);
    assert_eq!(v, Verdict::Tx(1));
    let data = from_client(40000, 80, 64, "PA", b"data");
    let want = nat_in(RS_MAC, 40000, 64, "PA", b"data");
    let now = 9_000;
    // The passes as the worker runs them: the fast path (housekeeping
    // between the passes keeps the next hop fresh and frees nothing).
    let (v, out, fast) = r.run_passes(&data, now, |r| {
        let snap = r.shared.snapshot.load_full();
        r.w.housekeeping(&snap, now, 0);
    });
    assert_eq!((v, fast), (Verdict::Tx(1), true));
    assert_eq!(out, want);
    // Now the UDP connection expires between the passes and the packet:
    // the ids the second pass read may name other addresses.
    let conns = r.w.conns6_len();
    let (v, out, fast) = r.run_passes(&data, now, |r| {
        let snap = r.shared.snapshot.load_full();
        r.w.housekeeping(&snap, now, 1 << 12);
    });
    assert_eq!(r.w.conns6_len(), conns - 1, "the UDP connection expired");
    // Not forwarded on the stale ids: the transition path resolves them
    // again (pipeline/transition6.rs) and offers the packet to the
    // established path with the fresh ones.
    assert_eq!((v, fast), (Verdict::Tx(1), true));
    assert_eq!(out, want, "forwarded on the fresh ids, the same bytes");
    let (v, _, fast) = r.run_passes(&data, now, |_| {});
    assert_eq!((v, fast), (Verdict::Tx(1), true));
}

#[test]
fn fast_path_counts_reach_the_server_at_a_flush() {
    let mut r = Rig::new();
    open_nat(&mut r, 40000, 2_000);
    let data = from_client(40000, 80, 64, "PA", b"data");
    // Warm the server's entry and next hop.
    let (_, _, fast) = r.run(0, &data, 2_001);
    assert!(fast);
    let before = r.counts(8080);
    // Three fast-path packets in one burst: pending in the worker's
    // per-server entry (pipeline/dest_fast6.rs) until a flush.
    for _ in 0..3 {
        let (v, out, fast) = r.run_passes(&data, 2_002, |_| {});
        assert_eq!((v, fast), (Verdict::Tx(1), true));
        assert_eq!(out, nat_in(RS_MAC, 40000, 64, "PA", b"data"));
    }
    assert_eq!(r.counts(8080), before, "not flushed mid-burst");
    let snap = r.shared.snapshot.load_full();
    r.w.flush_counts(&snap);
    let after = r.counts(8080);
    let d: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    // 3 packets of 40 + 20 + 4 IP bytes in, none out.
    assert_eq!(d, [3, 0, 3 * 64, 0]);
    // A new snapshot without the server: its pending counts were flushed
    // and the next packet takes the full path.
    let (_, _, fast) = r.run_passes(&data, 2_003, |_| {});
    assert!(fast);
    r.publish(false);
    let (v, _, fast) = r.run(0, &data, 2_004);
    assert_eq!((v, fast), (Verdict::Drop, false));
    assert_eq!(
        r.counts(8080)[0],
        after[0] + 1,
        "counted before the rebuild"
    );
}

/// A server's reply to a client that has become one of the director's own
/// addresses (`snapshot::Own6`: a port's IPv6 address, a forwarded or
/// NAT64 VIP) is not the fast path's: it declines, and the full path
/// decides as it always did. A reply to any other client passes, byte
/// for byte.
#[test]
fn replies_to_the_directors_own_addresses_take_the_full_path() {
    let reply = |cport: u16, client: Ipv6Addr| {
        tcp6(
            (RS_MAC, PORT1_MAC),
            RS,
            8080,
            client,
            cport,
            64,
            "PA",
            b"world",
        )
    };
    let to_client = |cport: u16| {
        tcp6(
            (PORT0_MAC, CLIENT_MAC),
            VIP6,
            80,
            CLIENT,
            cport,
            63,
            "PA",
            b"world",
        )
    };
    let mut r = Rig::new();
    open_nat(&mut r, 40000, 2_000);
    let (v, out, fast) = r.run(1, &reply(40000, CLIENT), 2_010);
    assert_eq!((v, fast), (Verdict::Tx(0), true), "not an own address");
    assert_eq!(out, to_client(40000));
    checksum_ok(&out);

    // The client's address becomes the VIP of a NAT64 service: `forward6`
    // takes a packet to it as a client's to a VIP, so the fast path
    // declines. The full path finds the connection and forwards the reply
    // as before.
    let nat64 = format!(
        "{}\n[[service]]\nvip = \"{CLIENT}\"\nport = 80\nforward = \"fnat\"\n  \
         [[service.server]]\n  address = \"198.19.0.40\"\n  port = 8080\n",
        cfg(true)
    );
    // (Each time twice: the first reply after a new snapshot takes the
    // full path anyway, which remembers the client's next hop for it.)
    r.publish_text(&nat64);
    for now in [2_020, 2_021] {
        let (v, out, fast) = r.run(1, &reply(40000, CLIENT), now);
        assert_eq!((v, fast), (Verdict::Tx(0), false), "a NAT64 VIP");
        assert_eq!(out, to_client(40000));
    }
    // The same for an IPv6 service's VIP.
    let vip6 = format!(
        "{}\n[[service]]\nvip = \"{CLIENT}\"\nport = 443\n  \
         [[service.server]]\n  address = \"2001:db8:0:2::12\"\n",
        cfg(true)
    );
    r.publish_text(&vip6);
    for now in [2_030, 2_031] {
        let (v, out, fast) = r.run(1, &reply(40000, CLIENT), now);
        assert_eq!((v, fast), (Verdict::Tx(0), false), "a forwarded VIP");
        assert_eq!(out, to_client(40000));
    }
    // Back to a plain client: fast again once the next hop is known.
    r.publish(true);
    for (now, want_fast) in [(2_040, false), (2_041, true)] {
        let (v, out, fast) = r.run(1, &reply(40000, CLIENT), now);
        assert_eq!((v, fast), (Verdict::Tx(0), want_fast));
        assert_eq!(out, to_client(40000));
    }

    // The client's address becomes the client port's own: the full path
    // leaves such a packet to the kernel (none on the servers' port:
    // dropped as not the data plane's), and so must the fast path.
    r.ports[0].addr6 = Some(CLIENT);
    r.publish(true);
    let not_ours = r.drops(Drop::NotIpv4);
    let (v, _, fast) = r.run(1, &reply(40000, CLIENT), 2_050);
    assert_eq!((v, fast), (Verdict::Drop, false), "a port's address");
    assert_eq!(r.drops(Drop::NotIpv4), not_ours + 1);
}

//! The director's per-packet path without DPDK: `Pipeline::process` on
//! frames in a plain buffer, in a loop, on one thread. It isolates what the
//! data path costs per packet (parse, connection lookup, rewrite, counters)
//! from memif and the generator, and is what `perf record` and
//! `valgrind --tool=callgrind` look at (`perf/profile.sh`).
//!
//! `--batch` chooses how a burst of 32 goes through, so that the gain of a
//! change to the worker loop is measured before it is made:
//! * `none`: `Pipeline::process` frame by frame (the loop before a3f624a);
//! * `bucket`: `Pipeline::inspect_into` for the whole burst (parse, hash,
//!   prefetch the bucket), then `process_inspected` for each;
//! * `conn` (default, what `worker.rs` does): as `bucket`, plus a second
//!   pass that reads each (now cached) bucket and prefetches the connection
//!   record it points at (`Pipeline::prefetch_conns`);
//! * `dry`: build the frames and do nothing else (the harness's own cost).
//!
//! `--burst` (frames per burst of the data phase) and `--order` (`seq`:
//! the flows in the order they were opened, as the generator sends them,
//! so consecutive packets read consecutive records of the slab; `scatter`:
//! a fixed permutation, each packet's record anywhere) show what a change
//! does at the short bursts of a worker at a modest rate and without the
//! slab locality the benchmark's order gives.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use engine::config;
use engine::conn::ConnTable;
use engine::dataplane::neigh::{NeighTable, NeighTable6};
use engine::dataplane::pipeline::{Frame, Inspected, Pipeline, Verdict};
use engine::dataplane::region::TableMemory;
use engine::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use engine::dataplane::{Shared, NEIGH6_ENTRIES, NEIGH_ENTRIES};

use crate::order::Order;
use engine::packet::ethernet::MacAddr;
use serde_json::json;

use crate::frames::{ack_word, Kind, Templates};

const PORT0_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 2]);
const PORT1_MAC: MacAddr = MacAddr([2, 0, 0, 0, 2, 2]);
const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
const BURST: usize = 32;
const HEADROOM: usize = 128;

#[derive(Debug, Clone, clap::Args)]
pub struct PipeOpts {
    /// Forwarding method of the service: nat | dr | tun, or nat6 (NAT of
    /// an IPv6 VIP to IPv6 servers, IPv6 frames).
    #[arg(long, default_value = "nat")]
    pub mode: String,
    /// Established flows.
    #[arg(long, default_value_t = 1_000_000)]
    pub flows: u32,
    /// Data packets to time (round robin over the flows).
    #[arg(long, default_value_t = 20_000_000)]
    pub packets: u64,
    /// New connections to time (SYN, ACK, data, FIN each).
    #[arg(long, default_value_t = 2_000_000)]
    pub conns: u64,
    /// Packet size (Ethernet frame with FCS).
    #[arg(long, default_value_t = 64)]
    pub size: u16,
    /// Scheduler of the service.
    #[arg(long, default_value = "rr")]
    pub scheduler: String,
    /// How a burst is processed: none | bucket | conn | dry (see the module doc).
    #[arg(long, default_value = "conn")]
    pub batch: String,
    /// Connection-table capacity (default: 2 x flows + conns).
    #[arg(long)]
    pub capacity: Option<usize>,
    /// Hash seed of every table the run builds (connection, IPv6 address
    /// and neighbour tables): fixed, so callgrind counts repeat exactly;
    /// another value shows a figure's spread over seeds.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// Frames per burst of the data phase, 1 to 32: a worker at a modest
    /// offered rate sees bursts of 1-4 frames, where the burst's passes
    /// have no other frames to hide a miss under.
    #[arg(long, default_value_t = BURST)]
    pub burst: usize,
    /// Order of the data phase's packets over the flows: `seq` (flow 0, 1,
    /// 2, ..., the order they were opened in, as the generator sends) or
    /// `scatter` (a fixed permutation of the flows: consecutive packets
    /// belong to flows opened far apart, as real traffic does).
    #[arg(long, value_enum, default_value_t = Order::Seq)]
    pub order: Order,
    /// How the connection phase's segments meet in bursts: `together`
    /// (each connection's SYN, ACK, data and FIN in one burst, 8
    /// connections a burst) or `apart` (32 connections' SYNs in one burst,
    /// then their ACKs, their data, their FINs: as real traffic has them,
    /// an RTT apart, so that no path can profit from the segment before
    /// it being in the same burst).
    #[arg(long, value_enum, default_value_t = Segments::Together)]
    pub segments: Segments,
}

/// See [`PipeOpts::segments`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Segments {
    Together,
    Apart,
}

/// A frame in a fixed buffer with mbuf-like headroom.
struct BufFrame {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

// Inlined, as the worker's `Mbuf` accessors are.
impl Frame for BufFrame {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }
    fn prepend(&mut self, len: usize) -> bool {
        if len > self.start {
            return false;
        }
        self.start -= len;
        true
    }
    fn trim_front(&mut self, len: usize) -> bool {
        if self.start + len > self.end {
            return false;
        }
        self.start += len;
        true
    }
    fn truncate(&mut self, len: usize) {
        if self.start + len < self.end {
            self.end = self.start + len;
        }
    }
    fn resize(&mut self, len: usize) -> bool {
        if self.start + len > self.buf.len() {
            return false;
        }
        self.end = self.start + len;
        true
    }
}

/// The configuration of `--mode nat6`: the IPv4 one's ports with an IPv6
/// address each, and one IPv6 NAT service (the bench's `director6.toml.in`).
pub fn config_text6(scheduler: &str, max_conns: usize) -> String {
    let mut s = format!(
        r#"
[dpdk]
cores = "0-1"

[[port]]
name = "client"
device = "net_memif0"
address = ["198.18.0.2/16", "2001:db8:1::2/64"]

[[port]]
name = "servers"
device = "net_memif1"
address = ["198.19.0.1/24", "2001:db8:2::1/64"]
mtu = 1600

[[service]]
vip = "2001:db8:1::100"
port = 80
protocol = "tcp"
scheduler = "{scheduler}"
forward = "nat"
"#
    );
    for k in 0..4 {
        s.push_str(&format!(
            "  [[service.server]]\n  address = \"{}\"\n  port = 8080\n",
            server6(k)
        ));
    }
    s.push_str(&format!("\n[timeouts]\nmax_connections = {max_conns}\n"));
    s
}

/// IPv6 real server `k` of `--mode nat6`.
fn server6(k: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x11 + u16::from(k))
}

pub fn config_text(mode: &str, scheduler: &str, max_conns: usize) -> String {
    let mut s = format!(
        r#"
[dpdk]
cores = "0-1"

[[port]]
name = "client"
device = "net_memif0"
address = "198.18.0.2/16"

[[port]]
name = "servers"
device = "net_memif1"
address = "198.19.0.1/24"
mtu = 1600

[[service]]
vip = "198.18.0.100"
port = 80
protocol = "tcp"
scheduler = "{scheduler}"
forward = "{mode}"
"#
    );
    for k in 0..4 {
        s.push_str(&format!(
            "  [[service.server]]\n  address = \"198.19.0.{}\"\n  port = 8080\n",
            11 + k
        ));
    }
    s.push_str(&format!("\n[timeouts]\nmax_connections = {max_conns}\n"));
    s
}

struct Rig {
    snap: Snapshot,
    p: Pipeline,
    tpl: Templates,
    frames: Vec<BufFrame>,
    /// The first pass's results, kept across bursts as the worker does.
    insp: [Inspected; BURST],
    now_ms: u64,
    batch: Batch,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Batch {
    None,
    Bucket,
    Conn,
    /// Build the frames only (the harness's own cost, for subtraction).
    Dry,
}

impl Rig {
    /// Runs a burst of segments through the pipeline; returns how many were
    /// forwarded.
    fn burst(&mut self, segs: &[(Kind, u32, u16, u32)]) -> usize {
        let len = self.tpl.len;
        for (f, &(kind, src, sport, seq)) in self.frames.iter_mut().zip(segs) {
            f.start = HEADROOM;
            f.end = HEADROOM + len;
            self.tpl.write(
                &mut f.buf[HEADROOM..],
                kind,
                src,
                sport,
                seq,
                ack_word(1, kind),
                0,
            );
        }
        let n = segs.len();
        let mut ok = 0;
        if self.batch == Batch::Dry {
            for f in self.frames.iter().take(n) {
                ok += usize::from(std::hint::black_box(f.data()[0]) == 2);
            }
            return ok;
        }
        if self.batch == Batch::None {
            for f in self.frames.iter_mut().take(n) {
                if let Verdict::Tx(_) = self.p.process(&self.snap, f, 0, self.now_ms, false) {
                    ok += 1;
                }
            }
            return ok;
        }
        let insp = &mut self.insp;
        for (i, f) in self.frames.iter().take(n).enumerate() {
            self.p.inspect_into(f.data(), &mut insp[i]);
        }
        if self.batch == Batch::Conn {
            self.p.prefetch_conns(&mut insp[..n]);
        }
        for (f, x) in self.frames.iter_mut().take(n).zip(insp.iter()) {
            if let Verdict::Tx(_) =
                self.p
                    .process_inspected(&self.snap, f, x, 0, self.now_ms, false)
            {
                ok += 1;
            }
        }
        // The worker's call: the per-server counts are flushed once per
        // millisecond (a thousand loops at a modest rate), and the rig's
        // clock stands still, so a burst here pays the compare only, as
        // nearly every loop does.
        self.p.end_burst(&self.snap, self.now_ms);
        ok
    }
}

/// Established data, round robin over the flows; returns the frames
/// forwarded. Not inlined: `perf/profile.sh` reads this function's inclusive
/// callgrind cost, so set-up and the opening of the flows stay out of the
/// per-packet figure whatever the packet count.
#[inline(never)]
fn data_phase(rig: &mut Rig, flows: u32, packets: u64, burst: usize, order: Order) -> u64 {
    let mut segs = Vec::with_capacity(BURST);
    let mut fwd = 0u64;
    let mut f = 0u32;
    let mut left = packets;
    while left > 0 {
        let n = (left as usize).min(burst);
        segs.clear();
        for _ in 0..n {
            let g = order.flow(f, flows);
            let (src, sport) = flow(g);
            segs.push((Kind::Data, src, sport, f));
            f += 1;
            if f == flows {
                f = 0;
            }
        }
        fwd += rig.burst(&segs) as u64;
        left -= n as u64;
    }
    fwd
}

/// New connections, SYN, ACK, data, FIN each; returns the segments
/// forwarded. Not inlined, for the same reason as [`data_phase`].
#[inline(never)]
fn conn_phase(rig: &mut Rig, conns: u64, segments: Segments) -> u64 {
    let mut segs = Vec::with_capacity(BURST);
    let mut cfwd = 0u64;
    let mut k = 0u64;
    while k < conns {
        match segments {
            Segments::Together => {
                segs.clear();
                while segs.len() < BURST && k < conns {
                    let (src, sport) = conn(k);
                    for kind in Kind::ALL {
                        segs.push((kind, src, sport, k as u32));
                    }
                    k += 1;
                }
                cfwd += rig.burst(&segs) as u64;
            }
            Segments::Apart => {
                let end = (k + BURST as u64).min(conns);
                for kind in Kind::ALL {
                    segs.clear();
                    for j in k..end {
                        let (src, sport) = conn(j);
                        segs.push((kind, src, sport, j as u32));
                    }
                    cfwd += rig.burst(&segs) as u64;
                }
                k = end;
            }
        }
    }
    cfwd
}

fn flow(f: u32) -> (u32, u16) {
    (0xc612_0100 + f % 16384, (1024 + f / 16384) as u16)
}

fn conn(k: u64) -> (u32, u16) {
    (
        0xc612_8000 + (k % 16384) as u32,
        (1024 + (k / 16384) % 64000) as u16,
    )
}

/// The hash seed of every table `run` builds (see there).
const PROFILE_SEED: u64 = 0x5eed;

pub fn run(o: PipeOpts) -> Result<()> {
    if !matches!(o.mode.as_str(), "nat" | "dr" | "tun" | "nat6") {
        bail!("--mode nat | dr | tun | nat6");
    }
    let v6 = o.mode == "nat6";
    let cap = o
        .capacity
        .unwrap_or(o.flows as usize * 2 + o.conns as usize + 1024);
    let text = if v6 {
        config_text6(&o.scheduler, cap)
    } else {
        config_text(&o.mode, &o.scheduler, cap)
    };
    let cfg = config::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ports = vec![
        PortInfo::new(&cfg.ports[0], PORT0_MAC),
        PortInfo::new(&cfg.ports[1], PORT1_MAC),
    ];
    // Fixed hash seeds everywhere a table hashes (the neighbour tables
    // here, the connection tables below): the same slots and probe runs
    // every time, so callgrind counts the same instructions run after run
    // (`perf/profile.sh --check`), and a change's effect is not hidden in
    // the seeds' spread.
    let mut shared = Shared::new(1);
    shared.neigh = NeighTable::with_seed(NEIGH_ENTRIES, PROFILE_SEED);
    shared.neigh6 = NeighTable6::with_seed(NEIGH6_ENTRIES, PROFILE_SEED);
    let shared = Arc::new(shared);
    let snap = Snapshot::build(&cfg, &ports, &shared.registry, 1, &AllUp).context("snapshot")?;
    let now_ms = 10_000;
    for k in 0..4u8 {
        shared.neigh.learn(
            Ipv4Addr::new(198, 19, 0, 11 + k),
            crate::gen::server_mac(k as usize),
            now_ms,
        );
        shared
            .neigh6
            .learn(server6(k), crate::gen::server_mac(k as usize), now_ms);
    }
    let mut p = Pipeline::new(0, 1, 1, &shared);
    p.conns = ConnTable::with_capacity_in(cap, TableMemory::Thp, Some(PROFILE_SEED));
    // nat6: the IPv6 tables (allocated with the IPv4 table's capacity),
    // seeded as the others. The IPv4 modes run as before.
    if v6 {
        p.on_snapshot(&snap);
        p.seed_v6_tables(PROFILE_SEED);
    }
    let tpl = if v6 {
        Templates::new6(
            o.size as usize,
            CLIENT_MAC,
            PORT0_MAC,
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100),
            80,
        )
    } else {
        Templates::new(
            o.size as usize,
            CLIENT_MAC,
            PORT0_MAC,
            Ipv4Addr::new(198, 18, 0, 100),
            80,
        )
    };
    let frames = (0..BURST)
        .map(|_| BufFrame {
            buf: vec![0u8; HEADROOM + 2048].into_boxed_slice(),
            start: HEADROOM,
            end: HEADROOM,
        })
        .collect();
    if !(1..=BURST).contains(&o.burst) {
        bail!("--burst 1 to {BURST}");
    }
    o.order.check(o.flows)?;
    let batch = match o.batch.as_str() {
        "none" => Batch::None,
        "bucket" => Batch::Bucket,
        "conn" => Batch::Conn,
        "dry" => Batch::Dry,
        b => bail!("--batch none | bucket | conn | dry, not `{b}`"),
    };
    let mut rig = Rig {
        snap,
        p,
        tpl,
        frames,
        insp: [Inspected::EMPTY; BURST],
        now_ms,
        batch,
    };

    // Open every flow (SYN, then ACK).
    let t = Instant::now();
    let mut segs = Vec::with_capacity(BURST);
    let mut opened = 0;
    for f in 0..o.flows {
        let (src, sport) = flow(f);
        segs.push((Kind::Syn, src, sport, f));
        segs.push((Kind::Ack, src, sport, f));
        if segs.len() == BURST || f + 1 == o.flows {
            opened += rig.burst(&segs);
            segs.clear();
        }
    }
    let open_s = t.elapsed().as_secs_f64();

    // Established data, round robin.
    let t = Instant::now();
    let fwd = data_phase(&mut rig, o.flows, o.packets, o.burst, o.order);
    let data_s = t.elapsed().as_secs_f64();

    // The cost of building the frames alone (subtracted below).
    let t = Instant::now();
    let mut sink = 0u64;
    for i in 0..o.packets.min(5_000_000) {
        let fr = &mut rig.frames[(i % BURST as u64) as usize];
        let (src, sport) = flow((i % u64::from(o.flows)) as u32);
        rig.tpl.write(
            &mut fr.buf[HEADROOM..],
            Kind::Data,
            src,
            sport,
            i as u32,
            0,
            i,
        );
        sink = sink.wrapping_add(u64::from(fr.buf[HEADROOM + 50]));
    }
    let build_ns = t.elapsed().as_nanos() as f64 / o.packets.clamp(1, 5_000_000) as f64;
    std::hint::black_box(sink);

    // New connections: SYN, ACK, data, FIN.
    let t = Instant::now();
    let cfwd = conn_phase(&mut rig, o.conns, o.segments);
    let conn_s = t.elapsed().as_secs_f64();

    let data_ns = data_s * 1e9 / o.packets.max(1) as f64;
    let v = json!({
        "mode": o.mode,
        "flows": o.flows,
        "size": o.size,
        "batch": o.batch,
        "burst": o.burst,
        "order": o.order,
        "segments": o.segments,
        "capacity": cap,
        "open_s": open_s,
        "opened_segments_forwarded": opened,
        "data_packets": o.packets,
        "data_forwarded": fwd,
        "data_ns_per_pkt": data_ns,
        "frame_build_ns": build_ns,
        "data_ns_per_pkt_net": data_ns - build_ns,
        "data_mpps_one_core": 1e3 / (data_ns - build_ns).max(0.001),
        "conns": o.conns,
        "conn_segments_forwarded": cfwd,
        "ns_per_conn": conn_s * 1e9 / o.conns.max(1) as f64,
        "conns_per_s_one_core": o.conns as f64 / conn_s.max(1e-9),
        "table_len": rig.p.conns.len(),
    });
    eprintln!(
        "rvs-perf pipeline {} flows={} batch={}: data {:.1} ns/pkt ({:.1} net of {:.1} ns frame build, {:.2} Mpps/core), new conn {:.0} ns ({:.2} M conn/s), forwarded {}/{} data, {}/{} conn segments",
        o.mode,
        o.flows,
        o.batch,
        data_ns,
        data_ns - build_ns,
        build_ns,
        1e3 / (data_ns - build_ns).max(0.001),
        conn_s * 1e9 / o.conns.max(1) as f64,
        o.conns as f64 / conn_s.max(1e-9) / 1e6,
        fwd,
        o.packets,
        cfwd,
        o.conns * 4,
    );
    println!("rvs-perf-pipeline {}", serde_json::to_string(&v)?);
    Ok(())
}

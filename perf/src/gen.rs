//! The packet generator: a DPDK process of its own on one core, with two
//! `net_memif` ports facing the device under test (DUT):
//!
//! ```text
//!            client side                       server side
//!  rvs-perf [memif c.sock] ---> DUT (rvs | testpmd) ---> [memif s.sock] rvs-perf
//!  198.18.x.y:p -> VIP:80        NAT / DR / TUN / io      real servers 198.19.0.1N
//! ```
//!
//! It plays the clients on one link and the real servers on the other: it
//! answers the director's ARP requests (each real server gets its own MAC,
//! so DR and TUN show which server a flow reached), learns the director's
//! MAC by ARP for the VIP, sends TCP segments with a TSC stamp in the
//! payload, and receives what the DUT forwards: counts it, takes its
//! latency, and checks a sample of frames byte by byte (`frames::check`).
//!
//! One run goes through phases against one DUT instance: `probe` (wait
//! until the DUT forwards to every server), `open` (SYN + ACK for every
//! flow, so established-flow data finds its connection), `max` (data over
//! all flows as fast as the DUT takes them), `lat` (data at a fixed
//! fraction of the `max` rate, for latency), `cps` (new connections: SYN,
//! ACK, data, FIN each, as fast as possible). It prints one JSON document.
//!
//! memif is lossless back-pressure: a full ring makes `tx_burst` take fewer
//! frames; the generator keeps what was not taken and tries again, so
//! "offered" is what the DUT (or the ring) accepted and loss is what the
//! DUT took but never delivered.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dpdk_ffi::{rdtsc, rte_mbuf};
use engine::conn::rss;
use engine::dataplane::eal;
use engine::dataplane::mbuf::Pool;
use engine::dataplane::port::{self, Port};
use engine::packet::arp::{self, ArpPacket};
use engine::packet::ethernet::{EtherType, EthernetFrame, MacAddr};
use engine::packet::icmpv6::{self, msg_type, NaFlags, NDP_FRAME_LEN};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::frames::{self, ack_word, read_stamp, Bad, CheckCtx, Expect, Kind, Templates};
use crate::frames6;

const BURST: usize = 32;
const MAX_QUEUES: usize = 8;
/// Client addresses of established flows: 198.18.1.0 + (flow % CLIENT_IPS).
const CLIENT_BASE: u32 = 0xc612_0100;
const CLIENT_IPS: u32 = 16384;
/// Client addresses of new connections (cps phase).
const NEW_BASE: u32 = 0xc612_8000;
/// Client addresses of probe flows.
const PROBE_BASE: u32 = 0xc612_c800;
const FIRST_PORT: u32 = 1024;
/// At the max rate, the latency of one frame in this many goes into the
/// histogram (every frame is still counted and sampled for checks).
const LAT_SAMPLE_FAST: u32 = 8;
/// Late frames remembered per phase for the stall analysis.
const MAX_STALL_SAMPLES: usize = 1 << 20;
const PORTS: u32 = 64000;
/// The generator's own address on the client side (source of its ARP).
const GEN_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Its IPv6 twin (source of its neighbour solicitations for the VIP).
const GEN_CLIENT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);

#[derive(Debug, Clone, clap::Args)]
pub struct GenOpts {
    /// memif vdev of the client-side link (the generator is the memif server).
    #[arg(
        long,
        default_value = "net_memif0,role=server,socket=/run/rvs-perf/c.sock,id=0,mac=02:00:00:00:01:01"
    )]
    pub client_dev: String,
    /// memif vdev of the server-side link.
    #[arg(
        long,
        default_value = "net_memif1,role=server,socket=/run/rvs-perf/s.sock,id=0,mac=02:00:00:00:02:01"
    )]
    pub server_dev: String,
    /// EAL --lcores of the generator (one lcore: it does everything on it).
    #[arg(long, default_value = "0@0")]
    pub lcores: String,
    /// EAL memory (MB).
    #[arg(long, default_value_t = 256)]
    pub memory_mb: u32,
    /// Use hugepages (default: --no-huge).
    #[arg(long)]
    pub hugepages: bool,
    /// Queue pairs per link: one per DUT worker (memif has no RSS, so the
    /// generator puts each flow on a queue as the director's RSS set-up
    /// would: DPDK's Toeplitz with its key, then its RETA).
    #[arg(long, default_value_t = 1)]
    pub queues: u16,
    /// What the DUT does to frames (checked on a sample).
    #[arg(long, value_enum, default_value = "nat")]
    pub expect: Expect,
    /// The DUT's client-side MAC; default: ARP for the VIP (testpmd does not
    /// answer ARP, so the bench passes it).
    #[arg(long)]
    pub dut_mac: Option<String>,
    #[arg(long, default_value = "198.18.0.100")]
    pub vip: Ipv4Addr,
    #[arg(long, default_value_t = 80)]
    pub vport: u16,
    /// Real servers (address:port) in configuration order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "198.19.0.11:8080,198.19.0.12:8080,198.19.0.13:8080,198.19.0.14:8080"
    )]
    pub servers: Vec<SocketAddrV4>,
    /// The director's server-side address (source of TUN's outer header).
    #[arg(long, default_value = "198.19.0.1")]
    pub director_addr: Ipv4Addr,
    /// The IPv6 VIP (`--expect nat6`; `perf/configs/director6.toml.in`).
    #[arg(long, default_value = "2001:db8:1::100")]
    pub vip6: Ipv6Addr,
    /// IPv6 real servers ([address]:port) in configuration order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "[2001:db8:2::11]:8080,[2001:db8:2::12]:8080,[2001:db8:2::13]:8080,[2001:db8:2::14]:8080"
    )]
    pub servers6: Vec<SocketAddrV6>,
    /// The director's server-side IPv6 address (source of its solicitations).
    #[arg(long, default_value = "2001:db8:2::1")]
    pub director_addr6: Ipv6Addr,
    /// Established flows (1 .. 10 million).
    #[arg(long, default_value_t = 1000)]
    pub flows: u32,
    /// Packet size: Ethernet frame with FCS, 64 .. 1518.
    #[arg(long, default_value_t = 64)]
    pub size: u16,
    /// Phases to run, in order: probe, open, max, lat, cps, soak, cost.
    #[arg(long, value_delimiter = ',', default_value = "probe,open,max,lat,cps")]
    pub phases: Vec<String>,
    /// Seconds of the max-rate phase.
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,
    /// Fixed rate of the max phase in packets/s instead of the maximum.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of the latency phase.
    #[arg(long, default_value_t = 2.0)]
    pub lat_duration: f64,
    /// Rate of the latency phase as a fraction of the max phase's rate.
    #[arg(long, default_value_t = 0.5)]
    pub lat_fraction: f64,
    /// Or an absolute rate (packets/s) for the latency phase.
    #[arg(long)]
    pub lat_rate: Option<f64>,
    /// Also measure latency at these rates (packets/s), after `lat`.
    #[arg(long, value_delimiter = ',')]
    pub lat_rates: Vec<f64>,
    /// Rate (packets/s) of the cost phase: established-flow data at a rate
    /// every DUT takes, logged between `cost-start` and `cost-done` so that
    /// `perf/bench.sh` reads the DUT's cycle counters around it.
    #[arg(long)]
    pub cost_rate: Option<f64>,
    /// Seconds of the cost phase.
    #[arg(long, default_value_t = 4.0)]
    pub cost_duration: f64,
    /// Seconds of the new-connection phase.
    #[arg(long, default_value_t = 2.0)]
    pub cps_duration: f64,
    /// Rate of the new-connection phase in connections/s (default: maximum).
    #[arg(long)]
    pub cps_rate: Option<f64>,
    /// Seconds of the soak phase: new connections at a fixed rate for a
    /// long time (`perf/soak.sh` watches the director meanwhile).
    #[arg(long, default_value_t = 600.0)]
    pub soak_duration: f64,
    /// Rate of the soak phase as a fraction of the `cps` phase's rate.
    #[arg(long, default_value_t = 0.5)]
    pub soak_fraction: f64,
    /// Or an absolute rate (connections/s) for the soak phase.
    #[arg(long)]
    pub soak_rate: Option<f64>,
    /// Check one received frame in this many in full.
    #[arg(long, default_value_t = 16)]
    pub sample: u32,
    /// Latency (us) above which a frame counts towards a "stall" event;
    /// the result lists the events (when, how long, how many frames), which
    /// tells periodic pauses of the DUT (or of the machine) from queueing.
    #[arg(long, default_value_t = 50.0)]
    pub stall_us: f64,
    /// Give up on the DUT after this many seconds of link/ARP/probe.
    #[arg(long, default_value_t = 30.0)]
    pub ready_timeout: f64,
    /// Extra EAL arguments (e.g. `--log-level=pmd.net.memif:debug`).
    #[arg(long, allow_hyphen_values = true)]
    pub eal: Vec<String>,
    /// Free text copied into the result (scenario name).
    #[arg(long, default_value = "")]
    pub label: String,
    /// Also write the JSON result here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

fn parse_mac(s: &str) -> Result<MacAddr> {
    let b: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad MAC `{s}`"))?;
    if b.len() != 6 {
        bail!("bad MAC `{s}`");
    }
    Ok(MacAddr::from_bytes(&b))
}

/// The MAC the generator gives real server `k` in its ARP replies.
pub fn server_mac(k: usize) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0x03, k as u8])
}

/// Which packets a phase sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Space {
    Probe,
    Flows,
    NewConns,
}

/// One segment to send.
#[derive(Clone, Copy)]
struct Pkt {
    kind: Kind,
    src: u32,
    sport: u16,
    seq: u32,
}

/// The sequence of segments of a phase.
enum Source {
    /// SYNs of probe flows `round * n .. round * n + n`.
    Probe { round: u32, n: u32, i: u32 },
    /// SYN + ACK of each flow in `list` (or of all flows when `list` is
    /// empty and `all` is set).
    Open {
        list: Vec<u32>,
        all: u32,
        i: u32,
        second: bool,
    },
    /// Data over all flows, round robin.
    Data { flows: u32, i: u32 },
    /// New connections: SYN, ACK, data, FIN each.
    NewConns { k: u64, step: u8 },
}

impl Source {
    #[inline(always)]
    fn next(&mut self) -> Option<Pkt> {
        match self {
            Source::Probe { round, n, i } => {
                if *i >= *n {
                    return None;
                }
                let j = *i;
                *i += 1;
                Some(Pkt {
                    kind: Kind::Syn,
                    src: PROBE_BASE + j,
                    sport: (FIRST_PORT + *round % PORTS) as u16,
                    seq: j,
                })
            }
            Source::Open {
                list,
                all,
                i,
                second,
            } => {
                let n = if list.is_empty() {
                    *all
                } else {
                    list.len() as u32
                };
                if *i >= n {
                    return None;
                }
                let f = if list.is_empty() {
                    *i
                } else {
                    list[*i as usize]
                };
                let kind = if *second { Kind::Ack } else { Kind::Syn };
                if *second {
                    *i += 1;
                }
                *second = !*second;
                let (src, sport) = flow_addr(f);
                Some(Pkt {
                    kind,
                    src,
                    sport,
                    seq: f,
                })
            }
            Source::Data { flows, i } => {
                let f = *i;
                *i += 1;
                if *i == *flows {
                    *i = 0;
                }
                let (src, sport) = flow_addr(f);
                Some(Pkt {
                    kind: Kind::Data,
                    src,
                    sport,
                    seq: f,
                })
            }
            Source::NewConns { k, step } => {
                let (src, sport) = newconn_addr(*k);
                let p = Pkt {
                    kind: Kind::ALL[*step as usize],
                    src,
                    sport,
                    seq: *k as u32,
                };
                *step += 1;
                if *step == 4 {
                    *step = 0;
                    *k += 1;
                }
                Some(p)
            }
        }
    }
}

/// Client address and port of established flow `f`.
#[inline(always)]
fn flow_addr(f: u32) -> (u32, u16) {
    (
        CLIENT_BASE + f % CLIENT_IPS,
        (FIRST_PORT + f / CLIENT_IPS) as u16,
    )
}

/// Client address and port of new connection `k`.
#[inline(always)]
fn newconn_addr(k: u64) -> (u32, u16) {
    let ip = NEW_BASE + (k % CLIENT_IPS as u64) as u32;
    let port = FIRST_PORT + ((k / CLIENT_IPS as u64) % PORTS as u64) as u32;
    (ip, port as u16)
}

/// The counters of one phase.
#[derive(Default, Clone)]
struct PhaseStats {
    secs: f64,
    tx: u64,
    /// Received inside the measuring window.
    rx: u64,
    /// Received during the drain after it.
    late: u64,
    rx_bytes: u64,
    by_kind: [u64; 4],
    /// Ours but from another phase.
    stale: u64,
    /// Not ours (ARP excluded).
    foreign: u64,
    arp: u64,
    /// Send attempts, and those that left frames the DUT's ring could not
    /// take (back-pressure).
    iters: u64,
    blocked: u64,
    checked: u64,
    bad: [u64; Bad::ALL.len()],
    /// First few failures, for the report.
    bad_examples: Vec<String>,
}

struct Gen {
    o: GenOpts,
    hz: u64,
    ns_per_cycle: f64,
    pool: Pool,
    client: Port,
    server: Port,
    queues: usize,
    tpl: Templates,
    ck: CheckCtx,
    flows: u32,
    sticky: Vec<u8>,
    opened: Vec<u64>,
    phase: u8,
    space: Space,
    in_window: bool,
    st: PhaseStats,
    hist: Histogram<u64>,
    sample_ctr: u32,
    /// Take the latency of one received frame in this many (1 in the
    /// latency phase; a sample at the max rate, where it is queueing).
    lat_every: u32,
    lat_ctr: u32,
    poll_ctr: u32,
    stall_ns: u64,
    /// (receive TSC, latency ns) of frames over `stall_ns`, this phase.
    stalls: Vec<(u64, u64)>,
    phase_t0: u64,
    pending: Vec<Vec<*mut rte_mbuf>>,
    frees: Vec<*mut rte_mbuf>,
}

pub fn run(o: GenOpts) -> Result<()> {
    if !(64..=1518).contains(&o.size) {
        bail!("--size must be 64 .. 1518 (Ethernet frame with FCS)");
    }
    if o.flows == 0 || o.flows > 16_000_000 {
        bail!("--flows must be 1 .. 16 million");
    }
    if o.queues == 0 || o.queues as usize > MAX_QUEUES {
        bail!("--queues must be 1 .. {MAX_QUEUES}");
    }
    if o.servers.is_empty() || o.servers.len() > 250 {
        bail!("--servers: 1 .. 250 real servers");
    }
    if o.servers6.is_empty() || o.servers6.len() > 250 {
        bail!("--servers6: 1 .. 250 real servers");
    }
    let prefix = format!("rvsperf{}", std::process::id());
    let mut args = vec![
        "rvs-perf".to_string(),
        "--lcores".into(),
        o.lcores.clone(),
        "-m".into(),
        o.memory_mb.to_string(),
        format!("--file-prefix={prefix}"),
        "--no-pci".into(),
        "--vdev".into(),
        o.client_dev.clone(),
        "--vdev".into(),
        o.server_dev.clone(),
        "--log-level=lib.eal:warning".into(),
    ];
    // net_memif needs the multi-process channel, so neither --in-memory nor
    // --no-shconf; the per-process prefix keeps runs apart.
    if !o.hugepages {
        args.push("--no-huge".into());
    }
    args.extend(o.eal.iter().cloned());
    eal::init(&args)?;
    let res = run_inner(o);
    // SAFETY: every port was stopped by run_inner (or never started); no
    // lcore is running.
    unsafe { dpdk_ffi::rte_eal_cleanup() };
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    res
}

fn run_inner(o: GenOpts) -> Result<()> {
    let pool = port::create_pool(16383, port::data_room(1500))?;
    let client = port::setup(&o.client_dev, o.queues, 1500, pool).context("client-side port")?;
    let server = port::setup(&o.server_dev, o.queues, 1500, pool).context("server-side port")?;
    let hz = eal::tsc_hz();
    let servers: Vec<(Ipv4Addr, u16)> = o.servers.iter().map(|s| (*s.ip(), s.port())).collect();
    let servers6: Vec<(Ipv6Addr, u16)> = o.servers6.iter().map(|s| (*s.ip(), s.port())).collect();
    let n_servers = if o.expect.ipv6() {
        servers6.len()
    } else {
        servers.len()
    };
    let dut_mac = match &o.dut_mac {
        Some(s) => parse_mac(s)?,
        None => MacAddr::BROADCAST,
    };
    let ck = CheckCtx {
        expect: o.expect,
        vip: o.vip,
        vport: o.vport,
        server_macs: (0..n_servers).map(server_mac).collect(),
        servers,
        servers6,
        gen_client_mac: client.mac,
        dut_client_mac: dut_mac,
        dut_server_mac: None,
        director_addr: o.director_addr,
    };
    let tpl = templates(&o, client.mac, dut_mac);
    eprintln!(
        "rvs-perf[{}]: memif ports ready (client {}, server {}), waiting for the DUT",
        o.label, client.mac, server.mac
    );
    let flows = o.flows;
    let mut g = Gen {
        hz,
        ns_per_cycle: 1e9 / hz as f64,
        pool,
        queues: o.queues as usize,
        tpl,
        ck,
        flows,
        sticky: vec![0; flows as usize],
        opened: vec![0; (flows as usize).div_ceil(64)],
        phase: 0,
        space: Space::Probe,
        in_window: false,
        st: PhaseStats::default(),
        hist: Histogram::new_with_bounds(1, 60_000_000_000, 3)?,
        sample_ctr: 0,
        lat_every: 1,
        lat_ctr: 0,
        poll_ctr: 0,
        stall_ns: (o.stall_us * 1000.0) as u64,
        stalls: Vec::new(),
        phase_t0: 0,
        pending: (0..o.queues).map(|_| Vec::with_capacity(BURST)).collect(),
        frees: Vec::with_capacity(4 * BURST),
        client,
        server,
        o,
    };
    let res = g.run_all();
    port::shutdown(&g.client);
    port::shutdown(&g.server);
    res
}

impl Gen {
    fn log(&self, msg: &str) {
        eprintln!("rvs-perf[{}]: {msg}", self.o.label);
    }

    fn run_all(&mut self) -> Result<()> {
        let t0 = Instant::now();
        let mut out = BTreeMap::<String, Value>::new();
        self.wait_links()?;
        if self.o.dut_mac.is_none() {
            self.resolve_dut_mac()?;
        }
        let phases = self.o.phases.clone();
        let mut max_rate = 0.0;
        let mut max_cps = 0.0;
        for (i, ph) in phases.iter().enumerate() {
            let phase = i as u8 + 1;
            match ph.as_str() {
                "probe" => {
                    let v = self.probe(phase)?;
                    out.insert("probe".into(), v);
                }
                "open" => {
                    let v = self.open(phase)?;
                    out.insert("open".into(), v);
                }
                "max" => {
                    let secs = self.o.duration;
                    let src = Source::Data {
                        flows: self.flows,
                        i: 0,
                    };
                    let st = self.run_phase(phase, Space::Flows, src, self.o.rate, secs, 0.1);
                    max_rate = st.rx as f64 / st.secs;
                    let v = self.phase_json(&st);
                    self.log(&format!("max: {v}"));
                    out.insert("max".into(), v);
                }
                "lat" => {
                    let rate = match self.o.lat_rate {
                        Some(r) => r,
                        None if max_rate > 0.0 => max_rate * self.o.lat_fraction,
                        None => bail!("phase `lat` needs `max` before it, or --lat-rate"),
                    };
                    let src = Source::Data {
                        flows: self.flows,
                        i: 0,
                    };
                    let st = self.run_phase(
                        phase,
                        Space::Flows,
                        src,
                        Some(rate),
                        self.o.lat_duration,
                        0.1,
                    );
                    let mut v = self.phase_json(&st);
                    v["rate_pps"] = json!(rate);
                    self.log(&format!("lat: {v}"));
                    out.insert("lat".into(), v);
                    // The same measurement at other offered rates (the bench
                    // gives the baseline the directors' rates, so latencies
                    // compare at equal load).
                    let mut at = serde_json::Map::new();
                    for (j, &r) in self.o.lat_rates.clone().iter().enumerate() {
                        let src = Source::Data {
                            flows: self.flows,
                            i: 0,
                        };
                        let st = self.run_phase(
                            100 + j as u8,
                            Space::Flows,
                            src,
                            Some(r),
                            self.o.lat_duration,
                            0.1,
                        );
                        let mut v = self.phase_json(&st);
                        v["rate_pps"] = json!(r);
                        self.log(&format!("lat@{r}: {v}"));
                        at.insert(format!("{}", r as u64), v);
                    }
                    if !at.is_empty() {
                        out.insert("lat_at".into(), Value::Object(at));
                    }
                }
                "cps" => {
                    let src = Source::NewConns { k: 0, step: 0 };
                    let rate = self.o.cps_rate.map(|r| r * 4.0);
                    let st =
                        self.run_phase(phase, Space::NewConns, src, rate, self.o.cps_duration, 0.1);
                    let mut v = self.phase_json(&st);
                    max_cps = st.by_kind[Kind::Syn as usize] as f64 / st.secs;
                    v["cps"] = json!(max_cps);
                    v["conns_sent"] = json!(st.tx / 4);
                    self.log(&format!("cps: {v}"));
                    out.insert("cps".into(), v);
                }
                "soak" => {
                    let rate = match self.o.soak_rate {
                        Some(r) => r,
                        None if max_cps > 0.0 => max_cps * self.o.soak_fraction,
                        None => bail!("phase `soak` needs `cps` before it, or --soak-rate"),
                    };
                    self.log(&format!(
                        "soak: {rate:.0} connections/s for {} s",
                        self.o.soak_duration
                    ));
                    // Far from the cps phase's connections, which may still
                    // be in the table.
                    let src = Source::NewConns {
                        k: 1 << 28,
                        step: 0,
                    };
                    let st = self.run_phase(
                        phase,
                        Space::NewConns,
                        src,
                        Some(rate * 4.0),
                        self.o.soak_duration,
                        0.5,
                    );
                    let mut v = self.phase_json(&st);
                    v["cps"] = json!(st.by_kind[Kind::Syn as usize] as f64 / st.secs);
                    v["rate_cps"] = json!(rate);
                    v["conns_sent"] = json!(st.tx / 4);
                    self.log(&format!("soak-done: {v}"));
                    out.insert("soak".into(), v);
                }
                "cost" => {
                    let Some(rate) = self.o.cost_rate else {
                        bail!("phase `cost` needs --cost-rate");
                    };
                    let src = Source::Data {
                        flows: self.flows,
                        i: 0,
                    };
                    // bench.sh reads the DUT's counters when it sees this
                    // line: give it half a second before the first frame.
                    self.log("cost-start");
                    std::thread::sleep(std::time::Duration::from_millis(500));
                    let st = self.run_phase(
                        phase,
                        Space::Flows,
                        src,
                        Some(rate),
                        self.o.cost_duration,
                        0.1,
                    );
                    let mut v = self.phase_json(&st);
                    v["rate_pps"] = json!(rate);
                    self.log(&format!("cost-done: {v}"));
                    out.insert("cost".into(), v);
                }
                other => bail!("unknown phase `{other}` (probe, open, max, lat, cps, soak, cost)"),
            }
        }
        let doc = json!({
            "label": self.o.label,
            "expect": self.o.expect,
            "flows": self.flows,
            "pkt_size": self.o.size,
            "frame_len": self.tpl.len,
            "queues": self.queues,
            "servers": self.ck.server_macs.len(),
            "tsc_hz": self.hz,
            "dut_client_mac": self.ck.dut_client_mac.to_string(),
            "dut_server_mac": self.ck.dut_server_mac.map(|m| m.to_string()),
            "elapsed_s": t0.elapsed().as_secs_f64(),
            "phases": out,
        });
        let text = serde_json::to_string(&doc)?;
        println!("rvs-perf-result {text}");
        if let Some(p) = &self.o.json {
            std::fs::write(p, format!("{text}\n"))
                .with_context(|| format!("writing {}", p.display()))?;
        }
        Ok(())
    }

    fn wait_links(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs_f64(self.o.ready_timeout);
        loop {
            let up = [self.client.id, self.server.id].iter().all(|&id| {
                let mut l = dpdk_ffi::rte_eth_link::default();
                // SAFETY: id is a started port; l is a valid out-pointer.
                unsafe { dpdk_ffi::rte_eth_link_get_nowait(id, &mut l) };
                l.link_status() == 1
            });
            if up {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "memif links not up after {} s: is the DUT running?",
                    self.o.ready_timeout
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// ARP for the VIP on the client side until the director answers.
    fn resolve_dut_mac(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs_f64(self.o.ready_timeout);
        while self.ck.dut_client_mac == MacAddr::BROADCAST {
            if Instant::now() > deadline {
                if self.o.expect.ipv6() {
                    bail!(
                        "no neighbour advertisement for the VIP {} from the DUT",
                        self.o.vip6
                    );
                }
                bail!("no ARP reply for the VIP {} from the DUT", self.o.vip);
            }
            if self.o.expect.ipv6() {
                self.send_solicitation(self.o.vip6);
            } else {
                self.send_arp_request(self.o.vip);
            }
            let until = rdtsc() + self.hz / 10;
            while rdtsc() < until && self.ck.dut_client_mac == MacAddr::BROADCAST {
                self.poll_rx();
            }
        }
        self.tpl = templates(&self.o, self.client.mac, self.ck.dut_client_mac);
        self.log(&format!("DUT client-side MAC {}", self.ck.dut_client_mac));
        Ok(())
    }

    fn send_arp_request(&mut self, ip: Ipv4Addr) {
        let Some(m) = self.alloc_frame(frames::MIN_FRAME) else {
            return;
        };
        // SAFETY: m is a fresh mbuf with MIN_FRAME bytes of data.
        let buf = unsafe { frame_mut(m) };
        buf.fill(0);
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.set_dst(MacAddr::BROADCAST);
        eth.set_src(self.client.mac);
        eth.set_ethertype(EtherType::ARP);
        let mut a = ArpPacket::new_unchecked(eth.payload_mut());
        a.set_ethernet_ipv4();
        a.set_op(arp::op::REQUEST);
        a.set_sha(self.client.mac);
        a.set_spa(GEN_CLIENT_ADDR);
        a.set_tha(MacAddr::ZERO);
        a.set_tpa(ip);
        self.tx_one(self.client.id, m);
    }

    /// A neighbour solicitation for `target` on the client side.
    fn send_solicitation(&mut self, target: Ipv6Addr) {
        let Some(m) = self.alloc_frame(NDP_FRAME_LEN) else {
            return;
        };
        // SAFETY: m is a fresh mbuf with NDP_FRAME_LEN bytes of data.
        let buf = unsafe { frame_mut(m) };
        if icmpv6::build_ns(buf, self.client.mac, GEN_CLIENT_ADDR6, target).is_none() {
            // SAFETY: not sent, still ours.
            unsafe { dpdk_ffi::rvs_pktmbuf_free(m) };
            return;
        }
        self.tx_one(self.client.id, m);
    }

    fn alloc_frame(&self, len: usize) -> Option<*mut rte_mbuf> {
        // SAFETY: the pool is valid for the process.
        let m = unsafe { dpdk_ffi::rvs_pktmbuf_alloc(self.pool.as_ptr()) };
        if m.is_null() {
            return None;
        }
        // SAFETY: m is a fresh single-segment mbuf we own.
        unsafe {
            (*m).data_len = len as u16;
            (*m).pkt_len = len as u32;
        }
        Some(m)
    }

    fn tx_one(&self, port: u16, mut m: *mut rte_mbuf) {
        // SAFETY: queue 0 of a started port; m is an owned mbuf.
        let n = unsafe { dpdk_ffi::rvs_eth_tx_burst(port, 0, &mut m, 1) };
        if n == 0 {
            // SAFETY: not taken by the driver, still ours.
            unsafe { dpdk_ffi::rvs_pktmbuf_free(m) };
        }
    }

    /// Sends SYNs of distinct probe flows until a whole round reaches the
    /// server side (every real server's MAC is resolved by then).
    fn probe(&mut self, phase: u8) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs_f64(self.o.ready_timeout);
        let n = (8 * self.ck.server_macs.len()).min(256) as u32;
        let t0 = Instant::now();
        for round in 0.. {
            let src = Source::Probe { round, n, i: 0 };
            let st = self.run_phase(phase, Space::Probe, src, Some(20_000.0), 0.05, 0.1);
            if st.rx + st.late >= u64::from(n) && st.bad.iter().sum::<u64>() == 0 {
                self.log(&format!(
                    "DUT forwards (probe round {round}, {:.2} s)",
                    t0.elapsed().as_secs_f64()
                ));
                return Ok(
                    json!({"rounds": round + 1, "secs": t0.elapsed().as_secs_f64(), "bad": self.bad_json(&st)}),
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the DUT did not forward the probes within {} s (last round {}/{} received, bad {:?}, {:?})",
                    self.o.ready_timeout,
                    st.rx + st.late,
                    n,
                    st.bad,
                    st.bad_examples
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        unreachable!()
    }

    /// SYN + ACK for every flow; up to 4 passes over the flows whose SYN did
    /// not come through.
    fn open(&mut self, phase: u8) -> Result<Value> {
        let t0 = Instant::now();
        let mut list: Vec<u32> = Vec::new();
        let mut passes = 0;
        let mut sent = 0;
        loop {
            passes += 1;
            let n = if list.is_empty() {
                self.flows
            } else {
                list.len() as u32
            };
            let src = Source::Open {
                list: std::mem::take(&mut list),
                all: self.flows,
                i: 0,
                second: false,
            };
            // Long enough for the whole pass at >= 0.5 Mpps; ends when done.
            let secs = 10.0 + f64::from(n) * 2.0 / 500_000.0;
            let st = self.run_phase(phase, Space::Flows, src, None, secs, 0.2);
            sent += st.tx;
            list = (0..self.flows).filter(|&f| !self.is_open(f)).collect();
            if list.is_empty() || passes == 4 {
                break;
            }
        }
        let opened = self.flows as usize - list.len();
        let secs = t0.elapsed().as_secs_f64();
        self.log(&format!(
            "opened {opened}/{} flows in {passes} passes, {secs:.2} s",
            self.flows
        ));
        Ok(json!({"flows_opened": opened, "passes": passes, "secs": secs, "sent": sent}))
    }

    fn is_open(&self, f: u32) -> bool {
        self.opened[(f / 64) as usize] & (1 << (f % 64)) != 0
    }

    /// Runs one phase: sends from `src` at `rate` packets/s (None: as fast
    /// as the DUT takes them) for `secs` seconds or until `src` ends, then
    /// keeps receiving for `drain` seconds.
    fn run_phase(
        &mut self,
        phase: u8,
        space: Space,
        mut src: Source,
        rate: Option<f64>,
        secs: f64,
        drain: f64,
    ) -> PhaseStats {
        self.phase = phase;
        self.space = space;
        self.st = PhaseStats::default();
        self.hist.reset();
        self.in_window = true;
        for p in &mut self.pending {
            free_all(p);
        }
        let hz = self.hz as f64;
        let per_cycle = rate.map(|r| r / hz);
        self.stalls.clear();
        self.lat_every = if rate.is_some() { 1 } else { LAT_SAMPLE_FAST };
        self.lat_ctr = 0;
        let t0 = rdtsc();
        self.phase_t0 = t0;
        let end = t0 + (secs * hz) as u64;
        let mut made: u64 = 0;
        let mut exhausted = false;
        let mut now = t0;
        while now < end {
            let budget = match per_cycle {
                None => BURST,
                Some(pc) => {
                    let due = ((now - t0) as f64 * pc) as u64;
                    due.saturating_sub(made).min(BURST as u64) as usize
                }
            };
            if !exhausted {
                let n = self.send(&mut src, budget);
                made += n as u64;
                self.st.iters += 1;
                if self.pending.iter().any(|p| !p.is_empty()) {
                    // The DUT's ring is full: the DUT, not the generator,
                    // sets the pace.
                    self.st.blocked += 1;
                }
                if n < budget && self.pending.iter().all(Vec::is_empty) && self.src_done(&src) {
                    exhausted = true;
                }
            } else if self.pending.iter().any(|p| !p.is_empty()) {
                self.send(&mut src, 0);
            } else {
                // Sent everything: wait for the tail only as long as drain.
                let done = now;
                self.in_window = false;
                self.st.secs = (done - t0) as f64 / hz;
                self.drain(drain);
                return std::mem::take(&mut self.st);
            }
            self.poll_rx();
            now = rdtsc();
        }
        self.st.secs = (now - t0) as f64 / hz;
        self.in_window = false;
        // What was never taken by the DUT was never sent.
        for p in &mut self.pending {
            free_all(p);
        }
        self.drain(drain);
        std::mem::take(&mut self.st)
    }

    fn src_done(&self, src: &Source) -> bool {
        match src {
            Source::Probe { n, i, .. } => i >= n,
            Source::Open { list, all, i, .. } => {
                *i >= if list.is_empty() {
                    *all
                } else {
                    list.len() as u32
                }
            }
            _ => false,
        }
    }

    fn drain(&mut self, secs: f64) {
        let end = rdtsc() + (secs * self.hz as f64) as u64;
        while rdtsc() < end {
            self.poll_rx();
        }
    }

    /// Retries what the DUT did not take last time; then builds up to
    /// `budget` new segments. Returns how many new segments were built.
    #[inline]
    fn send(&mut self, src: &mut Source, budget: usize) -> usize {
        let mut blocked = false;
        for q in 0..self.queues {
            if self.pending[q].is_empty() {
                continue;
            }
            let p = &mut self.pending[q];
            // SAFETY: queue q of a started port; p holds owned mbufs.
            let n = unsafe {
                dpdk_ffi::rvs_eth_tx_burst(self.client.id, q as u16, p.as_mut_ptr(), p.len() as u16)
            } as usize;
            self.st.tx += n as u64;
            p.drain(..n);
            blocked |= !p.is_empty();
        }
        if blocked || budget == 0 {
            return 0;
        }
        let mut ms: [*mut rte_mbuf; BURST] = [std::ptr::null_mut(); BURST];
        // SAFETY: the pool is valid; ms has room for budget <= BURST pointers.
        if unsafe {
            dpdk_ffi::rvs_pktmbuf_alloc_bulk(self.pool.as_ptr(), ms.as_mut_ptr(), budget as u32)
        } != 0
        {
            return 0;
        }
        let tsc = rdtsc();
        let mut built = 0;
        let len = self.tpl.len;
        for &m in ms.iter().take(budget) {
            let Some(p) = src.next() else {
                // SAFETY: an mbuf we allocated and did not use.
                unsafe { dpdk_ffi::rvs_pktmbuf_free(m) };
                continue;
            };
            // SAFETY: a fresh single-segment mbuf with room for a 1518-byte
            // frame (default data room).
            let buf = unsafe {
                (*m).data_len = len as u16;
                (*m).pkt_len = len as u32;
                frame_mut(m)
            };
            self.tpl.write(
                buf,
                p.kind,
                p.src,
                p.sport,
                p.seq,
                ack_word(self.phase, p.kind),
                tsc,
            );
            let q = if self.queues <= 1 {
                0
            } else if self.ck.expect.ipv6() {
                rss_queue6(p.src, p.sport, self.queues)
            } else {
                rss_queue(p.src, p.sport, self.queues)
            };
            self.pending[q].push(m);
            built += 1;
        }
        for q in 0..self.queues {
            let p = &mut self.pending[q];
            if p.is_empty() {
                continue;
            }
            // SAFETY: as above.
            let n = unsafe {
                dpdk_ffi::rvs_eth_tx_burst(self.client.id, q as u16, p.as_mut_ptr(), p.len() as u16)
            } as usize;
            self.st.tx += n as u64;
            p.drain(..n);
        }
        built
    }

    /// One rx burst on every queue of both ports.
    #[inline]
    fn poll_rx(&mut self) {
        let mut burst: [*mut rte_mbuf; BURST] = [std::ptr::null_mut(); BURST];
        // The client side only carries ARP (and stale frames): every 4th
        // poll is plenty, and leaves the cycles to the forwarded traffic.
        self.poll_ctr = self.poll_ctr.wrapping_add(1);
        let sides: &[(u16, bool)] = if self.poll_ctr.is_multiple_of(4) {
            &[(self.server.id, true), (self.client.id, false)]
        } else {
            &[(self.server.id, true)]
        };
        for &(port, server_side) in sides {
            for q in 0..self.queues {
                // SAFETY: queue q of a started port; burst has room for BURST.
                let n = unsafe {
                    dpdk_ffi::rvs_eth_rx_burst(port, q as u16, burst.as_mut_ptr(), BURST as u16)
                } as usize;
                if n == 0 {
                    continue;
                }
                let now = rdtsc();
                for &m in burst.iter().take(n) {
                    self.on_frame(m, port, server_side, now);
                }
                if !self.frees.is_empty() {
                    // SAFETY: frees holds owned mbufs, each once.
                    unsafe {
                        dpdk_ffi::rvs_pktmbuf_free_bulk(
                            self.frees.as_mut_ptr(),
                            self.frees.len() as u32,
                        )
                    };
                    self.frees.clear();
                }
            }
        }
    }

    #[inline]
    fn on_frame(&mut self, m: *mut rte_mbuf, port: u16, server_side: bool, now: u64) {
        // SAFETY: rx burst gave us this mbuf; its first segment is readable.
        let f = unsafe { frame(m) };
        let Some(s) = read_stamp(f) else {
            if f.len() >= 14 && f[12] == 0x08 && f[13] == 0x06 {
                self.st.arp += 1;
                if self.on_arp(m, port, server_side) {
                    return;
                }
            } else if is_ndp(f) {
                self.st.arp += 1;
                if self.on_ndp(m, port, server_side) {
                    return;
                }
            } else {
                self.st.foreign += 1;
            }
            self.frees.push(m);
            return;
        };
        if s.phase != self.phase || !server_side {
            self.st.stale += 1;
            self.frees.push(m);
            return;
        }
        if self.in_window {
            self.st.rx += 1;
        } else {
            self.st.late += 1;
        }
        if self.in_window {
            self.st.rx_bytes += f.len() as u64;
        }
        self.st.by_kind[s.kind as usize] += 1;
        self.lat_ctr += 1;
        if self.lat_ctr >= self.lat_every {
            self.lat_ctr = 0;
            let cyc = now.wrapping_sub(s.tsc) & s.tsc_mask;
            let ns = (cyc as f64 * self.ns_per_cycle) as u64;
            self.hist.saturating_record(ns);
            if ns >= self.stall_ns && self.stalls.len() < MAX_STALL_SAMPLES {
                self.stalls.push((now, ns));
            }
        }
        if s.kind == Kind::Syn && self.space == Space::Flows && s.seq < self.flows {
            self.opened[(s.seq / 64) as usize] |= 1 << (s.seq % 64);
        }
        self.sample_ctr += 1;
        if self.sample_ctr >= self.o.sample {
            self.sample_ctr = 0;
            self.verify(f, s.seq);
        }
        self.frees.push(m);
    }

    #[cold]
    fn verify(&mut self, f: &[u8], seq: u32) {
        let (src, sport) = match self.space {
            Space::Probe => {
                // Probe flows: the port says the round; the checker only
                // needs the address, so read the port back from the frame.
                let ip = PROBE_BASE + seq;
                let Some(sp) = read_sport(f) else {
                    return self.bad(Bad::Parse, f);
                };
                (ip, sp)
            }
            Space::Flows => {
                if seq >= self.flows {
                    return self.bad(Bad::Source, f);
                }
                flow_addr(seq)
            }
            Space::NewConns => {
                // seq holds the low 32 bits of the connection number; the
                // address is a function of it modulo CLIENT_IPS (a power of
                // two), and the port is read back.
                let ip = NEW_BASE + seq % CLIENT_IPS;
                let Some(sp) = read_sport(f) else {
                    return self.bad(Bad::Parse, f);
                };
                (ip, sp)
            }
        };
        self.st.checked += 1;
        match frames::check(&self.ck, f, Ipv4Addr::from(src), sport) {
            Ok(Some(k)) if self.space == Space::Flows => {
                let s = &mut self.sticky[seq as usize];
                if *s == 0 {
                    *s = k as u8 + 1;
                } else if *s != k as u8 + 1 {
                    self.bad(Bad::NotSticky, f);
                }
            }
            Ok(_) => {}
            Err(b) => self.bad(b, f),
        }
    }

    #[cold]
    fn bad(&mut self, b: Bad, f: &[u8]) {
        self.st.bad[b as usize] += 1;
        if self.st.bad_examples.len() < 3 {
            let hex: String = f.iter().take(80).map(|x| format!("{x:02x}")).collect();
            self.st.bad_examples.push(format!("{}: {hex}", b.name()));
        }
    }

    /// Answers ARP requests (the director resolving real servers or
    /// clients) and learns the director's MACs. True when the mbuf was
    /// reused for the reply.
    fn on_arp(&mut self, m: *mut rte_mbuf, port: u16, server_side: bool) -> bool {
        // SAFETY: an owned received mbuf.
        let f = unsafe { frame_mut(m) };
        let Ok(eth) = EthernetFrame::new_checked(&f[..]) else {
            return false;
        };
        let Ok(a) = ArpPacket::new_checked(eth.payload()) else {
            return false;
        };
        let (op, sha, spa, tpa) = (a.op(), a.sha(), a.spa(), a.tpa());
        if op == arp::op::REPLY {
            if !server_side && spa == self.o.vip {
                self.ck.dut_client_mac = sha;
            }
            return false;
        }
        if op != arp::op::REQUEST {
            return false;
        }
        let mac = if server_side {
            if self.ck.dut_server_mac.is_none() && spa == self.o.director_addr {
                self.ck.dut_server_mac = Some(sha);
            }
            match self.ck.servers.iter().position(|s| s.0 == tpa) {
                Some(k) => server_mac(k),
                None => self.server.mac,
            }
        } else {
            if tpa == GEN_CLIENT_ADDR || tpa == self.o.vip {
                return false;
            }
            self.client.mac
        };
        if arp::reply_in_place(f, mac).is_err() {
            return false;
        }
        self.tx_one(port, m);
        true
    }

    /// Neighbour discovery, the IPv6 twin of [`Gen::on_arp`]: answers the
    /// director's solicitations for the real servers (each at its own MAC)
    /// and learns the director's MACs (the advertisement for the VIP on the
    /// client side, the solicitations' source on the server side). True
    /// when the mbuf was reused for the answer.
    fn on_ndp(&mut self, m: *mut rte_mbuf, port: u16, server_side: bool) -> bool {
        // SAFETY: an owned received mbuf.
        let f = unsafe { frame_mut(m) };
        let Some((ty, src, target)) = ndp_fields(f) else {
            return false;
        };
        let eth_src = MacAddr::from_bytes(&f[6..12]);
        if ty == msg_type::NEIGHBOR_ADVERT {
            if !server_side && target == self.o.vip6 {
                self.ck.dut_client_mac = eth_src;
            }
            return false;
        }
        if !server_side {
            return false;
        }
        if self.ck.dut_server_mac.is_none() && src == self.o.director_addr6 {
            self.ck.dut_server_mac = Some(eth_src);
        }
        let Some(k) = self.ck.servers6.iter().position(|s| s.0 == target) else {
            return false;
        };
        if src.is_unspecified() || f.len() < NDP_FRAME_LEN {
            return false;
        }
        let flags = NaFlags {
            solicited: true,
            override_: true,
            router: false,
        };
        if icmpv6::build_na(f, server_mac(k), target, eth_src, src, flags).is_none() {
            return false;
        }
        // SAFETY: an owned mbuf of at least NDP_FRAME_LEN bytes.
        unsafe {
            (*m).data_len = NDP_FRAME_LEN as u16;
            (*m).pkt_len = NDP_FRAME_LEN as u32;
        }
        self.tx_one(port, m);
        true
    }

    fn bad_json(&self, st: &PhaseStats) -> Value {
        let mut m = serde_json::Map::new();
        for b in Bad::ALL {
            if st.bad[b as usize] > 0 {
                m.insert(b.name().into(), json!(st.bad[b as usize]));
            }
        }
        Value::Object(m)
    }

    fn phase_json(&self, st: &PhaseStats) -> Value {
        let h = &self.hist;
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let secs = st.secs.max(1e-9);
        let got = st.rx + st.late;
        let lost = st.tx.saturating_sub(got);
        let bad: u64 = st.bad.iter().sum();
        // Late frames grouped into events: a gap of more than 1 ms between
        // two late frames starts a new event.
        let gap = self.hz / 1000;
        let mut events: Vec<(u64, u64, u64, u64)> = Vec::new(); // start, end, peak ns, frames
        for &(t, ns) in &self.stalls {
            match events.last_mut() {
                Some(e) if t.wrapping_sub(e.1) <= gap => {
                    e.1 = t;
                    e.2 = e.2.max(ns);
                    e.3 += 1;
                }
                _ => events.push((t, t, ns, 1)),
            }
        }
        let ms = |t: u64| t.wrapping_sub(self.phase_t0) as f64 * 1000.0 / self.hz as f64;
        let mut peak_hist = [0u64; 6];
        for e in &events {
            let us = e.2 / 1000;
            let b = [100u64, 200, 500, 1000, 2000]
                .iter()
                .take_while(|&&hi| us >= hi)
                .count();
            peak_hist[b] += 1;
        }
        let mut top = events.clone();
        top.sort_by_key(|e| std::cmp::Reverse(e.2));
        let stalls = json!({
            "threshold_us": self.stall_ns as f64 / 1000.0,
            "frames": self.stalls.len(),
            "events": events.len(),
            "events_per_s": events.len() as f64 / secs,
            // events by peak latency: <100us, <200, <500, <1000, <2000, more
            "peak_hist_us": peak_hist,
            "worst": top.iter().take(12).map(|e| json!({
                "at_ms": ms(e.0), "span_ms": ms(e.1) - ms(e.0), "peak_us": e.2 as f64 / 1000.0, "frames": e.3,
            })).collect::<Vec<_>>(),
        });
        json!({
            "stalls": stalls,
            "secs": st.secs,
            "tx": st.tx,
            "rx": st.rx,
            "late": st.late,
            "lost": lost,
            "loss": if st.tx > 0 { lost as f64 / st.tx as f64 } else { 0.0 },
            "tx_mpps": st.tx as f64 / secs / 1e6,
            "rx_mpps": st.rx as f64 / secs / 1e6,
            // L2 bits with the FCS, without preamble and inter-frame gap.
            "gbps": (st.rx_bytes + 4 * st.rx) as f64 * 8.0 / secs / 1e9,
            "by_kind": {"syn": st.by_kind[0], "ack": st.by_kind[1], "data": st.by_kind[2], "fin": st.by_kind[3]},
            // Near 1: the DUT's ring was full (DUT-bound). Near 0 at the
            // max rate: the generator could not feed the DUT faster.
            "tx_blocked_frac": if st.iters > 0 { st.blocked as f64 / st.iters as f64 } else { 0.0 },
            "stale": st.stale,
            "foreign": st.foreign,
            "arp": st.arp,
            "checked": st.checked,
            "bad_total": bad,
            "bad": self.bad_json(st),
            "bad_examples": st.bad_examples,
            "lat_us": {
                "count": h.len(),
                "min": h.min() as f64 / 1000.0,
                "mean": h.mean() / 1000.0,
                "p50": us(0.5),
                "p90": us(0.9),
                "p99": us(0.99),
                "p999": us(0.999),
                "max": h.max() as f64 / 1000.0,
            },
        })
    }
}

/// TCP source port of a (possibly IPIP) frame.
/// The queue a NIC configured as the director configures its client-facing
/// ports would put a client's frame on: DPDK's own Toeplitz hash
/// (`rte_softrss`) over the source address and port with the director's
/// key, the other fields zeroed (`L3_SRC_ONLY | L4_SRC_ONLY`), then entry
/// `hash % RETA_SIZE` of the director's default RETA (`i % queues`).
/// memif has no RSS, so the generator plays the NIC; it does not call the
/// director's owner function, so a director whose ownership disagrees
/// with its RSS shows up as hand-offs.
fn rss_queue(src: u32, sport: u16, queues: usize) -> usize {
    let mut tuple = [src, 0, u32::from(sport) << 16];
    // SAFETY: a pure function over 3 words and a 40-byte key (>= 16 bytes).
    let h = unsafe { dpdk_ffi::rvs_softrss(tuple.as_mut_ptr(), 3, rss::KEY.as_ptr()) };
    usize::from(rss::reta_entry(h as usize % rss::RETA_SIZE, queues))
}

/// [`rss_queue`] of an IPv6 client (`frames6::client6(src)`): the IPv6
/// RSS input (source address as four words, destination zeroed, source
/// port) under the same key and RETA; the director configures NICs with
/// IPv6 RSS to hash it so (`engine::dataplane::rss`).
fn rss_queue6(src: u32, sport: u16, queues: usize) -> usize {
    let p = &frames6::CLIENT6_PREFIX;
    let w = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    let mut tuple = [w(0), w(4), w(8), src, 0, 0, 0, 0, u32::from(sport) << 16];
    // SAFETY: a pure function over 9 words and a 40-byte key (>= 4 * (9 + 1)).
    let h = unsafe { dpdk_ffi::rvs_softrss(tuple.as_mut_ptr(), 9, rss::KEY.as_ptr()) };
    usize::from(rss::reta_entry(h as usize % rss::RETA_SIZE, queues))
}

/// The generator's frame templates for the mode: IPv6 for `nat6`.
fn templates(o: &GenOpts, src_mac: MacAddr, dut_mac: MacAddr) -> Templates {
    if o.expect.ipv6() {
        Templates::new6(o.size as usize, src_mac, dut_mac, o.vip6, o.vport)
    } else {
        Templates::new(o.size as usize, src_mac, dut_mac, o.vip, o.vport)
    }
}

/// An untagged IPv6 neighbour solicitation or advertisement?
fn is_ndp(f: &[u8]) -> bool {
    f.len() >= 14 + 40 + 24
        && f[12] == 0x86
        && f[13] == 0xdd
        && f[20] == 58
        && matches!(
            f[54],
            msg_type::NEIGHBOR_SOLICIT | msg_type::NEIGHBOR_ADVERT
        )
}

/// (type, IPv6 source, target) of a frame [`is_ndp`] accepted.
fn ndp_fields(f: &[u8]) -> Option<(u8, Ipv6Addr, Ipv6Addr)> {
    let a = |o: usize| -> Option<Ipv6Addr> {
        Some(Ipv6Addr::from(
            <[u8; 16]>::try_from(f.get(o..o + 16)?).ok()?,
        ))
    };
    Some((*f.get(54)?, a(22)?, a(62)?))
}

fn read_sport(f: &[u8]) -> Option<u16> {
    let s = read_stamp(f)?;
    let t = s.tcp_off;
    Some(u16::from_be_bytes([*f.get(t)?, *f.get(t + 1)?]))
}

fn free_all(p: &mut Vec<*mut rte_mbuf>) {
    if !p.is_empty() {
        // SAFETY: p holds owned mbufs, each once.
        unsafe { dpdk_ffi::rvs_pktmbuf_free_bulk(p.as_mut_ptr(), p.len() as u32) };
        p.clear();
    }
}

/// The data of an mbuf's first segment.
///
/// # Safety
/// `m` must be a valid mbuf the caller owns, for the returned lifetime.
#[inline(always)]
unsafe fn frame<'a>(m: *mut rte_mbuf) -> &'a [u8] {
    // SAFETY: per the contract, buf_addr + data_off holds data_len bytes.
    unsafe {
        let p = ((*m).buf_addr as *const u8).add(usize::from((*m).data_off));
        std::slice::from_raw_parts(p, usize::from((*m).data_len))
    }
}

/// Mutable twin of [`frame`].
///
/// # Safety
/// As [`frame`], with exclusive access.
#[inline(always)]
unsafe fn frame_mut<'a>(m: *mut rte_mbuf) -> &'a mut [u8] {
    // SAFETY: as in `frame`.
    unsafe {
        let p = ((*m).buf_addr as *mut u8).add(usize::from((*m).data_off));
        std::slice::from_raw_parts_mut(p, usize::from((*m).data_len))
    }
}

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

mod neighbour;
mod opts;
mod phases;
mod receive;
mod source;
mod stats;

pub use opts::{server_mac, GenOpts};

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dpdk_ffi::rte_mbuf;
use engine::dataplane::eal;
use engine::dataplane::mbuf::Pool;
use engine::dataplane::port::{self, Port};
use engine::packet::ethernet::MacAddr;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::frames::{CheckCtx, Kind, Templates};
use opts::parse_mac;
use source::{Source, Space};
use stats::PhaseStats;

const BURST: usize = 32;
const MAX_QUEUES: usize = 8;
/// At the max rate, the latency of one frame in this many goes into the
/// histogram (every frame is still counted and sampled for checks).
const LAT_SAMPLE_FAST: u32 = 8;
/// The cost phase's latency windows per second (`LatWindow`): four times
/// as many as bench.sh's 0.25 s cost windows, so each holds a few.
const COST_WINDOWS_PER_S: u64 = 16;
/// Late frames remembered per phase for the stall analysis.
const MAX_STALL_SAMPLES: usize = 1 << 20;
/// The generator's own address on the client side (source of its ARP).
const GEN_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Its IPv6 twin (source of its neighbour solicitations for the VIP).
const GEN_CLIENT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);

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
    /// The cost phase's latency windows (`cost-window` log lines), None
    /// in every other phase.
    lat_win: Option<LatWindow>,
    pending: Vec<Vec<*mut rte_mbuf>>,
    frees: Vec<*mut rte_mbuf>,
}

/// The latency of the frames received in one short window of the cost
/// phase. bench.sh labels each 0.25 s cost window with it: a frame crosses
/// between the generator's CPU and the DUT's twice, and on this VM those
/// two vCPUs sit either beside each other (a cache line moves in ~60 ns)
/// or far apart (~300 ns) and change places during a run. A window's
/// lowest latency says which (perf/cost_windows.py, report.py), whatever
/// the DUT.
struct LatWindow {
    /// TSC cycles per window.
    every: u64,
    /// TSC at which the current window ends.
    ends: u64,
    hist: Histogram<u64>,
}

impl LatWindow {
    /// Ends the window at TSC `now`: logs `cost-window UNIX_S FRAMES
    /// MIN_NS P50_NS P90_NS` (the wall clock of its end, the frames whose
    /// latency it took) and starts the next. The first call only starts one.
    fn close(&mut self, now: u64, label: &str) {
        if self.ends != 0 {
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let h = &self.hist;
            eprintln!(
                "rvs-perf[{label}]: cost-window {at:.6} {} {} {} {}",
                h.len(),
                h.min(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9)
            );
            self.hist.reset();
        }
        self.ends = now + self.every;
    }
}

pub fn run(o: GenOpts) -> Result<()> {
    if !(64..=1518).contains(&o.size) {
        bail!("--size must be 64 .. 1518 (Ethernet frame with FCS)");
    }
    if o.flows == 0 || o.flows > 16_000_000 {
        bail!("--flows must be 1 .. 16 million");
    }
    o.order.check(o.flows)?;
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
        lat_win: None,
        pending: (0..o.queues).map(|_| Vec::with_capacity(BURST)).collect(),
        frees: Vec::with_capacity(4 * BURST),
        client,
        server,
        o,
    };
    let res = g.run_all();
    if res.is_ok() && g.o.linger > 0.0 {
        g.linger();
    }
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
                        order: self.o.order,
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
                        order: self.o.order,
                    };
                    let st = self.run_phase(
                        phase,
                        Space::Flows,
                        src,
                        Some(rate),
                        self.o.lat_duration,
                        0.1,
                    );
                    self.lat_win = None;
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
                            order: self.o.order,
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
                        order: self.o.order,
                    };
                    // bench.sh reads the DUT's counters when it sees this
                    // line: give it half a second before the first frame.
                    self.log("cost-start");
                    std::thread::sleep(std::time::Duration::from_millis(500));
                    self.lat_win = Some(LatWindow {
                        every: self.hz / COST_WINDOWS_PER_S,
                        ends: 0,
                        hist: Histogram::new_with_bounds(1, 60_000_000_000, 2)?,
                    });
                    let st = self.run_phase(
                        phase,
                        Space::Flows,
                        src,
                        Some(rate),
                        self.o.cost_duration,
                        0.1,
                    );
                    self.lat_win = None;
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
            "order": self.o.order,
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

    /// Link status of the client-side and server-side ports.
    fn links_up(&self) -> [bool; 2] {
        [self.client.id, self.server.id].map(|id| {
            let mut l = dpdk_ffi::rte_eth_link::default();
            // SAFETY: id is a started port; l is a valid out-pointer.
            unsafe { dpdk_ffi::rte_eth_link_get_nowait(id, &mut l) };
            l.link_status() == 1
        })
    }

    fn wait_links(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs_f64(self.o.ready_timeout);
        loop {
            if self.links_up() == [true, true] {
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

    /// Wait (at most `--linger` s) for the DUT to close both memif links,
    /// polling nothing meanwhile: see [`GenOpts::linger`].
    fn linger(&self) {
        self.log("done; holding the ports until the DUT has closed them");
        let deadline = Instant::now() + Duration::from_secs_f64(self.o.linger);
        while Instant::now() < deadline {
            if self.links_up() == [false, false] {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log("the DUT kept its links up; closing the ports anyway");
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
}

/// The generator's frame templates for the mode: IPv6 for `nat6`.
fn templates(o: &GenOpts, src_mac: MacAddr, dut_mac: MacAddr) -> Templates {
    if o.expect.ipv6() {
        Templates::new6(o.size as usize, src_mac, dut_mac, o.vip6, o.vport)
    } else {
        Templates::new(o.size as usize, src_mac, dut_mac, o.vip, o.vport)
    }
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

//! The generator's command line (`rvs-perf gen`).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use engine::packet::ethernet::MacAddr;

use crate::frames::Expect;
use crate::order::Order;

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
    /// Order of the data phases over the flows: `seq` (the order they
    /// were opened in) or `scatter` (a fixed permutation: each packet's
    /// record is a random miss, as in real traffic); see `order.rs`.
    #[arg(long, value_enum, default_value_t = Order::Seq)]
    pub order: Order,
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
    /// After the last phase, keep the ports open until the DUT has closed
    /// its side (both links down), at most this many seconds, and say so
    /// (`holding the ports`). A memif client whose server goes away while
    /// its lcore is inside `rte_eth_rx_burst` can fault in DPDK 22.11 (the
    /// control thread unmaps the rings under the poll), so the scripts stop
    /// the DUT first. 0: exit at once.
    #[arg(long, default_value_t = 0.0)]
    pub linger: f64,
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

pub(super) fn parse_mac(s: &str) -> Result<MacAddr> {
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

//! rvs-perf: the packet generator and the benchmark tools of rvs.
//!
//! * `rvs-perf gen` — the DPDK packet generator that drives the director
//!   (or testpmd, the baseline) over two `net_memif` links; one JSON result.
//! * `rvs-perf mem` — connection-table memory at 1M / 10M connections.
//! * `rvs-perf pipeline` — the director's per-packet path (`Pipeline::process`)
//!   in a loop over byte buffers, no DPDK: ns/packet, and a target for
//!   `perf record` / `valgrind --tool=callgrind`.
//!
//! `perf/bench.sh` runs them all and writes `perf/results/`.

mod frames;
mod frames6;
mod gen;
mod mem;
mod order;
mod pipe;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rvs-perf", about = "rvs packet generator and benchmarks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the packet generator against a DUT on two memif links.
    Gen(Box<gen::GenOpts>),
    /// Measure connection-table memory.
    Mem(mem::MemOpts),
    /// Time the director's pipeline on byte buffers (no DPDK).
    Pipeline(pipe::PipeOpts),
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Gen(o) => gen::run(*o),
        Cmd::Mem(o) => mem::run(o),
        Cmd::Pipeline(o) => pipe::run(o),
    };
    if let Err(e) = r {
        eprintln!("rvs-perf: {e:#}");
        std::process::exit(1);
    }
}

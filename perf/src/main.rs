//! The rvs packet generator (see issue: benchmarks against the DPDK baseline).
fn main() {
    eprintln!("rvs-perf: the packet generator is not built yet");
    std::process::exit(2);
}

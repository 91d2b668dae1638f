//! Memory of the connection table, measured: RSS of this process before and
//! after building an `engine::conn::ConnTable` and filling it with NAT
//! connections (two index keys each, the worst case), beside what the table
//! says it allocated (`memory_bytes`). Also times inserts and lookups at
//! that size (one thread, no prefetching: the cost of a lone cache miss).
//!
//! `--pages 4k,thp,hugetlb` builds each table in that kind of memory (4 KiB
//! pages, anonymous memory hinted for transparent huge pages, DPDK's
//! hugetlbfs pages) and says which pages it really got: the lookup time
//! across the three is what the TLB misses cost where the CPU's counters
//! cannot be read (a VM without a PMU).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use engine::conn::addr6::Addr6Table;
use engine::conn::{ConnTable, FlowKey, Method, NewConn, TcpState, PROTO_TCP};
use engine::dataplane::eal;
use engine::dataplane::region::{Region, TableMemory};
use serde_json::{json, Value};

#[derive(Debug, Clone, clap::Args)]
pub struct MemOpts {
    /// Table sizes (connections) to measure, filled to capacity.
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    pub conns: Vec<usize>,
    /// Lookups timed per size.
    #[arg(long, default_value_t = 2_000_000)]
    pub lookups: usize,
    /// Also write the JSON result here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Memory of the table, one row per kind: 4k | thp | hugetlb (DPDK's
    /// allocator with 2 MiB hugepages; needs free hugepages).
    #[arg(long, value_delimiter = ',', default_value = "thp")]
    pub pages: Vec<String>,
    /// Hugepage memory the EAL takes at start for `--pages hugetlb`, MiB
    /// (DPDK grows it as the table needs).
    #[arg(long, default_value_t = 64)]
    pub eal_memory_mb: u32,
}

/// The table memory of a `--pages` word.
fn table_memory(pages: &str) -> Result<TableMemory> {
    Ok(match pages {
        "4k" => TableMemory::SmallPages,
        "thp" => TableMemory::Thp,
        "hugetlb" => TableMemory::Dpdk { socket: -1 },
        p => anyhow::bail!("--pages: 4k | thp | hugetlb, not `{p}`"),
    })
}

/// Resident set size of this process, bytes.
pub fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    pages * page
}

/// Client address and port of connection `i` (distinct for i < 2^32).
fn client(i: usize) -> (Ipv4Addr, u16) {
    let i = i as u64;
    (
        Ipv4Addr::from(0xc612_0000u32 + (i % 65536) as u32),
        1024 + (i / 65536) as u16,
    )
}

fn new_conn(i: usize) -> NewConn {
    let (c, p) = client(i);
    NewConn {
        proto: PROTO_TCP,
        client: c,
        cport: p,
        vip: Ipv4Addr::new(198, 18, 0, 100),
        vport: 80,
        server: Ipv4Addr::new(198, 19, 0, 11 + (i % 4) as u8),
        sport: 8080,
        method: Method::Nat,
        flags: 0,
        service: 0,
        dest: (i % 4) as u32,
        state: TcpState::None,
    }
}

/// A small xorshift for reproducible random lookups.
fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

pub fn measure(n: usize, lookups: usize, pages: &str) -> Result<Value> {
    let rss0 = rss_bytes();
    let t = Instant::now();
    let mut table = ConnTable::with_capacity_in(n, table_memory(pages)?, Some(0x5eed));
    let build_s = t.elapsed().as_secs_f64();
    let rss_empty = rss_bytes();
    let t = Instant::now();
    for i in 0..n {
        table
            .insert(new_conn(i), 0)
            .ok()
            .context("table full before capacity")?;
    }
    let insert_ns = t.elapsed().as_nanos() as f64 / n as f64;
    let rss_full = rss_bytes();
    let conn_memory = table.memory_spans().describe();
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut hits = 0usize;
    let t = Instant::now();
    for _ in 0..lookups {
        let i = (xorshift(&mut x) % n as u64) as usize;
        let (c, p) = client(i);
        let k = FlowKey::new(PROTO_TCP, c, p, Ipv4Addr::new(198, 18, 0, 100), 80);
        hits += table.lookup(&k, 1).is_some() as usize;
    }
    let lookup_ns = t.elapsed().as_nanos() as f64 / lookups.max(1) as f64;
    let (dep_ns, dep_cycles) = dependent_lookups(&table, n, lookups / 4);
    let (read_ns, read_cycles) = random_reads(table.memory_bytes(), lookups / 4);
    let bytes = table.memory_bytes();
    // An IPv6 connection: a record and keys of the same table design (its
    // addresses as 32-bit ids) plus the worker's id table, sized as the
    // data plane sizes it (pipeline/nat6.rs).
    let bytes6 = bytes + Addr6Table::bytes_for(table.capacity() + 4096);
    let v = json!({
        "conns": n,
        "capacity": table.capacity(),
        "index_buckets": table.index_buckets(),
        "memory_bytes": bytes,
        "bytes_per_conn": bytes as f64 / n as f64,
        "ipv6_memory_bytes": bytes6,
        "ipv6_bytes_per_conn": bytes6 as f64 / n as f64,
        "rss_before": rss0,
        "rss_empty_table": rss_empty,
        "rss_full_table": rss_full,
        "rss_delta_bytes": rss_full.saturating_sub(rss0),
        "rss_bytes_per_conn": rss_full.saturating_sub(rss0) as f64 / n as f64,
        "build_s": build_s,
        "insert_ns": insert_ns,
        "lookup_ns": lookup_ns,
        "lookup_hits": hits,
        "lookup_dependent_ns": dep_ns,
        "lookup_dependent_cycles": dep_cycles,
        "random_read_ns": read_ns,
        "random_read_cycles": read_cycles,
        "max_probe_len": table.max_probe_len(),
        "pages": pages,
        "conn_memory": conn_memory,
    });
    drop(table);
    Ok(v)
}

/// Lookups of random keys, each key chosen by the one before's result (its
/// slot), so that no two overlap: the latency of one lookup that nothing
/// can hide, in ns and TSC cycles. `lookup_ns` above is throughput (the
/// CPU runs independent lookups ahead of each other); this is what a
/// worker pays for a frame that arrives alone (a burst of one), the floor
/// `perf/report.py` sets beside the busy cycles per packet.
fn dependent_lookups(table: &ConnTable, n: usize, lookups: usize) -> (f64, f64) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut prev = 0u64;
    let lookups = lookups.max(1);
    let t = Instant::now();
    let c0 = dpdk_ffi::rdtsc();
    for _ in 0..lookups {
        let i = ((xorshift(&mut x) ^ prev) % n.max(1) as u64) as usize;
        let (c, p) = client(i);
        let k = FlowKey::new(PROTO_TCP, c, p, Ipv4Addr::new(198, 18, 0, 100), 80);
        // The record's server port is read: the next key waits for the
        // record, not only for the index entry.
        prev = table.lookup(&k, 1).map_or(0, |(id, _)| {
            u64::from(table.get(id).sport()) ^ u64::from(id.0)
        });
    }
    let cycles = dpdk_ffi::rdtsc().wrapping_sub(c0) as f64 / lookups as f64;
    (t.elapsed().as_nanos() as f64 / lookups as f64, cycles)
}

/// One cache line at a time, at random, of `bytes` of memory hinted for
/// transparent huge pages as the table is, each read's address the one
/// before's value (a random cycle through every line): the latency of a
/// single uncached read of memory the table's size on this machine, in ns
/// and TSC cycles. A packet whose flow is not cached pays at least one
/// (the bucket; the record too unless the hardware prefetcher saw it
/// coming); `perf/report.py` sets it beside the busy cycles per packet.
fn random_reads(bytes: usize, reads: usize) -> (f64, f64) {
    const LINE: usize = 8; // u64s per 64-byte line
    let lines = (bytes / 64).max(2);
    // The table's own kind of memory (transparent huge pages).
    let mut mem: Region<u64> = Region::new(lines * LINE, TableMemory::Thp, |_| 0);
    // Sattolo's shuffle: one cycle through all lines.
    let mut order: Vec<u32> = (0..lines as u32).collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..lines).rev() {
        let j = (xorshift(&mut x) % i as u64) as usize;
        order.swap(i, j);
    }
    for (i, &l) in order.iter().enumerate() {
        mem[l as usize * LINE] = u64::from(order[(i + 1) % lines]) * LINE as u64;
    }
    drop(order);
    let reads = reads.max(1);
    let mut at = 0u64;
    let t = Instant::now();
    let c0 = dpdk_ffi::rdtsc();
    for _ in 0..reads {
        at = mem[at as usize];
    }
    let cycles = dpdk_ffi::rdtsc().wrapping_sub(c0) as f64 / reads as f64;
    std::hint::black_box(at);
    (t.elapsed().as_nanos() as f64 / reads as f64, cycles)
}

pub fn run(o: MemOpts) -> Result<()> {
    for p in &o.pages {
        table_memory(p)?;
    }
    if o.pages.iter().any(|p| p == "hugetlb") {
        // DPDK's allocator needs the EAL: hugepages, nothing else.
        eal::init(&[
            "rvs-perf".to_string(),
            "--lcores".into(),
            "0".into(),
            "-m".into(),
            o.eal_memory_mb.to_string(),
            "--in-memory".into(),
            "--no-pci".into(),
            format!("--file-prefix=rvsmem{}", std::process::id()),
            "--log-level=lib.eal:warning".into(),
        ])
        .context("EAL for --pages hugetlb (are hugepages reserved? /proc/sys/vm/nr_hugepages)")?;
    }
    let mut rows = Vec::new();
    for &n in &o.conns {
        for pages in &o.pages {
            let v = measure(n, o.lookups, pages)?;
            eprintln!(
            "rvs-perf mem: {n} conns, {pages} ({}): table {:.1} MiB ({:.1} B/conn; IPv6 {:.1} B/conn), RSS +{:.1} MiB ({:.1} B/conn), insert {:.0} ns, lookup {:.0} ns ({:.0} ns = {:.0} TSC cycles when each waits for the one before; one random read of that much memory {:.0} ns = {:.0} cycles)",
            v["conn_memory"].as_str().unwrap_or("?"),
            v["memory_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
            v["bytes_per_conn"].as_f64().unwrap_or(0.0),
            v["ipv6_bytes_per_conn"].as_f64().unwrap_or(0.0),
            v["rss_delta_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
            v["rss_bytes_per_conn"].as_f64().unwrap_or(0.0),
            v["insert_ns"].as_f64().unwrap_or(0.0),
            v["lookup_ns"].as_f64().unwrap_or(0.0),
            v["lookup_dependent_ns"].as_f64().unwrap_or(0.0),
            v["lookup_dependent_cycles"].as_f64().unwrap_or(0.0),
            v["random_read_ns"].as_f64().unwrap_or(0.0),
            v["random_read_cycles"].as_f64().unwrap_or(0.0),
        );
            rows.push(v);
        }
    }
    let text = serde_json::to_string(&json!({ "mem": rows }))?;
    println!("rvs-perf-mem {text}");
    if let Some(p) = &o.json {
        std::fs::write(p, format!("{text}\n"))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

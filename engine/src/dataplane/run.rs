//! `rvs run`: bring up EAL, ports and workers, then serve signals on the
//! control (main) lcore until told to stop.

use std::ffi::c_void;
use std::os::raw::c_int;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::counters::StatsReport;
use super::pipeline::Pipeline;
use super::port::{self, Port};
use super::region::TableMemory;
use super::ring::Ring;
use super::snapshot::PortInfo;
use super::worker::Worker;
use super::{eal, kernel, Shared};
use crate::config::Config;
use crate::control::health::proc;
use crate::control::Controller;

/// Runs the director in the foreground until SIGINT/SIGTERM.
pub fn run(cfg: Config, path: &Path) -> Result<()> {
    // Signals first: a SIGHUP or SIGTERM during start-up (EAL, ports) must
    // not kill the process half set up; they are acted on once it runs.
    let signals = Signals::install()?;
    super::guard::install_panic_hook();
    // Exec checks and the notify hook may leave daemons behind: they are
    // re-parented here and reaped (`proc::reap_orphans`).
    if let Err(e) = proc::become_subreaper() {
        tracing::warn!("cannot become a child subreaper: {e}");
    }
    let workers = cfg.dpdk.workers;
    eal::init(&eal::eal_args(&cfg))?;
    let lcores = eal::worker_lcores();
    if lcores.len() < workers {
        bail!(
            "dpdk.workers = {workers} but the core list `{}` gives only {} worker lcores",
            cfg.dpdk.cores,
            lcores.len()
        );
    }

    let n_ports = cfg.ports.len() as u32;
    let mbufs = (n_ports * workers as u32 * 2 * 1024 + workers as u32 * 4096 + 8192)
        .next_power_of_two()
        - 1;
    let max_mtu = cfg.ports.iter().map(|p| p.mtu).max().unwrap_or(1500);
    let pool = port::create_pool(mbufs, port::data_room(max_mtu))?;
    let mut ports: Vec<Port> = Vec::new();
    let roles = super::rss::port_roles(&cfg);
    for (i, pc) in cfg.ports.iter().enumerate() {
        let p = port::setup_rss(&pc.device, workers as u16, pc.mtu, pool, Some(roles[i]))
            .with_context(|| format!("port[{i}] `{}`", pc.name))?;
        tracing::info!(
            port = %pc.name, id = p.id, mac = %p.mac, rxq = p.rx_queues, txq = p.tx_queues,
            address = %pc.address, "port up"
        );
        super::rss::log_mode(&pc.name, &p.rss, workers);
        ports.push(p);
    }
    // Exception path: one TAP per port, with the port's MAC and address, so
    // the kernel in this namespace owns the director's own traffic. What
    // this changes in the namespace is undone when `kernel` drops (on every
    // way out of this function).
    let mut kernel = kernel::KernelChanges::new();
    let nports = ports.len();
    let mut kernel_of: Vec<Option<usize>> = vec![None; nports];
    for (i, pc) in cfg.ports.iter().enumerate() {
        if !pc.exception_path {
            continue;
        }
        if let Some(iface) = kernel::af_packet_iface(&pc.device) {
            kernel.isolate_af_packet(iface);
        }
        let tap = port::setup(&eal::tap_device(i), 1, pc.mtu, pool)
            .with_context(|| format!("exception path of port `{}`", pc.name))?;
        port::set_mac(&tap, ports[i].mac)?;
        kernel
            .configure(&pc.tap_name, i, pc)
            .with_context(|| format!("kernel interface {} of port `{}`", pc.tap_name, pc.name))?;
        tracing::info!(port = %pc.name, tap = %pc.tap_name, address = %pc.address, "exception path up");
        kernel_of[i] = Some(ports.len());
        ports.push(tap);
    }
    let mut port_of_tap: Vec<Option<usize>> = vec![None; ports.len()];
    for (i, k) in kernel_of.iter().enumerate() {
        if let Some(t) = k {
            port_of_tap[*t] = Some(i);
        }
    }
    let port_infos: Vec<PortInfo> = cfg
        .ports
        .iter()
        .zip(&ports)
        .map(|(pc, p)| PortInfo::new(pc, p.mac))
        .collect();

    let shared = Arc::new(Shared::new(workers));
    let per_worker = (cfg.timeouts.max_connections as usize).div_ceil(workers);
    let hugepages = cfg.dpdk.hugepages;
    let drain_timeout = Duration::from_millis(cfg.control.drain_timeout_ms);
    let mut controller = Controller::new(cfg, path.to_path_buf(), shared.clone(), port_infos)?;
    controller.serve()?;

    // SPSC rings for every ordered pair of workers: flow hand-off and TX hand-off.
    let mut work: Vec<Vec<Option<Arc<Ring>>>> = vec![vec![None; workers]; workers];
    let mut txr: Vec<Vec<Option<Arc<Ring>>>> = vec![vec![None; workers]; workers];
    for a in 0..workers {
        for b in 0..workers {
            if a != b {
                work[a][b] = Some(Arc::new(Ring::new(&format!("rvs_w{a}_{b}"), 4096)?));
                txr[a][b] = Some(Arc::new(Ring::new(&format!("rvs_t{a}_{b}"), 4096)?));
            }
        }
    }

    for (w, &lcore) in lcores.iter().take(workers).enumerate() {
        // The connection table from DPDK's hugepages when the EAL has them
        // (on the worker's NUMA socket), else anonymous memory hinted for
        // transparent huge pages.
        let mem = if hugepages {
            TableMemory::Dpdk {
                socket: eal::lcore_socket(lcore),
            }
        } else {
            TableMemory::Thp
        };
        let pipeline = Pipeline::with_table_memory(w, workers, per_worker, &shared, mem);
        tracing::info!(
            worker = w,
            capacity = per_worker,
            bytes = pipeline.conns.memory_bytes(),
            conn_memory = %shared.conn_memory(w),
            "connection table allocated"
        );
        let worker = Worker {
            id: w,
            ports: ports.clone(),
            kernel_of: kernel_of.clone(),
            port_of_tap: port_of_tap.clone(),
            work_out: work[w].clone(),
            work_in: (0..workers).map(|a| work[a][w].clone()).collect(),
            tx_out: txr[w].clone(),
            tx_in: (0..workers).map(|a| txr[a][w].clone()).collect(),
            pool,
            pipeline,
            shared: shared.clone(),
        };
        launch(lcore, worker)?;
    }
    tracing::info!(workers, ports = ports.len(), "rvs ready: forwarding");

    let mut last_log = std::time::Instant::now();
    let mut last_ports = std::time::Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(10));
        if signals.stop.load(Relaxed) || shared.stop.load(Relaxed) {
            break;
        }
        if signals.reload.swap(false, Relaxed) {
            controller.reload();
        }
        controller.tick();
        proc::reap_orphans();
        if last_ports.elapsed() >= Duration::from_secs(1) {
            last_ports = std::time::Instant::now();
            let st = ports.iter().map(port::stats).collect();
            *shared.port_stats.lock().unwrap_or_else(|p| p.into_inner()) = st;
        }
        if last_log.elapsed() >= Duration::from_secs(10) {
            last_log = std::time::Instant::now();
            let r = shared.report();
            tracing::debug!(
                rx = r.rx_packets,
                tx = r.tx_packets,
                conns = r.conns,
                drops = r.drops_total,
                "stats"
            );
        }
    }

    let failed = shared
        .worker_failed
        .load(std::sync::atomic::Ordering::Acquire);
    tracing::info!("stopping");
    // [bgp]: withdraw the VIPs first and keep forwarding through the grace
    // time while the router moves the flows to the other directors (BIRD's
    // withdrawal crosses the exception path, so the workers must run).
    if let Some(grace) = controller.shutdown_bgp() {
        tracing::info!(
            grace_ms = grace.as_millis() as u64,
            "bgp: withdrawn; forwarding through the grace time"
        );
        let t0 = std::time::Instant::now();
        while t0.elapsed() < grace && !failed {
            std::thread::sleep(Duration::from_millis(10));
            controller.tick();
        }
    }
    // [ha]: hand the addresses over (VRRP priority 0) while still forwarding.
    if controller.shutdown_ha() {
        // The priority-0 advert and the last sync messages sit in the
        // TAP's queue until a worker polls it: keep forwarding a moment.
        // The peer now takes the traffic (and, with sync, the connections):
        // that hand-over is the drain of a director in an [ha] group.
        std::thread::sleep(Duration::from_millis(50));
    } else if !failed {
        drain(&shared, &mut controller, drain_timeout);
    }
    shared.stop.store(true, Relaxed);
    // SAFETY: waits for every worker lcore launched above to return.
    unsafe { dpdk_ffi::rte_eal_mp_wait_lcore() };
    let mut report = shared.report();
    report.ports = ports.iter().map(port::stats).collect();
    println!("rvs-stats {}", serde_json::to_string(&report)?);
    for p in &ports {
        port::shutdown(p);
    }
    // SAFETY: all lcores are idle and every DPDK object is released.
    unsafe { dpdk_ffi::rte_eal_cleanup() };
    kernel.restore();
    if failed {
        bail!("a worker panicked (see the log above): stopped");
    }
    Ok(())
}

/// After the last established connection's FIN, forward a little longer:
/// the final ACKs of the close still cross the director.
const DRAIN_LINGER: Duration = Duration::from_millis(200);
/// A count of established connections not answered by every worker in
/// this time (a `list --conns` took the dump over) is asked for again.
const DRAIN_ASK_AGAIN: Duration = Duration::from_millis(500);

/// Drain before exit: refuse new connections (counted `draining`) and keep
/// forwarding until no TCP connection is established or `grace` is over.
/// Half-open, closing and TIME_WAIT entries and UDP flows do not hold the
/// exit (a SYN flood's SYN_RECV entries would otherwise hold it for the
/// whole grace time). The count comes from the workers' tables through
/// the `list --conns` dump. A second SIGINT/SIGTERM exits at once
/// (`Signals`).
fn drain(shared: &Shared, controller: &mut Controller, grace: Duration) {
    use std::time::Instant;
    if grace.is_zero() {
        return;
    }
    shared.draining.store(true, Relaxed);
    let t0 = Instant::now();
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "draining: new connections are refused"
    );
    let mut req = shared.conn_dump.request(0);
    let mut asked = Instant::now();
    let mut established: Option<u64> = None;
    let mut idle_since: Option<Instant> = None;
    loop {
        if let Some(n) = shared.conn_dump.established(req) {
            if established != Some(n) {
                tracing::debug!(established = n, "draining");
            }
            established = Some(n);
            idle_since = if n == 0 {
                idle_since.or(Some(Instant::now()))
            } else {
                None
            };
            req = shared.conn_dump.request(0);
            asked = Instant::now();
        } else if asked.elapsed() >= DRAIN_ASK_AGAIN {
            req = shared.conn_dump.request(0);
            asked = Instant::now();
        }
        if idle_since.is_some_and(|t| t.elapsed() >= DRAIN_LINGER) {
            tracing::info!(
                ms = t0.elapsed().as_millis() as u64,
                "drained: no connection established"
            );
            return;
        }
        if t0.elapsed() >= grace {
            tracing::warn!(
                established,
                "drain time over: exiting with connections still established"
            );
            return;
        }
        if shared
            .worker_failed
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return;
        }
        controller.tick();
        proc::reap_orphans();
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Launches `worker` on `lcore` through the EAL (which pins it).
fn launch(lcore: u32, worker: Worker) -> Result<()> {
    extern "C" fn entry(arg: *mut c_void) -> c_int {
        // SAFETY: arg is the Box<Worker> leaked by `launch`, taken back once.
        let worker = unsafe { Box::from_raw(arg as *mut Worker) };
        let (id, shared) = (worker.id, worker.shared.clone());
        // A panic must not unwind into the EAL (see `guard`).
        super::guard::run_guarded(id, &shared.worker_failed, &shared.stop, move || {
            worker.run()
        })
    }
    let arg = Box::into_raw(Box::new(worker)) as *mut c_void;
    // SAFETY: entry has the lcore_function_t signature; arg stays valid until
    // entry takes it back.
    let rc = unsafe { dpdk_ffi::rte_eal_remote_launch(Some(entry), arg, lcore) };
    if rc != 0 {
        // SAFETY: the launch failed, so entry never ran; reclaim the box.
        drop(unsafe { Box::from_raw(arg as *mut Worker) });
        bail!(
            "cannot launch a worker on lcore {lcore}: {}",
            eal::strerror(rc)
        );
    }
    Ok(())
}

/// SIGINT/SIGTERM set `stop` (a second one exits at once); SIGHUP sets
/// `reload`.
struct Signals {
    stop: Arc<std::sync::atomic::AtomicBool>,
    reload: Arc<std::sync::atomic::AtomicBool>,
}

impl Signals {
    fn install() -> Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reload = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // A second SIGINT/SIGTERM while the first is being handled exits at
        // once (status 1), as an impatient operator expects.
        signal_hook::flag::register_conditional_shutdown(SIGINT, 1, stop.clone())?;
        signal_hook::flag::register_conditional_shutdown(SIGTERM, 1, stop.clone())?;
        signal_hook::flag::register(SIGINT, stop.clone())?;
        signal_hook::flag::register(SIGTERM, stop.clone())?;
        signal_hook::flag::register(SIGHUP, reload.clone())?;
        Ok(Signals { stop, reload })
    }
}

impl Shared {
    pub fn report(&self) -> StatsReport {
        StatsReport::sum(self.worker_stats.iter().map(|s| &**s))
    }
}

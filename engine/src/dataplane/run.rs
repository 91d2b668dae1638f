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
use super::ring::Ring;
use super::snapshot::PortInfo;
use super::worker::Worker;
use super::{eal, kernel, Shared};
use crate::config::Config;
use crate::control::Controller;

/// Runs the director in the foreground until SIGINT/SIGTERM.
pub fn run(cfg: Config, path: &Path) -> Result<()> {
    // Signals first: a SIGHUP or SIGTERM during start-up (EAL, ports) must
    // not kill the process half set up; they are acted on once it runs.
    let signals = Signals::install()?;
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
    let pool = port::create_pool(mbufs)?;
    let mut ports: Vec<Port> = Vec::new();
    for pc in &cfg.ports {
        let p = port::setup(&pc.device, workers as u16, pc.mtu, pool)
            .with_context(|| format!("port `{}`", pc.name))?;
        tracing::info!(
            port = %pc.name, id = p.id, mac = %p.mac, rxq = p.rx_queues, txq = p.tx_queues,
            address = %pc.address, "port up"
        );
        ports.push(p);
    }
    // Exception path: one TAP per port, with the port's MAC and address, so
    // the kernel in this namespace owns the director's own traffic.
    let nports = ports.len();
    let mut kernel_of: Vec<Option<usize>> = vec![None; nports];
    for (i, pc) in cfg.ports.iter().enumerate() {
        if !pc.exception_path {
            continue;
        }
        if let Some(iface) = kernel::af_packet_iface(&pc.device) {
            kernel::isolate_af_packet(iface);
        }
        let tap = port::setup(&eal::tap_device(i), 1, pc.mtu, pool)
            .with_context(|| format!("exception path of port `{}`", pc.name))?;
        port::set_mac(&tap, ports[i].mac)?;
        kernel::configure(&pc.tap_name, pc)
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
            pipeline: Pipeline::new(w, workers, per_worker, &shared),
            shared: shared.clone(),
        };
        launch(lcore, worker)?;
    }
    tracing::info!(workers, ports = ports.len(), "rvs ready: forwarding");

    let mut last_log = std::time::Instant::now();
    let mut last_ports = std::time::Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(10));
        if signals.stop.load(Relaxed) {
            break;
        }
        if signals.reload.swap(false, Relaxed) {
            controller.reload();
        }
        controller.tick();
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

    tracing::info!("stopping");
    // [ha]: hand the addresses over (VRRP priority 0) while still forwarding.
    if controller.shutdown_ha() {
        // The priority-0 advert and the last sync messages sit in the
        // TAP's queue until a worker polls it: keep forwarding a moment.
        std::thread::sleep(Duration::from_millis(50));
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
    Ok(())
}

/// Launches `worker` on `lcore` through the EAL (which pins it).
fn launch(lcore: u32, worker: Worker) -> Result<()> {
    extern "C" fn entry(arg: *mut c_void) -> c_int {
        // SAFETY: arg is the Box<Worker> leaked by `launch`, taken back once.
        let worker = unsafe { Box::from_raw(arg as *mut Worker) };
        worker.run();
        0
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

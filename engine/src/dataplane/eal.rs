//! EAL initialisation from the `[dpdk]` and `[[port]]` sections.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};

use anyhow::{bail, Context, Result};

use crate::config::Config;

/// True when `device` names a PCI device (`0000:3b:00.0` or `3b:00.0`), false
/// for a vdev string (`net_af_packet0,iface=veth0`).
pub fn is_pci(device: &str) -> bool {
    let d = device.split(',').next().unwrap_or("");
    let parts: Vec<&str> = d.split([':', '.']).collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    match parts.as_slice() {
        [dom, bus, dev, f] => hex(dom, 4) && hex(bus, 2) && hex(dev, 2) && hex(f, 1),
        [bus, dev, f] => hex(bus, 2) && hex(dev, 2) && hex(f, 1),
        _ => false,
    }
}

/// The name DPDK gives the ethdev of a device string: the part before the
/// first comma (`net_af_packet0`, or the PCI address).
pub fn device_name(device: &str) -> &str {
    device.split(',').next().unwrap_or(device)
}

/// The ethdev name of port `i`'s exception-path TAP (the tap driver takes
/// any name that starts with `net_tap`).
pub fn tap_device(i: usize) -> String {
    format!("net_taprvs{i}")
}

/// The EAL argument vector for a configuration.
pub fn eal_args(cfg: &Config) -> Vec<String> {
    let mut a = vec!["rvs".to_string(), "--lcores".into(), cfg.dpdk.cores.clone()];
    a.push("-m".into());
    a.push(cfg.dpdk.memory_mb.to_string());
    // Several directors (and the benchmark's generator) can run side by
    // side: no shared files (--no-huge implies legacy memory, which
    // --in-memory refuses, so that case uses --no-shconf and its own prefix).
    if cfg.dpdk.hugepages {
        a.push("--in-memory".into());
    } else {
        a.push("--no-huge".into());
        a.push("--no-shconf".into());
    }
    a.push(format!("--file-prefix=rvs{}", std::process::id()));
    let mut any_pci = false;
    for p in &cfg.ports {
        if is_pci(&p.device) {
            any_pci = true;
            a.push("-a".into());
            a.push(p.device.clone());
        } else {
            a.push("--vdev".into());
            a.push(p.device.clone());
        }
    }
    for (i, p) in cfg.ports.iter().enumerate() {
        if p.exception_path {
            a.push("--vdev".into());
            a.push(format!("{},iface={}", tap_device(i), p.tap_name));
        }
    }
    if !any_pci {
        a.push("--no-pci".into());
    }
    a.extend(cfg.dpdk.extra_args.iter().cloned());
    a
}

/// Initialises the EAL. Call once per process.
pub fn init(args: &[String]) -> Result<()> {
    let cargs: Vec<CString> = args
        .iter()
        .map(|s| CString::new(s.as_str()).context("EAL argument with a NUL byte"))
        .collect::<Result<_>>()?;
    // rte_eal_init may permute argv; it keeps pointers into the strings, so
    // both live for the rest of the process.
    let cargs: &'static [CString] = Box::leak(cargs.into_boxed_slice());
    let argv: &'static mut [*mut c_char] = Box::leak(
        cargs
            .iter()
            .map(|c| c.as_ptr() as *mut c_char)
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    tracing::info!(args = %args.join(" "), "initialising DPDK EAL");
    // SAFETY: argv points to argc valid NUL-terminated strings that outlive the
    // process; the EAL is initialised once.
    let rc = unsafe { dpdk_ffi::rte_eal_init(argv.len() as c_int, argv.as_mut_ptr()) };
    if rc < 0 {
        bail!("rte_eal_init failed: {}", last_error());
    }
    Ok(())
}

/// The text of the current `rte_errno`.
pub fn last_error() -> String {
    // SAFETY: rvs_errno reads the thread-local rte_errno; rte_strerror returns
    // a pointer to a static or thread-local NUL-terminated string.
    unsafe {
        let e = dpdk_ffi::rvs_errno();
        CStr::from_ptr(dpdk_ffi::rte_strerror(e))
            .to_string_lossy()
            .into_owned()
            + &format!(" (rte_errno {e})")
    }
}

/// The error text for a negative return code of an ethdev call.
pub fn strerror(rc: c_int) -> String {
    // SAFETY: rte_strerror returns a valid NUL-terminated string for any code.
    unsafe {
        CStr::from_ptr(dpdk_ffi::rte_strerror(-rc))
            .to_string_lossy()
            .into_owned()
    }
}

/// The worker lcores (every enabled lcore but the main one), in order.
pub fn worker_lcores() -> Vec<u32> {
    let mut v = Vec::new();
    // SAFETY: lcore iteration functions only read EAL configuration.
    unsafe {
        let mut i = dpdk_ffi::rte_get_next_lcore(u32::MAX, 1, 0);
        while i < dpdk_ffi::RTE_MAX_LCORE {
            v.push(i);
            i = dpdk_ffi::rte_get_next_lcore(i, 1, 0);
        }
    }
    v
}

/// The NUMA socket of `lcore` (where its connection table is allocated).
pub fn lcore_socket(lcore: u32) -> i32 {
    // SAFETY: reads the EAL's lcore configuration.
    unsafe { dpdk_ffi::rte_lcore_to_socket_id(lcore) as i32 }
}

/// TSC ticks per second.
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value the EAL computed at init.
    unsafe { dpdk_ffi::rvs_get_tsc_hz() }
}

/// Now on the workers' clock (TSC ticks / ticks per ms, as the worker
/// loop computes it), read from any thread: the TSC DPDK relies on is
/// invariant and common to all cores. `None` before the EAL measured it.
pub fn clock_ms() -> Option<u64> {
    let per_ms = tsc_hz() / 1000;
    if per_ms == 0 {
        return None;
    }
    Some(dpdk_ffi::rdtsc() / per_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_or_vdev() {
        assert!(is_pci("0000:3b:00.0"));
        assert!(is_pci("3b:00.1"));
        assert!(!is_pci("net_af_packet0,iface=dc"));
        assert!(!is_pci("net_memif0,role=client"));
        assert_eq!(device_name("net_af_packet0,iface=dc"), "net_af_packet0");
    }
}

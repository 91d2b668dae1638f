//! Ethernet port set-up: one RX and one TX queue per worker where the device
//! has them (SPEC §2); fewer queues mean the first workers poll them and the
//! others get their flows (and send their frames) by hand-off.

use std::ffi::CString;

use anyhow::{bail, Context, Result};

use super::eal::{device_name, strerror};
use super::mbuf::Pool;
use super::rss::{self, Caps, Mode, Role};
use crate::packet::ethernet::MacAddr;

const RX_DESC: u16 = 1024;
const TX_DESC: u16 = 1024;

/// A started port.
#[derive(Debug, Clone)]
pub struct Port {
    pub id: u16,
    pub name: String,
    pub mac: MacAddr,
    pub rx_queues: u16,
    pub tx_queues: u16,
    /// The kernel interface of a `net_af_packet` port (its ring drops are
    /// read from the PMD's sockets).
    pub iface: Option<String>,
    /// How the port's frames reach the workers that own their flows.
    pub rss: Mode,
}

/// Finds the ethdev for `device`, configures `workers` queue pairs (or as
/// many as it has), sets the MTU and starts it. No RSS (the generator's
/// and the exception path's ports).
pub fn setup(device: &str, workers: u16, mtu: u16, pool: Pool) -> Result<Port> {
    setup_rss(device, workers, mtu, pool, None)
}

/// [`setup`], and with a `role`, RSS that delivers both directions of a
/// flow to its owner's queue where the device can (`dataplane::rss`).
pub fn setup_rss(
    device: &str,
    workers: u16,
    mtu: u16,
    pool: Pool,
    role: Option<Role>,
) -> Result<Port> {
    let name = device_name(device);
    let cname = CString::new(name).context("device name")?;
    let mut id: u16 = 0;
    // SAFETY: cname is a valid C string; id is a valid out-pointer.
    let rc = unsafe { dpdk_ffi::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
    if rc != 0 {
        bail!(
            "no DPDK port named `{name}` (device `{device}`): {}",
            strerror(rc)
        );
    }
    let mut info = dpdk_ffi::rte_eth_dev_info::default();
    // SAFETY: id is a valid port id; info is a valid out-pointer.
    let rc = unsafe { dpdk_ffi::rte_eth_dev_info_get(id, &mut info) };
    if rc != 0 {
        bail!("{name}: rte_eth_dev_info_get: {}", strerror(rc));
    }
    let rxq = workers.min(info.max_rx_queues).max(1);
    let txq = workers.min(info.max_tx_queues).max(1);

    let caps = Caps::from_info(&info, rxq);
    let mut mode = match role {
        Some(role) => rss::plan(&caps, role, workers),
        None => Mode::Single,
    };
    let mut key = rss::key_bytes(&mode, &caps);
    let mut conf = dpdk_ffi::rte_eth_conf::default();
    let hf = rss::rss_hf(&mode, &caps);
    if hf != 0 {
        conf.rxmode.mq_mode = dpdk_ffi::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = hf;
        if !key.is_empty() {
            conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
            conf.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
        }
    }
    // SAFETY: id is valid; conf (and the key it points to) live across the call.
    let rc = unsafe { dpdk_ffi::rte_eth_dev_configure(id, rxq, txq, &conf) };
    if rc != 0 {
        bail!(
            "{name}: rte_eth_dev_configure({rxq} rx, {txq} tx): {}",
            strerror(rc)
        );
    }
    let (mut nrx, mut ntx) = (RX_DESC, TX_DESC);
    // SAFETY: id is valid; both pointers are valid in/out values.
    unsafe { dpdk_ffi::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nrx, &mut ntx) };
    // SAFETY: id is valid.
    let socket = unsafe { dpdk_ffi::rte_eth_dev_socket_id(id) }.max(0) as u32;
    for q in 0..rxq {
        // SAFETY: id/q valid; a null rx_conf selects the driver default; pool
        // outlives the port.
        let rc = unsafe {
            dpdk_ffi::rte_eth_rx_queue_setup(id, q, nrx, socket, std::ptr::null(), pool.as_ptr())
        };
        if rc != 0 {
            bail!("{name}: rx queue {q}: {}", strerror(rc));
        }
    }
    for q in 0..txq {
        // SAFETY: id/q valid; a null tx_conf selects the driver default.
        let rc = unsafe { dpdk_ffi::rte_eth_tx_queue_setup(id, q, ntx, socket, std::ptr::null()) };
        if rc != 0 {
            bail!("{name}: tx queue {q}: {}", strerror(rc));
        }
    }
    // memif has no MTU of its own (frames are bounded by its buffers, 2 KiB
    // by default; it reports Ethernet's 1500 whatever is set), and a TAP's
    // kernel side takes what the kernel's interface MTU allows: for these
    // a refusal is a warning, as it was before MTUs were read back.
    let lenient = device.starts_with("net_memif") || device.starts_with("net_tap");
    set_mtu(id, name, mtu, info.max_rx_pktlen, lenient)?;
    // SAFETY: id is configured.
    let rc = unsafe { dpdk_ffi::rte_eth_dev_start(id) };
    if rc != 0 {
        bail!("{name}: start: {}", strerror(rc));
    }
    if let Mode::Rss(_) = mode {
        if let Err(reason) = program_rss(id, name, &caps, &key, hf, workers) {
            mode = Mode::Handoff {
                reason,
                spread_hf: hf,
            };
        }
    }
    let mut mac = dpdk_ffi::rte_ether_addr::default();
    // SAFETY: id is valid; mac is a valid out-pointer.
    unsafe { dpdk_ffi::rte_eth_macaddr_get(id, &mut mac) };
    Ok(Port {
        id,
        name: name.to_string(),
        mac: MacAddr(mac.addr_bytes),
        rx_queues: rxq,
        tx_queues: txq,
        iface: super::kernel::af_packet_iface(device).map(str::to_string),
        rss: mode,
    })
}

/// Programs the RETA of a started port in RSS-ownership mode and reads the
/// hash configuration back: a device that took something else cannot be
/// trusted to steer, and the port falls back to the hand-off rings.
fn program_rss(
    id: u16,
    name: &str,
    caps: &Caps,
    key: &[u8],
    hf: u64,
    workers: u16,
) -> std::result::Result<(), String> {
    let mut reta = rss::reta_conf(caps.reta_size, usize::from(workers));
    // SAFETY: id is started; reta holds reta_size / 64 groups.
    let rc =
        unsafe { dpdk_ffi::rte_eth_dev_rss_reta_update(id, reta.as_mut_ptr(), caps.reta_size) };
    if rc != 0 {
        return Err(format!(
            "RSS: device {name} refuses its redirection table ({})",
            strerror(rc)
        ));
    }
    let mut back = vec![0u8; key.len().max(64)];
    let mut got = dpdk_ffi::rte_eth_rss_conf {
        rss_key: back.as_mut_ptr(),
        rss_key_len: key.len() as u8,
        rss_hf: 0,
    };
    // SAFETY: id is started; got points to a buffer of at least rss_key_len bytes.
    let rc = unsafe { dpdk_ffi::rte_eth_dev_rss_hash_conf_get(id, &mut got) };
    if rc != 0 {
        return Err(format!(
            "RSS: device {name} cannot report its hash configuration ({})",
            strerror(rc)
        ));
    }
    if back[..key.len()] != *key || got.rss_hf & hf != hf {
        return Err(format!(
            "RSS: device {name} did not take the symmetric key and client-only fields (rss_hf {:#x})",
            got.rss_hf
        ));
    }
    Ok(())
}

/// Sets the MTU and reads it back: the snapshot (egress MTU checks, ICMP
/// frag-needed) uses the configured value, so a device that refuses it or
/// settles for less must stop start-up rather than drop frames silently.
fn set_mtu(id: u16, name: &str, mtu: u16, max_frame: u32, lenient: bool) -> Result<()> {
    // SAFETY: id is valid and stopped.
    let rc = unsafe { dpdk_ffi::rte_eth_dev_set_mtu(id, mtu) };
    if rc != 0 && lenient {
        tracing::warn!(
            port = name,
            mtu,
            max_frame,
            "the device does not take mtu = {mtu} ({}); going on (memif/TAP)",
            strerror(rc)
        );
        return Ok(());
    }
    // Some drivers (memif) cannot change their MTU at all: what they run
    // with, read back below, decides.
    if rc != 0 && rc != -libc::ENOTSUP {
        bail!(
            "mtu = {mtu}: the device refuses it: {} (it takes frames of at most {max_frame} bytes)",
            strerror(rc)
        );
    }
    let mut got: u16 = 0;
    // SAFETY: id is valid; got is a valid out-pointer.
    let rc = unsafe { dpdk_ffi::rte_eth_dev_get_mtu(id, &mut got) };
    if rc != 0 {
        bail!("{name}: cannot read the MTU back: {}", strerror(rc));
    }
    if got < mtu && lenient {
        tracing::warn!(
            port = name,
            mtu,
            reported = got,
            "the device reports {got} whatever is set (memif/TAP); going on with mtu = {mtu}"
        );
        return Ok(());
    }
    if got < mtu {
        if rc != 0 {
            bail!(
                "mtu = {mtu}: the device cannot change its MTU ({}) and runs with {got}",
                strerror(rc)
            );
        }
        bail!("mtu = {mtu}: the device runs with {got}");
    }
    Ok(())
}

/// The mbuf data room (headroom included) that holds a whole frame of the
/// largest configured MTU in one segment (rvs does not enable scatter):
/// Ethernet header, one VLAN tag and the CRC on top of the MTU, and never
/// less than DPDK's default.
pub fn data_room(max_mtu: u16) -> u16 {
    let frame = u32::from(max_mtu) + 14 + 4 + 4;
    let room = frame.next_multiple_of(1024).max(2048) + dpdk_ffi::RTE_PKTMBUF_HEADROOM;
    room.min(u32::from(u16::MAX)) as u16
}

/// Sets a port's MAC (the exception-path TAP takes its port's, so the
/// kernel answers for the same station; the tap driver sets the kernel
/// interface's address too).
pub fn set_mac(port: &Port, mac: MacAddr) -> Result<()> {
    let mut a = dpdk_ffi::rte_ether_addr { addr_bytes: mac.0 };
    // SAFETY: the port is valid; a points to a valid address.
    let rc = unsafe { dpdk_ffi::rte_eth_dev_default_mac_addr_set(port.id, &mut a) };
    if rc != 0 {
        bail!("{}: cannot set MAC {mac}: {}", port.name, strerror(rc));
    }
    Ok(())
}

/// The device's counters.
pub fn stats(port: &Port) -> super::counters::PortStats {
    let mut st = dpdk_ffi::rte_eth_stats::default();
    // SAFETY: the port is valid; st is a valid out-pointer.
    unsafe { dpdk_ffi::rte_eth_stats_get(port.id, &mut st) };
    super::counters::PortStats {
        name: port.name.clone(),
        ipackets: st.ipackets,
        opackets: st.opackets,
        imissed: st.imissed,
        ierrors: st.ierrors,
        oerrors: st.oerrors,
        rx_nombuf: st.rx_nombuf,
        rx_ring_drops: port.iface.as_deref().map_or(0, ring_drops),
    }
}

/// The RX ring drops of an af_packet port's interface (0, logged, if its
/// sockets cannot be read).
fn ring_drops(iface: &str) -> u64 {
    match super::ring_drops::read(iface) {
        Ok(c) => c.drops,
        Err(e) => {
            tracing::warn!(iface, "cannot read the af_packet ring statistics: {e}");
            0
        }
    }
}

/// Stops and closes a port.
pub fn shutdown(port: &Port) {
    // SAFETY: the port was started by `setup`; workers have stopped.
    unsafe {
        dpdk_ffi::rte_eth_dev_stop(port.id);
        dpdk_ffi::rte_eth_dev_close(port.id);
    }
}

/// Creates the packet mempool shared by all ports and workers (each lcore
/// has its own cache in front of it, so there is no contention).
pub fn create_pool(n: u32, data_room: u16) -> Result<Pool> {
    let name = CString::new("rvs_mbufs").unwrap();
    // SAFETY: name is valid; -1 socket id = any.
    let p = unsafe { dpdk_ffi::rte_pktmbuf_pool_create(name.as_ptr(), n, 256, 0, data_room, -1) };
    // SAFETY: a pool from rte_pktmbuf_pool_create lives for the process.
    let pool = unsafe { Pool::from_raw(p) }.with_context(|| {
        format!(
            "cannot create a pool of {n} mbufs of {data_room} bytes: {} \
             (jumbo MTUs need dpdk.memory_mb of about {} or more)",
            super::eal::last_error(),
            u64::from(n) * (u64::from(data_room) + 256) / (1 << 20) + 64
        )
    })?;
    super::mbuf::publish_packet_pool(pool);
    Ok(pool)
}

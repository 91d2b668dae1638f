//! The kernel side of the exception path: the TAP interface DPDK's tap
//! driver created gets the port's address (and default route), so ordinary
//! sockets in the director's namespace (health checks, sync, ping) work
//! while the NIC belongs to DPDK. Cold path: runs `ip` once at start-up.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::config::PortConfig;

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Gives `iface` the port's address, MTU and (if any) default route, and
/// turns IPv6 off on it (rvs does not route IPv6 yet).
pub fn configure(iface: &str, pc: &PortConfig) -> Result<()> {
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{iface}/disable_ipv6"), "1");
    let addr = format!("{}/{}", pc.address, pc.prefix_len);
    ip(&["addr", "flush", "dev", iface])?;
    ip(&["addr", "add", &addr, "dev", iface])?;
    ip(&[
        "link",
        "set",
        "dev",
        iface,
        "mtu",
        &pc.mtu.to_string(),
        "up",
    ])?;
    if let Some(gw) = pc.gateway {
        ip(&[
            "route",
            "replace",
            "default",
            "via",
            &gw.to_string(),
            "dev",
            iface,
        ])?;
    }
    Ok(())
}

/// The interface a `net_af_packet` device string reads (`iface=NAME`).
pub fn af_packet_iface(device: &str) -> Option<&str> {
    if !device.starts_with("net_af_packet") {
        return None;
    }
    device.split(',').find_map(|kv| kv.strip_prefix("iface="))
}

/// With `net_af_packet` the kernel still sees every frame of the interface
/// DPDK reads, and (weak host model) would answer for the director's own
/// addresses, which now live on the TAP, a second time. Strict reverse-path
/// filtering and `arp_ignore = 8` make the kernel leave that interface's
/// IPv4 and ARP to DPDK; frames still reach DPDK (packet sockets see them
/// before IP does).
pub fn isolate_af_packet(iface: &str) {
    for (key, val) in [
        ("rp_filter", "1"),
        ("arp_ignore", "8"),
        ("arp_announce", "2"),
    ] {
        let path = format!("/proc/sys/net/ipv4/conf/{iface}/{key}");
        if let Err(e) = std::fs::write(&path, val) {
            tracing::warn!(iface, key, "cannot set {path}: {e}");
        }
    }
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{iface}/disable_ipv6"), "1");
}

#[cfg(test)]
mod tests {
    #[test]
    fn af_packet_iface_names() {
        assert_eq!(
            super::af_packet_iface("net_af_packet0,iface=dc,qpairs=1"),
            Some("dc")
        );
        assert_eq!(super::af_packet_iface("net_memif0,role=server"), None);
    }
}

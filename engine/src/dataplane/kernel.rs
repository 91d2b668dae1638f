//! The kernel side of the exception path: the TAP interface DPDK's tap
//! driver created gets the port's address, so ordinary sockets in the
//! director's namespace (health checks, sync, ping) work while the NIC
//! belongs to DPDK. Cold path: runs `ip` a few times at start-up and exit.
//!
//! A port's gateway goes into a routing table of its own
//! ([`EXCEPTION_TABLE_BASE`] + port index), never into the main table: on a
//! real host the main table's default route is the management network's,
//! and the director must not take it over. Two rules select that table:
//! sockets bound to the port's address always use it (pref
//! [`RULE_FROM_PREF`] + index), and every other socket falls back to it only
//! when the main table has no route (pref [`RULE_FALLBACK_PREF`] + index,
//! after main's 32766), which keeps a namespace without a default route of
//! its own working as before.
//!
//! Everything changed here (sysctls with their old values, rules, routes)
//! is recorded in [`KernelChanges`] and undone when the director exits.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::config::PortConfig;

/// The exception path of port `i` routes through table `EXCEPTION_TABLE_BASE + i`.
pub const EXCEPTION_TABLE_BASE: u32 = 200;
/// `ip rule` preference of "from <port address> lookup <table>" for port 0.
pub const RULE_FROM_PREF: u32 = 9200;
/// `ip rule` preference of the fallback "lookup <table>" for port 0 (after
/// the main table, pref 32766).
pub const RULE_FALLBACK_PREF: u32 = 40200;

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

/// What start-up changed in the namespace's network configuration, undone
/// in reverse order by [`KernelChanges::restore`] (also on drop).
#[derive(Debug, Default)]
pub struct KernelChanges {
    /// (path under /proc/sys, the value before rvs wrote it).
    sysctls: Vec<(String, String)>,
    /// Arguments after `ip rule del` that remove a rule rvs added.
    rules: Vec<Vec<String>>,
    /// Routing tables rvs filled (flushed on exit).
    tables: Vec<u32>,
}

impl KernelChanges {
    pub fn new() -> KernelChanges {
        KernelChanges::default()
    }

    /// Writes `value` to `/proc/sys/<key>` and remembers the old value (only
    /// the first one, should the same key be written twice).
    pub fn set_sysctl(&mut self, key: &str, value: &str) -> Result<()> {
        self.set_sysctl_at(&format!("/proc/sys/{key}"), value)
    }

    /// [`Self::set_sysctl`] with a full path (tests use a plain file).
    pub fn set_sysctl_at(&mut self, path: &str, value: &str) -> Result<()> {
        let old = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {path}"))?
            .trim()
            .to_string();
        std::fs::write(path, value).with_context(|| format!("cannot write {value} to {path}"))?;
        if !self.sysctls.iter().any(|(p, _)| p == path) {
            self.sysctls.push((path.to_string(), old));
        }
        Ok(())
    }

    /// The sysctls changed so far, with the values they get back.
    pub fn sysctls(&self) -> &[(String, String)] {
        &self.sysctls
    }

    /// Puts everything back: rules first, then tables, then sysctls (each
    /// newest first). Failures are logged, not fatal: exit goes on.
    pub fn restore(&mut self) {
        for args in self.rules.drain(..).rev() {
            let mut a: Vec<&str> = vec!["rule", "del"];
            a.extend(args.iter().map(String::as_str));
            if let Err(e) = ip(&a) {
                tracing::warn!("cannot remove a routing rule: {e:#}");
            }
        }
        for t in self.tables.drain(..).rev() {
            // The TAP's routes vanish with the TAP; flush what is left.
            let _ = ip(&["route", "flush", "table", &t.to_string()]);
        }
        for (path, old) in self.sysctls.drain(..).rev() {
            if let Err(e) = std::fs::write(&path, &old) {
                // A TAP's own keys are gone with the TAP: nothing to restore.
                tracing::debug!("cannot restore {path} = {old}: {e}");
            } else {
                tracing::debug!("restored {path} = {old}");
            }
        }
    }

    /// Gives `iface` (port `index`'s TAP) the port's address and MTU, turns
    /// IPv6 off on it (rvs does not route IPv6 yet) and, with a gateway,
    /// fills the port's own routing table and adds its rules.
    pub fn configure(&mut self, iface: &str, index: usize, pc: &PortConfig) -> Result<()> {
        let _ = self.set_sysctl(&format!("net/ipv6/conf/{iface}/disable_ipv6"), "1");
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
            self.gateway_table(iface, index, pc, &gw.to_string())?;
        }
        Ok(())
    }

    fn gateway_table(
        &mut self,
        iface: &str,
        index: usize,
        pc: &PortConfig,
        gw: &str,
    ) -> Result<()> {
        let table = (EXCEPTION_TABLE_BASE + index as u32).to_string();
        let src = pc.address.to_string();
        let from_pref = (RULE_FROM_PREF + index as u32).to_string();
        let fallback_pref = (RULE_FALLBACK_PREF + index as u32).to_string();
        // Left over by a director that was killed: ours by preference.
        for pref in [&from_pref, &fallback_pref] {
            while ip(&["rule", "del", "pref", pref]).is_ok() {}
        }
        let _ = ip(&["route", "flush", "table", &table]);
        self.tables.push(table.parse().unwrap_or_default());
        let subnet = pc.subnet();
        ip(&[
            "route", "replace", &subnet, "dev", iface, "src", &src, "table", &table,
        ])?;
        ip(&[
            "route", "replace", "default", "via", gw, "dev", iface, "src", &src, "table", &table,
        ])?;
        let from = [
            "from".to_string(),
            format!("{src}/32"),
            "lookup".to_string(),
            table.clone(),
            "pref".to_string(),
            from_pref,
        ];
        let fallback = [
            "lookup".to_string(),
            table.clone(),
            "pref".to_string(),
            fallback_pref,
        ];
        for rule in [from.to_vec(), fallback.to_vec()] {
            let mut a: Vec<&str> = vec!["rule", "add"];
            a.extend(rule.iter().map(String::as_str));
            ip(&a)?;
            self.rules.push(rule);
        }
        tracing::info!(
            tap = iface,
            gateway = gw,
            table,
            "exception path routes through its own table"
        );
        Ok(())
    }

    /// With `net_af_packet` the kernel still sees every frame of the
    /// interface DPDK reads, and (weak host model) would answer for the
    /// director's own addresses, which now live on the TAP, a second time.
    /// Strict reverse-path filtering and `arp_ignore = 8` make the kernel
    /// leave that interface's IPv4 and ARP to DPDK; frames still reach DPDK
    /// (packet sockets see them before IP does).
    pub fn isolate_af_packet(&mut self, iface: &str) {
        for (key, val) in [
            ("rp_filter", "1"),
            ("arp_ignore", "8"),
            ("arp_announce", "2"),
        ] {
            if let Err(e) = self.set_sysctl(&format!("net/ipv4/conf/{iface}/{key}"), val) {
                tracing::warn!(iface, key, "{e:#}");
            }
        }
        let _ = self.set_sysctl(&format!("net/ipv6/conf/{iface}/disable_ipv6"), "1");
    }
}

impl Drop for KernelChanges {
    fn drop(&mut self) {
        self.restore();
    }
}

/// The interface a `net_af_packet` device string reads (`iface=NAME`).
pub fn af_packet_iface(device: &str) -> Option<&str> {
    if !device.starts_with("net_af_packet") {
        return None;
    }
    device.split(',').find_map(|kv| kv.strip_prefix("iface="))
}

#[cfg(test)]
mod tests {
    use super::KernelChanges;

    #[test]
    fn af_packet_iface_names() {
        assert_eq!(
            super::af_packet_iface("net_af_packet0,iface=dc,qpairs=1"),
            Some("dc")
        );
        assert_eq!(super::af_packet_iface("net_memif0,role=server"), None);
    }

    #[test]
    fn sysctls_get_their_first_value_back() {
        let dir = std::env::temp_dir().join(format!("rvs-kernel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("rp_filter");
        let path = p.to_str().unwrap();
        std::fs::write(&p, "2\n").unwrap();
        let mut k = KernelChanges::new();
        k.set_sysctl_at(path, "1").unwrap();
        k.set_sysctl_at(path, "0").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "0");
        assert_eq!(k.sysctls(), &[(path.to_string(), "2".to_string())]);
        drop(k);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "2");
        assert!(KernelChanges::new()
            .set_sysctl_at(dir.join("absent").to_str().unwrap(), "1")
            .is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

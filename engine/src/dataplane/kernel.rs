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
//! A port with an IPv6 address gives it to its TAP too (`nodad`: the data
//! plane answers neighbour solicitations for it, and DAD through the TAP
//! would only hear the director itself), so `ping -6`, IPv6 health checks
//! and other sockets on the director's own IPv6 address work the same way;
//! the IPv6 gateway goes into the port's table with `ip -6` rules of the
//! same preferences.
//!
//! Everything changed here (sysctls with their old values, rules, routes)
//! is recorded in [`KernelChanges`] and undone when the director exits.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::config::{PortConfig, PortIpv6};

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
    /// Arguments after `ip rule del` that remove a rule rvs added (an
    /// IPv6 rule starts with `-6`, which goes before `rule`).
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
            let v6 = args.first().is_some_and(|a| a == "-6");
            let mut a: Vec<&str> = if v6 {
                vec!["-6", "rule", "del"]
            } else {
                vec!["rule", "del"]
            };
            a.extend(args.iter().skip(usize::from(v6)).map(String::as_str));
            if let Err(e) = ip(&a) {
                tracing::warn!("cannot remove a routing rule: {e:#}");
            }
        }
        for t in self.tables.drain(..).rev() {
            // The TAP's routes vanish with the TAP; flush what is left.
            let _ = ip(&["route", "flush", "table", &t.to_string()]);
            let _ = ip(&["-6", "route", "flush", "table", &t.to_string()]);
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

    /// Gives `iface` (port `index`'s TAP) the port's address and MTU, its
    /// IPv6 address if it has one (IPv6 off on the TAP otherwise) and, with
    /// a gateway, fills the port's own routing table and adds its rules.
    pub fn configure(&mut self, iface: &str, index: usize, pc: &PortConfig) -> Result<()> {
        self.ipv6_sysctls(iface, pc.ipv6.is_some());
        let addr = format!("{}/{}", pc.address, pc.prefix_len);
        ip(&["addr", "flush", "dev", iface])?;
        ip(&["addr", "add", &addr, "dev", iface])?;
        if let Some(v6) = &pc.ipv6 {
            let addr6 = format!("{}/{}", v6.address, v6.prefix_len);
            ip(&["-6", "addr", "add", &addr6, "dev", iface, "nodad"])?;
        }
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
        if let Some(v6) = pc.ipv6.filter(|v6| v6.gateway.is_some()) {
            self.gateway_table6(iface, index, &v6)?;
        }
        Ok(())
    }

    /// IPv6 on the TAP: on with the port's IPv6 address, without duplicate
    /// address detection (the data plane defends the address), router
    /// advertisements or autoconfiguration (the configuration is the only
    /// source of addresses and routes); off without one.
    fn ipv6_sysctls(&mut self, iface: &str, on: bool) {
        let keys: &[(&str, &str)] = if on {
            &[
                ("disable_ipv6", "0"),
                ("accept_dad", "0"),
                ("dad_transmits", "0"),
                ("accept_ra", "0"),
                ("autoconf", "0"),
            ]
        } else {
            &[("disable_ipv6", "1")]
        };
        for (key, val) in keys {
            if let Err(e) = self.set_sysctl(&format!("net/ipv6/conf/{iface}/{key}"), val) {
                tracing::warn!(iface, key, "{e:#}");
            }
        }
    }

    /// The IPv6 half of [`Self::gateway_table`]: the port's IPv6 subnet and
    /// default route in the same table, and `ip -6` rules with the same
    /// preferences.
    fn gateway_table6(&mut self, iface: &str, index: usize, v6: &PortIpv6) -> Result<()> {
        let Some(gw) = v6.gateway else {
            return Ok(());
        };
        let (gw, src) = (gw.to_string(), v6.address.to_string());
        let table = (EXCEPTION_TABLE_BASE + index as u32).to_string();
        let from_pref = (RULE_FROM_PREF + index as u32).to_string();
        let fallback_pref = (RULE_FALLBACK_PREF + index as u32).to_string();
        for pref in [&from_pref, &fallback_pref] {
            while ip(&["-6", "rule", "del", "pref", pref]).is_ok() {}
        }
        let _ = ip(&["-6", "route", "flush", "table", &table]);
        let t: u32 = table.parse().unwrap_or_default();
        if !self.tables.contains(&t) {
            self.tables.push(t);
        }
        let subnet = v6.subnet();
        ip(&[
            "-6", "route", "replace", &subnet, "dev", iface, "src", &src, "table", &table,
        ])?;
        ip(&[
            "-6", "route", "replace", "default", "via", &gw, "dev", iface, "src", &src, "table",
            &table,
        ])?;
        let rules = [
            vec![
                "-6",
                "from",
                &format!("{src}/128"),
                "lookup",
                &table,
                "pref",
                &from_pref,
            ]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
            ["-6", "lookup", &table, "pref", &fallback_pref]
                .into_iter()
                .map(String::from)
                .collect(),
        ];
        for rule in rules {
            let mut a: Vec<&str> = vec!["-6", "rule", "add"];
            a.extend(rule.iter().skip(1).map(String::as_str));
            ip(&a)?;
            self.rules.push(rule);
        }
        tracing::info!(tap = iface, gateway = %gw, table, "IPv6 exception path routes through its own table");
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

//! `rvs check` on the machine that will run the director: warnings (never
//! errors) about placing worker cores, read from sysfs.
//!
//! A worker busy-polls its NIC queues; on a CPU the scheduler also gives to
//! other tasks, every time slice it loses is a burst of packets waiting in
//! the ring, and on a CPU of another NUMA node than its NIC every packet
//! crosses the interconnect. DPDK deployments isolate the worker CPUs
//! (`isolcpus=`/`nohz_full=` on the kernel command line) and keep them on
//! the NIC's node. These checks apply to PCI ports only: a director on vdevs
//! (tests, a VM with `net_af_packet`) is not a dedicated machine.

use std::path::Path;

use super::Config;

/// Warnings for `cfg` on the machine whose sysfs is mounted at `sys`
/// (`/sys`), one line each.
pub fn warnings(cfg: &Config, sys: &Path) -> Vec<String> {
    let pci: Vec<(&str, &str)> = cfg
        .ports
        .iter()
        .filter(|p| is_pci_address(&p.device))
        .map(|p| (p.name.as_str(), p.device.as_str()))
        .collect();
    if pci.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let workers = &cfg.dpdk.lcores[1..];
    let isolated = std::fs::read_to_string(sys.join("devices/system/cpu/isolated"))
        .ok()
        .and_then(|s| parse_cpulist(&s));
    for w in workers {
        if !isolated.as_ref().is_some_and(|l| l.contains(&w.cpu)) {
            out.push(format!(
                "dpdk.cores: worker lcore {} runs on CPU {}, which is not isolated (isolcpus=/nohz_full= on the kernel command line): other tasks will take time slices from its poll loop",
                w.lcore, w.cpu
            ));
        }
    }
    for (name, addr) in pci {
        let dev = sys.join("bus/pci/devices").join(full_pci_address(addr));
        if !dev.exists() {
            out.push(format!(
                "port `{name}`: no PCI device {addr} on this machine (lspci -D lists them)"
            ));
            continue;
        }
        let node = std::fs::read_to_string(dev.join("numa_node"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let Some(node) = node.filter(|&n| n >= 0) else {
            continue; // a single-node machine says -1
        };
        let cpus =
            std::fs::read_to_string(sys.join(format!("devices/system/node/node{node}/cpulist")))
                .ok()
                .and_then(|s| parse_cpulist(&s));
        let Some(cpus) = cpus else { continue };
        for w in workers {
            if !cpus.contains(&w.cpu) {
                out.push(format!(
                    "dpdk.cores: worker lcore {} runs on CPU {}, on another NUMA node than port `{name}` ({addr} is on node {node}): every packet crosses the interconnect",
                    w.lcore, w.cpu
                ));
            }
        }
    }
    out
}

/// `0000:03:00.0` or `03:00.0` (what EAL accepts as a PCI device).
pub fn is_pci_address(s: &str) -> bool {
    let s = s.split(',').next().unwrap_or("");
    let parts: Vec<&str> = s.split(':').collect();
    let hex = |t: &str, n: usize| t.len() == n && t.chars().all(|c| c.is_ascii_hexdigit());
    let devfn = |t: &str| {
        t.split_once('.').is_some_and(|(d, f)| {
            hex(d, 2) && f.len() == 1 && f.chars().all(|c| ('0'..='7').contains(&c))
        })
    };
    match parts.as_slice() {
        [dom, bus, df] => hex(dom, 4) && hex(bus, 2) && devfn(df),
        [bus, df] => hex(bus, 2) && devfn(df),
        _ => false,
    }
}

/// With the domain, as sysfs names devices.
fn full_pci_address(s: &str) -> String {
    let s = s.split(',').next().unwrap_or("").to_ascii_lowercase();
    if s.matches(':').count() == 1 {
        format!("0000:{s}")
    } else {
        s
    }
}

/// A kernel CPU list, `0-3,8,10-11`; `None` when malformed. Empty text is
/// the empty list.
fn parse_cpulist(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?);
                if b < a || b - a > 4096 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn cfg(cores: &str, devices: [&str; 2]) -> Config {
        config::parse(&format!(
            r#"
[dpdk]
cores = "{cores}"
workers = 2
[[port]]
name = "client"
device = "{}"
address = "198.18.0.2/24"
[[port]]
name = "servers"
device = "{}"
address = "198.19.0.2/24"
"#,
            devices[0], devices[1]
        ))
        .unwrap()
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn pci_addresses_and_cpu_lists_parse() {
        for ok in ["0000:03:00.0", "03:00.1", "0000:af:1f.7,rxq=2"] {
            assert!(is_pci_address(ok), "{ok}");
        }
        for bad in [
            "net_af_packet0,iface=eth0",
            "03:00",
            "0000:03:00.8",
            "3:00.0",
            "",
        ] {
            assert!(!is_pci_address(bad), "{bad}");
        }
        assert_eq!(full_pci_address("AF:00.0"), "0000:af:00.0");
        assert_eq!(parse_cpulist("0-2,5\n"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_cpulist("\n"), Some(vec![]));
        assert_eq!(parse_cpulist("2-1"), None);
    }

    #[test]
    fn warns_about_unisolated_cores_and_other_nodes() {
        let dir = std::env::temp_dir().join(format!("rvs-host-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write(&dir, "devices/system/cpu/isolated", "2-3\n");
        write(&dir, "devices/system/node/node0/cpulist", "0-3\n");
        write(&dir, "devices/system/node/node1/cpulist", "4-7\n");
        write(&dir, "bus/pci/devices/0000:03:00.0/numa_node", "0\n");
        write(&dir, "bus/pci/devices/0000:03:00.1/numa_node", "0\n");
        write(&dir, "bus/pci/devices/0000:81:00.0/numa_node", "1\n");

        // vdevs: nothing to say
        let v = cfg(
            "0@0,1@2,2@3",
            ["net_af_packet0,iface=a", "net_af_packet1,iface=b"],
        );
        assert!(warnings(&v, &dir).is_empty());

        // isolated, on the NIC's node: nothing
        let good = cfg("0@0,1@2,2@3", ["0000:03:00.0", "03:00.1"]);
        assert_eq!(warnings(&good, &dir), Vec::<String>::new());

        // CPU 1 is not isolated; port `servers` is on node 1
        let bad = cfg("0@0,1@1,2@3", ["0000:03:00.0", "0000:81:00.0"]);
        let w = warnings(&bad, &dir);
        assert_eq!(w.len(), 3, "{w:#?}");
        assert!(w[0].contains("worker lcore 1 runs on CPU 1, which is not isolated"));
        assert!(w[1].contains("lcore 1 runs on CPU 1, on another NUMA node than port `servers`"));
        assert!(w[2].contains("lcore 2 runs on CPU 3, on another NUMA node than port `servers`"));

        // a device that is not there
        let gone = cfg("0@0,1@2,2@3", ["0000:03:00.0", "0000:04:00.0"]);
        assert_eq!(
            warnings(&gone, &dir),
            ["port `servers`: no PCI device 0000:04:00.0 on this machine (lspci -D lists them)"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Port RSS set-up for flow ownership (SPEC §2): where the device can hash
//! by the client's address and port only, both directions of every flow
//! reach the owner's queue and the hand-off rings stay idle; elsewhere
//! the rings are the fallback. The hash, key and RETA are `conn::rss`'s.
//!
//! IPv6: where the device also hashes IPv6 TCP/UDP by one side's fields,
//! those types are switched on with the same field selection. The key's
//! 16-bit period makes the Toeplitz hash of an IPv6 address and port the
//! hash of the xor of its eight 16-bit words and the port, which is what
//! the owner of an IPv6 flow is (`reta.owner(fold6(addr), port)`): both
//! directions of an IPv6 flow reach their owner's queue too. A device
//! without IPv6 RSS leaves IPv6 to the hand-off rings (IPv4 unaffected).

use std::ffi::CStr;
use std::fmt;

use crate::config::Config;
use crate::conn::rss;

/// `RTE_ETH_RSS_*` bits (function-like macros in rte_ethdev.h, which
/// bindgen does not evaluate).
pub mod hf {
    pub const IPV4: u64 = 1 << 2;
    pub const NONFRAG_IPV4_TCP: u64 = 1 << 4;
    pub const NONFRAG_IPV4_UDP: u64 = 1 << 5;
    pub const IPV6: u64 = 1 << 8;
    pub const NONFRAG_IPV6_TCP: u64 = 1 << 10;
    pub const NONFRAG_IPV6_UDP: u64 = 1 << 11;
    /// The IPv4 types the director hashes by one side's fields.
    pub const V4: u64 = IPV4 | NONFRAG_IPV4_TCP | NONFRAG_IPV4_UDP;
    /// The IPv6 types, each switched on where the device offers it.
    pub const V6: u64 = IPV6 | NONFRAG_IPV6_TCP | NONFRAG_IPV6_UDP;
    pub const L3_SRC_ONLY: u64 = 1 << 63;
    pub const L3_DST_ONLY: u64 = 1 << 62;
    pub const L4_SRC_ONLY: u64 = 1 << 61;
    pub const L4_DST_ONLY: u64 = 1 << 60;
}

/// Which side of a flow a port sees the client on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Clients send here: the client is the source (hash source fields).
    Client,
    /// Real servers answer here: the client is the destination.
    Server,
}

impl Role {
    /// The `RTE_ETH_RSS_*` field selection that hashes the client only.
    pub fn fields(self) -> u64 {
        match self {
            Role::Client => hf::L3_SRC_ONLY | hf::L4_SRC_ONLY,
            Role::Server => hf::L3_DST_ONLY | hf::L4_DST_ONLY,
        }
    }
}

/// What a device offers, from `rte_eth_dev_info`.
#[derive(Debug, Clone)]
pub struct Caps {
    pub driver: String,
    pub rss_offloads: u64,
    pub key_size: u8,
    pub reta_size: u16,
    /// RX queues the port gets (`min(workers, max_rx_queues)`).
    pub rx_queues: u16,
}

impl Caps {
    /// Reads the capabilities out of a device's info.
    pub fn from_info(info: &dpdk_ffi::rte_eth_dev_info, rx_queues: u16) -> Caps {
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null driver_name is the PMD's static C string.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Caps {
            driver,
            rss_offloads: info.flow_type_rss_offloads,
            key_size: info.hash_key_size,
            reta_size: info.reta_size,
            rx_queues,
        }
    }
}

/// How a port's frames reach their owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// One worker: nothing to steer.
    Single,
    /// The device hashes the client's address and port with `conn::rss`'s
    /// key and RETA: frames arrive on their owner's queue.
    Rss(Role),
    /// memif: no RSS in the device; the peer places each flow on its
    /// owner's queue (as `perf/src/gen.rs` does with `rte_softrss`).
    Peer,
    /// The device cannot steer by client: frames reach a worker as the
    /// device spreads them (`spread_hf`: its default RSS, if any) and the
    /// hand-off rings carry them to their owners.
    Handoff { reason: String, spread_hf: u64 },
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Single => write!(f, "one worker: no steering needed"),
            Mode::Rss(Role::Client) => write!(
                f,
                "RSS ownership: hashing the client's address and port (source fields)"
            ),
            Mode::Rss(Role::Server) => write!(
                f,
                "RSS ownership: hashing the client's address and port (destination fields)"
            ),
            Mode::Peer => write!(
                f,
                "no RSS (memif): the peer places each flow on its owner's queue \
                 (Toeplitz key and RETA of conn::rss); hand-off rings for the rest"
            ),
            Mode::Handoff { reason, .. } => write!(f, "{reason}; using hand-off rings"),
        }
    }
}

/// The plan for one port: what its device can do for `workers` workers.
pub fn plan(c: &Caps, role: Role, workers: u16) -> Mode {
    if workers <= 1 {
        return Mode::Single;
    }
    let spread_hf = if c.rx_queues > 1 {
        c.rss_offloads & (hf::V4 | hf::V6)
    } else {
        0
    };
    let fallback = |reason: String| Mode::Handoff { reason, spread_hf };
    let dev = &c.driver;
    if c.rx_queues < workers {
        return fallback(format!(
            "RSS: device {dev} has {} RX queue(s) for {workers} workers",
            c.rx_queues
        ));
    }
    if dev == "net_memif" {
        return Mode::Peer;
    }
    let need = hf::NONFRAG_IPV4_TCP | hf::NONFRAG_IPV4_UDP | role.fields();
    if c.rss_offloads & need != need {
        return fallback(format!(
            "RSS: device {dev} cannot hash by client address only"
        ));
    }
    if c.key_size < 16 || !c.key_size.is_multiple_of(2) {
        return fallback(format!(
            "RSS: device {dev} has a {}-byte hash key (the symmetric key needs an even size >= 16)",
            c.key_size
        ));
    }
    let r = usize::from(c.reta_size);
    if r < rss::RETA_SIZE || !r.is_power_of_two() {
        return fallback(format!(
            "RSS: device {dev} has a RETA of {r} entries (ownership needs a power of two >= {})",
            rss::RETA_SIZE
        ));
    }
    Mode::Rss(role)
}

/// `rss_hf` for a port in mode `m` (0: no RSS). IPv6 TCP/UDP are hashed
/// with the same field selection where the device offers them (see the
/// module documentation); a type it does not offer lands on queue 0 and
/// the owner check hands it over.
pub fn rss_hf(m: &Mode, c: &Caps) -> u64 {
    match m {
        Mode::Rss(role) => {
            (c.rss_offloads & (hf::IPV4 | hf::V6))
                | hf::NONFRAG_IPV4_TCP
                | hf::NONFRAG_IPV4_UDP
                | role.fields()
        }
        Mode::Handoff { spread_hf, .. } => *spread_hf,
        Mode::Single | Mode::Peer => 0,
    }
}

/// The start-up line that says how a port's frames reach their owners.
pub fn log_mode(port: &str, m: &Mode, workers: usize) {
    match m {
        Mode::Handoff { .. } => tracing::warn!(port, workers, "{m}"),
        _ => tracing::info!(
            port,
            workers,
            reta = rss::RETA_SIZE,
            "{m} (owner = RETA[toeplitz(client addr, port) % {}], entry i = i % {workers})",
            rss::RETA_SIZE
        ),
    }
}

/// The key a port in mode `m` is configured with (empty: the device's own).
pub fn key_bytes(m: &Mode, c: &Caps) -> Vec<u8> {
    match m {
        Mode::Rss(_) => rss::key(usize::from(c.key_size)),
        _ => Vec::new(),
    }
}

/// The device RETA of `reta_size` entries for `workers` workers, in
/// DPDK's groups of 64.
pub fn reta_conf(reta_size: u16, workers: usize) -> Vec<dpdk_ffi::rte_eth_rss_reta_entry64> {
    let groups = usize::from(reta_size).div_ceil(64);
    (0..groups)
        .map(|g| {
            let mut e = dpdk_ffi::rte_eth_rss_reta_entry64 {
                mask: u64::MAX,
                ..Default::default()
            };
            for (i, q) in e.reta.iter_mut().enumerate() {
                *q = rss::reta_entry(g * 64 + i, workers);
            }
            e
        })
        .collect()
}

/// Which side each configured port sees the clients on. The port holding
/// real servers on its subnet and no VIP faces the servers; every other
/// port faces clients. A one-arm director (one port) hashes by source:
/// the client's frames (all of DR and TUN) are steered, NAT replies are
/// handed off.
pub fn port_roles(cfg: &Config) -> Vec<Role> {
    if cfg.ports.len() <= 1 {
        return vec![Role::Client; cfg.ports.len()];
    }
    cfg.ports
        .iter()
        .map(|p| {
            let has = |a: std::net::IpAddr| match a {
                std::net::IpAddr::V4(v4) => p.contains(v4),
                std::net::IpAddr::V6(_) => false,
            };
            let vip = cfg.services.iter().any(|s| has(s.vip));
            let server = cfg.services.iter().any(|s| {
                s.servers.iter().any(|r| has(r.address))
                    || s.sorry_server.is_some_and(|a| has(a.ip()))
            });
            if server && !vip {
                Role::Server
            } else {
                Role::Client
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(driver: &str, offloads: u64, key: u8, reta: u16, rxq: u16) -> Caps {
        Caps {
            driver: driver.into(),
            rss_offloads: offloads,
            key_size: key,
            reta_size: reta,
            rx_queues: rxq,
        }
    }

    const FULL: u64 = hf::IPV4
        | hf::NONFRAG_IPV4_TCP
        | hf::NONFRAG_IPV4_UDP
        | hf::L3_SRC_ONLY
        | hf::L3_DST_ONLY
        | hf::L4_SRC_ONLY
        | hf::L4_DST_ONLY;

    #[test]
    fn rss_plan_by_device() {
        let nic = caps("net_ixgbe", FULL, 40, 128, 2);
        assert_eq!(plan(&nic, Role::Client, 2), Mode::Rss(Role::Client));
        assert_eq!(plan(&nic, Role::Server, 2), Mode::Rss(Role::Server));
        assert_eq!(
            rss_hf(&plan(&nic, Role::Client, 2), &nic),
            hf::IPV4
                | hf::NONFRAG_IPV4_TCP
                | hf::NONFRAG_IPV4_UDP
                | hf::L3_SRC_ONLY
                | hf::L4_SRC_ONLY
        );
        assert_eq!(
            rss_hf(&plan(&nic, Role::Server, 2), &nic),
            hf::IPV4
                | hf::NONFRAG_IPV4_TCP
                | hf::NONFRAG_IPV4_UDP
                | hf::L3_DST_ONLY
                | hf::L4_DST_ONLY
        );
        assert_eq!(plan(&nic, Role::Client, 1), Mode::Single);
        // A 52-byte key (i40e) and a 512-entry RETA are fine.
        assert_eq!(
            plan(&caps("net_i40e", FULL, 52, 512, 4), Role::Client, 4),
            Mode::Rss(Role::Client)
        );
        assert_eq!(
            plan(&caps("net_memif", 0, 0, 0, 2), Role::Client, 2),
            Mode::Peer
        );

        // Fallbacks, each with its reason.
        let no_src_only = hf::IPV4 | hf::NONFRAG_IPV4_TCP | hf::NONFRAG_IPV4_UDP;
        let m = plan(&caps("net_af_packet", 0, 0, 0, 2), Role::Client, 2);
        assert_eq!(
            m.to_string(),
            "RSS: device net_af_packet cannot hash by client address only; using hand-off rings"
        );
        assert_eq!(rss_hf(&m, &caps("net_af_packet", 0, 0, 0, 2)), 0);
        let c = caps("net_e1000", no_src_only, 40, 128, 2);
        let m = plan(&c, Role::Server, 2);
        assert!(matches!(m, Mode::Handoff { .. }), "{m}");
        // ... which still spreads frames over the queues by the default hash.
        assert_eq!(rss_hf(&m, &c), no_src_only);
        let m = plan(&caps("net_x", FULL, 40, 64, 2), Role::Client, 2);
        assert!(m.to_string().contains("RETA of 64 entries"), "{m}");
        let m = plan(&caps("net_x", FULL, 40, 96, 2), Role::Client, 2);
        assert!(matches!(m, Mode::Handoff { .. }), "{m}");
        let m = plan(&caps("net_x", FULL, 0, 128, 2), Role::Client, 2);
        assert!(m.to_string().contains("0-byte hash key"), "{m}");
        let m = plan(&caps("net_af_packet", 0, 0, 0, 1), Role::Client, 2);
        assert!(m.to_string().contains("1 RX queue(s) for 2 workers"), "{m}");
        let m = plan(&caps("net_memif", 0, 0, 0, 1), Role::Client, 2);
        assert!(matches!(m, Mode::Handoff { .. }), "{m}");
    }

    #[test]
    fn rss_hf_adds_the_ipv6_types_the_device_offers() {
        let nic = caps("net_ice", FULL | hf::V6, 52, 512, 2);
        assert_eq!(
            rss_hf(&plan(&nic, Role::Client, 2), &nic),
            hf::V4 | hf::V6 | hf::L3_SRC_ONLY | hf::L4_SRC_ONLY
        );
        assert_eq!(
            rss_hf(&plan(&nic, Role::Server, 2), &nic),
            hf::V4 | hf::V6 | hf::L3_DST_ONLY | hf::L4_DST_ONLY
        );
        // Only IPv6 TCP offered: UDP over IPv6 is left to the rings.
        let tcp6 = caps("net_x", FULL | hf::NONFRAG_IPV6_TCP, 40, 128, 2);
        assert_eq!(
            rss_hf(&plan(&tcp6, Role::Client, 2), &tcp6),
            hf::V4 | hf::NONFRAG_IPV6_TCP | hf::L3_SRC_ONLY | hf::L4_SRC_ONLY
        );
        // A device without client-only hashing spreads IPv6 too.
        let spread = caps("net_e1000", hf::V4 | hf::V6, 40, 128, 2);
        assert_eq!(
            rss_hf(&plan(&spread, Role::Client, 2), &spread),
            hf::V4 | hf::V6
        );
    }

    #[test]
    fn rss_reta_conf_agrees_with_owner_table() {
        for workers in 1..=5 {
            let soft = rss::Reta::new(workers);
            for size in [128u16, 256, 512] {
                let groups = reta_conf(size, workers);
                assert_eq!(groups.len(), usize::from(size) / 64);
                for h in (0u32..100_000).map(|i| i.wrapping_mul(0x9e37_79b9)) {
                    // The NIC: entry hash % size of its table.
                    let j = h as usize % usize::from(size);
                    let q = groups[j / 64].reta[j % 64];
                    assert_eq!(
                        usize::from(q),
                        soft.queue(h),
                        "{workers} workers, RETA {size}"
                    );
                    assert_eq!(usize::from(q), rss::owner_of_hash(h, workers));
                }
                assert!(groups.iter().all(|g| g.mask == u64::MAX));
            }
        }
    }

    #[test]
    fn rss_port_roles() {
        let cfg = |text: &str| crate::config::parse(text).expect("config");
        let two = cfg(r#"
            [dpdk]
            cores = "0-2"
            workers = 2
            [[port]]
            name = "client"
            device = "net_memif0"
            address = "198.18.0.2/16"
            [[port]]
            name = "servers"
            device = "net_memif1"
            address = "198.19.0.1/24"
            [[service]]
            vip = "198.18.0.100"
            port = 80
            [[service.server]]
            address = "198.19.0.11"
            port = 8080
        "#);
        assert_eq!(port_roles(&two), vec![Role::Client, Role::Server]);
        let one = cfg(r#"
            [dpdk]
            cores = "0-2"
            workers = 2
            [[port]]
            name = "lan"
            device = "net_memif0"
            address = "198.18.0.2/16"
            [[service]]
            vip = "198.18.0.100"
            port = 80
            [[service.server]]
            address = "198.18.0.11"
            port = 8080
        "#);
        assert_eq!(port_roles(&one), vec![Role::Client]);
    }
}

//! `[ha]` and `[bgp]`: the director's peers (VRRP and connection sync,
//! BIRD), typed.

use super::*;

/// `[ha]`: failover between two or more directors (VRRPv3, RFC 5798) and
/// connection sync (SPEC §7).
#[derive(Debug, Clone, PartialEq)]
pub struct HaConfig {
    /// The virtual router id, 1..=255, the same on every director of the
    /// group. Required.
    pub vrid: u8,
    /// 1..=254 (255 is VRRP's address owner); the highest wins. Default 100.
    pub priority: u8,
    /// The `[[port]]` whose segment carries adverts and sync. Default: the
    /// port named "server" or "servers", else the last port.
    pub port: String,
    /// Unicast adverts and sync go to these, on the `port`'s subnet; empty
    /// (the default) = multicast to 224.0.0.18.
    pub peers: Vec<Ipv4Addr>,
    /// 10..=40950 in steps of 10 (VRRPv3 counts centiseconds); default 100.
    pub advert_interval_ms: u32,
    /// A higher priority takes the master role back. Default true.
    pub preempt: bool,
    /// ...after this delay (and after its bulk sync has arrived); at most
    /// [`HaConfig::MAX_PREEMPT_DELAY_MS`]. Default 0.
    pub preempt_delay_ms: u32,
    /// Addresses that move with the master besides the VIPs.
    pub virtual_addresses: Vec<VirtualAddress>,
    /// Stream connection state to the peers. Default true.
    pub sync: bool,
    /// UDP port of the sync messages. Default 8848.
    pub sync_port: u16,
    /// The shared secret of the sync HMAC (mode 0600, at least
    /// [`HaConfig::MIN_KEY_LEN`] bytes); required when `sync` is on.
    pub auth_key_file: Option<PathBuf>,
}

impl HaConfig {
    pub const DEFAULT_PRIORITY: u8 = 100;
    pub const DEFAULT_ADVERT_INTERVAL_MS: u32 = 100;
    pub const MAX_PREEMPT_DELAY_MS: u32 = 3_600_000;
    pub const DEFAULT_SYNC_PORT: u16 = 8848;
    /// Shortest `auth_key_file`, in bytes.
    pub const MIN_KEY_LEN: u64 = 16;

    /// An `[ha]` with the given required values and the SPEC's defaults for
    /// the rest (sync on, so `auth_key_file` still has to be set).
    pub fn new(vrid: u8, port: impl Into<String>) -> HaConfig {
        HaConfig {
            vrid,
            priority: Self::DEFAULT_PRIORITY,
            port: port.into(),
            peers: Vec::new(),
            advert_interval_ms: Self::DEFAULT_ADVERT_INTERVAL_MS,
            preempt: true,
            preempt_delay_ms: 0,
            virtual_addresses: Vec::new(),
            sync: true,
            sync_port: Self::DEFAULT_SYNC_PORT,
            auth_key_file: None,
        }
    }

    /// The advert interval as VRRPv3 sends it: centiseconds (12 bits).
    pub fn advert_interval_cs(&self) -> u16 {
        (self.advert_interval_ms / 10).min(0x0fff) as u16
    }
}

/// `[bgp]`: the VIPs are announced through BIRD 2 running beside rvs
/// (ECMP scale-out, SPEC §7). rvs writes `routes_file` and asks BIRD to
/// reconfigure through `bird_socket`; it never speaks BGP itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpConfig {
    /// BIRD's control socket (what `birdc -s` takes). Default
    /// /run/bird/bird.ctl.
    pub bird_socket: PathBuf,
    /// The `protocol static rvs_vips` file bird.conf includes; rewritten
    /// atomically. Default /etc/bird/rvs-vips.conf.
    pub routes_file: PathBuf,
    /// When a VIP is withdrawn. Default: all three.
    pub withdraw_on: WithdrawOn,
    /// On SIGTERM/SIGINT, the time between the withdrawal and the drain:
    /// the router needs it to move the flows to the other directors before
    /// this one refuses new connections. 0..=600000, default 3000.
    pub shutdown_grace_ms: u32,
}

impl BgpConfig {
    pub const MAX_SHUTDOWN_GRACE_MS: u32 = 600_000;
}

impl Default for BgpConfig {
    fn default() -> Self {
        BgpConfig {
            bird_socket: PathBuf::from("/run/bird/bird.ctl"),
            routes_file: PathBuf::from("/etc/bird/rvs-vips.conf"),
            withdraw_on: WithdrawOn::default(),
            shutdown_grace_ms: 3000,
        }
    }
}

/// `[bgp] withdraw_on`: which events withdraw a VIP. An operator's
/// `rvs ctl bgp withdraw` always does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WithdrawOn {
    /// "shutdown": SIGTERM/SIGINT withdraws every VIP before the drain.
    pub shutdown: bool,
    /// "no-server": a VIP none of whose services has a live server.
    pub no_server: bool,
    /// "backup": every VIP while the director is not master of its `[ha]`
    /// group.
    pub backup: bool,
}

impl WithdrawOn {
    /// The names `withdraw_on` takes.
    pub const NAMES: [&'static str; 3] = ["shutdown", "no-server", "backup"];

    /// Nothing set.
    pub const NONE: WithdrawOn = WithdrawOn {
        shutdown: false,
        no_server: false,
        backup: false,
    };

    /// Sets the event `name`; false if it is not one of [`Self::NAMES`].
    pub fn set(&mut self, name: &str) -> bool {
        match name {
            "shutdown" => self.shutdown = true,
            "no-server" => self.no_server = true,
            "backup" => self.backup = true,
            _ => return false,
        }
        true
    }
}

impl Default for WithdrawOn {
    fn default() -> Self {
        WithdrawOn {
            shutdown: true,
            no_server: true,
            backup: true,
        }
    }
}

/// One of `[ha] virtual_addresses`: "ADDRESS/PREFIX@PORT".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualAddress {
    pub address: Ipv4Addr,
    /// The same as the port's.
    pub prefix_len: u8,
    /// The `[[port]]` it lives on (the `[ha] port` when `@PORT` is left out).
    pub port: String,
}

/// "198.19.0.1/24@server".
impl fmt::Display for VirtualAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.address, self.prefix_len, self.port)
    }
}

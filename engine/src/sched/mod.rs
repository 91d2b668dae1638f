//! Schedulers: pick a real server for a new connection, exactly as IPVS does.
//!
//! Pure code: no DPDK types, no clock reads (time comes in `SchedInput`), no
//! allocation and no locks while scheduling (tables are allocated when a
//! scheduler is built).
//!
//! One scheduler object exists per service and is shared by every worker
//! (`&self`): the state IPVS keeps under a lock (rr cursor, wrr current
//! weight, lblc/lblcr caches) lives here in atomics, so that two workers
//! together produce the same sequence IPVS would produce. A new
//! configuration snapshot keeps a service's scheduler object while the
//! service's scheduler, options and server list ([`DestInfo`]s: addresses,
//! ports, weights, usable flags) are unchanged, so a change elsewhere (a
//! health flap or an edit of another service) neither restarts its cycle
//! nor empties its caches, as the kernel only touches the service that
//! changed; any change to the list builds a new object, which is how "any
//! change to the server list restarts the cycle" (the data plane's
//! `Snapshot::build` does this).
//!
//! # Servers, indexes, candidates
//!
//! Servers are in configuration order and are named by their index `0..n` in
//! the `&[DestInfo]` given to [`build`] and in the live [`Dests`] view given to
//! [`Scheduler::schedule`]; both must describe the same list. IPVS's own list
//! puts the newest server first; rvs keeps the operator's order (SPEC §6).
//!
//! `DestInfo::usable` at build time says whether the server is in the list
//! IPVS would have (present, not removed by a health check). The hash
//! schedulers (dh, sh, mh) and wrr's gcd/maximum are computed from those
//! servers only, exactly as IPVS computes them from its destination list.
//! While the snapshot lives, every pick re-reads the live state through
//! [`Dests`]: a server is a candidate only when it is usable, has weight > 0
//! and is not overloaded (upper threshold). A server that goes down between
//! snapshots keeps its dh/sh/mh buckets and is skipped (or, with the fallback
//! flag, its clients walk to the next bucket).
//!
//! Where IPVS itself differs from that rule:
//! - lblc/lblcr's "is overloaded" test (active > weight while some server has
//!   active < weight / 2) scans every server in the list, including
//!   weight-0 and threshold-overloaded ones, as the kernel does.
//! - lblcr's "drop the most loaded member" considers every member with
//!   weight > 0, even one that is down or overloaded, as the kernel does.
//! - The kernel's lblc cache-hit path does not look at the upper-threshold
//!   overload flag; rvs does (an upper threshold is a hard cap, SPEC §6), so a
//!   cached lblc server over its threshold is replaced by a wlc pick.
//!
//! # Load
//!
//! Load ("overhead") is `active * 256 + inactive` (`ip_vs_dest_conn_overhead`).
//! Weighted comparisons cross-multiply (`a_load * b_weight > b_load *
//! a_weight`), done in 128 bits so that no count or weight can overflow (the
//! kernel uses 64 bits; the results are identical whenever the kernel's do
//! not overflow). On a tie the earlier server wins.
//!
//! # Connection counts across workers (decision)
//!
//! The data plane keeps, per server, one cache-line-padded pair of
//! `active`/`inactive` counters per worker; only that worker writes them
//! (plain relaxed stores, no read-modify-write), and only when one of its
//! connections changes state (created, established, closed, expired), never
//! per packet. `Dests::active(i)` / `Dests::inactive(i)` return the relaxed
//! sum over workers. Cost: a scheduling decision that looks at load (lc, wlc,
//! sed, nq, lblc, lblcr) reads `2 * workers` cache lines per server, which
//! for the handful of workers and servers of a director is a few hundred
//! nanoseconds at most, only on new connections; in exchange there is no
//! shared atomic written per packet and no cache line bounced between
//! workers per connection. The sum is not a snapshot (a worker may be between
//! two updates), exactly as IPVS reads its atomics without a lock: a
//! scheduler may see a count that is off by the connections being created
//! concurrently on other workers. The overload flag is maintained the same
//! way: whoever changes a server's counts recomputes it with
//! [`overload_next`] over the summed counts and stores it.
//!
//! # Kernel constants adopted
//!
//! | constant | value | kernel source |
//! |---|---|---|
//! | conn overhead | `active << 8 + inactive` | `ip_vs_dest_conn_overhead` |
//! | dh/sh buckets | 256 | `CONFIG_IP_VS_{DH,SH}_TAB_BITS = 8` |
//! | dh/sh multiplier | 2654435761 | `ip_vs_{dh,sh}_hashkey` |
//! | mh table size | 65521 (any prime accepted; the kernel's default is 4093) | `primes[]`, `CONFIG_IP_VS_MH_TAB_INDEX` |
//! | mh hash keys | 2654435761 / 2654446892 | `generate_hash_secret` |
//! | lblc/lblcr expiration | 24 h | `DEFAULT_EXPIRATION` (sysctl `lblc_expiration`, `lblcr_expiration`) |
//! | lblc/lblcr idle timeout when full | 6 min | `ENTRY_TIMEOUT` |
//! | lblc/lblcr table size | 16384 entries | `IP_VS_LBLC_TAB_SIZE * 16` (`max_size`) |
//! | threshold release without lower | below 3/4 upper | `ip_vs_unbind_dest` |
//! | persistence hold re-check | 60 s | `ip_vs_conn_expire` (`cp->timeout = 60*HZ`) |

use std::fmt;
use std::net::Ipv4Addr;

mod hash;
mod lblc;
mod lblcr;
mod lc;
mod mh;
pub mod persist;
mod rr;
mod wrr;

#[cfg(test)]
mod tests;

pub use hash::{dh_bucket, dh_buckets, sh_bucket, sh_buckets};
pub use mh::{mh_lookup_slot, mh_permutation, mh_table, mh_table_bits};
pub use persist::{mask, PersistTable};

/// The schedulers rvs offers, by their IPVS names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedKind {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Sed,
    Nq,
    Mh,
}

impl SchedKind {
    /// Every scheduler, in the order `rvs check` lists them.
    pub const ALL: [SchedKind; 11] = [
        SchedKind::Rr,
        SchedKind::Wrr,
        SchedKind::Lc,
        SchedKind::Wlc,
        SchedKind::Lblc,
        SchedKind::Lblcr,
        SchedKind::Dh,
        SchedKind::Sh,
        SchedKind::Sed,
        SchedKind::Nq,
        SchedKind::Mh,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SchedKind::Rr => "rr",
            SchedKind::Wrr => "wrr",
            SchedKind::Lc => "lc",
            SchedKind::Wlc => "wlc",
            SchedKind::Lblc => "lblc",
            SchedKind::Lblcr => "lblcr",
            SchedKind::Dh => "dh",
            SchedKind::Sh => "sh",
            SchedKind::Sed => "sed",
            SchedKind::Nq => "nq",
            SchedKind::Mh => "mh",
        }
    }

    pub fn from_name(s: &str) -> Option<SchedKind> {
        SchedKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
    }

    /// "rr, wrr, lc, ..." for error messages.
    pub fn valid_names() -> String {
        SchedKind::ALL.map(|k| k.name()).join(", ")
    }
}

impl fmt::Display for SchedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Number of dh buckets (`1 << CONFIG_IP_VS_DH_TAB_BITS`).
pub const DH_TAB_SIZE: usize = 256;
/// Number of sh buckets (`1 << CONFIG_IP_VS_SH_TAB_BITS`).
pub const SH_TAB_SIZE: usize = 256;
/// The multiplicative hash constant of dh and sh (and of lblc's hash).
pub const HASH_MUL: u32 = 2_654_435_761;
/// Default Maglev table size: 65521, the largest of the kernel's sizes below
/// 2^16 (`CONFIG_IP_VS_MH_TAB_INDEX = 16`; the kernel's own default is 4093,
/// index 12). The larger table keeps the disruption of a server removal
/// small: over 7480 removals from random sets of 3..19 servers, the
/// survivors' keys that moved were 0.3 % on average and under 3 % in all
/// but 3 cases (up to 9 %, all from one set where two servers share a skip,
/// see [`mh_permutation`]); at 4093 the average is 1.2 %. A kernel director
/// built with index 16 computes the same table.
pub const MH_DEFAULT_TABLE_SIZE: u32 = 65521;
/// The table sizes the kernel offers (`CONFIG_IP_VS_MH_TAB_INDEX` 8..17).
/// rvs accepts any prime; these are the ones a kernel director can match.
pub const MH_KERNEL_PRIMES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];
/// lblc/lblcr: entries idle this long are dropped (`DEFAULT_EXPIRATION`,
/// sysctl `net.ipv4.vs.lblc_expiration`/`lblcr_expiration`), and lblcr
/// drops its most loaded member when a set has not changed for this long.
pub const LBLC_DEFAULT_EXPIRATION_MS: u64 = 24 * 60 * 60 * 1000;
/// See [`LBLC_DEFAULT_EXPIRATION_MS`]; the kernel's lblcr default is the same.
pub const LBLCR_DEFAULT_EXPIRATION_MS: u64 = 24 * 60 * 60 * 1000;
/// lblc/lblcr: when the table is over its size, entries idle this long go
/// first (`ENTRY_TIMEOUT`).
pub const LBLC_ENTRY_TIMEOUT_MS: u64 = 6 * 60 * 1000;
/// lblc/lblcr cache entries (`IP_VS_LBLC_TAB_SIZE * 16`: the size past which
/// the kernel starts collecting entries).
pub const LBLC_DEFAULT_CACHE_ENTRIES: usize = 16384;

/// What a scheduler knows about a server when it is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestInfo {
    /// Real server address (mh hashes it into the server's permutation).
    pub addr: Ipv4Addr,
    /// Real server port (mh hashes it too, as the kernel does).
    pub port: u16,
    /// Configured weight.
    pub weight: u32,
    /// Present and up by health check: in the list IPVS would schedule over.
    pub usable: bool,
}

impl DestInfo {
    pub fn new(addr: Ipv4Addr, port: u16, weight: u32, usable: bool) -> DestInfo {
        DestInfo {
            addr,
            port,
            weight,
            usable,
        }
    }
}

/// Per-service scheduler flags and sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedOpts {
    /// sh: hash the source port too (`IP_VS_SVC_F_SCHED_SH_PORT`).
    pub sh_port: bool,
    /// sh: walk to the next available bucket (`IP_VS_SVC_F_SCHED_SH_FALLBACK`).
    pub sh_fallback: bool,
    /// mh: hash the source port too (`IP_VS_SVC_F_SCHED_MH_PORT`).
    pub mh_port: bool,
    /// mh: walk to the next available slot (`IP_VS_SVC_F_SCHED_MH_FALLBACK`).
    pub mh_fallback: bool,
    /// mh: lookup table size, a prime larger than the number of servers.
    pub mh_table_size: u32,
    /// lblc: idle time after which a cache entry is forgotten.
    pub lblc_expiration_ms: u64,
    /// lblcr: idle time after which an entry is forgotten, and the time a
    /// set must stay unchanged before its most loaded member is dropped.
    pub lblcr_expiration_ms: u64,
    /// lblc/lblcr: cache capacity in entries (rounded up to a power of two,
    /// at least 4).
    pub cache_entries: usize,
}

impl Default for SchedOpts {
    fn default() -> SchedOpts {
        SchedOpts {
            sh_port: false,
            sh_fallback: false,
            mh_port: false,
            mh_fallback: false,
            mh_table_size: MH_DEFAULT_TABLE_SIZE,
            lblc_expiration_ms: LBLC_DEFAULT_EXPIRATION_MS,
            lblcr_expiration_ms: LBLCR_DEFAULT_EXPIRATION_MS,
            cache_entries: LBLC_DEFAULT_CACHE_ENTRIES,
        }
    }
}

impl SchedOpts {
    /// Check the options as `rvs check` should, for a service of `servers`
    /// servers. [`build`] never fails: it corrects what this rejects (an mh
    /// table size that is not a prime above the server count becomes the
    /// next such prime).
    pub fn validate(&self, servers: usize) -> Result<(), String> {
        let m = self.mh_table_size;
        if !is_prime(m) {
            return Err(format!("mh table size {m} is not a prime"));
        }
        if (m as usize) <= servers {
            return Err(format!(
                "mh table size {m} must be larger than the number of servers ({servers})"
            ));
        }
        if self.cache_entries == 0 {
            return Err("lblc/lblcr cache size must be positive".into());
        }
        Ok(())
    }
}

/// The packet facts a scheduler may look at. `dst_ip` is the VIP for a
/// normal service; lblc, lblcr and dh key on it as IPVS does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedInput {
    pub src_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_ip: Ipv4Addr,
    pub dst_port: u16,
    /// Monotonic milliseconds (any epoch), used by lblc/lblcr.
    pub now_ms: u64,
}

/// The live state of a service's servers, indexed as at build time.
///
/// The data plane implements it over its snapshot and per-worker counters
/// (see the module documentation); tests implement it over a `Vec`.
pub trait Dests {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Current weight.
    fn weight(&self, i: usize) -> u32;
    /// Present and up by health check.
    fn usable(&self, i: usize) -> bool;
    /// Over its upper threshold (see [`overload_next`]).
    fn overloaded(&self, i: usize) -> bool;
    /// Active connections (TCP established and SYN states).
    fn active(&self, i: usize) -> u32;
    /// Inactive connections (other TCP states, all UDP).
    fn inactive(&self, i: usize) -> u32;
    /// May server `i` take a new connection: present, usable, weight > 0,
    /// not overloaded? One call for the four tests (a scan asks it of
    /// every server it passes; the data plane's view answers it from one
    /// record).
    #[inline]
    fn candidate(&self, i: usize) -> bool {
        i < self.len() && self.usable(i) && self.weight(i) > 0 && !self.overloaded(i)
    }
}

/// A scheduler for one service, shared by every worker.
pub trait Scheduler: Send + Sync {
    fn kind(&self) -> SchedKind;
    /// Pick a server index for a new connection, or `None` when no server
    /// may take it (drop, or sorry server).
    fn schedule(&self, dests: &dyn Dests, input: &SchedInput) -> Option<usize>;
}

/// One scheduler's pick, generic over the view of the servers: called
/// through [`Sched`], the data plane's view (`LiveDests`) is read with
/// direct, inlined calls, not one virtual call per server and question.
pub(super) trait Pick {
    fn kind(&self) -> SchedKind;
    /// [`Scheduler::schedule`].
    fn pick<D: Dests + ?Sized>(&self, d: &D, input: &SchedInput) -> Option<usize>;
}

/// The scheduler of a service: one of the IPVS schedulers, by value.
///
/// The data plane holds this and calls [`Sched::schedule`], a `match` and a
/// direct call of the scheduler's code monomorphized for its view of the
/// servers: on a new connection's path, a `dyn Scheduler` cost one virtual
/// call for the pick and one more for every `Dests` question the pick asked
/// (rr: the length and a candidate test; lc/wlc: four per server). The
/// picks are the same code, so the same sequence. [`Scheduler`] (through
/// `dyn Dests`) stays for callers that have no concrete view.
pub struct Sched(Any);

/// [`Sched`]'s scheduler.
enum Any {
    Rr(rr::Rr),
    Wrr(wrr::Wrr),
    Lc(lc::Lc),
    Wlc(lc::Wlc),
    Sed(lc::Sed),
    Nq(lc::Nq),
    Lblc(lblc::Lblc),
    Lblcr(lblcr::Lblcr),
    Dh(hash::Dh),
    Sh(hash::Sh),
    Mh(mh::Mh),
}

impl Sched {
    /// Build the scheduler of one service for one configuration snapshot.
    /// Allocates here (tables, caches) and never while scheduling.
    pub fn new(kind: SchedKind, opts: &SchedOpts, dests: &[DestInfo]) -> Sched {
        Sched(match kind {
            SchedKind::Rr => Any::Rr(rr::Rr::new()),
            SchedKind::Wrr => Any::Wrr(wrr::Wrr::new(dests)),
            SchedKind::Lc => Any::Lc(lc::Lc),
            SchedKind::Wlc => Any::Wlc(lc::Wlc),
            SchedKind::Sed => Any::Sed(lc::Sed),
            SchedKind::Nq => Any::Nq(lc::Nq),
            SchedKind::Lblc => {
                Any::Lblc(lblc::Lblc::new(opts.cache_entries, opts.lblc_expiration_ms))
            }
            SchedKind::Lblcr => Any::Lblcr(lblcr::Lblcr::new(
                opts.cache_entries,
                opts.lblcr_expiration_ms,
                dests.len(),
            )),
            SchedKind::Dh => Any::Dh(hash::Dh::new(dests)),
            SchedKind::Sh => Any::Sh(hash::Sh::new(dests, opts.sh_port, opts.sh_fallback)),
            SchedKind::Mh => Any::Mh(mh::Mh::new(
                dests,
                opts.mh_table_size,
                opts.mh_port,
                opts.mh_fallback,
            )),
        })
    }

    /// Which of the IPVS schedulers it is.
    pub fn kind(&self) -> SchedKind {
        match &self.0 {
            Any::Rr(s) => s.kind(),
            Any::Wrr(s) => s.kind(),
            Any::Lc(s) => s.kind(),
            Any::Wlc(s) => s.kind(),
            Any::Sed(s) => s.kind(),
            Any::Nq(s) => s.kind(),
            Any::Lblc(s) => s.kind(),
            Any::Lblcr(s) => s.kind(),
            Any::Dh(s) => s.kind(),
            Any::Sh(s) => s.kind(),
            Any::Mh(s) => s.kind(),
        }
    }

    /// [`Scheduler::schedule`] over a view of the servers known here, so
    /// its questions are direct calls (type docs). Named as the trait's
    /// method, which it answers for, so callers read the same.
    #[inline(always)]
    pub fn schedule<D: Dests + ?Sized>(&self, d: &D, input: &SchedInput) -> Option<usize> {
        match &self.0 {
            Any::Rr(s) => s.pick(d, input),
            Any::Wrr(s) => s.pick(d, input),
            Any::Lc(s) => s.pick(d, input),
            Any::Wlc(s) => s.pick(d, input),
            Any::Sed(s) => s.pick(d, input),
            Any::Nq(s) => s.pick(d, input),
            Any::Lblc(s) => s.pick(d, input),
            Any::Lblcr(s) => s.pick(d, input),
            Any::Dh(s) => s.pick(d, input),
            Any::Sh(s) => s.pick(d, input),
            Any::Mh(s) => s.pick(d, input),
        }
    }
}

impl Scheduler for Sched {
    fn kind(&self) -> SchedKind {
        Sched::kind(self)
    }

    fn schedule(&self, dests: &dyn Dests, input: &SchedInput) -> Option<usize> {
        // The inherent method (it comes first): the same code.
        Sched::schedule(self, dests, input)
    }
}

/// Build the scheduler of one service for one configuration snapshot
/// ([`Sched::new`]), behind the trait.
pub fn build(kind: SchedKind, opts: &SchedOpts, dests: &[DestInfo]) -> Box<dyn Scheduler> {
    Box::new(Sched::new(kind, opts, dests))
}

/// IPVS's upper/lower threshold rule, applied whenever a server's
/// connection count (`active + inactive`) changes; returns the new overload
/// flag.
///
/// - `upper == 0`: never overloaded (the kernel clears the flag when the
///   threshold is removed).
/// - `conns >= upper`: overloaded (`ip_vs_bind_dest`).
/// - otherwise an overloaded server stays so until `conns < lower`, or, when
///   `lower == 0`, until `conns * 4 < upper * 3` (`ip_vs_unbind_dest`).
pub fn overload_next(was_overloaded: bool, conns: u32, upper: u32, lower: u32) -> bool {
    if upper == 0 {
        return false;
    }
    if conns >= upper {
        return true;
    }
    if !was_overloaded {
        return false;
    }
    if lower != 0 {
        conns >= lower
    } else {
        (conns as u64) * 4 >= (upper as u64) * 3
    }
}

/// `ip_vs_dest_conn_overhead`: active connections weigh 256 inactive ones.
#[inline]
pub fn conn_overhead(active: u32, inactive: u32) -> u64 {
    ((active as u64) << 8) + inactive as u64
}

#[inline]
fn overhead_of<D: Dests + ?Sized>(d: &D, i: usize) -> u64 {
    conn_overhead(d.active(i), d.inactive(i))
}

/// Usable, weight > 0, not overloaded.
#[inline]
pub(crate) fn is_candidate<D: Dests + ?Sized>(d: &D, i: usize) -> bool {
    d.candidate(i)
}

/// `a_load / a_weight > b_load / b_weight`, cross-multiplied.
#[inline]
fn heavier(a_load: u64, a_weight: u32, b_load: u64, b_weight: u32) -> bool {
    (a_load as u128) * (b_weight as u128) > (b_load as u128) * (a_weight as u128)
}

/// A plain server state, for tests and tools that have no data plane:
/// `Vec<StaticDest>` implements [`Dests`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StaticDest {
    pub weight: u32,
    pub usable: bool,
    pub overloaded: bool,
    pub active: u32,
    pub inactive: u32,
}

impl StaticDest {
    /// Usable, not overloaded, no connections.
    pub fn up(weight: u32) -> StaticDest {
        StaticDest {
            weight,
            usable: true,
            ..StaticDest::default()
        }
    }
}

impl Dests for Vec<StaticDest> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn weight(&self, i: usize) -> u32 {
        self[i].weight
    }
    fn usable(&self, i: usize) -> bool {
        self[i].usable
    }
    fn overloaded(&self, i: usize) -> bool {
        self[i].overloaded
    }
    fn active(&self, i: usize) -> u32 {
        self[i].active
    }
    fn inactive(&self, i: usize) -> u32 {
        self[i].inactive
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

/// Greatest common divisor of the positive weights of the servers that are
/// usable at build time; 0 when there is none.
fn gcd_positive(dests: &[DestInfo]) -> u32 {
    dests
        .iter()
        .filter(|d| d.usable && d.weight > 0)
        .fold(0, |g, d| if g == 0 { d.weight } else { gcd(g, d.weight) })
}

pub(crate) fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut f = 3u32;
    while (f as u64) * (f as u64) <= n as u64 {
        if n.is_multiple_of(f) {
            return false;
        }
        f += 2;
    }
    true
}

/// The smallest prime `>= n` (n small enough that one exists in u32).
pub(crate) fn next_prime(mut n: u32) -> u32 {
    while !is_prime(n) {
        n += 1;
    }
    n
}

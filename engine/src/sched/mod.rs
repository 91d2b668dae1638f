//! Schedulers: pick a real server for a new connection, exactly as IPVS does.
//!
//! Pure code: no DPDK types, no clock reads (time comes in `SchedInput`).
//!
//! One scheduler object exists per service per configuration snapshot and is
//! shared by every worker (`&self`): the state IPVS keeps under a lock (rr
//! cursor, wrr current weight, lblc/lblcr caches) lives here in atomics, so
//! that two workers together produce the same sequence IPVS would produce.
//! A new snapshot builds new scheduler objects, which is how "any change to
//! the server list restarts the cycle".

use std::fmt;

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
        SchedKind::ALL.into_iter().find(|k| k.name() == s)
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

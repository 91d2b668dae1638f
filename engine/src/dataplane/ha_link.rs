//! What the workers and the HA thread share (SPEC §7): who owns the
//! addresses, and the queues that carry connection sync both ways.
//!
//! - `master`: only the master answers ARP for the VIPs and
//!   `virtual_addresses` and forwards their traffic; a backup drops it
//!   (counted `not_master`). A worker reads the flag once per loop.
//! - `out[w]`: worker `w` reports new connections, state changes and
//!   persistence templates; the HA thread drains, batches and sends them.
//! - `install[w]`: what a peer sent, for worker `w` (the owner of the
//!   flow) to put in its own table: the HA thread never writes a worker's
//!   table (SPEC §7). Persistence templates go to worker 0, which writes
//!   them into the shared template table with the data plane's clock.
//!
//! Both are bounded lock-free queues used single-producer/single-consumer
//! (crossbeam's `ArrayQueue`: a push is one CAS, never a lock, never an
//! allocation, never a syscall). A full `out` queue loses that record
//! (counted `sync_lost`); the next state change of the connection sends it
//! again.
//!
//! Bulk copy: the HA thread bumps `bulk_request`; every worker then walks
//! its whole table a slice per loop, pushing each live connection to its
//! `out` queue (worker 0 then the shared persistence templates) (pausing while the queue is full, so the walk is paced by
//! how fast the HA thread sends), and stores the request number in
//! `bulk_done[w]` when its walk is over.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;

use crate::ha::sync::Record;

/// Records one worker may have waiting for the HA thread.
pub const OUT_QUEUE: usize = 65536;
/// Records waiting for one worker to install.
pub const INSTALL_QUEUE: usize = 65536;

pub struct HaLink {
    /// `[ha]` is configured (else the director owns its addresses for ever).
    pub enabled: AtomicBool,
    /// This director owns the VIPs and virtual addresses now.
    pub master: AtomicBool,
    /// Workers report connections (`[ha] sync = true` and running).
    pub sync: AtomicBool,
    pub out: Box<[ArrayQueue<Record>]>,
    pub install: Box<[ArrayQueue<Record>]>,
    /// The bulk copy asked for (0 = none yet).
    pub bulk_request: AtomicU64,
    /// Per worker: the last bulk copy whose walk is finished.
    pub bulk_done: Box<[CachePadded<AtomicU64>]>,
    /// Bumped to make worker 0 send gratuitous ARP for every owned address.
    pub garp_request: AtomicU64,
}

impl HaLink {
    pub fn new(workers: usize) -> HaLink {
        let n = workers.max(1);
        HaLink {
            enabled: AtomicBool::new(false),
            master: AtomicBool::new(true),
            sync: AtomicBool::new(false),
            out: (0..n).map(|_| ArrayQueue::new(OUT_QUEUE)).collect(),
            install: (0..n).map(|_| ArrayQueue::new(INSTALL_QUEUE)).collect(),
            bulk_request: AtomicU64::new(0),
            bulk_done: (0..n)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            garp_request: AtomicU64::new(0),
        }
    }

    /// Configures a director that is part of an `[ha]` group: it starts
    /// without the addresses (VRRP's Initialize state).
    pub fn enable(&self, sync: bool) {
        self.enabled.store(true, Ordering::Relaxed);
        self.master.store(false, Ordering::Release);
        self.sync.store(sync, Ordering::Release);
    }

    pub fn is_master(&self) -> bool {
        self.master.load(Ordering::Acquire)
    }

    pub fn set_master(&self, m: bool) {
        self.master.store(m, Ordering::Release);
    }

    /// Asks every worker for a bulk walk; returns its number.
    pub fn request_bulk(&self) -> u64 {
        self.bulk_request.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Has every worker finished the walk of bulk copy `n`?
    pub fn bulk_walked(&self, n: u64) -> bool {
        self.bulk_done
            .iter()
            .all(|d| d.load(Ordering::Acquire) >= n)
    }

    /// Records waiting in the workers' `out` queues.
    pub fn out_pending(&self) -> usize {
        self.out.iter().map(|q| q.len()).sum()
    }

    pub fn request_garp(&self) {
        self.garp_request.fetch_add(1, Ordering::AcqRel);
    }
}

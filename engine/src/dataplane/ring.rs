//! Single-producer/single-consumer rings between workers (flow hand-off and
//! TX hand-off), over `rte_ring`.

use std::ffi::CString;

use anyhow::{bail, Result};
use dpdk_ffi::rte_mbuf;

use super::mbuf::Mbuf;

pub struct Ring(*mut dpdk_ffi::rte_ring);

// SAFETY: an SPSC rte_ring is safe to use from one producer lcore and one
// consumer lcore at the same time; rvs gives each side to exactly one worker.
unsafe impl Send for Ring {}
// SAFETY: as above; the producer/consumer discipline is kept by construction
// (ring (a, b) is only enqueued by worker a and dequeued by worker b).
unsafe impl Sync for Ring {}

impl Ring {
    pub fn new(name: &str, size: u32) -> Result<Ring> {
        let c = CString::new(name).unwrap();
        let flags = dpdk_ffi::RING_F_SP_ENQ | dpdk_ffi::RING_F_SC_DEQ;
        // SAFETY: c is a valid C string; -1 = any socket.
        let r = unsafe { dpdk_ffi::rte_ring_create(c.as_ptr(), size, -1, flags) };
        if r.is_null() {
            bail!("cannot create ring {name}: {}", super::eal::last_error());
        }
        Ok(Ring(r))
    }

    /// Enqueues one mbuf; gives it back when the ring is full.
    #[inline]
    pub fn push(&self, m: Mbuf) -> Result<(), Mbuf> {
        let p = m.into_raw();
        let objs = [p as *mut std::ffi::c_void];
        // SAFETY: single producer (this worker); objs holds one valid pointer.
        let n = unsafe { dpdk_ffi::rvs_ring_sp_enqueue_burst(self.0, objs.as_ptr(), 1) };
        if n == 1 {
            Ok(())
        } else {
            // SAFETY: the enqueue failed, so we still own p.
            Err(unsafe { Mbuf::from_raw(p) }.expect("non-null"))
        }
    }

    /// Dequeues up to `out.len()` mbufs.
    #[inline]
    pub fn pop_burst(&self, out: &mut [*mut rte_mbuf]) -> usize {
        // SAFETY: single consumer (this worker); out has room for len pointers.
        unsafe {
            dpdk_ffi::rvs_ring_sc_dequeue_burst(
                self.0,
                out.as_mut_ptr() as *mut *mut std::ffi::c_void,
                out.len() as u32,
            ) as usize
        }
    }
}

//! A safe, owning handle to one `rte_mbuf`, and the slice view the engine
//! works on. The packet is never copied: `data_mut` is the mbuf's own buffer.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, Ordering};

use dpdk_ffi::rte_mbuf;

use super::pipeline::Frame;

/// The packet mempool, created once at start-up and never freed while
/// ports or workers run: a plain handle that may be copied between lcores
/// (DPDK mempools are thread-safe, with a cache per lcore).
#[derive(Clone, Copy)]
pub struct Pool(NonNull<dpdk_ffi::rte_mempool>);

// SAFETY: rte_mempool get/put are thread-safe; the pool outlives every user.
unsafe impl Send for Pool {}
// SAFETY: as above.
unsafe impl Sync for Pool {}

impl Pool {
    /// Wraps the pool `rte_pktmbuf_pool_create` returned.
    ///
    /// # Safety
    /// `p` must be a valid mempool that lives as long as any user.
    pub unsafe fn from_raw(p: *mut dpdk_ffi::rte_mempool) -> Option<Pool> {
        NonNull::new(p).map(Pool)
    }

    pub fn as_ptr(self) -> *mut dpdk_ffi::rte_mempool {
        self.0.as_ptr()
    }
}

/// The director's packet pool, once [`publish_packet_pool`] was called
/// (null before, and in processes that have none, e.g. unit tests).
static PACKET_POOL: AtomicPtr<dpdk_ffi::rte_mempool> = AtomicPtr::new(std::ptr::null_mut());

/// Makes `pool` the one [`packet_pool_usage`] reports (called once, by
/// `port::create_pool`).
pub fn publish_packet_pool(pool: Pool) {
    PACKET_POOL.store(pool.as_ptr(), Ordering::Release);
}

/// Mbufs of the packet pool in use now (held by rx rings, workers, hand-off
/// and tx rings, per-lcore caches) and the pool's size; `None` before the
/// pool exists. A leak shows as growth of the first figure under steady
/// traffic, which is what the soak (`perf/soak.sh`) watches through
/// `rvs ctl status` and the `rvs_mbuf_pool_in_use` metric. Cold path: it
/// walks the per-lcore caches.
pub fn packet_pool_usage() -> Option<(u32, u32)> {
    let p = PACKET_POOL.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: a published pool comes from rte_pktmbuf_pool_create and lives
    // for the rest of the process; counting only reads its rings and caches.
    unsafe { Some((dpdk_ffi::rte_mempool_in_use_count(p), (*p).size)) }
}

/// `rte_pktmbuf_mtod`, inline: the first data byte is `buf_addr + data_off`
/// (the C shim's version is a call per use on the hot path).
///
/// # Safety
/// `m` must point to a valid mbuf.
#[inline(always)]
pub unsafe fn mtod(m: *mut rte_mbuf) -> *mut u8 {
    // SAFETY: the caller passes a valid mbuf; data_off lies within its buffer.
    unsafe { ((*m).buf_addr as *mut u8).add((*m).data_off as usize) }
}

/// Prefetches the first cache line of a frame's data.
///
/// # Safety
/// `m` must point to a valid mbuf.
#[inline(always)]
pub unsafe fn prefetch_data(m: *mut rte_mbuf) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint and never faults; the caller passes a
    // valid mbuf.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(mtod(m) as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = m;
}

/// An owned mbuf; dropping it returns it to its pool.
pub struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an mbuf is owned by exactly one `Mbuf` at a time, and moving that
// ownership between lcores (hand-off rings) is how DPDK is meant to be used.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf from rx burst, a ring or alloc.
    ///
    /// # Safety
    /// `p` must be a valid mbuf that nobody else owns or will free.
    #[inline]
    pub unsafe fn from_raw(p: *mut rte_mbuf) -> Option<Mbuf> {
        NonNull::new(p).map(Mbuf)
    }

    /// Gives up ownership (to tx burst or a ring).
    #[inline]
    pub fn into_raw(self) -> *mut rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    /// Allocates from `pool`.
    #[inline]
    pub fn alloc(pool: Pool) -> Option<Mbuf> {
        // SAFETY: pool is a valid mempool created at start-up; the returned
        // mbuf (or null) is exclusively ours.
        unsafe { Mbuf::from_raw(dpdk_ffi::rvs_pktmbuf_alloc(pool.as_ptr())) }
    }

    /// Number of segments: the engine handles single-segment frames only.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        // SAFETY: self.0 is a valid mbuf we own.
        unsafe { self.0.as_ref().nb_segs }
    }

    /// The port the frame arrived on (set by rx burst) or is meant for (set
    /// before a tx hand-off).
    #[inline]
    pub fn port(&self) -> u16 {
        // SAFETY: self.0 is a valid mbuf we own.
        unsafe { self.0.as_ref().port }
    }

    #[inline]
    pub fn set_port(&mut self, port: u16) {
        // SAFETY: self.0 is a valid mbuf we own exclusively.
        unsafe { self.0.as_mut().port = port }
    }

    /// Appends `len` bytes at the tail (for frames the director builds).
    pub fn append(&mut self, len: u16) -> bool {
        // SAFETY: valid owned mbuf; append only moves data_len within the buffer.
        unsafe { !dpdk_ffi::rvs_pktmbuf_append(self.0.as_ptr(), len).is_null() }
    }

    /// Prefetches the first cache line of packet data.
    #[inline]
    pub fn prefetch(&self) {
        // SAFETY: prefetch of a valid address has no side effect.
        unsafe { prefetch_data(self.0.as_ptr()) }
    }
}

impl Frame for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: mtod points at data_len initialised bytes of the first
        // segment, which this handle owns for the borrow's lifetime.
        unsafe {
            let m = self.0.as_ptr();
            std::slice::from_raw_parts(mtod(m) as *const u8, (*m).data_len as usize)
        }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self guarantees exclusive access.
        unsafe {
            let m = self.0.as_ptr();
            std::slice::from_raw_parts_mut(mtod(m), (*m).data_len as usize)
        }
    }

    #[inline]
    fn prepend(&mut self, len: usize) -> bool {
        // SAFETY: valid owned mbuf; prepend checks the headroom and returns
        // null (changing nothing) when it is too small.
        len <= u16::MAX as usize
            && unsafe { !dpdk_ffi::rvs_pktmbuf_prepend(self.0.as_ptr(), len as u16).is_null() }
    }

    #[inline]
    fn trim_front(&mut self, len: usize) -> bool {
        // SAFETY: valid owned mbuf; adj checks the length.
        len <= u16::MAX as usize
            && unsafe { !dpdk_ffi::rvs_pktmbuf_adj(self.0.as_ptr(), len as u16).is_null() }
    }

    fn resize(&mut self, len: usize) -> bool {
        let cur = self.data_len();
        if len > cur {
            return len - cur <= u16::MAX as usize && self.append((len - cur) as u16);
        }
        self.truncate(len);
        true
    }

    #[inline]
    fn truncate(&mut self, len: usize) {
        let cur = self.data().len();
        if len < cur {
            // SAFETY: valid owned mbuf, single segment; trimming less than
            // data_len cannot fail.
            unsafe { dpdk_ffi::rvs_pktmbuf_trim(self.0.as_ptr(), (cur - len) as u16) };
        }
    }
}

impl Mbuf {
    fn data_len(&self) -> usize {
        // SAFETY: valid owned mbuf.
        unsafe { self.0.as_ref().data_len as usize }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; freeing returns it to its pool once.
        unsafe { dpdk_ffi::rvs_pktmbuf_free(self.0.as_ptr()) }
    }
}

//! The memory a connection table's slab and index live in ([`Region`]),
//! and which kind it is ([`TableMemory`]).
//!
//! Random lookups over tens or hundreds of MiB pay a TLB miss on top of each
//! cache miss when the memory is in 4 KiB pages; 2 MiB pages cover 512 times
//! as much per TLB entry. Where the EAL has hugepages (`[dpdk] hugepages =
//! true`), the table comes from DPDK's allocator (`rte_malloc_socket`, on the
//! worker's NUMA socket), which hands out hugetlbfs memory; otherwise it is
//! anonymous memory marked `MADV_HUGEPAGE` (transparent huge pages, when the
//! kernel finds free 2 MiB frames). [`describe`](crate::dataplane::pages)
//! says which pages the memory actually got.
//!
//! This module holds the `unsafe` of the table's memory (the rule: unsafe
//! only in `dataplane`); `conn::ConnTable` only sees slices.

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Where a table asks for its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TableMemory {
    /// Anonymous memory hinted `MADV_HUGEPAGE` (the default).
    #[default]
    Thp,
    /// Anonymous memory hinted `MADV_NOHUGEPAGE`: 4 KiB pages, the baseline
    /// the hugepage figures are compared with.
    SmallPages,
    /// DPDK's allocator on `socket` (`-1`: any), hugetlbfs pages when the
    /// EAL runs with hugepages. Falls back to [`TableMemory::Thp`] (with a
    /// warning) when the EAL is not up or has no room.
    Dpdk { socket: i32 },
}

/// Which allocator a [`Region`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The Rust heap (an anonymous mapping at these sizes).
    Heap,
    /// `rte_malloc_socket`.
    Dpdk,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Heap => "heap",
            Source::Dpdk => "dpdk",
        }
    }
}

/// Where a connection table's memory is: its allocator and the address
/// spans of its slab and index (for [`pages::backing`](super::pages::backing)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpans {
    pub source: Source,
    pub spans: [(usize, usize); 2],
}

impl TableSpans {
    /// `<allocator> <pages>`, e.g. `dpdk hugetlbfs 2 MiB pages` or
    /// `heap thp (AnonHugePages 62 of 64 MiB)`, read from the kernel now.
    pub fn describe(&self) -> String {
        match super::pages::backing(&self.spans) {
            Ok(b) => format!("{} {}", self.source.name(), b.describe()),
            Err(e) => format!(
                "{} (pages unknown: /proc/self/smaps: {e})",
                self.source.name()
            ),
        }
    }
}

/// A fixed array of `n` plain-data elements, allocated once and freed on
/// drop by the allocator it came from. Derefs to a slice: indexing it costs
/// what indexing a `Box<[T]>` costs.
pub struct Region<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    source: Source,
}

// SAFETY: a Region owns its elements exclusively, as a Box<[T]> does.
unsafe impl<T: Copy + Send> Send for Region<T> {}
// SAFETY: shared access only hands out `&[T]`.
unsafe impl<T: Copy + Sync> Sync for Region<T> {}

impl<T: Copy> Region<T> {
    /// `n` elements `f(0..n)` in memory of the kind `mem` asks for (see
    /// [`TableMemory`]); every page is touched here.
    pub fn new(n: usize, mem: TableMemory, f: impl FnMut(usize) -> T) -> Region<T> {
        match mem {
            TableMemory::Thp => Self::heap(n, true, f),
            TableMemory::SmallPages => Self::heap(n, false, f),
            TableMemory::Dpdk { socket } => Self::dpdk(n, socket, f),
        }
    }

    fn heap(n: usize, huge: bool, f: impl FnMut(usize) -> T) -> Region<T> {
        let mut v: Vec<T> = Vec::with_capacity(n);
        // Before the first touch: the hint decides how the pages are backed.
        advise(v.as_ptr() as usize, n * std::mem::size_of::<T>(), huge);
        v.extend((0..n).map(f));
        let b = Box::into_raw(v.into_boxed_slice());
        Region {
            // SAFETY: Box::into_raw never returns null (dangling for n = 0).
            ptr: unsafe { NonNull::new_unchecked(b as *mut T) },
            len: n,
            source: Source::Heap,
        }
    }

    #[cfg(feature = "dpdk")]
    fn dpdk(n: usize, socket: i32, f: impl FnMut(usize) -> T) -> Region<T> {
        match Self::try_dpdk(n, socket, f) {
            Ok(r) => r,
            Err(f) => {
                tracing::warn!(
                    bytes = n * std::mem::size_of::<T>(),
                    socket,
                    "connection table: DPDK's allocator has no room (or the EAL is not up); \
                     using anonymous memory with transparent huge pages"
                );
                Self::heap(n, true, f)
            }
        }
    }

    #[cfg(not(feature = "dpdk"))]
    fn dpdk(n: usize, _socket: i32, f: impl FnMut(usize) -> T) -> Region<T> {
        Self::heap(n, true, f)
    }

    /// `rte_malloc_socket` and fill; gives `f` back when DPDK has no memory.
    #[cfg(feature = "dpdk")]
    fn try_dpdk<F: FnMut(usize) -> T>(n: usize, socket: i32, mut f: F) -> Result<Region<T>, F> {
        let Some(bytes) = n.checked_mul(std::mem::size_of::<T>()) else {
            return Err(f);
        };
        if bytes == 0 {
            return Err(f);
        }
        let align = std::mem::align_of::<T>().max(64) as u32;
        // SAFETY: a NULL type name is allowed; the size and alignment (a power
        // of two) are valid. Returns NULL when the EAL is not initialised or
        // the heap of `socket` cannot grow.
        let p = unsafe { dpdk_ffi::rte_malloc_socket(std::ptr::null(), bytes, align, socket) };
        let Some(ptr) = NonNull::new(p as *mut T) else {
            return Err(f);
        };
        for i in 0..n {
            // SAFETY: `i < n` and the block holds `n` elements, aligned for T.
            unsafe { ptr.as_ptr().add(i).write(f(i)) };
        }
        Ok(Region {
            ptr,
            len: n,
            source: Source::Dpdk,
        })
    }

    /// The allocator this region came from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// Start address and length in bytes (for [`pages::describe`](super::pages::describe)).
    pub fn span(&self) -> (usize, usize) {
        (
            self.ptr.as_ptr() as usize,
            self.len * std::mem::size_of::<T>(),
        )
    }
}

impl<T: Copy> Deref for Region<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: ptr points at `len` initialised elements this region owns.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for Region<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for Region<T> {
    fn drop(&mut self) {
        match self.source {
            Source::Heap => {
                let s = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
                // SAFETY: made by Box::into_raw in `heap` and not freed since.
                drop(unsafe { Box::from_raw(s) });
            }
            Source::Dpdk => {
                #[cfg(feature = "dpdk")]
                // SAFETY: allocated by rte_malloc_socket in `try_dpdk`; T is
                // Copy, so no element needs dropping.
                unsafe {
                    dpdk_ffi::rte_free(self.ptr.as_ptr() as *mut std::ffi::c_void)
                };
            }
        }
    }
}

/// `madvise(MADV_HUGEPAGE)` (or `MADV_NOHUGEPAGE`) over the 2 MiB-aligned
/// part of `[addr, addr+len)`, or all of it for the 4 KiB hint. Only a hint:
/// failure (or THP disabled) changes nothing.
fn advise(addr: usize, len: usize, huge: bool) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        const PAGE: usize = 4096;
        let (start, end, advice) = if huge {
            (
                addr.next_multiple_of(HUGE),
                (addr + len) & !(HUGE - 1),
                libc::MADV_HUGEPAGE,
            )
        } else {
            (
                addr.next_multiple_of(PAGE),
                (addr + len) & !(PAGE - 1),
                libc::MADV_NOHUGEPAGE,
            )
        };
        if end > start {
            // SAFETY: the range lies inside an allocation the caller owns;
            // these advices change no contents, only how pages are backed.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, advice);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (addr, len, huge);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_regions_hold_what_was_written() {
        for mem in [TableMemory::Thp, TableMemory::SmallPages] {
            let mut r = Region::new(1000, mem, |i| i as u64 * 3);
            assert_eq!(r.len(), 1000);
            assert_eq!(r[999], 2997);
            r[5] = 7;
            assert_eq!(r[5], 7);
            assert_eq!(r.source(), Source::Heap);
            assert_eq!(r.span().1, 8000);
        }
        let e: Region<u64> = Region::new(0, TableMemory::Thp, |_| 0);
        assert!(e.is_empty());
    }

    /// Without an EAL, DPDK's allocator returns NULL: the table still gets
    /// memory (from the heap), and says so.
    #[test]
    fn dpdk_without_eal_falls_back_to_the_heap() {
        let r = Region::new(64, TableMemory::Dpdk { socket: -1 }, |i| i as u32);
        assert_eq!(r.source(), Source::Heap);
        assert_eq!(r[63], 63);
    }
}

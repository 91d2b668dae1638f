//! Which pages back a range of this process's memory, from
//! `/proc/self/smaps`: what `rvs ctl status` reports as a worker's
//! `conn_memory` (and the start-up log line). Cold path: reads a /proc file.
//!
//! A hint (`MADV_HUGEPAGE`) is not a result: the kernel hands out a 2 MiB
//! page only when it finds a free 2 MiB frame, and khugepaged may collapse
//! small pages later. So the answer is read from the kernel each time.

/// The pages backing some memory (the sum over the spans asked about).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backing {
    /// Bytes asked about.
    pub bytes: u64,
    /// Bytes in hugetlbfs mappings (DPDK hugepages).
    pub hugetlb_bytes: u64,
    /// Largest kernel page size of the hugetlbfs mappings, bytes.
    pub hugetlb_page: u64,
    /// Bytes in transparent huge pages (`AnonHugePages`), at most the
    /// overlap of each mapping with the spans.
    pub thp_bytes: u64,
}

impl Backing {
    /// One line for logs and status: `hugetlbfs 2 MiB pages`,
    /// `thp (AnonHugePages 62 of 64 MiB)`, `4 KiB pages`.
    pub fn describe(&self) -> String {
        let mib = |b: u64| (b + (1 << 19)) >> 20;
        if self.hugetlb_bytes > 0 && self.hugetlb_bytes >= self.bytes {
            format!("hugetlbfs {}", size(self.hugetlb_page))
        } else if self.hugetlb_bytes > 0 {
            format!(
                "hugetlbfs {} ({} of {} MiB)",
                size(self.hugetlb_page),
                mib(self.hugetlb_bytes),
                mib(self.bytes)
            )
        } else if self.thp_bytes > 0 {
            format!(
                "thp (AnonHugePages {} of {} MiB)",
                mib(self.thp_bytes),
                mib(self.bytes)
            )
        } else {
            "4 KiB pages".to_string()
        }
    }
}

fn size(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{} GiB pages", b >> 30)
    } else if b >= 1 << 20 {
        format!("{} MiB pages", b >> 20)
    } else {
        format!("{} KiB pages", b >> 10)
    }
}

/// What backs `spans` (start, length in bytes) in this process now.
pub fn backing(spans: &[(usize, usize)]) -> std::io::Result<Backing> {
    Ok(parse(&std::fs::read_to_string("/proc/self/smaps")?, spans))
}

/// [`backing`] over the text of an smaps file.
pub fn parse(smaps: &str, spans: &[(usize, usize)]) -> Backing {
    let mut b = Backing {
        bytes: spans.iter().map(|&(_, l)| l as u64).sum(),
        ..Backing::default()
    };
    // The mapping being read: its overlap with the spans, in bytes.
    let mut overlap = 0u64;
    let mut page = 4096u64;
    let mut hugetlb = false;
    // A hugetlbfs mapping: a kernel page size above 4 KiB (or hugetlb
    // pages counted in it).
    let flush = |b: &mut Backing, overlap: u64, page: u64, hugetlb: bool| {
        if overlap > 0 && (hugetlb || page > 4096) {
            b.hugetlb_bytes += overlap;
            b.hugetlb_page = b.hugetlb_page.max(page);
        }
    };
    for line in smaps.lines() {
        if let Some((lo, hi)) = mapping_range(line) {
            flush(&mut b, overlap, page, hugetlb);
            overlap = spans
                .iter()
                .map(|&(s, l)| {
                    let (s, e) = (s as u64, (s + l) as u64);
                    e.min(hi).saturating_sub(s.max(lo))
                })
                .sum();
            page = 4096;
            hugetlb = false;
            continue;
        }
        if overlap == 0 {
            continue;
        }
        let mut f = line.split_whitespace();
        let (Some(key), Some(val)) = (f.next(), f.next()) else {
            continue;
        };
        let kb = val.parse::<u64>().unwrap_or(0) * 1024;
        match key {
            "KernelPageSize:" => page = kb,
            "Shared_Hugetlb:" | "Private_Hugetlb:" if kb > 0 => hugetlb = true,
            "AnonHugePages:" => b.thp_bytes += kb.min(overlap),
            _ => {}
        }
    }
    flush(&mut b, overlap, page, hugetlb);
    b
}

/// `lo-hi perms ...`: a mapping's header line.
fn mapping_range(line: &str) -> Option<(u64, u64)> {
    let first = line.split_whitespace().next()?;
    let (lo, hi) = first.split_once('-')?;
    if lo.is_empty() || !lo.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some((
        u64::from_str_radix(lo, 16).ok()?,
        u64::from_str_radix(hi, 16).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
7f0000000000-7f0004000000 rw-p 00000000 00:00 0
Size:              65536 kB
KernelPageSize:        4 kB
AnonHugePages:     63488 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
7f0004000000-7f0004200000 rw-p 00000000 00:00 0
Size:               2048 kB
KernelPageSize:        4 kB
AnonHugePages:         0 kB
7e0000000000-7e0040000000 rw-s 00000000 00:0f 1234  /memfd:seg_0-0 (deleted)
Size:            1048576 kB
KernelPageSize:     2048 kB
AnonHugePages:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:   65536 kB
";

    #[test]
    fn thp_share_of_an_anonymous_mapping() {
        let b = parse(SMAPS, &[(0x7f00_0000_0000, 64 << 20)]);
        assert_eq!(b.thp_bytes, 62 << 20);
        assert_eq!(b.hugetlb_bytes, 0);
        assert_eq!(b.describe(), "thp (AnonHugePages 62 of 64 MiB)");
    }

    #[test]
    fn small_pages_when_nothing_is_huge() {
        let b = parse(SMAPS, &[(0x7f00_0400_0000, 1 << 20)]);
        assert_eq!(b.describe(), "4 KiB pages");
    }

    #[test]
    fn hugetlbfs_mapping() {
        let b = parse(
            SMAPS,
            &[(0x7e00_0010_0000, 32 << 20), (0x7e00_1000_0000, 8 << 20)],
        );
        assert_eq!(b.hugetlb_bytes, 40 << 20);
        assert_eq!(b.hugetlb_page, 2 << 20);
        assert_eq!(b.describe(), "hugetlbfs 2 MiB pages");
    }

    #[test]
    fn reads_this_process() {
        let v = vec![1u8; 1 << 20];
        let b = backing(&[(v.as_ptr() as usize, v.len())]).expect("smaps");
        assert_eq!(b.bytes, 1 << 20);
        assert_eq!(b.hugetlb_bytes, 0);
    }
}

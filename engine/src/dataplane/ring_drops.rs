//! Frames the kernel dropped because a `net_af_packet` port's RX ring was
//! full (rvs issue 12, item 17).
//!
//! DPDK 22.11's af_packet PMD reads frames from a memory-mapped TPACKET_V2
//! ring per queue; when the workers fall behind, the kernel drops frames at
//! the ring and counts them only in the socket's `PACKET_STATISTICS`, which
//! the PMD never reads, so `imissed` stays 0 under a flood that loses half
//! the frames. The PMD opens its sockets internally, so they are found here
//! by scanning this process's descriptors: packet sockets bound to the port's
//! interface that use TPACKET_V2 (other packet sockets, e.g. a capture, keep
//! the default version; the exception path is a TAP, not a packet socket).
//!
//! Cold path (the stats reader, about once a second): a few syscalls per
//! descriptor. Reading the statistics resets the kernel's counters, so the
//! totals are kept here, per socket.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::Mutex;

const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V2: libc::c_int = 1;

/// `struct tpacket_stats` (linux/if_packet.h).
#[repr(C)]
#[derive(Default)]
struct TpacketStats {
    tp_packets: u32,
    tp_drops: u32,
}

/// What the kernel counted at an interface's PMD sockets since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RingCounts {
    /// Frames offered to the rings (taken and dropped).
    pub packets: u64,
    /// Frames dropped because a ring was full.
    pub drops: u64,
}

/// Running totals per socket (inode): interface index and counts. Kept for
/// closed sockets too, so the totals never go back.
static TOTALS: Mutex<BTreeMap<u64, (i32, RingCounts)>> = Mutex::new(BTreeMap::new());

/// The ring counts of the PMD sockets on `iface` since start (cumulative).
pub fn read(iface: &str) -> io::Result<RingCounts> {
    let ifindex = ifindex(iface)?;
    let socks = pmd_sockets(ifindex)?;
    let mut totals = TOTALS.lock().unwrap_or_else(|p| p.into_inner());
    for (fd, inode) in socks {
        let Some(st) = packet_statistics(fd) else {
            continue;
        };
        let t = &mut totals
            .entry(inode)
            .or_insert((ifindex, RingCounts::default()))
            .1;
        t.packets += u64::from(st.tp_packets);
        t.drops += u64::from(st.tp_drops);
    }
    Ok(totals
        .values()
        .filter(|(i, _)| *i == ifindex)
        .fold(RingCounts::default(), |a, (_, c)| RingCounts {
            packets: a.packets + c.packets,
            drops: a.drops + c.drops,
        }))
}

fn ifindex(iface: &str) -> io::Result<i32> {
    let name = std::ffi::CString::new(iface)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name"))?;
    // SAFETY: name is a valid C string for the duration of the call.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if i == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i as i32)
}

/// This process's packet sockets bound to interface `ifindex` with a
/// TPACKET_V2 ring: (descriptor, socket inode).
pub fn pmd_sockets(ifindex: i32) -> io::Result<Vec<(RawFd, u64)>> {
    let mut out = Vec::new();
    for ent in std::fs::read_dir("/proc/self/fd")? {
        let Ok(ent) = ent else { continue };
        let Some(fd) = ent
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
        else {
            continue;
        };
        let Ok(link) = std::fs::read_link(ent.path()) else {
            continue;
        };
        let Some(inode) = link
            .to_str()
            .and_then(|s| s.strip_prefix("socket:["))
            .and_then(|s| s.strip_suffix(']'))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if bound_ifindex(fd) == Some(ifindex) && packet_version(fd) == Some(TPACKET_V2) {
            out.push((fd, inode));
        }
    }
    Ok(out)
}

/// The interface a packet socket is bound to (`None`: not a packet socket).
fn bound_ifindex(fd: RawFd) -> Option<i32> {
    // SAFETY: an all-zero sockaddr_ll is a valid value.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: sa and len are valid out-pointers of the given size; a stale
    // or non-socket fd only makes the call fail.
    let rc = unsafe { libc::getsockname(fd, (&mut sa as *mut libc::sockaddr_ll).cast(), &mut len) };
    (rc == 0 && i32::from(sa.sll_family) == libc::AF_PACKET).then_some(sa.sll_ifindex)
}

fn packet_version(fd: RawFd) -> Option<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid out-pointers of the given size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            PACKET_VERSION,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(v)
}

/// The socket's counts since the last read (the kernel resets them).
fn packet_statistics(fd: RawFd) -> Option<TpacketStats> {
    let mut st = TpacketStats::default();
    let mut len = std::mem::size_of::<TpacketStats>() as libc::socklen_t;
    // SAFETY: st and len are valid out-pointers of the given size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            PACKET_STATISTICS,
            (&mut st as *mut TpacketStats).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(st)
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use super::*;

    /// A packet socket on `lo` that nobody reads, with a tiny receive
    /// buffer, TPACKET_V2 if `v2` (as the PMD sets it).
    fn packet_socket(v2: bool) -> Option<OwnedFd> {
        let proto = (libc::ETH_P_ALL as u16).to_be() as libc::c_int;
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::EPERM), "socket: {e}");
            return None;
        }
        // SAFETY: fd is a new descriptor we own.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: zeroed sockaddr_ll is valid; the fields are set below.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sa.sll_ifindex = ifindex("lo").unwrap();
        let small: libc::c_int = 4096;
        // SAFETY: valid pointers and sizes for each call.
        unsafe {
            assert_eq!(
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&small as *const libc::c_int).cast(),
                    4
                ),
                0
            );
            if v2 {
                assert_eq!(
                    libc::setsockopt(
                        fd,
                        libc::SOL_PACKET,
                        PACKET_VERSION,
                        (&TPACKET_V2 as *const libc::c_int).cast(),
                        4
                    ),
                    0
                );
            }
            assert_eq!(
                libc::bind(
                    fd,
                    (&sa as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t
                ),
                0,
                "bind: {}",
                io::Error::last_os_error()
            );
        }
        Some(owned)
    }

    #[test]
    fn finds_the_ring_sockets_of_an_interface_and_accumulates_their_drops() {
        let (Some(ring), Some(other)) = (packet_socket(true), packet_socket(false)) else {
            eprintln!("skipped: packet sockets need CAP_NET_RAW");
            return;
        };
        let lo = ifindex("lo").unwrap();
        let found = pmd_sockets(lo).unwrap();
        let fds: Vec<RawFd> = found.iter().map(|f| f.0).collect();
        assert!(fds.contains(&ring.as_raw_fd()), "{fds:?}");
        assert!(
            !fds.contains(&other.as_raw_fd()),
            "a non-ring socket: {fds:?}"
        );
        // Overflow the never-read socket: 2000 datagrams over loopback.
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let before = read("lo").unwrap();
        for _ in 0..2000 {
            tx.send_to(&[0u8; 512], to).unwrap();
        }
        let after = read("lo").unwrap();
        assert!(
            after.drops >= before.drops + 1000,
            "ring drops {before:?} -> {after:?}"
        );
        assert!(after.packets >= before.packets + 2000, "{after:?}");
        // Reading resets the kernel's counters; the totals stay.
        let again = read("lo").unwrap();
        assert!(again.drops >= after.drops);
        drop(ring);
        assert!(read("lo").unwrap().drops >= after.drops, "kept after close");
    }
}

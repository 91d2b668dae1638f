//! Runs a command with a deadline: `exec` health checks and the `[notify]
//! exec` hook.
//!
//! The child gets its own process group; at the deadline the whole group is
//! killed (SIGKILL), as keepalived does with a MISC_CHECK script that times
//! out, and so is what is left of the group when the command ends (a
//! backgrounded `sleep 1000` must not outlive its check). The group is
//! killed while the leader is still an unreaped zombie (`waitid` with
//! `WNOWAIT`), so its id cannot have been reused.
//!
//! The child inherits no descriptor but 0, 1 and 2: DPDK opens its packet
//! sockets and TAP queues without `O_CLOEXEC`, and a check script holding
//! them would keep the interfaces busy after the director exits. Before
//! exec every descriptor from 3 up is marked close-on-exec
//! (`close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`, or `fcntl` one by one on
//! kernels before 5.11); std's own exec-error pipe is already close-on-exec,
//! so a failed exec is still reported.
//!
//! Descendants that leave the group (`setsid`) and outlive their parent
//! are re-parented to the director once [`become_subreaper`] ran, and
//! [`reap_orphans`] collects them. It peeks at exited children with
//! `WNOWAIT` and reaps only those no `run_bounded` owns (registered under
//! [`OWNED`]'s lock from spawn to reap), so it never steals an exit status
//! std is waiting for. Its stdout and stderr are read to the end by two small threads that
//! keep the first [`KEEP`] bytes of each and throw the rest away, so a
//! command that floods its output never blocks on a full pipe and never
//! costs memory. Input, if any, is written by a third thread, so a command
//! that does not read it cannot block the caller either.

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Bytes of stdout and of stderr kept for messages.
pub const KEEP: usize = 512;

/// How long to wait for the output pipes to close after the command ended
/// (a background grandchild may hold them open).
const PIPE_GRACE: Duration = Duration::from_millis(200);

/// Children a `run_bounded` spawned and has not reaped yet: the orphan
/// reaper leaves them to their owner. Held across spawn, so a child that
/// exits at once is registered before the reaper can see it.
static OWNED: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

fn owned() -> std::sync::MutexGuard<'static, Vec<libc::pid_t>> {
    OWNED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Unregisters a child from [`OWNED`] when its `run_bounded` is done with it
/// (reaped, or dropped on an error path: then the reaper collects it).
struct Owned(libc::pid_t);

impl Drop for Owned {
    fn drop(&mut self) {
        owned().retain(|&p| p != self.0);
    }
}

/// Makes this process the reaper of its orphaned descendants
/// (`PR_SET_CHILD_SUBREAPER`), so a daemonising check script ends up as our
/// child and [`reap_orphans`] can collect it instead of it lingering under
/// the host's init with the director's descriptors.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only sets a process flag.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reaps exited children that no `run_bounded` owns (orphans re-parented
/// to the subreaper); returns how many. Non-blocking; call it now and then.
/// Stops at the first exited child that is owned (its owner reaps it; the
/// others are seen on a later call).
pub fn reap_orphans() -> usize {
    let mut n = 0;
    for _ in 0..64 {
        let reg = owned();
        let Some(pid) = exited_child(libc::P_ALL, 0) else {
            break;
        };
        if reg.contains(&pid) {
            break;
        }
        let mut status = 0;
        // SAFETY: waitpid on a child that has exited (seen above) and that
        // nobody else waits for (not registered, and registration is
        // serialised by the lock we hold); status is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        drop(reg);
        if r != pid {
            break;
        }
        tracing::debug!(pid, status, "reaped an orphaned process");
        n += 1;
    }
    n
}

/// An exited, not yet reaped child (`waitid` with `WNOWAIT`: it stays a
/// zombie, so its pid and process group id cannot be reused), selected by
/// `idtype`/`id` as waitid(2) does.
fn exited_child(idtype: libc::idtype_t, id: libc::id_t) -> Option<libc::pid_t> {
    // SAFETY: an all-zero siginfo_t is valid (plain integers and padding).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: info is a valid out-pointer; WNOHANG never blocks and
    // WNOWAIT leaves the child waitable.
    let rc = unsafe {
        libc::waitid(
            idtype,
            id,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: waitid filled info (si_pid stays 0 when no child has exited).
    let pid = unsafe { info.si_pid() };
    (rc == 0 && pid != 0).then_some(pid)
}

/// In the child between fork and exec: marks every descriptor from 3 up
/// close-on-exec. Only system calls (async-signal-safe, no allocation).
fn cloexec_from_3() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor
    // flags of this (child) process.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return;
    }
    // Kernels before 5.11: one by one, up to the descriptor limit.
    // SAFETY: sysconf has no memory effects.
    let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.clamp(256, 1 << 16) as libc::c_int;
    for fd in 3..max {
        // SAFETY: fcntl on a descriptor number that may not be open (then
        // it fails with EBADF and nothing changes).
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFD);
            if fl >= 0 {
                libc::fcntl(fd, libc::F_SETFD, fl | libc::FD_CLOEXEC);
            }
        }
    }
}

/// How a bounded run ended.
#[derive(Debug)]
pub struct Finished {
    /// `None`: killed at the deadline.
    pub status: Option<ExitStatus>,
    pub took: Duration,
    /// The first bytes of stdout and stderr.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Bytes written to stdout and stderr in all (at least what was kept).
    pub output_bytes: u64,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// "exit status 3", "killed by signal 9", "timed out after 500 ms
    /// (killed)".
    pub fn describe(&self, timeout: Duration) -> String {
        match self.status {
            None => format!("timed out after {} ms (killed)", timeout.as_millis()),
            Some(s) => match (s.code(), s.signal()) {
                (Some(c), _) => format!("exit status {c}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                _ => format!("{s}"),
            },
        }
    }

    /// The first line of stderr (else of stdout), printable, at most 200
    /// characters; empty when there was no output.
    pub fn output_line(&self) -> String {
        let src = if self.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
            &self.stderr
        } else {
            &self.stdout
        };
        let text = String::from_utf8_lossy(src);
        let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        printable(line.trim(), 200)
    }
}

/// `s` with control characters replaced, cut to `max` characters.
pub fn printable(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// Runs `cmd` until it exits or `timeout` passes (then its process group
/// is killed). `stdin`, if given, is written to its standard input.
pub fn run_bounded(
    mut cmd: Command,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> io::Result<Finished> {
    let t0 = Instant::now();
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    // SAFETY: the hook runs in the forked child before exec and makes only
    // async-signal-safe system calls (no allocation, no locks).
    unsafe {
        cmd.pre_exec(|| {
            cloexec_from_3();
            Ok(())
        })
    };
    let mut reg = owned();
    let mut child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    reg.push(pid);
    drop(reg);
    let _owned = Owned(pid);

    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // EPIPE when the command does not read its input is fine.
        spawn_named("rvs-exec-in", move || {
            let _ = pipe.write_all(&data);
        });
    }
    let (tx, rx) = mpsc::channel();
    let mut readers = 0;
    if let Some(out) = child.stdout.take() {
        readers += 1;
        let tx = tx.clone();
        spawn_named("rvs-exec-out", move || {
            let _ = tx.send((false, drain(out)));
        });
    }
    if let Some(err) = child.stderr.take() {
        readers += 1;
        let tx = tx.clone();
        spawn_named("rvs-exec-err", move || {
            let _ = tx.send((true, drain(err)));
        });
    }
    drop(tx);

    let deadline = t0 + timeout;
    let mut nap = Duration::from_millis(1);
    let status = loop {
        if exited_child(libc::P_PID, pid as libc::id_t).is_some() {
            // What the command left running in its group goes with it. The
            // leader is an unreaped zombie: the group id is still ours.
            // SAFETY: kill(2) on the child's own process group; no memory
            // is involved.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            break Some(child.wait()?);
        }
        let now = Instant::now();
        if now >= deadline {
            // SAFETY: kill(2) on the child's own process group (it is its
            // leader: process_group(0)); no memory is involved.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(20));
    };
    let took = t0.elapsed();

    let mut fin = Finished {
        status,
        took,
        stdout: Vec::new(),
        stderr: Vec::new(),
        output_bytes: 0,
    };
    let grace = Instant::now() + PIPE_GRACE;
    for _ in 0..readers {
        let left = grace.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((is_err, (kept, total))) => {
                fin.output_bytes += total;
                if is_err {
                    fin.stderr = kept;
                } else {
                    fin.stdout = kept;
                }
            }
            // A grandchild still holds a pipe: its reader finishes when it
            // exits; we do not wait for it.
            Err(_) => break,
        }
    }
    Ok(fin)
}

/// Reads `r` to the end: (the first KEEP bytes, the total).
fn drain(mut r: impl Read) -> (Vec<u8>, u64) {
    let mut kept = Vec::new();
    let mut total = 0u64;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                if kept.len() < KEEP {
                    let take = n.min(KEEP - kept.len());
                    kept.extend_from_slice(&buf[..take]);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    (kept, total)
}

fn spawn_named(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = thread::Builder::new().name(name.to_string()).spawn(f) {
        tracing::warn!("cannot start a thread ({name}): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn exit_codes_and_output() {
        let f = run_bounded(sh("echo hello; exit 0"), None, Duration::from_secs(5)).unwrap();
        assert!(f.success());
        assert_eq!(f.stdout, b"hello\n");
        let f = run_bounded(
            sh("echo out; echo 'bad thing' >&2; exit 3"),
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(!f.success());
        assert_eq!(f.describe(Duration::from_secs(5)), "exit status 3");
        assert_eq!(f.output_line(), "bad thing");
    }

    #[test]
    fn a_hanging_command_is_killed_with_its_children() {
        let t0 = Instant::now();
        // the background sleep holds the pipes too: killed with the group
        let f = run_bounded(sh("sleep 30 & sleep 30"), None, Duration::from_millis(300)).unwrap();
        assert!(f.status.is_none());
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        assert_eq!(
            f.describe(Duration::from_millis(300)),
            "timed out after 300 ms (killed)"
        );
    }

    #[test]
    fn a_flood_of_output_is_bounded_and_does_not_block() {
        let t0 = Instant::now();
        let f = run_bounded(
            sh("head -c 5000000 /dev/zero | tr '\\0' x; exit 1"),
            None,
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(f.describe(Duration::from_secs(20)), "exit status 1");
        assert_eq!(f.stdout.len(), KEEP);
        assert_eq!(f.output_bytes, 5_000_000);
        assert!(t0.elapsed() < Duration::from_secs(15));
    }

    #[test]
    fn input_is_given_and_not_reading_it_is_fine() {
        let f = run_bounded(
            Command::new("cat"),
            Some(b"{\"a\":1}\n".to_vec()),
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(f.success());
        assert_eq!(f.stdout, b"{\"a\":1}\n");
        // a command that ignores 1 MB of input still finishes
        let f = run_bounded(
            sh("exit 0"),
            Some(vec![b'x'; 1 << 20]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(f.success());
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let e = run_bounded(
            Command::new("/nonexistent/rvs-check"),
            None,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn the_child_inherits_no_descriptor_but_0_1_2() {
        // A descriptor without close-on-exec, as DPDK's packet sockets are.
        let f = std::fs::File::open("/proc/self/stat").unwrap();
        rustix::io::fcntl_setfd(&f, rustix::io::FdFlags::empty()).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        // ls lists the shell's descriptors ($$), not its own.
        let f2 = run_bounded(sh("ls /proc/$$/fd"), None, Duration::from_secs(5)).unwrap();
        assert!(f2.success(), "{}", f2.output_line());
        let listed = String::from_utf8_lossy(&f2.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(listed, "0 1 2", "fd {fd} (no CLOEXEC) leaked: {listed}");
        drop(f);
    }

    /// The state letter of `pid` (`None` once it is gone).
    fn proc_state(pid: &str) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(')').next()?.trim().chars().next()
    }

    #[test]
    fn a_backgrounded_grandchild_dies_with_its_check() {
        let f = run_bounded(
            sh("sleep 1000 & echo $!; exit 0"),
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(f.success());
        let pid = String::from_utf8_lossy(&f.stdout).trim().to_string();
        assert!(!pid.is_empty());
        let t0 = Instant::now();
        while matches!(proc_state(&pid), Some(s) if s != 'Z') {
            assert!(
                t0.elapsed() < Duration::from_secs(3),
                "sleep 1000 (pid {pid}) still runs after its check ended"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn orphans_are_reaped_and_owned_children_are_not() {
        become_subreaper().unwrap();
        // setsid leaves the group: only the subreaper catches it. Its
        // output goes elsewhere: holding our stdout pipe for 0.2 s would
        // race PIPE_GRACE (also 0.2 s) and lose the pid we read.
        let f = run_bounded(
            sh("setsid sh -c 'sleep 0.2; exit 7' </dev/null >/dev/null 2>&1 & echo $!; exit 0"),
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(f.success());
        let pid = String::from_utf8_lossy(&f.stdout).trim().to_string();
        assert!(pid.parse::<u32>().is_ok(), "no pid on stdout: {f:?}");
        let t0 = Instant::now();
        let mut reaped = 0;
        while proc_state(&pid).is_some() {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "orphan {pid} never reaped"
            );
            reaped += reap_orphans();
            thread::sleep(Duration::from_millis(20));
        }
        assert!(reaped >= 1);
        // Reaping while checks run never takes their exit status.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let reaper = thread::spawn(move || {
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                reap_orphans();
                thread::yield_now();
            }
        });
        for i in 0..20 {
            let f = run_bounded(sh(&format!("exit {i}")), None, Duration::from_secs(5)).unwrap();
            assert_eq!(f.status.and_then(|s| s.code()), Some(i));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reaper.join().unwrap();
    }

    #[test]
    fn printable_cuts_and_masks() {
        assert_eq!(printable("a\u{1b}[31mb", 10), "a?[31mb");
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}

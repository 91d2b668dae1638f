//! Runs a command with a deadline: `exec` health checks and the `[notify]
//! exec` hook.
//!
//! The child gets its own process group; at the deadline the whole group is
//! killed (SIGKILL), as keepalived does with a MISC_CHECK script that times
//! out. Its stdout and stderr are read to the end by two small threads that
//! keep the first [`KEEP`] bytes of each and throw the rest away, so a
//! command that floods its output never blocks on a full pipe and never
//! costs memory. Input, if any, is written by a third thread, so a command
//! that does not read it cannot block the caller either.

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Bytes of stdout and of stderr kept for messages.
pub const KEEP: usize = 512;

/// How long to wait for the output pipes to close after the command ended
/// (a background grandchild may hold them open).
const PIPE_GRACE: Duration = Duration::from_millis(200);

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
    let mut child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;

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
        if let Some(st) = child.try_wait()? {
            break Some(st);
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
    fn printable_cuts_and_masks() {
        assert_eq!(printable("a\u{1b}[31mb", 10), "a?[31mb");
        assert_eq!(printable("abcdef", 3), "abc…");
    }
}

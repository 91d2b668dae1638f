//! Talking to BIRD: its control protocol over the Unix socket `birdc`
//! uses (no extra process), and the thread that writes the routes file and
//! asks BIRD to reconfigure, so the control thread never waits on BIRD.
//!
//! The protocol: BIRD greets with `0001 BIRD 2.0.12 ready.`; a command is
//! one line; a reply is lines `DDDD-text` (more follows), ` text` (more of
//! the same code) and ends with a line `DDDD text`. For `configure`,
//! 0003 (reconfigured), 0004 (in progress) and 0005 (queued) mean BIRD took
//! the file; 8xxx and 9xxx are errors (8002: the file does not parse).
//!
//! BIRD down, the socket missing, a refused file: logged and retried with
//! backoff, never fatal; the newest routes file is the one retried.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::routes;

/// How long one exchange with BIRD may take.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// First retry after a failure; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest reply read (a `configure` reply is two lines).
const MAX_REPLY: usize = 64 * 1024;

/// The end of one reply: its final code and every line's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

/// Reads one reply from BIRD.
fn read_reply(r: &mut impl BufRead) -> Result<Reply, String> {
    let mut text = String::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .map_err(|e| format!("reading the reply: {e}"))?;
        if n == 0 {
            return Err("BIRD closed the connection mid-reply".to_string());
        }
        total += n;
        if total > MAX_REPLY {
            return Err("reply too long".to_string());
        }
        let line = line.trim_end_matches('\n');
        let (code, rest) = match parse_line(line) {
            Some(x) => x,
            None => {
                // ` text`: more of the previous code.
                text.push_str(line.trim_start());
                text.push('\n');
                continue;
            }
        };
        text.push_str(&rest[1..]);
        text.push('\n');
        if rest.starts_with(' ') || rest.is_empty() {
            return Ok(Reply {
                code,
                text: text.trim_end().to_string(),
            });
        }
    }
}

/// `DDDD-...` or `DDDD ...`: the code and the rest from the separator.
fn parse_line(line: &str) -> Option<(u16, &str)> {
    let digits = line.get(..4)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rest = &line[4..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('-')) {
        return None;
    }
    // An empty rest (`0000`) ends a reply, like a space.
    Some((
        digits.parse().ok()?,
        if rest.is_empty() { " " } else { rest },
    ))
}

/// Whether a final `configure` code means BIRD took the file.
pub fn configure_ok(code: u16) -> bool {
    matches!(code, 3..=5)
}

/// Sends `configure` to BIRD on `socket`: Ok with BIRD's words when it
/// took the configuration, Err with the reason otherwise.
pub fn configure(socket: &Path) -> Result<String, String> {
    let s = UnixStream::connect(socket)
        .map_err(|e| format!("cannot connect to BIRD at {}: {e}", socket.display()))?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("socket: {e}"))?;
    let mut r = BufReader::new(&s);
    let hello = read_reply(&mut r)?;
    if hello.code != 1 {
        return Err(format!(
            "unexpected greeting {:04}: {}",
            hello.code, hello.text
        ));
    }
    (&s).write_all(b"configure\n")
        .map_err(|e| format!("sending configure: {e}"))?;
    let reply = read_reply(&mut r)?;
    if configure_ok(reply.code) {
        Ok(reply.text)
    } else {
        Err(format!(
            "BIRD refused the configuration ({:04}): {}",
            reply.code,
            reply.text.replace('\n', "; ")
        ))
    }
}

/// What the BIRD thread reports.
#[derive(Debug, Clone, Default)]
pub struct LinkStatus {
    /// The newest routes generation BIRD took.
    pub applied: u64,
    /// The newest generation asked for.
    pub wanted: u64,
    pub reconfigures: u64,
    pub failures: u64,
    /// The last attempt's error (cleared by a success).
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Job {
    /// Generation and routes file text to apply.
    want: Option<(u64, String)>,
    stop: bool,
}

/// The BIRD thread: give it the newest routes file with [`Link::submit`].
pub struct Link {
    job: Arc<(Mutex<Job>, Condvar)>,
    pub status: Arc<Mutex<LinkStatus>>,
    thread: Option<JoinHandle<()>>,
}

impl Link {
    pub fn start(socket: PathBuf, routes_file: PathBuf) -> std::io::Result<Link> {
        let job = Arc::new((Mutex::new(Job::default()), Condvar::new()));
        let status = Arc::new(Mutex::new(LinkStatus::default()));
        let (j, st) = (job.clone(), status.clone());
        let thread = std::thread::Builder::new()
            .name("rvs-bgp".into())
            .spawn(move || run(&j, &st, &socket, &routes_file))?;
        Ok(Link {
            job,
            status,
            thread: Some(thread),
        })
    }

    /// Asks for `text` (generation `gen`, increasing) to be written and
    /// loaded; a newer submission replaces one not yet applied.
    pub fn submit(&self, gen: u64, text: String) {
        lock(&self.status).wanted = gen;
        let (m, cv) = &*self.job;
        lock(m).want = Some((gen, text));
        cv.notify_all();
    }

    pub fn status(&self) -> LinkStatus {
        lock(&self.status).clone()
    }

    /// Waits until BIRD took generation `gen`, at most `timeout`.
    pub fn wait_applied(&self, gen: u64, timeout: Duration) -> bool {
        let t0 = Instant::now();
        loop {
            if lock(&self.status).applied >= gen {
                return true;
            }
            if t0.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let (m, cv) = &*self.job;
        lock(m).stop = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn run(job: &(Mutex<Job>, Condvar), status: &Mutex<LinkStatus>, socket: &Path, routes_file: &Path) {
    let (m, cv) = job;
    let mut backoff = FIRST_BACKOFF;
    // A failed generation: retried at this time unless a newer one comes.
    let mut retry: Option<(u64, String, Instant)> = None;
    loop {
        let (gen, text) = {
            let mut g = lock(m);
            loop {
                if g.stop {
                    return;
                }
                if let Some(w) = g.want.take() {
                    retry = None;
                    break w;
                }
                match retry.take() {
                    Some((gen, text, at)) if Instant::now() >= at => break (gen, text),
                    Some((gen, text, at)) => {
                        let wait = at.saturating_duration_since(Instant::now());
                        retry = Some((gen, text, at));
                        g = cv
                            .wait_timeout(g, wait)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    None => g = cv.wait(g).unwrap_or_else(|e| e.into_inner()),
                }
            }
        };
        let result = routes::write_atomically(routes_file, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", routes_file.display()))
            .and_then(|()| configure(socket));
        let mut st = lock(status);
        match result {
            Ok(words) => {
                if st.last_error.is_some() {
                    tracing::info!("bgp: BIRD reachable again");
                }
                st.applied = st.applied.max(gen);
                st.reconfigures += 1;
                st.last_error = None;
                backoff = FIRST_BACKOFF;
                let words = words.replace('\n', "; ");
                tracing::info!(generation = gen, "bgp: BIRD reconfigured ({words})");
            }
            Err(e) => {
                st.failures += 1;
                tracing::warn!(
                    generation = gen,
                    retry_ms = backoff.as_millis() as u64,
                    "bgp: {e}; retrying"
                );
                st.last_error = Some(e);
                retry = Some((gen, text, Instant::now() + backoff));
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn replies_parse() {
        let mut r =
            "0002-Reading configuration from /etc/bird/bird.conf\n0003 Reconfigured\n".as_bytes();
        assert_eq!(
            read_reply(&mut r).unwrap(),
            Reply {
                code: 3,
                text: "Reading configuration from /etc/bird/bird.conf\nReconfigured".into()
            }
        );
        let mut r =
            "0002-Reading configuration from bird.conf\n8002 /tmp/r.conf:3:23 syntax error\n"
                .as_bytes();
        let rep = read_reply(&mut r).unwrap();
        assert_eq!(rep.code, 8002);
        assert!(!configure_ok(rep.code));
        let mut r = "1007-Table master4:\n 198.18.5.1/32 blackhole\n0000 \n".as_bytes();
        assert_eq!(read_reply(&mut r).unwrap().code, 0);
        let mut r = "0002-Reading\n".as_bytes();
        assert!(read_reply(&mut r).is_err());
        assert!(configure_ok(3) && configure_ok(4) && configure_ok(5));
        assert!(!configure_ok(6) && !configure_ok(1) && !configure_ok(9001));
    }

    /// A fake BIRD on a socket: greets, reads one command, answers `reply`.
    fn fake_bird(path: &Path, reply: &'static str) -> std::thread::JoinHandle<String> {
        let l = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            (&s).write_all(b"0001 BIRD 2.0.12 ready.\n").unwrap();
            let mut line = String::new();
            BufReader::new(&s).read_line(&mut line).unwrap();
            (&s).write_all(reply.as_bytes()).unwrap();
            line
        })
    }

    #[test]
    fn configure_talks_the_protocol() {
        let dir = std::env::temp_dir().join(format!("rvs-bgp-bird-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("ok.ctl");
        let t = fake_bird(
            &sock,
            "0002-Reading configuration from b.conf\n0003 Reconfigured\n",
        );
        assert_eq!(
            configure(&sock).unwrap(),
            "Reading configuration from b.conf\nReconfigured"
        );
        assert_eq!(t.join().unwrap(), "configure\n");
        let sock = dir.join("bad.ctl");
        let t = fake_bird(&sock, "0002-Reading\n8002 r.conf:1:1 syntax error\n");
        let e = configure(&sock).unwrap_err();
        assert!(e.contains("refused the configuration (8002)"), "{e}");
        t.join().unwrap();
        let e = configure(&dir.join("missing.ctl")).unwrap_err();
        assert!(e.contains("cannot connect to BIRD"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The thread retries until BIRD appears, and BIRD then gets the
    /// newest file.
    #[test]
    fn link_retries_until_bird_answers() {
        let dir = std::env::temp_dir().join(format!("rvs-bgp-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("bird.ctl");
        let file = dir.join("rvs-vips.conf");
        let link = Link::start(sock.clone(), file.clone()).unwrap();
        link.submit(1, "one\n".into());
        std::thread::sleep(Duration::from_millis(100));
        link.submit(2, "two\n".into());
        assert!(!link.wait_applied(2, Duration::from_millis(300)));
        let st = link.status();
        assert!(st.failures >= 1, "{st:?}");
        assert!(st.last_error.as_deref().unwrap().contains("cannot connect"));
        // The file is written even while BIRD is away.
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "two\n");
        let t = fake_bird(&sock, "0003 Reconfigured\n");
        assert!(link.wait_applied(2, Duration::from_secs(8)));
        t.join().unwrap();
        let st = link.status();
        assert_eq!((st.applied, st.reconfigures, st.last_error), (2, 1, None));
        drop(link);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

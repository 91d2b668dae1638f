//! The control API: a Unix stream socket that `rvs ctl` talks to.
//!
//! # Protocol
//!
//! Newline-delimited JSON. The client writes one request object on one line
//! ([`Request`](super::ctl_proto::Request), tagged by `"cmd"`), the director
//! answers with one response object on one line (`{"ok":true,"result":...}`
//! or `{"ok":false,"error":"..."}`), and the client may send the next
//! request on the same connection. For example:
//!
//! ```text
//! > {"cmd":"edit-server","service":"tcp:198.18.0.100:80","server":"198.19.0.12:8080","weight":0}
//! < {"ok":true,"result":{"message":"changed server 198.19.0.12:8080 of tcp:198.18.0.100:80 (weight 0)","generation":4}}
//! > {"cmd":"list"}
//! < {"ok":true,"result":{"version":"0.1.0","size":65536,"generation":4,"services":[...]}}
//! ```
//!
//! # Threads and limits
//!
//! A listener thread accepts connections; each client gets its own thread,
//! so no client waits on another. A client thread reads and parses a
//! request line, hands it to the controller through a channel and waits for
//! the answer; the controller applies requests in [`Controller::tick`]
//! (the main lcore, every 10 ms), so every change is serialised with
//! reloads. Bad input is answered with an error and never reaches the
//! controller:
//!
//! - a line that is not a request (garbage, unknown command or field, wrong
//!   type): `bad request: ...`, and the connection stays open;
//! - more than [`MAX_REQUEST`] bytes without a newline: an error, then the
//!   connection is closed;
//! - a line cut short by the end of the stream, or no complete line within
//!   [`READ_TIMEOUT`] (an idle or half-written client): an error, then the
//!   connection is closed;
//! - more than [`MAX_CLIENTS`] connections at once: the newcomer gets an
//!   error and is closed;
//! - a peer that is neither root nor the socket's owner (its `SO_PEERCRED`
//!   uid): one error line, then the connection is closed.
//!
//! # The socket file
//!
//! The socket is born private without touching the process-wide umask: it
//! is bound in a fresh directory of mode 0700 next to `path`, made 0600
//! there (nobody else can reach it to swap in a symlink), then renamed to
//! `path` (a rename replaces a name and never follows a link). The parent
//! directory is created with mode 0700 if missing. Whatever is at `path`
//! and is not a socket (a symlink included, dangling or not) is an error; a
//! stale socket nobody answers on is replaced, a live one is an error
//! (another director runs). The file is removed when the controller is
//! dropped.
//!
//! [`Controller::tick`]: super::Controller::tick

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::ctl_proto::{Request, Response, MAX_REQUEST};

/// Clients served at once.
pub const MAX_CLIENTS: usize = 128;
/// How long a client may take to send a complete request line.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client thread waits for the controller's answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// One request for the controller, with where to send the answer.
pub struct Call {
    pub req: Request,
    pub reply: SyncSender<Response>,
}

/// The listening socket; the controller reads calls from `calls`.
pub struct ApiServer {
    path: PathBuf,
    pub calls: Receiver<Call>,
}

impl ApiServer {
    /// Creates the socket at `path` and starts the listener thread.
    pub fn start(path: &Path) -> Result<ApiServer> {
        let (listener, owner) = bind(path)?;
        let (tx, rx) = mpsc::channel();
        let active = Arc::new(AtomicUsize::new(0));
        std::thread::Builder::new()
            .name("rvs-api".into())
            .spawn(move || accept_loop(listener, owner, tx, active))
            .context("cannot start the API thread")?;
        tracing::info!(socket = %path.display(), "control API listening");
        Ok(ApiServer {
            path: path.to_path_buf(),
            calls: rx,
        })
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` with mode 0600, creating its parent and replacing a stale
/// socket (see the module docs). Returns the listener and the uid that owns
/// the socket.
fn bind(path: &Path) -> Result<(UnixListener, u32)> {
    let Some(name) = path.file_name() else {
        bail!("control.socket: {} names no file", path.display());
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("control.socket: cannot create {}", dir.display()))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!(
                "control.socket: {} exists and is not a socket{}",
                path.display(),
                if meta.file_type().is_symlink() {
                    " (a symlink)"
                } else {
                    ""
                }
            );
        }
        if UnixStream::connect(path).is_ok() {
            bail!(
                "control.socket: another process answers on {} (is another rvs running?)",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("control.socket: cannot remove stale {}", path.display()))?;
    }
    // A private directory next to `path` (same file system, for the rename).
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    private_dir(&tmp)?;
    let inner = tmp.join("s");
    let made = (|| -> Result<(UnixListener, u32)> {
        let listener = UnixListener::bind(&inner)
            .with_context(|| format!("control.socket: cannot bind {}", path.display()))?;
        // `inner` is in a 0700 directory only this process writes to: the
        // chmod (which follows symlinks) cannot be turned elsewhere.
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("control.socket: cannot chmod {}", inner.display()))?;
        let owner = std::fs::symlink_metadata(&inner)
            .with_context(|| format!("control.socket: cannot stat {}", inner.display()))?
            .uid();
        std::fs::rename(&inner, path)
            .with_context(|| format!("control.socket: cannot create {}", path.display()))?;
        Ok((listener, owner))
    })();
    let _ = std::fs::remove_file(&inner);
    let _ = std::fs::remove_dir(&tmp);
    made
}

/// Creates `dir` with mode 0700 (no wider, whatever the umask); a leftover
/// directory of a previous run with the same pid is removed first.
fn private_dir(dir: &Path) -> Result<()> {
    let mk = || std::fs::DirBuilder::new().mode(0o700).create(dir);
    match mk() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let is_dir = std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_dir());
            if !is_dir {
                bail!(
                    "control.socket: {} exists and is not a directory",
                    dir.display()
                );
            }
            let _ = std::fs::remove_file(dir.join("s"));
            std::fs::remove_dir(dir)
                .and_then(|()| mk())
                .with_context(|| format!("control.socket: cannot create {}", dir.display()))
        }
        r => r.with_context(|| format!("control.socket: cannot create {}", dir.display())),
    }
}

/// Why a peer may not use the socket, if it may not: only root and the
/// socket's owner may.
fn refuse_peer(stream: &UnixStream, owner: u32) -> Option<String> {
    match rustix::net::sockopt::socket_peercred(stream) {
        Ok(cred) => {
            let uid = cred.uid.as_raw();
            (uid != 0 && uid != owner).then(|| {
                format!(
                    "permission denied: uid {uid} is not allowed on the control socket \
                     (root or uid {owner} only)"
                )
            })
        }
        Err(e) => Some(format!("cannot read the peer's credentials: {e}")),
    }
}

/// Writes one error line without ever blocking the accept loop, then
/// drops (closes) the stream.
fn refuse(stream: UnixStream, msg: String) {
    let _ = stream.set_nonblocking(true);
    let _ = (&stream).write_all(Response::error(msg).to_line().as_bytes());
}

fn accept_loop(listener: UnixListener, owner: u32, tx: Sender<Call>, active: Arc<AtomicUsize>) {
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("control API: accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if let Some(why) = refuse_peer(&stream, owner) {
            tracing::warn!("control API: {why}");
            refuse(stream, why);
            continue;
        }
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
            active.fetch_sub(1, Ordering::AcqRel);
            let msg = format!("too many clients (more than {MAX_CLIENTS} at once); try again");
            refuse(stream, msg);
            continue;
        }
        let tx = tx.clone();
        let guard = ActiveGuard(active.clone());
        let spawned = std::thread::Builder::new()
            .name("rvs-api-client".into())
            .spawn(move || {
                let _guard = guard;
                serve_client(stream, &tx, READ_TIMEOUT);
            });
        if let Err(e) = spawned {
            tracing::warn!("control API: cannot start a client thread: {e}");
        }
    }
}

/// Counts a client until its thread ends.
struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What reading one request line gave. (Public for the `ctl_proto` fuzz
/// target, which drives the same reader.)
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line (newline removed).
    Complete(Vec<u8>),
    /// The stream ended cleanly between requests.
    Eof,
    /// The stream ended in the middle of a line.
    Cut(usize),
    /// More than `MAX_REQUEST` bytes without a newline.
    TooLong,
    /// No complete line in time (`got` bytes of one so far).
    Timeout {
        got: usize,
    },
    Error(String),
}

/// Reads one line of at most `MAX_REQUEST` bytes.
pub fn read_line<R: BufRead>(r: &mut R) -> Line {
    let mut buf = Vec::new();
    let res = r
        .by_ref()
        .take(MAX_REQUEST as u64 + 1)
        .read_until(b'\n', &mut buf);
    match res {
        Ok(0) => Line::Eof,
        Ok(_) if buf.last() == Some(&b'\n') => {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            Line::Complete(buf)
        }
        Ok(n) if n > MAX_REQUEST => Line::TooLong,
        Ok(n) => Line::Cut(n),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Line::Timeout { got: buf.len() }
        }
        Err(e) => Line::Error(e.to_string()),
    }
}

/// Parses a request line. (Public for the `ctl_proto` fuzz target.)
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(line).map_err(|_| "bad request: not UTF-8".to_string())?;
    if text.trim().is_empty() {
        return Err("bad request: empty line (send one JSON object per line)".to_string());
    }
    serde_json::from_str(text).map_err(|e| format!("bad request: {e}"))
}

/// Serves one client until it closes, misbehaves or times out.
fn serve_client(stream: UnixStream, tx: &Sender<Call>, timeout: Duration) {
    let _ = stream.set_read_timeout(Some(timeout));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut out = stream;
    loop {
        let (resp, close) = match read_line(&mut reader) {
            Line::Eof => return,
            Line::Error(e) => {
                tracing::debug!("control API: read: {e}");
                return;
            }
            Line::TooLong => (
                Response::error(format!(
                    "bad request: longer than {MAX_REQUEST} bytes without a newline"
                )),
                true,
            ),
            Line::Cut(n) => (
                Response::error(format!(
                    "bad request: the stream ended after {n} bytes of a request with no newline"
                )),
                true,
            ),
            Line::Timeout { got: 0 } => (
                Response::error(format!(
                    "idle for {} s: closing the connection",
                    timeout.as_secs_f32()
                )),
                true,
            ),
            Line::Timeout { got } => (
                Response::error(format!(
                    "bad request: only {got} bytes of a request (no newline) within {} s",
                    timeout.as_secs_f32()
                )),
                true,
            ),
            Line::Complete(line) => match parse_request(&line) {
                Ok(req) => (call(tx, req), false),
                Err(e) => (Response::error(e), false),
            },
        };
        if out.write_all(resp.to_line().as_bytes()).is_err() || close {
            return;
        }
    }
}

/// Hands a request to the controller and waits for its answer.
fn call(tx: &Sender<Call>, req: Request) -> Response {
    let (reply, answer) = mpsc::sync_channel(1);
    if tx.send(Call { req, reply }).is_err() {
        return Response::error("the director is shutting down");
    }
    match answer.recv_timeout(ANSWER_TIMEOUT) {
        Ok(r) => r,
        Err(_) => Response::error(format!(
            "the director did not answer within {} s",
            ANSWER_TIMEOUT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn lines_are_bounded() {
        let mut r = Cursor::new(b"{\"cmd\":\"list\"}\r\n{\"cmd\":\"zero\"}\nhalf".to_vec());
        assert_eq!(
            read_line(&mut r),
            Line::Complete(b"{\"cmd\":\"list\"}".to_vec())
        );
        assert_eq!(
            read_line(&mut r),
            Line::Complete(b"{\"cmd\":\"zero\"}".to_vec())
        );
        assert_eq!(read_line(&mut r), Line::Cut(4));
        assert_eq!(read_line(&mut r), Line::Eof);

        let mut big = vec![b'x'; MAX_REQUEST];
        big.push(b'\n');
        assert_eq!(
            read_line(&mut Cursor::new(big.clone())),
            Line::Complete(vec![b'x'; MAX_REQUEST])
        );
        big.insert(0, b'x');
        assert_eq!(read_line(&mut Cursor::new(big)), Line::TooLong);
    }

    #[test]
    fn requests_parse_or_say_why() {
        assert_eq!(
            parse_request(b"{\"cmd\":\"list\"}"),
            Ok(Request::List { service: None })
        );
        let e = parse_request(b"\xff\xfe").unwrap_err();
        assert_eq!(e, "bad request: not UTF-8");
        let e = parse_request(b"  ").unwrap_err();
        assert!(e.starts_with("bad request: empty line"), "{e}");
        let e = parse_request(b"GET / HTTP/1.0").unwrap_err();
        assert!(e.starts_with("bad request: expected value"), "{e}");
        let e = parse_request(b"{\"cmd\":\"format-disk\"}").unwrap_err();
        assert!(e.contains("unknown variant `format-disk`"), "{e}");
    }

    fn roundtrip(client: &mut UnixStream, line: &[u8]) -> Response {
        client.write_all(line).unwrap();
        let mut r = BufReader::new(client.try_clone().unwrap());
        let mut s = String::new();
        r.read_line(&mut s).unwrap();
        serde_json::from_str(&s).unwrap()
    }

    /// A socket in a temp dir, a fake controller thread that answers every
    /// call with its command name.
    fn server(tag: &str) -> (ApiServer, PathBuf) {
        let dir = std::env::temp_dir().join(format!("rvs-api-{tag}-{}", std::process::id()));
        let path = dir.join("sub").join("rvs.sock");
        let _ = std::fs::remove_dir_all(&dir);
        (ApiServer::start(&path).unwrap(), path)
    }

    fn answer_all(calls: Receiver<Call>) {
        std::thread::spawn(move || {
            for c in calls {
                let _ = c.reply.send(Response::ok(format!("{:?}", c.req)));
            }
        });
    }

    #[test]
    fn socket_is_private_and_serves_many_clients() {
        let (mut srv, path) = server("many");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // a second server on the same path is refused while the first lives
        let e = ApiServer::start(&path).err().unwrap().to_string();
        assert!(e.contains("another process answers"), "{e}");
        let (_tx, dummy) = mpsc::channel();
        let calls = std::mem::replace(&mut srv.calls, dummy);
        answer_all(calls);

        // an idle client and a half-written one do not hold anyone up
        let _idle = UnixStream::connect(&path).unwrap();
        let mut half = UnixStream::connect(&path).unwrap();
        half.write_all(b"{\"cmd\":\"li").unwrap();
        let threads: Vec<_> = (0..50)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut c = UnixStream::connect(&path).unwrap();
                    let r = roundtrip(&mut c, b"{\"cmd\":\"list\"}\n");
                    assert!(r.ok, "{r:?}");
                    let r = roundtrip(&mut c, b"garbage\n");
                    assert!(!r.ok);
                    // the connection survives garbage
                    let r = roundtrip(&mut c, b"{\"cmd\":\"status\"}\n");
                    assert_eq!(r.result, Some(serde_json::json!("Status")));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }

        // oversized: an error, then the connection is closed
        let mut c = UnixStream::connect(&path).unwrap();
        let big = vec![b'{'; MAX_REQUEST + 10];
        let _ = c.write_all(&big);
        let mut s = String::new();
        BufReader::new(c.try_clone().unwrap())
            .read_line(&mut s)
            .unwrap();
        assert!(s.contains("longer than 65536 bytes"), "{s}");

        // cut short: an error naming it
        let mut c = UnixStream::connect(&path).unwrap();
        c.write_all(b"{\"cmd\":").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        assert!(s.contains("the stream ended after 7 bytes"), "{s}");

        drop(srv);
        assert!(!path.exists(), "socket file left behind");
        // a stale file is replaced
        let l = UnixListener::bind(&path).unwrap();
        drop(l);
        assert!(path.exists());
        let _srv = ApiServer::start(&path).unwrap();
    }

    #[test]
    fn idle_and_half_written_clients_time_out() {
        let (a, b) = UnixStream::pair().unwrap();
        let (tx, _rx) = mpsc::channel();
        let t = std::thread::spawn(move || serve_client(a, &tx, Duration::from_millis(200)));
        let mut s = String::new();
        let mut b2 = b.try_clone().unwrap();
        b2.read_to_string(&mut s).unwrap();
        t.join().unwrap();
        assert!(s.contains("idle for 0.2 s"), "{s}");

        let (a, mut b) = UnixStream::pair().unwrap();
        let (tx, _rx) = mpsc::channel();
        let t = std::thread::spawn(move || serve_client(a, &tx, Duration::from_millis(200)));
        b.write_all(b"{\"cmd\"").unwrap();
        let mut s = String::new();
        b.read_to_string(&mut s).unwrap();
        t.join().unwrap();
        assert!(s.contains("only 6 bytes of a request"), "{s}");
    }

    #[test]
    fn a_socket_path_that_is_a_file_is_refused() {
        let path = std::env::temp_dir().join(format!("rvs-api-file-{}", std::process::id()));
        std::fs::write(&path, b"x").unwrap();
        let e = ApiServer::start(&path).err().unwrap().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(e.contains("exists and is not a socket"), "{e}");
    }
}

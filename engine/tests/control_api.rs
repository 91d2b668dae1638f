//! engine::control::api, the socket: created private without touching the
//! process's umask, never through a symlink, and only root or the socket's
//! owner is served (SO_PEERCRED).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use engine::control::api::ApiServer;
use engine::control::ctl_proto::Response;

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rvs-capi-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Answers every call with its command name.
fn answer_all(srv: &mut ApiServer) {
    let (_tx, dummy) = std::sync::mpsc::channel();
    let calls = std::mem::replace(&mut srv.calls, dummy);
    std::thread::spawn(move || {
        for c in calls {
            let _ = c.reply.send(Response::ok(format!("{:?}", c.req)));
        }
    });
}

#[test]
fn a_symlink_at_the_socket_path_is_refused_and_its_target_untouched() {
    let dir = scratch("symlink");
    let victim = dir.join("victim");
    std::fs::write(&victim, b"secret").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = dir.join("rvs.sock");
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    let e = ApiServer::start(&path)
        .err()
        .expect("bound through a symlink");
    let e = format!("{e:#}");
    assert!(
        e.contains("control.socket") && e.contains("is not a socket"),
        "{e}"
    );
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(mode(&victim), 0o644);
    assert_eq!(std::fs::read(&victim).unwrap(), b"secret");

    // a dangling one too (bind would create the socket at its target)
    let path2 = dir.join("rvs2.sock");
    let target2 = dir.join("elsewhere.sock");
    std::os::unix::fs::symlink(&target2, &path2).unwrap();
    assert!(ApiServer::start(&path2).is_err());
    assert!(!target2.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

fn umask_now() -> String {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("Umask:"))
        .unwrap_or("Umask: ?")
        .to_string()
}

#[test]
fn the_socket_is_private_and_the_umask_is_never_touched() {
    let dir = scratch("umask");
    let before = umask_now();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let before = before.clone();
        std::thread::spawn(move || {
            let mut changed = None;
            while !stop.load(Ordering::Relaxed) {
                let now = umask_now();
                if now != before {
                    changed = Some(now);
                }
            }
            changed
        })
    };
    for i in 0..200 {
        let path = dir.join(format!("s{}", i % 3)).join("rvs.sock");
        let srv = ApiServer::start(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_socket_like());
        // the directory rvs created is private too
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        drop(srv);
    }
    stop.store(true, Ordering::Relaxed);
    assert_eq!(watcher.join().unwrap(), None, "the umask changed");
    assert_eq!(umask_now(), before);
    // nothing left behind but the sockets' directories
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let inner: Vec<_> = std::fs::read_dir(e.path()).unwrap().collect();
        assert!(inner.is_empty(), "{:?}: {inner:?}", e.path());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

trait SocketLike {
    fn is_socket_like(&self) -> bool;
}

impl SocketLike for std::fs::FileType {
    fn is_socket_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_socket(self)
    }
}

/// The peer-credential test's client, run as another user by
/// `only_root_or_the_owner_is_served` (a no-op otherwise).
#[test]
fn peer_client_helper() {
    let Ok(path) = std::env::var("RVS_TEST_PEER_SOCKET") else {
        return;
    };
    let mut c = UnixStream::connect(&path).expect("connect");
    let _ = c.write_all(b"{\"cmd\":\"status\"}\n");
    let mut all = String::new();
    let _ = c.read_to_string(&mut all);
    println!("ANSWER<{all}>");
}

#[test]
fn only_root_or_the_owner_is_served() {
    let dir = scratch("peer");
    let path = dir.join("rvs.sock");
    let mut srv = ApiServer::start(&path).unwrap();
    answer_all(&mut srv);

    // the owner (this process) is served
    let mut c = UnixStream::connect(&path).unwrap();
    c.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(c.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("\"ok\":true"), "{line}");

    let owner = std::fs::metadata(&path).unwrap().uid();
    let setpriv = Path::new("/usr/bin/setpriv");
    if owner != 0 || !setpriv.exists() {
        eprintln!("skipped: needs root and setpriv to connect as another user");
        return;
    }
    // Open the socket to everyone, as a careless chmod would: the peer
    // check still refuses a stranger.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "peer_client_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RVS_TEST_PEER_SOCKET", &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let answer = stdout
        .split("ANSWER<")
        .nth(1)
        .and_then(|s| s.split_once(">\n").or_else(|| s.rsplit_once('>')))
        .map(|(a, _)| a.to_string())
        .unwrap_or_else(|| {
            panic!(
                "helper gave no answer:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    // one error line, then the connection is closed
    assert_eq!(answer.lines().count(), 1, "{answer:?}");
    let r: Response = serde_json::from_str(answer.trim()).unwrap();
    assert!(!r.ok, "{answer}");
    let msg = r.error.unwrap_or_default();
    assert!(
        msg.contains("uid 65534") && msg.contains("not allowed"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

//! The `routes_file` BIRD includes: a `protocol static rvs_vips` with one
//! blackhole /32 per announced VIP. BIRD only originates the routes (its
//! BGP export picks them by `proto = "rvs_vips"`); the director's
//! forwarding never uses them. With no VIP announced the protocol is empty,
//! which BIRD 2 accepts and which withdraws every route it had.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

/// The protocol's name, as bird.conf's export filter names it.
pub const PROTOCOL: &str = "rvs_vips";

/// The whole file for `vips` (in the order given).
pub fn text(vips: &[Ipv4Addr]) -> String {
    let mut s = String::from(
        "# Written by rvs ([bgp] routes_file): the VIPs this director announces.\n\
         # Rewritten on every change; edits here are lost.\n",
    );
    s.push_str(&format!("protocol static {PROTOCOL} {{\n  ipv4;\n"));
    for vip in vips {
        s.push_str(&format!("  route {vip}/32 blackhole;\n"));
    }
    s.push_str("}\n");
    s
}

/// Writes `data` to `path` so that BIRD never reads half a file: a
/// temporary file in the same directory, flushed, then renamed over it.
/// The file is readable by all (BIRD drops root and runs as `bird`).
pub fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("/"),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.rvs-tmp.{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_file_text() {
        let vips: Vec<Ipv4Addr> = vec![
            "198.18.0.100".parse().unwrap(),
            "198.18.1.7".parse().unwrap(),
        ];
        assert_eq!(
            text(&vips),
            "# Written by rvs ([bgp] routes_file): the VIPs this director announces.\n\
             # Rewritten on every change; edits here are lost.\n\
             protocol static rvs_vips {\n  ipv4;\n  route 198.18.0.100/32 blackhole;\n  route 198.18.1.7/32 blackhole;\n}\n"
        );
        assert!(text(&[]).ends_with("protocol static rvs_vips {\n  ipv4;\n}\n"));
    }

    #[test]
    fn write_replaces_whole_file() {
        let dir = std::env::temp_dir().join(format!("rvs-bgp-routes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("rvs-vips.conf");
        std::fs::write(&p, "old and longer content than the new one\n").unwrap();
        write_atomically(&p, b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// BIRD 2 itself parses the files (`bird -p`), when it is installed
    /// (CI's setup installs bird2): with routes and empty.
    #[test]
    fn bird_parses_routes_file() {
        let Ok(out) = std::process::Command::new("bird").arg("--version").output() else {
            eprintln!("bird not installed: skipped");
            return;
        };
        let version = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(version.contains("BIRD version 2"), "{version}");
        let dir = std::env::temp_dir().join(format!("rvs-bgp-parse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for vips in [vec![], vec!["198.18.0.100".parse().unwrap()]] {
            let routes = dir.join("rvs-vips.conf");
            write_atomically(&routes, text(&vips).as_bytes()).unwrap();
            let conf = dir.join("bird.conf");
            std::fs::write(
                &conf,
                format!(
                    "router id 198.18.0.1;\nprotocol device {{}}\ninclude \"{}\";\n",
                    routes.display()
                ),
            )
            .unwrap();
            let out = std::process::Command::new("bird")
                .arg("-p")
                .arg("-c")
                .arg(&conf)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "bird -p refused {:?}: {}",
                vips,
                String::from_utf8_lossy(&out.stderr)
            );
            // A broken file is refused, so the check can fail.
            std::fs::write(&routes, "protocol static rvs_vips { ipv4; route x; }\n").unwrap();
            let out = std::process::Command::new("bird")
                .args(["-p", "-c"])
                .arg(&conf)
                .output()
                .unwrap();
            assert!(!out.status.success());
        }
        // deploy/bird.conf, the README's worked example, parses too (with
        // its include pointed at a file rvs wrote).
        let routes = dir.join("rvs-vips.conf");
        write_atomically(&routes, text(&[]).as_bytes()).unwrap();
        let example =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/bird.conf"))
                .unwrap();
        assert!(example.contains("include \"/etc/bird/rvs-vips.conf\";"));
        let conf = dir.join("deploy-bird.conf");
        std::fs::write(
            &conf,
            example.replace("/etc/bird/rvs-vips.conf", &routes.display().to_string()),
        )
        .unwrap();
        let out = std::process::Command::new("bird")
            .args(["-p", "-c"])
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "deploy/bird.conf: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The configuration file and the one in force: `rvs ctl save` (written
//! atomically), SIGHUP reload (what it replaces and changes, logged as
//! keepalived logs it).

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;

use super::Controller;
use crate::config::{self, Config, ServerConfig};

impl Controller {
    /// `rvs ctl save`: the running configuration, as the file rvs was
    /// started with changed by what `rvs ctl` did (`config::save`), written
    /// atomically to `file` (default: that file; its mode is kept).
    pub(super) fn save(&mut self, file: Option<&str>) -> Result<String, String> {
        let target = file.map_or_else(|| self.path.clone(), PathBuf::from);
        if target.is_relative() {
            return Err(format!(
                "`{}` is not an absolute path (the director's working directory is not yours)",
                target.display()
            ));
        }
        let original = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let text = config::save::render(&original, &self.cfg)?;
        write_atomically(&target, text.as_bytes(), &self.path)
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        let n = self.ctl_changes.len();
        if target == self.path {
            // The file now holds them: a reload no longer replaces anything.
            self.ctl_changes.clear();
            self.info.api_changes.store(0, Relaxed);
        }
        Ok(format!(
            "saved the running configuration to {} ({n} live change(s) since the file was loaded)",
            target.display()
        ))
    }

    /// SIGHUP: re-reads the file and replaces the running configuration
    /// (API changes since the last load included); a file with errors
    /// changes nothing and every error is logged.
    pub fn reload(&mut self) {
        match config::load(&self.path) {
            Ok(new) => {
                if new.dpdk != self.cfg.dpdk || new.ports != self.cfg.ports {
                    tracing::warn!(
                        "reload: [dpdk] and [[port]] changes need a restart; applying the rest"
                    );
                }
                if new.control != self.cfg.control {
                    tracing::warn!(
                        "reload: [control] changes (socket, metrics) need a restart; applying the rest"
                    );
                }
                let mut next = new;
                next.dpdk = self.cfg.dpdk.clone();
                next.ports = self.cfg.ports.clone();
                next.control = self.cfg.control.clone();
                if next.ha != self.cfg.ha {
                    tracing::warn!("reload: [ha] changes need a restart; applying the rest");
                    next.ha = self.cfg.ha.clone();
                }
                if next.bgp != self.cfg.bgp {
                    tracing::warn!("reload: [bgp] changes need a restart; applying the rest");
                    next.bgp = self.cfg.bgp.clone();
                }
                let changes = self.info.api_changes.swap(0, Relaxed);
                let named = std::mem::take(&mut self.ctl_changes);
                if changes > 0 {
                    tracing::warn!(
                        "reload: {changes} change(s) made with rvs ctl since the file was loaded are replaced by the file (keep them with `rvs ctl save` before a reload)"
                    );
                    for m in &named {
                        tracing::warn!("reload: replaced by the file: {m}");
                    }
                }
                self.info.reloads_ok.fetch_add(1, Relaxed);
                if next == self.cfg {
                    tracing::info!(path = %self.path.display(), "reload: no change");
                    return;
                }
                let old = std::mem::replace(&mut self.cfg, next);
                if let Err(e) = self.publish() {
                    tracing::error!("reload: {e:#}; keeping the running configuration");
                    self.cfg = old;
                    self.info.api_changes.store(changes, Relaxed);
                    self.ctl_changes = named;
                    self.info.reloads_ok.fetch_sub(1, Relaxed);
                    self.info.reloads_failed.fetch_add(1, Relaxed);
                    return;
                }
                for line in config_changes(&old, &self.cfg) {
                    tracing::info!("reload: {line}");
                }
                tracing::info!(path = %self.path.display(), generation = self.generation, "reload: applied");
            }
            Err(errors) => {
                self.info.reloads_failed.fetch_add(1, Relaxed);
                tracing::error!(
                    "reload refused: {} error(s) in {}; keeping the running configuration",
                    errors.len(),
                    errors.file
                );
                // The same `FILE:LINE: key: message` lines as `rvs check`
                // (no line 0 or empty key for a file that cannot be read).
                for line in errors.to_string().lines() {
                    tracing::error!("reload refused: {line}");
                }
            }
        }
    }
}

/// What a reload changes, one line each, as keepalived logs it: services
/// and servers added, removed or changed (with the keys that changed), and
/// other sections.
pub fn config_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for s in &old.services {
        if !new.services.iter().any(|n| n.key() == s.key()) {
            out.push(format!("service {} removed", s.key()));
        }
    }
    for n in &new.services {
        let Some(o) = old.services.iter().find(|o| o.key() == n.key()) else {
            out.push(format!(
                "service {} added ({}, {} servers)",
                n.key(),
                n.scheduler,
                n.servers.len()
            ));
            continue;
        };
        let mut what = Vec::new();
        if o.scheduler != n.scheduler {
            what.push(format!("scheduler {} -> {}", o.scheduler, n.scheduler));
        }
        if o.forward != n.forward {
            what.push(format!("forward {} -> {}", o.forward, n.forward));
        }
        if o.persistence_timeout != n.persistence_timeout
            || o.persistence_netmask != n.persistence_netmask
        {
            what.push("persistence".to_string());
        }
        if o.quorum != n.quorum || o.sorry_server != n.sorry_server {
            what.push("quorum/sorry server".to_string());
        }
        if o.health_check != n.health_check {
            what.push("health check".to_string());
        }
        if !what.is_empty() {
            out.push(format!("service {} changed: {}", n.key(), what.join(", ")));
        }
        let (old_id, id) = (|s: &ServerConfig| s.ident(o), |s: &ServerConfig| s.ident(n));
        for s in &o.servers {
            if !n.servers.iter().any(|x| id(x) == old_id(s)) {
                out.push(format!("server {} of {} removed", old_id(s), n.key()));
            }
        }
        for s in &n.servers {
            match o.servers.iter().find(|x| old_id(x) == id(s)) {
                None => out.push(format!(
                    "server {} of {} added (weight {})",
                    id(s),
                    n.key(),
                    s.weight
                )),
                Some(x) if x != s => {
                    let mut w = Vec::new();
                    if x.weight != s.weight {
                        w.push(format!("weight {} -> {}", x.weight, s.weight));
                    }
                    if x.forward != s.forward {
                        w.push("forward".to_string());
                    }
                    if x.upper_threshold != s.upper_threshold
                        || x.lower_threshold != s.lower_threshold
                    {
                        w.push("thresholds".to_string());
                    }
                    if w.is_empty() {
                        w.push("settings".to_string());
                    }
                    out.push(format!(
                        "server {} of {} changed: {}",
                        id(s),
                        n.key(),
                        w.join(", ")
                    ));
                }
                Some(_) => {}
            }
        }
    }
    if old.timeouts != new.timeouts {
        out.push("[timeouts] changed".to_string());
    }
    if old.notify != new.notify {
        out.push("[notify] changed".to_string());
    }
    out
}

/// Writes `data` to `path` through a temporary file in the same directory
/// and a rename, so a reader (or a crash) never sees half a file. The mode
/// is `path`'s own when it exists, else `like`'s (the configuration file).
pub(super) fn write_atomically(
    path: &std::path::Path,
    data: &[u8],
    like: &std::path::Path,
) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("/"),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("no file name"))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.rvs-save.{}", std::process::id()));
    let mode = std::fs::metadata(path)
        .or_else(|_| std::fs::metadata(like))
        .map(|m| m.permissions())
        .ok();
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        if let Some(m) = mode {
            f.set_permissions(m)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

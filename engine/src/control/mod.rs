//! The control thread: owns the configuration, turns every change into a new
//! immutable snapshot and publishes it to the workers (SPEC §2, §7).
//!
//! `Controller::tick` is called by the main lcore's loop every few
//! milliseconds; everything slow (sockets, health checks, mail) lives on
//! helper threads that talk to it through channels, so nothing here ever
//! blocks the data plane.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

use crate::config::{self, Config};
use crate::dataplane::snapshot::{AllUp, PortInfo, Snapshot};
use crate::dataplane::Shared;

pub struct Controller {
    /// The configuration in force.
    pub cfg: Config,
    /// The file SIGHUP re-reads.
    pub path: PathBuf,
    pub shared: Arc<Shared>,
    pub ports: Vec<PortInfo>,
    generation: u64,
}

impl Controller {
    /// Builds and publishes the first snapshot.
    pub fn new(
        cfg: Config,
        path: PathBuf,
        shared: Arc<Shared>,
        ports: Vec<PortInfo>,
    ) -> Result<Controller> {
        let mut c = Controller {
            cfg,
            path,
            shared,
            ports,
            generation: 0,
        };
        c.publish()?;
        Ok(c)
    }

    /// Rebuilds the snapshot from `self.cfg` and publishes it.
    pub fn publish(&mut self) -> Result<()> {
        self.generation += 1;
        let snap = Snapshot::build(
            &self.cfg,
            &self.ports,
            &self.shared.registry,
            self.generation,
            &AllUp,
        )?;
        self.shared.publish(snap);
        Ok(())
    }

    /// Periodic work: nothing yet beyond what `reload` does.
    pub fn tick(&mut self) {}

    /// SIGHUP: re-reads the file; a file with errors changes nothing and
    /// every error is logged.
    pub fn reload(&mut self) {
        match config::load(&self.path) {
            Ok(new) => {
                if new.dpdk != self.cfg.dpdk || new.ports != self.cfg.ports {
                    tracing::warn!(
                        "reload: [dpdk] and [[port]] changes need a restart; applying the rest"
                    );
                }
                let mut next = new;
                next.dpdk = self.cfg.dpdk.clone();
                next.ports = self.cfg.ports.clone();
                if next == self.cfg {
                    tracing::info!(path = %self.path.display(), "reload: no change");
                    return;
                }
                let old = std::mem::replace(&mut self.cfg, next);
                if let Err(e) = self.publish() {
                    tracing::error!("reload: {e:#}; keeping the running configuration");
                    self.cfg = old;
                    return;
                }
                tracing::info!(path = %self.path.display(), generation = self.generation, "reload: applied");
            }
            Err(errors) => {
                for e in errors.iter() {
                    tracing::error!(
                        "reload refused: {}:{}: {}: {}",
                        errors.file,
                        e.line,
                        e.path,
                        e.message
                    );
                }
            }
        }
    }
}

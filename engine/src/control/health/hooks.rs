//! Per-server `notify_up` / `notify_down` hooks (keepalived's real_server
//! `notify_up`/`notify_down`): a command run when a health check changes
//! the server's state.
//!
//! The command line is split as exec checks split theirs (no shell) and
//! gets three more arguments: `up` or `down`, the server (`addr:port`) and
//! the service (`tcp:VIP:PORT`); the same facts are in the environment as
//! `RVS_STATE`, `RVS_SERVER`, `RVS_SERVICE`, with `RVS_REASON` (the last
//! check's result). It runs through the same bounded process runner as
//! exec checks ([`super::proc::run_bounded`]: its own process group,
//! killed at [`HOOK_TIMEOUT`], output drained), on a thread of its own so
//! the controller never waits for it. At most [`MAX_RUNNING`] hooks run at
//! once; one beyond is skipped with a warning rather than piling up
//! threads behind a hook that hangs.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::probe::split_words;
use super::proc::{printable, run_bounded};

/// How long a hook may run before its process group is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Hooks running at once, at most.
pub const MAX_RUNNING: usize = 16;

static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// What a hook is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRun {
    /// The configured command line.
    pub command: String,
    pub up: bool,
    /// "198.19.0.11:8080".
    pub server: String,
    /// "tcp:198.18.0.100:80".
    pub service: String,
    /// The last check's result.
    pub reason: String,
}

impl HookRun {
    fn key(&self) -> &'static str {
        if self.up {
            "notify_up"
        } else {
            "notify_down"
        }
    }

    /// The command to run, arguments and environment set.
    pub fn command(&self) -> Result<Command, String> {
        let words = split_words(&self.command).map_err(|e| format!("`{}`: {e}", self.command))?;
        let Some((prog, args)) = words.split_first() else {
            return Err("an empty command line".to_string());
        };
        let state = if self.up { "up" } else { "down" };
        let mut cmd = Command::new(prog);
        cmd.args(args)
            .arg(state)
            .arg(&self.server)
            .arg(&self.service)
            .env("RVS_STATE", state)
            .env("RVS_SERVER", &self.server)
            .env("RVS_SERVICE", &self.service)
            .env("RVS_REASON", &self.reason);
        Ok(cmd)
    }

    /// Runs the hook and waits for it (bounded): what happened, for the log.
    pub fn run(&self, timeout: Duration) -> Result<String, String> {
        let cmd = self.command()?;
        let fin = run_bounded(cmd, None, timeout)
            .map_err(|e| format!("cannot run `{}`: {e}", printable(&self.command, 200)))?;
        let mut what = fin.describe(timeout);
        let out = fin.output_line();
        if !out.is_empty() {
            what = format!("{what}: {out}");
        }
        if fin.success() {
            Ok(format!("{what} in {} ms", fin.took.as_millis()))
        } else {
            Err(what)
        }
    }
}

/// Starts `hook` on a thread of its own; logs how it ended.
pub fn spawn(hook: HookRun) {
    if RUNNING.fetch_add(1, Ordering::SeqCst) >= MAX_RUNNING {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!(
            server = %hook.server,
            service = %hook.service,
            "health: {} hook skipped: {MAX_RUNNING} hooks are still running",
            hook.key()
        );
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("rvs-hc-hook".to_string())
        .spawn(move || {
            match hook.run(HOOK_TIMEOUT) {
                Ok(what) => tracing::info!(
                    server = %hook.server,
                    service = %hook.service,
                    "health: {} hook of {}: {what}",
                    hook.key(),
                    hook.server
                ),
                Err(why) => tracing::warn!(
                    server = %hook.server,
                    service = %hook.service,
                    "health: {} hook of {} failed: {why}",
                    hook.key(),
                    hook.server
                ),
            }
            RUNNING.fetch_sub(1, Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        tracing::error!("health: cannot start a hook thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(command: &str, up: bool) -> HookRun {
        HookRun {
            command: command.to_string(),
            up,
            server: "198.19.0.11:8080".to_string(),
            service: "tcp:198.18.0.100:80".to_string(),
            reason: "HTTP status 500, expected 200".to_string(),
        }
    }

    #[test]
    fn arguments_and_environment() {
        let h = hook(
            "/bin/sh -c 'echo \"$0|$1|$2|$3|$RVS_STATE|$RVS_SERVER|$RVS_SERVICE|$RVS_REASON\" >&2; exit 4' first",
            false,
        );
        assert_eq!(
            h.run(Duration::from_secs(5)),
            Err("exit status 4: first|down|198.19.0.11:8080|tcp:198.18.0.100:80|down|198.19.0.11:8080|tcp:198.18.0.100:80|HTTP status 500, expected 200".to_string())
        );
        let h = hook("/bin/sh -c 'test \"$1 $RVS_STATE\" = \"up up\"' x", true);
        assert!(h
            .run(Duration::from_secs(5))
            .unwrap()
            .starts_with("exit status 0"));
    }

    #[test]
    fn bounded_and_clear_errors() {
        let h = hook("/bin/sh -c 'sleep 30' x", true);
        assert_eq!(
            h.run(Duration::from_millis(200)),
            Err("timed out after 200 ms (killed)".to_string())
        );
        assert!(hook("/nonexistent/hook", true)
            .run(Duration::from_secs(1))
            .unwrap_err()
            .starts_with("cannot run `/nonexistent/hook`"));
        assert!(hook("'open", true).run(Duration::from_secs(1)).is_err());
    }
}

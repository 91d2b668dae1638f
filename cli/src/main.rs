//! `rvs`: the director's command line (SPEC §3).
//!
//! - `rvs run -c FILE`: validate FILE as `check` does, then run the director
//!   in the foreground (`engine::dataplane::run`).
//! - `rvs check -c FILE`: validate FILE; print `FILE: ok (N services, M
//!   servers)` and exit 0, or print every error as `FILE:LINE: key.path:
//!   message` to stderr and exit 1.
//!
//! - `rvs ctl [-s SOCKET] ...`: the control API client (`ctl.rs`): list,
//!   status, zero, add-/edit-/del-service, add-/edit-/del-server.
//!
//! Exit codes: 0 ok, 1 bad input (bad usage, an invalid file, a request the
//! director refused, or the director failed), 2 `rvs ctl` cannot reach the
//! director.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use engine::config::{self, Config};

mod ctl;

/// rvs: a Layer-4 load-balancing director (IPVS + keepalived) on DPDK.
#[derive(Parser, Debug)]
#[command(name = "rvs", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the director in the foreground: SIGINT/SIGTERM drain and exit,
    /// SIGHUP reloads FILE.
    Run(ConfigFile),
    /// Validate FILE: exit 0, or print every error with its key path and line
    /// and exit 1.
    Check(ConfigFile),
    /// Talk to a running director: list, status, zero, add-/edit-/del-service,
    /// add-/edit-/del-server. Exit 0 ok, 1 refused (the message says why),
    /// 2 cannot reach the director.
    Ctl(ctl::CtlArgs),
}

#[derive(Args, Debug)]
struct ConfigFile {
    /// The configuration file (TOML, SPEC §4).
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version go to stdout and succeed; usage errors are
            // bad input (exit 1, not clap's 2, which `rvs ctl` keeps for "cannot
            // reach the director").
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Check(f) => check(&f.config, &mut io::stdout(), &mut io::stderr()),
        Command::Run(f) => run(&f.config),
        Command::Ctl(a) => ctl::run(a, &mut io::stdout(), &mut io::stderr()),
    }
}

/// Loads and validates `path`; on errors prints them all, one per line.
fn load(path: &Path, err: &mut dyn Write) -> Option<Config> {
    match config::load(path) {
        Ok(cfg) => Some(cfg),
        Err(errors) => {
            let _ = writeln!(err, "{errors}");
            None
        }
    }
}

fn check(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> ExitCode {
    let Some(cfg) = load(path, err) else {
        return ExitCode::FAILURE;
    };
    let _ = writeln!(
        out,
        "{}: ok ({} services, {} servers)",
        path.display(),
        cfg.services.len(),
        cfg.server_count()
    );
    for w in cfg.warnings() {
        let _ = writeln!(err, "{}: warning: {w}", path.display());
    }
    // Placement advice for a dedicated machine (PCI ports only).
    for w in config::host::warnings(&cfg, Path::new("/sys")) {
        let _ = writeln!(err, "{}: warning: {w}", path.display());
    }
    ExitCode::SUCCESS
}

fn run(path: &Path) -> ExitCode {
    let Some(cfg) = load(path, &mut io::stderr()) else {
        return ExitCode::FAILURE;
    };
    init_logging();
    tracing::info!(
        config = %path.display(),
        services = cfg.services.len(),
        servers = cfg.server_count(),
        "starting"
    );
    match engine::dataplane::run(cfg, path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvs: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RVS_LOG` (tracing's env-filter syntax,
/// e.g. `debug` or `info,engine::control=debug`); info by default.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let (filter, bad) = match std::env::var("RVS_LOG") {
        Ok(spec) => match EnvFilter::try_new(&spec) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new("info"), Some(format!("{spec:?}: {e}"))),
        },
        Err(_) => (EnvFilter::new("info"), None),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
    if let Some(bad) = bad {
        tracing::warn!("ignoring RVS_LOG {bad}; logging at info");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn configs() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
    }

    fn check_output(path: &Path) -> (ExitCode, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = check(path, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn cli_parses_run_and_check() {
        let cli = Cli::try_parse_from(["rvs", "check", "-c", "a.toml"]).unwrap();
        assert!(matches!(cli.command, Command::Check(f) if f.config == Path::new("a.toml")));
        let cli = Cli::try_parse_from(["rvs", "run", "--config", "b.toml"]).unwrap();
        assert!(matches!(cli.command, Command::Run(f) if f.config == Path::new("b.toml")));
        let cli = Cli::try_parse_from(["rvs", "check"]).unwrap();
        assert!(
            matches!(cli.command, Command::Check(f) if f.config == Path::new(config::DEFAULT_PATH))
        );
        assert!(Cli::try_parse_from(["rvs"]).is_err());
        assert!(Cli::try_parse_from(["rvs", "check", "-x"]).is_err());
    }

    #[test]
    fn cli_check_accepts_every_shipped_config() {
        let path = configs().join("demo-nat.toml");
        let (code, out, err) = check_output(&path);
        assert_eq!(code, ExitCode::SUCCESS, "{err}");
        assert_eq!(
            out,
            format!("{}: ok (2 services, 6 servers)\n", path.display())
        );
        assert_eq!(err, "");

        let path = configs().join("example-full.toml");
        let (code, out, err) = check_output(&path);
        assert_eq!(code, ExitCode::SUCCESS, "{err}");
        assert!(out.ends_with(": ok (3 services, 6 servers)\n"), "{out}");
    }

    #[test]
    fn cli_check_prints_every_error_and_fails() {
        let path = std::env::temp_dir().join(format!("rvs-cli-check-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[dpdk]\ncores = \"0-1\"\nworkers = 0\n[[port]]\nname = \"a\"\ndevice = \"d\"\naddress = \"198.18.0.2\"\n",
        )
        .unwrap();
        let (code, out, err) = check_output(&path);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(code, ExitCode::FAILURE);
        assert_eq!(out, "");
        let file = path.display();
        assert_eq!(
            err,
            format!(
                "{file}:3: dpdk.workers: 0 is outside 1..127\n\
                 {file}:7: port[0].address: 198.18.0.2 has no prefix length: write ADDRESS/PREFIX, e.g. \"198.18.0.2/24\"\n"
            )
        );
    }

    #[test]
    fn cli_check_reports_a_missing_file() {
        let (code, out, err) = check_output(Path::new("/nonexistent/rvs.toml"));
        assert_eq!(code, ExitCode::FAILURE);
        assert_eq!(out, "");
        assert!(
            err.starts_with("/nonexistent/rvs.toml: cannot read: "),
            "{err}"
        );
    }
}

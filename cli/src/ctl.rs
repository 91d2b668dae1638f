//! `rvs ctl`: the client of the director's control API (SPEC §3).
//!
//! It sends one request (newline-delimited JSON, see
//! `engine::control::api`) to the socket, prints the answer (as text in
//! the layout of `ipvsadm -L -n`, or as JSON with `--json`) and exits 0;
//! 1 when the director refused the request (the message says what and
//! where) or the arguments are bad; 2 when the director cannot be reached
//! or answers nonsense.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use engine::config::{self, ControlConfig};
use engine::control::ctl_proto::{
    ChangeResult, ConnsView, ListView, Request, Response, ServerArgs, ServiceArgs, StatusView,
    DEFAULT_CONN_LIMIT,
};
use engine::control::format::{self, ListMode, ListOpts};

/// How long `rvs ctl` waits for the director's answer.
const TIMEOUT: Duration = Duration::from_secs(40);

#[derive(Args, Debug)]
pub struct CtlArgs {
    /// The director's API socket [default: `[control] socket` of the
    /// configuration file, else /run/rvs/rvs.sock].
    #[arg(short = 's', long = "socket", value_name = "SOCKET", global = true)]
    socket: Option<PathBuf>,
    /// The configuration file whose `[control] socket` to use.
    #[arg(short = 'c', long = "config", value_name = "FILE", default_value = config::DEFAULT_PATH, global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand, Debug)]
pub enum CtlCommand {
    /// List services and servers, as `ipvsadm -L -n`.
    List(ListArgs),
    /// Role, peer, sync, workers and the health of each server.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reset the service and server counters (all, or one service's).
    Zero {
        /// Only this service and its servers: PROTO:VIP:PORT.
        #[arg(long, value_name = "PROTO:VIP:PORT")]
        service: Option<String>,
    },
    /// Change the TCP, TCP FIN_WAIT and UDP timeouts, as `ipvsadm --set tcp
    /// tcpfin udp` (`[timeouts] tcp_established / tcp_fin / udp`). New
    /// connections use them at once, existing ones from their next packet
    /// (as IPVS). Kept by `rvs ctl save`; a reload (SIGHUP) replaces them
    /// with the file's.
    #[command(group(clap::ArgGroup::new("which").required(true).multiple(true)))]
    SetTimeouts {
        /// Established TCP, seconds (0: unchanged).
        #[arg(long, value_name = "SECS", group = "which")]
        tcp: Option<u32>,
        /// TCP after the FIN (FIN_WAIT), seconds (0: unchanged).
        #[arg(long, value_name = "SECS", group = "which")]
        tcpfin: Option<u32>,
        /// UDP, seconds (0: unchanged).
        #[arg(long, value_name = "SECS", group = "which")]
        udp: Option<u32>,
    },
    /// Write the running configuration (with the changes made by rvs ctl)
    /// as TOML, keeping the comments of the file rvs was started with.
    Save {
        /// Where to write [default: the file rvs was started with].
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Add a virtual service.
    AddService(ServiceOpts),
    /// Change a virtual service.
    EditService(ServiceOpts),
    /// Delete a virtual service (its connections end at their next packet: an
    /// RST to the client, see `[timeouts] expire_nodest_conn`).
    DelService {
        /// PROTO:VIP:PORT, e.g. tcp:198.18.0.100:80 or tcp:[2001:db8::100]:80.
        #[arg(long, value_name = "PROTO:VIP:PORT")]
        service: String,
    },
    /// Add a real server to a service.
    AddServer(ServerOpts),
    /// Change a real server (--weight 0 drains it).
    EditServer(ServerOpts),
    /// Delete a real server (its connections end at their next packet: an RST
    /// to the client, see `[timeouts] expire_nodest_conn`; drain with
    /// `edit-server --weight 0` first to let them finish).
    DelServer {
        /// PROTO:VIP:PORT of its service, e.g. tcp:198.18.0.100:80.
        #[arg(long, value_name = "PROTO:VIP:PORT")]
        service: String,
        /// IP:PORT of the server (or IP: the service's port).
        #[arg(long, value_name = "IP:PORT")]
        server: String,
    },
    /// `[bgp]` maintenance: withdraw or announce a VIP through BIRD.
    #[command(subcommand)]
    Bgp(BgpCommand),
}

/// `rvs ctl bgp ...`. The route is the VIP's: every service on the VIP
/// follows. An operator's withdrawal lasts until `announce` (or a
/// restart); it is not part of the configuration.
#[derive(Subcommand, Debug)]
pub enum BgpCommand {
    /// Stop announcing the service's VIP (maintenance), until `announce`.
    Withdraw {
        /// PROTO:VIP:PORT, e.g. tcp:198.18.0.100:80.
        #[arg(long, value_name = "PROTO:VIP:PORT")]
        service: String,
    },
    /// End a `withdraw`: the VIP is announced again while it has a live
    /// server (and the director is master, with [ha]).
    Announce {
        /// PROTO:VIP:PORT, e.g. tcp:198.18.0.100:80.
        #[arg(long, value_name = "PROTO:VIP:PORT")]
        service: String,
    },
}

/// Services are listed as `ipvsadm -L -n` sorts them: by protocol, VIP
/// and port, their servers by address and port (`--nosort`: configuration
/// order). `--json` keeps configuration order. `--conns` is sorted by
/// VIP, port, client address and port.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("mode").multiple(false)))]
pub struct ListArgs {
    /// Only this service: PROTO:VIP:PORT (an unknown one is an error).
    #[arg(long, value_name = "PROTO:VIP:PORT")]
    service: Option<String>,
    /// Connections, packets and bytes in and out.
    #[arg(long, group = "mode")]
    stats: bool,
    /// Per-second rates.
    #[arg(long, group = "mode")]
    rate: bool,
    /// Upper and lower connection thresholds of each server.
    #[arg(long, group = "mode")]
    thresholds: bool,
    /// Live persistence templates per server (PersistConn).
    #[arg(long, group = "mode")]
    persistent_conn: bool,
    /// The TCP, TCP FIN and UDP timeouts (see set-timeouts).
    #[arg(long, group = "mode")]
    timeout: bool,
    /// The connection entries.
    #[arg(long, group = "mode")]
    conns: bool,
    /// With --conns: show at most N connections (counted before --service).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONN_LIMIT, requires = "conns")]
    limit: usize,
    /// Print JSON (configuration order).
    #[arg(long)]
    json: bool,
    /// With --stats/--rate: exact numbers (no K, M, G rounding).
    #[arg(long)]
    exact: bool,
    /// Configuration order, the order the schedulers use (SPEC §6),
    /// instead of ipvsadm's sort.
    #[arg(long)]
    nosort: bool,
}

#[derive(Args, Debug)]
pub struct ServiceOpts {
    /// PROTO:VIP:PORT, e.g. tcp:198.18.0.100:80 or tcp:[2001:db8::100]:80
    /// (port 0: all ports), or
    /// PROTO:VIP:PORT,PORT,... for one service over several ports.
    #[arg(long, value_name = "PROTO:VIP:PORT")]
    service: String,
    /// rr wrr lc wlc lblc lblcr dh sh sed nq mh (add-service: default wlc).
    #[arg(long, value_name = "NAME")]
    scheduler: Option<String>,
    /// Scheduler flags, comma-separated: sh-port, sh-fallback, mh-port,
    /// mh-fallback ("" clears them).
    #[arg(long, value_name = "FLAGS")]
    sched_flags: Option<String>,
    /// Default forwarding method of its servers: nat, dr or tun.
    #[arg(long, value_name = "METHOD")]
    forward: Option<String>,
    /// Persistence timeout in seconds (0: off).
    #[arg(long, value_name = "SECS")]
    persistence: Option<u32>,
    /// Persistence netmask (default 255.255.255.255).
    #[arg(long, value_name = "MASK")]
    persistence_netmask: Option<String>,
    /// IPv6 services: persistence groups clients by this prefix length
    /// (1..128, default 128; e.g. 64).
    #[arg(long, value_name = "LEN")]
    persistence_prefix: Option<u8>,
    /// Sorry server IP:PORT ("" removes it).
    #[arg(long, value_name = "IP:PORT")]
    sorry_server: Option<String>,
    /// Sum of live weights needed for the service to be up.
    #[arg(long, value_name = "N")]
    quorum: Option<u32>,
    /// One-packet scheduling for UDP (ipvsadm --ops): each datagram
    /// scheduled on its own, no connection entry (`--ops=false` turns it off).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    ops: Option<bool>,
}

#[derive(Args, Debug)]
pub struct ServerOpts {
    /// PROTO:VIP:PORT of its service.
    #[arg(long, value_name = "PROTO:VIP:PORT")]
    service: String,
    /// IP:PORT or [IPV6]:PORT (or the address alone: the service's port).
    #[arg(long, value_name = "IP:PORT")]
    server: String,
    /// 0..65535; 0 drains: no new connections, existing ones live on
    /// (add-server: default 1).
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = clap::value_parser!(u32).range(0..=65535))]
    weight: Option<u32>,
    /// nat, dr or tun (default: the service's).
    #[arg(long, value_name = "METHOD")]
    forward: Option<String>,
    /// Most active + inactive connections (0: no limit).
    #[arg(long, value_name = "N")]
    upper_threshold: Option<u32>,
    /// Where an overloaded server takes connections again.
    #[arg(long, value_name = "N")]
    lower_threshold: Option<u32>,
}

impl ServiceOpts {
    fn args(self) -> ServiceArgs {
        ServiceArgs {
            service: self.service,
            scheduler: self.scheduler,
            flags: self.sched_flags.map(|f| {
                f.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }),
            forward: self.forward,
            persistence: self.persistence,
            persistence_netmask: self.persistence_netmask,
            persistence_prefix: self.persistence_prefix,
            sorry_server: self.sorry_server,
            quorum: self.quorum,
            ops: self.ops,
        }
    }
}

impl ServerOpts {
    fn args(self) -> ServerArgs {
        ServerArgs {
            service: self.service,
            server: self.server,
            weight: self.weight,
            forward: self.forward,
            upper_threshold: self.upper_threshold,
            lower_threshold: self.lower_threshold,
        }
    }
}

/// How to print the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Show {
    /// The listing, and `--exact`, `--nosort`.
    List(ListMode, ListOpts),
    /// `list --timeout --json`: the `timeouts` object alone.
    TimeoutJson,
    Conns,
    Status,
    Change,
    Json,
}

/// The request and how to show its answer.
fn request(cmd: CtlCommand) -> (Request, Show) {
    match cmd {
        CtlCommand::List(l) => {
            let show = |mode| if l.json { Show::Json } else { mode };
            if l.conns {
                return (
                    Request::Conns {
                        limit: Some(l.limit),
                        service: l.service,
                    },
                    show(Show::Conns),
                );
            }
            let mode = if l.stats {
                ListMode::Stats
            } else if l.rate {
                ListMode::Rate
            } else if l.thresholds {
                ListMode::Thresholds
            } else if l.persistent_conn {
                ListMode::PersistConn
            } else if l.timeout {
                ListMode::Timeout
            } else {
                ListMode::Plain
            };
            let opts = ListOpts {
                exact: l.exact,
                nosort: l.nosort,
            };
            let shown = match (mode, l.json) {
                (ListMode::Timeout, true) => Show::TimeoutJson,
                (_, true) => Show::Json,
                _ => Show::List(mode, opts),
            };
            (Request::List { service: l.service }, shown)
        }
        CtlCommand::Status { json } => (
            Request::Status {},
            if json { Show::Json } else { Show::Status },
        ),
        CtlCommand::Zero { service } => (Request::Zero { service }, Show::Change),
        CtlCommand::SetTimeouts { tcp, tcpfin, udp } => {
            (Request::SetTimeouts { tcp, tcpfin, udp }, Show::Change)
        }
        CtlCommand::Save { file } => (
            Request::Save {
                // The director runs elsewhere: a relative path is ours.
                file: file.map(|f| std::path::absolute(&f).unwrap_or(f).display().to_string()),
            },
            Show::Change,
        ),
        CtlCommand::AddService(o) => (Request::AddService(o.args()), Show::Change),
        CtlCommand::EditService(o) => (Request::EditService(o.args()), Show::Change),
        CtlCommand::DelService { service } => (Request::DelService { service }, Show::Change),
        CtlCommand::AddServer(o) => (Request::AddServer(o.args()), Show::Change),
        CtlCommand::EditServer(o) => (Request::EditServer(o.args()), Show::Change),
        CtlCommand::DelServer { service, server } => {
            (Request::DelServer { service, server }, Show::Change)
        }
        CtlCommand::Bgp(BgpCommand::Withdraw { service }) => {
            (Request::BgpWithdraw { service }, Show::Change)
        }
        CtlCommand::Bgp(BgpCommand::Announce { service }) => {
            (Request::BgpAnnounce { service }, Show::Change)
        }
    }
}

/// The socket to use: `-s`, else `[control] socket` of the config file,
/// else the default.
fn socket_path(a: &CtlArgs, err: &mut dyn Write) -> PathBuf {
    if let Some(s) = &a.socket {
        return s.clone();
    }
    if a.config.exists() {
        match config::load(&a.config) {
            Ok(cfg) => return cfg.control.socket,
            Err(e) => {
                let _ = writeln!(
                    err,
                    "rvs ctl: {} has errors ({} found); using the default socket",
                    a.config.display(),
                    e.len()
                );
            }
        }
    }
    ControlConfig::default().socket
}

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// Exit 2: no director, or no sensible answer.
    Unreachable(String),
}

/// Sends one request and reads its response.
pub fn call(path: &Path, req: &Request, timeout: Duration) -> Result<Response, CallError> {
    let unreachable = |what: &str, e: &dyn std::fmt::Display| {
        CallError::Unreachable(format!(
            "cannot reach the director at {}: {what}: {e}",
            path.display()
        ))
    };
    let mut s = UnixStream::connect(path).map_err(|e| unreachable("connect", &e))?;
    s.set_read_timeout(Some(timeout))
        .and_then(|()| s.set_write_timeout(Some(timeout)))
        .map_err(|e| unreachable("socket", &e))?;
    let mut line = serde_json::to_string(req).map_err(|e| unreachable("request", &e))?;
    line.push('\n');
    s.write_all(line.as_bytes())
        .map_err(|e| unreachable("send", &e))?;
    let mut answer = String::new();
    BufReader::new(&s)
        .read_line(&mut answer)
        .map_err(|e| unreachable("no answer", &e))?;
    if answer.is_empty() {
        return Err(unreachable("no answer", &"the connection was closed"));
    }
    serde_json::from_str(&answer).map_err(|e| unreachable("bad answer", &e))
}

fn print(show: Show, result: serde_json::Value, out: &mut dyn Write) -> Result<(), String> {
    let bad = |e: serde_json::Error| format!("unexpected answer from the director: {e}");
    let text = match show {
        Show::Json => {
            let mut s = serde_json::to_string_pretty(&result).map_err(bad)?;
            s.push('\n');
            s
        }
        Show::List(mode, opts) => format::list_with(
            &serde_json::from_value::<ListView>(result).map_err(bad)?,
            mode,
            opts,
        ),
        Show::TimeoutJson => {
            let v = serde_json::from_value::<ListView>(result).map_err(bad)?;
            let mut s = serde_json::to_string_pretty(&v.timeouts).map_err(bad)?;
            s.push('\n');
            s
        }
        Show::Conns => format::conns(&serde_json::from_value::<ConnsView>(result).map_err(bad)?),
        Show::Status => format::status(&serde_json::from_value::<StatusView>(result).map_err(bad)?),
        Show::Change => {
            let c: ChangeResult = serde_json::from_value(result).map_err(bad)?;
            format!("{} (generation {})\n", c.message, c.generation)
        }
    };
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

/// `rvs ctl ...`: 0 ok, 1 refused, 2 unreachable.
pub fn run(a: CtlArgs, out: &mut dyn Write, err: &mut dyn Write) -> ExitCode {
    let path = socket_path(&a, err);
    let (req, show) = request(a.command);
    match call(&path, &req, TIMEOUT) {
        Err(CallError::Unreachable(m)) => {
            let _ = writeln!(err, "rvs ctl: {m}");
            ExitCode::from(2)
        }
        Ok(Response {
            ok: false, error, ..
        }) => {
            let _ = writeln!(
                err,
                "rvs ctl: {}",
                error.unwrap_or_else(|| "refused (no reason given)".to_string())
            );
            ExitCode::FAILURE
        }
        Ok(Response { result, .. }) => {
            match print(show, result.unwrap_or(serde_json::Value::Null), out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(m) => {
                    let _ = writeln!(err, "rvs ctl: {m}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser, Debug)]
    struct T {
        #[command(flatten)]
        a: CtlArgs,
    }

    fn parse(args: &[&str]) -> Result<(Request, Show), String> {
        use clap::Parser;
        let mut v = vec!["ctl"];
        v.extend_from_slice(args);
        T::try_parse_from(v)
            .map(|t| request(t.a.command))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn arguments_become_requests() {
        let all = Request::List { service: None };
        let sorted = ListOpts::default();
        assert_eq!(
            parse(&["list"]).unwrap(),
            (all.clone(), Show::List(ListMode::Plain, sorted))
        );
        assert_eq!(
            parse(&["list", "--stats"]).unwrap(),
            (all.clone(), Show::List(ListMode::Stats, sorted))
        );
        assert_eq!(
            parse(&["list", "--rate", "--json"]).unwrap(),
            (all.clone(), Show::Json)
        );
        assert_eq!(
            parse(&["list", "--conns", "--limit", "7"]).unwrap(),
            (
                Request::Conns {
                    limit: Some(7),
                    service: None
                },
                Show::Conns
            )
        );
        assert!(parse(&["list", "--stats", "--rate"]).is_err());
        assert!(parse(&["list", "--conns", "--stats"]).is_err());
        assert!(parse(&["list", "--thresholds", "--persistent-conn"]).is_err());
        assert!(parse(&["list", "--timeout", "--stats"]).is_err());
        // issue 14: one service, ipvsadm's other listings, --nosort
        let one = Request::List {
            service: Some("udp:198.18.0.100:53".into()),
        };
        assert_eq!(
            parse(&[
                "list",
                "--service",
                "udp:198.18.0.100:53",
                "--stats",
                "--exact",
                "--nosort"
            ])
            .unwrap(),
            (
                one.clone(),
                Show::List(
                    ListMode::Stats,
                    ListOpts {
                        exact: true,
                        nosort: true
                    }
                )
            )
        );
        assert_eq!(
            parse(&["list", "--thresholds"]).unwrap(),
            (all.clone(), Show::List(ListMode::Thresholds, sorted))
        );
        assert_eq!(
            parse(&[
                "list",
                "--persistent-conn",
                "--service",
                "udp:198.18.0.100:53"
            ])
            .unwrap(),
            (one, Show::List(ListMode::PersistConn, sorted))
        );
        assert_eq!(
            parse(&["list", "--timeout"]).unwrap(),
            (all.clone(), Show::List(ListMode::Timeout, sorted))
        );
        assert_eq!(
            parse(&["list", "--timeout", "--json"]).unwrap(),
            (all, Show::TimeoutJson)
        );
        assert_eq!(
            parse(&["list", "--conns", "--service", "tcp:198.18.0.100:80"]).unwrap(),
            (
                Request::Conns {
                    limit: Some(DEFAULT_CONN_LIMIT),
                    service: Some("tcp:198.18.0.100:80".into())
                },
                Show::Conns
            )
        );
        assert_eq!(
            parse(&["zero", "--service", "tcp:198.18.0.100:80"]).unwrap(),
            (
                Request::Zero {
                    service: Some("tcp:198.18.0.100:80".into())
                },
                Show::Change
            )
        );
        assert_eq!(
            parse(&["zero"]).unwrap(),
            (Request::Zero { service: None }, Show::Change)
        );
        assert_eq!(
            parse(&["set-timeouts", "--udp", "2", "--tcp", "0"]).unwrap(),
            (
                Request::SetTimeouts {
                    tcp: Some(0),
                    tcpfin: None,
                    udp: Some(2)
                },
                Show::Change
            )
        );
        assert!(parse(&["set-timeouts"]).is_err(), "needs one timeout");
        assert!(parse(&["set-timeouts", "--udp", "-1"]).is_err());
        assert_eq!(
            parse(&["status", "--json"]).unwrap(),
            (Request::Status {}, Show::Json)
        );
        assert_eq!(
            parse(&[
                "edit-server",
                "--service",
                "tcp:198.18.0.100:80",
                "--server",
                "198.19.0.12:8080",
                "--weight",
                "0"
            ])
            .unwrap()
            .0,
            Request::EditServer(ServerArgs {
                service: "tcp:198.18.0.100:80".into(),
                server: "198.19.0.12:8080".into(),
                weight: Some(0),
                ..ServerArgs::default()
            })
        );
        assert_eq!(
            parse(&[
                "add-service",
                "--service",
                "tcp:198.18.0.100:8080",
                "--scheduler",
                "sh",
                "--sched-flags",
                "sh-port, sh-fallback",
                "--persistence",
                "60"
            ])
            .unwrap()
            .0,
            Request::AddService(ServiceArgs {
                service: "tcp:198.18.0.100:8080".into(),
                scheduler: Some("sh".into()),
                flags: Some(vec!["sh-port".into(), "sh-fallback".into()]),
                persistence: Some(60),
                ..ServiceArgs::default()
            })
        );
        // what clap refuses: missing or malformed arguments
        assert!(parse(&["add-server", "--service", "tcp:198.18.0.100:80"]).is_err());
        assert!(parse(&[
            "edit-server",
            "--service",
            "s",
            "--server",
            "x",
            "--weight",
            "-1"
        ])
        .is_err());
        assert!(parse(&[
            "edit-server",
            "--service",
            "s",
            "--server",
            "x",
            "--weight",
            "lots"
        ])
        .is_err());
        assert!(parse(&["frobnicate"]).is_err());
    }

    /// issue 14 item 10: the weight's real range in the message, with or
    /// without `=`; `--limit` only with `--conns`.
    #[test]
    fn weight_range_and_limit_are_explained() {
        use clap::Parser;
        for args in [
            &[
                "ctl",
                "edit-server",
                "--service",
                "s",
                "--server",
                "x",
                "--weight",
                "-1",
            ][..],
            &[
                "ctl",
                "edit-server",
                "--service",
                "s",
                "--server",
                "x",
                "--weight=-1",
            ],
            &[
                "ctl",
                "edit-server",
                "--service",
                "s",
                "--server",
                "x",
                "--weight",
                "70000",
            ],
        ] {
            let e = T::try_parse_from(args).unwrap_err().to_string();
            assert!(e.contains("0..=65535"), "{args:?}: {e}");
        }
        let ok = T::try_parse_from([
            "ctl",
            "edit-server",
            "--service",
            "s",
            "--server",
            "x",
            "--weight",
            "65535",
        ]);
        assert!(ok.is_ok());
        let e = T::try_parse_from(["ctl", "list", "--limit", "5"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--conns"), "{e}");
        assert!(T::try_parse_from(["ctl", "list", "--conns", "--limit", "5"]).is_ok());
    }

    #[test]
    fn an_absent_director_is_exit_2() {
        use clap::Parser;
        let t = T::try_parse_from(["ctl", "-s", "/nonexistent/rvs.sock", "list"]).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(t.a, &mut out, &mut err);
        assert_eq!(code, ExitCode::from(2));
        let err = String::from_utf8(err).unwrap();
        assert!(
            err.starts_with(
                "rvs ctl: cannot reach the director at /nonexistent/rvs.sock: connect:"
            ),
            "{err}"
        );
    }

    /// A fake director on a socket pair: answers are printed, refusals are
    /// exit 1, nonsense is exit 2.
    #[test]
    fn answers_refusals_and_nonsense() {
        use std::os::unix::net::UnixListener;
        let path = std::env::temp_dir().join(format!("rvs-ctl-cli-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).unwrap();
        let answers = [
            Response::ok(ChangeResult {
                message: "added server 198.19.0.14:8080 to tcp:198.18.0.100:80".into(),
                generation: 3,
            })
            .to_line(),
            Response::error("service: no service tcp:198.18.0.100:81").to_line(),
            "this is not json\n".to_string(),
        ];
        let t = std::thread::spawn(move || {
            for a in answers {
                let (s, _) = l.accept().unwrap();
                let mut line = String::new();
                BufReader::new(&s).read_line(&mut line).unwrap();
                assert!(line.ends_with('\n'));
                (&s).write_all(a.as_bytes()).unwrap();
            }
        });
        let p = path.to_str().unwrap();
        let go = |args: &[&str]| {
            use clap::Parser;
            let mut v = vec!["ctl", "-s", p];
            v.extend_from_slice(args);
            let t = T::try_parse_from(v).unwrap();
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = run(t.a, &mut out, &mut err);
            (
                code,
                String::from_utf8(out).unwrap(),
                String::from_utf8(err).unwrap(),
            )
        };
        let add = [
            "add-server",
            "--service",
            "tcp:198.18.0.100:80",
            "--server",
            "198.19.0.14:8080",
        ];
        assert_eq!(
            go(&add),
            (
                ExitCode::SUCCESS,
                "added server 198.19.0.14:8080 to tcp:198.18.0.100:80 (generation 3)\n".into(),
                String::new()
            )
        );
        assert_eq!(
            go(&add),
            (
                ExitCode::FAILURE,
                String::new(),
                "rvs ctl: service: no service tcp:198.18.0.100:81\n".into()
            )
        );
        let (code, _, err) = go(&add);
        assert_eq!(code, ExitCode::from(2));
        assert!(err.contains("bad answer"), "{err}");
        t.join().unwrap();
        let _ = std::fs::remove_file(&path);
    }
}

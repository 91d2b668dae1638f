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
mod tests;

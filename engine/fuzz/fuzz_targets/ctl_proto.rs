//! Fuzz the control protocol as the director's socket server runs it: the
//! byte stream a client writes is cut into request lines by
//! `control::api::read_line` (at most `MAX_REQUEST` bytes each), each line
//! goes through `parse_request`, and each configuration change through
//! `control::edit::apply` against a fixed two-service configuration (the
//! pure part of what `rvs ctl add-server ...` does; publishing to the data
//! plane is not pure and is not fuzzed).
//!
//! Input: the client's byte stream (several newline-separated requests).
//! Seeds: one request of each command (see `ci/fuzz.sh`).
//!
//! Checked: no panic; the reader never returns more than `MAX_REQUEST`
//! bytes or a newline inside a line; an accepted request serialises to JSON
//! that parses back to itself (the `rvs ctl` client and the director share
//! these types); an accepted change gives a configuration that validates
//! clean and is refused when applied a second time if it added something;
//! every answer, accepted or refused, is exactly one line on the wire.
#![no_main]

use std::io::Cursor;
use std::sync::OnceLock;

use engine::config::{self, Config};
use engine::control::api::{parse_request, read_line, Line};
use engine::control::ctl_proto::{Request, Response, MAX_REQUEST};
use engine::control::edit;
use libfuzzer_sys::fuzz_target;

const BASE: &str = r#"
[dpdk]
cores = "0-1"
[[port]]
name = "client"
device = "net_null0"
address = "198.18.0.2/24"
[[port]]
name = "servers"
device = "net_null1"
address = "198.19.0.1/24"
[[service]]
vip = "198.18.0.100"
port = 80
scheduler = "wrr"
  [[service.server]]
  address = "198.19.0.11"
  port = 8080
  weight = 3
  [[service.server]]
  address = "198.19.0.12"
  port = 8080
[[service]]
vip = "198.18.0.100"
port = 53
protocol = "udp"
  [[service.server]]
  address = "198.19.0.11"
  port = 5353
"#;

fn base() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| config::parse(BASE).expect("fuzz base config"))
}

/// The answer goes out as exactly one line.
fn one_line(r: &Response) {
    let line = r.to_line();
    assert!(line.ends_with('\n'));
    assert_eq!(
        line.matches('\n').count(),
        1,
        "answer spans lines: {line:?}"
    );
}

fn check(req: &Request) {
    let json = serde_json::to_string(req).expect("request serialises");
    let back: Request = serde_json::from_str(&json).expect("own JSON parses");
    assert_eq!(&back, req, "JSON round trip changed the request: {json}");
    if !req.is_change() {
        return;
    }
    match edit::apply(base(), req) {
        Ok((next, msg)) => {
            let errors = next.validate();
            assert!(errors.is_empty(), "applied change is invalid: {errors:?}");
            one_line(&Response::ok(msg));
            if matches!(req, Request::AddService(_) | Request::AddServer(_)) {
                assert!(
                    edit::apply(&next, req).is_err(),
                    "the same add was accepted twice"
                );
            }
        }
        Err(e) => one_line(&Response::error(e)),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Cursor::new(data);
    // Bounded: each round consumes at least one byte or ends.
    for _ in 0..=data.len() {
        match read_line(&mut r) {
            Line::Complete(line) => {
                assert!(line.len() <= MAX_REQUEST, "line of {} bytes", line.len());
                assert!(!line.contains(&b'\n'), "newline inside a line");
                match parse_request(&line) {
                    Ok(req) => check(&req),
                    Err(e) => one_line(&Response::error(e)),
                }
            }
            Line::Cut(_) | Line::TooLong | Line::Eof => break,
            Line::Timeout { .. } | Line::Error(_) => panic!("in-memory reader cannot fail"),
        }
    }
});

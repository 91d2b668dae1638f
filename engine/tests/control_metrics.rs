//! engine::control::metrics, the listener: a slow client cannot hold a
//! scrape slot beyond its deadline, more clients than slots are refused at
//! once; and `rvs check` refuses a `[control] metrics` bind that clients
//! could reach through the exception path.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::config::parse;
use engine::control::metrics::{self, ControlInfo, MAX_SCRAPES};
use engine::dataplane::Shared;

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn get(addr: SocketAddr) -> (String, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    (out, t.elapsed())
}

/// A slowloris client: one byte of a request head every 300 ms, never a
/// complete head. Returns when the server closed the connection (with what
/// it answered), or `None` after `give_up`.
fn drip(addr: SocketAddr, give_up: Duration) -> Option<(Duration, String)> {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let head = b"GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut got = Vec::new();
    let mut i = 0;
    while t.elapsed() < give_up {
        if got.is_empty() && s.write_all(&head[i % head.len()..][..1]).is_err() {
            return Some((t.elapsed(), String::from_utf8_lossy(&got).into_owned()));
        }
        i += 1;
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => return Some((t.elapsed(), String::from_utf8_lossy(&got).into_owned())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some((t.elapsed(), String::from_utf8_lossy(&got).into_owned())),
        }
    }
    None
}

#[test]
fn slow_clients_are_cut_off_and_extra_clients_refused_at_once() {
    let addr = free_addr();
    metrics::start(
        addr,
        Arc::new(Shared::new(1)),
        Arc::new(ControlInfo::new(1024)),
    )
    .unwrap();
    // a well-behaved scrape works
    let (r, _) = get(addr);
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");

    let start = Instant::now();
    let slow: Vec<_> = (0..MAX_SCRAPES)
        .map(|_| std::thread::spawn(move || drip(addr, Duration::from_secs(12))))
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    // every slot is taken: the next client is refused, at once
    let (r, took) = get(addr);
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    assert!(took < Duration::from_secs(1), "refusal took {took:?}");

    // the slow clients are cut off by their deadline...
    for t in slow {
        let (when, answer) = t
            .join()
            .unwrap()
            .expect("a slowloris client kept its slot for 12 s");
        assert!(
            when >= Duration::from_millis(1500) && when < Duration::from_secs(4),
            "cut off after {when:?}"
        );
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    // ...and the endpoint serves again
    assert!(start.elapsed() < Duration::from_secs(5));
    let (r, _) = get(addr);
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
}

#[test]
fn a_slow_client_does_not_delay_another() {
    let addr = free_addr();
    metrics::start(
        addr,
        Arc::new(Shared::new(1)),
        Arc::new(ControlInfo::new(1024)),
    )
    .unwrap();
    let slow = std::thread::spawn(move || drip(addr, Duration::from_secs(12)));
    std::thread::sleep(Duration::from_millis(200));
    let (r, took) = get(addr);
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let (when, _) = slow.join().unwrap().expect("never cut off");
    assert!(when < Duration::from_secs(4), "{when:?}");
}

/// The two-port head of a configuration: the director's own addresses are
/// 198.18.0.2 and 198.19.0.1.
const HEAD: &str = "[dpdk]
cores = \"0-1\"
[[port]]
name = \"client\"
device = \"net_af_packet0,iface=c\"
address = \"198.18.0.2/24\"
[[port]]
name = \"servers\"
device = \"net_af_packet1,iface=s\"
address = \"198.19.0.1/24\"
[control]
";

fn with_metrics(bind: &str) -> String {
    format!("{HEAD}metrics = \"{bind}\"\n")
}

#[test]
fn check_refuses_a_metrics_bind_reachable_through_the_exception_path() {
    for bind in [
        "0.0.0.0:9100",
        "198.18.0.2:9100",
        "198.19.0.1:9100",
        "[::]:9100",
        "[::ffff:198.18.0.2]:9100",
    ] {
        let errors = match parse(&with_metrics(bind)) {
            Ok(_) => panic!("{bind}: accepted"),
            Err(e) => e,
        };
        assert_eq!(errors.len(), 1, "{bind}: {errors}");
        let e = &errors.errors[0];
        assert_eq!(e.path, "control.metrics", "{bind}: {errors}");
        assert_eq!(e.line, 12, "{bind}: {errors}");
        assert!(
            e.message.contains(&format!(
                "{bind} would be reachable by clients through the exception path"
            )) && e.message.contains("bind 127.0.0.1 or a management address"),
            "{bind}: {}",
            e.message
        );
    }
    // loopback and addresses the data plane does not own are fine
    for bind in [
        "127.0.0.1:9100",
        "127.0.0.53:9100",
        "[::1]:9100",
        "10.0.0.5:9100",
    ] {
        if let Err(e) = parse(&with_metrics(bind)) {
            panic!("{bind}: {e}");
        }
    }
    // and a configuration changed in code is judged the same way
    let mut cfg = parse(&with_metrics("127.0.0.1:9100")).unwrap();
    assert!(cfg.validate().is_empty());
    cfg.control.metrics = Some("0.0.0.0:9100".parse().unwrap());
    let errors = cfg.validate();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "control.metrics");
}

/// An IPv6 service and its servers are exported with their endpoints in
/// brackets: `service="tcp:[2001:db8:0:1::100]:80"`,
/// `server="[2001:db8:0:2::11]:8080"`, with their counts.
#[test]
fn ipv6_services_and_servers_are_labelled_in_brackets() {
    use engine::dataplane::snapshot::{AllUp, Snapshot};
    let cfg = parse(
        r#"
[dpdk]
cores = "0-1"
workers = 1
[[port]]
name = "servers"
device = "net_null0"
address = ["198.19.0.1/24", "2001:db8:0:2::1/64"]
[[service]]
vip = "2001:db8:0:1::100"
port = 80
  [[service.server]]
  address = "2001:db8:0:2::11"
  port = 8080
  weight = 3
  [[service.server]]
  address = "2001:db8:0:2::12"
  port = 8080
"#,
    )
    .unwrap();
    let shared = Shared::new(1);
    let snap = Snapshot::build(&cfg, &[], &shared.registry, 3, &AllUp).unwrap();
    let d = snap.services6[0].servers[0].shared.clone();
    d.per_worker[0].conns.add(4);
    d.per_worker[0].active.add(2);
    d.per_worker[0].in_bytes.add(640);
    shared.publish(snap);
    let text = metrics::render(&shared, &ControlInfo::new(1024));
    let has = |line: &str| {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        )
    };
    let svc = r#"service="tcp:[2001:db8:0:1::100]:80""#;
    let s11 = r#"server="[2001:db8:0:2::11]:8080""#;
    let s12 = r#"server="[2001:db8:0:2::12]:8080""#;
    has(&format!("rvs_service_connections_total{{{svc}}} 4"));
    has(&format!("rvs_service_active_connections{{{svc}}} 2"));
    has(&format!("rvs_server_connections_total{{{svc},{s11}}} 4"));
    has(&format!("rvs_server_in_bytes_total{{{svc},{s11}}} 640"));
    has(&format!("rvs_server_active_connections{{{svc},{s11}}} 2"));
    has(&format!("rvs_server_weight{{{svc},{s11}}} 3"));
    has(&format!("rvs_server_weight{{{svc},{s12}}} 1"));
    has(&format!("rvs_server_up{{{svc},{s12}}} 1"));
}

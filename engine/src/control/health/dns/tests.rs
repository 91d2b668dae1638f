//! dns checks against a real DNS responder on loopback: a UDP socket in
//! the test that parses each query with hickory-proto and answers with a
//! real DNS message (an A or SOA record, or an error), in several ways.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::str::FromStr;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record};

use super::*;
use crate::config::{HealthCheck, HealthCheckKind};

#[derive(Clone, Copy)]
enum Mode {
    /// The answer asked for (A or SOA), authoritative.
    Answer,
    /// NOERROR without answers.
    Empty,
    /// NXDOMAIN.
    NxDomain,
    /// First a reply with another id, then the right one.
    WrongIdFirst,
    /// The query sent back as is (QR clear).
    Echo,
    /// Nothing.
    Silent,
}

/// A responder answering `n` queries; sends each query it got.
fn responder(mode: Mode, n: usize) -> (SocketAddrV4, Receiver<Message>) {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let SocketAddr::V4(addr) = sock.local_addr().unwrap() else {
        unreachable!()
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 1500];
        for _ in 0..n {
            let Ok((len, from)) = sock.recv_from(&mut buf) else {
                return;
            };
            let q = Message::from_vec(&buf[..len]).expect("a DNS query");
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.recursion_desired = q.metadata.recursion_desired;
            r.add_queries(q.queries.clone());
            let qq = q.queries[0].clone();
            match mode {
                Mode::Answer => {
                    r.metadata.authoritative = true;
                    let rdata = if qq.query_type() == RecordType::A {
                        RData::A(A(Ipv4Addr::new(198, 19, 0, 53)))
                    } else {
                        RData::SOA(SOA::new(
                            Name::from_str("ns.example.test.").unwrap(),
                            Name::from_str("hostmaster.example.test.").unwrap(),
                            2026113001,
                            3600,
                            600,
                            86400,
                            60,
                        ))
                    };
                    r.add_answer(Record::from_rdata(qq.name().clone(), 60, rdata));
                }
                Mode::Empty => {}
                Mode::NxDomain => r.metadata.response_code = ResponseCode::NXDomain,
                Mode::WrongIdFirst => {
                    let mut other = r.clone();
                    other.metadata.id = q.metadata.id.wrapping_add(1);
                    other.metadata.response_code = ResponseCode::ServFail;
                    let _ = sock.send_to(&other.to_vec().unwrap(), from);
                }
                Mode::Echo => r = q.clone(),
                Mode::Silent => {
                    let _ = tx.send(q);
                    continue;
                }
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), from);
            let _ = tx.send(q);
        }
    });
    (addr, rx)
}

fn spec(target: SocketAddrV4, f: impl FnOnce(&mut HealthCheck)) -> CheckSpec {
    let mut hc = HealthCheck {
        kind: HealthCheckKind::Dns,
        timeout_ms: 400,
        ..HealthCheck::default()
    };
    f(&mut hc);
    CheckSpec::new(&hc, target.into())
}

#[test]
fn a_soa_query_for_the_root_by_default() {
    let (a, rx) = responder(Mode::Answer, 1);
    let r = spec(a, |_| {}).run().unwrap();
    assert!(
        r.starts_with("DNS NOERROR, 1 answer(s), authoritative in "),
        "{r}"
    );
    let q = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    assert_eq!(q.queries.len(), 1);
    assert_eq!(q.queries[0].query_type(), RecordType::SOA);
    assert_eq!(q.queries[0].name(), &Name::root());
    assert!(q.metadata.recursion_desired);
}

#[test]
fn an_a_query_for_a_name() {
    let (a, rx) = responder(Mode::Answer, 1);
    let s = spec(a, |h| {
        h.dns_name = "www.example.test".into();
        h.dns_type = DnsType::A;
    });
    assert!(s.run().unwrap().starts_with("DNS NOERROR, 1 answer(s)"));
    let q = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    assert_eq!(q.queries[0].query_type(), RecordType::A);
    assert_eq!(q.queries[0].name().to_ascii(), "www.example.test.");
}

#[test]
fn noerror_without_answers_passes() {
    let (a, _rx) = responder(Mode::Empty, 1);
    assert!(spec(a, |_| {})
        .run()
        .unwrap()
        .starts_with("DNS NOERROR, 0 answer(s) in"));
}

#[test]
fn an_error_rcode_fails() {
    let (a, _rx) = responder(Mode::NxDomain, 1);
    assert_eq!(
        spec(a, |_| {}).run(),
        Err("DNS rcode Non-Existent Domain".into())
    );
}

#[test]
fn a_reply_with_another_id_is_skipped() {
    let (a, _rx) = responder(Mode::WrongIdFirst, 1);
    assert!(spec(a, |_| {}).run().unwrap().starts_with("DNS NOERROR"));
}

#[test]
fn a_query_echoed_back_is_not_a_response() {
    let (a, _rx) = responder(Mode::Echo, 1);
    let e = spec(a, |_| {}).run().unwrap_err();
    assert!(e.contains("not a response (QR clear)"), "{e}");
}

#[test]
fn silence_fails_at_the_deadline_and_no_server_at_once() {
    let (a, rx) = responder(Mode::Silent, 1);
    let t0 = Instant::now();
    assert_eq!(
        spec(a, |_| {}).run(),
        Err("no reply: timed out after 400 ms".into())
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(380) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    rx.recv_timeout(Duration::from_secs(2))
        .expect("the query was sent");
    // a port nobody listens on: ICMP port unreachable on loopback
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let SocketAddr::V4(closed) = s.local_addr().unwrap() else {
        unreachable!()
    };
    drop(s);
    // A 5 s timeout: "at once" means long before it, however loaded the
    // machine running the tests is.
    let t0 = Instant::now();
    assert_eq!(
        spec(closed, |hc| hc.timeout_ms = 5000).run(),
        Err("no DNS server: port unreachable".into())
    );
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn judging_raw_replies() {
    let q = build_query(0x1234, "example.test", DnsType::Mx).unwrap();
    assert_eq!(&q[..2], &[0x12, 0x34]);
    // our own query is not a response
    assert!(judge(0x1234, &q).unwrap_err().contains("QR clear"));
    // garbage with our id fails; garbage without it is skipped
    assert!(judge(0x1234, &[0x12, 0x34, 0xff])
        .unwrap_err()
        .starts_with("malformed DNS reply"));
    assert_eq!(judge(0x1234, &[0x00, 0x01, 0xff]), Ok(None));
    assert!(build_query(1, "a..b", DnsType::A).is_err());
}

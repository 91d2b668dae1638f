use super::*;
use crate::control::ctl_proto::{ServerView, ServiceView};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};

fn view() -> ListView {
    let server = |last: u8, weight, health: &str, up| ServerView {
        address: Ipv4Addr::new(198, 19, 0, last).into(),
        port: 8080,
        forward: "nat".into(),
        weight,
        effective_weight: if up { weight } else { 0 },
        up,
        health: health.into(),
        ..ServerView::default()
    };
    ListView {
        version: "0.1.0".into(),
        size: 65536,
        generation: 7,
        timeouts: Default::default(),
        services: vec![ServiceView {
            protocol: "tcp".into(),
            vip: Ipv4Addr::new(198, 18, 0, 100).into(),
            port: 80,
            scheduler: "wrr".into(),
            forward: "nat".into(),
            sorry_server: Some("198.19.0.99:8080".into()),
            quorum: 1,
            servers: vec![
                server(11, 3, "up", true),
                server(12, 2, "down", false),
                server(13, 1, "up", true),
            ],
            ..ServiceView::default()
        }],
    }
}

fn down_event() -> Event {
    let mut ev = Event::new(
        EventKind::ServerDown,
        "tcp:198.18.0.100:80".into(),
        "server 198.19.0.12:8080 of tcp:198.18.0.100:80 is down: 3 consecutive http checks failed"
            .into(),
        "removed from the pool; its connections are expired".into(),
    );
    ev.server = Some("198.19.0.12:8080".into());
    ev.check = Some(
        "http GET http://198.19.0.12:8080/ expecting 200, every 1000 ms, timeout 500 ms".into(),
    );
    ev.last_result = Some("connect: Connection refused (os error 111)".into());
    ev.live_weight = 4;
    ev.quorum = 1;
    ev.sorry_server = Some("198.19.0.99:8080".into());
    ev.configuration = Some(view());
    ev
}

#[test]
fn rfc3339_dates() {
    let t = |s: u64, ms: u64| UNIX_EPOCH + Duration::from_millis(s * 1000 + ms);
    assert_eq!(rfc3339(t(0, 0)), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(t(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
    assert_eq!(rfc3339(t(1_700_000_000, 999)), "2023-11-14T22:13:20.999Z");
    assert_eq!(rfc3339(t(4_102_444_799, 0)), "2099-12-31T23:59:59.000Z");
}

#[test]
fn subjects() {
    let mut ev = down_event();
    assert_eq!(
        ev.subject(),
        "[rvs] server 198.19.0.12:8080 of tcp:198.18.0.100:80 is DOWN"
    );
    ev.event = EventKind::ServerUp;
    assert_eq!(
        ev.subject(),
        "[rvs] server 198.19.0.12:8080 of tcp:198.18.0.100:80 is UP"
    );
    ev.event = EventKind::QuorumLost;
    ev.server = None;
    ev.live_weight = 0;
    assert_eq!(
        ev.subject(),
        "[rvs] service tcp:198.18.0.100:80 LOST QUORUM (live weight 0 < 1)"
    );
}

#[test]
fn a_role_change_says_the_new_role_the_old_one_and_the_master() {
    let mut ev = Event::new(
        EventKind::Role,
        String::new(),
        "the director is now master (was backup): master down".into(),
        "took the virtual addresses".into(),
    );
    ev.director = "dir2".into();
    ev.role = Some("master".into());
    ev.previous_role = Some("backup".into());
    ev.master = Some("198.19.0.3".into());
    assert_eq!(
        ev.subject(),
        "[rvs] director dir2 is now MASTER (was backup)"
    );
    let body = ev.mail_body();
    assert!(body.contains("Event:        role\n"), "{body}");
    assert!(
        body.contains("Role:         master (was backup)\n"),
        "{body}"
    );
    assert!(body.contains("Master:       198.19.0.3\n"), "{body}");
    let j: serde_json::Value = serde_json::from_str(ev.json_line().trim()).unwrap();
    assert_eq!(j["event"], "role");
    assert_eq!(j["role"], "master");
    assert_eq!(j["previous_role"], "backup");
    // server events carry no role keys
    let j: serde_json::Value = serde_json::from_str(down_event().json_line().trim()).unwrap();
    assert!(j.get("role").is_none());
}

#[test]
fn the_mail_body_says_what_why_and_lists_the_configuration() {
    let ev = down_event();
    let body = ev.mail_body();
    let want_lines = [
            format!("rvs director {}: server 198.19.0.12:8080 of tcp:198.18.0.100:80 is down: 3 consecutive http checks failed", ev.director),
            "Event:        server-down".to_string(),
            "Service:      tcp:198.18.0.100:80".to_string(),
            "Server:       198.19.0.12:8080".to_string(),
            "Action:       removed from the pool; its connections are expired".to_string(),
            "Check:        http GET http://198.19.0.12:8080/ expecting 200, every 1000 ms, timeout 500 ms".to_string(),
            "Last result:  connect: Connection refused (os error 111)".to_string(),
            "Live weight:  4 (quorum 1)".to_string(),
            "Current configuration:".to_string(),
            "IP Virtual Server version 0.1.0 (size=65536)".to_string(),
            "TCP  198.18.0.100:80 wrr".to_string(),
            "  -> 198.19.0.11:8080             Masq    3      0          0          up".to_string(),
            "  -> 198.19.0.12:8080             Masq    0      0          0          down".to_string(),
            "  sorry server 198.19.0.99:8080, quorum 1".to_string(),
        ];
    let lines: Vec<&str> = body.lines().collect();
    for w in &want_lines {
        assert!(lines.contains(&w.as_str()), "missing line {w:?} in\n{body}");
    }
    assert!(body.find("Last result").unwrap() < body.find("Current configuration").unwrap());
}

#[test]
fn the_json_event_is_one_line_with_the_documented_keys() {
    let ev = down_event();
    let line = ev.json_line();
    assert!(line.ends_with('\n'));
    assert_eq!(line.matches('\n').count(), 1);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["event"], "server-down");
    assert_eq!(v["service"], "tcp:198.18.0.100:80");
    assert_eq!(v["server"], "198.19.0.12:8080");
    assert_eq!(
        v["last_result"],
        "connect: Connection refused (os error 111)"
    );
    assert_eq!(v["live_weight"], 4);
    assert_eq!(v["quorum"], 1);
    assert_eq!(v["sorry_server"], "198.19.0.99:8080");
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
    assert!(v["unix_ms"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(
        v["configuration"]["services"][0]["servers"][1]["health"],
        "down"
    );
    // and it reads back as the same event
    let back: Event = serde_json::from_str(&line).unwrap();
    assert_eq!(back, ev);
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let b = Backoff::default();
    let secs: Vec<u64> = (1..=9).map(|n| b.after(n).as_secs()).collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert_eq!(b.after(100), Duration::from_secs(60));
}

fn job(subject: &str, relay: SmtpRelay) -> MailJob {
    MailJob {
        relay,
        from: "rvs@example.org".into(),
        to: vec!["ops@example.org".into()],
        subject: subject.into(),
        body: "body\n".into(),
    }
}

fn relay(port: u16) -> SmtpRelay {
    SmtpRelay {
        host: "127.0.0.1".into(),
        port,
    }
}

#[test]
fn retries_in_order_with_backoff_and_gives_up() {
    let fast = Backoff {
        first: Duration::from_millis(5),
        max: Duration::from_millis(20),
        attempts: 4,
    };
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let l2 = log.clone();
    // "a" fails twice then goes; "b" always fails (transient); "c" is
    // refused for good at once; "d" goes.
    let tries: Arc<Mutex<u32>> = Arc::default();
    let send = move |j: &MailJob| {
        l2.lock().unwrap().push(j.subject.clone());
        match j.subject.as_str() {
            "a" => {
                let mut t = tries.lock().unwrap();
                *t += 1;
                if *t <= 2 {
                    Err(SendError {
                        permanent: false,
                        reason: "connection refused".into(),
                    })
                } else {
                    Ok(())
                }
            }
            "b" => Err(SendError {
                permanent: false,
                reason: "timed out".into(),
            }),
            "c" => Err(SendError {
                permanent: true,
                reason: "550 no".into(),
            }),
            _ => Ok(()),
        }
    };
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    for s in ["a", "b", "c", "d"] {
        tx.send(job(s, relay(25))).unwrap();
    }
    drop(tx);
    let t0 = Instant::now();
    mail_loop(rx, &fast, &send);
    assert!(t0.elapsed() < Duration::from_secs(5));
    let log = log.lock().unwrap().join("");
    assert_eq!(log, "aaabbbbcd");
}

/// A minimal SMTP sink on loopback for the real-transport test: it
/// records each message's DATA; `reject` answers 554 to the greeting.
fn smtp_sink(reject: bool) -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g2 = got.clone();
    std::thread::spawn(move || {
        let Ok((s, _)) = l.accept() else { return };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        if reject {
            let _ = w.write_all(b"554 go away\r\n");
            return;
        }
        let _ = w.write_all(b"220 sink ESMTP\r\n");
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let cmd = line.to_ascii_uppercase();
            if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                let _ = w.write_all(b"250-sink\r\n250 8BITMIME\r\n");
            } else if cmd.starts_with("DATA") {
                let _ = w.write_all(b"354 go on\r\n");
                let mut data = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(&line);
                }
                g2.lock().unwrap().push(data);
                let _ = w.write_all(b"250 queued\r\n");
            } else if cmd.starts_with("QUIT") {
                let _ = w.write_all(b"221 bye\r\n");
                return;
            } else {
                let _ = w.write_all(b"250 ok\r\n");
            }
        }
    });
    (port, got)
}

#[test]
fn mails_go_through_a_real_smtp_exchange() {
    let (port, got) = smtp_sink(false);
    let ev = down_event();
    let mut j = job(&ev.subject(), relay(port));
    j.body = ev.mail_body();
    smtp_send(&j).unwrap();
    let data = got.lock().unwrap().join("");
    assert!(
        data.contains("Subject: [rvs] server 198.19.0.12:8080 of tcp:198.18.0.100:80 is DOWN"),
        "{data}"
    );
    assert!(data.contains("To: ops@example.org"), "{data}");
    assert!(data.contains("198.19.0.11:8080"), "{data}");
}

#[test]
fn a_refusing_relay_is_transient_and_a_554_is_permanent() {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let closed = l.local_addr().unwrap().port();
    drop(l);
    let e = smtp_send(&job("x", relay(closed))).unwrap_err();
    assert!(!e.permanent, "{e:?}");
    assert!(e.reason.to_lowercase().contains("refused"), "{e:?}");

    let (port, _) = smtp_sink(true);
    let e = smtp_send(&job("x", relay(port))).unwrap_err();
    assert!(e.permanent, "{e:?}");
}

#[test]
fn the_hook_gets_the_json_and_failures_are_reported() {
    let dir = std::env::temp_dir().join(format!("rvs-hook-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("got.json");
    let hook = dir.join("hook.sh");
    std::fs::write(&hook, format!("#!/bin/sh\ncat > {}\n", out.display())).unwrap();
    let bad = dir.join("bad.sh");
    std::fs::write(&bad, "#!/bin/sh\necho nope >&2\nexit 7\n").unwrap();
    for p in [&hook, &bad] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let ev = down_event();
    assert!(run_hook(&hook, &ev.json_line()));
    let got: Event = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(got, ev);
    assert!(!run_hook(&bad, &ev.json_line()));
    assert!(!run_hook(&dir.join("missing"), &ev.json_line()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unconfigured_notifier_starts_nothing() {
    let mut n = Notifier::default();
    n.send(&down_event(), &NotifyConfig::default());
    assert!(n.mail.is_none() && n.hook.is_none());
}

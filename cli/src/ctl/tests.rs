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
        err.starts_with("rvs ctl: cannot reach the director at /nonexistent/rvs.sock: connect:"),
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

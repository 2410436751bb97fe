use super::*;

fn problems(text: &str) -> Vec<(usize, usize, String)> {
    parse(text)
        .unwrap_err()
        .into_iter()
        .map(|p| (p.line, p.column, p.message))
        .collect()
}

#[test]
fn the_documented_example_parses() {
    let text = include_str!("../../../examples/gateway.toml");
    let file = parse(text).unwrap();
    assert_eq!(file.routes.len(), 6);
    assert_eq!(file.routes[0].units, 1..=10);
    assert_eq!(file.routes[0].limits.in_flight, 1);
    assert_eq!(file.routes[1].rewrite_unit, Some(1));
    assert_eq!(file.routes[1].limits.timeout, Duration::from_millis(1500));
    let tls = file.routes[2].device.tls().unwrap();
    assert_eq!(tls.server_name, "meter-9");
    let DeviceSpec::RtuOverTcp { address, rtu } = &file.routes[3].device else {
        panic!("{:?}", file.routes[3])
    };
    assert_eq!((address.as_str(), rtu.retries), ("10.0.0.12:4001", 1));
    let DeviceSpec::Serial { line, rtu } = &file.routes[4].device else {
        panic!("{:?}", file.routes[4])
    };
    assert_eq!(line.path, PathBuf::from("/dev/ttyUSB0"));
    assert_eq!(
        (line.baud, line.parity, line.stop_bits),
        (19_200, Parity::Even, StopBits::One)
    );
    assert_eq!(rtu.turnaround, Duration::from_millis(100));
    assert_eq!(file.routes[5].device, file.routes[4].device);
}

#[test]
fn serial_and_rtu_routes_are_checked_at_their_lines() {
    let text = "\
[[route]]
units = 1
serial = \"/dev/ttyS0\"
parity = \"mark\"
stop_bits = 3
in_flight = 2

[[route]]
units = 2
upstream = \"10.0.0.1:502\"
baud = 9600

[[route]]
units = 3
serial = \"/dev/ttyS1\"
rtu_over_tcp = \"10.0.0.2:4001\"

[[route]]
units = 4
rtu_over_tcp = \"10.0.0.2:4001\"
tls = { cert = \"c\", key = \"k\", ca = \"a\" }
turnaround = 0
retries = 11

[[route]]
units = 5
serial = \"/dev/ttyS4\"
baud = 9600

[[route]]
units = 6
serial = \"/dev/ttyS4\"
baud = 19200
";
    let found = problems(text);
    let at = |line: usize| -> Vec<&str> {
        found
            .iter()
            .filter(|p| p.0 == line)
            .map(|p| p.2.as_str())
            .collect()
    };
    assert!(
        at(4)[0].contains("parity \"mark\" is not one of none, even, odd"),
        "{found:?}"
    );
    assert!(
        at(5)[0].contains("stop_bits is 3: it must be 1 or 2"),
        "{found:?}"
    );
    assert!(
        at(6)[0].contains("in_flight is 2: an RTU route"),
        "{found:?}"
    );
    assert!(
        at(11)[0].contains("baud is a serial line's setting"),
        "{found:?}"
    );
    assert!(at(13)[0].contains("exactly one of upstream, rtu_over_tcp and serial; this one gives rtu_over_tcp and serial"), "{found:?}");
    assert!(at(21)[0].contains("tls goes with upstream"), "{found:?}");
    assert!(
        at(22)[0].contains("turnaround is 0: give milliseconds"),
        "{found:?}"
    );
    assert!(
        at(23)[0].contains("retries is 11: it must be 0 to 10"),
        "{found:?}"
    );
    assert!(
        at(30)[0].contains(
            "/dev/ttyS4 is shared with an earlier route whose limits, tls or line settings differ"
        ),
        "{found:?}"
    );
}

#[test]
fn every_mistake_is_reported_at_its_line_and_column() {
    let text = "\
[defaults]
in_flight = 17

[[route]]
units = \"10-5\"
upstream = \"10.0.0.5\"

[[route]]
units = 3
upstream = \"10.0.0.6:502\"
timeout = 0
unit_id = 300
";
    let found = problems(text);
    assert_eq!(
        found.iter().map(|(l, c, _)| (*l, *c)).collect::<Vec<_>>(),
        [(2, 13), (5, 9), (6, 12), (11, 11), (12, 11)]
    );
    assert!(
        found[0].2.contains("in_flight is 17: it must be 1 to 16"),
        "{found:?}"
    );
    assert!(found[1].2.contains("units is \"10-5\""), "{found:?}");
    assert!(found[2].2.contains("host:port"), "{found:?}");
    assert!(found[3].2.contains("timeout is 0 s"), "{found:?}");
    assert!(found[4].2.contains("unit_id is 300"), "{found:?}");
}

#[test]
fn a_unit_routed_twice_names_the_first_route() {
    let text = "\
[[route]]
units = \"1-10\"
upstream = \"a:502\"

[[route]]
units = \"10-20\"
upstream = \"b:502\"
";
    let found = problems(text);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].0, found[0].1), (6, 9));
    assert!(
        found[0]
            .2
            .contains("unit 10 is routed already, by the route at 2:9")
    );
}

#[test]
fn routes_to_one_device_must_agree_on_its_limits() {
    let text = "\
[[route]]
units = 1
upstream = \"a:502\"

[[route]]
units = 2
upstream = \"a:502\"
in_flight = 4
";
    let found = problems(text);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].2.contains("shared with an earlier route"),
        "{found:?}"
    );
}

#[test]
fn unknown_keys_and_syntax_errors_are_placed() {
    let found = problems("[[route]]\nunits = 1\nupstream = \"a:1\"\nqueu = 3\n");
    assert_eq!((found[0].0, found[0].1), (4, 1));
    assert!(found[0].2.contains("unknown field `queu`"), "{found:?}");
    let found = problems("[[route]\n");
    assert_eq!(found[0].0, 1);
    // An empty file is a file with nothing in it: the defaults, no route.
    assert_eq!(parse("").unwrap(), ConfigFile::default());
}

#[test]
fn the_front_keys_are_read_and_checked() {
    let file = parse(include_str!("../../../examples/server.toml")).unwrap();
    assert!(file.routes.is_empty());
    let front = &file.front;
    assert_eq!(front.listen.as_deref(), Some("127.0.0.1:8802"));
    assert_eq!(front.policy, Some(PathBuf::from("policy.toml")));
    assert_eq!(front.max_sessions, Some(64));
    assert_eq!(front.idle_timeout, Some(Some(Duration::from_secs(300))));
    assert_eq!(front.audit_max_bytes, Some(104_857_600));
    assert_eq!(front.log.as_deref(), Some("normal"));
    let never = parse("idle_timeout = 0\n").unwrap();
    assert_eq!(never.front.idle_timeout, Some(None));
    let found = problems("crl_scope = \"all\"\nmax_handshakes = 100001\nplain = \"yes\"\n");
    assert_eq!((found[0].0, found[0].1), (3, 9), "{found:?}");
    let found = problems("crl_scope = \"all\"\nmax_handshakes = 100001\n");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].2.contains("crl_scope is \"all\""), "{found:?}");
    assert!(
        found[1]
            .2
            .contains("max_handshakes is 100001: it must be 1 to 100000"),
        "{found:?}"
    );
}

#[test]
fn the_tap_keys_are_read_and_checked() {
    let file = parse(
        "tap = \"-\"\ntap_port = 5020\ntap_format = \"pcap\"\ntap_max_bytes = 100000\ntap_keep = 2\n",
    )
    .unwrap();
    let front = &file.front;
    assert_eq!(front.tap, Some(PathBuf::from("-")));
    assert_eq!(front.tap_port, Some(5020));
    assert_eq!(front.tap_format.as_deref(), Some("pcap"));
    assert_eq!(
        (front.tap_max_bytes, front.tap_keep),
        (Some(100_000), Some(2))
    );
    let found =
        problems("tap_port = 0\ntap_format = \"pcapngx\"\ntap_keep = -1\ntap_max_bytes = 100\n");
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(
        found[3]
            .2
            .contains("tap_max_bytes is 100: give 0 (never rotate) or at least 65536"),
        "{found:?}"
    );
    assert_eq!((found[0].0, found[0].1), (1, 12), "{found:?}");
    assert!(
        found[0].2.contains("tap_port is 0: it must be 1 to 65535"),
        "{found:?}"
    );
    assert!(
        found[1].2.contains("tap_format is \"pcapngx\""),
        "{found:?}"
    );
    assert!(found[2].2.contains("tap_keep is -1"), "{found:?}");
}

#[test]
fn every_duration_has_a_floor_of_one_millisecond_named_by_its_key() {
    // 1e-10 s would become a zero timeout: refused, as 0 is.
    let found = problems("handshake_timeout = 1e-10\nwrite_timeout = 0\n");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0]
            .2
            .contains("handshake_timeout is 0.0000000001 s: it must be at least 0.001 (1 ms)"),
        "{found:?}"
    );
    assert!(found[1].2.starts_with("write_timeout is 0 s"), "{found:?}");
    let found = problems("[defaults]\ntimeout = 0.0009\n");
    assert!(found[0].2.starts_with("timeout is 0.0009 s"), "{found:?}");
    // The floor itself is accepted; 0 keeps meaning "never" for idle_timeout.
    let file = parse("handshake_timeout = 0.001\nidle_timeout = 0\n").unwrap();
    assert_eq!(file.front.handshake_timeout, Some(Duration::from_millis(1)));
    assert_eq!(file.front.idle_timeout, Some(None));
    assert!(
        problems("idle_timeout = 1e-9\n")[0]
            .2
            .starts_with("idle_timeout is")
    );
}

#[test]
fn queue_per_session_is_read_and_kept_within_the_queue() {
    let file = parse(
        "[defaults]\nqueue_per_session = 8\n[[route]]\nunits = 1\nupstream = \"a:502\"\n[[route]]\nunits = 2\nupstream = \"b:502\"\nqueue = 20\nqueue_per_session = 20\n",
    )
    .unwrap();
    assert_eq!(file.routes[0].limits.queue_per_session, Some(8));
    assert_eq!(file.routes[0].limits.session_share(), 8);
    assert_eq!(file.routes[1].limits.queue_per_session, Some(20));
    // Not given: a quarter of the queue, so that four sessions queue at once.
    let file = parse("[[route]]\nunits = 1\nupstream = \"a:502\"\nqueue = 64\n").unwrap();
    assert_eq!(file.routes[0].limits.queue_per_session, None);
    assert_eq!(file.routes[0].limits.session_share(), 16);
    let found =
        problems("[[route]]\nunits = 1\nupstream = \"a:502\"\nqueue = 4\nqueue_per_session = 5\n");
    assert!(
        found[0]
            .2
            .contains("queue_per_session is 5: it must be 1 to 4"),
        "{found:?}"
    );
    let found = problems(
        "[defaults]\nqueue_per_session = 8\n[[route]]\nunits = 1\nupstream = \"a:502\"\nqueue = 4\n",
    );
    assert_eq!((found[0].0, found[0].1), (6, 9), "{found:?}");
    assert!(
        found[0]
            .2
            .contains("queue is 4: it must be at least the queue_per_session of [defaults], 8"),
        "{found:?}"
    );
}

#[test]
fn tls_takes_the_server_name_from_the_upstream_by_default() {
    let text = "[[route]]\nunits = 1\nupstream = \"[::1]:802\"\ntls = { cert = \"c\", key = \"k\", ca = \"a\" }\n";
    let file = parse(text).unwrap();
    assert_eq!(file.routes[0].device.tls().unwrap().server_name, "::1");
    let found = problems(
        "[[route]]\nunits = 1\nupstream = \"a:802\"\ntls = { cert = \"c\", ca = \"a\" }\n",
    );
    assert!(found[0].2.contains("missing field `key`"), "{found:?}");
}

proptest::proptest! {
    /// Whatever the text, parsing ends with a file or placed problems.
    #[test]
    fn any_text_is_parsed_or_refused_with_positions(text in "(\\[\\[route\\]\\]\n|units = |upstream = |\"[0-9a-z:.-]{0,12}\"|[0-9]{1,4}|\n|tls = \\{ cert = \"c\", key = \"k\", ca = \"a\" \\}\n| ){0,40}") {
        match parse(&text) {
            Ok(file) => {
                for route in &file.routes {
                    proptest::prop_assert!(route.limits.validate().is_ok());
                }
            }
            Err(problems) => {
                proptest::prop_assert!(!problems.is_empty());
                for problem in problems {
                    proptest::prop_assert!(problem.line >= 1 && problem.column >= 1);
                }
            }
        }
    }
}

#[test]
fn an_rtu_route_addresses_servers_only_and_rtu_keys_need_an_rtu_route() {
    let found = problems(
        "[[route]]\nunits = 1\nserial = \"/dev/ttyS0\"\nunit_id = 0\n\n\
         [[route]]\nunits = 2\nupstream = \"10.0.0.1:502\"\nretries = 2\n",
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!((found[0].0, found[0].1), (4, 11), "{found:?}");
    assert!(
        found[0]
            .2
            .contains("unit_id is 0: on an RTU route it must be a server's address, 1 to 247"),
        "{found:?}"
    );
    assert_eq!(found[1].0, 9, "{found:?}");
    assert!(
        found[1].2.contains("retries is an RTU line's setting"),
        "{found:?}"
    );
    // Relative serial paths are the file's folder's, as the others.
    let dir = std::env::temp_dir().join(format!("mbaps-config-serial-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    std::fs::write(&file, "[[route]]\nunits = 1\nserial = \"ttyV0\"\n").unwrap();
    let loaded = load(&file).unwrap();
    let DeviceSpec::Serial { line, .. } = &loaded.routes[0].device else {
        panic!("{loaded:?}")
    };
    assert_eq!(line.path, dir.join("ttyV0"));
    let _ = std::fs::remove_dir_all(&dir);
}

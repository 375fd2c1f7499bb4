//! `beast serve` start-up failures: each is one clear line and a non-zero exit, never a hang.

use beast_tests::{Scratch, run};

fn serve(scratch: &Scratch, extra: &[&str]) -> beast_tests::Ran {
    let mut args = vec!["serve", "--bind", "127.0.0.1"];
    for port in [
        "--tcp-port-lrs",
        "--health-port-lpo",
        "--health-port-lrs",
        "--udp-port-lpo",
        "--udp-port-lrs",
    ] {
        args.extend([port, "0"]);
    }
    args.extend_from_slice(extra);
    run(&mut scratch.beast(&args))
}

#[test]
fn bad_input_files_stop_start_up_with_exit_2() {
    let scratch = Scratch::new();
    let prices = scratch.write(
        "prices.jsonl",
        "{\"asset\":\"BTC\",\"price\":\"97000\"}\n{\"asset\":\"ETH\",\"price\":\"-1\"}\n",
    );
    // (arguments, expected message)
    let cases: &[(&[&str], &str)] = &[
        (
            &["--tcp-port-lpo", "0", "--prices", prices.to_str().unwrap()],
            "line 2: price \"-1\": negative price",
        ),
        (
            &["--tcp-port-lpo", "0", "--prices", "missing.jsonl"],
            "cannot read prices file missing.jsonl",
        ),
    ];
    for (args, expected) in cases {
        let ran = serve(&scratch, args);
        assert_eq!(ran.code, Some(2), "{args:?}: {}", ran.stderr);
        assert!(ran.stderr.contains(expected), "{args:?}: {}", ran.stderr);
        assert!(ran.stdout.is_empty(), "never reported ready");
    }
}

#[test]
fn a_port_in_use_is_named() {
    let scratch = Scratch::new();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let ran = serve(&scratch, &["--tcp-port-lpo", &port]);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains(&format!("cannot listen on TCP_PORT_LPO 127.0.0.1:{port}")),
        "{}",
        ran.stderr
    );
    // The cause once, not once per layer of the error.
    assert_eq!(
        ran.stderr.matches("Address already in use").count(),
        1,
        "{}",
        ran.stderr
    );
}

/// A second `beast` on a running one's ports is refused, not given half of its clients (the
/// reactors share their ports through SO_REUSEPORT, which another process of the same user could
/// join).
#[test]
fn a_second_node_on_the_same_ports_is_refused() {
    let first = beast_tests::server::Beast::start("epoll", &[]);
    let flags = [
        ("--tcp-port-lpo", "TCP_PORT_LPO", "tcp_lpo"),
        ("--udp-port-lpo", "UDP_PORT_LPO", "udp_lpo"),
    ];
    for (flag, name, taken) in flags {
        let scratch = Scratch::new();
        let port = first.addr(taken).port().to_string();
        let mut args = vec!["serve", "--bind", "127.0.0.1", "--feeds", "off"];
        for (other, _, _) in flags {
            args.extend([other, if other == flag { port.as_str() } else { "0" }]);
        }
        for free in [
            "--tcp-port-lrs",
            "--health-port-lpo",
            "--health-port-lrs",
            "--udp-port-lrs",
        ] {
            args.extend([free, "0"]);
        }
        let ran = run(&mut scratch.beast(&args));
        assert_eq!(ran.code, Some(1), "{}", ran.stderr);
        assert!(
            ran.stderr
                .contains(&format!("cannot listen on {name} 127.0.0.1:{port}")),
            "{}",
            ran.stderr
        );
    }
    // The first is untouched.
    assert_eq!(first.get("/price?asset=BTC").status, 200);
}

/// Pinned reactors take a CPU each: more of them than the process may run on is an error that
/// names both numbers, never two reactors silently sharing a CPU.
#[test]
fn more_pinned_reactors_than_cpus_is_refused() {
    let scratch = Scratch::new();
    let mut command = std::process::Command::new("taskset");
    command
        .args(["-c", "0"])
        .arg(beast_tests::beast_bin())
        .args([
            "serve",
            "--bind",
            "127.0.0.1",
            "--reactors",
            "3",
            "--feeds",
            "off",
        ])
        .current_dir(scratch.path())
        .env_clear();
    for port in [
        "--tcp-port-lpo",
        "--tcp-port-lrs",
        "--health-port-lpo",
        "--health-port-lrs",
        "--udp-port-lpo",
        "--udp-port-lrs",
    ] {
        command.args([port, "0"]);
    }
    let ran = run(&mut command);
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("BEAST_REACTORS is 3") && ran.stderr.contains("run on 1 CPU"),
        "{}",
        ran.stderr
    );
    assert!(ran.stdout.is_empty(), "never reported ready");
}

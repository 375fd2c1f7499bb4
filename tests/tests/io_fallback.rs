//! Where io_uring is blocked (here by a seccomp filter like Docker's default profile), `--io
//! auto` falls back to epoll with one log line naming the reason, and `--io uring` refuses to
//! start.

#![allow(
    unsafe_code,
    reason = "installing a seccomp filter in the child before exec"
)]

use std::os::unix::process::CommandExt;

use beast_tests::server::Beast;

/// io_uring_setup, io_uring_enter, io_uring_register: the same numbers on every architecture.
const IO_URING_SYSCALLS: [u32; 3] = [425, 426, 427];

/// A classic-BPF seccomp program: io_uring calls fail with EPERM, everything else is allowed.
fn filter() -> Vec<libc::sock_filter> {
    let op = |bits: u32| u16::try_from(bits).unwrap();
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let mut program = vec![stmt(op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS), 0)];
    for (i, nr) in IO_URING_SYSCALLS.iter().enumerate() {
        // On a match, skip the remaining checks and the ALLOW to reach the EPERM return.
        let to_deny = u8::try_from(IO_URING_SYSCALLS.len() - i).unwrap();
        program.push(libc::sock_filter {
            code: op(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K),
            jt: to_deny,
            jf: 0,
            k: *nr,
        });
    }
    program.push(stmt(
        op(libc::BPF_RET | libc::BPF_K),
        libc::SECCOMP_RET_ALLOW,
    ));
    program.push(stmt(
        op(libc::BPF_RET | libc::BPF_K),
        libc::SECCOMP_RET_ERRNO | u32::try_from(libc::EPERM).unwrap(),
    ));
    program
}

fn block_io_uring(command: &mut std::process::Command) {
    let program = filter();
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2), which
    // is async-signal-safe; `program` is moved in and outlives both calls.
    unsafe {
        command.pre_exec(move || {
            let fprog = libc::sock_fprog {
                len: u16::try_from(program.len()).unwrap_or(0),
                filter: program.as_ptr().cast_mut(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &raw const fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn auto_falls_back_to_epoll_and_says_why() {
    let beast = Beast::start_with("auto", &[], block_io_uring);
    assert_eq!(beast.ready["io"], "epoll");
    let reason = beast.ready["io_fallback"].as_str().unwrap_or_default();
    assert!(
        reason.contains("EPERM") && reason.contains("seccomp"),
        "{reason}"
    );
    assert_eq!(beast.get("/price?asset=BTC").status, 200);
    let log = beast.stderr_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("io_uring")).collect();
    assert_eq!(lines.len(), 1, "one log line about io_uring:\n{log}");
    assert!(
        lines[0].contains("using epoll") && lines[0].contains("EPERM"),
        "{}",
        lines[0]
    );
    assert_eq!(beast.get("/health").json()["io"], "epoll");
}

#[test]
fn uring_refuses_to_start_where_it_is_blocked() {
    let scratch = beast_tests::Scratch::new();
    let mut args = vec!["serve", "--io", "uring", "--bind", "127.0.0.1"];
    for port in [
        "--tcp-port-lpo",
        "--tcp-port-lrs",
        "--health-port-lpo",
        "--health-port-lrs",
        "--udp-port-lpo",
        "--udp-port-lrs",
    ] {
        args.extend([port, "0"]);
    }
    let mut command = scratch.beast(&args);
    block_io_uring(&mut command);
    let ran = beast_tests::run(&mut command);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("io_uring was asked for but cannot be used")
            && ran.stderr.contains("EPERM"),
        "{}",
        ran.stderr
    );
}

#[test]
fn auto_uses_io_uring_where_it_works() {
    let beast = Beast::start("auto", &[]);
    assert_eq!(
        (
            beast.ready["io"].as_str(),
            beast.ready["io_fallback"].as_str()
        ),
        (Some("uring"), None)
    );
}

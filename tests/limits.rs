//! At start the server raises its soft open-files limit to the hard limit, and says so.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn limits_of(pid: u32) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files in /proc/pid/limits")
        .to_string();
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap().to_string(),
        fields.next().unwrap().to_string(),
    )
}

#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_limit() {
    let dir = fixture("conformance");
    let ready = dir.path().join("listening.json");
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config"])
        .arg(dir.path().join("meridian.yaml"))
        .arg("--ready-file")
        .arg(&ready)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--log-level",
            "info",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            lim.rlim_cur = lim.rlim_max.min(256);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut logs = String::new();
    // Ready: the server wrote the addresses it bound.
    while !ready.exists() {
        assert!(Instant::now() < deadline, "not ready:\n{logs}");
        while let Ok(l) = rx.recv_timeout(Duration::from_millis(5)) {
            logs.push_str(&l);
            logs.push('\n');
        }
    }
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(50)) {
        logs.push_str(&l);
        logs.push('\n');
    }
    let (soft, hard) = limits_of(pid);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(soft, hard, "soft limit raised to the hard one");
    assert!(
        logs.contains("open files limit") && logs.contains(&format!("limit={hard}")),
        "logged with the figure:\n{logs}"
    );
}

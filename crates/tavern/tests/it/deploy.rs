//! The deployment files in the repository. The systemd unit passes
//! systemd's own checks: no warning, and its command exists. Its sandboxing
//! rates "OK" in `systemd-analyze security`. Its command line, run as the
//! unit runs it, starts Tavern with /etc/tavern's tavern.toml. Where
//! systemd-analyze is not installed the checks skip; under `CI=true` they
//! fail.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{BIN, sigterm, tavern, wait_bounded};

fn unit_file() -> String {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contrib/systemd/tavern.service");
    std::fs::read_to_string(path).unwrap()
}

/// The unit with this build's binary in place of /usr/local/bin/tavern.
fn unit_here(dir: &Path) -> PathBuf {
    let path = dir.join("tavern.service");
    std::fs::write(&path, unit_file().replace("/usr/local/bin/tavern", BIN)).unwrap();
    path
}

fn systemd_analyze() -> Option<Command> {
    if Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return Some(Command::new("systemd-analyze"));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but systemd-analyze is not installed (Debian's systemd package)"
    );
    eprintln!("skipped: systemd-analyze is not installed");
    None
}

#[test]
fn the_systemd_unit_passes_systemds_checks_and_is_sandboxed() {
    let Some(mut verify) = systemd_analyze() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_here(dir.path());
    let out = verify.arg("verify").arg(&unit).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.trim().is_empty(), "systemd warns: {said}");

    // A unit with a misspelt key is warned about: the check can fail.
    let bad = dir.path().join("bad.service");
    std::fs::write(&bad, unit_file().replace("KillMode=", "KilMode=")).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("KilMode"));

    // Exposure 2.0 or less on systemd's scale of 0 (locked down) to 10.
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&unit)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_units_command_line_starts_tavern_with_etc_taverns_settings() {
    let unit = unit_file();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let workdir = unit
        .lines()
        .find_map(|l| l.strip_prefix("WorkingDirectory="))
        .expect("a WorkingDirectory line");
    assert_eq!(workdir, "/etc/tavern");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/tavern"));
    // The unit's flags, with this test's own directories and port.
    let home = tempfile::tempdir().unwrap();
    let etc = home.path().join("etc-tavern");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(
        etc.join("tavern.toml"),
        "[server]\ndomain = \"unit.example\"\n",
    )
    .unwrap();
    let mut args: Vec<String> = Vec::new();
    let mut words = words.peekable();
    while let Some(w) = words.next() {
        args.push(w.to_owned());
        match w {
            "--data-dir" => {
                words.next();
                args.push(home.path().join("state").display().to_string());
            }
            "--listen" => {
                words.next();
                args.push("127.0.0.1:0".into());
            }
            _ => {}
        }
    }
    let log = home.path().join("serve.log");
    let mut child = tavern(home.path())
        .args(&args)
        .current_dir(&etc)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("Tavern is listening on") {
                let _ = tx.send(line);
            }
        }
    });
    let listening = rx.recv_timeout(Duration::from_secs(30));
    sigterm(child.id());
    let status = wait_bounded(&mut child, Duration::from_secs(15));
    assert!(listening.is_ok(), "Tavern did not start");
    assert!(status.success(), "{status}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("\"domain\":\"unit.example\""),
        "the settings in tavern.toml apply: {logged}"
    );
}

#[test]
fn the_nixos_module_parses() {
    let found = Command::new("nix-instantiate")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but nix-instantiate is not installed (Debian's nix-bin package)"
        );
        eprintln!("skipped: nix-instantiate is not installed");
        return;
    }
    let module = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../contrib/nixos/tavern.nix");
    let out = Command::new("nix-instantiate")
        .arg("--parse")
        .arg(&module)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its service runs the same command as the systemd unit, with the
    // same sandbox.
    let text = std::fs::read_to_string(&module).unwrap();
    for line in unit_file().lines().filter(|l| {
        l.starts_with("Protect") || l.starts_with("Restrict") || l.starts_with("KillMode")
    }) {
        let (key, _) = line.split_once('=').unwrap();
        assert!(
            text.contains(&format!("{key} = ")),
            "the module lacks {key}"
        );
    }
}

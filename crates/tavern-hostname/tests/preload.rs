//! The library preloaded as Foundry's container would have it: the host
//! name Node.js and the C library's own tools see is `TAVERN_HOSTNAME`,
//! and without it (or with a bad one) the machine's.

use std::path::PathBuf;
use std::process::Command;

/// The shared object cargo built beside this test.
fn library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps, deps.parent().unwrap()]
        .iter()
        .map(|d| d.join("libtavern_hostname.so"))
        .find(|p| p.is_file())
        .expect("libtavern_hostname.so beside the test")
}

fn seen(program: &str, args: &[&str], host: Option<&str>) -> String {
    let mut command = Command::new(program);
    command.args(args).env("LD_PRELOAD", library());
    match host {
        Some(h) => command.env("TAVERN_HOSTNAME", h),
        None => command.env_remove("TAVERN_HOSTNAME"),
    };
    let out = command.output().expect(program);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn machine() -> String {
    let out = Command::new("uname").arg("-n").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn node_and_the_c_library_see_the_stable_name() {
    let node = ["-e", "const os = require('os'); console.log(os.hostname())"];
    let ran_node = Command::new("node").arg("--version").output().is_ok();
    assert!(
        ran_node || std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but node is missing (bash .ci/run installs nodejs)"
    );
    if ran_node {
        assert_eq!(
            seen("node", &node, Some("foundry-0123456789ab")),
            "foundry-0123456789ab"
        );
        assert_eq!(seen("node", &node, None), machine());
    }
    // uname(2) and gethostname(2), through the C library's own tools.
    assert_eq!(
        seen("uname", &["-n"], Some("foundry-0123456789ab")),
        "foundry-0123456789ab"
    );
    assert_eq!(
        seen("hostname", &[], Some("foundry-0123456789ab")),
        "foundry-0123456789ab"
    );
}

#[test]
fn a_bad_or_missing_name_changes_nothing() {
    let host = machine();
    for bad in ["", "no spaces", "a/b", &"x".repeat(65)] {
        assert_eq!(seen("uname", &["-n"], Some(bad)), host, "{bad:?}");
    }
    assert_eq!(seen("uname", &["-n"], None), host);
    // The longest that fits.
    let longest = "x".repeat(64);
    assert_eq!(seen("uname", &["-n"], Some(&longest)), longest);
}

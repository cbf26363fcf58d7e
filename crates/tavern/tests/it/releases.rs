//! `tavern release add|list` through the server: both zip layouts, refusals that leave nothing
//! behind, downloads from a URL; and fake Node releases for the runtime tests.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// A fake Foundry server in Node: it records how it was launched in
/// `DATA/launch.json`, serves `/api/status` on `--port`, exits 0 on SIGTERM.
pub const FAKE_MAIN_JS: &str = r#"
const http = require('http'); const fs = require('fs');
const args = {};
for (const a of process.argv.slice(2)) { const [k, v] = a.replace(/^--/, '').split('='); args[k] = v === undefined ? true : v; }
fs.writeFileSync(args.dataPath + '/launch.json', JSON.stringify({ argv: process.argv.slice(2), env: Object.keys(process.env) }));
const server = http.createServer((req, res) => {
  if (req.url === '/api/status') { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ active: true, version: '12.331', world: 'fake-world', users: 0 })); }
  else { res.statusCode = 404; res.end(); }
});
server.listen(Number(args.port), '127.0.0.1', () => console.log('fake foundry listening on ' + args.port));
process.on('SIGTERM', () => { console.log('fake foundry stopping'); server.close(); process.exit(0); });
"#;

/// Like the fake server, but takes 1.5 s to save its world after SIGTERM.
pub const SLOW_STOP_MAIN_JS: &str = r#"
const http = require('http');
const args = {};
for (const a of process.argv.slice(2)) { const [k, v] = a.replace(/^--/, '').split('='); args[k] = v === undefined ? true : v; }
const server = http.createServer((req, res) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ active: true, version: '13.902', world: 'slow', users: 0 })); });
server.listen(Number(args.port), '127.0.0.1');
process.on('SIGTERM', () => { server.close(); setTimeout(() => process.exit(0), 1500); });
"#;

/// Exits at once: a crash loop.
pub const CRASHING_MAIN_JS: &str = "console.error('fake foundry: cannot start'); process.exit(3);";

/// Runs but never answers: a start that times out.
pub const SILENT_MAIN_JS: &str = "setInterval(() => {}, 1000);";

fn package(generation: u32, build: u32) -> String {
    json!({"name": "foundryvtt", "release": {"generation": generation, "build": build}}).to_string()
}

pub fn make_zip(path: &Path, files: &[(&str, &str)]) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, body) in files {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(body.as_bytes()).unwrap();
    }
    w.finish().unwrap();
}

/// Installs a fake release `generation.build` whose main.js is `main_js`
/// into the server's data directory, through the CLI.
pub fn install_fake(
    server: &Server,
    generation: u32,
    build: u32,
    main_js: &str,
    linux_layout: bool,
) -> String {
    let zip = server.home().join(format!("fake-{generation}-{build}.zip"));
    let pkg = package(generation, build);
    if linux_layout {
        make_zip(
            &zip,
            &[
                ("resources/app/package.json", &pkg),
                ("resources/app/main.js", main_js),
            ],
        );
    } else {
        make_zip(&zip, &[("package.json", &pkg), ("main.js", main_js)]);
    }
    let out = release_cli(server, &["add", "--zip", zip.to_str().unwrap()]);
    assert!(out.status.success(), "release add: {}", text(&out.stderr));
    format!("{generation}.{build}")
}

/// `tavern release ARGS` as the admin, against the server.
fn release_cli(server: &Server, args: &[&str]) -> std::process::Output {
    let mut all = vec!["release"];
    all.extend_from_slice(args);
    server.cli(Some(&server.admin_token), &all, None)
}

#[tokio::test(flavor = "multi_thread")]
async fn release_add_installs_both_layouts_and_refuses_bad_zips() {
    let server = Server::start();
    assert_eq!(
        install_fake(&server, 13, 351, FAKE_MAIN_JS, false),
        "13.351"
    );
    assert_eq!(install_fake(&server, 12, 331, FAKE_MAIN_JS, true), "12.331");
    // The server lists them (with the stand-in, which test servers offer).
    let list = ok_json(&server.cli(
        Some(&server.admin_token),
        &["release", "list", "--json"],
        None,
    ));
    assert_eq!(
        list,
        json!([
            {"version": "stub", "layout": "stub"},
            {"version": "12.331", "layout": "linux"},
            {"version": "13.351", "layout": "node"},
        ])
    );
    let releases = server.data_dir().join("releases");
    assert!(releases.join("13.351/main.js").is_file());
    assert!(releases.join("12.331/resources/app/main.js").is_file());

    let (p400, p401) = (package(13, 400), package(13, 401));
    let bad = [
        (
            "not-foundry",
            vec![("readme.md", "hello")],
            "not a Foundry VTT release",
        ),
        (
            "zip-slip",
            vec![
                ("package.json", p400.as_str()),
                ("main.js", "//"),
                ("../../escaped.txt", "gotcha"),
            ],
            "unsafe path",
        ),
        (
            "no-main",
            vec![("package.json", p401.as_str())],
            "no main.js",
        ),
    ];
    for (name, files, says) in bad {
        let zip = server.home().join(format!("{name}.zip"));
        make_zip(&zip, &files);
        let out = release_cli(&server, &["add", "--zip", zip.to_str().unwrap()]);
        assert!(!out.status.success(), "{name} was accepted");
        assert!(
            text(&out.stderr).contains(says),
            "{name}: {}",
            text(&out.stderr)
        );
    }
    let junk = server.home().join("junk.zip");
    std::fs::write(&junk, "this is no zip").unwrap();
    let out = release_cli(&server, &["add", "--zip", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a zip"),
        "{}",
        text(&out.stderr)
    );
    // A game master may not install one, and the server reads none of it.
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("gina", "gm", "gina-password-1").await;
    let gina = admin.login("gina", "gina-password-1").await;
    let refused = gina
        .send(
            "POST",
            "/api/v1/releases",
            Some("application/zip"),
            std::fs::read(&junk).unwrap(),
        )
        .await;
    assert_refused(&refused, 403, "forbidden");
    // Only a zip is taken.
    let refused = admin
        .send(
            "POST",
            "/api/v1/releases",
            Some("application/json"),
            b"{}".to_vec(),
        )
        .await;
    assert_refused(&refused, 415, "unsupported_media_type");
    // One that says it is larger than 2 GiB is refused before it is sent.
    let head = format!(
        "POST /api/v1/releases HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/zip\r\nContent-Length: 3000000000\r\n\r\n",
        server.admin_token
    );
    let line = crate::proxy::raw(&server, head.as_bytes(), &[]).await;
    assert!(line.starts_with("HTTP/1.1 413"), "{line}");
    // Nothing left behind: the same two releases, no temporary files,
    // nothing escaped.
    let mut names: Vec<String> = std::fs::read_dir(&releases)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["12.331", "13.351"]);
    assert!(!server.home().join("escaped.txt").exists());
    assert!(!server.data_dir().join("escaped.txt").exists());

    // An instance names an installed release; an unknown one is refused.
    let a = admin
        .post(
            "/api/v1/instances",
            &json!({"slug": "old", "release": "12.331"}),
        )
        .await;
    assert_eq!(a.0, 201, "{}", a.1);
    let a = admin
        .post(
            "/api/v1/instances",
            &json!({"slug": "future", "release": "99.1"}),
        )
        .await;
    assert_eq!((a.0, code(&a)), (422, "unknown_release"));
}

#[tokio::test(flavor = "multi_thread")]
async fn release_add_downloads_from_a_url() {
    let server = Server::start();
    let site = server.home().join("site");
    std::fs::create_dir_all(&site).unwrap();
    make_zip(
        &site.join("foundry.zip"),
        &[
            ("package.json", &package(13, 346)),
            ("main.js", FAKE_MAIN_JS),
        ],
    );
    let mut http = Command::new("python3")
        .args([
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&site)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 serves the test zip");
    let port = {
        use std::io::BufRead as _;
        let mut line = String::new();
        std::io::BufReader::new(http.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 12345 (http://127.0.0.1:12345/) ..."
        line.split(" port ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .to_owned()
    };
    let ok = release_cli(
        &server,
        &[
            "add",
            "--url",
            &format!("http://127.0.0.1:{port}/foundry.zip"),
        ],
    );
    let missing = release_cli(
        &server,
        &[
            "add",
            "--url",
            &format!("http://127.0.0.1:{port}/missing.zip"),
        ],
    );
    sigterm(http.id());
    wait_bounded(&mut http, Duration::from_secs(10));
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("13.346"));
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("404"),
        "{}",
        text(&missing.stderr)
    );
    let names: Vec<String> = std::fs::read_dir(server.data_dir().join("releases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["13.346"], "a failed download leaves nothing");
}

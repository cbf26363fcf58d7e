//! License keys appear in no log line, no response after creation and no
//! file in clear text; tokens and passwords are not stored in clear either.

use std::path::Path;

use serde_json::json;

use crate::support::*;

const KEY_A: &str = "QWER-TYUI-OPAS-DFGH-JKLZ-XC12";
const KEY_B: &str = "MNBV-CXZL-KJHG-FDSA-POIU-YT98";

fn forms(key: &str) -> Vec<String> {
    let plain = key.replace('-', "");
    vec![
        key.to_owned(),
        plain.clone(),
        plain.to_lowercase(),
        plain[..20].to_owned(),
    ]
}

fn all_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn license_keys_and_credentials_never_leak() {
    let mut server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    let mut seen = String::new();

    // One key through the CLI (stdin), one through the API.
    let out = server.cli(
        Some(&server.admin_token),
        &[
            "license",
            "add",
            "--label",
            "cli-key",
            "--key-stdin",
            "--json",
        ],
        Some(KEY_A),
    );
    seen.push_str(&text(&out.stdout));
    seen.push_str(&text(&out.stderr));
    let lic_a = ok_json(&out);
    let (s, lic_b) = admin
        .post(
            "/api/v1/licenses",
            &json!({"label": "api-key", "key": KEY_B}),
        )
        .await;
    assert_eq!(s, 201);
    seen.push_str(&lic_b.to_string());
    assert_eq!(lic_a["last4"], "XC12");
    assert_eq!(lic_b["last4"], "YT98");

    // Every way of reading them back.
    let (_, a) = admin
        .post(
            "/api/v1/instances",
            &json!({"slug": "keyed", "license": lic_a["id"]}),
        )
        .await;
    seen.push_str(&a.to_string());
    for path in [
        "/api/v1/licenses",
        "/api/v1/instances",
        "/api/v1/instances/keyed",
        "/api/v1/events?limit=1000",
        "/api/v1/openapi.json",
    ] {
        let (_, body) = admin.get(path).await;
        seen.push_str(&body.to_string());
    }
    for args in [
        &["license", "list"][..],
        &["license", "list", "--json"],
        &["instance", "list"],
        &["events"],
    ] {
        let out = server.cli(Some(&server.admin_token), args, None);
        seen.push_str(&text(&out.stdout));
        seen.push_str(&text(&out.stderr));
    }
    // A failed add of a near-miss key does not echo it either.
    let (_, bad) = admin
        .post(
            "/api/v1/licenses",
            &json!({"label": "bad", "key": format!("{KEY_A}!")}),
        )
        .await;
    seen.push_str(&bad.to_string());

    // Users' passwords and tokens.
    admin
        .create_user("alice", "gm", "alice-secret-password")
        .await;
    let alice = server
        .api(None)
        .login("alice", "alice-secret-password")
        .await;

    server.stop();
    let logs = server.output();
    assert!(logs.contains("tavern is listening"), "the log was captured");

    let mut files = Vec::new();
    all_files(&server.data_dir(), &mut files);
    assert!(files.iter().any(|f| f.ends_with("tavern.db")));
    let mut contents = Vec::new();
    for f in &files {
        contents.push((f.clone(), std::fs::read(f).unwrap()));
    }

    for key in [KEY_A, KEY_B] {
        for form in forms(key) {
            assert!(
                !seen.contains(&form),
                "{form} seen in a response or CLI output"
            );
            assert!(!logs.contains(&form), "{form} in the server's log");
            for (f, bytes) in &contents {
                assert!(
                    !bytes.windows(form.len()).any(|w| w == form.as_bytes()),
                    "{form} in clear text in {}",
                    f.display()
                );
            }
        }
    }
    // The instance's Foundry admin key, shown once at creation.
    let admin_key = a["admin_key"].as_str().unwrap().to_owned();
    assert_eq!(
        seen.matches(&admin_key).count(),
        1,
        "the admin key is shown exactly once"
    );
    for secret in ["alice-secret-password", alice.token(), &admin_key] {
        assert!(!logs.contains(secret), "a credential in the log");
        for (f, bytes) in &contents {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a credential in clear text in {}",
                f.display()
            );
        }
    }
    // The bootstrap token is deliberately in admin-token and nowhere else.
    for (f, bytes) in &contents {
        if !f.ends_with("admin-token") {
            let t = server.admin_token.as_bytes();
            assert!(
                !bytes.windows(t.len()).any(|w| w == t),
                "admin token in {}",
                f.display()
            );
        }
    }
}

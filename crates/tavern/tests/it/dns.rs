//! `[dns]` with a real BIND 9 (started by the tests, with a TSIG key) as
//! the community's RFC 2136 provider: at start Tavern reads what
//! `*.<domain>` holds and says in its log whether it leads to Tavern.

use tavern_dns::testing::{Bind, SECRET, ZONE};

use crate::support::*;

/// A Tavern for `ZONE` whose `[dns]` says worlds' names lead to `address`.
fn tavern_pointing_at(bind: &Bind, address: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tavern.toml");
    std::fs::write(
        &config,
        format!(
            "[dns]\nprovider = \"rfc2136\"\naddresses = [\"{address}\"]\nserver = \"127.0.0.1:{}\"\ntsig_key = \"tavern-key\"\ntsig_secret = \"{SECRET}\"\n",
            bind.port
        ),
    )
    .unwrap();
    let server = Server::start_with_env(
        &["--config", config.to_str().unwrap()],
        &[("TAVERN_SERVER_DOMAIN", ZONE)],
    );
    (server, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn at_start_tavern_says_whether_the_wildcard_leads_to_it() {
    let Some(bind) = Bind::start("* IN A 127.0.0.1") else {
        return;
    };
    let (server, _config) = tavern_pointing_at(&bind, "127.0.0.1");
    wait_until("the log says the wildcard leads to Tavern", || async {
        server
            .output()
            .contains(&format!("dns: *.{ZONE} leads to Tavern (127.0.0.1)"))
    })
    .await;
    assert!(
        !server.output().contains(SECRET),
        "the secret is never logged"
    );
    drop(server);

    let (server, _config) = tavern_pointing_at(&bind, "127.0.0.2");
    wait_until("the log says where the wildcard leads instead", || async {
        server.output().contains(&format!(
            "dns: *.{ZONE} does not lead to Tavern: it holds 127.0.0.1, not 127.0.0.2"
        ))
    })
    .await;
}

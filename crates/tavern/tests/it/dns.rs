//! `[dns]` with a real BIND 9 (started by the tests, with a TSIG key) as
//! the community's RFC 2136 provider: at start Tavern reads what
//! `*.<domain>` holds and says in its log whether it leads to Tavern; in
//! per-world mode it writes, corrects and removes each world's name, and a
//! failure shows on the world without holding anything up.

use serde_json::{Value, json};
use tavern_dns::rfc2136::Rfc2136;
use tavern_dns::testing::apis::{StandIn, TOKEN};
use tavern_dns::testing::{Bind, SECRET, ZONE, free_port};
use tavern_dns::{DnsProvider as _, Record};

use crate::support::*;

/// A Tavern for `ZONE` with `dns` (the lines of its `[dns]` section).
fn tavern_with(dns: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tavern.toml");
    std::fs::write(&config, format!("[dns]\n{dns}")).unwrap();
    let server = Server::start_with_env(
        &["--config", config.to_str().unwrap()],
        &[("TAVERN_SERVER_DOMAIN", ZONE)],
    );
    (server, dir)
}

/// A Tavern for `ZONE` whose `[dns]` (BIND at `port`) says worlds' names
/// lead to `address`, with `more` lines of `[dns]`.
fn tavern_for(port: u16, address: &str, more: &str) -> (Server, tempfile::TempDir) {
    tavern_with(&format!(
        "provider = \"rfc2136\"\naddresses = [\"{address}\"]\nserver = \"127.0.0.1:{port}\"\ntsig_key = \"tavern-key\"\ntsig_secret = \"{SECRET}\"\n{more}"
    ))
}

/// A Tavern for `ZONE` whose `[dns]` says worlds' names lead to `address`.
fn tavern_pointing_at(bind: &Bind, address: &str) -> (Server, tempfile::TempDir) {
    tavern_for(bind.port, address, "")
}

/// A Tavern keeping each world's name, looking again every second.
fn tavern_keeping_names(port: u16) -> (Server, tempfile::TempDir) {
    tavern_for(
        port,
        "127.0.0.1",
        "mode = \"per-world\"\nrecheck_seconds = 1\n",
    )
}

async fn dns_of(api: &Api, slug: &str) -> Value {
    let (s, b) = api.get(&format!("/api/v1/instances/{slug}")).await;
    assert_eq!(s, 200, "{b}");
    b["dns"].clone()
}

async fn actions(admin: &Api, action: &str) -> Vec<Value> {
    let (_, events) = admin.get("/api/v1/events?limit=1000").await;
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
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

#[tokio::test(flavor = "multi_thread")]
async fn each_world_gets_its_name_kept_corrected_and_removed_after_it_is_destroyed() {
    let Some(bind) = Bind::start("") else {
        return;
    };
    let (server, _config) = tavern_keeping_names(bind.port);
    let admin = server.api(Some(&server.admin_token));
    let gm_user = admin.create_user("gm", "gm", "correct horse battery").await;
    assert_eq!(gm_user["username"], "gm");
    let gm = server.api(None).login("gm", "correct horse battery").await;

    let created = create_world(&gm, &json!({"slug": "alpha", "release": "stub"})).await;
    assert_eq!(created["dns"]["host"], format!("alpha.{ZONE}"));
    assert_eq!(created["dns"]["state"], "pending");
    wait_until("alpha's name leads to Tavern", || async {
        bind.dig("alpha", "A") == ["127.0.0.1"]
    })
    .await;
    wait_until("alpha's page says so", || async {
        dns_of(&gm, "alpha").await["state"] == "held"
    })
    .await;
    let dns = dns_of(&gm, "alpha").await;
    assert_eq!(dns["error"], Value::Null, "{dns}");
    assert!(dns["checked_at"].is_string(), "{dns}");
    // Nothing else was written: no wildcard, no other name.
    assert!(bind.dig("other", "A").is_empty());

    // Someone changes it by hand: Tavern puts it back.
    let zone = Rfc2136::new(&bind.settings(SECRET)).unwrap();
    let name = format!("alpha.{ZONE}");
    zone.remove(&name, tavern_dns::RecordKind::A).await.unwrap();
    zone.set(&name, &[Record::Cname("elsewhere.example".into())], 60)
        .await
        .unwrap();
    wait_until("the drift is corrected", || async {
        bind.dig("alpha", "A") == ["127.0.0.1"] && bind.dig("alpha", "CNAME").is_empty()
    })
    .await;
    wait_until("the correction is in the audit log", || async {
        !actions(&admin, "dns.correct").await.is_empty()
    })
    .await;
    let corrected = &actions(&admin, "dns.correct").await[0];
    assert_eq!(corrected["target"], format!("dns:alpha.{ZONE}"));
    assert!(
        corrected["detail"]
            .as_str()
            .unwrap()
            .contains("an alias of elsewhere.example"),
        "{corrected}"
    );
    // Looking again at a name that holds what it should is not news.
    let sets = actions(&admin, "dns.set").await.len();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(actions(&admin, "dns.set").await.len(), sets);

    // Another game master does not see alpha's name; the owner and
    // admins do (the world's own answer).
    admin
        .create_user("other", "gm", "correct horse battery")
        .await;
    let other = server
        .api(None)
        .login("other", "correct horse battery")
        .await;
    let (s, list) = other.get("/api/v1/instances").await;
    assert_eq!((s, list.as_array().unwrap().len()), (200, 0));
    assert_eq!(other.get("/api/v1/instances/alpha").await.0, 404);
    assert_eq!(dns_of(&admin, "alpha").await["state"], "held");

    // Destroyed, its name goes.
    let (s, b) = gm.delete("/api/v1/instances/alpha").await;
    assert_eq!(s, 202, "{b}");
    wait_until("alpha's name is removed", || async {
        bind.dig("alpha", "A").is_empty()
    })
    .await;
    wait_until("the removal is in the audit log", || async {
        !actions(&admin, "dns.remove").await.is_empty()
    })
    .await;
    assert!(
        !server.output().contains(SECRET),
        "the secret is never logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_cannot_be_reached_shows_on_the_world_holds_nothing_up_and_is_retried() {
    // Nothing listens on the DNS server's port yet.
    let port = free_port();
    let (server, _config) = tavern_keeping_names(port);
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "k", &key_for("beta")).await;
    add_world(&admin, "beta", "stub").await;
    wait_until("beta's page says its name is failing", || async {
        dns_of(&admin, "beta").await["state"] == "failing"
    })
    .await;
    let dns = dns_of(&admin, "beta").await;
    assert!(
        dns["error"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{dns}"
    );
    assert!(dns["next_attempt_at"].is_string(), "{dns}");
    let failed: Vec<Value> = actions(&admin, "dns.set")
        .await
        .into_iter()
        .filter(|e| e["outcome"] == "failure")
        .collect();
    assert_eq!(failed.len(), 1, "one failure event, not one per retry");
    // The world's page in the dashboard says it in words.
    let page = page_as(&server, &server.admin_token, "/dashboard/worlds/beta").await;
    assert!(
        page.contains("id=\"dns-note\"")
            && page.contains(&format!("beta.{ZONE} could not be written in DNS"))
            && page.contains("Tavern tries again at"),
        "{page}"
    );

    // The world starts all the same.
    let (s, b) = admin.post("/api/v1/instances/beta/start", &json!({})).await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(&admin, "beta", "running").await;

    // The server comes up: the next retry writes the name.
    let Some(bind) = Bind::start_on(port, "") else {
        return;
    };
    wait_until("beta's name is written on a retry", || async {
        bind.dig("beta", "A") == ["127.0.0.1"]
    })
    .await;
    wait_until("beta's page says so", || async {
        let dns = dns_of(&admin, "beta").await;
        dns["state"] == "held" && dns["error"].is_null()
    })
    .await;
    let page = page_as(&server, &server.admin_token, "/dashboard/worlds/beta").await;
    assert!(!page.contains("dns-note"), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn worlds_names_go_through_cloudflare_and_digitalocean_too() {
    for (provider, api) in [
        ("cloudflare", StandIn::cloudflare(ZONE).await),
        ("digitalocean", StandIn::digitalocean(ZONE).await),
    ] {
        let (server, _config) = tavern_with(&format!(
            "provider = \"{provider}\"\nmode = \"per-world\"\ncname = \"tavern.example.org\"\napi_url = \"{}\"\napi_token = \"{TOKEN}\"\nrecheck_seconds = 1\n",
            api.url
        ));
        let admin = server.api(Some(&server.admin_token));
        add_world(&admin, "gamma", "stub").await;
        let held = format!("gamma.{ZONE} CNAME tavern.example.org 300");
        wait_until(&format!("{provider} holds gamma's name"), || async {
            api.records() == [held.clone()]
        })
        .await;
        wait_until("gamma's page says so", || async {
            dns_of(&admin, "gamma").await["state"] == "held"
        })
        .await;
        let (s, b) = admin.delete("/api/v1/instances/gamma").await;
        assert_eq!(s, 202, "{b}");
        wait_until(&format!("{provider} no longer holds it"), || async {
            api.records().is_empty()
        })
        .await;
        assert!(
            !server.output().contains(TOKEN),
            "the token is never logged"
        );
    }
}

#[cfg(feature = "route53")]
#[tokio::test(flavor = "multi_thread")]
async fn worlds_names_go_through_route53() {
    let Some(moto) = tavern_dns::testing::moto::Moto::start() else {
        return;
    };
    let (client, zone) = tavern_dns_route53::testing::hosted_zone(&moto.endpoint, ZONE).await;
    let (server, _config) = tavern_with(&format!(
        "provider = \"route53\"\nmode = \"per-world\"\naddresses = [\"203.0.113.7\"]\napi_url = \"{}\"\naws_access_key_id = \"AKIDTAVERNIT\"\naws_secret_access_key = \"route53-secret-it\"\nrecheck_seconds = 1\n",
        moto.endpoint
    ));
    let admin = server.api(Some(&server.admin_token));
    add_world(&admin, "delta", "stub").await;
    let rrsets = || tavern_dns_route53::testing::sets(&client, &zone);
    wait_until("Route53 holds delta's name", || async {
        rrsets().await == [format!("delta.{ZONE}. A 300 203.0.113.7")]
    })
    .await;
    wait_until("delta's page says so", || async {
        dns_of(&admin, "delta").await["state"] == "held"
    })
    .await;
    let (s, b) = admin.delete("/api/v1/instances/delta").await;
    assert_eq!(s, 202, "{b}");
    wait_until("Route53 no longer holds it", || async {
        rrsets().await.is_empty()
    })
    .await;
    assert!(!server.output().contains("route53-secret-it"));
}

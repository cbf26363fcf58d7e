//! The Cloudflare and DigitalOcean drivers against stand-ins that answer
//! as those APIs are documented: the same behaviour from both (records
//! set, replaced, kept when already right, removed; an alias beside
//! addresses refused; names outside the zone refused before anything is
//! sent; a wrong token refused, an API that is down worth retrying), and
//! the exact requests each sends, snapshot-tested.

use tavern_dns::cloudflare::{Cloudflare, CloudflareSettings};
use tavern_dns::digitalocean::{DigitalOcean, DigitalOceanSettings};
use tavern_dns::testing::apis::{StandIn, TOKEN, ZONE_ID};
use tavern_dns::{DnsError, DnsProvider, Record, RecordKind};

const ZONE: &str = "games.test";

fn a(ip: &str) -> Record {
    Record::A(ip.parse().unwrap())
}

fn cloudflare(api: &StandIn, token: &str, zone_id: Option<&str>) -> Cloudflare {
    Cloudflare::new(&CloudflareSettings {
        api_url: api.url.clone(),
        token: token.into(),
        zone: ZONE.into(),
        zone_id: zone_id.map(str::to_owned),
    })
    .unwrap()
}

fn digitalocean(api: &StandIn, token: &str) -> DigitalOcean {
    DigitalOcean::new(&DigitalOceanSettings {
        api_url: api.url.clone(),
        token: token.into(),
        zone: ZONE.into(),
    })
    .unwrap()
}

fn posts(api: &StandIn) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.starts_with("POST"))
        .count()
}

/// What both providers must do, on `dns` in front of `api`.
async fn behaves(dns: &dyn DnsProvider, api: &StandIn) {
    let name = format!("alpha.{ZONE}");
    dns.set(&name, &[a("203.0.113.7"), a("203.0.113.8")], 300)
        .await
        .unwrap();
    let mut got = dns.get(&name, RecordKind::A).await.unwrap();
    got.sort();
    assert_eq!(got, [a("203.0.113.7"), a("203.0.113.8")]);

    // Already right: nothing is created again.
    let before = posts(api);
    dns.set(&name, &[a("203.0.113.8"), a("203.0.113.7")], 300)
        .await
        .unwrap();
    assert_eq!(posts(api), before);

    // Replaced: what is not wanted goes, what is wanted comes.
    dns.set(&name, &[a("203.0.113.8")], 300).await.unwrap();
    assert_eq!(
        dns.get(&name, RecordKind::A).await.unwrap(),
        [a("203.0.113.8")]
    );

    // An alias cannot stand beside addresses: the provider says so.
    let alias = [Record::Cname("tavern.example.org".into())];
    let err = dns.set(&name, &alias, 300).await.unwrap_err();
    assert!(matches!(err, DnsError::Refused(_)), "{err}");
    assert!(!err.is_transient());
    dns.remove(&name, RecordKind::A).await.unwrap();
    dns.set(&name, &alias, 300).await.unwrap();
    assert_eq!(dns.get(&name, RecordKind::Cname).await.unwrap(), alias);
    assert!(dns.get(&name, RecordKind::A).await.unwrap().is_empty());

    // An ACME challenge's text.
    let challenge = format!("_acme-challenge.{ZONE}");
    let txt = [Record::Txt("dGhlLWNoYWxsZW5nZQ".into())];
    dns.set(&challenge, &txt, 60).await.unwrap();
    assert_eq!(dns.get(&challenge, RecordKind::Txt).await.unwrap(), txt);
    dns.remove(&challenge, RecordKind::Txt).await.unwrap();
    // Removing what is not there is no error.
    dns.remove(&challenge, RecordKind::Txt).await.unwrap();
    dns.remove(&name, RecordKind::Cname).await.unwrap();
    assert!(api.records().is_empty(), "{:?}", api.records());

    // Outside the zone: refused before anything is sent.
    let sent = api.requests().len();
    for outside in ["alpha.games.test.evil.example", "evilgames.test"] {
        let err = dns
            .set(outside, &[a("203.0.113.7")], 300)
            .await
            .unwrap_err();
        assert!(matches!(err, DnsError::Invalid(_)), "{err}");
    }
    assert_eq!(api.requests().len(), sent);

    // Down: worth trying again.
    api.set_down(true);
    let err = dns.get(&name, RecordKind::A).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    api.set_down(false);
}

#[tokio::test]
async fn cloudflare_sets_replaces_and_removes_records_as_its_api_is_documented() {
    let api = StandIn::cloudflare(ZONE).await;
    // The zone's id is looked up once, by its name.
    behaves(&cloudflare(&api, TOKEN, None), &api).await;
    let requests = api.requests();
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.starts_with("GET /client/v4/zones?"))
            .count(),
        1
    );
    // The TTL Cloudflare takes, and never proxied.
    assert!(
        requests
            .iter()
            .any(|r| r.contains("\"ttl\":60") && r.contains("TXT")),
        "{requests:#?}"
    );
    insta::assert_snapshot!("cloudflare", requests.join("\n"));

    // With the zone's id given, no lookup.
    let api = StandIn::cloudflare(ZONE).await;
    let dns = cloudflare(&api, TOKEN, Some(ZONE_ID));
    dns.set(&format!("beta.{ZONE}"), &[a("203.0.113.9")], 300)
        .await
        .unwrap();
    assert!(api.requests()[0].starts_with("GET /client/v4/zones/"));

    // A wrong token: refused, in Cloudflare's words, without the token.
    let err = cloudflare(&api, "wrong-token-5678", Some(ZONE_ID))
        .get(&format!("beta.{ZONE}"), RecordKind::A)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DnsError::Refused(_)), "{text}");
    assert!(text.contains("Authentication error"), "{text}");
    assert!(!text.contains("wrong-token"), "{text}");
    // A zone the token does not see.
    let err = Cloudflare::new(&CloudflareSettings {
        api_url: api.url.clone(),
        token: TOKEN.into(),
        zone: "other.test".into(),
        zone_id: None,
    })
    .unwrap()
    .get("a.other.test", RecordKind::A)
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("no zone named other.test"),
        "{err}"
    );
}

#[tokio::test]
async fn digitalocean_sets_replaces_and_removes_records_as_its_api_is_documented() {
    let api = StandIn::digitalocean(ZONE).await;
    behaves(&digitalocean(&api, TOKEN), &api).await;
    let requests = api.requests();
    // Records are made by their name within the domain; an alias's target
    // keeps its final dot.
    assert!(
        requests
            .iter()
            .any(|r| r.contains("\"name\":\"alpha\"")
                && r.contains("\"data\":\"tavern.example.org.\"")),
        "{requests:#?}"
    );
    insta::assert_snapshot!("digitalocean", requests.join("\n"));

    let err = digitalocean(&api, "wrong-token-5678")
        .get(&format!("beta.{ZONE}"), RecordKind::A)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DnsError::Refused(_)), "{text}");
    assert!(text.contains("Unable to authenticate you"), "{text}");
    assert!(!text.contains("wrong-token"), "{text}");
}

#[test]
fn settings_are_checked_before_anything_is_sent() {
    let bad_url = Cloudflare::new(&CloudflareSettings {
        api_url: "ftp://api.example".into(),
        token: TOKEN.into(),
        zone: ZONE.into(),
        zone_id: None,
    });
    assert!(matches!(bad_url, Err(DnsError::Invalid(_))));
    let no_token = DigitalOcean::new(&DigitalOceanSettings {
        api_url: tavern_dns::digitalocean::API_URL.into(),
        token: " ".into(),
        zone: ZONE.into(),
    });
    assert!(matches!(no_token, Err(DnsError::Invalid(_))));
    let bad_id = Cloudflare::new(&CloudflareSettings {
        api_url: tavern_dns::cloudflare::API_URL.into(),
        token: TOKEN.into(),
        zone: ZONE.into(),
        zone_id: Some("../zones".into()),
    });
    assert!(matches!(bad_id, Err(DnsError::Invalid(_))));
}

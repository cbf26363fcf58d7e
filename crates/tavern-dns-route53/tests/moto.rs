//! The Route53 driver against moto's Route53 (started by the test): a
//! hosted zone found by its name, record sets written whole, replaced,
//! read and removed; names outside the zone refused before anything is
//! sent; a zone the credentials do not see refused; an endpoint that does
//! not answer worth retrying.

use tavern_dns::testing::moto::Moto;
use tavern_dns::{DnsError, DnsProvider, Record, RecordKind};
use tavern_dns_route53::testing::{hosted_zone, sets};
use tavern_dns_route53::{Route53, Route53Settings};

const ZONE: &str = "games.test";

fn a(ip: &str) -> Record {
    Record::A(ip.parse().unwrap())
}

fn settings(moto: &Moto) -> Route53Settings {
    Route53Settings {
        zone: ZONE.into(),
        hosted_zone_id: None,
        access_key: Some(("AKIDTAVERNTEST".into(), "tavern-test-secret".into())),
        endpoint_url: Some(moto.endpoint.clone()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn route53_writes_whole_record_sets_in_the_zone_it_finds_by_name() {
    let Some(moto) = Moto::start() else {
        return;
    };
    let (client, zone) = hosted_zone(&moto.endpoint, ZONE).await;
    // Another zone beside it, which must not be touched.
    let (_, other) = hosted_zone(&moto.endpoint, "other.test").await;
    let dns = Route53::new(settings(&moto)).unwrap();
    let name = format!("alpha.{ZONE}");

    dns.set(&name, &[a("203.0.113.8"), a("203.0.113.7")], 300)
        .await
        .unwrap();
    let mut got = dns.get(&name, RecordKind::A).await.unwrap();
    got.sort();
    assert_eq!(got, [a("203.0.113.7"), a("203.0.113.8")]);
    assert_eq!(
        sets(&client, &zone).await,
        ["alpha.games.test. A 300 203.0.113.7,203.0.113.8"]
    );

    // Replaced whole.
    dns.set(&name, &[a("203.0.113.9")], 120).await.unwrap();
    assert_eq!(
        sets(&client, &zone).await,
        ["alpha.games.test. A 120 203.0.113.9"]
    );
    // A name after it in the zone's order is not taken for it.
    assert!(
        dns.get(&format!("alph.{ZONE}"), RecordKind::A)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(dns.get(&name, RecordKind::Aaaa).await.unwrap().is_empty());

    // An alias, and an ACME challenge's text (quoted as Route53 wants).
    dns.remove(&name, RecordKind::A).await.unwrap();
    let alias = [Record::Cname("tavern.example.org".into())];
    dns.set(&name, &alias, 300).await.unwrap();
    assert_eq!(dns.get(&name, RecordKind::Cname).await.unwrap(), alias);
    let challenge = format!("_acme-challenge.{ZONE}");
    let txt = [Record::Txt("dGhlLWNoYWxsZW5nZQ".into())];
    dns.set(&challenge, &txt, 60).await.unwrap();
    assert_eq!(dns.get(&challenge, RecordKind::Txt).await.unwrap(), txt);
    let mut held = sets(&client, &zone).await;
    held.sort();
    assert_eq!(
        held,
        [
            "_acme-challenge.games.test. TXT 60 \"dGhlLWNoYWxsZW5nZQ\"",
            "alpha.games.test. CNAME 300 tavern.example.org.",
        ]
    );

    // Removed; removing what is not there is no error.
    dns.remove(&challenge, RecordKind::Txt).await.unwrap();
    dns.remove(&challenge, RecordKind::Txt).await.unwrap();
    dns.remove(&name, RecordKind::Cname).await.unwrap();
    assert!(sets(&client, &zone).await.is_empty());
    assert!(sets(&client, &other).await.is_empty());

    // Outside the zone: refused, nothing sent.
    let err = dns
        .set("alpha.other.test", &[a("203.0.113.7")], 300)
        .await
        .unwrap_err();
    assert!(matches!(err, DnsError::Invalid(_)), "{err}");
    assert!(sets(&client, &other).await.is_empty());

    // With the hosted zone's id given, it is used as it is.
    let dns = Route53::new(Route53Settings {
        hosted_zone_id: Some(zone.clone()),
        ..settings(&moto)
    })
    .unwrap();
    dns.set(&name, &[a("203.0.113.7")], 300).await.unwrap();
    assert_eq!(sets(&client, &zone).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zone_not_seen_is_refused_and_an_endpoint_that_does_not_answer_is_retried() {
    let Some(moto) = Moto::start() else {
        return;
    };
    let dns = Route53::new(settings(&moto)).unwrap();
    let err = dns
        .get(&format!("alpha.{ZONE}"), RecordKind::A)
        .await
        .unwrap_err();
    assert!(matches!(err, DnsError::Refused(_)), "{err}");
    assert!(
        err.to_string().contains("no hosted zone named games.test"),
        "{err}"
    );
    assert!(!err.to_string().contains("tavern-test-secret"));
    // A hosted zone id that does not exist: Route53's own refusal.
    let dns = Route53::new(Route53Settings {
        hosted_zone_id: Some("Z0000000000NOPE".into()),
        ..settings(&moto)
    })
    .unwrap();
    let err = dns
        .set(&format!("alpha.{ZONE}"), &[a("203.0.113.7")], 300)
        .await
        .unwrap_err();
    assert!(matches!(err, DnsError::Refused(_)), "{err}");

    let nobody = format!("http://127.0.0.1:{}", tavern_dns::testing::free_port());
    let dns = Route53::new(Route53Settings {
        endpoint_url: Some(nobody),
        ..settings(&moto)
    })
    .unwrap();
    let err = dns
        .get(&format!("alpha.{ZONE}"), RecordKind::A)
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(format!("{:?}", settings(&moto)).contains("AKIDTAVERNTEST"));
    assert!(!format!("{:?}", settings(&moto)).contains("tavern-test-secret"));
}

#[test]
fn settings_are_checked_before_anything_is_sent() {
    let base = Route53Settings {
        zone: ZONE.into(),
        hosted_zone_id: Some("/hostedzone/Z1".into()),
        access_key: None,
        endpoint_url: None,
    };
    assert!(matches!(
        Route53::new(base.clone()),
        Err(DnsError::Invalid(_))
    ));
    let empty_key = Route53Settings {
        hosted_zone_id: None,
        access_key: Some(("AKID".into(), " ".into())),
        ..base
    };
    assert!(matches!(Route53::new(empty_key), Err(DnsError::Invalid(_))));
}

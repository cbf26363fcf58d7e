//! The RFC 2136 driver against a real BIND 9 (Debian's `bind9`), started
//! here on a loopback port with a zone of its own and a TSIG key, and
//! checked with `dig`: records set, replaced and removed; a wrong key and a
//! name outside the zone refused with nothing changed; a server that is
//! not there worth trying again. Without `named` the
//! tests skip; under `CI=true` they fail.

use std::net::{Ipv4Addr, TcpListener};

use tavern_dns::rfc2136::Rfc2136;
use tavern_dns::{DnsError, DnsProvider, Record, RecordKind};

use tavern_dns::testing::{Bind, SECRET, ZONE};

#[tokio::test]
async fn records_are_set_replaced_and_removed_on_bind() {
    let Some(bind) = Bind::start("") else { return };
    let dns = Rfc2136::new(&bind.settings(SECRET)).unwrap();
    let name = format!("dragon.{ZONE}");

    // Set: what dig sees, and what the driver reads back.
    let v4: Ipv4Addr = "203.0.113.7".parse().unwrap();
    let v6 = "2001:db8::7".parse().unwrap();
    dns.set(&name, &[Record::A(v4), Record::Aaaa(v6)], 60)
        .await
        .unwrap();
    assert_eq!(bind.dig("dragon", "A"), ["203.0.113.7"]);
    assert_eq!(bind.dig("dragon", "AAAA"), ["2001:db8::7"]);
    assert_eq!(
        dns.get(&name, RecordKind::A).await.unwrap(),
        [Record::A(v4)]
    );

    // Set again: replaced, not added to; other kinds untouched.
    let two = [
        Record::A("203.0.113.8".parse().unwrap()),
        Record::A("203.0.113.9".parse().unwrap()),
    ];
    dns.set(&name, &two, 60).await.unwrap();
    assert_eq!(bind.dig("dragon", "A"), ["203.0.113.8", "203.0.113.9"]);
    assert_eq!(bind.dig("dragon", "AAAA"), ["2001:db8::7"]);
    let mut read = dns.get(&name, RecordKind::A).await.unwrap();
    read.sort();
    assert_eq!(read, two);

    // A CNAME and an ACME challenge's TXT.
    dns.set(
        &format!("alias.{ZONE}"),
        &[Record::Cname("tavern.example.org".into())],
        60,
    )
    .await
    .unwrap();
    assert_eq!(bind.dig("alias", "CNAME"), ["tavern.example.org."]);
    let challenge = "Xo7V-Ws2FJ4pyX0i4RZ9WhbHbd1tLDQBU3TxXKE2ZEA";
    let txt_name = format!("_acme-challenge.{ZONE}");
    dns.set(&txt_name, &[Record::Txt(challenge.into())], 60)
        .await
        .unwrap();
    assert_eq!(
        bind.dig("_acme-challenge", "TXT"),
        [format!("\"{challenge}\"")]
    );
    assert_eq!(
        dns.get(&txt_name, RecordKind::Txt).await.unwrap(),
        [Record::Txt(challenge.into())]
    );

    // Removed, and removing again is no error.
    dns.remove(&name, RecordKind::A).await.unwrap();
    assert!(bind.dig("dragon", "A").is_empty());
    assert_eq!(bind.dig("dragon", "AAAA"), ["2001:db8::7"]);
    dns.remove(&name, RecordKind::A).await.unwrap();
    assert!(dns.get(&name, RecordKind::A).await.unwrap().is_empty());
    assert!(
        dns.get(&format!("nowhere.{ZONE}"), RecordKind::A)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_wrong_key_and_a_name_outside_the_zone_change_nothing() {
    let Some(bind) = Bind::start("") else { return };
    let wrong = Rfc2136::new(&bind.settings("d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXkh")).unwrap();
    let e = wrong
        .set(
            &format!("dragon.{ZONE}"),
            &[Record::A("203.0.113.7".parse().unwrap())],
            60,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, DnsError::Refused(_)), "{e}");
    assert!(!e.is_transient());
    assert!(bind.dig("dragon", "A").is_empty());

    // A server that is not there: worth trying again later.
    let mut away = bind.settings(SECRET);
    away.server.set_port({
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let e = Rfc2136::new(&away)
        .unwrap()
        .get(&format!("dragon.{ZONE}"), RecordKind::A)
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");

    let dns = Rfc2136::new(&bind.settings(SECRET)).unwrap();
    let e = dns
        .set(
            "dragon.elsewhere.test",
            &[Record::A("203.0.113.7".parse().unwrap())],
            60,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, DnsError::Invalid(_)), "{e}");
    // A TXT value too long for one string is refused before anything is
    // sent, and the kinds before it are not half set.
    let e = dns
        .set(
            &format!("dragon.{ZONE}"),
            &[
                Record::A("203.0.113.7".parse().unwrap()),
                Record::Txt("x".repeat(256)),
            ],
            60,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, DnsError::Invalid(_)), "{e}");
    assert!(bind.dig("dragon", "A").is_empty());
}

#[tokio::test]
async fn a_change_is_awaited_on_the_zones_authoritative_servers() {
    use std::net::SocketAddr;
    use std::time::Duration;
    use tavern_dns::propagation::{authoritative_servers, wait_until_held};

    let Some(bind) = Bind::start("") else { return };
    let here: SocketAddr = format!("127.0.0.1:{}", bind.port).parse().unwrap();
    // The zone's servers, as a resolver knows them: here, BIND itself says
    // `ns.games.test`, at 127.0.0.1 (port 53, where real ones listen).
    assert_eq!(
        authoritative_servers(ZONE, here).await.unwrap(),
        ["127.0.0.1:53".parse::<SocketAddr>().unwrap()]
    );
    let dns = Rfc2136::new(&bind.settings(SECRET)).unwrap();
    let name = format!("_acme-challenge.{ZONE}");
    let wanted = [Record::Txt("one".into()), Record::Txt("two".into())];

    // Not there yet: after its patience, it says what the server holds.
    dns.set(&name, &wanted[..1], 60).await.unwrap();
    let err = wait_until_held(&[here], &name, &wanted, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("did not reach every authoritative server"),
        "{err}"
    );
    assert!(err.to_string().contains("\"one\""), "{err}");

    // There: at once.
    dns.set(&name, &wanted, 60).await.unwrap();
    wait_until_held(&[here], &name, &wanted, Duration::from_secs(5))
        .await
        .unwrap();
}

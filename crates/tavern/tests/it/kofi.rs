//! Ko-fi supporters through the real binary: notices shaped as Ko-fi's
//! webhook documentation shows them (a form whose `data` field is JSON),
//! the verification token, each payment applied once, malformed notices
//! refused with nothing recorded, supporters matched by e-mail address or
//! by a link code (and earlier payments applied when they link), credit in
//! the usage report and a subscription's tier in the quota.

use serde_json::{Value, json};

use crate::support::*;

const TOKEN: &str = "d9a2c4e1-kofi-test-token";

/// `application/x-www-form-urlencoded` for one field.
fn form(field: &str, value: &str) -> Vec<u8> {
    let mut out = format!("{field}=");
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out.into_bytes()
}

/// A single donation, field for field as in Ko-fi's documentation.
fn donation(txn: &str, email: &str, amount: &str, message: &str) -> Value {
    json!({
        "verification_token": TOKEN,
        "message_id": format!("3a1fac0c-f960-4506-a60e-{txn}"),
        "timestamp": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "type": "Donation",
        "is_public": true,
        "from_name": "Jo Example",
        "message": message,
        "amount": amount,
        "url": format!("https://ko-fi.com/Home/CoffeeShop?txid={txn}"),
        "email": email,
        "currency": "USD",
        "is_subscription_payment": false,
        "is_first_subscription_payment": false,
        "kofi_transaction_id": txn,
        "shop_items": null,
        "tier_name": null,
        "shipping": null
    })
}

/// The first payment of a monthly membership, as Ko-fi sends it.
fn subscription(txn: &str, email: &str, tier: &str) -> Value {
    let mut v = donation(txn, email, "5.00", "");
    v["type"] = json!("Subscription");
    v["is_public"] = json!(false);
    v["message"] = Value::Null;
    v["is_subscription_payment"] = json!(true);
    v["is_first_subscription_payment"] = json!(true);
    v["tier_name"] = json!(tier);
    v
}

async fn notify(api: &Api, body: Vec<u8>) -> Answer {
    api.send(
        "POST",
        "/webhooks/kofi",
        Some("application/x-www-form-urlencoded"),
        body,
    )
    .await
}

async fn send_notice(api: &Api, data: &Value) -> Answer {
    notify(api, form("data", &data.to_string())).await
}

async fn supporters(admin: &Api) -> Vec<Value> {
    let (s, list) = admin.get("/api/v1/supporters").await;
    assert_eq!(s, 200, "{list}");
    list.as_array().unwrap().clone()
}

fn supporter<'a>(list: &'a [Value], user: &str) -> &'a Value {
    list.iter()
        .find(|s| s["user"] == user)
        .unwrap_or_else(|| panic!("no supporter {user}: {list:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn kofi_payments_are_checked_applied_once_and_count_as_credit_and_tier() {
    let conf = tempfile::tempdir().unwrap();
    let conf_file = conf.path().join("tavern.toml");
    std::fs::write(
        &conf_file,
        "[usage]\nrate_per_hour = 3600\ncurrency = \"USD\"\n\
         [tiers.free]\nmax_instances = 1\ndefault = true\n\
         [tiers.supporter]\nmax_instances = 3\n\
         [kofi.tiers]\nBronze = \"supporter\"\n",
    )
    .unwrap();
    let server = Server::start_with_env(
        &["--config", conf_file.to_str().unwrap()],
        &[
            ("TAVERN_KOFI_VERIFICATION_TOKEN", TOKEN),
            ("TAVERN_BACKUPS_AFTER_STOP", "false"),
        ],
    );
    let admin = server.api(Some(&server.admin_token));
    let anon = server.api(None);
    admin.create_user("alice", "gm", "alice-password").await;
    admin.create_user("bob", "gm", "bob-password").await;
    let alice = admin.login("alice", "alice-password").await;
    let bob = admin.login("bob", "bob-password").await;

    // Alice's address is known: her donation is hers, once.
    let out = server.cli(
        Some(&server.admin_token),
        &["user", "set-email", "alice", "Alice@Example.org", "--json"],
        None,
    );
    assert_eq!(ok_json(&out)["email"], "alice@example.org");
    let gift = donation(
        "00000000-1111-2222-3333-444444444444",
        "alice@example.org",
        "3.00",
        "Good luck with the integration!",
    );
    let (s, body) = send_notice(&anon, &gift).await;
    assert_eq!((s, &body["status"]), (200, &json!("recorded")), "{body}");
    for _ in 0..2 {
        let (s, body) = send_notice(&anon, &gift).await;
        assert_eq!(
            (s, &body["status"]),
            (200, &json!("already_recorded")),
            "{body}"
        );
    }
    let list = supporters(&admin).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let a = supporter(&list, "alice");
    assert_eq!(
        (a["payments"].as_u64(), a["credit"].as_f64()),
        (Some(1), Some(3.0))
    );
    assert_eq!(a["totals"]["USD"].as_f64(), Some(3.0));

    // Refused, and nothing recorded: a wrong or missing token, and
    // notices that are not Ko-fi's shape.
    let mut wrong = donation("t-wrong", "alice@example.org", "100.00", "");
    wrong["verification_token"] = json!("d9a2c4e1-kofi-test-tokeX");
    assert_refused(
        &send_notice(&anon, &wrong).await,
        401,
        "invalid_verification_token",
    );
    let mut missing = donation("t-missing", "alice@example.org", "100.00", "");
    missing
        .as_object_mut()
        .unwrap()
        .remove("verification_token");
    assert_refused(
        &send_notice(&anon, &missing).await,
        401,
        "invalid_verification_token",
    );
    let mut bad_type = donation("t-type", "alice@example.org", "1.00", "");
    bad_type["type"] = json!("Gift");
    let mut bad_amount = donation("t-amount", "alice@example.org", "lots", "");
    bad_amount["amount"] = json!("lots");
    let mut no_txn = donation("t-none", "alice@example.org", "1.00", "");
    no_txn
        .as_object_mut()
        .unwrap()
        .remove("kofi_transaction_id");
    for data in [&bad_type, &bad_amount, &no_txn] {
        assert_refused(&send_notice(&anon, data).await, 400, "malformed_payment");
    }
    assert_refused(
        &notify(&anon, form("data", "{not json")).await,
        400,
        "malformed_payment",
    );
    assert_refused(
        &notify(&anon, form("other", "x")).await,
        400,
        "malformed_payment",
    );
    // Not a form, as Ko-fi sends: the media type is refused.
    let a = anon
        .send(
            "POST",
            "/webhooks/kofi",
            Some("application/json"),
            gift.to_string().into_bytes(),
        )
        .await;
    assert_refused(&a, 415, "unsupported_media_type");
    let list = supporters(&admin).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(supporter(&list, "alice")["payments"].as_u64(), Some(1));

    // An unknown supporter's subscription is kept, unmatched...
    let (s, body) = send_notice(
        &anon,
        &subscription("t-sub-1", "bob.fan@example.net", "Bronze"),
    )
    .await;
    assert_eq!((s, &body["status"]), (200, &json!("recorded")), "{body}");
    let list = supporters(&admin).await;
    let unmatched = list
        .iter()
        .find(|s| s["email"] == "bob.fan@example.net")
        .unwrap();
    assert_eq!(unmatched["user"], Value::Null);
    // ...and Bob, still on the free tier, may own one world.
    create_world(&bob, &json!({"slug": "bob-one", "release": "stub"})).await;
    let two = json!({"slug": "bob-two", "release": "stub"});
    assert_refused(
        &bob.post("/api/v1/instances", &two).await,
        403,
        "quota_exceeded",
    );

    // Bob writes his link code in his next Ko-fi message: that payment and
    // the earlier one from the same address become his.
    let out = server.cli(Some(bob.token()), &["user", "link-code", "--json"], None);
    let code = ok_json(&out)["code"].as_str().unwrap().to_owned();
    let tip = donation(
        "t-tip-1",
        "bob.fan@example.net",
        "2.50",
        &format!("for the table! {code}"),
    );
    let (s, body) = send_notice(&anon, &tip).await;
    assert_eq!((s, &body["status"]), (200, &json!("recorded")), "{body}");
    let list = supporters(&admin).await;
    let b = supporter(&list, "bob");
    assert_eq!(b["payments"].as_u64(), Some(2), "{b}");
    assert_eq!(b["tier"], "supporter", "{b}");
    assert!(b["tier_until"].is_string(), "{b}");
    assert_eq!(
        b["credit"].as_f64(),
        Some(2.5),
        "a mapped subscription is a tier, not credit"
    );
    assert!(
        list.iter()
            .all(|s| s["email"] != "bob.fan@example.net" || s["user"] == "bob")
    );
    // The supporter tier lifts Bob's quota.
    let (s, body) = bob.post("/api/v1/instances", &two).await;
    assert_eq!(s, 201, "{body}");

    // Later payments from that address find Bob without a code; the code
    // itself worked once.
    let (s, _) = send_notice(
        &anon,
        &donation("t-tip-2", "bob.fan@example.net", "1.00", ""),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = send_notice(
        &anon,
        &donation("t-tip-3", "stranger@example.com", "9.00", &code),
    )
    .await;
    assert_eq!(s, 200);
    let list = supporters(&admin).await;
    assert_eq!(supporter(&list, "bob")["payments"].as_u64(), Some(3));
    let stranger = list
        .iter()
        .find(|s| s["email"] == "stranger@example.com")
        .unwrap();
    assert_eq!(stranger["user"], Value::Null);
    // A notice sent again whose supporter was not matched the first time is
    // matched then (and still applied once).
    let out = server.cli(Some(alice.token()), &["user", "link-code", "--json"], None);
    let alice_code = ok_json(&out)["code"].as_str().unwrap().to_owned();
    let again = donation("t-tip-3", "stranger@example.com", "9.00", &alice_code);
    let (s, body) = send_notice(&anon, &again).await;
    assert_eq!(
        (s, &body["status"]),
        (200, &json!("already_recorded")),
        "{body}"
    );
    let list = supporters(&admin).await;
    let a = supporter(&list, "alice");
    assert_eq!(a["payments"].as_u64(), Some(2), "{a}");
    assert_eq!(a["credit"].as_f64(), Some(12.0), "{a}");
    assert!(
        list.iter()
            .all(|s| s["email"] != "stranger@example.com" || s["user"] == "alice")
    );

    // Alice's credit is set against her month's cost.
    add_key(&admin, "table", &key_for("table")).await;
    create_world(&alice, &json!({"slug": "alice-keep", "release": "stub"})).await;
    let (s, _) = alice
        .post("/api/v1/instances/alice-keep/start", &json!({}))
        .await;
    assert_eq!(s, 202);
    wait_for_state(&alice, "alice-keep", "running").await;
    let (s, usage) = alice.get("/api/v1/usage").await;
    assert_eq!(s, 200, "{usage}");
    let mine = &usage["users"][0];
    assert_eq!(mine["user"], "alice", "{usage}");
    assert_eq!(mine["credit"].as_f64(), Some(12.0), "{usage}");
    let (cost, due) = (
        mine["cost"].as_f64().unwrap(),
        mine["due"].as_f64().unwrap(),
    );
    assert!((due - (cost - 12.0).max(0.0)).abs() < 0.02, "{usage}");

    // The overview has the month's usage and the supporters.
    let (s, o) = admin.get("/api/v1/admin/overview").await;
    assert_eq!(s, 200, "{o}");
    assert!(
        o["usage"]["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["user"] == "alice")
    );
    assert_eq!(o["supporters"].as_array().unwrap().len(), 2, "{o}");
    let out = server.cli(Some(&server.admin_token), &["admin", "overview"], None);
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("Supporters") && shown.contains("bob.fan@example.net"),
        "{shown}"
    );

    // Game masters neither see supporters nor set addresses.
    assert_refused(&bob.get("/api/v1/supporters").await, 403, "forbidden");
    let (s, _) = bob
        .patch("/api/v1/users/bob", &json!({"email": "x@example.org"}))
        .await;
    assert_eq!(s, 403);
    // Two users cannot share an address; a bad one is refused; both change
    // nothing.
    assert_refused(
        &admin
            .patch(
                "/api/v1/users/bob",
                &json!({"email": "alice@example.org", "tier": "supporter"}),
            )
            .await,
        409,
        "email_taken",
    );
    assert_refused(
        &admin
            .patch("/api/v1/users/bob", &json!({"email": "not-an-address"}))
            .await,
        422,
        "invalid_email",
    );
    let (_, users) = admin.get("/api/v1/users").await;
    let b = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "bob")
        .unwrap();
    assert_eq!(
        (&b["email"], &b["tier"]),
        (&Value::Null, &Value::Null),
        "{b}"
    );

    // The token never reaches the log.
    let (s, _) = alice
        .post("/api/v1/instances/alice-keep/stop", &json!({}))
        .await;
    assert_eq!(s, 202);
    wait_for_state(&alice, "alice-keep", "stopped").await;
    let log = std::fs::read_to_string(server.home().join("server.log")).unwrap();
    assert!(!log.contains(TOKEN), "the verification token is in the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_token_configured_the_webhook_takes_nothing() {
    let server = Server::start();
    let anon = server.api(None);
    let gift = donation("t-1", "a@example.org", "3.00", "");
    assert_refused(&send_notice(&anon, &gift).await, 404, "not_found");
}

/// A supporter's name and address are shown to admins: line breaks, NULs
/// and characters that reorder text on screen are not kept.
#[tokio::test(flavor = "multi_thread")]
async fn names_and_addresses_are_stored_cleaned() {
    let server = Server::start_with_env(&[], &[("TAVERN_KOFI_VERIFICATION_TOKEN", TOKEN)]);
    let admin = server.api(Some(&server.admin_token));
    let anon = server.api(None);
    let mut notice = donation(
        "cl3an",
        "jo@example.org\r\nBcc: all@example.org",
        "3.00",
        "",
    );
    notice["from_name"] = json!("Jo\r\nExample\u{0000} \u{202E}gpj.exe\u{2066}");
    let (s, b) = send_notice(&anon, &notice).await;
    assert_eq!(s, 200, "{b}");
    let mut bidi = donation("b1d1", "jo\u{202E}@example.org", "1.00", "");
    bidi["from_name"] = json!("Sam");
    let (s, b) = send_notice(&anon, &bidi).await;
    assert_eq!(s, 200, "{b}");
    let list = supporters(&admin).await;
    let jo = list
        .iter()
        .find(|s| s["from_name"].as_str().unwrap().starts_with("Jo"))
        .unwrap_or_else(|| panic!("{list:?}"));
    assert_eq!(jo["from_name"], "Jo Example gpj.exe");
    assert!(jo["email"].is_null(), "{jo}");
    let sam = list.iter().find(|s| s["from_name"] == "Sam").unwrap();
    assert!(sam["email"].is_null(), "{sam}");

    // A transaction id with a line break is malformed: refused, kept out.
    let mut broken = donation("x\r\ny", "jo@example.org", "1.00", "");
    broken["message_id"] = json!("m-broken");
    let a = send_notice(&anon, &broken).await;
    assert_refused(&a, 400, "malformed_payment");
    assert_eq!(supporters(&admin).await.len(), 2);
}

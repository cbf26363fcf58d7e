//! The ecs driver against moto's server (ECS, EFS, ELBv2, Secrets Manager,
//! CloudWatch Logs): the exact calls it makes for a create and start, a
//! stop, a start again, an adoption by a restarted Tavern, an orphan's
//! cleanup and a destroy, snapshot-tested as moto's recorder received
//! them; the routing switch on the ALB, and the objects left behind.

use std::time::Duration;

use serde_json::{Value, json};
use tavern_dns::testing::moto::Moto;
use tavern_runtime::ecs::objects::{self, EcsSettings};
use tavern_runtime::ecs::{EcsRuntime, runner};
use tavern_runtime::{Disposal, FoundryConfig, InstanceSpec, Launch, Runtime};
use tavern_types::{InstanceId, LicenseKey, Slug};

const GRACE: Duration = Duration::from_secs(1);
const ID: &str = "01970000-0000-7000-8000-00000000a1b2";

/// A world with a fixed id, so that snapshots are stable.
fn spec(slug: &str, id: &str) -> InstanceSpec {
    InstanceSpec {
        id: id.parse::<InstanceId>().unwrap(),
        slug: Slug::parse(slug).unwrap(),
        launch: Launch::Task {
            release: "13.351".into(),
        },
        config: FoundryConfig {
            hostname: format!("{slug}.example.org"),
            route_prefix: None,
            proxy_ssl: true,
            proxy_port: Some(443),
            license_key: Some(LicenseKey::parse("ABCD-EFGH-JKLM-NPQR-STUV-WXYZ").unwrap()),
            signed_license: None,
            admin_hash: Some("ab".repeat(64)),
            aws_config: None,
            packages: Vec::new(),
        },
    }
}

struct Account {
    moto: Moto,
    sdk: aws_config::SdkConfig,
    settings: EcsSettings,
}

async fn account() -> Option<Account> {
    let moto = Moto::start_for_ecs()?;
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(&moto.endpoint)
        .credentials_provider(aws_sdk_ecs::config::SharedCredentialsProvider::new(
            aws_sdk_ecs::config::Credentials::new("tavern", "secret", None, None, "test"),
        ))
        .build();
    let settings = runner::moto_account(&moto.endpoint, &sdk, "test").await;
    Some(Account {
        moto,
        sdk,
        settings,
    })
}

impl Account {
    fn driver(&self) -> EcsRuntime {
        EcsRuntime::with_config(&self.sdk, self.settings.clone())
            .stop_margin(Duration::from_secs(2))
    }

    /// The requests moto received since the last look, as `SERVICE
    /// Operation` and their parameters, with the account's own ids named.
    fn calls(&self) -> Vec<Value> {
        let calls = self.moto.recorded().iter().filter_map(call).collect();
        self.moto.start_recording();
        let mut text = serde_json::to_string_pretty(&Value::Array(calls)).unwrap();
        for (value, name) in [
            (self.settings.vpc_id.as_str(), "<vpc>"),
            (&self.settings.subnets[0], "<subnet>"),
            (&self.settings.security_groups[0], "<security-group>"),
            (&self.settings.file_system_id, "<file-system>"),
            (self.settings.listener_arn.as_deref().unwrap(), "<listener>"),
            (
                self.settings.standby_target_group_arn.as_deref().unwrap(),
                "<standby>",
            ),
        ] {
            text = text.replace(value, name);
        }
        let mut calls = serde_json::from_str::<Vec<Value>>(&scrub(&text)).unwrap();
        calls.iter_mut().for_each(name_made_up_values);
        calls
    }
}

/// Names the values a call makes up each time: idempotency tokens, and
/// the digest of a task definition made of moto's made-up ids.
fn name_made_up_values(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("key").and_then(Value::as_str) == Some(objects::TAG_TASK_DIGEST) {
                map.insert("value".into(), json!("<digest>"));
            }
            if map.contains_key("ClientRequestToken") {
                map.insert("ClientRequestToken".into(), json!("<token>"));
            }
            map.values_mut().for_each(name_made_up_values);
        }
        Value::Array(items) => items.iter_mut().for_each(name_made_up_values),
        _ => {}
    }
}

/// Names what moto made up: access points, ARNs' random parts, tokens.
fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let marks: [(&str, &str); 4] = [
        ("fsap-", "fsap-<id>"),
        ("targetgroup/tavern-", "targetgroup/tavern-<name>"),
        (
            "listener-rule/app/tavern/",
            "listener-rule/app/tavern/<rule>",
        ),
        (":secret:", ":secret:<name>"),
    ];
    'outer: while !rest.is_empty() {
        for (mark, name) in marks {
            if let Some(after) = rest.strip_prefix(mark) {
                out.push_str(name);
                let end = after.find(['"', '\\', ',']).unwrap_or(after.len());
                rest = &after[end..];
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// One recorded request as `{"call": "SERVICE Operation", "params": …}`;
/// moto's own API and reads that change nothing are left out.
fn call(entry: &Value) -> Option<Value> {
    use base64::Engine as _;
    let headers = &entry["headers"];
    let raw = entry["body"].as_str().unwrap_or_default();
    let body = match entry["body_encoded"].as_bool() {
        Some(true) => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .unwrap_or_default(),
        )
        .unwrap_or_default(),
        _ => raw.to_owned(),
    };
    let body = body.as_str();
    let url = url::Url::parse(entry["url"].as_str()?).ok()?;
    let auth = headers["Authorization"].as_str().unwrap_or_default();
    // The credential scope names the service: …/REGION/SERVICE/aws4_request.
    let service = auth.split('/').nth(3).unwrap_or("?").to_owned();
    let (operation, params) = if let Some(target) = headers["X-Amz-Target"].as_str() {
        let op = target.rsplit('.').next().unwrap_or(target).to_owned();
        (op, serde_json::from_str(body).unwrap_or(Value::Null))
    } else if service == "elasticloadbalancing" {
        let mut map = serde_json::Map::new();
        for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
            if k != "Action" && k != "Version" {
                map.insert(k.into_owned(), json!(v));
            }
        }
        let op = url::form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        (op, Value::Object(map))
    } else {
        // EFS's REST API: the method and path say what it is.
        let method = entry["method"].as_str().unwrap_or_default();
        let op = format!("{method} {}", url.path());
        let mut params: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        if let Some(q) = url.query() {
            params = json!({"query": q, "body": params});
        }
        (op, params)
    };
    if operation.starts_with("Describe")
        || operation.starts_with("List")
        || operation.starts_with("Get")
        || operation.starts_with("GET ")
    {
        return None;
    }
    Some(json!({"call": format!("{service} {operation}"), "params": params}))
}

/// A server on loopback that answers Foundry's status, as a world's task
/// would; it serves until the test's process ends.
fn answering_status() -> std::net::SocketAddr {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(10) {
            let Ok(mut stream) = stream else { continue };
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let body = r#"{"active":true,"version":"13.351","users":0}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[tokio::test]
async fn a_world_is_made_started_stopped_adopted_and_destroyed_with_exactly_these_calls() {
    let Some(account) = account().await else {
        return;
    };
    let driver = account.driver();
    let world = spec("alpha", ID);
    account.moto.start_recording();

    // Create and start: access point, seed, task definition, target group,
    // service at 1, and the host's rule at the standby page until the
    // world answers.
    let observed = driver.ensure(&world).await.unwrap();
    assert!(observed.alive);
    insta::assert_json_snapshot!("ecs_create_and_start", account.calls());

    // Asked again (a restarted Tavern's reconciler): nothing changes.
    let again = account.driver();
    again.ensure(&world).await.unwrap();
    assert_eq!(
        account.calls(),
        Vec::<Value>::new(),
        "an ensure of a running world changes nothing"
    );
    let all = again.observe_all().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, world.id);
    assert!(all[0].alive && !all[0].kept);

    // The world answers at its task's address (here a server of the
    // test's): its host's rule now goes to its target group, once.
    let world_server = answering_status();
    let mut running = all[0].clone();
    running.addr = world_server;
    assert!(driver.status(&running, None).await.is_some());
    assert!(driver.status(&running, None).await.is_some());
    insta::assert_json_snapshot!("ecs_world_answers", account.calls());

    // Stop: the rule back to the standby page, the service at 0.
    driver.stop(&world.slug, GRACE).await.unwrap();
    insta::assert_json_snapshot!("ecs_stop", account.calls());
    let all = driver.observe_all().await.unwrap();
    assert!(!all[0].alive && all[0].kept, "{all:?}");
    assert_eq!(all[0].exit.as_deref(), Some("desired count 0"));

    // A start again: the service at 1, on the same task definition.
    driver.ensure(&world).await.unwrap();
    insta::assert_json_snapshot!("ecs_start_again", account.calls());

    // A changed world (another release): a new revision, one task at a time.
    let mut newer = world.clone();
    newer.launch = Launch::Task {
        release: "13.352".into(),
    };
    driver.ensure(&newer).await.unwrap();
    let calls = account.calls();
    let ops: Vec<&str> = calls.iter().filter_map(|c| c["call"].as_str()).collect();
    assert_eq!(
        ops,
        ["ecs RegisterTaskDefinition", "ecs UpdateService"],
        "{calls:#?}"
    );

    // Destroy with a backup holding the data is the tavern crate's test
    // (it needs a data agent); kept data is tagged as archived. These are
    // also exactly the calls of an orphan's cleanup: the reconciler
    // removes a running world of no instance with `Disposal::Archive`.
    driver
        .remove(&world.slug, GRACE, Disposal::Archive)
        .await
        .unwrap();
    insta::assert_json_snapshot!("ecs_destroy_keeping_the_data", account.calls());
    assert!(driver.observe_all().await.unwrap().is_empty());
    let efs = aws_sdk_efs::Client::new(&account.sdk);
    let points = efs
        .describe_access_points()
        .file_system_id(&account.settings.file_system_id)
        .send()
        .await
        .unwrap();
    let kept: Vec<_> = points
        .access_points()
        .iter()
        .filter(|a| a.tags().iter().any(|t| t.key() == objects::TAG_ARCHIVED))
        .collect();
    assert_eq!(kept.len(), 1, "the world's access point is kept, archived");
    assert!(
        !kept[0]
            .tags()
            .iter()
            .any(|t| t.key() == objects::TAG_INSTANCE),
        "and no longer the world's"
    );
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&account.sdk);
    let rules = elb
        .describe_rules()
        .listener_arn(account.settings.listener_arn.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert!(
        rules.rules().iter().all(|r| r.is_default() == Some(true)),
        "only the listener's default rule is left"
    );
}

#[tokio::test]
async fn another_installation_s_worlds_are_neither_seen_nor_touched() {
    let Some(account) = account().await else {
        return;
    };
    let ours = account.driver();
    let theirs = EcsRuntime::with_config(
        &account.sdk,
        EcsSettings {
            installation: "other".into(),
            rule_priority_from: 1000,
            ..account.settings.clone()
        },
    );
    ours.ensure(&spec("alpha", ID)).await.unwrap();
    theirs
        .ensure(&spec("beta", "01970000-0000-7000-8000-00000000b0b0"))
        .await
        .unwrap();
    let seen: Vec<String> = ours
        .observe_all()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.slug.to_string())
        .collect();
    assert_eq!(seen, ["alpha"]);
    // Two rules on one listener: the second took the next free priority.
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&account.sdk);
    let rules = elb
        .describe_rules()
        .listener_arn(account.settings.listener_arn.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    let mut priorities: Vec<&str> = rules
        .rules()
        .iter()
        .filter_map(|r| r.priority())
        .filter(|p| *p != "default")
        .collect();
    priorities.sort();
    assert_eq!(priorities, ["1000", "1001"]);
    // Their world's stop is not ours to do: ours stops only its own.
    ours.stop(&Slug::parse("beta").unwrap(), GRACE)
        .await
        .unwrap();
    let theirs_seen = theirs.observe_all().await.unwrap();
    assert!(theirs_seen[0].alive, "another Tavern's world still runs");
}

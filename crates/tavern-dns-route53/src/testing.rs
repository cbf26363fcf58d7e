//! For tests (Route53's here, Tavern's): a hosted zone made in moto's
//! Route53 as the community would make it, and what it holds.

use aws_sdk_route53::Client;
use aws_sdk_route53::config::{BehaviorVersion, Credentials, Region};

/// Makes the hosted zone, as the community would; answers its id.
pub async fn hosted_zone(endpoint: &str, name: &str) -> (Client, String) {
    let conf = aws_sdk_route53::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("AKIDTAVERNTEST", "x", None, None, "test"))
        .build();
    let client = Client::from_conf(conf);
    let made = client
        .create_hosted_zone()
        .name(name)
        .caller_reference(format!("tavern-test-{name}"))
        .send()
        .await
        .unwrap();
    let id = made
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_owned();
    (client, id)
}

/// Every record set in the zone but its SOA and NS: `name type ttl values`.
pub async fn sets(client: &Client, zone: &str) -> Vec<String> {
    let all = client
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    all.resource_record_sets()
        .iter()
        .filter(|s| !matches!(s.r#type().as_str(), "SOA" | "NS"))
        .map(|s| {
            let values: Vec<&str> = s.resource_records().iter().map(|r| r.value()).collect();
            format!(
                "{} {} {} {}",
                s.name(),
                s.r#type().as_str(),
                s.ttl().unwrap_or_default(),
                values.join(",")
            )
        })
        .collect()
}

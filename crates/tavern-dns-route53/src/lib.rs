//! Route53 as a [`DnsProvider`], through the AWS SDK: a hosted zone's
//! record sets read by name and type, written whole with UPSERT (one
//! change batch per kind, so a name never holds half of what it should)
//! and deleted as they are. Credentials come from the configuration or
//! the SDK's default chain (environment, profile, an instance's or a
//! task's role, web identity on EKS).

#[cfg(feature = "testing")]
pub mod testing;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::Region;
use aws_sdk_route53::Client;
use aws_sdk_route53::config::Credentials;
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use tavern_dns::{DnsError, DnsProvider, Record, RecordKind};
use tokio::sync::OnceCell;

/// How to reach the hosted zone.
#[derive(Clone)]
pub struct Route53Settings {
    /// The zone's name (`games.example.org`).
    pub zone: String,
    /// The hosted zone's id (`Z0123…`); looked up by the zone's name when
    /// not given.
    pub hosted_zone_id: Option<String>,
    /// An access key and its secret; the SDK's default chain when not
    /// given.
    pub access_key: Option<(String, String)>,
    /// Another endpoint than AWS's (a test's moto).
    pub endpoint_url: Option<String>,
}

/// Shows whether a secret key is set, not the key.
impl std::fmt::Debug for Route53Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route53Settings")
            .field("zone", &self.zone)
            .field("hosted_zone_id", &self.hosted_zone_id)
            .field("access_key", &self.access_key.as_ref().map(|(id, _)| id))
            .field("endpoint_url", &self.endpoint_url)
            .finish()
    }
}

/// A hosted zone at Route53.
pub struct Route53 {
    settings: Route53Settings,
    /// The zone's name with its final dot, in lower case.
    zone: String,
    /// The client and the hosted zone's id, once made.
    ready: OnceCell<(Client, String)>,
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.').to_ascii_lowercase())
}

fn rr_type(kind: RecordKind) -> RrType {
    match kind {
        RecordKind::A => RrType::A,
        RecordKind::Aaaa => RrType::Aaaa,
        RecordKind::Cname => RrType::Cname,
        RecordKind::Txt => RrType::Txt,
    }
}

/// A record's value as Route53 takes it: strings quoted, host names with
/// their final dot.
fn value(record: &Record) -> String {
    match record {
        Record::Txt(text) => format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"")),
        Record::Cname(host) => format!("{host}."),
        other => other.text(),
    }
}

/// What went wrong, in the provider's words, never a key.
fn failure<E, R>(e: SdkError<E, R>) -> DnsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            let code = err.code().unwrap_or("error");
            let text = format!("Route53: {} ({code})", err.message().unwrap_or(code));
            match code {
                "Throttling"
                | "ThrottlingException"
                | "PriorRequestNotComplete"
                | "ServiceUnavailable"
                | "InternalError" => DnsError::Unreachable(text),
                _ => DnsError::Refused(text),
            }
        }
        SdkError::ConstructionFailure(_) => DnsError::Invalid(format!("Route53: {e}")),
        _ => DnsError::Unreachable(format!(
            "Route53: {}",
            std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string())
        )),
    }
}

fn build_error(e: impl std::fmt::Display) -> DnsError {
    DnsError::Invalid(format!("Route53: {e}"))
}

impl Route53 {
    /// Checks the settings; nothing is sent yet.
    pub fn new(settings: Route53Settings) -> Result<Self, DnsError> {
        if let Some(id) = &settings.hosted_zone_id
            && !id.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(DnsError::Invalid(
                "the Route53 hosted zone id is letters and digits (Z0123…)".into(),
            ));
        }
        if let Some((id, secret)) = &settings.access_key
            && (id.trim().is_empty() || secret.trim().is_empty())
        {
            return Err(DnsError::Invalid("the Route53 access key is empty".into()));
        }
        Ok(Self {
            zone: fqdn(&settings.zone),
            settings,
            ready: OnceCell::new(),
        })
    }

    /// The client and the hosted zone's id.
    async fn ready(&self) -> Result<&(Client, String), DnsError> {
        self.ready
            .get_or_try_init(|| async {
                // Route53 is global; the SDK signs it for us-east-1.
                let mut conf = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new("us-east-1"));
                if let Some(url) = &self.settings.endpoint_url {
                    conf = conf.endpoint_url(url);
                }
                if let Some((id, secret)) = &self.settings.access_key {
                    conf = conf
                        .credentials_provider(Credentials::new(id, secret, None, None, "tavern"));
                }
                let client = Client::new(&conf.load().await);
                let id = match &self.settings.hosted_zone_id {
                    Some(id) => id.clone(),
                    None => self.find_zone(&client).await?,
                };
                Ok((client, id))
            })
            .await
    }

    async fn find_zone(&self, client: &Client) -> Result<String, DnsError> {
        let found = client
            .list_hosted_zones_by_name()
            .dns_name(&self.zone)
            .max_items(1)
            .send()
            .await
            .map_err(failure)?;
        found
            .hosted_zones()
            .iter()
            .find(|z| z.name().eq_ignore_ascii_case(&self.zone))
            .map(|z| z.id().trim_start_matches("/hostedzone/").to_owned())
            .ok_or_else(|| {
                DnsError::Refused(format!(
                    "Route53: these credentials see no hosted zone named {}",
                    self.zone.trim_end_matches('.')
                ))
            })
    }

    fn check(&self, name: &str) -> Result<String, DnsError> {
        let name = fqdn(name);
        match name == self.zone || name.ends_with(&format!(".{}", self.zone)) {
            true => Ok(name),
            false => Err(DnsError::Invalid(format!(
                "{} is not in the zone {}",
                name.trim_end_matches('.'),
                self.zone.trim_end_matches('.')
            ))),
        }
    }

    /// `name`'s record set of `kind`, as Route53 holds it.
    async fn record_set(
        &self,
        name: &str,
        kind: RecordKind,
    ) -> Result<Option<ResourceRecordSet>, DnsError> {
        let (client, zone) = self.ready().await?;
        let found = client
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .start_record_name(name)
            .start_record_type(rr_type(kind))
            .max_items(1)
            .send()
            .await
            .map_err(failure)?;
        Ok(found
            .resource_record_sets()
            .iter()
            .find(|s| fqdn(s.name()) == name && *s.r#type() == rr_type(kind))
            .cloned())
    }

    async fn change(&self, action: ChangeAction, set: ResourceRecordSet) -> Result<(), DnsError> {
        let (client, zone) = self.ready().await?;
        let change = Change::builder()
            .action(action)
            .resource_record_set(set)
            .build()
            .map_err(build_error)?;
        let batch = ChangeBatch::builder()
            .comment("Tavern")
            .changes(change)
            .build()
            .map_err(build_error)?;
        client
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(batch)
            .send()
            .await
            .map_err(failure)?;
        Ok(())
    }
}

#[async_trait]
impl DnsProvider for Route53 {
    async fn get(&self, name: &str, kind: RecordKind) -> Result<Vec<Record>, DnsError> {
        let name = self.check(name)?;
        Ok(match self.record_set(&name, kind).await? {
            None => Vec::new(),
            Some(set) => set
                .resource_records()
                .iter()
                .filter_map(|r| Record::parse(kind, &r.value().replace("\\\"", "\"")))
                .collect(),
        })
    }

    async fn set(&self, name: &str, records: &[Record], ttl: u32) -> Result<(), DnsError> {
        let name = self.check(name)?;
        let mut kinds: Vec<RecordKind> = records.iter().map(Record::kind).collect();
        kinds.sort();
        kinds.dedup();
        for kind in kinds {
            let mut set = ResourceRecordSet::builder()
                .name(&name)
                .r#type(rr_type(kind))
                .ttl(i64::from(ttl));
            let mut values: Vec<String> = records
                .iter()
                .filter(|r| r.kind() == kind)
                .map(value)
                .collect();
            values.sort();
            values.dedup();
            for v in values {
                set = set.resource_records(
                    ResourceRecord::builder()
                        .value(v)
                        .build()
                        .map_err(build_error)?,
                );
            }
            self.change(ChangeAction::Upsert, set.build().map_err(build_error)?)
                .await?;
        }
        Ok(())
    }

    async fn remove(&self, name: &str, kind: RecordKind) -> Result<(), DnsError> {
        let name = self.check(name)?;
        // A delete names the set exactly as it is.
        match self.record_set(&name, kind).await? {
            None => Ok(()),
            Some(set) => self.change(ChangeAction::Delete, set).await,
        }
    }
}

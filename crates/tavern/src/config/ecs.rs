//! `[ecs]`: where worlds run when `runtime.kind` is `ecs` (a Fargate
//! cluster, its network, the EFS file system of their data, the ALB that
//! routes their hosts) and with what (images, roles, task size, logs).

use serde::{Deserialize, Serialize};

/// `[ecs]`: the AWS side of worlds on ECS. Tavern talks to AWS as the SDK
/// finds its credentials: on ECS, its task's role; elsewhere the
/// environment or `~/.aws`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EcsConfig {
    /// The AWS region (default: `AWS_REGION` as the SDK reads it).
    pub region: Option<String>,
    /// Another endpoint for every AWS service (a stand-in such as moto).
    pub endpoint_url: Option<String>,
    /// Names this Tavern's objects (tag `tavern:installation`); default:
    /// from DATA_DIR's path.
    pub installation: Option<String>,
    /// The ECS cluster the worlds' services are made in.
    pub cluster: String,
    /// The worlds' tasks' subnets and security groups (awsvpc).
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
    /// The VPC of the subnets (the worlds' target groups are made there).
    pub vpc_id: String,
    /// The EFS file system holding each world's data under `/worlds`.
    pub file_system_id: String,
    /// An access point mounted read-only at `/data/Data/shared`.
    pub shared_access_point: Option<String>,
    /// The ALB listener each world's host rule goes on (unset: Tavern's
    /// proxy carries the players, reaching the tasks in the VPC).
    pub listener_arn: Option<String>,
    /// Tavern's own target group: a sleeping world's rule forwards there.
    pub standby_target_group_arn: Option<String>,
    /// The first listener rule priority worlds take.
    pub rule_priority_from: i32,
    /// The role ECS pulls images, writes logs and reads seeds with.
    pub execution_role_arn: String,
    /// The worlds' own task role (none: Foundry needs no AWS rights).
    pub task_role_arn: Option<String>,
    /// A release's image; `{version}` is replaced by the release.
    pub image: String,
    /// The `stub` release's image.
    pub stub_image: String,
    /// Tavern's own image: the init container and the data agent.
    pub tavern_image: String,
    /// Fargate's task size: CPU units (256 … 16384) and memory in MiB.
    pub cpu: u32,
    pub memory_mb: u32,
    /// The CloudWatch Logs group of the tasks' output.
    pub log_group: String,
}

impl Default for EcsConfig {
    fn default() -> Self {
        Self {
            region: None,
            endpoint_url: None,
            installation: None,
            cluster: "tavern".into(),
            subnets: Vec::new(),
            security_groups: Vec::new(),
            assign_public_ip: false,
            vpc_id: String::new(),
            file_system_id: String::new(),
            shared_access_point: None,
            listener_arn: None,
            standby_target_group_arn: None,
            rule_priority_from: 1000,
            execution_role_arn: String::new(),
            task_role_arn: None,
            image: "felddy/foundryvtt:{version}".into(),
            stub_image: "tavern-foundry-stub:latest".into(),
            tavern_image: "tavern:latest".into(),
            // Fargate's 1 vCPU and 2 GiB: Foundry's recommended size.
            cpu: 1024,
            memory_mb: 2048,
            log_group: "/tavern/worlds".into(),
        }
    }
}

/// The memory Fargate allows with `cpu` units, in MiB: (from, to, step).
fn fargate_memory(cpu: u32) -> Option<(u32, u32, u32)> {
    Some(match cpu {
        256 => (512, 2048, 512),
        512 => (1024, 4096, 1024),
        1024 => (2048, 8192, 1024),
        2048 => (4096, 16384, 1024),
        4096 => (8192, 30720, 1024),
        8192 => (16384, 61440, 4096),
        16384 => (32768, 122880, 8192),
        _ => return None,
    })
}

impl EcsConfig {
    /// How the ecs driver makes worlds.
    #[cfg(feature = "ecs")]
    pub fn settings(
        &self,
        data_dir: &std::path::Path,
        region: String,
    ) -> tavern_runtime::ecs::EcsSettings {
        tavern_runtime::ecs::EcsSettings {
            installation: self
                .installation
                .clone()
                .unwrap_or_else(|| tavern_runtime::installation_for(data_dir)),
            cluster: self.cluster.clone(),
            subnets: self.subnets.clone(),
            security_groups: self.security_groups.clone(),
            assign_public_ip: self.assign_public_ip,
            vpc_id: self.vpc_id.clone(),
            file_system_id: self.file_system_id.clone(),
            shared_access_point: self.shared_access_point.clone(),
            listener_arn: self.listener_arn.clone(),
            standby_target_group_arn: self.standby_target_group_arn.clone(),
            rule_priority_from: self.rule_priority_from,
            execution_role_arn: self.execution_role_arn.clone(),
            task_role_arn: self.task_role_arn.clone(),
            image: self.image.clone(),
            stub_image: self.stub_image.clone(),
            tavern_image: self.tavern_image.clone(),
            cpu: self.cpu.to_string(),
            memory: self.memory_mb.to_string(),
            log_group: self.log_group.clone(),
            region,
        }
    }

    /// What `runtime.kind = "ecs"` needs, each missing or bad value named.
    pub(super) fn check(&self) -> anyhow::Result<()> {
        let bad =
            |what: &str, why: &str| anyhow::anyhow!("invalid configuration: ecs.{what} {why}");
        let id = |what: &str, v: &str, prefix: &str| -> anyhow::Result<()> {
            let ok = v.strip_prefix(prefix).is_some_and(|rest| {
                !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric())
            });
            match ok {
                true => Ok(()),
                false => Err(bad(
                    what,
                    &format!("{v:?} is not an id of the form {prefix}…"),
                )),
            }
        };
        let arn = |what: &str, v: &str| -> anyhow::Result<()> {
            match v.starts_with("arn:") && v.split(':').count() >= 6 {
                true => Ok(()),
                false => Err(bad(what, &format!("{v:?} is not an ARN (arn:aws:…)"))),
            }
        };
        anyhow::ensure!(!self.cluster.trim().is_empty(), bad("cluster", "is empty"));
        anyhow::ensure!(
            !self.subnets.is_empty(),
            bad(
                "subnets",
                "is empty: the worlds' tasks need at least one subnet"
            )
        );
        for s in &self.subnets {
            id("subnets", s, "subnet-")?;
        }
        anyhow::ensure!(
            !self.security_groups.is_empty(),
            bad("security_groups", "is empty: the worlds' tasks need one")
        );
        for g in &self.security_groups {
            id("security_groups", g, "sg-")?;
        }
        id("file_system_id", &self.file_system_id, "fs-")?;
        if let Some(point) = &self.shared_access_point {
            id("shared_access_point", point, "fsap-")?;
        }
        arn("execution_role_arn", &self.execution_role_arn)?;
        if let Some(role) = &self.task_role_arn {
            arn("task_role_arn", role)?;
        }
        if let Some(listener) = &self.listener_arn {
            arn("listener_arn", listener)?;
            id("vpc_id", &self.vpc_id, "vpc-")?;
        }
        if let Some(standby) = &self.standby_target_group_arn {
            arn("standby_target_group_arn", standby)?;
            anyhow::ensure!(
                self.listener_arn.is_some(),
                bad(
                    "standby_target_group_arn",
                    "needs ecs.listener_arn (the rules go there)"
                )
            );
        }
        anyhow::ensure!(
            (1..=50_000).contains(&self.rule_priority_from),
            bad(
                "rule_priority_from",
                "must be 1 to 50000 (the ALB's priorities)"
            )
        );
        anyhow::ensure!(
            self.image.contains("{version}"),
            bad(
                "image",
                &format!("{:?} must contain {{version}}", self.image)
            )
        );
        let (from, to, step) = fargate_memory(self.cpu).ok_or_else(|| {
            bad(
                "cpu",
                &format!(
                    "{} is not a Fargate size (256, 512, 1024, 2048, 4096, 8192 or 16384)",
                    self.cpu
                ),
            )
        })?;
        anyhow::ensure!(
            (from..=to).contains(&self.memory_mb) && (self.memory_mb - from).is_multiple_of(step),
            bad(
                "memory_mb",
                &format!(
                    "{} does not go with cpu = {} on Fargate ({from} to {to} MiB, in steps of {step})",
                    self.memory_mb, self.cpu
                )
            )
        );
        anyhow::ensure!(
            !self.log_group.trim().is_empty(),
            bad("log_group", "is empty")
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> EcsConfig {
        EcsConfig {
            subnets: vec!["subnet-0abc".into()],
            security_groups: vec!["sg-0abc".into()],
            vpc_id: "vpc-0abc".into(),
            file_system_id: "fs-0abc".into(),
            execution_role_arn: "arn:aws:iam::123456789012:role/exec".into(),
            listener_arn: Some(
                "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/t/1/2".into(),
            ),
            ..EcsConfig::default()
        }
    }

    #[test]
    fn a_complete_section_passes_and_each_bad_value_is_named() {
        good().check().unwrap();
        let cases: [(&str, EcsConfig); 7] = [
            (
                "ecs.subnets",
                EcsConfig {
                    subnets: vec![],
                    ..good()
                },
            ),
            (
                "ecs.security_groups",
                EcsConfig {
                    security_groups: vec!["0abc".into()],
                    ..good()
                },
            ),
            (
                "ecs.file_system_id",
                EcsConfig {
                    file_system_id: "".into(),
                    ..good()
                },
            ),
            (
                "ecs.execution_role_arn",
                EcsConfig {
                    execution_role_arn: "exec".into(),
                    ..good()
                },
            ),
            (
                "ecs.vpc_id",
                EcsConfig {
                    vpc_id: "".into(),
                    ..good()
                },
            ),
            (
                "ecs.cpu",
                EcsConfig {
                    cpu: 1000,
                    ..good()
                },
            ),
            (
                "ecs.memory_mb",
                EcsConfig {
                    memory_mb: 1024,
                    ..good()
                },
            ),
        ];
        for (named, config) in cases {
            let e = config.check().unwrap_err().to_string();
            assert!(e.contains(named), "{named}: {e}");
        }
        let standby_alone = EcsConfig {
            listener_arn: None,
            standby_target_group_arn: Some(
                "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/t/1".into(),
            ),
            ..good()
        };
        assert!(
            standby_alone
                .check()
                .unwrap_err()
                .to_string()
                .contains("listener_arn")
        );
    }

    #[test]
    fn fargate_sizes_are_its_own() {
        assert_eq!(fargate_memory(1024), Some((2048, 8192, 1024)));
        assert_eq!(fargate_memory(300), None);
        let config = EcsConfig {
            cpu: 256,
            memory_mb: 512,
            ..good()
        };
        config.check().unwrap();
    }
}

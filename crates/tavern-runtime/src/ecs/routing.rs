//! A world's place on the ALB: its target group (Foundry's port on the
//! task's address, health-checked on `[/prefix]/api/status`) and the
//! listener rule for its host, which forwards to the world while it runs
//! and to Tavern's own target group (the standby page) otherwise.

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, HostHeaderConditionConfig, Matcher, ProtocolEnum, Rule, RuleCondition,
    Tag, TargetTypeEnum,
};
use std::collections::BTreeMap;

use tavern_types::Slug;

use super::objects::{self, EcsSettings};
use super::{EcsRuntime, aws_error, code_of, refused};
use crate::{FOUNDRY_PORT, InstanceSpec, RuntimeError};

/// The ALB's refusal of a priority another rule holds.
const PRIORITY_IN_USE: &str = "PriorityInUse";

fn forward(target_group: &str) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(target_group)
        .build()
}

fn elb_tags(settings: &EcsSettings, spec: &InstanceSpec) -> Vec<Tag> {
    objects::tags(settings, spec)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The lowest priority from `from` that no rule holds.
pub(super) fn free_priority(rules: &[Rule], from: i32) -> i32 {
    let taken: std::collections::BTreeSet<i32> = rules
        .iter()
        .filter_map(|r| r.priority()?.parse().ok())
        .collect();
    (from..).find(|p| !taken.contains(p)).unwrap_or(from)
}

/// The rule whose host condition is `host`.
fn rule_for<'r>(rules: &'r [Rule], host: &str) -> Option<&'r Rule> {
    rules.iter().find(|r| {
        r.conditions().iter().any(|c| {
            c.host_header_config()
                .is_some_and(|h| h.values().iter().any(|v| v.eq_ignore_ascii_case(host)))
        })
    })
}

impl EcsRuntime {
    /// The world's target group, if it has one.
    pub(super) async fn target_group(&self, slug: &Slug) -> Result<Option<String>, RuntimeError> {
        let name = objects::target_group_name(&self.settings, slug);
        match self.elb.describe_target_groups().names(&name).send().await {
            Ok(found) => Ok(found
                .target_groups()
                .first()
                .and_then(|t| t.target_group_arn())
                .map(str::to_owned)),
            Err(e) if code_of(&e) == Some("TargetGroupNotFound") => Ok(None),
            Err(e) => Err(aws_error(slug, "look for the target group", e)),
        }
    }

    /// Makes the world's target group if it has none; answers its ARN.
    pub(super) async fn ensure_target_group(
        &self,
        spec: &InstanceSpec,
    ) -> Result<String, RuntimeError> {
        let slug = &spec.slug;
        if let Some(arn) = self.target_group(slug).await? {
            return Ok(arn);
        }
        let made = self
            .elb
            .create_target_group()
            .name(objects::target_group_name(&self.settings, slug))
            .protocol(ProtocolEnum::Http)
            .port(i32::from(FOUNDRY_PORT))
            .vpc_id(&self.settings.vpc_id)
            .target_type(TargetTypeEnum::Ip)
            .health_check_path(objects::status_path(spec.config.route_prefix.as_deref()))
            .matcher(Matcher::builder().http_code("200").build())
            .set_tags(Some(elb_tags(&self.settings, spec)))
            .send()
            .await
            .map_err(|e| aws_error(slug, "make the target group", e))?;
        made.target_groups()
            .first()
            .and_then(|t| t.target_group_arn())
            .map(str::to_owned)
            .ok_or_else(|| refused(slug, "the ALB made no target group"))
    }

    /// Every rule of the listener.
    async fn rules(&self, slug: &Slug, listener: &str) -> Result<Vec<Rule>, RuntimeError> {
        let mut rules = Vec::new();
        let mut marker = None;
        loop {
            let page = self
                .elb
                .describe_rules()
                .listener_arn(listener)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| aws_error(slug, "list the listener's rules", e))?;
            rules.extend(page.rules().iter().cloned());
            marker = page.next_marker().map(str::to_owned);
            if marker.is_none() {
                return Ok(rules);
            }
        }
    }

    /// The tags of these rules (or target groups), by ARN.
    async fn elb_tags_of(
        &self,
        slug: &Slug,
        arns: Vec<String>,
    ) -> Result<Vec<(String, BTreeMap<String, String>)>, RuntimeError> {
        let mut out = Vec::new();
        // The ALB describes the tags of at most 20 resources at once.
        for chunk in arns.chunks(20) {
            let found = self
                .elb
                .describe_tags()
                .set_resource_arns(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| aws_error(slug, "read the rules' tags", e))?;
            for d in found.tag_descriptions() {
                let tags = d
                    .tags()
                    .iter()
                    .filter_map(|t| {
                        Some((
                            t.key()?.to_owned(),
                            t.value().unwrap_or_default().to_owned(),
                        ))
                    })
                    .collect();
                out.push((d.resource_arn().unwrap_or_default().to_owned(), tags));
            }
        }
        Ok(out)
    }

    /// The world's rules on the listener (one, unless something was cut
    /// off), found by their tags, and every rule of the listener.
    async fn world_rules(
        &self,
        slug: &Slug,
        listener: &str,
    ) -> Result<(Vec<Rule>, Vec<Rule>), RuntimeError> {
        let rules = self.rules(slug, listener).await?;
        let arns = rules
            .iter()
            .filter(|r| r.is_default() != Some(true))
            .filter_map(|r| r.rule_arn().map(str::to_owned))
            .collect();
        let tagged = self.elb_tags_of(slug, arns).await?;
        let mine: Vec<Rule> = rules
            .iter()
            .filter(|r| {
                tagged.iter().any(|(arn, tags)| {
                    Some(arn.as_str()) == r.rule_arn()
                        && objects::owner(&self.settings, tags).as_ref() == Some(slug)
                })
            })
            .cloned()
            .collect();
        Ok((mine, rules))
    }

    /// Points the world's host at `target` (its own target group, or the
    /// standby's), making its rule when it has none. Does nothing without
    /// a listener.
    pub(super) async fn route(
        &self,
        spec: &InstanceSpec,
        target: &str,
    ) -> Result<(), RuntimeError> {
        let Some(listener) = &self.settings.listener_arn else {
            return Ok(());
        };
        let slug = &spec.slug;
        let host = &spec.config.hostname;
        let (mine, rules) = self.world_rules(slug, listener).await?;
        if let Some(rule) = mine.first() {
            let pointed = rule
                .actions()
                .iter()
                .any(|a| a.target_group_arn() == Some(target));
            if !pointed || rule_for(std::slice::from_ref(rule), host).is_none() {
                self.elb
                    .modify_rule()
                    .set_rule_arn(rule.rule_arn().map(str::to_owned))
                    .conditions(host_is(host))
                    .actions(forward(target))
                    .send()
                    .await
                    .map_err(|e| aws_error(slug, "point the listener rule", e))?;
            }
            return Ok(());
        }
        // Another Tavern may take a priority between the list and the
        // make: the next free one is tried, a few times.
        let mut priority = free_priority(&rules, self.settings.rule_priority_from);
        for _ in 0..5 {
            let made = self
                .elb
                .create_rule()
                .listener_arn(listener)
                .priority(priority)
                .conditions(host_is(host))
                .actions(forward(target))
                .set_tags(Some(elb_tags(&self.settings, spec)))
                .send()
                .await;
            match made {
                Ok(_) => return Ok(()),
                Err(e) if code_of(&e) == Some(PRIORITY_IN_USE) => priority += 1,
                Err(e) => return Err(aws_error(slug, "make the listener rule", e)),
            }
        }
        Err(refused(
            slug,
            "every listener priority tried was taken meanwhile",
        ))
    }

    /// Points the world's rule (found by its tags) at `target`; `false`
    /// when it has none.
    pub(super) async fn point(&self, slug: &Slug, target: &str) -> Result<bool, RuntimeError> {
        let Some(listener) = &self.settings.listener_arn else {
            return Ok(false);
        };
        let (mine, _) = self.world_rules(slug, listener).await?;
        for rule in &mine {
            if rule
                .actions()
                .iter()
                .any(|a| a.target_group_arn() == Some(target))
            {
                continue;
            }
            self.elb
                .modify_rule()
                .set_rule_arn(rule.rule_arn().map(str::to_owned))
                .actions(forward(target))
                .send()
                .await
                .map_err(|e| aws_error(slug, "point the listener rule", e))?;
        }
        Ok(!mine.is_empty())
    }

    /// Deletes the world's rule and target group, where they are.
    pub(super) async fn unroute(&self, slug: &Slug) -> Result<(), RuntimeError> {
        if let Some(listener) = &self.settings.listener_arn {
            let (mine, _) = self.world_rules(slug, listener).await?;
            for rule in mine {
                self.elb
                    .delete_rule()
                    .set_rule_arn(rule.rule_arn().map(str::to_owned))
                    .send()
                    .await
                    .map_err(|e| aws_error(slug, "delete the listener rule", e))?;
            }
        }
        if let Some(arn) = self.target_group(slug).await? {
            self.elb
                .delete_target_group()
                .target_group_arn(arn)
                .send()
                .await
                .map_err(|e| aws_error(slug, "delete the target group", e))?;
        }
        Ok(())
    }
}

fn host_is(host: &str) -> RuleCondition {
    RuleCondition::builder()
        .field("host-header")
        .host_header_config(HostHeaderConditionConfig::builder().values(host).build())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(priority: &str, host: &str) -> Rule {
        Rule::builder()
            .priority(priority)
            .conditions(host_is(host))
            .build()
    }

    #[test]
    fn a_new_rule_takes_the_lowest_free_priority_from_the_first_allowed() {
        let rules = [
            rule("1000", "a.x"),
            rule("1001", "b.x"),
            rule("1003", "c.x"),
            rule("default", ""),
        ];
        assert_eq!(free_priority(&rules, 1000), 1002);
        assert_eq!(free_priority(&rules, 1), 1);
        assert_eq!(free_priority(&[], 1000), 1000);
    }

    #[test]
    fn a_world_s_rule_is_found_by_its_host_whatever_its_case() {
        let rules = [
            rule("1000", "alpha.example.org"),
            rule("1001", "beta.example.org"),
        ];
        assert_eq!(
            rule_for(&rules, "BETA.example.org").and_then(|r| r.priority()),
            Some("1001")
        );
        assert!(rule_for(&rules, "gamma.example.org").is_none());
    }
}

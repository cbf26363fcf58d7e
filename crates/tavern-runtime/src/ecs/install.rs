//! Tavern's own installation on AWS, as a CloudFormation template
//! (`tavern manifests install --aws`): the ECS cluster, EFS file system,
//! ALB with its HTTPS listener, security groups, log group, the roles with
//! the actions the ecs driver uses and no more, the sealing key in Secrets
//! Manager, and Tavern as a Fargate service configured for `runtime.kind =
//! "ecs"`. Built here without I/O; `cfn-lint` holds it to AWS's schemas.

use serde_json::{Value, json};

/// What the template is made for.
#[derive(Clone, Debug)]
pub struct AwsInstallOptions {
    /// Worlds live at `<slug>.<domain>`.
    pub domain: String,
    /// Tavern's image (in a registry ECS can pull from: ECR).
    pub image: String,
    /// Offer the `stub` release (Tavern's stand-in for Foundry).
    pub stub_release: bool,
}

fn reference(name: &str) -> Value {
    json!({ "Ref": name })
}

fn attribute(resource: &str, attr: &str) -> Value {
    json!({ "Fn::GetAtt": [resource, attr] })
}

fn sub(text: &str) -> Value {
    json!({ "Fn::Sub": text })
}

fn tags(name: &str) -> Value {
    json!([{ "Key": "Name", "Value": sub(&format!("${{AWS::StackName}}-{name}")) }])
}

/// A security group letting `ports` in from `from` (another group) or,
/// with `None`, from anywhere. EC2 takes no apostrophe in its description.
fn security_group(description: &str, rules: &[(u16, Option<&str>)]) -> Value {
    let ingress: Vec<Value> = rules
        .iter()
        .flat_map(|(port, from)| match from {
            Some(group) => vec![json!({
                "IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                "SourceSecurityGroupId": reference(group),
            })],
            None => vec![
                json!({"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "CidrIp": "0.0.0.0/0"}),
                json!({"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "CidrIpv6": "::/0"}),
            ],
        })
        .collect();
    json!({
        "Type": "AWS::EC2::SecurityGroup",
        "Properties": {
            "GroupDescription": description,
            "VpcId": reference("VpcId"),
            "SecurityGroupIngress": ingress,
        }
    })
}

/// What the ecs driver does, as IAM actions, by service: nothing else is
/// granted to Tavern's task.
const DRIVER_ACTIONS: &[&str] = &[
    "ecs:CreateService",
    "ecs:DeleteService",
    "ecs:DeregisterTaskDefinition",
    "ecs:DescribeServices",
    "ecs:DescribeTaskDefinition",
    "ecs:DescribeTasks",
    "ecs:ListServices",
    "ecs:ListTaskDefinitions",
    "ecs:ListTasks",
    "ecs:RegisterTaskDefinition",
    "ecs:RunTask",
    "ecs:StopTask",
    "ecs:TagResource",
    "ecs:UpdateService",
    "elasticfilesystem:CreateAccessPoint",
    "elasticfilesystem:DeleteAccessPoint",
    "elasticfilesystem:DescribeAccessPoints",
    "elasticfilesystem:TagResource",
    "elasticfilesystem:UntagResource",
    "elasticloadbalancing:AddTags",
    "elasticloadbalancing:CreateRule",
    "elasticloadbalancing:CreateTargetGroup",
    "elasticloadbalancing:DeleteRule",
    "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:ModifyRule",
];

/// The ecs driver's use of Secrets Manager: the worlds' seeds, under a
/// path of this installation's own.
const SEED_ACTIONS: &[&str] = &[
    "secretsmanager:CreateSecret",
    "secretsmanager:DeleteSecret",
    // A seed is written only when it changed.
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:TagResource",
];

/// Tavern's variables in its task: the `[ecs]` section from the stack's
/// own resources.
fn tavern_environment(options: &AwsInstallOptions) -> Value {
    let mut env = vec![
        ("TAVERN_SERVER_DOMAIN", json!(options.domain)),
        (
            "TAVERN_SERVER_PUBLIC_URL",
            json!(format!("https://{}", options.domain)),
        ),
        ("TAVERN_RUNTIME_KIND", json!("ecs")),
        ("TAVERN_ECS_REGION", sub("${AWS::Region}")),
        ("TAVERN_ECS_INSTALLATION", sub("${AWS::StackName}")),
        ("TAVERN_ECS_CLUSTER", reference("Cluster")),
        (
            "TAVERN_ECS_SUBNETS",
            sub("[\"${SubnetA}\", \"${SubnetB}\"]"),
        ),
        (
            "TAVERN_ECS_SECURITY_GROUPS",
            sub("[\"${WorldsSecurityGroup}\"]"),
        ),
        ("TAVERN_ECS_ASSIGN_PUBLIC_IP", reference("AssignPublicIp")),
        ("TAVERN_ECS_VPC_ID", reference("VpcId")),
        ("TAVERN_ECS_FILE_SYSTEM_ID", reference("FileSystem")),
        ("TAVERN_ECS_LISTENER_ARN", reference("HttpsListener")),
        (
            "TAVERN_ECS_STANDBY_TARGET_GROUP_ARN",
            reference("TavernTargetGroup"),
        ),
        (
            "TAVERN_ECS_EXECUTION_ROLE_ARN",
            attribute("ExecutionRole", "Arn"),
        ),
        ("TAVERN_ECS_TASK_ROLE_ARN", attribute("WorldRole", "Arn")),
        ("TAVERN_ECS_TAVERN_IMAGE", reference("TavernImage")),
        ("TAVERN_ECS_LOG_GROUP", reference("WorldsLogGroup")),
    ];
    if options.stub_release {
        env.push(("TAVERN_RUNTIME_STUB_RELEASE", json!("true")));
    }
    Value::Array(
        env.into_iter()
            .map(|(k, v)| json!({"Name": k, "Value": v}))
            .collect(),
    )
}

/// The template, as CloudFormation's JSON.
pub fn render(options: &AwsInstallOptions) -> Result<String, String> {
    if options.domain.trim().is_empty() || options.domain.contains(['/', ' ', ':']) {
        return Err(format!("{:?} is not a domain", options.domain));
    }
    let seeds = sub(
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:tavern/${AWS::StackName}/*",
    );
    let assume = |service: &str| {
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sts:AssumeRole",
            }]
        })
    };
    let mut resources = serde_json::Map::new();
    resources.insert(
        "Cluster".into(),
        json!({
            "Type": "AWS::ECS::Cluster",
            "Properties": {"ClusterSettings": [{"Name": "containerInsights", "Value": "disabled"}]},
        }),
    );
    resources.insert("TavernLogGroup".into(), json!({
                "Type": "AWS::Logs::LogGroup",
                "Properties": {"LogGroupName": sub("/tavern/${AWS::StackName}/tavern"), "RetentionInDays": 30},
            }));
    resources.insert("WorldsLogGroup".into(), json!({
                "Type": "AWS::Logs::LogGroup",
                "Properties": {"LogGroupName": sub("/tavern/${AWS::StackName}/worlds"), "RetentionInDays": 30},
            }));
    resources.insert(
        "SealingKey".into(),
        json!({
            "Type": "AWS::SecretsManager::Secret",
            "Properties": {
                "Description": "Tavern's sealing key: 64 hex digits (TAVERN_SEALING_KEY)",
                // Hex digits only: every letter past f and every
                // capital left out.
                "GenerateSecretString": {
                    "PasswordLength": 64,
                    "ExcludePunctuation": true,
                    "ExcludeUppercase": true,
                    "IncludeSpace": false,
                    "ExcludeCharacters": "ghijklmnopqrstuvwxyz",
                },
            },
        }),
    );
    resources.insert(
        "AlbSecurityGroup".into(),
        json!(security_group(
            "Tavern ALB: HTTP and HTTPS from anywhere",
            &[(80, None), (443, None)]
        )),
    );
    resources.insert(
        "TavernSecurityGroup".into(),
        json!(security_group(
            "Tavern: its port from the ALB",
            &[(8080, Some("AlbSecurityGroup"))]
        )),
    );
    resources.insert(
        "WorldsSecurityGroup".into(),
        json!(security_group(
            "Tavern worlds: Foundry port from the ALB and Tavern, the data agent port from Tavern",
            &[
                (30000, Some("AlbSecurityGroup")),
                (30000, Some("TavernSecurityGroup")),
                (8081, Some("TavernSecurityGroup"))
            ],
        )),
    );
    resources.insert(
        "FileSystemSecurityGroup".into(),
        json!(security_group(
            "Tavern EFS: NFS from the worlds and Tavern",
            &[
                (2049, Some("WorldsSecurityGroup")),
                (2049, Some("TavernSecurityGroup"))
            ],
        )),
    );
    resources.insert(
        "FileSystem".into(),
        json!({
            "Type": "AWS::EFS::FileSystem",
            "Properties": {
                "Encrypted": true,
                "FileSystemTags": tags("worlds"),
                "BackupPolicy": {"Status": "ENABLED"},
            },
        }),
    );
    resources.insert(
        "MountTargetA".into(),
        json!({
            "Type": "AWS::EFS::MountTarget",
            "Properties": {
                "FileSystemId": reference("FileSystem"),
                "SubnetId": reference("SubnetA"),
                "SecurityGroups": [reference("FileSystemSecurityGroup")],
            },
        }),
    );
    resources.insert(
        "MountTargetB".into(),
        json!({
            "Type": "AWS::EFS::MountTarget",
            "Properties": {
                "FileSystemId": reference("FileSystem"),
                "SubnetId": reference("SubnetB"),
                "SecurityGroups": [reference("FileSystemSecurityGroup")],
            },
        }),
    );
    resources.insert("TavernAccessPoint".into(), json!({
                "Type": "AWS::EFS::AccessPoint",
                "Properties": {
                    "FileSystemId": reference("FileSystem"),
                    "PosixUser": {"Uid": "65532", "Gid": "65532"},
                    "RootDirectory": {
                        "Path": "/tavern",
                        "CreationInfo": {"OwnerUid": "65532", "OwnerGid": "65532", "Permissions": "0700"},
                    },
                },
            }));
    resources.insert("LoadBalancer".into(), json!({
                "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
                "Properties": {
                    "Scheme": "internet-facing",
                    "Subnets": [reference("SubnetA"), reference("SubnetB")],
                    "SecurityGroups": [reference("AlbSecurityGroup")],
                    // Foundry's sockets stay open for a whole session.
                    "LoadBalancerAttributes": [{"Key": "idle_timeout.timeout_seconds", "Value": "3600"}],
                },
            }));
    resources.insert(
        "TavernTargetGroup".into(),
        json!({
            "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
            "Properties": {
                "Protocol": "HTTP",
                "Port": 8080,
                "TargetType": "ip",
                "VpcId": reference("VpcId"),
                "HealthCheckPath": "/healthz",
                "Matcher": {"HttpCode": "200"},
            },
        }),
    );
    resources.insert("HttpsListener".into(), json!({
                "Type": "AWS::ElasticLoadBalancingV2::Listener",
                "Properties": {
                    "LoadBalancerArn": reference("LoadBalancer"),
                    "Protocol": "HTTPS",
                    "Port": 443,
                    "Certificates": [{"CertificateArn": reference("CertificateArn")}],
                    "DefaultActions": [{"Type": "forward", "TargetGroupArn": reference("TavernTargetGroup")}],
                },
            }));
    resources.insert("HttpListener".into(), json!({
                "Type": "AWS::ElasticLoadBalancingV2::Listener",
                "Properties": {
                    "LoadBalancerArn": reference("LoadBalancer"),
                    "Protocol": "HTTP",
                    "Port": 80,
                    "DefaultActions": [{
                        "Type": "redirect",
                        "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"},
                    }],
                },
            }));
    resources.insert("ExecutionRole".into(), json!({
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "Description": "ECS pulls images, writes logs and reads the seeds and Tavern's secrets with it",
                    "AssumeRolePolicyDocument": assume("ecs-tasks.amazonaws.com"),
                    "ManagedPolicyArns": [sub("arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")],
                    "Policies": [{
                        "PolicyName": "secrets",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [{
                                "Effect": "Allow",
                                "Action": "secretsmanager:GetSecretValue",
                                "Resource": [seeds, reference("SealingKey"), reference("StoreUrlSecretArn")],
                            }],
                        },
                    }],
                },
            }));
    resources.insert("WorldRole".into(), json!({
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "Description": "The worlds' and data agents' tasks: their EFS mounts, nothing else",
                    "AssumeRolePolicyDocument": assume("ecs-tasks.amazonaws.com"),
                    "Policies": [{
                        "PolicyName": "efs",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [{
                                "Effect": "Allow",
                                "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                                "Resource": attribute("FileSystem", "Arn"),
                            }],
                        },
                    }],
                },
            }));
    resources.insert("TavernRole".into(), json!({
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "Description": "Tavern's task: the ecs driver's actions and no more",
                    "AssumeRolePolicyDocument": assume("ecs-tasks.amazonaws.com"),
                    "Policies": [{
                        "PolicyName": "ecs-driver",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {"Effect": "Allow", "Action": DRIVER_ACTIONS, "Resource": "*"},
                                {"Effect": "Allow", "Action": SEED_ACTIONS, "Resource": seeds},
                                {
                                    "Effect": "Allow",
                                    "Action": ["logs:GetLogEvents"],
                                    "Resource": sub("${WorldsLogGroup.Arn}"),
                                },
                                {
                                    "Effect": "Allow",
                                    "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                                    "Resource": attribute("FileSystem", "Arn"),
                                },
                                {
                                    "Effect": "Allow",
                                    "Action": "iam:PassRole",
                                    "Resource": [attribute("ExecutionRole", "Arn"), attribute("WorldRole", "Arn")],
                                    "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
                                },
                            ],
                        },
                    }],
                },
            }));
    resources.insert("TavernTaskDefinition".into(), json!({
                "Type": "AWS::ECS::TaskDefinition",
                "Properties": {
                    "Family": sub("${AWS::StackName}-tavern"),
                    "RequiresCompatibilities": ["FARGATE"],
                    "NetworkMode": "awsvpc",
                    "Cpu": "512",
                    "Memory": "1024",
                    "ExecutionRoleArn": attribute("ExecutionRole", "Arn"),
                    "TaskRoleArn": attribute("TavernRole", "Arn"),
                    "Volumes": [{
                        "Name": "data",
                        "EFSVolumeConfiguration": {
                            "FilesystemId": reference("FileSystem"),
                            "TransitEncryption": "ENABLED",
                            "AuthorizationConfig": {"AccessPointId": reference("TavernAccessPoint"), "IAM": "ENABLED"},
                        },
                    }],
                    "ContainerDefinitions": [{
                        "Name": "tavern",
                        "Image": reference("TavernImage"),
                        "Essential": true,
                        "Command": ["serve", "--listen=0.0.0.0:8080"],
                        "PortMappings": [{"ContainerPort": 8080, "Protocol": "tcp"}],
                        "Environment": tavern_environment(options),
                        "Secrets": [
                            {"Name": "TAVERN_STORE_URL", "ValueFrom": reference("StoreUrlSecretArn")},
                            {"Name": "TAVERN_SEALING_KEY", "ValueFrom": reference("SealingKey")},
                        ],
                        "MountPoints": [{"SourceVolume": "data", "ContainerPath": "/var/lib/tavern"}],
                        "ReadonlyRootFilesystem": true,
                        "StopTimeout": 60,
                        "LogConfiguration": {
                            "LogDriver": "awslogs",
                            "Options": {
                                "awslogs-group": reference("TavernLogGroup"),
                                "awslogs-region": sub("${AWS::Region}"),
                                "awslogs-stream-prefix": "tavern",
                            },
                        },
                    }],
                },
            }));
    resources.insert(
        "TavernService".into(),
        json!({
            "Type": "AWS::ECS::Service",
            "DependsOn": ["HttpsListener", "MountTargetA", "MountTargetB"],
            "Properties": {
                "Cluster": reference("Cluster"),
                "ServiceName": sub("${AWS::StackName}-tavern"),
                "TaskDefinition": reference("TavernTaskDefinition"),
                "LaunchType": "FARGATE",
                // One Tavern: it runs the worlds' reconciler.
                "DesiredCount": 1,
                "DeploymentConfiguration": {"MinimumHealthyPercent": 0, "MaximumPercent": 100},
                "HealthCheckGracePeriodSeconds": 120,
                "NetworkConfiguration": {
                    "AwsvpcConfiguration": {
                        "AssignPublicIp": {"Fn::If": ["PublicAddresses", "ENABLED", "DISABLED"]},
                        "Subnets": [reference("SubnetA"), reference("SubnetB")],
                        "SecurityGroups": [reference("TavernSecurityGroup")],
                    },
                },
                "LoadBalancers": [{
                    "ContainerName": "tavern",
                    "ContainerPort": 8080,
                    "TargetGroupArn": reference("TavernTargetGroup"),
                }],
            },
        }),
    );
    let template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!(
            "Tavern {} on ECS Fargate: worlds at <slug>.{} as Fargate services with their data on EFS, routed by an ALB",
            env!("CARGO_PKG_VERSION"),
            options.domain
        ),
        "Parameters": {
            "VpcId": {"Type": "AWS::EC2::VPC::Id", "Description": "The VPC of Tavern and its worlds"},
            "SubnetA": {"Type": "AWS::EC2::Subnet::Id", "Description": "A subnet of the VPC"},
            "SubnetB": {"Type": "AWS::EC2::Subnet::Id", "Description": "A subnet of the VPC in another availability zone (the ALB needs two)"},
            "AssignPublicIp": {
                "Type": "String", "AllowedValues": ["true", "false"], "Default": "true",
                "Description": "Give tasks public addresses (public subnets without a NAT gateway, to pull images)"
            },
            "CertificateArn": {"Type": "String", "Description": "An ACM certificate for the domain and *.domain"},
            "TavernImage": {"Type": "String", "Default": options.image, "Description": "Tavern's image in a registry ECS can pull from (ECR)"},
            "StoreUrlSecretArn": {"Type": "String", "Description": "A Secrets Manager secret holding Tavern's postgres:// URL"},
        },
        "Resources": resources,
        "Conditions": {
            "PublicAddresses": {"Fn::Equals": [reference("AssignPublicIp"), "true"]},
        },
        "Outputs": {
            "LoadBalancerDns": {
                "Description": "Point the domain and *.domain here (CNAME or alias)",
                "Value": attribute("LoadBalancer", "DNSName"),
            },
            "Cluster": {"Value": reference("Cluster")},
            "FileSystem": {"Value": reference("FileSystem")},
        },
    });
    serde_json::to_string_pretty(&template)
        .map(|t| t + "\n")
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> AwsInstallOptions {
        AwsInstallOptions {
            domain: "games.example.org".into(),
            image: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/tavern:1.0".into(),
            stub_release: false,
        }
    }

    #[test]
    fn tavern_is_configured_for_ecs_from_the_stack_s_own_resources() {
        let t: Value = serde_json::from_str(&render(&options()).unwrap()).unwrap();
        let tavern =
            &t["Resources"]["TavernTaskDefinition"]["Properties"]["ContainerDefinitions"][0];
        let env: Vec<&str> = tavern["Environment"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["Name"].as_str())
            .collect();
        for needed in [
            "TAVERN_RUNTIME_KIND",
            "TAVERN_ECS_SUBNETS",
            "TAVERN_ECS_FILE_SYSTEM_ID",
            "TAVERN_ECS_LISTENER_ARN",
            "TAVERN_ECS_EXECUTION_ROLE_ARN",
        ] {
            assert!(env.contains(&needed), "{needed}");
        }
        // Secrets come from Secrets Manager, never as plain variables.
        let secrets: Vec<&str> = tavern["Secrets"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["Name"].as_str())
            .collect();
        assert_eq!(secrets, ["TAVERN_STORE_URL", "TAVERN_SEALING_KEY"]);
        assert!(
            !env.iter()
                .any(|e| e.contains("KEY") || e.contains("STORE_URL"))
        );
        // Tavern's role passes only the worlds' two roles on.
        let statements = &t["Resources"]["TavernRole"]["Properties"]["Policies"][0]["PolicyDocument"]
            ["Statement"];
        let pass = statements
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Action"] == "iam:PassRole")
            .unwrap();
        assert_eq!(pass["Resource"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_bad_domain_is_refused() {
        for bad in ["", "a b", "https://x"] {
            let o = AwsInstallOptions {
                domain: bad.into(),
                ..options()
            };
            assert!(render(&o).is_err(), "{bad:?}");
        }
    }
}

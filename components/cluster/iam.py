"""IAM policy documents for the clusters, built as plain JSON (no get_policy_document invoke).

IRSA (IAM roles for service accounts) trust policies are scoped to exactly one Kubernetes
service account: the role can be assumed only with a token the cluster's OIDC issuer minted for
`system:serviceaccount:<namespace>:<name>`, audience sts.amazonaws.com.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pulumi

STS_AUDIENCE = "sts.amazonaws.com"


def partition(region: str) -> str:
    """The AWS partition a region belongs to (managed policy ARNs differ per partition)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def managed_policy_arn(region: str, name: str) -> str:
    """The ARN of an AWS managed policy (`service-role/AmazonEBSCSIDriverPolicy`, ...)."""
    return f"arn:{partition(region)}:iam::aws:policy/{name}"


def service_trust_policy(service: str) -> str:
    """A trust policy that lets one AWS service (eks.amazonaws.com, ec2.amazonaws.com) assume a role."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


def irsa_trust_policy(
    provider_arn: pulumi.Input[str], issuer_url: pulumi.Input[str], namespace: str, service_account: str
) -> pulumi.Output[str]:
    """A web-identity trust policy for exactly one service account of one cluster."""

    def render(args: Sequence[Any]) -> str:
        arn, issuer = args
        host = str(issuer).removeprefix("https://")
        return json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": arn},
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {
                            "StringEquals": {
                                f"{host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                                f"{host}:aud": STS_AUDIENCE,
                            }
                        },
                    }
                ],
            }
        )

    return pulumi.Output.all(provider_arn, issuer_url).apply(render)


def cluster_autoscaler_policy(cluster_name: str) -> str:
    """What cluster-autoscaler needs on AWS: read everywhere, resize only this cluster's groups."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Discover",
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:DescribeAutoScalingGroups",
                        "autoscaling:DescribeAutoScalingInstances",
                        "autoscaling:DescribeLaunchConfigurations",
                        "autoscaling:DescribeScalingActivities",
                        "autoscaling:DescribeTags",
                        "ec2:DescribeImages",
                        "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplateVersions",
                        "ec2:GetInstanceTypesFromInstanceRequirements",
                        "eks:DescribeNodegroup",
                    ],
                    "Resource": "*",
                },
                {
                    "Sid": "ResizeOwnGroups",
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:SetDesiredCapacity",
                        "autoscaling:TerminateInstanceInAutoScalingGroup",
                    ],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}
                    },
                },
            ],
        }
    )


def load_balancer_controller_policy() -> str:
    """What the AWS Load Balancer Controller needs to run NLBs/ALBs for this cluster's Services.

    Reads are account-wide (the controller discovers subnets, security groups, certificates);
    changes to balancers, target groups and security groups are limited to resources tagged as
    created by a controller (`elbv2.k8s.aws/cluster`), the way the controller tags what it makes.
    """
    owned = {"Null": {"aws:ResourceTag/elbv2.k8s.aws/cluster": "false"}}
    tagging_on_create = {"Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "false"}}
    # Tags of an owned resource may change, but never the ownership tag itself: otherwise the
    # controller could tag any balancer or security group of the account as its own, then delete it.
    retag_owned = {
        "Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "true", "aws:ResourceTag/elbv2.k8s.aws/cluster": "false"}
    }
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ServiceLinkedRole",
                    "Effect": "Allow",
                    "Action": "iam:CreateServiceLinkedRole",
                    "Resource": "*",
                    "Condition": {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}},
                },
                {
                    "Sid": "Describe",
                    "Effect": "Allow",
                    "Action": [
                        "ec2:DescribeAccountAttributes",
                        "ec2:DescribeAddresses",
                        "ec2:DescribeAvailabilityZones",
                        "ec2:DescribeInternetGateways",
                        "ec2:DescribeVpcs",
                        "ec2:DescribeVpcPeeringConnections",
                        "ec2:DescribeSubnets",
                        "ec2:DescribeSecurityGroups",
                        "ec2:DescribeInstances",
                        "ec2:DescribeNetworkInterfaces",
                        "ec2:DescribeTags",
                        "ec2:DescribeCoipPools",
                        "ec2:GetCoipPoolUsage",
                        "ec2:DescribeRouteTables",
                        "ec2:DescribeIpamPools",
                        "ec2:GetSecurityGroupsForVpc",
                        "elasticloadbalancing:Describe*",
                        "acm:ListCertificates",
                        "acm:DescribeCertificate",
                        "iam:ListServerCertificates",
                        "iam:GetServerCertificate",
                        "cognito-idp:DescribeUserPoolClient",
                        "waf-regional:GetWebACL",
                        "waf-regional:GetWebACLForResource",
                        "wafv2:GetWebACL",
                        "wafv2:GetWebACLForResource",
                        "shield:GetSubscriptionState",
                        "shield:DescribeProtection",
                    ],
                    "Resource": "*",
                },
                {
                    "Sid": "SecurityGroupIngress",
                    "Effect": "Allow",
                    "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
                    "Resource": "*",
                },
                {
                    "Sid": "CreateSecurityGroup",
                    "Effect": "Allow",
                    "Action": "ec2:CreateSecurityGroup",
                    "Resource": "*",
                },
                {
                    "Sid": "TagNewSecurityGroup",
                    "Effect": "Allow",
                    "Action": "ec2:CreateTags",
                    "Resource": "arn:*:ec2:*:*:security-group/*",
                    "Condition": {
                        "StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"},
                        **tagging_on_create,
                    },
                },
                {
                    "Sid": "RetagOwnSecurityGroups",
                    "Effect": "Allow",
                    "Action": ["ec2:CreateTags", "ec2:DeleteTags"],
                    "Resource": "arn:*:ec2:*:*:security-group/*",
                    "Condition": retag_owned,
                },
                {
                    "Sid": "ManageOwnSecurityGroups",
                    "Effect": "Allow",
                    "Action": [
                        "ec2:AuthorizeSecurityGroupIngress",
                        "ec2:RevokeSecurityGroupIngress",
                        "ec2:DeleteSecurityGroup",
                    ],
                    "Resource": "*",
                    "Condition": owned,
                },
                {
                    "Sid": "CreateBalancers",
                    "Effect": "Allow",
                    "Action": ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"],
                    "Resource": "*",
                    "Condition": tagging_on_create,
                },
                {
                    "Sid": "Listeners",
                    "Effect": "Allow",
                    "Action": [
                        "elasticloadbalancing:CreateListener",
                        "elasticloadbalancing:DeleteListener",
                        "elasticloadbalancing:CreateRule",
                        "elasticloadbalancing:DeleteRule",
                        "elasticloadbalancing:ModifyListener",
                        "elasticloadbalancing:AddListenerCertificates",
                        "elasticloadbalancing:RemoveListenerCertificates",
                        "elasticloadbalancing:ModifyRule",
                        "elasticloadbalancing:SetWebAcl",
                    ],
                    "Resource": "*",
                },
                {
                    "Sid": "RetagOwnBalancers",
                    "Effect": "Allow",
                    "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
                    "Resource": [
                        "arn:*:elasticloadbalancing:*:*:targetgroup/*/*",
                        "arn:*:elasticloadbalancing:*:*:loadbalancer/net/*/*",
                        "arn:*:elasticloadbalancing:*:*:loadbalancer/app/*/*",
                    ],
                    "Condition": retag_owned,
                },
                {
                    "Sid": "TagListeners",
                    "Effect": "Allow",
                    "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
                    "Resource": [
                        "arn:*:elasticloadbalancing:*:*:listener/net/*/*/*",
                        "arn:*:elasticloadbalancing:*:*:listener/app/*/*/*",
                        "arn:*:elasticloadbalancing:*:*:listener-rule/net/*/*/*",
                        "arn:*:elasticloadbalancing:*:*:listener-rule/app/*/*/*",
                    ],
                },
                {
                    "Sid": "TagOnCreate",
                    "Effect": "Allow",
                    "Action": "elasticloadbalancing:AddTags",
                    "Resource": [
                        "arn:*:elasticloadbalancing:*:*:targetgroup/*/*",
                        "arn:*:elasticloadbalancing:*:*:loadbalancer/net/*/*",
                        "arn:*:elasticloadbalancing:*:*:loadbalancer/app/*/*",
                    ],
                    "Condition": {
                        "StringEquals": {
                            "elasticloadbalancing:CreateAction": ["CreateTargetGroup", "CreateLoadBalancer"]
                        },
                        **tagging_on_create,
                    },
                },
                {
                    "Sid": "ManageOwnBalancers",
                    "Effect": "Allow",
                    "Action": [
                        "elasticloadbalancing:ModifyLoadBalancerAttributes",
                        "elasticloadbalancing:SetIpAddressType",
                        "elasticloadbalancing:SetSecurityGroups",
                        "elasticloadbalancing:SetSubnets",
                        "elasticloadbalancing:DeleteLoadBalancer",
                        "elasticloadbalancing:ModifyTargetGroup",
                        "elasticloadbalancing:ModifyTargetGroupAttributes",
                        "elasticloadbalancing:DeleteTargetGroup",
                        "elasticloadbalancing:ModifyListenerAttributes",
                        "elasticloadbalancing:ModifyCapacityReservation",
                        "elasticloadbalancing:ModifyIpPools",
                    ],
                    "Resource": "*",
                    "Condition": owned,
                },
                {
                    "Sid": "RegisterTargets",
                    "Effect": "Allow",
                    "Action": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
                    "Resource": "arn:*:elasticloadbalancing:*:*:targetgroup/*/*",
                },
            ],
        }
    )

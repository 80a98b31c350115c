"""scaleplane's policy rules as plain functions over plain data.

Used two ways: policy/__main__.py wraps each rule in a pulumi_policy policy for
`pulumi preview --policy-pack policy`, and the offline plan calls `evaluate` on the resources
its mock run recorded. Only relative imports inside this package, so it imports both as
`scaleplane_policy` (from policy/) and as `policy.scaleplane_policy` (from the project root).
"""

from .config import LEVELS, EffectiveConfig, PolicyConfigError, PolicySettings
from .engine import Violation, evaluate, has_mandatory, report, summarize, validate_config
from .kube import KubeObject
from .policies import BY_NAME, POLICIES, Policy
from .values import MOCKRUN_UNKNOWN, UNKNOWN

__all__ = [
    "BY_NAME",
    "LEVELS",
    "MOCKRUN_UNKNOWN",
    "POLICIES",
    "UNKNOWN",
    "EffectiveConfig",
    "KubeObject",
    "Policy",
    "PolicyConfigError",
    "PolicySettings",
    "Violation",
    "evaluate",
    "has_mandatory",
    "report",
    "summarize",
    "validate_config",
]

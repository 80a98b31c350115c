"""Where a stack lives and how it is opened: the project directory, the backend, the stack's settings
file, its policy pack, its secrets provider, and `open_stack`.

Two module attributes are the seams tests use (set them on this module, `deploy.automation.workspace`):
`PROJECT_DIR`, the project the driver runs, and `stack_factory`, how a stack is opened (tests put an
in-process fake there, `FakeStack.factory`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

from pulumi import automation as auto

from deploy import project
from deploy.automation.exits import EXIT_SETUP, DriverError, error_line

PRODUCTION_STACK = "prod"

#: The project the driver runs; tests point it at a copy.
PROJECT_DIR: Path = project.PROJECT_DIR


class StackLike(Protocol):
    """The part of `pulumi.automation.Stack` the driver (and the blue/green driver) uses."""

    @property
    def name(self) -> str: ...

    def preview(self, **kwargs: Any) -> auto.PreviewResult: ...

    def up(self, **kwargs: Any) -> auto.UpResult: ...

    def refresh(self, **kwargs: Any) -> auto.RefreshResult: ...

    def destroy(self, **kwargs: Any) -> auto.DestroyResult: ...

    def outputs(self) -> auto.OutputMap: ...

    def get_config(self, key: str, *, path: bool = False) -> auto.ConfigValue: ...

    def set_config(self, key: str, value: auto.ConfigValue, *, path: bool = False) -> None: ...

    def remove_config(self, key: str, *, path: bool = False) -> None: ...

    def export_stack(self) -> auto.Deployment: ...


class StackFactory(Protocol):
    def __call__(
        self, stack_name: str, *, create: bool, work_dir: Path, backend_url: str, secrets_provider: Optional[str]
    ) -> StackLike: ...


# --- where things are ---------------------------------------------------------------------------


def default_backend_url(project_dir: Optional[Path] = None) -> str:
    return f"file://{(project_dir or PROJECT_DIR) / '.pulumi-state'}"


def backend_url(project_dir: Optional[Path] = None) -> str:
    """PULUMI_BACKEND_URL, or a file backend inside the project (git-ignored)."""
    return os.environ.get("PULUMI_BACKEND_URL") or default_backend_url(project_dir)


def stack_document(stack_name: str, project_dir: Optional[Path] = None) -> dict[str, Any]:
    """The stack's settings file (stacks/Pulumi.<stack>.yaml); an unknown stack is a setup error."""
    project_dir = project_dir or PROJECT_DIR
    path = project.stack_config_path(stack_name, project_dir)
    if not path.is_file():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in path.parent.glob("Pulumi.*.yaml"))
        raise DriverError(
            f"unknown stack {stack_name!r}: no {path.relative_to(project_dir)} (stacks: {', '.join(known)})",
            EXIT_SETUP,
        )
    try:
        # Read as the plan and the Pulumi CLI read it (deploy.stackyaml): a tag, a recursive alias
        # or deep nesting is one line naming the key, not a traceback.
        return project.mapping_file(path, project_dir)
    except project.StackConfigError as err:
        raise DriverError(str(err), EXIT_SETUP) from None


def is_production(stack_name: str, project_dir: Optional[Path] = None) -> bool:
    """A stack named prod, or one whose config says scaleplane:production: true."""
    if stack_name == PRODUCTION_STACK:
        return True
    namespace = project.project_file(project_dir or PROJECT_DIR)["name"]
    value = (stack_document(stack_name, project_dir).get("config") or {}).get(f"{namespace}:production")
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


@dataclass(frozen=True)
class PolicyPack:
    """The policy pack to attach: its directory and, when present, this stack's config file."""

    path: Path
    config: Optional[Path]

    def preview_args(self) -> dict[str, list[str]]:
        args = {"policy_packs": [str(self.path)]}
        if self.config is not None:
            args["policy_pack_configs"] = [str(self.config)]
        return args


def policy_pack_for(stack_name: str, project_dir: Optional[Path] = None) -> PolicyPack:
    """policy/ (must hold PulumiPolicy.yaml) with policy/config/<stack>.json when that file exists."""
    directory = (project_dir or PROJECT_DIR) / "policy"
    if not (directory / "PulumiPolicy.yaml").is_file():
        raise DriverError(
            f"no policy pack at {directory} (PulumiPolicy.yaml is missing); pass --no-policy to run without it",
            EXIT_SETUP,
        )
    config = directory / "config" / f"{stack_name}.json"
    return PolicyPack(path=directory, config=config if config.is_file() else None)


SELF_MANAGED_SCHEMES = ("file://", "s3://", "gs://", "azblob://", "postgres://")


def secrets_provider_for(
    stack_name: str, explicit: Optional[str], backend: str, project_dir: Optional[Path] = None
) -> str:
    """The secrets provider a stack will use: the one its stack file records (an existing stack keeps
    it, whatever --secrets-provider says), else --secrets-provider, else the backend's default."""
    document = stack_document(stack_name, project_dir)
    if document.get("secretsprovider"):
        return str(document["secretsprovider"])
    if document.get("encryptionsalt"):
        return "passphrase"
    if explicit:
        return explicit
    if backend.startswith(SELF_MANAGED_SCHEMES):
        return "passphrase"
    return "service"


def require_secrets(provider: str, environ: Optional[Mapping[str, str]] = None) -> None:
    """The passphrase provider needs PULUMI_CONFIG_PASSPHRASE or a readable PULUMI_CONFIG_PASSPHRASE_FILE."""
    if provider != "passphrase":
        return
    environ = os.environ if environ is None else environ
    if "PULUMI_CONFIG_PASSPHRASE" in environ:
        return
    passphrase_file = environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")
    if passphrase_file:
        if not os.access(passphrase_file, os.R_OK) or not Path(passphrase_file).is_file():
            raise DriverError(f"PULUMI_CONFIG_PASSPHRASE_FILE={passphrase_file} is not a readable file", EXIT_SETUP)
        return
    raise DriverError(
        "the passphrase secrets provider needs PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE "
        "(or create the stack with --secrets-provider, e.g. awskms://alias/scaleplane)",
        EXIT_SETUP,
    )


def local_stack(
    stack_name: str, *, create: bool, work_dir: Path, backend_url: str, secrets_provider: Optional[str]
) -> StackLike:
    """The real stack: a LocalWorkspace on the project directory, through the Pulumi CLI."""
    if shutil.which("pulumi") is None:
        raise DriverError(
            "the Pulumi CLI is not on PATH: install it (https://www.pulumi.com/docs/install/); "
            "`python -m deploy plan` works without it",
            EXIT_SETUP,
        )
    if backend_url == default_backend_url(work_dir):
        (work_dir / ".pulumi-state").mkdir(exist_ok=True)
    options = auto.LocalWorkspaceOptions(
        env_vars={"PULUMI_BACKEND_URL": backend_url},
        secrets_provider=secrets_provider,
    )
    select = auto.create_or_select_stack if create else auto.select_stack
    return select(stack_name, work_dir=str(work_dir), opts=options)


#: How stacks are opened. Tests put a FakeStack factory here.
stack_factory: StackFactory = local_stack


class PolicyStack:
    """A stack whose previews and updates run the policy pack (refresh and destroy take none).

    Everything else is passed through to the wrapped stack; `.stack` is the wrapped one.
    """

    def __init__(self, stack: StackLike, policy: Optional[PolicyPack]):
        self.stack = stack
        self.policy = policy

    @property
    def name(self) -> str:
        return self.stack.name

    def _with_policy(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The caller's policy packs plus ours. The CLI pairs configs with packs by position, so either
        every pack has a config or none has (a pack without one cannot sit beside one with one)."""
        if self.policy is None:
            return kwargs
        packs = list(kwargs.get("policy_packs") or [])
        configs = list(kwargs.get("policy_pack_configs") or [])
        ours = self.policy.preview_args()
        if (configs or "policy_pack_configs" in ours) and (
            len(configs) != len(packs) or "policy_pack_configs" not in ours
        ):
            raise ValueError(
                f"policy packs {packs} and {self.policy.path} cannot run together: pass one config per pack "
                f"(policy_pack_configs) or none; the stack's pack has {'a' if self.policy.config else 'no'} config"
            )
        kwargs["policy_packs"] = packs + ours["policy_packs"]
        if "policy_pack_configs" in ours:
            kwargs["policy_pack_configs"] = configs + ours["policy_pack_configs"]
        return kwargs

    def preview(self, **kwargs: Any) -> auto.PreviewResult:
        return self.stack.preview(**self._with_policy(kwargs))

    def up(self, **kwargs: Any) -> auto.UpResult:
        return self.stack.up(**self._with_policy(kwargs))

    def refresh(self, **kwargs: Any) -> auto.RefreshResult:
        return self.stack.refresh(**kwargs)

    def destroy(self, **kwargs: Any) -> auto.DestroyResult:
        return self.stack.destroy(**kwargs)

    def outputs(self) -> auto.OutputMap:
        return self.stack.outputs()

    def get_config(self, key: str, *, path: bool = False) -> auto.ConfigValue:
        return self.stack.get_config(key, path=path)

    def set_config(self, key: str, value: auto.ConfigValue, *, path: bool = False) -> None:
        self.stack.set_config(key, value, path=path)

    def remove_config(self, key: str, *, path: bool = False) -> None:
        self.stack.remove_config(key, path=path)

    def export_stack(self) -> auto.Deployment:
        return self.stack.export_stack()


def open_stack(
    stack_name: str,
    *,
    policy: bool = True,
    create: bool = False,
    secrets_provider: Optional[str] = None,
) -> PolicyStack:
    """Open `stack_name` of this project, ready to run.

    - `policy`: attach the policy pack in policy/ (and policy/config/<stack>.json) to preview and up.
    - `create`: create the stack in the backend if it is not there yet (preview and up do; refresh,
      destroy and outputs need an existing stack).
    - `secrets_provider`: used when the stack is created; an existing stack keeps the provider
      recorded in its stack file.

    The backend is PULUMI_BACKEND_URL (default: a file backend inside the project). Raises
    DriverError (one line, an exit code) for an unknown stack, a missing policy pack, a missing
    passphrase, a missing Pulumi CLI, or a stack the backend does not have.
    """
    stack_document(stack_name)  # unknown stack: fail before anything else
    pack = policy_pack_for(stack_name) if policy else None
    backend = backend_url()
    require_secrets(secrets_provider_for(stack_name, secrets_provider, backend))
    try:
        stack = stack_factory(
            stack_name, create=create, work_dir=PROJECT_DIR, backend_url=backend, secrets_provider=secrets_provider
        )
    except auto.StackNotFoundError as err:
        raise DriverError(
            f"stack {stack_name!r} does not exist in {backend}; `python -m deploy up --stack {stack_name}` creates it",
            EXIT_SETUP,
        ) from err
    except auto.CommandError as err:
        raise DriverError(f"cannot open stack {stack_name!r}: {error_line(err)}", EXIT_SETUP) from err
    except (auto.InvalidVersionError, OSError) as err:
        raise DriverError(f"cannot run the Pulumi CLI: {error_line(err)}", EXIT_SETUP) from err
    return PolicyStack(stack, pack)

"""Who may do what: OpenStack's oslo.policy rules over the validated token.

Every protected endpoint names one rule. The defaults below are registered in code and
written out by ``oslopolicy-sample-generator --namespace fiwareglancesync`` (the
``oslo.policy.policies`` entry point), and an operator's policy file (``[glancesync]
POLICY_FILE``) overrides any of them. The rules see two dictionaries:

* the credentials, built only from what Keystone said about the token (never from a
  request header): ``user_id``, ``user_domain_id``, ``project_id``,
  ``project_domain_id``, ``roles``, ``system_scope``;
* the target, built from the settings: ``role`` (ROLE), ``service_project_id`` (the
  project of the service's own credential), and ``system_scope_allowed``
  (``"True"`` when ALLOW_SYSTEM_SCOPE is on).

A domain-scoped or unscoped token is refused before any rule is asked: it carries roles
on no project, so whatever a policy file says it cannot be an admin of GlanceSync.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg
from oslo_policy import _checks
from oslo_policy import policy as oslo

from fiwareglancesync.app.auth import Identity
from fiwareglancesync.app.settings import SettingsError

STATUS_READ = "glancesync:status:get"
SYNC_START = "glancesync:sync:start"
TASK_READ = "glancesync:task:get"
TASK_DELETE = "glancesync:task:delete"

logger = logging.getLogger(__name__)


@oslo.register("allowed_project")
class AllowedProjectCheck(_checks.Check):
    """``allowed_project:True``: the token's project is the service's or a listed one.

    A check of its own because oslo.policy's generic checks compare one value with one
    value, and ALLOWED_PROJECTS is a list.
    """

    def __call__(
        self, target: dict[str, Any], creds: dict[str, Any], enforcer: Any, current_rule=None
    ) -> bool:
        project = creds.get("project_id")
        return bool(project) and project in target.get("allowed_project_ids", ())


def _base_rules() -> list[oslo.RuleDefault]:
    return [
        oslo.RuleDefault(
            "glancesync:project_admin",
            "role:%(role)s and allowed_project:True",
            "The ROLE setting's role on the project of the service's own credential or "
            "on a project listed in ALLOWED_PROJECTS.",
        ),
        oslo.RuleDefault(
            "glancesync:system_admin",
            "role:%(role)s and system_scope:all and 'True':%(system_scope_allowed)s",
            "The ROLE setting's role on a system-scoped token, when ALLOW_SYSTEM_SCOPE is on.",
        ),
        oslo.RuleDefault(
            "glancesync:admin",
            "rule:glancesync:project_admin or rule:glancesync:system_admin",
            "Who is an administrator of GlanceSync; every endpoint's default.",
        ),
    ]


def _endpoint(name: str, description: str, operations: list[tuple[str, str]]) -> Any:
    return oslo.DocumentedRuleDefault(
        name,
        "rule:glancesync:admin",
        description,
        [{"method": method, "path": path} for method, path in operations],
    )


def list_rules() -> list[oslo.RuleDefault]:
    """Every default rule (the ``oslo.policy.policies`` entry point)."""
    return [
        *_base_rules(),
        _endpoint(
            STATUS_READ,
            "Read the sync status of every region or of one region.",
            [("GET", "/status"), ("GET", "/status.json"), ("GET", "/regions/{region}")],
        ),
        _endpoint(
            SYNC_START,
            "Start a sync of a region (or join the running one).",
            [("POST", "/regions/{region}")],
        ),
        _endpoint(TASK_READ, "Read a sync task.", [("GET", "/regions/{region}/tasks/{taskId}")]),
        _endpoint(
            TASK_DELETE,
            "Delete a finished sync task.",
            [("DELETE", "/regions/{region}/tasks/{taskId}")],
        ),
    ]


def credentials(identity: Identity) -> dict[str, Any]:
    """What the rules may know of the caller: Keystone's word about the token only."""
    return {
        "user_id": identity.user_id,
        "user_domain_id": identity.user_domain_id,
        "project_id": identity.project_id,
        "project_domain_id": identity.project_domain_id,
        "roles": sorted(identity.roles),
        "system_scope": "all" if identity.system_scoped else None,
    }


# What oslo.policy raises for a file it cannot read: OSError, ValueError (not YAML or
# JSON), AttributeError or TypeError (YAML that is not a mapping of rules).
_UNREADABLE = (OSError, ValueError, AttributeError, TypeError)


def _reason(error: Exception) -> str:
    text = str(error) if isinstance(error, (OSError, ValueError)) else ""
    return text.splitlines()[0] if text else "not a mapping of rule names to rules"


class Policy:
    """One enforcer per application: the defaults, then the operator's file if any."""

    def __init__(
        self,
        role: str,
        policy_file: str | None = None,
        allowed_projects: Sequence[str] = (),
        allow_system_scope: bool = False,
    ):
        conf = cfg.ConfigOpts()
        conf([], project="glancesync", default_config_files=[])
        rules = list_rules()
        if policy_file:
            # Absolute: oslo.config looks for a relative name in ~/.glancesync, ~, /etc/glancesync
            # and /etc, not in the directory the settings checked. The file is read again
            # whenever it changes (oslo.policy compares its mtime at each check).
            self.enforcer = oslo.Enforcer(conf, policy_file=os.path.abspath(policy_file))
        else:
            # No file named: the defaults only. Left to itself, oslo.policy would look for a
            # policy.yaml in those same directories and take whatever it found there.
            self.enforcer = oslo.Enforcer(conf, use_conf=False)
        # Nor a policy.d directory found there: only the file the operator named counts.
        conf.set_override("policy_dirs", [], group="oslo_policy")
        self.enforcer.register_defaults(rules)
        if policy_file:
            self._read(policy_file)
        else:
            self.enforcer.set_rules(oslo.Rules({rule.name: rule.check for rule in rules}))
        self.role = role
        self.allowed_projects = tuple(allowed_projects)
        self.allow_system_scope = allow_system_scope

    def _read(self, policy_file: str) -> None:
        """Read the operator's file now, so that one that cannot be read stops the start
        with one line rather than failing every request."""
        try:
            self.enforcer.load_rules()
        except _UNREADABLE as error:
            raise SettingsError(
                [f"[glancesync] POLICY_FILE = {policy_file} cannot be read: {_reason(error)}"]
            ) from None

    def target(self, service_project_id: str | None) -> dict[str, Any]:
        allowed = [*self.allowed_projects, *([service_project_id] if service_project_id else [])]
        return {
            "role": self.role,
            "service_project_id": service_project_id or "",
            "allowed_project_ids": allowed,
            "system_scope_allowed": str(self.allow_system_scope),
        }

    def allows(self, rule: str, identity: Identity, service_project_id: str | None) -> bool:
        if not (identity.project_id or identity.system_scoped):
            return False  # domain-scoped or unscoped: never, whatever the file says
        target, creds = self.target(service_project_id), credentials(identity)
        try:
            return bool(self.enforcer.enforce(rule, target, creds))
        except _UNREADABLE as error:
            # An edit that cannot be read: oslo.policy keeps the rules it had and notes
            # the file's new mtime, so the same check asked again uses the last good rules.
            logger.error(
                "POLICY_FILE %s cannot be read (%s): the rules read before stay in force",
                self.enforcer.policy_path,
                _reason(error),
            )
            return bool(self.enforcer.enforce(rule, target, creds))

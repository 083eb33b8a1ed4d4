"""The ``OS_*`` environment variables, as OpenStack's own command-line clients read them.

One table for both users of them: the command line fills the missing pieces of
``[master]``'s credential from it, and the service the missing ``[openstack]`` settings.
Nothing here reads ``os.environ``: the caller passes the environment in.
"""

from __future__ import annotations

from collections.abc import Mapping

REGION_VARIABLE = "OS_REGION_NAME"
# Only the service reads it (its INSECURE setting); a target's insecure comes from the file.
INSECURE_VARIABLE = "OS_INSECURE"

# Credential piece (named as the configuration option) -> its variables, first set wins.
CREDENTIAL_VARIABLES: dict[str, tuple[str, ...]] = {
    "user": ("OS_USERNAME",),
    "password": ("OS_PASSWORD",),
    "keystone_url": ("OS_AUTH_URL",),
    "tenant": ("OS_PROJECT_NAME", "OS_TENANT_NAME"),
    "user_domain_name": ("OS_USER_DOMAIN_NAME",),
    "project_domain_name": ("OS_PROJECT_DOMAIN_NAME",),
    "cacert": ("OS_CACERT",),
    "tenant_id": ("OS_PROJECT_ID", "OS_TENANT_ID"),
}


def from_environment(piece: str, environ: Mapping[str, str]) -> str | None:
    """The value of the first variable of ``piece`` that is set and not empty, or None."""
    return next((environ[name] for name in CREDENTIAL_VARIABLES[piece] if environ.get(name)), None)

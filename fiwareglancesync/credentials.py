"""How a target, or the service, authenticates to Keystone: any keystoneauth plugin.

Three ways of saying it end in the same :class:`Credential`, a keystoneauth plugin name
and that plugin's options:

* the lines GlanceSync has always read (``credential = user,base64(password),url,project``
  or ``user``/``password``/``keystone_url``/``tenant``): the ``v3password`` plugin;
* ``auth_type = PLUGIN`` with the plugin's own option names, as keystoneauth1.loading
  lists them (``application_credential_id``, ``application_credential_secret``,
  ``token``, ``client_id``…), so that no plugin needs code of ours;
* ``cloud = NAME``: an entry of ``clouds.yaml`` (``secure.yaml`` merged), read by
  openstacksdk's own loader exactly where openstackclient looks for it.

Nothing here talks to Keystone: the facade and the service turn a Credential into a
keystoneauth plugin with :func:`auth_plugin` when they first need a token. Options are
kept out of ``repr`` so that no secret reaches a log line through a dataclass.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PASSWORD_PLUGIN = "v3password"
PASSWORD_PLUGINS = frozenset({PASSWORD_PLUGIN, "password"})
APPLICATION_CREDENTIAL_PLUGIN = "v3applicationcredential"
DEFAULT_DOMAIN = "Default"
DEFAULT_INTERFACE = "public"
# GlanceSync's historic option names for the options keystoneauth calls otherwise.
ALIASES = {"keystone_url": "auth_url", "user": "username", "tenant": "project_name"}
CLOUD_FILE_VARIABLE = "OS_CLIENT_CONFIG_FILE"
SECURE_FILE_VARIABLE = "OS_CLIENT_SECURE_FILE"
CLOUD_VARIABLE = "OS_CLOUD"
AUTH_TYPE_VARIABLE = "OS_AUTH_TYPE"


class CredentialProblem(ValueError):
    """A credential that cannot work, said in one line (the caller adds where it is)."""


@dataclass(frozen=True)
class Credential:
    """A keystoneauth plugin name and its options, with the TLS and catalog settings.

    ``options`` holds everything the plugin is given, ``auth_url`` included; secrets
    among them are never shown by ``repr``. ``cloud`` names the clouds.yaml entry the
    credential came from, if any.
    """

    auth_type: str
    options: tuple[tuple[str, str], ...] = field(repr=False)
    cacert: str | None = None
    insecure: bool = False
    interface: str = DEFAULT_INTERFACE
    cloud: str | None = None
    client_cert: str | tuple[str, str] | None = field(default=None, repr=False)

    @classmethod
    def with_password(
        cls,
        user: str,
        password: str,
        auth_url: str,
        project_name: str,
        user_domain_name: str = DEFAULT_DOMAIN,
        project_domain_name: str = DEFAULT_DOMAIN,
        cacert: str | None = None,
        insecure: bool = False,
        interface: str = DEFAULT_INTERFACE,
    ) -> Credential:
        """The credential of GlanceSync's historic lines: a user's password."""
        options = {
            "auth_url": auth_url,
            "username": user,
            "password": password,
            "project_name": project_name,
            "user_domain_name": user_domain_name,
            "project_domain_name": project_domain_name,
        }
        return cls(
            PASSWORD_PLUGIN,
            tuple(options.items()),
            cacert=cacert,
            insecure=insecure,
            interface=interface,
        )

    def option(self, name: str) -> str | None:
        return dict(self.options).get(name)

    @property
    def auth_url(self) -> str:
        return self.option("auth_url") or ""

    @property
    def user(self) -> str | None:
        return self.option("username") or self.option("user_id")

    @property
    def password(self) -> str | None:
        return self.option("password")

    @property
    def project_name(self) -> str | None:
        return self.option("project_name") or self.option("project_id")

    @property
    def user_domain_name(self) -> str:
        return self.option("user_domain_name") or DEFAULT_DOMAIN

    @property
    def project_domain_name(self) -> str:
        return self.option("project_domain_name") or DEFAULT_DOMAIN

    @property
    def verify(self) -> bool | str:
        """What keystoneauth's session is given: a CA bundle, True, or False."""
        return self.cacert or not self.insecure

    @property
    def is_application_credential(self) -> bool:
        return self.auth_type == APPLICATION_CREDENTIAL_PLUGIN

    def describe(self) -> str:
        """Whose credential this is, in words with no secret: for error messages."""
        if self.is_application_credential:
            reference = self.option("application_credential_id")
            if reference:
                return f"application credential {reference}"
            name = self.option("application_credential_name") or "?"
            return f"application credential {name} of user {self.user or '?'}"
        if self.auth_type in PASSWORD_PLUGINS:
            return f"user {self.user} on project {self.project_name}"
        return f"the {self.auth_type} credential"

    def plugin_options(self) -> dict[str, str]:
        return dict(self.options)


# --------------------------------------------------------------------------- plugins


def _loader(auth_type: str) -> Any:
    from keystoneauth1 import exceptions, loading

    try:
        return loading.get_plugin_loader(auth_type)
    except exceptions.NoMatchingPlugin:
        known = ", ".join(sorted(loading.get_available_plugin_names()))
        raise CredentialProblem(
            f"unknown keystoneauth plugin {auth_type!r} (known: {known})"
        ) from None


def is_secret_option(name: str) -> bool:
    """Is an option of any plugin a secret (a password, a secret, a token)?"""
    return name in ("password", "token", "passcode") or name.endswith("secret")


def identity_url(keystone_url: str) -> str:
    """The v3 base URL, whether the setting ends with /v3, /v2.0 or nothing."""
    base = keystone_url.rstrip("/")
    for suffix in ("/v2.0", "/v3"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base + "/v3"


def plugin_option_names(auth_type: str) -> frozenset[str]:
    """The option names a plugin takes (keystoneauth's ``dest`` names)."""
    return frozenset(option.dest for option in _loader(auth_type).get_options())


def _check_loadable(auth_type: str, options: Mapping[str, str]) -> None:
    """Let keystoneauth say whether the options make a plugin, without any request."""
    from keystoneauth1 import exceptions

    loader = _loader(auth_type)
    missing = [
        option.dest
        for option in loader.get_options()
        if option.required and not options.get(option.dest)
    ]
    if missing:
        raise CredentialProblem(f"auth_type {auth_type} needs {', '.join(missing)}")
    try:
        loader.load_from_options(**options)
    except exceptions.ClientException as error:
        raise CredentialProblem(f"auth_type {auth_type}: {error}") from None


def credential_from_options(
    auth_type: str,
    values: Mapping[str, str],
    cacert: str | None = None,
    insecure: bool = False,
    interface: str = DEFAULT_INTERFACE,
) -> Credential:
    """A credential of any plugin, from option values named as keystoneauth names them
    (GlanceSync's historic ``keystone_url``, ``user`` and ``tenant`` are read as
    ``auth_url``, ``username`` and ``project_name``)."""
    names = plugin_option_names(auth_type)
    options: dict[str, str] = {}
    for name, value in values.items():
        dest = ALIASES.get(name, name)
        if dest in names and value and dest not in options:
            options[dest] = value
    # Names of users and projects are looked up in the Default domain unless told
    # otherwise, as GlanceSync always did.
    for name, kind in (("username", "user"), ("project_name", "project")):
        domain = f"{kind}_domain"
        named_in = options.get(f"{domain}_name") or options.get(f"{domain}_id")
        if options.get(name) and f"{domain}_name" in names and not named_in:
            options[f"{domain}_name"] = DEFAULT_DOMAIN
    _check_loadable(auth_type, options)
    return Credential(
        auth_type, tuple(options.items()), cacert=cacert, insecure=insecure, interface=interface
    )


def environment_options(auth_type: str, environ: Mapping[str, str]) -> dict[str, str]:
    """A plugin's options from ``OS_<OPTION>`` variables, as openstackclient reads them."""
    found = {}
    for name in plugin_option_names(auth_type):
        value = environ.get(f"OS_{name.upper()}")
        if value:
            found[name] = value
    return found


def auth_plugin(credential: Credential) -> Any:
    """The keystoneauth plugin of a credential (no request is made)."""
    return _loader(credential.auth_type).load_from_options(**credential.plugin_options())


# --------------------------------------------------------------------------- clouds.yaml


def cloud_search_path(environ: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The clouds and secure files openstackclient reads, first found wins.

    ``OS_CLIENT_CONFIG_FILE`` / ``OS_CLIENT_SECURE_FILE`` (from ``environ``, which the
    caller passes in) come first, then openstacksdk's own list: the current directory,
    ``~/.config/openstack/``, ``/etc/openstack/`` (and the platform's equivalents).
    """
    from openstack.config import loader

    # openstacksdk takes the current directory when it is imported; a long-running
    # process (or a test) may have moved since, and "here" means here now.
    places = [os.getcwd(), *loader.CONFIG_SEARCH_PATH[1:]]
    suffixes = (*loader.YAML_SUFFIXES, *loader.JSON_SUFFIXES)
    clouds = [os.path.join(place, f"clouds{suffix}") for place in places for suffix in suffixes]
    secure = [os.path.join(place, f"secure{suffix}") for place in places for suffix in suffixes]
    if environ.get(CLOUD_FILE_VARIABLE):
        clouds.insert(0, environ[CLOUD_FILE_VARIABLE])
    if environ.get(SECURE_FILE_VARIABLE):
        secure.insert(0, environ[SECURE_FILE_VARIABLE])
    return clouds, secure


def _searched(files: Sequence[str]) -> str:
    """The files searched, shortly: each place once (``clouds.yaml`` stands for the
    ``.yml`` and ``.json`` spellings openstacksdk also tries there)."""
    shown: list[str] = []
    for path in files:
        directory, base = os.path.split(path)
        if base.startswith("clouds.") and base.endswith((".yml", ".json")):
            path = os.path.join(directory, "clouds.yaml")
        if path not in shown:
            shown.append(path)
    return ", ".join(shown)


def credential_from_cloud(name: str, environ: Mapping[str, str]) -> Credential:
    """The credential of clouds.yaml entry ``name``, through openstacksdk's loader."""
    import yaml
    from keystoneauth1 import exceptions as ks_exceptions
    from openstack import exceptions
    from openstack.config import OpenStackConfig

    clouds, secure = cloud_search_path(environ)
    problems = (
        exceptions.ConfigException,
        ks_exceptions.ClientException,
        yaml.YAMLError,
        OSError,
        ValueError,
    )
    try:
        # load_envvars=False: the environment given is the one read (above), and no
        # OS_* variable silently changes what the file says.
        config = OpenStackConfig(config_files=clouds, secure_files=secure, load_envvars=False)
    except problems as error:
        raise CredentialProblem(f"clouds.yaml: {' '.join(str(error).split())}") from None
    try:
        with warnings.catch_warnings():
            # openstacksdk's notes to its own developers (metrics backends it will drop)
            # are no concern of an operator's.
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            found = config.get_one(cloud=name)
    except problems as error:
        if "was not found" in str(error):
            read = config.config_filename
            where = f"in {read}" if read else "(no clouds.yaml found)"
            raise CredentialProblem(
                f"cloud {name!r} not found {where}; searched {_searched(clouds)}"
            ) from None
        raise CredentialProblem(f"cloud {name!r}: {' '.join(str(error).split())}") from None
    auth_type = found.config.get("auth_type") or "password"
    options = {key: str(value) for key, value in found.config.get("auth", {}).items() if value}
    verify, cert = found.get_requests_verify_args()
    interface = found.config.get("interface") or DEFAULT_INTERFACE
    credential = Credential(
        auth_type,
        tuple(options.items()),
        cacert=verify if isinstance(verify, str) else None,
        insecure=verify is False,
        interface=str(interface),
        cloud=name,
        client_cert=cert,
    )
    if not credential.auth_url:
        raise CredentialProblem(f"cloud {name!r} has no auth_url")
    return credential

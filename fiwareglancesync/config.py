"""Load and validate the GlanceSync configuration into typed objects.

One table, :data:`OPTIONS`, describes every option: the parser reads it, the typed
objects take their defaults from it, and the documentation's option reference and sample
configuration are generated from it when the docs are built
(``doc/_ext/glancesync_options.py``), so none of them can drift apart. Every problem
found is collected and reported together as one :class:`ConfigError`.
"""

from __future__ import annotations

import base64
import binascii
import configparser
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fiwareglancesync.booleans import parse_bool
from fiwareglancesync.condition import Condition, ConditionError
from fiwareglancesync.coordination import url_problem
from fiwareglancesync.credentials import (
    AUTH_TYPE_VARIABLE,
    CLOUD_VARIABLE,
    Credential,
    CredentialProblem,
    credential_from_cloud,
    credential_from_options,
    environment_options,
    plugin_option_names,
)
from fiwareglancesync.errors import ConfigError
from fiwareglancesync.osenv import CREDENTIAL_VARIABLES, REGION_VARIABLE, from_environment

DEFAULT_SEARCH_PATHS = ("/etc/fiware.d/glancesync.conf", "/etc/glancesync.conf")
MASTER = "master"
MAIN = "main"
# Beyond these, a value is a mistake: forking thousands of children hangs the machine,
# and a timeout of years overflows the clocks it is handed to.
MAX_CHILDREN = 64
MAX_SECONDS = 86400.0
SYNC_FIELDS = ("tags", "visibility", "os_hidden", "protected", "min_disk", "min_ram")
SAME_MEMBERS = "same"


@dataclass(frozen=True)
class Option:
    """One configuration option: where it lives, how it is read, what it means."""

    name: str
    scope: str  # "main" or "target"
    kind: str  # str, int, float, bool, list, condition
    default: Any
    help: str
    example: str | None = None
    # Numbers only: the smallest and largest values accepted (both included).
    minimum: float | None = None
    maximum: float | None = None
    # Kind "choice" only: the words accepted.
    choices: tuple[str, ...] = ()


OPTIONS: tuple[Option, ...] = (
    Option(
        "master_region",
        MAIN,
        "str",
        None,
        "Region of the master target holding the images every other region receives. "
        f"Falls back to {REGION_VARIABLE}.",
        "Spain2",
    ),
    Option(
        "preferable_order",
        MAIN,
        "list",
        (),
        "Regions synchronised first, in this order, when the region list is built by "
        "expansion (no regions given, or 'target:'). Unknown names are ignored.",
        "Trento, Lannion, Berlin",
    ),
    Option(
        "max_children",
        MAIN,
        "int",
        1,
        "How many regions --parallel synchronises at once (never more processes than "
        f"regions; at most {MAX_CHILDREN}).",
        "4",
        minimum=1,
        maximum=MAX_CHILDREN,
    ),
    Option(
        "lock_dir",
        MAIN,
        "str",
        None,
        "Directory of the lock files that keep two runs on this host from synchronising "
        "the same region at once, when coordination_url is not set. Default: "
        "glancesync-locks in the system's temporary directory, shared by every user.",
        "/var/lock/glancesync",
    ),
    Option(
        "lock_timeout",
        MAIN,
        "float",
        60,
        "Seconds a sync waits for a region that another run (on this host, or on any "
        "host sharing its coordination_url) is synchronising, before it skips the region (a warning names the other process; "
        "the run then exits 1). 0: do not wait. Status modes never wait.",
        minimum=0,
        maximum=MAX_SECONDS,
    ),
    Option(
        "audit_interval",
        MAIN,
        "float",
        600,
        "glancesync-agent: seconds between two audits, each of which plans every region "
        "the agent owns and synchronises what is pending, as sync.py would. The audit "
        "repairs whatever a lost notification or a failed sync left behind.",
        "600",
        minimum=1,
        maximum=MAX_SECONDS,
    ),
    Option(
        "poll_interval",
        MAIN,
        "float",
        30,
        "glancesync-agent: seconds between two listings of the master when it does not "
        "follow notifications (no notification_url, or the message bus is down). Only "
        "the master is listed; a region is listed when an image it selects changed.",
        "30",
        minimum=0.5,
        maximum=MAX_SECONDS,
    ),
    Option(
        "event_delay",
        MAIN,
        "float",
        1,
        "glancesync-agent: seconds it waits after the first change of an image before "
        "it synchronises it, so that a burst of changes (an upload, then its properties) "
        "becomes one sync. 0: at once.",
        "1",
        minimum=0,
        maximum=MAX_SECONDS,
    ),
    Option(
        "notification_url",
        MAIN,
        "str",
        None,
        "glancesync-agent: the oslo.messaging transport URL of the message bus the "
        "master's Glance sends its notifications to (Glance's [oslo_messaging_"
        "notifications] driver = messagingv2 and transport_url). Unset: the agent polls "
        "the master every poll_interval seconds. Never written to a log.",
        "rabbit://glancesync:secret@rabbit.example.org:5672/",
    ),
    Option(
        "notification_topic",
        MAIN,
        "str",
        "notifications",
        "glancesync-agent: the topic Glance notifies on (oslo.messaging's default).",
        "notifications",
    ),
    Option(
        "notification_exchange",
        MAIN,
        "str",
        "glance",
        "glancesync-agent: the exchange Glance's notifications go to (Glance's control exchange).",
        "glance",
    ),
    Option(
        "notification_pool",
        MAIN,
        "str",
        "glancesync-agent",
        "glancesync-agent: the listener pool, which gives the agents their own queue: "
        "they never take notifications from another consumer of the same topic "
        "(Ceilometer's, say).",
        "glancesync-agent",
    ),
    Option(
        "heartbeat_timeout",
        MAIN,
        "float",
        30,
        "glancesync-agent, with a coordination_url of several hosts (redis://, "
        "zookeeper://, etcd3+http://...): seconds after an agent's last heartbeat before "
        "the others count it gone and take its regions (and its region locks expire). "
        "The file:// backend never expires a member.",
        "30",
        minimum=1,
        maximum=MAX_SECONDS,
    ),
    Option(
        "coordination_url",
        MAIN,
        "str",
        None,
        "Where the region locks (and the agents' groups) live, as a tooz URL: every "
        "sync.py, service and agent given the same URL never synchronises a region at "
        "the same time as another. file://DIR locks files in DIR on one host; "
        "redis://host:port, zookeeper://host:port or etcd3+http://host:port coordinate "
        "several hosts. Default: file:// in lock_dir (one host, as before).",
        "redis://127.0.0.1:6379",
    ),
    Option(
        "images_dir",
        MAIN,
        "str",
        "/var/lib/glance/images",
        "Directory holding copies of master images, one file per master image UUID. "
        "An image found here is read from the file; otherwise it is streamed from the "
        "master region.",
        "/var/lib/glance/images",
    ),
    Option(
        "cloud",
        "target",
        "str",
        None,
        "Name of an entry of clouds.yaml (secure.yaml merged), read as openstackclient "
        "reads it: its authentication (any auth_type, application credentials first), "
        "cacert/verify/insecure and interface. Cannot be combined with credential, user, "
        "password or auth_type. [master] falls back to OS_CLOUD.",
        "federation-master",
    ),
    Option(
        "auth_type",
        "target",
        "str",
        None,
        "A keystoneauth plugin (v3applicationcredential, v3token, v3oidcclientcredentials, "
        "v3password...); the plugin's own options (application_credential_id, "
        "application_credential_secret, token...) are then read from the same section, "
        "keystone_url standing for auth_url. Unset: the user and password options below.",
        "v3applicationcredential",
    ),
    Option(
        "credential",
        "target",
        "str",
        None,
        "user,base64(password),keystone_url,project_name in one value (the historic "
        "form; prefer cloud with an application credential).",
        "admin,c2VjcmV0,http://keystone.example.org:5000/v3,admin",
    ),
    Option("user", "target", "str", None, "Keystone user name (instead of credential)."),
    Option("password", "target", "str", None, "Password in clear (instead of credential)."),
    Option("keystone_url", "target", "str", None, "Keystone URL (instead of credential)."),
    Option("tenant", "target", "str", None, "Project name (instead of credential)."),
    Option(
        "user_domain_name",
        "target",
        "str",
        "Default",
        "Keystone v3 domain of the user.",
    ),
    Option(
        "project_domain_name",
        "target",
        "str",
        "Default",
        "Keystone v3 domain of the project.",
    ),
    Option(
        "tenant_id",
        "target",
        "str",
        None,
        "Project id; asked to Keystone when absent. The mock uses it as the owner of the "
        "images it creates (default: the project name followed by 'id').",
    ),
    Option("cacert", "target", "str", None, "CA bundle used to verify TLS connections."),
    Option("insecure", "target", "bool", False, "Do not verify TLS certificates."),
    Option(
        "interface",
        "target",
        "choice",
        "public",
        "Which endpoints of the Keystone catalog to use (a cloud's own interface wins).",
        choices=("public", "internal", "admin"),
    ),
    Option(
        "forcesyncs",
        "target",
        "list",
        (),
        "UUIDs of master images synchronised unconditionally, even private ones.",
        "6e240dd4-e304-4599-b7d8-e38e13cef058",
    ),
    Option(
        "metadata_condition",
        "target",
        "condition",
        None,
        "Expression deciding which master images are synchronised. It sees 'image' "
        "(id, name, owner, size, region, is_public, status, checksum, user_properties) "
        "and 'metadata_set'. Only a safe subset of Python expressions is accepted.",
        "image.is_public and 'type' in image.user_properties",
    ),
    Option(
        "metadata_set",
        "target",
        "list",
        (),
        "User properties that select public images and are copied to the regions. "
        "Empty: every public image, with all its properties.",
        "nid, type, sdc_aware, nid_version",
    ),
    Option(
        "dontupdate",
        "target",
        "list",
        (),
        "Checksums (of the regional image) that are left alone: ok_stalled_checksum.",
    ),
    Option(
        "rename",
        "target",
        "list",
        (),
        "Checksums (of the regional image) replaced by the master image after renaming the "
        "old one to '<name>.old' and making it private; 'any' matches every checksum.",
    ),
    Option(
        "replace",
        "target",
        "list",
        (),
        "Checksums (of the regional image) replaced by the master image; the old one is "
        "deleted once the new one is verified. 'any' matches every checksum.",
        "any",
    ),
    Option(
        "ignore_regions",
        "target",
        "list",
        (),
        "Regions of this target left out when its regions are expanded.",
        "Spain1",
    ),
    Option(
        "only_tenant_images",
        "target",
        "bool",
        True,
        "Consider only regional images owned by the target's project.",
    ),
    Option(
        "support_obsolete_images",
        "target",
        "bool",
        True,
        "Propagate renames to '<name>_obsolete' and their visibility to the regions.",
    ),
    Option(
        "obsolete_syncprops",
        "target",
        "list",
        (),
        "Properties copied to obsolete images, besides the name and the visibility.",
        "sdc_aware",
    ),
    Option(
        "list_images_timeout",
        "target",
        "float",
        30,
        "Seconds allowed to list the images of one region.",
        minimum=0.001,
        maximum=MAX_SECONDS,
    ),
    Option(
        "sync_fields",
        "target",
        "list",
        ("tags", "visibility", "os_hidden", "protected", "min_disk", "min_ram"),
        "Glance fields synchronised besides the name, the data and the properties: "
        "tags, visibility (all four; left out, only public-or-not is synchronised), "
        "os_hidden, protected (set, never cleared), min_disk, min_ram. A field left out "
        "keeps each region's own value, and a new copy does not get the master's.",
        "visibility, min_disk, min_ram",
    ),
    Option(
        "members",
        "target",
        "list",
        (),
        "Projects (by name in the target's Keystone) that the copies of shared master "
        "images are shared with and accepted for; 'same': the projects the master image "
        "is shared with, found by name. A project the target's Keystone lacks is a "
        "warning.",
        "same",
    ),
    Option(
        "transfer",
        "target",
        "choice",
        "auto",
        "How master images get into the target's regions. 'glance-download': the "
        "region's Glance pulls the image from the master region itself, and no image "
        "byte goes through this host (the region must share the master's Keystone and "
        "its Glance must list the method in GET /v2/info/import; if it cannot, the "
        "region fails). 'stream': through this host, from the file in images_dir when "
        "there is one, else from the master Glance. 'auto': glance-download where the "
        "region can use it, else as 'stream'. A glance-download that fails falls back to "
        "streaming, and the log says so.",
        "stream",
        choices=("auto", "stream", "glance-download"),
    ),
    Option(
        "import_timeout",
        "target",
        "float",
        1800,
        "Seconds a glance-download import may take before GlanceSync gives up on it "
        "and streams the image instead.",
        minimum=1,
        maximum=MAX_SECONDS,
    ),
    Option(
        "preflight",
        "target",
        "bool",
        True,
        "Before sending an image to a region, check what its Glance can tell in advance: "
        "that it accepts the image's disk_format and container_format (GET "
        "/v2/schemas/image), that the image fits its quota (GET /v2/info/usage, with "
        "Keystone unified limits), and that the first MiB of the data is what its "
        "disk_format says (streams and files; a glance-download is read by the region "
        "itself, and checked only before a fallback stream). An image that fails is refused in that region, in one error "
        "line, and the region's other images go on. false: no checks, no reads.",
    ),
    Option(
        "use_keystone_v3",
        "target",
        "bool",
        True,
        "Accepted for old configuration files; Keystone v3 is always used.",
    ),
)

OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}


def default_of(name: str) -> Any:
    """The default of option ``name``, typed as the option is: written once, in OPTIONS."""
    option = OPTIONS_BY_NAME[name]
    if option.kind == "float" and option.default is not None:
        return float(option.default)
    return option.default


_TARGET_OPTIONS = {o.name for o in OPTIONS if o.scope == "target"}
_MAIN_OPTIONS = {o.name for o in OPTIONS if o.scope == MAIN}
_CREDENTIAL_PIECES = ("user", "password", "keystone_url", "tenant")
# The options of the historic password credential that a cloud entry replaces.
_HISTORIC_PIECES = ("credential", "user", "password")


@dataclass(frozen=True)
class TargetConfig:
    name: str
    credential: Credential
    tenant_id: str | None = default_of("tenant_id")
    forcesyncs: frozenset[str] = frozenset(default_of("forcesyncs"))
    metadata_condition: Condition | None = default_of("metadata_condition")
    metadata_set: frozenset[str] = frozenset(default_of("metadata_set"))
    dontupdate: frozenset[str] = frozenset(default_of("dontupdate"))
    replace: frozenset[str] = frozenset(default_of("replace"))
    rename: frozenset[str] = frozenset(default_of("rename"))
    ignore_regions: tuple[str, ...] = tuple(default_of("ignore_regions"))
    only_tenant_images: bool = default_of("only_tenant_images")
    support_obsolete_images: bool = default_of("support_obsolete_images")
    obsolete_syncprops: frozenset[str] = frozenset(default_of("obsolete_syncprops"))
    list_images_timeout: float = default_of("list_images_timeout")
    transfer: str = default_of("transfer")
    import_timeout: float = default_of("import_timeout")
    sync_fields: frozenset[str] = frozenset(default_of("sync_fields"))
    members: tuple[str, ...] = tuple(default_of("members"))
    preflight: bool = default_of("preflight")

    @property
    def members_same(self) -> bool:
        """``members = same``: the master image's own member projects, by name."""
        return tuple(name.lower() for name in self.members) == (SAME_MEMBERS,)


@dataclass(frozen=True)
class Config:
    master_region: str
    targets: Mapping[str, TargetConfig]
    preferable_order: tuple[str, ...] = tuple(default_of("preferable_order"))
    max_children: int = default_of("max_children")
    images_dir: str = default_of("images_dir")
    lock_dir: str | None = default_of("lock_dir")
    lock_timeout: float = default_of("lock_timeout")
    audit_interval: float = default_of("audit_interval")
    poll_interval: float = default_of("poll_interval")
    event_delay: float = default_of("event_delay")
    notification_url: str | None = default_of("notification_url")
    notification_topic: str = default_of("notification_topic")
    notification_exchange: str = default_of("notification_exchange")
    notification_pool: str = default_of("notification_pool")
    coordination_url: str | None = default_of("coordination_url")
    heartbeat_timeout: float = default_of("heartbeat_timeout")
    source: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def master(self) -> TargetConfig:
        return self.targets[MASTER]


# --------------------------------------------------------------------------- reading


def _join_backslash_lines(text: str) -> str:
    """A trailing backslash joins the next line, and does not stay in the value.

    The lines joined are replaced by empty lines after the joined one, so every line keeps
    its number for the messages that name one.
    """
    result: list[str] = []
    removed = 0
    joining = False
    for line in text.split("\n"):
        if joining:
            result[-1] += " " + line.lstrip(" \t")
            removed += 1
        else:
            result.extend([""] * removed)
            removed = 0
            result.append(line)
        joining = bool(re.search(r"\\[ \t]*\r?$", result[-1]))
        if joining:
            result[-1] = re.sub(r"\\[ \t]*\r?$", "", result[-1]).rstrip()
    result.extend([""] * removed)
    return "\n".join(result)


def find_config_file(
    environ: Mapping[str, str], search_paths: Sequence[str] = DEFAULT_SEARCH_PATHS
) -> str | None:
    """The file to read: GLANCESYNC_CONFIG, then the standard places, else none."""
    explicit = environ.get("GLANCESYNC_CONFIG")
    if explicit:
        return explicit
    return next((path for path in search_paths if os.path.isfile(path)), None)


def _new_parser() -> configparser.ConfigParser:
    # strict: a section or an option given twice is an error, not a silent last-one-wins.
    return configparser.ConfigParser(interpolation=None, strict=True)


def _syntax_problem(error: configparser.Error, source: str) -> str:
    if isinstance(error, configparser.DuplicateSectionError):
        return f"{source}, line {error.lineno}: section [{error.section}] appears twice"
    if isinstance(error, configparser.DuplicateOptionError):
        return (
            f"{source}, line {error.lineno}: option {error.option} appears twice in "
            f"[{error.section}] (option names are case-insensitive)"
        )
    return f"{source}: {' '.join(str(error).split())}"


def read_config_text(text: str, source: str) -> configparser.ConfigParser:
    parser, problems = parse_config_text(text, source)
    if problems:
        raise ConfigError(problems)
    return parser


def parse_config_text(text: str, source: str) -> tuple[configparser.ConfigParser, list[str]]:
    """The parsed text, and every section or option it gives twice (one problem each).

    A duplicate does not stop the reading: the rest is still read and checked, so its
    problems are reported with the duplicates (the last of two values is the one read).
    Any other syntax error stops it (ConfigError, with the duplicates found before).
    """
    joined = _join_backslash_lines(text)
    problems = _duplicates(joined, source)
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(joined, source=source)  # the strict reading found nothing else
    return parser, problems


def _duplicates(text: str, source: str) -> list[str]:
    """Read ``text`` strictly again past each duplicate until it reads through."""
    lines = text.split("\n")
    problems: list[str] = []
    for number in range(len(lines) + 1):
        try:
            _new_parser().read_string("\n".join(lines), source=source)
            break
        except configparser.DuplicateSectionError as error:
            problems.append(_syntax_problem(error, source))
            assert error.lineno is not None
            lines[error.lineno - 1] = f"[\0duplicate {number}]"  # a name nobody writes
        except configparser.DuplicateOptionError as error:
            problems.append(_syntax_problem(error, source))
            assert error.lineno is not None
            _comment_out_option(lines, error.lineno - 1)
        except configparser.Error as error:
            raise ConfigError([*problems, _syntax_problem(error, source)]) from None
    return problems


def _comment_out_option(lines: list[str], index: int) -> None:
    """Make the option at ``index`` and its continuation lines comments."""
    lines[index] = "#"
    index += 1
    while index < len(lines) and lines[index][:1] in (" ", "\t") and lines[index].strip():
        lines[index] = "#"
        index += 1


def apply_overrides(parser: configparser.ConfigParser, overrides: Iterable[str]) -> list[str]:
    """Apply ``section.option=value`` (no dot: [DEFAULT]); return the problems found."""
    problems = []
    for item in overrides:
        key, equals, value = item.partition("=")
        key = key.strip()
        if not equals or not key:
            problems.append(f"--config {item!r}: expected KEY=VALUE or SECTION.KEY=VALUE")
            continue
        section, dot, option = key.partition(".")
        if not dot:
            section, option = configparser.DEFAULTSECT, key
        if not option:
            problems.append(f"--config {item!r}: the option name is empty")
            continue
        if section != configparser.DEFAULTSECT and not parser.has_section(section):
            parser.add_section(section)
        parser.set(section, option.lower(), value)
    return problems


# --------------------------------------------------------------------------- typing


def parse_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in re.split(r"[,\n]", text) if item.strip())


def _parse_number(option: Option) -> Callable[[str], Any]:
    convert = int if option.kind == "int" else float

    def parse(text: str) -> Any:
        word = text.strip()
        try:
            value = convert(word)
        except ValueError:
            raise ValueError(f"{word!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"{word!r} is not a finite number")
        low, high = option.minimum, option.maximum
        if low is not None and value < low:
            raise ValueError(f"{word!r} is too small (the least is {low:g})")
        if low is None and value <= 0:
            raise ValueError(f"{word!r} must be greater than zero")
        if high is not None and value > high:
            raise ValueError(f"{word!r} is too big (the most is {high:g})")
        return value

    return parse


def _parse_condition(text: str) -> Condition | None:
    if not text.strip():
        return None
    try:
        return Condition(text)
    except ConditionError as error:
        raise ValueError(f"{error} in {' '.join(text.split())!r}") from None


_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": lambda text: " ".join(text.split()) or None,
    "bool": parse_bool,
    "list": parse_list,
    "condition": _parse_condition,
}


def _parse_choice(option: Option) -> Callable[[str], Any]:
    def parse(text: str) -> str:
        word = text.strip().lower()
        if word not in option.choices:
            raise ValueError(f"{text.strip()!r} is not one of {', '.join(option.choices)}")
        return word

    return parse


def _parser_of(option: Option) -> Callable[[str], Any]:
    if option.kind in ("int", "float"):
        return _parse_number(option)
    if option.kind == "choice":
        return _parse_choice(option)
    return _PARSERS[option.kind]


class _Reader:
    """Reads typed options from one section and remembers every problem."""

    def __init__(self, section: Mapping[str, str], name: str, problems: list[str]):
        self.section = section
        self.name = name
        self.problems = problems

    def raw(self, option: str) -> str | None:
        return self.section.get(option)

    def get(self, option_name: str) -> Any:
        option = OPTIONS_BY_NAME[option_name]
        text = self.section.get(option_name)
        if text is None:
            return default_of(option_name)
        try:
            return _parser_of(option)(text)
        except ValueError as error:
            self.problems.append(f"{self.name}.{option_name}: {error}")
            return default_of(option_name)


# --------------------------------------------------------------------------- building


def _decode_credential(text: str, target: str, problems: list[str]) -> dict[str, str]:
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 4:
        problems.append(
            f"{target}.credential: expected user,base64(password),keystone_url,project_name"
        )
        return {}
    user, encoded, url, tenant = parts
    try:
        password = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        problems.append(f"{target}.credential: the password is not valid base64")
        password = ""
    return {"user": user, "password": password, "keystone_url": url, "tenant": tenant}


def _credential_pieces(
    reader: _Reader, environ: Mapping[str, str], is_master: bool
) -> dict[str, str]:
    pieces: dict[str, str] = {}
    if reader.raw("credential"):
        pieces.update(
            _decode_credential(reader.raw("credential") or "", reader.name, reader.problems)
        )
    for piece in (
        *_CREDENTIAL_PIECES,
        "user_domain_name",
        "project_domain_name",
        "cacert",
        "tenant_id",
    ):
        value = reader.raw(piece)
        if value is not None and value.strip():
            pieces[piece] = value.strip()
    if is_master:
        for piece in CREDENTIAL_VARIABLES:
            found = None if piece in pieces else from_environment(piece, environ)
            if found:
                pieces[piece] = found
    return pieces


def _build_credential(reader: _Reader, environ: Mapping[str, str]) -> Credential | None:
    """The target's credential, from whichever of the three forms its section uses."""
    cloud, auth_type = reader.get("cloud"), reader.get("auth_type")
    historic = [name for name in _HISTORIC_PIECES if (reader.raw(name) or "").strip()]
    if cloud:
        if historic or auth_type:
            given = ", ".join(historic + (["auth_type"] if auth_type else []))
            reader.problems.append(
                f"{reader.name}: cloud cannot be combined with {given} "
                "(the clouds.yaml entry holds the whole credential)"
            )
            return None
        return _cloud_credential(reader, cloud, environ)
    if reader.name == MASTER and not historic and not auth_type:
        # As openstackclient: OS_CLOUD names the cloud, else OS_AUTH_TYPE the plugin.
        if environ.get(CLOUD_VARIABLE, "").strip():
            return _cloud_credential(reader, environ[CLOUD_VARIABLE].strip(), environ)
        auth_type = environ.get(AUTH_TYPE_VARIABLE, "").strip() or None
    if auth_type:
        return _plugin_credential(reader, auth_type, environ)
    return _password_credential(reader, environ)


def _cloud_credential(reader: _Reader, cloud: str, environ: Mapping[str, str]) -> Credential | None:
    try:
        return credential_from_cloud(cloud, environ)
    except CredentialProblem as problem:
        reader.problems.append(f"{reader.name}: {problem}")
        return None


def _plugin_credential(
    reader: _Reader, auth_type: str, environ: Mapping[str, str]
) -> Credential | None:
    if (reader.raw("credential") or "").strip():
        reader.problems.append(
            f"{reader.name}: credential (a user's password) cannot be combined with "
            f"auth_type {auth_type}"
        )
        return None
    values = {name: value.strip() for name, value in reader.section.items() if value.strip()}
    cacert = values.get("cacert")
    try:
        if reader.name == MASTER:
            values = {**environment_options(auth_type, environ), **values}
            cacert = cacert or from_environment("cacert", environ)
        return credential_from_options(
            auth_type,
            values,
            cacert=cacert,
            insecure=reader.get("insecure"),
            interface=reader.get("interface"),
        )
    except CredentialProblem as problem:
        reader.problems.append(f"{reader.name}: {problem}")
        return None


def _password_credential(reader: _Reader, environ: Mapping[str, str]) -> Credential | None:
    is_master = reader.name == MASTER
    pieces = _credential_pieces(reader, environ, is_master)
    missing = [piece for piece in _CREDENTIAL_PIECES if not pieces.get(piece)]
    # A credential value already reported as malformed is not reported missing as well.
    malformed = any(p.startswith(f"{reader.name}.credential:") for p in reader.problems)
    if missing and malformed:
        return None
    if missing:
        hint = " or OS_* variables" if is_master else ""
        reader.problems.append(
            f"{reader.name}: incomplete credential, missing {', '.join(missing)} "
            f"(set credential, or user/password/keystone_url/tenant{hint})"
        )
        return None
    return Credential.with_password(
        user=pieces["user"],
        password=pieces["password"],
        auth_url=pieces["keystone_url"],
        project_name=pieces["tenant"],
        user_domain_name=pieces.get("user_domain_name", default_of("user_domain_name")),
        project_domain_name=pieces.get("project_domain_name", default_of("project_domain_name")),
        cacert=pieces.get("cacert", default_of("cacert")),
        insecure=reader.get("insecure"),
        interface=reader.get("interface"),
    )


def _build_target(reader: _Reader, environ: Mapping[str, str]) -> TargetConfig | None:
    credential = _build_credential(reader, environ)
    tenant_id = reader.get("tenant_id")
    if tenant_id is None and reader.name == MASTER:
        tenant_id = from_environment("tenant_id", environ)
    values = {
        name: reader.get(name)
        for name in (
            "metadata_condition",
            "only_tenant_images",
            "support_obsolete_images",
            "list_images_timeout",
            "transfer",
            "import_timeout",
            "preflight",
        )
    }
    sets = {
        name: frozenset(reader.get(name))
        for name in ("forcesyncs", "metadata_set", "dontupdate", "replace", "rename")
    }
    reader.get("use_keystone_v3")  # validated, then ignored: v3 is always used
    sync_fields = _sync_fields(reader)
    members = _members(reader)
    if credential is None:
        return None
    return TargetConfig(
        name=reader.name,
        credential=credential,
        tenant_id=tenant_id,
        ignore_regions=tuple(reader.get("ignore_regions")),
        obsolete_syncprops=frozenset(reader.get("obsolete_syncprops")),
        sync_fields=sync_fields,
        members=members,
        **sets,
        **values,
    )


def _sync_fields(reader: _Reader) -> frozenset[str]:
    fields = frozenset(name.lower() for name in reader.get("sync_fields"))
    unknown = sorted(fields - set(SYNC_FIELDS))
    if unknown:
        reader.problems.append(
            f"{reader.name}.sync_fields: unknown field {', '.join(unknown)} "
            f"(known: {', '.join(SYNC_FIELDS)})"
        )
        return fields & set(SYNC_FIELDS)
    return fields


def _members(reader: _Reader) -> tuple[str, ...]:
    members = tuple(reader.get("members"))
    if SAME_MEMBERS in (name.lower() for name in members) and len(members) > 1:
        reader.problems.append(f"{reader.name}.members: 'same' cannot be mixed with project names")
        return ()
    return members


MAX_UNKNOWN_NOTES = 20  # one warning each for the first ones, then a count


def _plugin_options(section: Mapping[str, str]) -> frozenset[str]:
    """The options of the section's auth_type plugin: known options there."""
    auth_type = (section.get("auth_type") or "").strip()
    if not auth_type:
        return frozenset()
    try:
        return plugin_option_names(auth_type)
    except CredentialProblem:
        return frozenset()  # reported as the section's own problem


def _unknown_options(parser: configparser.ConfigParser) -> list[str]:
    unknown = []
    defaults = set(parser.defaults())
    for name in parser.sections():
        known = _MAIN_OPTIONS if name == MAIN else _TARGET_OPTIONS | _plugin_options(parser[name])
        for option in parser.options(name):
            if option not in known and option not in defaults:
                unknown.append(f"{name}.{option}")
    known_defaults = _MAIN_OPTIONS | _TARGET_OPTIONS | _plugin_options(parser.defaults())
    unknown += [f"DEFAULT.{option}" for option in sorted(defaults - known_defaults)]
    notes = [f"unknown option {name} ignored" for name in unknown[:MAX_UNKNOWN_NOTES]]
    if len(unknown) > MAX_UNKNOWN_NOTES:
        notes.append(f"... and {len(unknown) - MAX_UNKNOWN_NOTES} more unknown options ignored")
    return notes


AGENT_OPTIONS = (
    "audit_interval",
    "poll_interval",
    "event_delay",
    "notification_url",
    "notification_topic",
    "notification_exchange",
    "notification_pool",
    "heartbeat_timeout",
)


def _check_notification_url(url: str | None, problems: list[str]) -> None:
    """A transport URL names its driver (``rabbit://``). The URL is not quoted back: it
    may carry the bus's password."""
    if url is None:
        return
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme or not scheme.replace("+", "").isalnum() or not rest:
        problems.append(
            "main.notification_url: not an oslo.messaging transport URL "
            "(expected driver://user:password@host:port/, e.g. rabbit://...)"
        )


def _coordination_url(main: _Reader) -> str | None:
    """The coordination URL, checked now (a bad one is a configuration error)."""
    url = (main.get("coordination_url") or "").strip()
    if not url:
        return None
    problem = url_problem(url)
    if problem is not None:
        main.problems.append(f"{main.name}.coordination_url: {problem}")
        return None
    return url


def build_config(
    parser: configparser.ConfigParser,
    environ: Mapping[str, str],
    source: str | None = None,
    problems: list[str] | None = None,
) -> Config:
    """Turn parsed INI text into a :class:`Config`, or raise one ConfigError for all."""
    problems = list(problems or [])
    if not parser.has_section(MASTER):
        parser.add_section(MASTER)  # still inherits [DEFAULT]
    main = _Reader(parser[MAIN] if parser.has_section(MAIN) else parser.defaults(), MAIN, problems)
    master_region = main.get("master_region") or environ.get(REGION_VARIABLE, "").strip()
    if not master_region:
        problems.append(f"main.master_region: not set, and {REGION_VARIABLE} is not set either")
    targets = {}
    for name in parser.sections():
        if name == MAIN:
            continue
        if ":" in name or not name.strip():
            problems.append(f"[{name}]: a target name cannot contain ':'")
            continue
        target = _build_target(_Reader(parser[name], name, problems), environ)
        if target is not None:
            targets[name] = target
    max_children = main.get("max_children")
    preferable_order = tuple(main.get("preferable_order"))
    images_dir = main.get("images_dir")
    lock_dir = main.get("lock_dir")
    lock_timeout = main.get("lock_timeout")
    agent = {name: main.get(name) for name in AGENT_OPTIONS}
    _check_notification_url(agent["notification_url"], problems)
    coordination_url = _coordination_url(main)
    if problems:
        raise ConfigError(problems, _unknown_options(parser))
    return Config(
        master_region=master_region,
        targets=targets,
        preferable_order=preferable_order,
        max_children=max_children,
        images_dir=images_dir,
        lock_dir=lock_dir,
        lock_timeout=lock_timeout,
        coordination_url=coordination_url,
        source=source,
        **agent,
        warnings=tuple(_unknown_options(parser)),
    )


def load_config(
    environ: Mapping[str, str],
    overrides: Iterable[str] = (),
    search_paths: Sequence[str] = DEFAULT_SEARCH_PATHS,
) -> Config:
    """Find, read and validate the configuration; ``environ`` is passed in, never read."""
    path = find_config_file(environ, search_paths)
    text = ""
    if path is not None:
        try:
            with open(path, encoding="utf-8") as stream:
                text = stream.read()
        except OSError as error:
            raise ConfigError(
                [f"cannot read configuration file {path}: {error.strerror}"]
            ) from None
        except UnicodeDecodeError:
            raise ConfigError([f"configuration file {path} is not UTF-8 text"]) from None
    parser, problems = parse_config_text(text, path or "<no file>")
    problems += apply_overrides(parser, overrides)
    return build_config(parser, environ, path, problems)

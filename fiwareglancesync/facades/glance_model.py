"""Translate between Glance Images API v2 records and the engine's :class:`Image`.

Pure functions, no I/O: the facade feeds them the JSON Glance returns and sends what they
build. Keeping the mapping here lets it be tested without a cloud.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fiwareglancesync.image import AMI_PROPERTIES, Image

# Attributes Glance defines itself: never user properties, and most cannot be set.
CORE_ATTRIBUTES = frozenset(
    {
        "id",
        "name",
        "status",
        "visibility",
        "protected",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "owner",
        "size",
        "virtual_size",
        "min_disk",
        "min_ram",
        "disk_format",
        "container_format",
        "created_at",
        "updated_at",
        "tags",
        "self",
        "file",
        "schema",
        "direct_url",
        "locations",
        "os_hidden",
        "stores",
    }
)
# Prefix of the properties Glance reserves for itself (import bookkeeping); setting one
# is refused with 403, so they are neither listed as user properties nor sent.
RESERVED_PREFIX = "os_glance_"
PUBLIC = "public"
PRIVATE = "private"
JSON_PATCH = "application/openstack-images-v2.1-json-patch"


def is_user_property(key: str) -> bool:
    return key not in CORE_ATTRIBUTES and not key.startswith(RESERVED_PREFIX)


def user_properties(record: Mapping[str, Any]) -> dict[str, Any]:
    """Custom properties, kernel_id/ramdisk_id folded in (they are attributes in v2)."""
    return {
        key: value
        for key, value in record.items()
        if is_user_property(key) and not (key in AMI_PROPERTIES and value in (None, ""))
    }


def image_from_record(record: Mapping[str, Any], region: str, members: Iterable[str] = ()) -> Image:
    """The engine's view of one image record of the Images API v2 (``members``: the
    projects that accepted it, which the record itself does not say)."""
    return Image(
        name=record.get("name") or "",
        id=record["id"],
        region=region,
        status=record.get("status") or "",
        size=record.get("size") or 0,
        checksum=record.get("checksum"),
        owner=record.get("owner") or "",
        visibility=record.get("visibility") or PRIVATE,
        visibility_known=bool(record.get("visibility")),
        tags=tuple(sorted(str(tag) for tag in record.get("tags") or ())),
        protected=bool(record.get("protected")),
        members=tuple(members),
        user_properties=user_properties(record),
        disk_format=record.get("disk_format"),
        container_format=record.get("container_format"),
        min_disk=record.get("min_disk") or 0,
        min_ram=record.get("min_ram") or 0,
        hidden=bool(record.get("os_hidden")),
        os_hash_algo=record.get("os_hash_algo") or None,
        os_hash_value=record.get("os_hash_value") or None,
    )


def strong_hash(record: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(os_hash_algo, os_hash_value)`` when Glance computed one."""
    algo, value = record.get("os_hash_algo"), record.get("os_hash_value")
    return (algo, value) if algo and value else None


def expected_hash(image: Image) -> tuple[str, str] | None:
    """The strong hash a copy of ``image`` must have, when Glance computed one for it."""
    if image.os_hash_algo and image.os_hash_value:
        return image.os_hash_algo, image.os_hash_value
    return None


def as_property_value(value: Any) -> str:
    """Glance accepts only strings as property values."""
    return value if isinstance(value, str) else str(value)


def settable_properties(image: Image) -> dict[str, str]:
    """The user properties of ``image`` as Glance can store them (strings, not reserved)."""
    return {
        key: as_property_value(value)
        for key, value in image.user_properties.items()
        if is_user_property(key) and value is not None
    }


def create_request(image: Image) -> dict[str, Any]:
    """Keyword arguments of ``images.create`` for a copy of ``image``."""
    fields: dict[str, Any] = {
        "name": image.name,
        "visibility": image.visibility,
        "min_disk": int(image.min_disk or 0),
        "min_ram": int(image.min_ram or 0),
    }
    # Not "protected": a protected record cannot be deleted, so a failed upload could not
    # be cleaned up; the copy is protected once it is verified (see protect_patch).
    if image.hidden:
        fields["os_hidden"] = True
    if image.tags:
        fields["tags"] = sorted(image.tags)
    if image.disk_format:
        fields["disk_format"] = image.disk_format
    if image.container_format:
        fields["container_format"] = image.container_format
    fields.update(settable_properties(image))
    return fields


def _pointer(key: str) -> str:
    """A JSON pointer to a top-level member (RFC 6901 escaping)."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def _set(patch: list[dict[str, Any]], current: Mapping[str, Any], key: str, value: Any) -> None:
    if key not in current:
        patch.append({"op": "add", "path": _pointer(key), "value": value})
    elif current[key] != value:
        patch.append({"op": "replace", "path": _pointer(key), "value": value})


def wanted_visibility(current: str | None, wanted: Image) -> str:
    """``wanted``'s visibility when it says one; else public or not, as before.

    Where the engine synchronises only public-or-not (``visibility`` left out of
    ``sync_fields``, or a format-1 backup), a regional image an operator shared on
    purpose is not made private just because the master's copy is private.
    """
    if wanted.visibility_known:
        return wanted.visibility
    if wanted.is_public:
        return PUBLIC
    return current if current and current != PUBLIC else PRIVATE


def metadata_patch(current: Mapping[str, Any], wanted: Image) -> list[dict[str, Any]]:
    """The JSON-patch operations turning record ``current`` into ``wanted``'s metadata.

    Name, visibility, ``os_hidden``, ``min_disk``, ``min_ram`` and exactly ``wanted``'s
    user properties (kernel/ramdisk ids included): properties ``wanted`` lacks are
    removed explicitly, as v2 requires. Tags and members have calls of their own, and
    ``protected`` is set last, by :func:`protect_patch`.
    """
    patch: list[dict[str, Any]] = []
    _set(patch, current, "name", wanted.name)
    _set(patch, current, "visibility", wanted_visibility(current.get("visibility"), wanted))
    if bool(current.get("os_hidden")) != wanted.hidden:
        _set(patch, current, "os_hidden", wanted.hidden)
    for key in ("min_disk", "min_ram"):
        if int(current.get(key) or 0) != int(getattr(wanted, key) or 0):
            _set(patch, current, key, int(getattr(wanted, key) or 0))
    desired = settable_properties(wanted)
    for key, value in desired.items():
        _set(patch, current, key, value)
    for key in user_properties(current):
        if key not in desired:
            patch.append({"op": "remove", "path": _pointer(key)})
    return patch


def accepted_members(members: Iterable[Mapping[str, Any]]) -> list[str]:
    """The project ids of an image's members that accepted it, sorted."""
    return sorted(
        str(member["member_id"])
        for member in members
        if member.get("status") == "accepted" and member.get("member_id")
    )


def protect_patch(current: Mapping[str, Any], wanted: Image) -> list[dict[str, Any]]:
    """Protect the record when ``wanted`` is protected and it is not (never the reverse)."""
    if wanted.protected and not current.get("protected"):
        return [{"op": "replace", "path": "/protected", "value": True}]
    return []


def tag_changes(current: Mapping[str, Any], wanted: Image) -> tuple[list[str], list[str]]:
    """The tags to add and to remove so that the record has exactly ``wanted.tags``."""
    have = {str(tag) for tag in current.get("tags") or ()}
    want = set(wanted.tags)
    return sorted(want - have), sorted(have - want)


def verification_problems(
    record: Mapping[str, Any],
    size: int,
    checksum: str | None,
    expected_hash: tuple[str, str] | None,
) -> list[str]:
    """Why an uploaded image is not a faithful copy; empty when it is.

    The strong hash is compared only when both sides used the same algorithm (it is
    configurable per deployment); the MD5 checksum is always compared.
    """
    problems = []
    if record.get("status") != "active":
        problems.append(f"its status is {record.get('status')}, not active")
    if checksum and record.get("checksum") != checksum:
        problems.append(f"its checksum is {record.get('checksum')}, expected {checksum}")
    if size and record.get("size") not in (None, size):
        problems.append(f"its size is {record.get('size')}, expected {size}")
    actual_hash = strong_hash(record)
    same_algorithm = expected_hash and actual_hash and actual_hash[0] == expected_hash[0]
    if same_algorithm and actual_hash != expected_hash:
        problems.append(f"its {actual_hash[0]} hash differs from the master's")
    return problems

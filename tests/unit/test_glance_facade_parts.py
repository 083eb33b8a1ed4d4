"""The pure parts of the OpenStack facade: record mapping, JSON patches, streams, errors."""

from __future__ import annotations

import hashlib
import io
import threading

import pytest
from glanceclient import exc as glance_exc
from keystoneauth1 import exceptions as ks_exc

from fiwareglancesync.credentials import Credential
from fiwareglancesync.errors import FacadeError
from fiwareglancesync.facades.base import ChecksumMismatch, ImageData
from fiwareglancesync.facades.glance import _call_with_deadline, _SharedSchemas, _together
from fiwareglancesync.facades.glance_model import (
    accepted_members,
    create_request,
    image_from_record,
    metadata_patch,
    protect_patch,
    tag_changes,
    verification_problems,
)
from fiwareglancesync.facades.openstack_errors import (
    cannot_tell,
    describe,
    describe_auth,
    facade_error,
    is_transient,
)
from fiwareglancesync.facades.streams import (
    ChunkReader,
    SourceError,
    guarded_source,
    size_checked_chunks,
    verified_chunks_pipelined,
    with_progress,
)
from fiwareglancesync.image import Image

RECORD = {
    "id": "5e3c9a30-0000-4000-8000-000000000001",
    "name": "base",
    "status": "active",
    "visibility": "public",
    "protected": False,
    "checksum": "c" * 32,
    "os_hash_algo": "sha512",
    "os_hash_value": "f" * 128,
    "owner": "0042",
    "size": 1024,
    "virtual_size": None,
    "min_disk": 1,
    "min_ram": 256,
    "disk_format": "raw",
    "container_format": "bare",
    "created_at": "2024-01-01T00:00:00Z",
    "updated_at": "2024-01-01T00:00:00Z",
    "tags": [],
    "file": "/v2/images/x/file",
    "schema": "/v2/schemas/image",
    "os_hidden": False,
    "stores": "file1",
    "os_glance_importing_to_stores": "",
    "kernel_id": "k-1",
    "ramdisk_id": None,
    "type": "baseimages",
    "nid": "7",
}


def test_a_record_becomes_an_image_with_only_user_properties():
    image = image_from_record(RECORD, "RegionA")
    assert (image.name, image.region, image.size, image.owner) == ("base", "RegionA", 1024, "0042")
    assert image.is_public and image.status == "active"
    assert (image.disk_format, image.container_format, image.min_disk, image.min_ram) == (
        "raw",
        "bare",
        1,
        256,
    )
    # kernel_id is folded in (an attribute in v2), a null ramdisk_id is not a property.
    assert image.user_properties == {"kernel_id": "k-1", "type": "baseimages", "nid": "7"}


@pytest.mark.parametrize("os_hidden", [False, True, None])
def test_os_hidden_becomes_hidden(os_hidden):
    record = dict(RECORD, os_hidden=os_hidden)
    if os_hidden is None:
        del record["os_hidden"]
    assert image_from_record(record, "R").hidden is bool(os_hidden)


@pytest.mark.parametrize("visibility", ["private", "shared", "community"])
def test_only_public_visibility_counts_as_public(visibility):
    assert not image_from_record(dict(RECORD, visibility=visibility), "R").is_public


def test_create_request_sends_strings_and_attributes_only():
    wanted = Image(
        name="base",
        id="",
        disk_format="raw",
        container_format="bare",
        min_disk=2,
        min_ram=512,
        user_properties={
            "nid": 7,
            "sdc": True,
            "kernel_id": "k-2",
            "checksum": "x",  # core: Glance would answer 403
            "os_glance_x": "y",  # reserved
            "gone": None,
        },
    )
    assert create_request(wanted) == {
        "name": "base",
        "visibility": "private",
        "min_disk": 2,
        "min_ram": 512,
        "disk_format": "raw",
        "container_format": "bare",
        "nid": "7",
        "sdc": "True",
        "kernel_id": "k-2",
    }


def test_metadata_patch_sets_replaces_and_removes_explicitly():
    current = dict(RECORD, visibility="private")
    wanted = image_from_record(RECORD, "R").copy(
        name="base2",
        user_properties={"type": "other", "new/key": "v", "ramdisk_id": "r-1"},
    )
    assert metadata_patch(current, wanted) == [
        {"op": "replace", "path": "/name", "value": "base2"},
        {"op": "replace", "path": "/visibility", "value": "public"},
        {"op": "replace", "path": "/type", "value": "other"},
        {"op": "add", "path": "/new~1key", "value": "v"},
        {"op": "replace", "path": "/ramdisk_id", "value": "r-1"},
        {"op": "remove", "path": "/kernel_id"},
        {"op": "remove", "path": "/nid"},
    ]


def test_metadata_patch_is_empty_when_nothing_changes():
    assert metadata_patch(RECORD, image_from_record(RECORD, "R")) == []


@pytest.mark.parametrize(
    ("current", "public", "expected"),
    [("public", False, "private"), ("shared", False, None), ("community", True, "public")],
)
def test_metadata_patch_leaves_shared_and_community_alone_unless_made_public(
    current, public, expected
):
    # Where only public-or-not is synchronised (visibility not in sync_fields).
    record = dict(RECORD, visibility=current)
    told = "public" if public else "private"
    wanted = image_from_record(record, "R").copy(visibility=told, visibility_known=False)
    patch = metadata_patch(record, wanted)
    changes = [op["value"] for op in patch if op["path"] == "/visibility"]
    assert changes == ([expected] if expected else [])


@pytest.mark.parametrize("visibility", ["public", "private", "shared", "community"])
def test_metadata_patch_sets_any_of_the_four_visibilities_when_told_one(visibility):
    record = dict(RECORD, visibility="community" if visibility != "community" else "shared")
    wanted = image_from_record(record, "R").copy(visibility=visibility)
    patch = metadata_patch(record, wanted)
    assert [op["value"] for op in patch if op["path"] == "/visibility"] == [visibility]


def test_metadata_patch_carries_hidden_and_minimums_and_protection_is_separate():
    record = dict(RECORD, os_hidden=False, min_disk=0, min_ram=0, protected=False)
    wanted = image_from_record(record, "R").copy(
        hidden=True, min_disk=10, min_ram=512, protected=True
    )
    patch = {op["path"]: op["value"] for op in metadata_patch(record, wanted)}
    assert patch == {"/os_hidden": True, "/min_disk": 10, "/min_ram": 512}
    assert protect_patch(record, wanted) == [{"op": "replace", "path": "/protected", "value": True}]
    # Never the other way round: GlanceSync does not unprotect.
    assert protect_patch(dict(record, protected=True), wanted.copy(protected=False)) == []


def test_tags_are_changed_one_by_one_to_exactly_the_wanted_set():
    record = dict(RECORD, tags=["keep", "drop"])
    wanted = image_from_record(record, "R").copy(tags=("keep", "amphora"))
    assert tag_changes(record, wanted) == (["amphora"], ["drop"])


def test_a_record_gives_the_v2_fields_and_the_accepted_members():
    record = dict(RECORD, visibility="shared", tags=["b", "a"], protected=True)
    image = image_from_record(record, "R", ["p2", "p1"])
    assert (image.visibility, image.is_public) == ("shared", False)
    assert image.tags == ("a", "b") and image.protected
    assert image.members == ("p2", "p1")
    members = [
        {"member_id": "p1", "status": "accepted"},
        {"member_id": "p2", "status": "pending"},
        {"member_id": "p3", "status": "rejected"},
    ]
    assert accepted_members(members) == ["p1"]


def test_a_new_copy_is_created_with_its_fields_but_not_protected():
    image = image_from_record(dict(RECORD, visibility="community"), "R").copy(
        tags=("amphora",), hidden=True, protected=True
    )
    request = create_request(image)
    assert request["visibility"] == "community"
    assert request["tags"] == ["amphora"] and request["os_hidden"] is True
    assert "protected" not in request


def test_verification_accepts_a_faithful_copy():
    expected = ("sha512", "f" * 128)
    assert verification_problems(RECORD, 1024, "c" * 32, expected) == []
    # Another algorithm on the master's side: only the MD5 can be compared.
    assert verification_problems(RECORD, 1024, "c" * 32, ("sha256", "0" * 64)) == []


def test_verification_names_every_problem():
    record = dict(RECORD, status="queued", checksum="d" * 32, size=1000)
    problems = verification_problems(record, 1024, "c" * 32, ("sha512", "0" * 128))
    assert len(problems) == 4
    assert "queued" in problems[0] and "checksum" in problems[1]
    assert "size" in problems[2] and "sha512" in problems[3]


def test_chunk_reader_serves_chunks_as_a_file():
    reader = ChunkReader([b"abc", b"defgh", b"", b"ij"])
    assert reader.read(4) == b"abc"
    assert reader.read(3) == b"def"
    assert reader.read(10) == b"gh"
    assert reader.read(10) == b""  # an empty chunk is the end, as for a file
    assert ChunkReader([b"ab", b"cd"]).read() == b"abcd"


def test_guarded_source_renames_failures_of_the_source_only():
    class Refused(Exception):
        pass

    def failing(error):
        yield b"x"
        raise error

    with pytest.raises(SourceError, match="reading master image failed: boom"):
        list(guarded_source(failing(OSError("boom")), "master image"))
    with pytest.raises(Refused):
        list(guarded_source(failing(Refused()), "master image", passthrough=(Refused,)))


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal():
    plain = io.StringIO()
    assert list(with_progress([b"ab", b"cd"], 4, "RegionA: base", plain)) == [b"ab", b"cd"]
    assert plain.getvalue() == ""
    terminal = FakeTerminal()
    assert list(with_progress([b"ab", b"cd"], 4, "RegionA: base", terminal)) == [b"ab", b"cd"]
    assert "RegionA: base" in terminal.getvalue()


def test_error_lines_say_what_to_fix():
    forbidden = glance_exc.HTTPForbidden(
        "403 Forbidden: You are not authorized to complete publicize_image action."
    )
    assert "may not make images public" in describe(forbidden, "creating image base")
    assert "HTTP 404" in describe(glance_exc.HTTPNotFound("no such image"), "x")
    refused = ks_exc.ConnectFailure("Unable to establish connection to http://127.0.0.1:9")
    assert describe(refused, "listing the images").startswith("listing the images: cannot connect")
    bob = Credential.with_password("bob", "pw", "http://127.0.0.1:5000/v3", "demo")
    assert describe_auth(
        ks_exc.Unauthorized("The request you have made requires authentication."), bob
    ) == (
        "Keystone http://127.0.0.1:5000/v3 refused the credentials of user bob on project "
        "demo (HTTP 401): wrong user name, password, project or domain"
    )
    assert describe_auth(refused, bob).startswith("cannot reach Keystone at http://127.0.0.1:5000")


def test_a_refused_application_credential_is_named_in_one_line():
    credential = Credential(
        "v3applicationcredential",
        (
            ("auth_url", "http://k/v3"),
            ("application_credential_id", "ac1"),
            ("application_credential_secret", "s3cret"),
        ),
    )
    expired = ks_exc.Unauthorized("The request you have made requires authentication.")
    deleted = ks_exc.NotFound("Could not find Application Credential: ac1.")
    assert describe_auth(expired, credential) == (
        "Keystone http://k/v3: HTTP 401: application credential ac1 refused: "
        "expired, revoked, or a wrong secret"
    )
    assert describe_auth(deleted, credential) == (
        "Keystone http://k/v3: HTTP 401: application credential ac1 refused: "
        "it no longer exists (deleted or revoked)"
    )
    assert "s3cret" not in repr(credential)


def test_a_library_error_becomes_one_facade_error_with_the_status_the_cloud_answered():
    missing = glance_exc.HTTPNotFound("no such image")
    failure = facade_error(missing, "deleting image x")
    assert isinstance(failure, FacadeError)
    assert str(failure) == describe(missing, "deleting image x")
    assert failure.status == 404
    assert failure.service == FacadeError("").service  # the facade method names it
    refused = ks_exc.ConnectFailure("Unable to establish connection to http://127.0.0.1:9")
    assert facade_error(refused, "listing the images").status is None
    keystone = facade_error(glance_exc.HTTPForbidden("no"), "listing the projects", service="K")
    assert (keystone.status, keystone.service) == (403, "K")


def test_a_refused_token_is_told_by_describe_auth_and_keeps_its_status():
    bob = Credential.with_password("bob", "pw", "http://127.0.0.1:5000/v3", "demo")
    refused = ks_exc.Unauthorized("The request you have made requires authentication.")
    failure = facade_error(refused, "Keystone x", service="Keystone", credential=bob)
    assert str(failure) == describe_auth(refused, bob)
    assert (failure.status, failure.service) == (401, "Keystone")


@pytest.mark.parametrize(("status", "expected"), [(403, True), (404, True), (401, False)])
def test_only_403_and_404_mean_the_cloud_cannot_tell(status, expected):
    assert cannot_tell(FacadeError("x", status=status)) is expected
    assert not cannot_tell(FacadeError("timed out"))


def test_only_transient_failures_are_retried():
    assert is_transient(ks_exc.ConnectFailure("refused"))
    assert is_transient(glance_exc.HTTPServiceUnavailable())
    assert not is_transient(glance_exc.HTTPForbidden())
    assert not is_transient(glance_exc.HTTPConflict())


def test_a_deadline_bounds_a_call_that_never_returns():
    released = threading.Event()
    try:
        with pytest.raises(FacadeError, match="took longer than list_images_timeout"):
            _call_with_deadline(released.wait, 0.2, "listing the images")
    finally:
        released.set()
    assert _call_with_deadline(lambda: 42, 5, "x") == 42
    with pytest.raises(KeyError):
        _call_with_deadline(lambda: {}["missing"], 5, "x")


def _data(blocks: list[bytes], checksum: str) -> ImageData:
    return ImageData.from_stream(
        iter(blocks), Image(name="x", id="x", checksum=checksum, size=7), "test data"
    )


def test_pipelined_verification_passes_good_data_through_in_order():
    blocks = [bytes([n]) * (3000 + n) for n in range(7)]
    checksum = hashlib.md5(b"".join(blocks), usedforsecurity=False).hexdigest()
    assert list(verified_chunks_pipelined(_data(blocks, checksum))) == blocks


def test_pipelined_verification_holds_back_the_last_chunk_of_wrong_data():
    sent = []
    with pytest.raises(ChecksumMismatch, match="test data has checksum"):
        for block in verified_chunks_pipelined(_data([b"a" * 5000, b"b" * 5000], "0" * 32)):
            sent.append(block)
    assert sent == [b"a" * 5000]


def test_a_stream_from_the_master_is_checked_for_its_length():
    assert list(size_checked_chunks(_data([b"abc", b"defg"], "unused"))) == [b"abc", b"defg"]
    sent = []
    with pytest.raises(ChecksumMismatch, match="has 6 bytes, the master image has 7"):
        for block in size_checked_chunks(_data([b"abc", b"def"], "unused")):
            sent.append(block)
    assert sent == [b"abc"]


def test_calls_sent_together_keep_their_order_and_run_at_once():
    both_started = threading.Barrier(2, timeout=30)  # a sequential loop would break it

    def work(item):
        both_started.wait()
        return item * 2

    assert _together(work, [1, 2]) == [2, 4]
    assert _together(lambda item: item, []) == []


def test_calls_sent_together_raise_the_first_failure_in_order():
    def work(item):
        if item in (2, 3):
            raise glance_exc.HTTPNotFound(f"no {item}")
        return item

    with pytest.raises(glance_exc.HTTPNotFound, match="no 2"):
        _together(work, [1, 2, 3, 4, 5])


class _CountingHttp:
    def __init__(self):
        self.paths = []

    def get(self, path):
        self.paths.append(path)
        return None, {"name": "image", "properties": {"disk_format": {"enum": ["raw"]}}}


def test_one_glance_endpoint_reads_each_schema_once_whichever_client_asks():
    http = _CountingHttp()
    cache = {}
    first, second = _SharedSchemas(http, cache), _SharedSchemas(http, cache)
    assert first.get("image").raw() == second.get("image").raw()
    second.get("member")
    assert http.paths == ["/v2/schemas/image", "/v2/schemas/member"]

"""The pure parts of the transfer methods: choosing one, reading Glance's import answers,
resuming a broken download, and the plan's actions as the executor runs them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest
from builders import RecordingRegion, image, run_sync, statuses_after, target

from fiwareglancesync.actions import RENAME, REPLACE, UPLOAD, Desired, Transfer
from fiwareglancesync.apply import apply_plan
from fiwareglancesync.config import Credential
from fiwareglancesync.errors import RegionError
from fiwareglancesync.facades.base import Facade, ImageData, ImportSource
from fiwareglancesync.facades.glance_import import (
    import_failure,
    import_progress,
    import_request,
    offered_import_methods,
)
from fiwareglancesync.facades.streams import (
    ResumeImpossible,
    SourceError,
    range_start,
    resumable_chunks,
    short_reason,
)
from fiwareglancesync.plan import plan_region
from fiwareglancesync.region import RegionRef
from fiwareglancesync.transfer_methods import RegionSender, same_keystone

REGION = RegionRef("master", "RegionA")
MASTER = RegionRef("master", "Master")

# --------------------------------------------------------------------------- choosing


class Catalog(RecordingRegion):
    """Just enough of a facade to answer import_methods and record uploads."""

    def __init__(self, methods: frozenset[str] = frozenset()):
        self.methods = methods
        self.asked = 0
        self.calls: list[str] = []

    def import_methods(self, region):
        self.asked += 1
        return self.methods

    def import_image(self, region, image, source, fallback):
        self.calls.append(f"import {image.name} from {source.region} ({source.timeout:g} s)")
        return image.copy(id="new", status="active")

    def upload(self, region, image, data):
        block = b"".join(data.chunks())
        self.calls.append(f"upload {image.name} ({len(block)} bytes from {data.source})")
        return image.copy(id="new", status="active")


def sender(facade: Facade, transfer: str = "auto", keystone: str | None = None, files=()):
    master_target = target()
    region_target = target(transfer=transfer, import_timeout=42.0)
    if keystone:
        credential = Credential.with_password("admin", "secret", keystone, "tenant1")
        region_target = replace(region_target, name="other", credential=credential)

    def open_data(master):
        return ImageData.from_stream(iter([b"x" * master.size]), master, "the master")

    return RegionSender(
        region=REGION,
        facade=facade,
        target=region_target,
        master_target=master_target,
        master_region=MASTER,
        open_data=open_data,
        has_file=lambda master: master.name in files,
    )


def test_auto_imports_where_the_glance_offers_glance_download():
    facade = Catalog(frozenset({"glance-direct", "glance-download"}))
    chooser = sender(facade)
    assert chooser.method(image("a")) == "glance-download"
    assert chooser.method(image("b")) == "glance-download"
    assert facade.asked == 1  # asked once per region


@pytest.mark.parametrize("transfer", ["auto", "stream"])
def test_otherwise_a_file_from_images_dir_else_a_stream(transfer):
    offered = frozenset({"glance-download"}) if transfer == "stream" else frozenset()
    chooser = sender(Catalog(offered), transfer, files={"a"})
    assert chooser.method(image("a")) == "file"
    assert chooser.method(image("b")) == "stream"


def test_a_region_of_another_keystone_never_imports():
    chooser = sender(Catalog(frozenset({"glance-download"})), keystone="http://other:5000/v3")
    assert chooser.method(image("a")) == "stream"


def test_the_same_keystone_whatever_the_spelling_of_its_url():
    one = target()
    other = replace(
        one, credential=Credential.with_password("u", "p", " HTTP://127.0.0.1:5000/v3/ ", "tenant1")
    )
    assert same_keystone(one, other)


@pytest.mark.parametrize(
    ("offered", "keystone", "reason"),
    [
        (frozenset({"web-download"}), None, "does not offer glance-download (it offers: web"),
        (frozenset(), None, "(it offers: none)"),
        (frozenset({"glance-download"}), "http://other/v3", "not in the master's Keystone"),
    ],
)
def test_forced_glance_download_where_impossible_is_an_error(offered, keystone, reason):
    chooser = sender(Catalog(offered), "glance-download", keystone=keystone)
    with pytest.raises(RegionError) as raised:
        chooser.method(image("a"))
    assert "transfer is glance-download, but RegionA cannot use it" in str(raised.value)
    assert reason in str(raised.value)


def test_sending_counts_the_bytes_that_went_through_this_host():
    facade = Catalog()
    chooser = sender(facade)
    chooser.send(image("a", size=10), image("a", size=10))
    assert facade.calls == ["upload a (10 bytes from the master)"]
    assert chooser.streamed_bytes == 10
    imports = Catalog(frozenset({"glance-download"}))
    chooser = sender(imports)
    chooser.send(image("b", size=10), image("b", size=10))
    assert imports.calls == ["import b from Master (42 s)"]
    assert chooser.streamed_bytes == 0


# --------------------------------------------------------------------------- Glance's answers


def test_import_methods_are_read_from_the_discovery_answer():
    answer = {"import-methods": {"description": "...", "value": ["glance-direct", 3]}}
    assert offered_import_methods(answer) == {"glance-direct"}
    for malformed in (None, [], {"import-methods": "x"}, {"import-methods": {"value": "x"}}):
        assert offered_import_methods(malformed) == frozenset()


def test_the_import_request_names_the_master_image_and_region():
    source = ImportSource(MASTER, image("a", image_id="m-1"), 60)
    assert import_request(source) == {
        "method": {
            "name": "glance-download",
            "glance_image_id": "m-1",
            "glance_region": "Master",
            "glance_service_interface": "public",
        }
    }


def task(status, message="", created="2026-01-01T00:00:00Z", kind="api_image_import"):
    return {"status": status, "message": message, "created_at": created, "type": kind}


@pytest.mark.parametrize(
    ("record", "tasks", "expected"),
    [
        ({"status": "importing"}, [task("processing")], None),
        ({"status": "queued"}, [task("pending")], None),
        ({"status": "queued"}, [], None),
        # A finished failure leaves the record queued and free: it can take the data.
        ({"status": "queued"}, [task("failure", "Source gone")], ("Source gone", True)),
        ({"status": "importing"}, [task("failure")], ("the import task failed", False)),
        (
            {"status": "queued", "os_glance_failed_import": "fs"},
            [task("processing")],
            ("Glance could not import it into store fs", False),
        ),
        ({"status": "killed"}, [task("failure", "boom")], ("the image became killed: boom", False)),
    ],
)
def test_import_failures_and_whether_the_record_can_be_reused(record, tasks, expected):
    assert import_failure(record, tasks) == expected


def test_the_latest_import_task_is_the_one_that_counts():
    tasks = [
        task("failure", "old", created="2026-01-01T00:00:00Z"),
        task("processing", created="2026-01-02T00:00:00Z"),
        task("failure", "not an import", created="2026-01-03T00:00:00Z", kind="other"),
    ]
    assert import_failure({"status": "importing"}, tasks) is None
    assert import_progress({"status": "importing"}, tasks) == "image importing, task processing"
    assert import_progress({"status": "queued"}, []) == "image queued, no import task"


# --------------------------------------------------------------------------- resumed streams


@dataclass
class Body:
    """A streamed response whose body breaks after ``cut`` bytes (None: it does not)."""

    data: bytes
    cut: int | None = None
    closed: bool = False
    log: list[str] = field(default_factory=list)

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        end = len(self.data) if self.cut is None else self.cut
        for start in range(0, end, 4):
            yield self.data[start : min(start + 4, end)]
        if self.cut is not None:
            raise ConnectionError("connection reset")

    def close(self) -> None:
        self.closed = True


DATA = bytes(range(40))


def test_a_broken_download_is_resumed_from_the_byte_reached():
    opened: list[int] = []
    pauses: list[float] = []

    def reopen(offset):
        opened.append(offset)
        return Body(DATA[offset:], cut=None if offset >= 15 else 5)

    first = Body(DATA, cut=10)
    chunks = resumable_chunks(
        first, reopen, len(DATA), "image m", (ConnectionError,), sleep=pauses.append
    )
    assert b"".join(chunks) == DATA
    assert opened == [10, 15]
    assert first.closed
    assert pauses == [1.0, 2.0]


def test_a_download_that_keeps_breaking_gives_up_after_the_attempts(caplog):
    caplog.set_level(logging.WARNING)
    reopened = []

    def reopen(offset):
        reopened.append(offset)
        return Body(DATA[offset:], cut=2)

    chunks = resumable_chunks(
        Body(DATA, cut=4),
        reopen,
        len(DATA),
        "image m",
        (ConnectionError,),
        attempts=3,
        sleep=lambda _: None,
    )
    with pytest.raises(SourceError, match=r"broke at byte 10 of 40, 3 resumed downloads later"):
        b"".join(chunks)
    assert reopened == [4, 6, 8]
    assert "resuming from there (3 of 3)" in caplog.text


def test_a_body_that_ends_short_counts_as_broken():
    def reopen(offset):
        return Body(DATA[offset:])

    short = Body(DATA[:30])
    assert b"".join(resumable_chunks(short, reopen, 40, "m", (), sleep=lambda _: None)) == DATA


def test_a_source_without_ranges_is_not_retried():
    calls = []

    def reopen(offset):
        calls.append(offset)
        raise ResumeImpossible("HTTP 200 to a Range request")

    chunks = resumable_chunks(
        Body(DATA, cut=8), reopen, 40, "m", (ConnectionError,), sleep=lambda _: None
    )
    with pytest.raises(ResumeImpossible):
        b"".join(chunks)
    assert calls == [8]


def test_a_bug_is_not_taken_for_a_broken_connection():
    class Buggy(Body):
        def iter_content(self, chunk_size):
            raise KeyError("bug")
            yield b""

    with pytest.raises(KeyError):
        b"".join(resumable_chunks(Buggy(DATA), None, 40, "m", (ConnectionError,)))


@pytest.mark.parametrize(
    ("header", "start"),
    [("bytes 10-39/40", 10), ("bytes 0-0/1", 0), (None, None), ("bytes */40", None), ("x", None)],
)
def test_range_start(header, start):
    assert range_start(header) == start


# --------------------------------------------------------------------------- actions


def test_transfers_describe_themselves_for_dry_runs():
    master = image("fedora", size=120 * 1048576)
    desired = Desired("fedora", True)
    assert Transfer(master, desired).describe("glance-download") == (
        "would upload fedora (120 MB) by glance-download"
    )
    assert Transfer(master, desired, REPLACE).describe("stream") == (
        "would replace fedora (120 MB) by stream, then delete the old copy"
    )
    assert (
        Transfer(master, desired, RENAME)
        .describe("file")
        .endswith("then rename the old copy to fedora.old")
    )
    assert Transfer(master, desired, UPLOAD).describe() == "would upload fedora (120 MB)"


def test_a_forced_method_that_cannot_work_fails_before_anything_changes():
    master = [image("a"), image("b", user_properties={"k": "new"})]
    regional = [image("b", user_properties={"k": "old"}, region="master:RegionA")]
    plan = plan_region(REGION, master, regional, target(), "tenant1id")
    facade = Catalog(frozenset())
    with pytest.raises(RegionError):
        apply_plan(
            plan,
            facade,
            sender(facade, "glance-download"),
            regional,
            statuses_after(REGION, master, target(), "tenant1id"),
        )
    assert facade.calls == []  # the metadata update of b did not happen either


def test_actions_run_in_order_and_ami_names_resolve_to_new_ids():
    kernel = image("kernel", image_id="mk")
    ami = image("ami", user_properties={"kernel_id": "mk", "type": "x"})
    plan = plan_region(REGION, [ami, kernel], [], target(), "tenant1id")
    assert [(type(a).__name__, a.name) for a in plan.actions] == [
        ("Transfer", "kernel"),
        ("Transfer", "ami"),
    ]
    assert plan.actions[1].desired.kernel == "kernel"
    created: list = []

    class Recording(Catalog):
        def upload(self, region, image, data):
            created.append(image)
            return image.copy(id=f"r-{image.name}", status="active")

    facade = Recording()
    statuses_of = statuses_after(REGION, [ami, kernel], target(), "tenant1id")
    result = apply_plan(plan, facade, sender(facade), [], statuses_of)
    assert [i.name for i in created] == ["kernel", "ami"]
    assert result.found == {"pending_upload": 2}
    assert result.left == {"ok": 2}  # both uploaded, the ami pointing at the new kernel
    assert created[1].user_properties == {"type": "x", "kernel_id": "r-kernel"}
    assert created[1].region == "RegionA"
    assert result.uploaded_images == 2


def test_dry_run_says_how_each_image_would_travel(tmp_path):
    store = tmp_path / "store"
    folder = tmp_path / "backup"
    folder.mkdir()
    (folder / "backup_Master.csv").write_text(
        "Master,img,id1,active,1048576,c1,tenant1id,True,{}\n"
        "Master,local,id2,active,2097152,c2,tenant1id,True,{}\n"
    )
    (folder / "backup_Other.csv").write_text("")
    images = tmp_path / "images"
    images.mkdir()
    (images / "id2").write_bytes(b"")
    conf = tmp_path / "glancesync.conf"
    conf.write_text(
        "[main]\nmaster_region = Master\n"
        f"images_dir = {images}\n"
        "[master]\ncredential = admin,c2VjcmV0,http://127.0.0.1:5000/v3,tenant1\n"
        "tenant_id = tenant1id\n"
    )
    from fiwareglancesync.mock import main as load_main

    assert load_main(["--path", str(store), str(folder)]) == 0
    environ = {"GLANCESYNC_CONFIG": str(conf), "GLANCESYNC_MOCKPERSISTENT_PATH": str(store)}
    status, out, err = run_sync(["--dry-run", "Other"], environ)
    assert status == 0, err
    assert "INFO:Other: would upload img (1 MB) by stream" in out.splitlines()
    assert "INFO:Other: would upload local (2 MB) by file" in out.splitlines()


def test_a_wrapped_transport_error_is_told_in_one_short_line():
    import requests
    import urllib3

    inner = urllib3.exceptions.ProtocolError(
        "Connection broken: IncompleteRead(10 bytes read, 30 more expected)", ValueError("x")
    )
    wrapped = requests.exceptions.ChunkedEncodingError(inner)
    assert short_reason(wrapped) == (
        "Connection broken: IncompleteRead(10 bytes read, 30 more expected)"
    )
    assert short_reason(ConnectionError()) == "ConnectionError"

"""The pre-flight checks in a run: where the sender asks, what the executor does with a
refusal, dry runs, and the ``preflight`` option."""

from __future__ import annotations

import base64
import hashlib
import logging

import pytest
from builders import RecordingRegion, image, statuses_after, target
from test_preflight import qcow2_image, raw_disk

from fiwareglancesync.apply import apply_plan
from fiwareglancesync.config import build_config, read_config_text
from fiwareglancesync.dryrun import print_plan
from fiwareglancesync.errors import FacadeError, PreflightRefused, RegionError
from fiwareglancesync.facades.base import Facade, ImageData
from fiwareglancesync.plan import plan_region
from fiwareglancesync.preflight import AcceptedFormats
from fiwareglancesync.region import RegionRef
from fiwareglancesync.transfer_methods import RegionSender

REGION = RegionRef("master", "RegionA")
MASTER = RegionRef("master", "Master")
MiB = 1024 * 1024
ANY_FORMAT = AcceptedFormats(
    frozenset({"raw", "qcow2", "ami", "aki", "ari"}),
    frozenset({"bare", "ovf", "ami", "aki", "ari"}),
)


class Region(RecordingRegion):
    """A region that answers the pre-flight questions as told, and records the rest."""

    def __init__(self, formats=ANY_FORMAT, usage=None, methods=frozenset(), imports_fail=False):
        self.imports_fail = imports_fail
        self.formats = formats
        self.usage = usage or {}
        self.methods = methods
        self.asked: list[str] = []
        self.calls: list[str] = []

    def accepted_formats(self, region):
        self.asked.append("formats")
        return self.formats

    def image_limits(self, region):
        self.asked.append("usage")
        return self.usage

    def import_methods(self, region):
        return self.methods

    def import_image(self, region, image, source, fallback):
        self.calls.append(f"import {image.name}")
        if self.imports_fail:  # as GlanceFacade does: the data goes by this host instead
            return self.upload(region, image, fallback())
        return image.copy(id=f"r-{image.name}", status="active")

    def upload(self, region, image, data):
        self.calls.append(f"upload {image.name}")
        return image.copy(id=f"r-{image.name}", status="active")


def raw(name: str, size: int = MiB, **fields) -> object:
    fields.setdefault("disk_format", "raw")
    fields.setdefault("container_format", "bare")
    return image(name, size=size, **fields)


def sender(
    facade: Facade, heads=None, files=(), preflight=True, transfer="auto", head_formats=None
):
    """A sender whose master images start with ``heads[name]`` (raw data otherwise)."""
    heads = heads or {}
    reads: list[tuple[str, bool]] = []

    def read_head(master, from_file):
        reads.append((master.name, from_file))
        return heads.get(master.name, raw_disk(min(master.size, MiB)))

    def open_data(master):
        return ImageData.from_stream(iter([b"x" * master.size]), master, "the master")

    chosen = RegionSender(
        region=REGION,
        facade=facade,
        target=target(preflight=preflight, transfer=transfer),
        master_target=target(),
        master_region=MASTER,
        open_data=open_data,
        has_file=lambda master: master.name in files,
        read_head=read_head,
        head_formats={} if head_formats is None else head_formats,
    )
    chosen.reads = reads  # type: ignore[attr-defined]
    return chosen


# --------------------------------------------------------------------------- the sender


def test_a_refused_image_creates_nothing_in_the_region():
    facade = Region(formats=AcceptedFormats(frozenset({"qcow2"}), None))
    chooser = sender(facade)
    with pytest.raises(PreflightRefused) as refused:
        chooser.send(raw("a"), raw("a"))
    assert str(refused.value) == (
        "image a refused before the transfer: the region's Glance does not accept "
        "disk_format raw (it accepts: qcow2)"
    )
    assert refused.value.image == "a"
    assert facade.calls == []
    assert chooser.reads == []  # the cheap checks refused it: no data was read


def test_formats_are_asked_once_per_region_and_the_quota_for_every_image():
    facade = Region()
    chooser = sender(facade)
    for name in ("a", "b", "c"):
        chooser.send(raw(name), raw(name))
    assert facade.asked == ["formats", "usage", "usage", "usage"]
    assert facade.calls == ["upload a", "upload b", "upload c"]


def test_the_quota_is_read_afresh_for_every_image():
    facade = Region()
    chooser = sender(facade)
    chooser.send(raw("a", 3 * MiB), raw("a", 3 * MiB))
    # The region filled up meanwhile (this run's upload, or someone else's).
    facade.usage = {"image_size_total": {"usage": 9, "limit": 10}}
    with pytest.raises(PreflightRefused, match=r"3 MB would exceed .* quota \(used 9 of 10 MB\)"):
        chooser.send(raw("b", 3 * MiB), raw("b", 3 * MiB))
    assert facade.calls == ["upload a"]


@pytest.mark.parametrize(
    ("methods", "files", "from_file", "call"),
    [
        (frozenset(), (), False, "upload a"),  # stream: the master's first MiB
        (frozenset(), ("a",), True, "upload a"),  # file: the file's first MiB
    ],
    ids=["stream", "file"],
)
def test_the_data_is_read_from_where_the_method_takes_it(methods, files, from_file, call):
    facade = Region(methods=methods)
    chooser = sender(facade, files=files)
    chooser.send(raw("a", 5 * MiB), raw("a", 5 * MiB))
    assert chooser.reads == [("a", from_file)]
    assert facade.calls == [call]


def test_a_glance_download_reads_the_first_mib_from_the_master():
    facade = Region(methods=frozenset({"glance-download"}))
    chooser = sender(facade, heads={"a": bytes(1000)})
    chooser.send(raw("a"), raw("a"))
    assert (chooser.reads, facade.calls, chooser.streamed_bytes) == (
        [("a", False)],
        ["import a"],
        1000,
    )


def test_qcow2_data_labelled_raw_is_refused_before_a_glance_download():
    facade = Region(methods=frozenset({"glance-download"}))
    chooser = sender(facade, heads={"a": qcow2_image()})
    with pytest.raises(PreflightRefused, match="its data is qcow2, but its disk_format is raw"):
        chooser.send(raw("a"), raw("a"))
    assert facade.calls == []


@pytest.mark.parametrize("files", [(), ("a",)], ids=["from the master", "from the file"])
def test_a_failed_import_is_checked_before_its_fallback_sends_anything(files):
    facade = Region(methods=frozenset({"glance-download"}), imports_fail=True)
    chooser = sender(facade, heads={"a": qcow2_image()}, files=files)
    reads: list[bool] = []

    def master_unreadable_at_first(master, from_file):
        # Before the import the master's first MiB cannot be read: the import goes on.
        reads.append(from_file)
        if len(reads) == 1:
            raise RegionError("the master Glance is unreachable")
        return qcow2_image()

    chooser.read_head = master_unreadable_at_first
    with pytest.raises(PreflightRefused, match="its data is qcow2, but its disk_format is raw"):
        chooser.send(raw("a"), raw("a"))
    assert facade.calls == ["import a"]  # and no upload
    assert reads == [False, bool(files)]


def test_qcow2_data_labelled_raw_is_refused_when_streamed():
    facade = Region()
    chooser = sender(facade, heads={"a": qcow2_image()})
    with pytest.raises(PreflightRefused, match="its data is qcow2, but its disk_format is raw"):
        chooser.send(raw("a"), raw("a"))
    assert facade.calls == []


def test_the_bytes_read_for_the_check_count_as_streamed():
    facade = Region()
    chooser = sender(facade, heads={"b": bytes(1000)})
    chooser.send(raw("a", 5 * MiB), raw("a", 5 * MiB))
    chooser.send(raw("b", 1000), raw("b", 1000))
    # The check's reads, plus the streams (the Region stub reads none of their data).
    assert chooser.streamed_bytes == MiB + 1000


def test_an_image_is_read_once_whatever_the_number_of_regions():
    found: dict[str, list[str]] = {}  # what the engine shares between its regions' senders
    first = sender(Region(), heads={"a": qcow2_image()}, head_formats=found)
    second = sender(Region(), heads={"a": qcow2_image()}, head_formats=found)
    for chooser in (first, second):
        with pytest.raises(PreflightRefused, match="its data is qcow2"):
            chooser.send(raw("a"), raw("a"))
    assert (first.reads, second.reads) == ([("a", False)], [])
    assert (first.streamed_bytes, second.streamed_bytes) == (len(qcow2_image()), 0)


def test_images_the_inspector_cannot_judge_are_not_read():
    facade = Region()
    chooser = sender(facade)
    kernel = raw("k", disk_format="aki", container_format="aki")
    chooser.send(kernel, kernel)
    chooser.send(raw("ovf", container_format="ovf"), raw("ovf", container_format="ovf"))
    assert chooser.reads == []
    assert facade.calls == ["upload k", "upload ovf"]


def test_a_source_that_cannot_tell_passes():
    facade = Region(formats=None, usage=None)
    chooser = sender(facade)
    chooser.read_head = lambda master, from_file: None
    chooser.send(raw("a"), raw("a"))
    assert facade.calls == ["upload a"]


def test_preflight_false_asks_and_reads_nothing():
    facade = Region(formats=AcceptedFormats(frozenset({"qcow2"}), None))
    chooser = sender(facade, heads={"a": qcow2_image()}, preflight=False)
    chooser.send(raw("a"), raw("a"))
    assert facade.asked == [] and chooser.reads == []
    assert facade.calls == ["upload a"]


# --------------------------------------------------------------------------- the executor


def ami_family():
    kernel = raw("kernel", image_id="mk")
    ami = raw("ami", user_properties={"kernel_id": "mk"})
    other = raw("other")
    return [kernel, ami, other]


def test_a_refused_image_is_skipped_and_the_region_ends_with_errors(caplog):
    caplog.set_level(logging.INFO)
    family = ami_family()
    plan = plan_region(REGION, family, [], target(), "tenant1id")
    facade = Region()
    chooser = sender(facade, heads={"kernel": qcow2_image()})

    with pytest.raises(RegionError) as failed:
        apply_plan(plan, facade, chooser, [], statuses_after(REGION, family, target(), "tenant1id"))

    assert str(failed.value) == "1 image refused before the transfer: kernel"
    assert facade.calls == ["upload ami", "upload other"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "RegionA: image kernel refused before the transfer: its data is qcow2, but its "
        "disk_format is raw"
    ]
    # Its dependant goes without it, as when a kernel cannot be found.
    assert "RegionA: Not found kernel on region. It should be kernel_id of image ami" in (
        caplog.text
    )
    assert "RegionA:   Total uploaded to region: 2 (MB)" in caplog.text


def test_several_refusals_are_counted_at_the_end():
    master = [raw("a"), raw("b"), raw("c")]
    plan = plan_region(REGION, master, [], target(), "tenant1id")
    facade = Region()
    chooser = sender(facade, heads={"a": qcow2_image(), "c": qcow2_image()})
    statuses_of = statuses_after(REGION, master, target(), "tenant1id")
    with pytest.raises(
        RegionError, match=r"^2 images refused before the transfer: a, c$"
    ) as failed:
        apply_plan(plan, facade, chooser, [], statuses_of)
    assert facade.calls == ["upload b"]
    # What it left: b is there, the refused two still wait for their upload.
    assert failed.value.result.left == {"ok": 1, "pending_upload": 2}


def test_a_dry_run_says_what_would_be_refused_and_changes_nothing(caplog):
    caplog.set_level(logging.INFO)
    plan = plan_region(REGION, ami_family(), [], target(), "tenant1id")
    facade = Region()
    chooser = sender(facade, heads={"kernel": qcow2_image()})

    with pytest.raises(RegionError, match=r"^1 image would be refused before the transfer"):
        print_plan(plan, chooser)

    assert facade.calls == []
    lines = [r.getMessage() for r in caplog.records]
    assert (
        "RegionA: would refuse kernel before the transfer: its data is qcow2, but its "
        "disk_format is raw"
    ) in lines
    assert "RegionA: would upload kernel (1 MB) by stream" not in lines
    assert "RegionA: would upload other (1 MB) by stream" in lines
    assert "RegionA: MBs pending : 2" in lines  # the refused image is not counted
    # As in the sync: with its kernel refused, the image would go without it.
    assert "RegionA: Not found kernel on region. It should be kernel_id of image ami" in lines
    [refusal] = [r for r in caplog.records if "would refuse" in r.getMessage()]
    assert refusal.levelno == logging.WARNING


def test_a_dry_run_counts_what_it_would_have_sent_against_the_quota(caplog):
    caplog.set_level(logging.INFO)
    images = [raw("a", 2 * MiB), raw("b", 2 * MiB), raw("c", 2 * MiB)]
    plan = plan_region(REGION, images, [], target(), "tenant1id")
    # 5 MB free: a real run uploads a and b, and the usage it reads then refuses c.
    facade = Region(usage={"image_size_total": {"usage": 1, "limit": 6}})

    with pytest.raises(RegionError, match=r"^1 image would be refused before the transfer: c$"):
        print_plan(plan, sender(facade))

    assert (
        "RegionA: would refuse c before the transfer: 2 MB would exceed the region's "
        "image_size_total quota (used 5 of 6 MB)"
    ) in [r.getMessage() for r in caplog.records]


# --------------------------------------------------------------------------- the option


def test_preflight_is_a_target_option_on_by_default():
    secret = base64.b64encode(b"s").decode()
    text = (
        "[main]\nmaster_region = R\n"
        f"[master]\ncredential = a,{secret},http://k/v3,p\n"
        f"[other]\ncredential = a,{secret},http://k2/v3,p\npreflight = false\n"
    )
    config = build_config(read_config_text(text, "test.conf"), {}, "test.conf", [])
    assert config.targets["master"].preflight is True
    assert config.targets["other"].preflight is False
    bad = text.replace("preflight = false", "preflight = maybe")
    with pytest.raises(Exception, match="preflight"):
        build_config(read_config_text(bad, "test.conf"), {}, "test.conf", [])


# --------------------------------------------------------------------------- reading failures


def test_data_that_cannot_be_read_here_is_sent_unchecked_with_a_warning(caplog):
    facade = Region()
    chooser = sender(facade)

    def unreadable(master, from_file):
        raise RegionError("reading the first bytes of image a: HTTP 500")

    chooser.read_head = unreadable
    chooser.send(raw("a"), raw("a"))

    assert facade.calls == ["upload a"]  # the stream itself says whether it can be read
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == (
        "RegionA: the data of a is not checked before the transfer: reading the first "
        "bytes of image a: HTTP 500"
    )


def test_a_region_that_fails_to_answer_fails_as_any_call_to_it_would():
    class Broken(Region):
        def image_limits(self, region):
            raise FacadeError("reading the image quota: HTTP 500")

    facade = Broken()
    with pytest.raises(FacadeError, match="HTTP 500"):
        sender(facade).send(raw("a"), raw("a"))
    assert facade.calls == []


# --------------------------------------------------------------------------- a whole run


def backup_row(name: str, image_id: str, data: bytes) -> str:
    """A format-2 backup row (the 18 columns) of a public raw image of the master."""
    checksum = hashlib.md5(data, usedforsecurity=False).hexdigest()
    glance_fields = "public,,False,False,0,0,raw,bare,"
    return f"Master,{name},{image_id},active,{len(data)},{checksum},tenant1id,True,{{}},{glance_fields}\n"


def mock_installation(tmp_path, images: dict[str, bytes], with_files: bool):
    """A mock master with raw images id1 (good) and id2 (bad), an empty region Other, and
    their data in images_dir if ``with_files``."""
    from fiwareglancesync.image import CSV_FIELDS
    from fiwareglancesync.mock import main as load_main

    folder, images_dir, store = tmp_path / "backup", tmp_path / "images", tmp_path / "store"
    folder.mkdir()
    images_dir.mkdir()
    rows = [backup_row(name, f"id{n}", data) for n, (name, data) in enumerate(images.items(), 1)]
    (folder / "backup_Master.csv").write_text(",".join(CSV_FIELDS) + "\n" + "".join(rows))
    (folder / "backup_Other.csv").write_text("")
    if with_files:
        for n, data in enumerate(images.values(), 1):
            (images_dir / f"id{n}").write_bytes(data)
    conf = tmp_path / "glancesync.conf"
    conf.write_text(
        "[main]\nmaster_region = Master\n"
        f"images_dir = {images_dir}\n"
        "[master]\ncredential = admin,c2VjcmV0,http://127.0.0.1:5000/v3,tenant1\n"
        "tenant_id = tenant1id\n"
    )
    assert load_main(["--path", str(store), str(folder)]) == 0
    return {"GLANCESYNC_CONFIG": str(conf), "GLANCESYNC_MOCKPERSISTENT_PATH": str(store)}, store


GOOD_AND_BAD = {"good": raw_disk(2 * MiB), "bad": qcow2_image(length=2 * MiB)}


def test_the_mock_checks_images_dir_files_and_refuses_a_qcow2_labelled_raw(tmp_path):
    from builders import run_sync

    from fiwareglancesync.facades.mock_facade import JournalStore

    # The mock keeps no bytes: only a file of images_dir has data to check.
    environ, store = mock_installation(tmp_path, GOOD_AND_BAD, with_files=True)

    status, out, err = run_sync(["Other"], environ)

    assert status == 1, out + err
    errors = [line for line in out.splitlines() if line.startswith("ERROR")]
    assert errors == [
        "ERROR:Other: image bad refused before the transfer: its data is qcow2, but its "
        "disk_format is raw",
        "ERROR:Other: 1 image refused before the transfer: bad",
    ]
    assert [i.name for i in JournalStore(str(store)).read("Other")] == ["good"]


def test_a_region_with_refusals_fails_but_its_figures_count_what_it_did(tmp_path):
    from builders import run_sync

    environ, _ = mock_installation(tmp_path, GOOD_AND_BAD, with_files=True)
    metrics = tmp_path / "glancesync.prom"

    status, out, err = run_sync(["--metrics-file", str(metrics), "Other"], environ)

    assert status == 1, out + err
    lines = metrics.read_text().splitlines()
    assert 'glancesync_region_last_run_success{region="Other"} 0.0' in lines
    assert 'glancesync_uploaded_images{region="Other"} 1.0' in lines
    assert 'glancesync_uploaded_bytes{region="Other"} 2.097152e+06' in lines


def test_the_mock_master_has_no_data_to_check_and_passes_everything(tmp_path):
    from builders import run_sync

    environ, _ = mock_installation(tmp_path, GOOD_AND_BAD, with_files=False)
    status, out, err = run_sync(["Other"], environ)
    assert status == 0, out + err
    assert "refused" not in out


def test_the_mock_accepts_only_the_formats_of_glances_default_schema(tmp_path):
    from builders import run_sync

    from fiwareglancesync.facades.mock_facade import JournalStore

    environ, store = mock_installation(
        tmp_path, {"good": raw_disk(MiB), "odd": raw_disk(MiB)}, with_files=False
    )
    master = JournalStore(str(store)).read("Master")
    for found in master:
        if found.name == "odd":
            found.disk_format = "vhdz"
    JournalStore(str(store)).write("Master", master)
    accepted = "aki, ami, ari, iso, ploop, qcow2, raw, vdi, vhd, vhdx, vmdk"

    status, out, err = run_sync(["Other"], environ)

    assert status == 1, out + err
    assert (
        "ERROR:Other: image odd refused before the transfer: the region's Glance does not "
        f"accept disk_format vhdz (it accepts: {accepted})"
    ) in out.splitlines()
    assert [i.name for i in JournalStore(str(store)).read("Other")] == ["good"]

    # Without the pre-flight check, the upload itself refuses it, as Glance would.
    status, out, err = run_sync(["Other", "--config", "master.preflight=false"], environ)

    assert status == 1, out + err
    assert (
        "ERROR:Other: refused to upload image odd: the region's Glance does not accept "
        f"disk_format vhdz (it accepts: {accepted})"
    ) in out.splitlines()
    assert [i.name for i in JournalStore(str(store)).read("Other")] == ["good"]

"""sync.py end to end on the real test cloud: statuses, actions, targets, modes.

Each test starts from empty regions, seeds the master (and sometimes the regions) with
plain glanceclient calls, runs ``sync.py`` as an operator would and checks the regions.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from sync_cloud_support import CloudSync, environment_without_openstack, md5, payload

REGIONS = ("RegionA", "RegionB")


@pytest.fixture
def sync(cloud, tmp_path, monkeypatch) -> CloudSync:
    cloud.purge_images()
    monkeypatch.chdir(tmp_path)  # sync.py writes backups and --parallel logs in the cwd
    return CloudSync(cloud, tmp_path)


def seed_every_status(sync: CloudSync) -> dict[str, bytes]:
    """Master images, and RegionA copies that give every status of the README."""
    data = {name: payload(name) for name in ("ok", "stalled", "error", "rename", "replace")}
    data |= {name: payload(name) for name in ("upload", "meta", "kernel", "ramdisk", "ami")}
    data["private-kernel"] = payload("private-kernel")
    data["bad-ami"] = payload("bad-ami")
    master = {
        name: sync.add_image("Master", f"st-{name}", data[name], type="base")
        for name in ("ok", "stalled", "error", "rename", "replace", "upload", "meta")
    }
    kernel = sync.add_image("Master", "st-kernel", data["kernel"])
    ramdisk = sync.add_image("Master", "st-ramdisk", data["ramdisk"])
    sync.add_image(
        "Master", "st-ami", data["ami"], kernel_id=kernel["id"], ramdisk_id=ramdisk["id"]
    )
    private = sync.add_image("Master", "st-private-kernel", data["private-kernel"], public=False)
    sync.add_image("Master", "st-bad-ami", data["bad-ami"], kernel_id=private["id"])
    assert master["ok"]["status"] == "active"

    sync.add_image("RegionA", "st-ok", data["ok"], type="base")
    for name in ("stalled", "error", "rename", "replace"):
        data[f"old-{name}"] = payload(f"old-{name}")
        sync.add_image("RegionA", f"st-{name}", data[f"old-{name}"], type="base")
    sync.add_image("RegionA", "st-meta", data["meta"], type="old", extra="kept")
    sync.add_image("RegionA", "st-ami", data["ami"])  # kernel and ramdisk still missing
    sync.add_image("RegionA", "st-bad-ami", data["bad-ami"])
    sync.write_config(
        master={
            "dontupdate": md5(data["old-stalled"]),
            "rename": md5(data["old-rename"]),
            "replace": md5(data["old-replace"]),
        }
    )
    return data


def snapshot(sync: CloudSync) -> list[tuple]:
    """Everything a sync could change, in every region."""
    return sorted(
        (
            region,
            image["id"],
            image.get("name"),
            image["status"],
            image.get("checksum"),
            image["visibility"],
            tuple(sorted((k, str(v)) for k, v in image.items())),
        )
        for region in ("Master", "RegionA", "RegionB", "RegionC")
        for image in sync.images(region)
    )


@pytest.fixture(scope="class")
def every_status(cloud, tmp_path_factory) -> tuple[CloudSync, dict[str, bytes]]:
    """Empty regions seeded with every status, once for the class that uses it."""
    cloud.purge_images()
    seeded = CloudSync(cloud, tmp_path_factory.mktemp("every-status"))
    return seeded, seed_every_status(seeded)


class TestEveryStatus:
    """One seeded world (seeding it takes seconds), used twice, in this order: the dry run
    must leave it as it is, and only then does the real sync change it."""

    def test_a_dry_run_says_what_it_would_do_and_changes_nothing(self, every_status, monkeypatch):
        sync, _ = every_status
        monkeypatch.chdir(sync.workdir)
        before = snapshot(sync)
        run = sync.run("--dry-run", "RegionA", "RegionB", "other:RegionC")
        assert run.status == 0, run.out
        assert "INFO:RegionA: Pending: st-upload (0 MB)" in run.lines
        assert "INFO:RegionA: Image pending to update the metadata st-meta" in run.lines
        assert "INFO:RegionB: Pending: st-ami (0 MB)" in run.lines
        assert snapshot(sync) == before

    def test_every_status_then_a_sync_that_converges(self, every_status, monkeypatch):
        sync, data = every_status
        monkeypatch.chdir(sync.workdir)
        rows = sync.status_rows("RegionA")
        assert sorted(rows) == [
            "error_ami,RegionA,st-bad-ami",
            "error_checksum,RegionA,st-error",
            "ok,RegionA,st-ok",
            "ok_stalled_checksum,RegionA,st-stalled",
            "pending_ami,RegionA,st-ami",
            "pending_metadata,RegionA,st-meta",
            "pending_rename,RegionA,st-rename",
            "pending_replace,RegionA,st-replace",
            "pending_upload,RegionA,st-kernel",
            "pending_upload,RegionA,st-ramdisk",
            "pending_upload,RegionA,st-upload",
        ]

        run = sync.run("RegionA", "RegionB")
        assert run.status == 0, run.out
        for line in (
            "INFO:======Master is Master",
            "INFO:RegionA: Uploading image st-upload (0 MB)",
            "INFO:RegionA: Replacing image st-replace (0 MB)",
            "INFO:RegionA: Renaming and replacing image st-rename (0 MB)",
            "INFO:RegionA: Updating the metadata of image st-meta",
            "INFO:Region RegionA has finished",
            "INFO:Region RegionB has finished",
        ):
            assert line in run.lines

        # Replace: one image left, the master's. Rename: the old one kept, private, as .old.
        assert sync.one("RegionA", "st-replace")["checksum"] == md5(data["replace"])
        assert sync.one("RegionA", "st-rename")["checksum"] == md5(data["rename"])
        old = sync.one("RegionA", "st-rename.old")
        assert old["checksum"] == md5(data["old-rename"]) and old["visibility"] == "private"
        # Statuses that need a person leave the region's image alone.
        assert sync.one("RegionA", "st-error")["checksum"] == md5(data["old-error"])
        assert sync.one("RegionA", "st-stalled")["checksum"] == md5(data["old-stalled"])
        meta = sync.one("RegionA", "st-meta")
        assert (meta["type"], meta["extra"]) == ("base", "kept")

        # AMI: kernel and ramdisk ids point at each region's own copies.
        for region in REGIONS:
            ami = sync.one(region, "st-ami")
            assert ami["kernel_id"] == sync.one(region, "st-kernel")["id"]
            assert ami["ramdisk_id"] == sync.one(region, "st-ramdisk")["id"]
            assert ami["checksum"] == md5(data["ami"])
        assert (
            sync.one("RegionA", "st-ami")["kernel_id"] != sync.one("RegionB", "st-ami")["kernel_id"]
        )
        assert sync.named("RegionB", "st-private-kernel") == []

        settled = {row.split(",")[0] for row in sync.status_rows("RegionA", "RegionB")}
        assert settled == {"ok", "ok_stalled_checksum", "error_checksum", "error_ami"}
        again = sync.run("RegionA", "RegionB")
        assert "INFO:RegionA: Region is synchronized." in again.lines
        assert "INFO:RegionB: Region is synchronized." in again.lines
        assert sync.unfinished(("RegionA", "RegionB")) == []


def test_obsolete_images_are_renamed_with_their_sync_properties(sync):
    data = payload("obsolete")
    sync.add_image("Master", "ob-img_obsolete", data, sdc_aware="true", type="base")
    sync.add_image("RegionA", "ob-img", data, sdc_aware="false", local="kept", type="base")
    sync.write_config(master={"obsolete_syncprops": "sdc_aware"})
    run = sync.run("RegionA")
    assert run.status == 0, run.out
    assert "INFO:RegionA: updating obsolete image ob-img_obsolete" in run.lines
    renamed = sync.one("RegionA", "ob-img_obsolete")
    assert (renamed["sdc_aware"], renamed["local"]) == ("true", "kept")
    assert sync.named("RegionA", "ob-img") == []


def test_forcesyncs_and_metadata_condition_choose_per_target(sync):
    forced = sync.add_image("Master", "fs-private", payload("fs"), public=False)
    sync.add_image("Master", "mc-base", payload("mc-base"), type="baseimages")
    sync.add_image("Master", "mc-other", payload("mc-other"), type="other")
    sync.write_config(
        master={"forcesyncs": forced["id"]},
        other={"metadata_condition": "image.user_properties.get('type', None) == 'baseimages'"},
    )
    assert sorted(sync.status_rows("other:RegionC")) == ["pending_upload,other:RegionC,mc-base"]
    run = sync.run("RegionA", "other:RegionC")
    assert run.status == 0, run.out
    names = sorted(image["name"] for image in sync.images("RegionA"))
    assert names == ["fs-private", "mc-base", "mc-other"]
    assert sync.one("RegionA", "fs-private")["visibility"] == "private"
    region_c = sync.images("RegionC")
    assert [image["name"] for image in region_c] == ["mc-base"]
    # The second Keystone's copy belongs to that Keystone's project.
    assert region_c[0]["owner"] == sync.keystone_b.admin_project_id


def test_only_tenant_images_decides_whether_other_projects_images_count(sync):
    sync.add_image("Master", "ot-img", payload("ot"))
    theirs = sync.add_image("RegionA", "ot-img", payload("theirs"), user="user2")
    assert theirs["visibility"] == "public"

    run = sync.run("--show-status", "RegionA")
    assert run.lines == ["pending_upload,RegionA,ot-img"]
    assert "owned by other tenant" in run.err
    counted = sync.status_rows("RegionA", "--config", "master.only_tenant_images=false")
    assert counted == ["error_checksum,RegionA,ot-img"]

    # Counted, with no checksum directive it waits for a person; ignored (the default),
    # our own copy is uploaded beside it and theirs is left as it is.
    assert sync.run("RegionA", "--config", "master.only_tenant_images=false").status == 0
    assert [image["id"] for image in sync.named("RegionA", "ot-img")] == [theirs["id"]]
    assert sync.run("RegionA").status == 0
    copies = sync.named("RegionA", "ot-img")
    assert len(copies) == 2
    after = next(image for image in copies if image["id"] == theirs["id"])
    assert (after["checksum"], after["visibility"]) == (theirs["checksum"], "public")


def test_with_only_tenant_images_false_replace_any_replaces_another_projects_copy(sync):
    master = sync.add_image("Master", "oa-img", payload("ours"), nid="7")
    theirs = sync.add_image("RegionA", "oa-img", payload("theirs"), user="user2")
    same = sync.add_image("Master", "oa-same", payload("same"), nid="8")
    their_same = sync.add_image("RegionA", "oa-same", payload("same"), user="user2", nid="old")
    opted_in = ["--config", "master.only_tenant_images=false", "master.replace=any"]
    run = sync.run("--show-status", "RegionA", *opted_in)
    assert run.lines == ["pending_replace,RegionA,oa-img", "pending_metadata,RegionA,oa-same"]
    warning = (
        f"WARNING:RegionA: image oa-img (UUID {theirs['id']}) is owned by other tenant: "
        f"{theirs['owner']}"
    )
    assert warning in run.err.splitlines()

    assert sync.run("RegionA", *opted_in).status == 0
    (copy,) = sync.named("RegionA", "oa-img")
    assert copy["id"] != theirs["id"] and copy["checksum"] == master["checksum"]
    assert sync.one("RegionA", "oa-same")["id"] == their_same["id"]
    assert sync.one("RegionA", "oa-same")["nid"] == same["nid"]


def test_hidden_images_are_synchronised_and_recognised(sync):
    hidden = sync.add_image("Master", "hid-img", payload("hidden"))
    sync.client("Master").images.update(hidden["id"], os_hidden=True)
    assert sync.status_rows("RegionA") == ["pending_upload,RegionA,hid-img"]
    assert sync.run("RegionA").status == 0
    copy = sync.one("RegionA", "hid-img")
    sync.client("RegionA").images.update(copy["id"], os_hidden=True)
    # A hidden copy is still a copy: not missing, not uploaded twice.
    assert sync.status_rows("RegionA") == ["ok,RegionA,hid-img"]
    assert "INFO:RegionA: Region is synchronized." in sync.run("RegionA").lines
    assert len(sync.named("RegionA", "hid-img")) == 1


def test_parallel_synchronises_regions_of_both_keystones(sync):
    for name in ("par-one", "par-two"):
        sync.add_image("Master", name, payload(name, 300 * 1024))
    run = sync.run("--parallel", "RegionA", "RegionB", "other:RegionC")
    assert run.status == 0, run.out
    assert run.lines[-1] == "INFO:All is done."
    for region in ("RegionA", "RegionB", "other:RegionC"):
        assert f"INFO:Region {region} has finished" in run.lines
    logs = list(Path.cwd().glob("sync_*/RegionA.txt"))
    assert len(logs) == 1 and "RegionA: Image uploaded." in logs[0].read_text()
    for region in ("RegionA", "RegionB", "RegionC"):
        assert sorted(image["name"] for image in sync.images(region)) == ["par-one", "par-two"]


def test_a_backup_replayed_by_the_mock_gives_the_same_statuses(sync, tmp_path):
    # No tenant_id: the cloud's project ids are asked to Keystone, and the backup records
    # them, so the mock replays it with the very same configuration.
    sync.write_config(master={"tenant_id": ""}, other={"tenant_id": ""})
    seed_every_status(sync)
    sync.add_image("RegionB", "st-ok", payload("ok"), type="base")
    theirs = sync.add_image("RegionA", "st-private", payload("p"), public=False, user="user2")
    on_cloud = sync.status_rows("RegionA", "RegionB")

    run = sync.run("--make-backup")
    assert run.status == 0, run.out
    (backup,) = Path.cwd().glob("backup_glance_*")
    files = sorted(path.name for path in backup.iterdir())
    assert files == [
        "backup_Master.csv",
        "backup_RegionA.csv",
        "backup_RegionB.csv",
        "project_ids.json",
    ]
    assert json.loads((backup / "project_ids.json").read_text()) == {
        "master": sync.keystone_a.admin_project_id
    }
    # Another project's private image is in the backup: the listing returned it.
    assert f",{theirs['id']}," in (backup / "backup_RegionA.csv").read_text()

    documents = tmp_path / "documents"
    documents.mkdir()
    (documents / "notes.txt").write_text("not a store: the loader must leave it alone")
    loader = [sys.executable, "-m", "fiwareglancesync.mock"]
    refused = subprocess.run(
        [*loader, "--path", str(documents), "--confirm", str(backup)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2 and "is not a mock store" in refused.stderr
    assert [path.name for path in documents.iterdir()] == ["notes.txt"]

    store = tmp_path / "store"
    loaded = subprocess.run(
        [*loader, "--path", str(store), str(backup)], capture_output=True, text=True, check=False
    )
    assert loaded.returncode == 0, loaded.stderr
    replayed = sync.run(
        "--show-status",
        "RegionA",
        "RegionB",
        environ=sync.environ(GLANCESYNC_MOCKPERSISTENT_PATH=str(store)),
    )
    assert replayed.status == 0 and replayed.lines == on_cloud
    assert "None of the" not in replayed.err


def test_data_comes_from_images_dir_or_streams_from_the_master(sync):
    from_file, streamed = payload("from-file", 2 * 1024 * 1024 + 5), payload("streamed", 3 << 20)
    file_image = sync.add_image("Master", "src-file", from_file)
    stream_image = sync.add_image("Master", "src-stream", streamed)
    path = sync.write_image_file(file_image["id"], from_file)
    sync.write_config(master={"transfer": "stream"})  # RegionA would glance-download

    run = sync.run("--debug", "RegionA", "other:RegionC")
    assert run.status == 0, run.out
    assert f"DEBUG:RegionA: sending src-file ({len(from_file)} bytes) from {path}" in run.lines
    assert (
        f"DEBUG:RegionA: sending src-stream ({len(streamed)} bytes) "
        f"from image {stream_image['id']} of Master" in run.lines
    )
    for region in ("RegionA", "RegionC"):
        assert sync.one(region, "src-file")["checksum"] == md5(from_file)
        assert sync.one(region, "src-stream")["checksum"] == md5(streamed)
        assert sync.one(region, "src-stream")["size"] == len(streamed)
    # Neither passwords nor tokens reach the log, even with --debug.
    for secret in (sync.keystone_a.admin_password, sync.keystone_b.admin_password, "gAAAAA"):
        assert secret not in run.out and secret not in run.err


def sync_py(
    sync: CloudSync, *args: str, env: dict[str, str], **kwargs
) -> subprocess.CompletedProcess:
    """The sync.py command itself, in a child process."""
    script = Path(__file__).resolve().parents[2] / "sync.py"
    return subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        cwd=sync.workdir,
        text=True,
        check=False,
        **kwargs,
    )


def test_openstack_variables_alone_are_enough(sync):
    sync.add_image("Master", "env-img", payload("env"))
    a = sync.keystone_a
    env = environment_without_openstack() | {
        "GLANCESYNC_CONFIG": "",
        "OS_AUTH_URL": a.auth_url,
        "OS_USERNAME": a.admin_user,
        "OS_PASSWORD": a.admin_password,
        "OS_PROJECT_NAME": a.admin_project,
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_REGION_NAME": "Master",
    }
    regions = sync_py(sync, "--show-regions", env=env, capture_output=True)
    assert (regions.returncode, regions.stdout) == (0, "RegionA RegionB\n"), regions.stderr
    status = sync_py(sync, "--show-status", "RegionB", env=env, capture_output=True)
    assert status.stdout == "pending_upload,RegionB,env-img\n", status.stderr


def test_a_progress_bar_on_a_terminal_and_only_there(sync):
    sync.add_image("Master", "bar-img", payload("bar", 3 * 1024 * 1024))
    sync.write_config(master={"transfer": "stream"})  # a bar shows bytes through this host
    env = environment_without_openstack() | sync.environ()
    controller, terminal = pty.openpty()
    script = Path(__file__).resolve().parents[2] / "sync.py"
    child = subprocess.Popen(
        [sys.executable, str(script), "RegionA"],
        env=env,
        cwd=sync.workdir,
        stdout=subprocess.PIPE,
        stderr=terminal,
        text=True,
    )
    os.close(terminal)
    screen = read_all(controller)  # read while it runs: a terminal's buffer is small
    stdout, _ = child.communicate()
    run = subprocess.CompletedProcess(child.args, child.returncode, stdout)
    assert run.returncode == 0, (screen, run.stdout)
    assert "RegionA: bar-img" in screen and "B/s" in screen  # on the terminal: a bar
    assert "INFO:RegionA: Uploading image bar-img (3 MB)" in run.stdout.splitlines()
    assert "B/s" not in run.stdout  # in the log: lines only


def read_all(descriptor: int) -> str:
    chunks = []
    while True:
        try:
            block = os.read(descriptor, 65536)
        except OSError:  # EIO: the other side of the terminal is closed
            break
        if not block:
            break
        chunks.append(block)
    os.close(descriptor)
    return b"".join(chunks).decode(errors="replace")

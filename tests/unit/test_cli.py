"""sync.py as an operator runs it: main(argv) on the bundled example through the mock."""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from builders import run_sync as run

from fiwareglancesync.cli import main
from fiwareglancesync.errors import ExitStatus
from fiwareglancesync.facades import mock_factory
from fiwareglancesync.facades.mock_facade import JournalStore, MemoryStore, MockFacade
from fiwareglancesync.mock import main as mock_main

ROOT = Path(__file__).parents[2]
EXAMPLE_CONFIG = ROOT / "examples" / "glancesync.conf"
EXAMPLE_SCENARIO = ROOT / "examples" / "scenario"


def snapshot(path):
    return {p.name: p.read_bytes() for p in Path(path).iterdir() if not p.name.startswith(".")}


def test_show_status_prints_only_data_on_stdout(environ):
    status, out, err = run(["--show-status", "Burgos"], environ)
    assert status == ExitStatus.OK
    assert out.splitlines() == [
        "ok,Burgos,cirros_ramdisk",
        "pending_upload,Burgos,cirros_kernel",
        "pending_upload,Burgos,monitoring_probe",
        "ok_stalled_checksum,Burgos,alpine_3",
        "pending_ami,Burgos,cirros_ami",
        "error_checksum,Burgos,tools_image",
        "pending_rename,Burgos,arch_linux",
        "pending_replace,Burgos,fedora_38",
        "ok,Burgos,base_ubuntu_22.04",
        "pending_metadata,Burgos,base_centos_9",
    ]
    assert "WARNING:Duplicated images with name windows_eval will be ignored" in err


def test_sync_then_status_converges(environ, store):
    status, out, _ = run([], environ)
    assert status == ExitStatus.OK
    lines = out.splitlines()
    assert lines[0] == "INFO:======Master is Valladolid"
    assert "INFO:======Leon" in lines and "INFO:Region Burgos has finished" in lines
    assert "INFO:Burgos: Renaming and replacing image arch_linux (80 MB)" in lines
    assert "INFO:Burgos: Replacing image fedora_38 (120 MB)" in lines
    assert "INFO:Burgos: updating obsolete image base_debian_10_obsolete" in lines
    _, after, _ = run(["--show-status"], environ)
    remaining = {row.split(",")[0] for row in after.splitlines()}
    assert remaining == {"ok", "ok_stalled_checksum", "error_checksum"}
    _, again, _ = run(["Burgos"], environ)
    assert "INFO:Burgos: Region is synchronized." in again.splitlines()


def test_dry_run_changes_nothing_and_says_what_it_would_do(environ, store):
    before = snapshot(store)
    status, out, _ = run(["--dry-run", "Burgos", "other:"], environ)
    assert status == ExitStatus.OK
    assert snapshot(store) == before
    assert "INFO:Burgos: Pending: cirros_kernel (5 MB)" in out
    assert "INFO:Burgos: Image pending to update the metadata base_centos_9" in out
    assert "INFO:other:Madrid: MBs pending : 730" in out


def test_a_dry_run_does_not_warn_of_a_kernel_the_sync_uploads_first(environ):
    # Burgos lacks cirros_kernel; the sync uploads it before fixing cirros_ami's kernel_id.
    status, out, _ = run(["--dry-run", "Burgos"], environ)
    assert status == ExitStatus.OK
    lines = out.splitlines()
    assert not [line for line in lines if "Not found" in line]
    kernel = lines.index("INFO:Burgos: would upload cirros_kernel (5 MB) by stream")
    assert kernel < lines.index("INFO:Burgos: would update the metadata of cirros_ami")


def test_a_dry_run_says_what_it_would_do_to_obsolete_images_only_in_the_conditional(environ):
    status, out, _ = run(["--dry-run", "Burgos"], environ)
    assert status == ExitStatus.OK
    lines = out.splitlines()
    assert "INFO:Burgos: would rename base_debian_10 to base_debian_10_obsolete" in lines
    assert not [line for line in lines if "updating obsolete image" in line]


DRY_ACTION = re.compile(
    r"INFO:(?P<region>[^:]+): would (?:rename \S+ to |update obsolete image |update the "
    r"metadata of |upload |replace )(?P<name>[^ ]+)"
)
SYNC_ACTION = re.compile(
    r"INFO:(?P<region>[^:]+): (?:updating obsolete image |Updating the metadata of image "
    r"|Uploading image |Replacing image |Renaming and replacing image )(?P<name>[^ ]+)"
)


def actions(pattern, out):
    found = (pattern.match(line) for line in out.splitlines())
    return [(m["region"], m["name"]) for m in found if m]


def test_a_dry_run_lists_the_actions_in_the_order_the_sync_then_runs_them(environ):
    _, dry, _ = run(["--dry-run", "Leon", "Burgos"], environ)
    _, synced, _ = run(["Leon", "Burgos"], environ)
    planned = actions(DRY_ACTION, dry)
    assert len(planned) == 17  # ten uploads to Leon, seven actions in Burgos
    assert planned == actions(SYNC_ACTION, synced)


def test_show_regions_expands_every_target_with_preferable_order(environ):
    assert run(["--show-regions"], environ)[1] == "Leon Burgos other:Madrid\n"


def test_explicit_regions_keep_command_line_order_and_normalise_master(environ):
    _, out, _ = run(["--show-status", "other:", "master:Burgos"], environ)
    regions = list(dict.fromkeys(row.split(",")[1] for row in out.splitlines()))
    assert regions == ["other:Madrid", "Burgos"]


def test_config_overrides_from_the_command_line(environ):
    _, out, _ = run(["--show-status", "Burgos", "--config", "master.replace=any"], environ)
    assert "pending_replace,Burgos,tools_image" in out.splitlines()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["a:b:c"], "bad region name 'a:b:c'"),
        (["nowhere:Region"], "unknown target 'nowhere'"),
        (["--config", "=broken"], "expected KEY=VALUE"),
        (
            ["--config", "main.max_children=0"],
            "main.max_children: '0' is too small (the least is 1)",
        ),
        (["--config", "main.max_children=100000"], "main.max_children: '100000' is too big"),
        (["--config", "master.list_images_timeout=nan"], "'nan' is not a finite number"),
        (["--config", "main.lock_timeout=inf"], "'inf' is not a finite number"),
        (["a/../b"], "bad region name 'a/../b': a region name cannot contain '/'"),
        (
            ["Leon\x00"],
            "bad region name 'Leon\\x00': a region name cannot contain a NUL character (\\x00)",
        ),
    ],
)
def test_usage_and_config_errors_exit_2_with_one_clear_line(environ, argv, message):
    status, out, err = run(argv, environ)
    assert status == ExitStatus.USAGE
    assert message in err
    assert "Traceback" not in out + err


def test_bad_option_exits_2(environ, capsys):
    assert main(["--no-such-option"], environ=environ) == ExitStatus.USAGE
    assert "unrecognized arguments" in capsys.readouterr().err


def test_conflicting_modes_exit_2(environ, capsys):
    assert main(["--dry-run", "--show-status"], environ=environ) == ExitStatus.USAGE


def test_missing_config_file_exits_2(tmp_path):
    status, _, err = run([], {"GLANCESYNC_CONFIG": str(tmp_path / "nope.conf")})
    assert status == ExitStatus.USAGE
    assert "cannot read configuration file" in err


def test_an_unknown_region_is_a_usage_error_before_any_region_is_touched(environ, store):
    before = _store_bytes(store)
    status, out, err = run(["Nowhere", "Leon"], environ)
    assert status == ExitStatus.USAGE
    assert out == ""
    assert err == (
        "ERROR: unknown region Nowhere (regions of target master: Burgos, Leon, Valladolid)\n"
    )
    assert _store_bytes(store) == before


def test_a_config_item_without_equals_is_a_region_and_an_unknown_one_says_so(environ):
    result = subprocess.run(
        [sys.executable, str(ROOT / "sync.py"), "--show-status", "--config", "nonsense"],
        env={**os.environ, **environ},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == ExitStatus.USAGE
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "ERROR: unknown region nonsense (regions of target master: Burgos, Leon, "
        "Valladolid) (--config nonsense has no '=': it was taken for a region)"
    ]


class FailingUploads(MockFacade):
    """Uploads of the named images fail, as a full disk would."""

    failing = {"fedora_38"}

    def upload(self, region, image, data):
        if image.name in self.failing:
            from fiwareglancesync.errors import FacadeError

            raise FacadeError(f"upload of {image.name} refused: no space left")
        return super().upload(region, image, data)


def test_failed_replacement_keeps_the_old_image_and_fails_the_region(environ, store):
    factory = lambda target: FailingUploads(JournalStore(store), target)  # noqa: E731
    status, out, _ = run(["Burgos", "Leon"], environ, facade_factory=lambda env: factory)
    assert status == ExitStatus.REGION_FAILED
    assert "ERROR:Burgos: upload of fedora_38 refused: no space left" in out
    burgos = JournalStore(store).read("Burgos")
    assert [i.id for i in burgos if i.name == "fedora_38"] == ["b-fedora"]
    assert "INFO:Region Burgos has finished with errors" in out
    assert "INFO:Region Leon has finished with errors" in out  # fedora fails there too
    leon = JournalStore(store).read("Leon")
    assert {i.name for i in leon} >= {"cirros_kernel", "alpine_3"}  # smaller ones went first


class Broken(MockFacade):
    def list_images(self, region):
        if region.name == "Burgos":
            raise RuntimeError("bug in a facade")
        return super().list_images(region)


def test_a_bug_is_one_error_line_without_traceback_unless_debug(environ, store):
    factory = lambda env: lambda target: Broken(JournalStore(store), target)  # noqa: E731
    status, out, _ = run(["Burgos", "Leon"], environ, facade_factory=factory)
    assert status == ExitStatus.REGION_FAILED
    # A bug is not dressed up as a region error: the line says it is unexpected.
    assert "ERROR:Burgos: unexpected error: RuntimeError: bug in a facade" in out
    assert "cannot list the images" not in out
    assert "Traceback" not in out
    assert "INFO:Region Leon has finished" in out


class Interrupted(MockFacade):
    def list_images(self, region):
        raise KeyboardInterrupt


def test_interruption_exits_130(environ, store):
    factory = lambda env: lambda target: Interrupted(JournalStore(store), target)  # noqa: E731
    status, _, err = run(["Burgos"], environ, facade_factory=factory)
    assert status == ExitStatus.INTERRUPTED
    assert "Interrupted." in err


def test_master_failure_fails_every_region(environ, store):
    os.unlink(store / "backup_Valladolid.csv")
    status, out, _ = run(["Burgos", "Leon"], environ)
    assert status == ExitStatus.REGION_FAILED
    assert out.count("master region: unknown region Valladolid") == 2


def test_make_backup_then_replay_gives_the_same_statuses(environ, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, statuses_before, _ = run(["--show-status", "Burgos", "Leon", "other:"], environ)
    status, _, _ = run(["--make-backups", "Burgos", "Leon", "other:"], environ)
    assert status == ExitStatus.OK
    [backup] = list(tmp_path.glob("backup_glance_*"))
    assert sorted(p.name for p in backup.iterdir()) == [
        "backup_Burgos.csv",
        "backup_Leon.csv",
        "backup_Valladolid.csv",
        "backup_other:Madrid.csv",
        "project_ids.json",
    ]
    assert json.loads((backup / "project_ids.json").read_text()) == {
        "master": "tenant1id",
        "other": "tenant2id",
    }
    replay = tmp_path / "replay"
    assert mock_main(["--path", str(replay), str(backup)]) == 0
    replay_env = dict(environ, GLANCESYNC_MOCKPERSISTENT_PATH=str(replay))
    _, statuses_replayed, _ = run(["--show-status", "Burgos", "Leon", "other:"], replay_env)
    assert statuses_replayed == statuses_before


def test_parallel_sync_logs_per_region_and_does_the_same(environ, store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sequential = tmp_path / "sequential"
    shutil.copytree(store, sequential)
    run([], dict(environ, GLANCESYNC_MOCKPERSISTENT_PATH=str(sequential)))
    status, out, _ = run(
        ["--parallel", "Leon", "Burgos", "other:", "--config", "main.max_children=2"], environ
    )
    assert status == ExitStatus.OK
    assert out.splitlines()[-1] == "INFO:All is done."
    for region in ("Leon", "Burgos", "other:Madrid"):
        assert f"INFO:Region {region} has finished" in out
    [log_dir] = list(tmp_path.glob("sync_2*"))
    assert sorted(p.name for p in log_dir.iterdir()) == [
        "Burgos.txt",
        "Leon.txt",
        "other:Madrid.txt",
    ]
    assert "Burgos: Replacing image fedora_38" in (log_dir / "Burgos.txt").read_text()
    for region in ("Leon", "Burgos"):
        assert sorted(map(repr, JournalStore(store).read(region))) == sorted(
            map(repr, JournalStore(sequential).read(region))
        )


def test_parallel_dry_run_and_status_change_nothing(environ, store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = snapshot(store)
    _, serial_status, _ = run(["--show-status"], environ)
    status, _, _ = run(["--parallel", "--dry-run", "--config", "main.max_children=3"], environ)
    assert status == ExitStatus.OK and snapshot(store) == before
    _, parallel_status, _ = run(["--parallel", "--show-status"], environ)
    assert parallel_status == serial_status
    assert len(list(tmp_path.glob("sync_2*"))) == 2  # a fresh directory every run


def test_sync_py_runs_as_a_script(environ):
    result = subprocess.run(
        [sys.executable, str(ROOT / "sync.py"), "--show-status", "Leon"],
        env=dict(os.environ, **environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 10
    assert all(row.startswith("pending_upload,Leon,") for row in result.stdout.splitlines())


def test_injected_in_memory_mock(environ):
    """Tests and the service may inject a mock without any directory."""
    store = MemoryStore()
    for name in ("Valladolid", "Leon", "Burgos", "other:Madrid"):
        store.write(name, JournalStore(environ["GLANCESYNC_MOCKPERSISTENT_PATH"]).read(name))
    status, out, _ = run(
        ["--show-status", "Leon"], environ, facade_factory=lambda env: mock_factory(store)
    )
    assert status == 0 and len(out.splitlines()) == 10


def test_code_in_a_condition_is_a_config_error_and_never_runs(environ, tmp_path):
    marker = tmp_path / "pwned"
    condition = f"metadata_condition=__import__('os').system('touch {marker}') or True"
    status, out, err = run(["--show-status", "Leon", "--config", condition], environ)
    assert status == ExitStatus.USAGE
    assert "metadata_condition: call of" in err
    assert not marker.exists() and out == ""


def test_regions_may_come_after_config(environ):
    before = run(["--show-status", "Burgos", "Leon", "--config", "master.replace=any"], environ)
    after = run(["--show-status", "--config", "master.replace=any", "Burgos", "Leon"], environ)
    assert before == after
    assert after[0] == ExitStatus.OK
    assert "pending_replace,Burgos,tools_image" in after[1].splitlines()


def test_a_malformed_row_in_the_store_fails_that_region_only(environ, store):
    with open(store / "backup_Burgos.csv", "a") as backup:
        backup.write("Burgos,broken,id,active,not-a-size,c,o,True,{}\n")
    status, out, _ = run(["Burgos", "Leon"], environ)
    assert status == ExitStatus.REGION_FAILED
    assert "size is not a number" in out and "Traceback" not in out
    assert "INFO:Region Leon has finished" in out


SLOW_PARALLEL_RUN = """
import sys, time
from fiwareglancesync.cli import main
from fiwareglancesync.facades.mock_facade import JournalStore, MockFacade

class Slow(MockFacade):
    def list_images(self, region):
        if region.name != "Valladolid":
            time.sleep(120)
        return super().list_images(region)

store = JournalStore(sys.argv[1])
sys.exit(main(["--parallel", "Leon", "Burgos", "--config", "main.max_children=2"],
              facade_factory=lambda env: lambda target: Slow(store, target)))
"""


def test_sigterm_stops_a_parallel_run_and_its_children(environ, store, tmp_path):
    import signal

    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_PARALLEL_RUN, str(store)],
        env=dict(os.environ, **environ, PYTHONPATH=str(ROOT)),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        [log_dir] = _wait_for(
            lambda: list(tmp_path.glob("sync_2*/*.txt")) and list(tmp_path.glob("sync_2*"))
        )
        _wait_for(lambda: "INFO:======" in "".join(p.read_text() for p in log_dir.iterdir()))
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == ExitStatus.INTERRUPTED
    assert "Interrupted." in err
    leftovers = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True)
    assert leftovers.stdout == ""


def _wait_for(probe, attempts=600):
    import time

    for _ in range(attempts):
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("the condition never came true")


def test_a_bug_outside_any_region_is_one_line_and_a_traceback_only_with_debug(environ):
    def broken_factory(env):
        raise AttributeError("facade factory bug")

    status, _, err = run(["--show-status"], environ, facade_factory=broken_factory)
    assert status == ExitStatus.REGION_FAILED
    assert err.strip() == "ERROR: unexpected error: AttributeError: facade factory bug"
    status, _, err = run(["--debug", "--show-status"], environ, facade_factory=broken_factory)
    assert "Traceback" in err


V2_SCENARIO = ROOT / "tests" / "scenarios" / "glance_v2_fields"


@pytest.mark.parametrize(
    ("flag", "columns"), [([], 18), (["--backup-format", "2"], 18), (["--backup-format", "1"], 9)]
)
def test_backup_format_of_v2_fields(flag, columns, tmp_path, monkeypatch):
    store = tmp_path / "store"
    assert mock_main(["--path", str(store), str(V2_SCENARIO / "before")]) == 0
    environ = {
        "GLANCESYNC_CONFIG": str(V2_SCENARIO / "glancesync.conf"),
        "GLANCESYNC_MOCKPERSISTENT_PATH": str(store),
    }
    monkeypatch.chdir(tmp_path)
    status, _, err = run(["--make-backup", *flag, "copyall:"], environ)
    assert status == ExitStatus.OK, err
    [backup] = list(tmp_path.glob("backup_glance_*"))
    text = (backup / "backup_copyall:Lyon.csv").read_text()
    rows = [row for row in text.splitlines() if not row.startswith("region,")]
    assert {len(cells) for cells in csv.reader(rows)} == {columns}
    assert text.startswith("region,") == (columns == 18)
    replay = tmp_path / "replay"
    assert mock_main(["--path", str(replay), str(backup)]) == 0
    [image] = [i for i in JournalStore(replay).read("copyall:Lyon") if i.name == "shared"]
    if columns == 18:
        assert (image.visibility, image.members) == ("shared", ("proj-z",))
    else:  # format 1 knows only is_public
        assert (image.known_visibility, image.members, image.is_public) == (None, (), False)


def test_backup_format_without_make_backup_is_a_usage_error(environ, capsys):
    status, _, _ = run(["--show-status", "--backup-format", "1"], environ)
    assert status == ExitStatus.USAGE
    assert "--backup-format goes with --make-backup" in capsys.readouterr().err


def _store_bytes(store: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(store.iterdir()) if path.is_file()}


@pytest.mark.parametrize("mode", ["--show-status", "--dry-run", "--make-backup"])
def test_a_read_only_run_writes_nothing_to_the_mock_store(
    environ, store, tmp_path, monkeypatch, mode
):
    """Not even a compaction of the records an earlier run left in a journal."""
    from builders import image, target

    from fiwareglancesync.region import RegionRef

    writer = MockFacade(JournalStore(store), target())
    writer.upload(RegionRef("master", "Burgos"), image("left_by_an_earlier_run"), None)
    before = _store_bytes(store)
    monkeypatch.chdir(tmp_path)
    status, out, err = run([mode, "Burgos"], environ)
    assert status == ExitStatus.OK, out + err
    assert _store_bytes(store) == before


def test_every_configuration_problem_is_reported_with_the_unknown_options(tmp_path, store):
    """A duplicate does not hide a bad value, and the warnings are not lost."""
    config = tmp_path / "glancesync.conf"
    config.write_text(
        "[main]\n"
        "master_region = Valladolid\n"
        "max_children = many\n"
        "\n"
        "[master]\n"
        "credential = admin,c2VjcmV0,http://127.0.0.1:5000/v3,tenant1\n"
        "replace = any\n"
        "colour = blue\n"
        "replace = any\n"
        "  continued\n"
        "\n"
        "[master]\n"
        "dontupdate = x\n"
    )
    environ = {"GLANCESYNC_CONFIG": str(config), "GLANCESYNC_MOCKPERSISTENT_PATH": str(store)}
    status, out, err = run(["Leon"], environ)
    assert status == ExitStatus.USAGE
    assert out == "WARNING:unknown option master.colour ignored\n"
    assert err.splitlines() == [
        f"ERROR: {config}, line 9: option replace appears twice in [master] (option names "
        "are case-insensitive)",
        f"ERROR: {config}, line 12: section [master] appears twice",
        "ERROR: main.max_children: 'many' is not a number",
    ]


@pytest.mark.parametrize(
    "command, first_line",
    [
        (["glancesync", "--help"], "usage: glancesync [-h]"),
        (["glancesync", "--version"], "glancesync "),
        (["glancesync-mock", "--help"], "usage: glancesync-mock [-h]"),
        ([str(ROOT / "sync.py"), "--help"], "usage: sync.py [-h]"),
        (["-m", "fiwareglancesync.mock", "--help"], "usage: python -m fiwareglancesync.mock"),
    ],
)
def test_help_and_version_name_the_program_as_typed(command, first_line):
    script = Path(sys.executable).parent / command[0]  # a console script of the venv
    installed = "/" not in command[0] and script.is_file()
    argv = [str(script), *command[1:]] if installed else [sys.executable, *command]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(first_line), done.stdout


def test_a_sync_removes_a_queued_leftover_as_the_glance_facade_does(environ, store):
    from fiwareglancesync.config import load_config
    from fiwareglancesync.image import Image

    master = load_config(environ).targets["master"]
    writer = JournalStore(store)
    project = MockFacade(writer, master).project_id()
    left = writer.add_image("Leon", Image("cirros_kernel", "", status="queued", owner=project))
    assert left is not None

    status, out, _ = run(["Leon"], environ)

    assert status == ExitStatus.OK, out
    assert (
        f"WARNING:Leon: removing image cirros_kernel ({left.id}), left queued by an earlier "
        "interrupted upload" in out.splitlines()
    )
    kernels = [i for i in JournalStore(store).read("Leon") if i.name == "cirros_kernel"]
    assert [i.status for i in kernels] == ["active"]  # the leftover is gone


def test_a_bad_coordination_url_is_a_config_error_with_the_others(environ):
    argv = ["Burgos", "--config", "main.coordination_url=zoo://x", "main.max_children=0"]
    status, out, err = run(argv, environ)
    assert status == ExitStatus.USAGE
    assert "main.coordination_url: unknown coordination backend 'zoo' (tooz offers: " in err
    assert "main.max_children: '0' is too small (the least is 1)" in err
    assert "Traceback" not in out + err

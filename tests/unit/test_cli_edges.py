"""sync.py at its edges: failing targets, bounds, closed pipes, full disks, locks, help.

Each test runs sync.py the way an operator does (``main(argv)`` or a subprocess) on the
bundled example loaded into a mock store, and checks the exit status and the exact line.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from builders import run_sync as run

from fiwareglancesync import cli, commands
from fiwareglancesync.errors import ExitStatus, FacadeError
from fiwareglancesync.facades import mock_factory
from fiwareglancesync.facades.mock_facade import JournalStore, MockFacade
from fiwareglancesync.image import Image, write_csv
from fiwareglancesync.mock import main as mock_main
from fiwareglancesync.parallel import ForkPool
from fiwareglancesync.regionlock import RegionLocks

ROOT = Path(__file__).parents[2]
EXAMPLE_CONFIG = ROOT / "examples" / "glancesync.conf"
KEYSTONE_DOWN = "cannot reach Keystone at http://127.0.0.1:5001/v3 (connection refused)"


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("ERROR")]


class DownKeystone(MockFacade):
    """Target ``other`` behind a Keystone that refuses connections."""

    def _fail(self, *args: object) -> None:
        raise FacadeError(KEYSTONE_DOWN)

    regions = project_id = list_images = upload = update = delete = _fail  # type: ignore[assignment]


def factory_with_other_down(store: Path):
    healthy = mock_factory(JournalStore(store))

    def make(target):
        return (
            DownKeystone(JournalStore(store), target) if target.name == "other" else healthy(target)
        )

    return lambda environ: make


# --------------------------------------------------------------------------- isolation


@pytest.mark.parametrize(
    "mode", [[], ["--dry-run"], ["--show-status"], ["--parallel"], ["--make-backup"]]
)
def test_a_target_whose_keystone_fails_fails_alone(environ, store, mode, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = run(
        [*mode, "Burgos", "other:"], environ, facade_factory=factory_with_other_down(store)
    )
    assert status == ExitStatus.REGION_FAILED
    errors = error_lines(out + err)
    assert errors == [f"ERROR:target other: its regions cannot be listed: {KEYSTONE_DOWN}"]
    if mode == ["--show-status"]:
        assert "pending_upload,Burgos,cirros_kernel" in out.splitlines()
    elif mode == ["--make-backup"]:
        (backup,) = tmp_path.glob("backup_glance_*")
        assert (backup / "backup_Burgos.csv").stat().st_size > 0
    elif mode == ["--parallel"]:
        assert "Region Burgos has finished\n" in out.replace("INFO:", "")
    else:
        assert "INFO:Region Burgos has finished" in out.splitlines()


def test_an_explicit_region_of_a_failing_target_is_named_in_its_line(environ, store):
    status, out, _ = run(
        ["Burgos", "other:Madrid"], environ, facade_factory=factory_with_other_down(store)
    )
    assert status == ExitStatus.REGION_FAILED
    assert error_lines(out) == [f"ERROR:other:Madrid: {KEYSTONE_DOWN}"]
    assert "INFO:Region Burgos has finished" in out.splitlines()
    assert "INFO:Region other:Madrid has finished with errors" in out.splitlines()


def test_debug_shows_the_chain_of_an_expected_error(environ, store):
    _, out, _ = run(
        ["--debug", "other:Madrid"], environ, facade_factory=factory_with_other_down(store)
    )
    assert "Traceback" in out and "FacadeError" in out


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    "regions, max_children, expected",
    [(["Burgos", "Leon"], 64, (2, 2)), (["Burgos", "Leon", "other:Madrid"], 2, (2, 2))],
)
def test_parallel_forks_at_most_max_children_and_never_more_than_regions(
    environ, tmp_path, monkeypatch, regions, max_children, expected
):
    monkeypatch.chdir(tmp_path)
    pools = []

    class RecordingPool(ForkPool):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr(commands, "ForkPool", RecordingPool)
    argv = ["--parallel", *regions, "--config", f"main.max_children={max_children}"]
    assert run(argv, environ)[0] == ExitStatus.OK
    (pool,) = pools
    assert (pool.max_children, pool.peak) == expected
    assert pool.started == len(regions)


def test_a_condition_past_its_limits_is_a_configuration_error_before_any_region(environ, store):
    before = {p.name: p.read_bytes() for p in store.iterdir()}
    condition = "metadata_condition=image.name * image.size > ''"
    status, out, err = run(["Burgos", "--config", condition], environ)
    assert status == ExitStatus.USAGE
    assert error_lines(err) == [
        "ERROR: master.metadata_condition: it would build a value of 5347737600 items "
        "(limit 100000), for image base_ubuntu_22.04"
    ]
    assert "======Burgos" not in out
    assert {p.name: p.read_bytes() for p in store.iterdir()} == before


@pytest.mark.parametrize(
    "condition, message",
    [
        ("'%0999999999d' % 1", "% is allowed between numbers only"),
        ("image.name.replace('', 'x' * 9999) == ''", "it would build a value of"),
        ("(" * 300 + "1" + ")" * 300, "too many nested parentheses"),
        ("1" + " + 1" * 1500, "longer than 4000 characters"),
        ("not " * 100 + "True", "nested more than 40 levels"),
    ],
)
def test_condition_bombs_are_configuration_errors(environ, condition, message):
    status, _, err = run(
        ["--show-status", "Burgos", "--config", f"metadata_condition={condition}"], environ
    )
    assert status == ExitStatus.USAGE
    (line,) = error_lines(err)
    assert message in line


# --------------------------------------------------------------------------- quiet ends


def big_store(tmp_path: Path, count: int = 3000) -> Path:
    scenario = tmp_path / "big"
    scenario.mkdir()
    master = [
        Image(
            f"image-{n:05d}",
            f"m{n}",
            "Valladolid",
            size=n,
            checksum=f"{n:032x}",
            owner="tenant1id",
            visibility="public",
            user_properties={"type": "x"},
        )
        for n in range(count)
    ]
    with open(scenario / "backup_Valladolid.csv", "w", newline="") as out:
        write_csv(out, master)
    for region in ("Burgos", "Leon"):
        (scenario / f"backup_{region}.csv").write_text("")
    store = tmp_path / "bigstore"
    assert mock_main(["--path", str(store), str(scenario)]) == 0
    return store


def sync_process(argv, store: Path, **kwargs) -> subprocess.Popen[bytes]:
    environ = dict(
        os.environ, GLANCESYNC_CONFIG=str(EXAMPLE_CONFIG), GLANCESYNC_MOCKPERSISTENT_PATH=str(store)
    )
    return subprocess.Popen([sys.executable, str(ROOT / "sync.py"), *argv], env=environ, **kwargs)


def test_show_status_piped_into_head_ends_quietly(tmp_path):
    store = big_store(tmp_path)
    process = sync_process(["--show-status"], store, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()
    process.stdout.close()  # what `| head -1` does
    _, err = process.communicate(timeout=120)
    assert first == b"pending_upload,Leon,image-00000\n"
    assert process.returncode == 0
    assert err == b""


def test_a_sync_whose_reader_went_away_finishes_its_work(tmp_path):
    store = big_store(tmp_path, 400)
    process = sync_process(["Burgos"], store, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.readline()
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert (process.returncode, err) == (0, b"")
    assert len(JournalStore(store).read("Burgos")) == 400


def test_status_rows_are_csv(environ, store):
    images = JournalStore(store).read("Valladolid")
    images.append(
        Image(
            'odd, "name"\nwith a newline\r',
            "m-odd",
            size=1,
            checksum="c" * 32,
            owner="tenant1id",
            visibility="public",
            user_properties={"type": "x"},
        )
    )
    JournalStore(store).write("Valladolid", images)
    _, out, _ = run(["--show-status", "Leon"], environ)
    rows = list(csv.reader(io.StringIO(out)))
    assert ["pending_upload", "Leon", 'odd, "name"\nwith a newline\r'] in rows
    assert all(len(row) == 3 for row in rows)


def test_make_backup_in_a_vanished_directory_is_one_line(environ, tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    script = (
        f"cd {gone} && rmdir {gone} && exec {sys.executable} {ROOT / 'sync.py'} --make-backup Leon"
    )
    done = subprocess.run(
        ["sh", "-c", script],
        env=dict(os.environ, **environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    (line,) = error_lines(done.stderr)
    assert line.startswith("ERROR: cannot create the backup directory backup_glance_")
    assert line.endswith("in the current directory: no such file or directory")


def run_in_namespace(
    setup: str, script: str, environ: dict[str, str], size: str = "64k", read_only: bool = False
) -> subprocess.CompletedProcess[str]:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is needed to make a small filesystem")
    remount = 'mount -o remount,ro "$MNT" && ' if read_only else ""
    body = (
        f'MNT=$(mktemp -d) && mount -t tmpfs -o size={size} tmpfs "$MNT" && '
        f"{setup} && {remount}{script}"
    )
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip("user and mount namespaces are not available here")
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", body],
        env=dict(os.environ, **environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_read_only_store_fails_each_region_in_one_line(environ, store):
    setup = f'cp -a {store}/. "$MNT"/'
    script = f'GLANCESYNC_MOCKPERSISTENT_PATH="$MNT" exec {sys.executable} {ROOT / "sync.py"} Leon'
    done = run_in_namespace(setup, script, environ, size="1m", read_only=True)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = error_lines(done.stdout)
    assert len(errors) == 1
    assert errors[0].startswith("ERROR:Leon: cannot write the mock store /")
    assert errors[0].endswith(": read-only file system")
    assert "Traceback" not in done.stdout + done.stderr


def test_make_backup_in_a_read_only_directory_is_one_line(environ):
    script = f'cd "$MNT" && exec {sys.executable} {ROOT / "sync.py"} --make-backup Burgos'
    done = run_in_namespace("true", script, environ, read_only=True)
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = error_lines(done.stdout + done.stderr)
    assert line.startswith("ERROR: cannot create the backup directory backup_glance_")
    assert line.endswith("in the current directory: read-only file system")


def test_a_full_disk_during_a_backup_is_one_line(environ, tmp_path):
    script = f'cd "$MNT" && exec {sys.executable} {ROOT / "sync.py"} --make-backup Burgos'
    filler = 'head -c 60000 /dev/zero > "$MNT/filler"'
    done = run_in_namespace(filler, script, environ, size="64k")
    assert done.returncode == 1, done.stdout + done.stderr
    errors = error_lines(done.stdout + done.stderr)
    assert errors, done.stdout + done.stderr
    assert all(line.endswith("no space left on device") for line in errors)
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "[main]\nmaster_region = A\n[master]\nuser = a\n[master]\nuser = b\n",
            "line 5: section [master] appears twice",
        ),
        (
            "[main]\nmaster_region = A\nmaster_region = B\n",
            "line 3: option master_region appears twice in [main]",
        ),
        (
            "[main]\nmaster_region = A\n[master]\nReplace = any\nreplace = x\n",
            "line 5: option replace appears twice in [master]",
        ),
        (
            "[main]\nmaster_region = A \\\n   B\n[master]\nuser = a\nuser = b\n",
            "line 6: option user appears twice in [master]",
        ),
    ],
)
def test_duplicated_sections_and_options_name_their_line(tmp_path, store, text, message):
    path = tmp_path / "dup.conf"
    path.write_text(text)
    environ = {"GLANCESYNC_CONFIG": str(path), "GLANCESYNC_MOCKPERSISTENT_PATH": str(store)}
    status, _, err = run(["--show-status"], environ)
    assert status == ExitStatus.USAGE
    # The duplicate first; the rest of the file is still checked (here: an incomplete
    # credential), as every problem is reported together.
    assert error_lines(err)[0] == (
        f"ERROR: {path}, {message}"
        + (" (option names are case-insensitive)" if "option" in message else "")
    )


# --------------------------------------------------------------------------- locks


HOLDER = textwrap.dedent(
    """
    import sys, time
    from fiwareglancesync.regionlock import RegionLocks
    locks = RegionLocks(sys.argv[1], 60, describe=lambda: "pid 4242 (the other run)")
    with locks.hold(sys.argv[2], "Burgos"):
        print("held", flush=True)
        time.sleep(float(sys.argv[3]))
    """
)


def hold_lock(lock_dir: Path, store: Path, seconds: float) -> subprocess.Popen[str]:
    key = f"mock {store} Burgos"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir), key, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    return holder


def test_a_region_another_run_is_syncing_is_skipped_with_a_warning(environ, store, tmp_path):
    lock_dir = tmp_path / "locks"
    holder = hold_lock(lock_dir, store, 30)
    try:
        started = time.monotonic()
        status, out, _ = run(
            ["Burgos", "Leon", "--config", f"main.lock_dir={lock_dir}", "main.lock_timeout=0.5"],
            environ,
        )
        waited = time.monotonic() - started
        # Status modes never wait.
        shown = run(["--show-status", "Burgos", "--config", f"main.lock_dir={lock_dir}"], environ)
    finally:
        holder.kill()
        holder.wait()
    assert status == ExitStatus.REGION_FAILED
    assert (
        "WARNING:Burgos: skipped: another GlanceSync run (pid 4242 (the other run)) is "
        "synchronising this region; waited 0.5 s (lock_timeout)"
    ) in out.splitlines()
    assert "INFO:Region Leon has finished" in out.splitlines()
    assert waited >= 0.5
    assert shown[0] == ExitStatus.OK and "pending_upload,Burgos,cirros_kernel" in shown[1]
    assert {i.name for i in JournalStore(store).read("Leon")} >= {"base_ubuntu_22.04"}
    assert "cirros_kernel" not in {i.name for i in JournalStore(store).read("Burgos")}


def test_a_run_that_waits_plans_again_and_uploads_nothing_twice(environ, store, tmp_path):
    lock_dir = tmp_path / "locks"
    config = ["--config", f"main.lock_dir={lock_dir}", "main.lock_timeout=60"]
    first = sync_process(["Burgos", *config], store, stdout=subprocess.PIPE, text=True)
    second = sync_process(["Burgos", *config], store, stdout=subprocess.PIPE, text=True)
    outputs = [process.communicate(timeout=120)[0] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0]
    uploaded = [
        image.id for image in JournalStore(store).read("Burgos") if image.id.startswith("2$")
    ]
    assert uploaded == []
    assert sum("Region is synchronized." in output for output in outputs) == 1


def test_locks_are_released_when_their_process_dies(store, tmp_path):
    lock_dir = tmp_path / "locks"
    holder = hold_lock(lock_dir, store, 30)
    holder.kill()
    holder.wait()
    locks = RegionLocks(lock_dir, 0)
    with locks.hold(f"mock {store} Burgos", "Burgos"):
        pass


# --------------------------------------------------------------------------- newcomers


def test_help_keeps_the_original_usage_wording(capsys):
    assert cli.main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in (
        "A tool to sync images from a master region to other regions",
        "region where the images are uploaded to",
        "sync several regions in parallel",
        "override configuration options. (e.g. main.master_region=Valladolid",
        "do not upload actually the images",
        "do not sync, but show the synchronisation status",
        "only show the available regions",
        "make a backup of the regions' metadata",
        "--make-backup",
        "--show-regions",
        "--show-status",
        "--dry-run",
        "--parallel",
        "--config KEY=VALUE [KEY=VALUE ...]",
    ):
        assert words in text, words


def test_a_backup_may_start_with_the_header_line(tmp_path, store):
    scenario = tmp_path / "with-header"
    scenario.mkdir()
    header = "region,name,id,status,size,checksum,owner,is_public,user_properties\n"
    (scenario / "backup_Valladolid.csv").write_text(
        header + "Valladolid,a,m-a,active,1,c1,tenant1id,True,{'type': 'x'}\n"
    )
    (scenario / "backup_Leon.csv").write_text(header)
    replay = tmp_path / "replay"
    assert mock_main(["--path", str(replay), str(scenario)]) == 0
    environ = {
        "GLANCESYNC_CONFIG": str(EXAMPLE_CONFIG),
        "GLANCESYNC_MOCKPERSISTENT_PATH": str(replay),
    }
    status, out, _ = run(["--show-status", "Leon"], environ)
    assert (status, out) == (ExitStatus.OK, "pending_upload,Leon,a\n")

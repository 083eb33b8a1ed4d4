"""The persistent mock: its loader, its semantics and its store's safety."""

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from builders import image, run_sync, target

from fiwareglancesync.errors import FacadeError
from fiwareglancesync.facades.base import ImageData
from fiwareglancesync.facades.mock_facade import JournalStore, MemoryStore, MockFacade
from fiwareglancesync.image import Image
from fiwareglancesync.mock import main
from fiwareglancesync.region import RegionRef

ROOT = Path(__file__).parents[2]
SCENARIO = ROOT / "examples" / "scenario"

R_REF = RegionRef("master", "R")
MASTER_REF = RegionRef("master", "Master")


def test_loader_prints_the_export_line_and_loads_every_region(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["--path", str(store), str(SCENARIO)]) == 0
    assert capsys.readouterr().out == f"export GLANCESYNC_MOCKPERSISTENT_PATH={store}\n"
    assert JournalStore(store).region_names() == ["Burgos", "Leon", "Valladolid", "other:Madrid"]
    assert JournalStore(store).read("Leon") == []


def test_loader_as_a_module_with_a_random_store():
    result = subprocess.run(
        [sys.executable, "-m", "fiwareglancesync.mock", "--random", str(SCENARIO)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0
    prefix = "export GLANCESYNC_MOCKPERSISTENT_PATH="
    assert result.stdout.startswith(prefix)
    path = Path(result.stdout.strip()[len(prefix) :])
    assert path.is_absolute() and (path / "backup_Burgos.csv").is_file()


def test_non_empty_store_needs_confirm(tmp_path, capsys):
    store = tmp_path / "store"
    old = tmp_path / "old"
    old.mkdir()
    (old / "backup_Old.csv").write_text("")
    assert main(["--path", str(store), str(old)]) == 0
    assert main(["--path", str(store), str(SCENARIO)]) == 2
    assert capsys.readouterr().err.endswith("is not empty; add --confirm to replace it\n")
    assert JournalStore(store).region_names() == ["Old"]
    assert main(["--path", str(store), "--confirm", str(SCENARIO)]) == 0
    assert "Old" not in JournalStore(store).region_names()


def test_malformed_row_names_file_and_line_and_loads_nothing(tmp_path, capsys):
    scenario = tmp_path / "scenario"
    scenario.mkdir()
    (scenario / "backup_A.csv").write_text("A,x,1,active,1,c,o,True,{}\n")
    (scenario / "backup_B.csv").write_text(
        "B,x,1,active,1,c,o,True,{}\nB,y,2,active,lots,c,o,True,{}\n"
    )
    store = tmp_path / "store"
    assert main(["--path", str(store), str(scenario)]) == 2
    err = capsys.readouterr().err
    assert "backup_B.csv, line 2: size is not a number" in err
    assert "Traceback" not in err
    assert not store.exists()


def test_code_in_a_cell_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    scenario = tmp_path / "scenario"
    scenario.mkdir()
    cell = f"__import__('os').system('touch {marker}')"
    (scenario / "backup_A.csv").write_text(f'A,x,1,active,1,c,o,True,"{cell}"\n')
    assert main(["--path", str(tmp_path / "store"), str(scenario)]) == 2
    assert not marker.exists()


def test_missing_scenario_is_an_error(tmp_path, capsys):
    assert main(["--path", str(tmp_path / "s"), str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_file_name_names_the_region_and_master_prefix_is_dropped(tmp_path):
    scenario = tmp_path / "scenario"
    scenario.mkdir()
    (scenario / "backup_master:Burgos.csv").write_text("Elsewhere,x,1,active,1,c,o,True,{}\n")
    assert main(["--path", str(tmp_path / "store"), str(scenario)]) == 0
    [loaded] = JournalStore(tmp_path / "store").read("Burgos")
    assert loaded.region == "Burgos"


# ----------------------------------------------------------------- facade semantics


def test_targets_see_their_own_regions_and_tenant_ids():
    store = MemoryStore()
    for name in ("Master", "Other", "t2:RegionOne", "t2:RegionTwo"):
        store.write(name, [])
    master = MockFacade(store, target("master"))
    other = MockFacade(store, target("t2", tenant_id=None))
    assert master.regions() == ["Master", "Other"]
    assert other.regions() == ["RegionOne", "RegionTwo"]
    assert master.project_id() == "tenant1id"
    assert other.project_id() == "tenant1id"  # project name 'tenant1' + 'id'


def test_upload_ids_update_and_delete():
    store = MemoryStore()
    store.write("t2:R", [Image("old", "2$old"), Image("other", "1$other")])
    facade = MockFacade(store, target("t2", tenant_id="tid"))
    region = RegionRef("t2", "R")
    master = image("new", "m1", size=7, status="active", is_public=True)
    first = facade.upload(region, master, None)
    second = facade.upload(region, image("other"), None)
    # The counter is per name: the smallest n for which "<n>$<name>" is not yet an id.
    assert (first.id, second.id) == ("1$new", "2$other")
    assert (first.owner, first.size, first.checksum, first.is_public) == (
        "tid",
        7,
        master.checksum,
        True,
    )
    facade.update(
        region, first.copy(name="renamed", is_public=False, user_properties={"a": 1}, size=99)
    )
    stored = {i.id: i for i in store.read("t2:R")}["1$new"]
    assert (stored.name, stored.is_public, stored.user_properties, stored.size) == (
        "renamed",
        False,
        {"a": 1},
        7,
    )
    assert facade.delete(region, "1$new") is True
    assert facade.delete(region, "1$new") is False
    assert facade.upload(region, image("again"), None).id == "1$again"


def test_the_mocks_own_download_is_accepted_but_wrong_bytes_are_not(tmp_path):
    store = MemoryStore()
    store.write("Master", [image("base", "m1", size=5)])
    store.write("R", [])
    facade = MockFacade(store, target())
    [master] = facade.list_images(MASTER_REF)
    assert facade.upload(R_REF, master, facade.download(MASTER_REF, master)).id == "1$base"
    wrong = tmp_path / "m1"
    wrong.write_bytes(b"12345")  # the right length, not the master's bytes
    with pytest.raises(
        FacadeError, match=r"refused to upload image base: the data from .* has checksum"
    ):
        facade.upload(R_REF, master, ImageData.from_file(str(wrong), master))
    assert [i.id for i in store.read("R")] == ["1$base"]


def _upload_many(path, worker):
    facade = MockFacade(JournalStore(path), target())
    for n in range(20):
        facade.upload(R_REF, image(f"w{worker}-{n}"), None)


def test_concurrent_writers_lose_nothing(tmp_path):
    JournalStore(tmp_path).write("R", [])
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_upload_many, args=(tmp_path, w)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    images = JournalStore(tmp_path).read("R")
    assert len(images) == 80
    assert len({i.id for i in images}) == 80


def test_a_write_that_dies_half_way_leaves_the_old_file(tmp_path, monkeypatch):
    store = JournalStore(tmp_path)
    store.write("R", [image("kept")])

    def explode(stream, images):
        stream.write("R,half")
        raise KeyboardInterrupt

    monkeypatch.setattr("fiwareglancesync.facades.journal_store.write_csv", explode)
    with pytest.raises(KeyboardInterrupt):
        store.write("R", [image("lost")])
    assert [i.name for i in store.read("R")] == ["kept"]
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp")] == []


# ----------------------------------------------------------------- the loader owns what it replaces


def _scenario(tmp_path, name="scenario", rows="A,x,1,active,1,c,o,True,{}\n"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "backup_A.csv").write_text(rows)
    return folder


def test_a_folder_that_is_not_a_store_is_never_replaced(tmp_path, capsys):
    documents = tmp_path / "documents"
    documents.mkdir()
    (documents / "thesis.odt").write_text("years of work")
    scenario = _scenario(tmp_path)
    for flags in ([], ["--confirm"]):
        assert main(["--path", str(documents), *flags, str(scenario)]) == 2
    err = capsys.readouterr().err
    assert (
        f"ERROR: {documents} is not empty and is not a mock store made by glancesync-mock (it "
        "has no .glancesync-mock-store file): it is left alone" in err
    )
    assert sorted(os.listdir(documents)) == ["thesis.odt"]


def test_a_store_holding_a_file_it_did_not_make_is_left_alone(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["--path", str(store), str(_scenario(tmp_path))]) == 0
    (store / "notes.txt").write_text("mine")
    assert main(["--path", str(store), "--confirm", str(SCENARIO)]) == 2
    assert "also holds 'notes.txt', which the store did not make" in capsys.readouterr().err
    assert (store / "notes.txt").read_text() == "mine"
    assert JournalStore(store).region_names() == ["A"]


@pytest.mark.parametrize("where", ["itself", "parent"])
def test_the_scenario_folder_can_never_be_the_store(tmp_path, capsys, where):
    store = tmp_path / "store"
    assert main(["--path", str(store), str(SCENARIO)]) == 0
    scenario = store if where == "itself" else _scenario(store, "inside")
    before = sorted(os.listdir(store))
    assert main(["--path", str(store), "--confirm", str(scenario)]) == 2
    err = capsys.readouterr().err
    assert "is the scenario folder itself" in err or "is inside the store" in err
    assert sorted(os.listdir(store)) == before


def test_a_store_behind_a_symbolic_link_is_replaced_where_it_is(tmp_path):
    real = tmp_path / "real"
    assert main(["--path", str(real), str(_scenario(tmp_path))]) == 0
    link = tmp_path / "link"
    link.symlink_to(real)
    assert main(["--path", str(link), "--confirm", str(SCENARIO)]) == 0
    assert link.is_symlink()
    assert "Burgos" in JournalStore(real).region_names()


def test_an_empty_directory_is_filled_in_place(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--path", str(empty), str(SCENARIO)]) == 0
    assert (empty / ".glancesync-mock-store").is_file()
    assert JournalStore(empty).region_names() == ["Burgos", "Leon", "Valladolid", "other:Madrid"]


def test_a_load_that_fails_half_way_leaves_the_old_store_as_it_was(tmp_path, monkeypatch, capsys):
    store = tmp_path / "store"
    assert main(["--path", str(store), str(_scenario(tmp_path))]) == 0
    before = {name: (store / name).read_bytes() for name in os.listdir(store)}
    calls = []
    real_import = JournalStore.import_file

    def import_then_fail(self, region, source):
        calls.append(region)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(source))
        real_import(self, region, source)

    monkeypatch.setattr(JournalStore, "import_file", import_then_fail)
    assert main(["--path", str(store), "--confirm", str(SCENARIO)]) == 1
    assert "no space left on device" in capsys.readouterr().err
    assert {name: (store / name).read_bytes() for name in os.listdir(store)} == before
    assert [p for p in os.listdir(tmp_path) if p.startswith(".store")] == []


# ----------------------------------------------------------------- a faithful replay


def test_every_row_is_listed_other_projects_private_images_included():
    store = MemoryStore()
    store.write("R", [image("mine", "a"), image("theirs", "b", owner="other", is_public=False)])
    listed = MockFacade(store, target()).list_images(R_REF)
    assert [i.id for i in listed] == ["a", "b"]


def real_backup(tmp_path, with_ids: bool):
    """A backup as --make-backup writes it on a real cloud: owners are Keystone ids."""
    folder = tmp_path / ("with-ids" if with_ids else "without-ids")
    folder.mkdir()
    owner = "4f1d3c5b9a2e4d0c8b7a6f5e4d3c2b1a"
    (folder / "backup_Valladolid.csv").write_text(
        f"Valladolid,ubuntu,u1,active,10,{'1' * 32},{owner},True,{{'type': 'x'}}\n"
    )
    (folder / "backup_Leon.csv").write_text("")
    if with_ids:
        (folder / "project_ids.json").write_text(f'{{"master": "{owner}"}}\n')
    return folder


@pytest.mark.parametrize("with_ids", [False, True])
def test_a_real_backup_replays_with_the_project_ids_it_recorded(tmp_path, with_ids):
    store = tmp_path / "store"
    assert main(["--path", str(store), str(real_backup(tmp_path, with_ids))]) == 0
    config = tmp_path / "glancesync.conf"
    config.write_text(
        "[main]\nmaster_region = Valladolid\n[master]\n"
        "credential = admin,c2VjcmV0,http://127.0.0.1:5000/v3,admin\n"
    )
    environ = {"GLANCESYNC_CONFIG": str(config), "GLANCESYNC_MOCKPERSISTENT_PATH": str(store)}
    status, out, err = run_sync(["--show-status", "Leon"], environ)
    assert status == 0
    if with_ids:
        assert out == "pending_upload,Leon,ubuntu\n"
        assert "None of the" not in err
    else:
        assert out == ""
        assert (
            "WARNING:None of the 1 active images of the master region Valladolid is owned by "
            "project adminid, the project id the owners are compared with: nothing is "
            "synchronised. Set tenant_id in [master] to the project that owns them (most are "
            "owned by 4f1d3c5b9a2e4d0c8b7a6f5e4d3c2b1a)"
        ) in err.splitlines()


def test_a_bad_project_ids_file_is_refused_and_loads_nothing(tmp_path, capsys):
    scenario = _scenario(tmp_path)
    (scenario / "project_ids.json").write_text('{"master": ["not", "an", "id"]}')
    assert main(["--path", str(tmp_path / "store"), str(scenario)]) == 2
    assert "project_ids.json: not a JSON object of target: project id" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()

"""The persistent mock's journal: replay, torn records, compaction, several writers."""

import errno
import io
import multiprocessing
import os
import signal
import threading
from pathlib import Path

import pytest
from builders import image, target

from fiwareglancesync.facades import journal
from fiwareglancesync.facades.journal import decode, encode
from fiwareglancesync.facades.mock_facade import JournalStore, MockFacade, MockStore
from fiwareglancesync.image import read_csv
from fiwareglancesync.mock import is_store_file
from fiwareglancesync.mock import main as load_main
from fiwareglancesync.region import RegionRef

FORK = multiprocessing.get_context("fork")

R_REF = RegionRef("master", "R")
MASTER_REF = RegionRef("master", "Master")


def snapshot_rows(path: Path, region: str = "R") -> list[str]:
    """The names in the region's snapshot file alone, journal left aside."""
    text = (path / f"backup_{region}.csv").read_text(encoding="utf-8")
    return [i.name for i in read_csv(io.StringIO(text))]


def journal_records(path: Path, region: str = "R") -> list[list[str]]:
    data = (path / f".backup_{region}.csv.journal").read_bytes()
    records, used = decode(data)
    assert used == len(data), "the journal holds a torn or damaged record"
    return records


def names(store: MockStore, region: str = "R") -> list[str]:
    return [i.name for i in store.read(region)]


def facade(path: Path) -> MockFacade:
    return MockFacade(JournalStore(path), target())


def loaded(tmp_path: Path, *rows: str) -> Path:
    """A store loaded by the loader with region R holding these image names."""
    scenario = tmp_path / "scenario"
    scenario.mkdir()
    lines = "".join(f"R,{n},id-{n},active,1,{'c' * 32},tenant1id,True,{{}}\n" for n in rows)
    (scenario / "backup_R.csv").write_text(lines)
    path = tmp_path / "store"
    assert load_main(["--path", str(path), str(scenario)]) == 0
    return path


# ----------------------------------------------------------------- the record format


def test_records_round_trip_and_a_line_holds_one_record():
    records = [
        ["base", "0" * 32, "e" * 32],
        [
            "upload",
            "R",
            'odd, "name"\nwith a newline\r é',
            "1$x",
            "active",
            "1",
            "",
            "",
            "True",
            "{}",
        ],
        ["delete", "1$x"],
    ]
    data = b"".join(encode(r) for r in records)
    assert data.count(b"\n") == 3 and data.isascii()
    assert decode(data) == (records, len(data))


def test_a_torn_or_damaged_last_record_is_ignored():
    whole = encode(["delete", "a"]) + encode(["delete", "b"])
    first = len(encode(["delete", "a"]))
    for cut in range(first, len(whole)):
        assert decode(whole[:cut]) == ([["delete", "a"]], first)
    damaged = whole[:-3] + b"X" + whole[-2:]
    assert decode(damaged) == ([["delete", "a"]], first)


# ----------------------------------------------------------------- replay


def test_each_change_appends_one_record_and_a_fresh_store_replays_them(tmp_path):
    path = loaded(tmp_path, "kept", "gone")
    writer = facade(path)
    created = writer.upload(R_REF, image("new", size=7), None)
    writer.update(R_REF, created.copy(name="renamed", user_properties={"a": 1}))
    assert writer.delete(R_REF, "id-gone") is True
    assert [r[0] for r in journal_records(path)] == ["base", "upload", "update", "delete"]
    assert snapshot_rows(path) == ["kept", "gone"]  # not rewritten by the changes
    [kept, renamed] = JournalStore(path).read("R")
    assert (kept.name, renamed.name, renamed.id, renamed.size) == ("kept", "renamed", "1$new", 7)
    assert renamed.user_properties == {"a": 1} and renamed.region == "R"


def test_reads_see_writes_of_other_instances_and_ids_stay_unique(tmp_path):
    path = loaded(tmp_path, "a")
    first, second = facade(path), facade(path)
    assert [i.id for i in first.list_images(R_REF)] == ["id-a"]
    assert second.upload(R_REF, image("b"), None).id == "1$b"
    assert first.upload(R_REF, image("b"), None).id == "2$b"
    assert [i.id for i in second.list_images(R_REF)] == ["id-a", "1$b", "2$b"]
    assert first.delete(R_REF, "1$b") is True
    assert second.delete(R_REF, "1$b") is False
    assert second.upload(R_REF, image("b"), None).id == "1$b"
    assert [i.id for i in first.list_images(R_REF)] == ["id-a", "2$b", "1$b"]


def tear(path: Path, name: str) -> None:
    """Leave a record half-written at the end of the journal, as a killed writer would."""
    with open(path / ".backup_R.csv.journal", "ab") as stream:
        stream.write(encode(journal.upload_record(image(name, f"1${name}")))[:-5])


def test_a_torn_last_record_is_ignored_and_cut_off_by_the_next_writer(tmp_path):
    path = loaded(tmp_path, "a")
    writer = facade(path)
    writer.upload(R_REF, image("b"), None)
    tear(path, "torn")
    writer.upload(R_REF, image("c"), None)
    assert [r[0] for r in journal_records(path)] == ["base", "upload", "upload"]
    tear(path, "torn-again")
    assert names(JournalStore(path)) == ["a", "b", "c"]


def test_a_journal_whose_snapshot_was_replaced_counts_for_nothing(tmp_path):
    path = loaded(tmp_path, "a")
    facade(path).upload(R_REF, image("b"), None)
    # The snapshot replaced behind the journal's back (by hand, or by a copy).
    (path / "backup_R.csv").write_text(f"R,z,id-z,active,1,{'c' * 32},tenant1id,True,{{}}\n")
    assert names(JournalStore(path)) == ["z"]
    facade(path).upload(R_REF, image("c"), None)
    assert names(JournalStore(path)) == ["z", "c"]


# ----------------------------------------------------------------- compaction


def test_the_journal_is_compacted_when_it_grows_past_the_bound(tmp_path, monkeypatch):
    # The bound is the larger of COMPACT_MIN_RECORDS and the number of images.
    monkeypatch.setattr(JournalStore, "COMPACT_MIN_RECORDS", 4)
    path = loaded(tmp_path, "a", "b")
    writer = facade(path)
    reader = JournalStore(path)
    assert names(reader) == ["a", "b"]
    for n in range(11):
        writer.update(R_REF, image("a", "id-a", user_properties={"n": n}))
        [a, _] = reader.read("R")
        assert a.user_properties == {"n": n}
    # Compacted after the 5th and the 10th record.
    [a, _] = read_csv(io.StringIO((path / "backup_R.csv").read_text()))
    assert a.user_properties == {"n": 9}
    assert [r[0] for r in journal_records(path)] == ["base", "update"]


def test_a_region_is_compacted_at_its_end_on_load_and_on_close(tmp_path):
    path = loaded(tmp_path, "a")
    writer = facade(path)
    writer.upload(R_REF, image("b"), None)
    writer.finish_region(R_REF)
    assert snapshot_rows(path) == ["a", "b"]
    assert [r[0] for r in journal_records(path)] == ["base"]
    writer.upload(R_REF, image("c"), None)
    assert names(JournalStore(path)) == ["a", "b", "c"]  # a new store reads it: compacts it
    assert snapshot_rows(path) == ["a", "b", "c"]
    writer.upload(R_REF, image("d"), None)
    writer.close()
    assert snapshot_rows(path) == ["a", "b", "c", "d"]
    assert [r[0] for r in journal_records(path)] == ["base"]


def test_journals_are_store_files_the_loader_replaces(tmp_path, capsys):
    path = loaded(tmp_path, "a")
    facade(path).upload(R_REF, image("b"), None)
    assert is_store_file(".backup_R.csv.journal")
    assert is_store_file(".backup_other:R.csv.journal")
    other = tmp_path / "other"
    other.mkdir()
    (other / "backup_S.csv").write_text("")
    assert load_main(["--path", str(path), "--confirm", str(other)]) == 0, capsys.readouterr()
    assert sorted(os.listdir(path)) == [".glancesync-mock-store", "backup_S.csv"]


# ----------------------------------------------------------------- processes and threads


UPLOADS = 200  # per writer, of five names


def _write_the_same_names(path, worker, start):
    JournalStore.COMPACT_MIN_RECORDS = 7  # compactions race with the other writer
    writer = facade(path)
    start.wait(60)
    for n in range(UPLOADS):
        created = writer.upload(R_REF, image(f"name{n % 5}"), None)
        if n % 4 == 0:
            writer.update(R_REF, created.copy(user_properties={"by": str(worker)}))
        if n % 6 == 0:
            writer.upload(R_REF, image(f"temporary{worker}"), None)
            assert writer.delete(R_REF, f"1$temporary{worker}") is True
        if n % 25 == 24:
            writer.finish_region(R_REF)


def _read_while_they_write(path, start, stop, problems):
    reader = JournalStore(path)
    start.wait(60)
    seen = 0
    while not stop.is_set():
        ids = [i.id for i in reader.read("R")]
        uploads = sum(1 for i in ids if "$name" in i)
        if len(set(ids)) != len(ids) or uploads < seen:
            problems.value += 1
        seen = uploads


def test_two_processes_writing_one_region_lose_nothing_and_never_duplicate_an_id(tmp_path):
    path = loaded(tmp_path, "a")
    start, stop, problems = FORK.Barrier(3), FORK.Event(), FORK.Value("i", 0)
    writers = [FORK.Process(target=_write_the_same_names, args=(path, w, start)) for w in (1, 2)]
    reader = FORK.Process(target=_read_while_they_write, args=(path, start, stop, problems))
    try:
        for process in [*writers, reader]:
            process.start()
        for process in writers:
            process.join(120)
        stop.set()
        reader.join(60)
    finally:
        for process in [*writers, reader]:
            if process.is_alive():
                process.kill()
    assert [p.exitcode for p in [*writers, reader]] == [0, 0, 0]
    assert problems.value == 0  # no read saw an id twice, or fewer uploads than before
    images = JournalStore(path).read("R")
    ids = [i.id for i in images]
    per_name = 2 * UPLOADS // 5
    assert len(ids) == len(set(ids)) == 1 + 2 * UPLOADS
    assert sorted(ids) == sorted(
        ["id-a"] + [f"{k}$name{n}" for n in range(5) for k in range(1, per_name + 1)]
    )
    updated = [i for i in images if i.user_properties]
    assert len(updated) == 2 * UPLOADS // 4
    assert {i.user_properties["by"] for i in updated} == {"1", "2"}


def test_threads_sharing_a_store_lose_nothing(tmp_path):
    path = loaded(tmp_path)
    shared = facade(path)

    def upload_many():
        for _ in range(40):
            shared.upload(R_REF, image("t"), None)
            shared.list_images(R_REF)

    threads = [threading.Thread(target=upload_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [i.id for i in JournalStore(path).read("R")]
    assert sorted(ids) == sorted(f"{k}$t" for k in range(1, 161))


def _die_at(path, where):
    """Upload ``c`` and compact the region, in a child that SIGKILLs itself at ``where``."""

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    store = JournalStore(path)
    writer = MockFacade(store, target())
    if where == "mid-record":
        real_write = os.write

        def half_then_die(descriptor, data):
            if b'"upload"' not in data:  # a compaction's record, on load
                return real_write(descriptor, data)
            real_write(descriptor, data[: len(data) // 2])
            return die()

        os.write = half_then_die
    writer.upload(R_REF, image("c"), None)
    if where == "before the new snapshot":  # the old journal is sealed already
        store._write_file = die
    elif where == "before the new journal":  # the new snapshot is in place
        store._new_journal = die
    writer.finish_region(R_REF)


@pytest.mark.parametrize(
    "where, kept",
    [
        ("mid-record", False),
        ("before the new snapshot", True),
        ("before the new journal", True),
    ],
)
def test_a_writer_killed_at_any_point_leaves_each_record_once_or_not_at_all(tmp_path, where, kept):
    path = loaded(tmp_path, "a")
    writer = facade(path)
    writer.upload(R_REF, image("b"), None)
    writer.finish_region(R_REF)
    writer.upload(R_REF, image("b"), None)  # a journal with a record in it
    child = FORK.Process(target=_die_at, args=(path, where))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    expected = ["a", "b", "b", "c"] if kept else ["a", "b", "b"]
    assert names(JournalStore(path)) == expected
    facade(path).upload(R_REF, image("d"), None)
    after = JournalStore(path).read("R")
    assert [i.name for i in after] == [*expected, "d"]
    assert [i.id for i in after][1:3] == ["1$b", "2$b"]


def _write_back_then_die(path):
    store = JournalStore(path)
    store._new_journal = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
    store.write("R", [image("a", "id-a", region="R", size=1, checksum="c" * 32)])


def test_a_region_written_back_as_it_was_is_not_replayed_after_a_crash(tmp_path):
    # The snapshot gets the very bytes it had: only the seal tells the journal is done.
    path = loaded(tmp_path, "a")
    before = (path / "backup_R.csv").read_bytes()
    facade(path).upload(R_REF, image("x"), None)
    child = FORK.Process(target=_write_back_then_die, args=(path,))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert (path / "backup_R.csv").read_bytes() == before
    assert names(JournalStore(path)) == ["a"]


def test_regions_leaving_memory_are_compacted(tmp_path, monkeypatch):
    monkeypatch.setattr(JournalStore, "CACHED_REGIONS", 1)
    path = loaded(tmp_path, "a")
    JournalStore(path).write("S", [])
    writer = facade(path)
    writer.upload(R_REF, image("b"), None)
    assert snapshot_rows(path) == ["a"]
    writer.upload(RegionRef("master", "S"), image("c"), None)  # R leaves memory
    assert snapshot_rows(path) == ["a", "b"]
    assert [r[0] for r in journal_records(path)] == ["base"]
    assert names(writer.store) == ["a", "b"]


def test_a_compaction_that_fails_does_not_fail_the_change(tmp_path, monkeypatch):
    monkeypatch.setattr(JournalStore, "COMPACT_MIN_RECORDS", 0)
    path = loaded(tmp_path, "a")
    writer = facade(path)
    real_write_file = writer.store._write_file

    def full_disk_for_snapshots(destination, content):
        if destination.suffix == ".csv":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_file(destination, content)

    writer.store._write_file = full_disk_for_snapshots
    for n in range(3):  # the 2nd and 3rd records try to compact
        writer.update(R_REF, image("a", "id-a", user_properties={"n": n}))
        assert writer.list_images(R_REF)[0].user_properties == {"n": n}
    assert [r[0] for r in journal_records(path)].count("update") == 3
    [a] = JournalStore(path).read("R")
    assert a.user_properties == {"n": 2}

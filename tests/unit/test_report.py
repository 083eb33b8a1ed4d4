"""--show-status --format json|html and --metrics-file, through main() on the example."""

from __future__ import annotations

import json
from html.parser import HTMLParser

from builders import run_sync as run
from prometheus_client.parser import text_string_to_metric_families

from fiwareglancesync import __version__
from fiwareglancesync.errors import ExitStatus
from fiwareglancesync.facades.mock_facade import JournalStore
from fiwareglancesync.plan import STATUSES
from fiwareglancesync.report import STATUS_STYLE

REGIONS = ["master:", "other:"]


def csv_statuses(environ) -> dict[tuple[str, str], str]:
    status, out, _ = run(["--show-status", *REGIONS], environ)
    assert status == ExitStatus.OK
    rows = [line.split(",") for line in out.splitlines()]
    return {(region, name): status for status, region, name in rows}


def test_every_status_has_a_colour_a_label_and_a_meaning():
    assert list(STATUS_STYLE) == [s for s in STATUS_STYLE if s in STATUSES]
    assert set(STATUS_STYLE) == set(STATUSES)
    assert len({colour for colour, _, _ in STATUS_STYLE.values()}) == len(STATUSES)


def test_csv_stays_the_default_byte_for_byte(environ):
    assert run(["--show-status", *REGIONS], environ) == run(
        ["--show-status", "--format", "csv", *REGIONS], environ
    )


def test_the_json_report_holds_what_show_status_says(environ):
    status, out, _ = run(["--show-status", "--format", "json", *REGIONS], environ)
    assert status == ExitStatus.OK
    report = json.loads(out)
    assert report["format"] == "glancesync-status/1"
    assert report["master_region"] == "Valladolid"
    assert report["config"].endswith("examples/glancesync.conf")
    assert report["statuses"] == list(STATUSES)
    found = {
        (region["region"], image["name"]): image["status"]
        for region in report["regions"]
        for image in region["images"]
    }
    assert found == csv_statuses(environ)
    burgos = next(region for region in report["regions"] if region["region"] == "Burgos")
    assert burgos["ok"] is True and burgos["error"] is None
    assert sum(burgos["counts"].values()) == len(burgos["images"]) == 10
    checksum = next(i for i in burgos["images"] if i["status"] == "error_checksum")
    assert checksum["message"].startswith("checksum ") and checksum["id"]


def test_a_failed_region_is_in_the_report_with_its_error(environ, store):
    (store / "backup_Burgos.csv").write_text("Burgos,broken,id,active,lots,c,o,True,{}\n")
    status, out, _ = run(["--show-status", "--format", "json", "Burgos", "Leon"], environ)
    assert status == ExitStatus.REGION_FAILED
    regions = {region["region"]: region for region in json.loads(out)["regions"]}
    assert regions["Burgos"]["ok"] is False
    assert "size is not a number" in regions["Burgos"]["error"]
    assert regions["Leon"]["ok"] is True


class Cells(HTMLParser):
    """The matrix's cells: (image, region) -> status, from the data-status attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.regions: list[str] = []
        self.cells: dict[tuple[str, str], str] = {}
        self.external: list[str] = []
        self._row: str | None = None
        self._column = 0
        self._in_matrix = False

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.external.append(values[name])
        if tag == "table" and values.get("class") == "matrix":
            self._in_matrix = True
        if not self._in_matrix:
            return
        if tag == "th" and values.get("class") == "region":
            self._region_header = True
        if tag == "tr" and "data-name" in values:
            self._row, self._column = values["data-name"], 0
        if tag == "td" and self._row is not None:
            region = self.regions[self._column]
            self._column += 1
            if "data-status" in values:
                self.cells[(self._row, region)] = values["data-status"]

    def handle_data(self, data):
        if getattr(self, "_region_header", False):
            self.regions.append(data)
            self._region_header = False

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_matrix = False


def test_the_html_page_is_one_file_with_a_cell_per_image_and_region(environ):
    status, out, _ = run(["--show-status", "--format", "html", *REGIONS], environ)
    assert status == ExitStatus.OK
    page = Cells()
    page.feed(out)
    assert page.external == []  # self-contained: no link, no script or image to fetch
    assert page.regions == ["Leon", "Burgos", "other:Madrid"]
    assert {(region, name): s for (name, region), s in page.cells.items()} == csv_statuses(environ)
    for status_name, (colour, _, _) in STATUS_STYLE.items():
        assert status_name in out and colour in out  # the legend
    assert "examples/glancesync.conf" in out and "Made <time" in out


def test_names_are_escaped_in_the_page(environ, store):
    images = JournalStore(store).read("Valladolid")
    images[0].name = "<script>alert(1)</script>"
    JournalStore(store).write("Valladolid", images)
    _, out, _ = run(["--show-status", "--format", "html", "Leon"], environ)
    assert "<script>alert(1)</script>" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out


def test_format_goes_with_show_status_only(environ, capsys):
    assert run(["--format", "json"], environ)[0] == ExitStatus.USAGE


# --------------------------------------------------------------------------- metrics


def metrics(path) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name, **labels):
    return found[(name, tuple(sorted(labels.items())))]


def test_the_metrics_file_holds_the_figures_of_the_sync(environ, tmp_path):
    before = csv_statuses(environ)
    path = tmp_path / "glancesync.prom"
    status, out, _ = run(["--metrics-file", str(path), *REGIONS], environ)
    assert status == ExitStatus.OK
    after = csv_statuses(environ)
    assert after != before  # the sync did change something
    found = metrics(path)

    def count(statuses, region, status_name):
        return sum(1 for (r, _), s in statuses.items() if r == region and s == status_name)

    for region in ("Leon", "Burgos", "other:Madrid"):
        for status_name in STATUSES:
            # What the run left behind is what the next --show-status finds; what it
            # found before acting keeps a name of its own.
            left = value(found, "glancesync_images", region=region, status=status_name)
            assert left == count(after, region, status_name), (region, status_name)
            earlier = value(found, "glancesync_images_found", region=region, status=status_name)
            assert earlier == count(before, region, status_name), (region, status_name)
        assert value(found, "glancesync_region_last_run_success", region=region) == 1
        assert value(found, "glancesync_region_consecutive_failures", region=region) == 0
    uploads = [line for line in out.splitlines() if line.startswith("INFO:Leon: Uploading image")]
    assert value(found, "glancesync_uploaded_images", region="Leon") == len(uploads) == 10
    total = sum(
        i.size for i in JournalStore(environ["GLANCESYNC_MOCKPERSISTENT_PATH"]).read("Leon")
    )
    assert value(found, "glancesync_uploaded_bytes", region="Leon") == total
    assert value(found, "glancesync_last_run_success") == 1
    assert (
        value(
            found,
            "glancesync_last_run_info",
            mode="sync",
            version=__version__,
        )
        == 1
    )
    # The stumble: Leon's ten images were all uploaded, so none is pending any more,
    # and the dashboard says so at once rather than at the next run.
    assert value(found, "glancesync_images_found", region="Leon", status="pending_upload") == 10
    assert value(found, "glancesync_images", region="Leon", status="pending_upload") == 0
    assert value(found, "glancesync_images", region="Leon", status="ok") == 10
    assert value(found, "glancesync_region_pending_since_timestamp_seconds", region="Leon") == 0


def test_a_dry_run_leaves_what_it_found(environ, tmp_path):
    path = tmp_path / "glancesync.prom"
    status, _, _ = run(["--dry-run", "--metrics-file", str(path), "Leon"], environ)
    assert status == ExitStatus.OK
    found = metrics(path)
    assert value(found, "glancesync_images", region="Leon", status="pending_upload") == 10
    assert value(found, "glancesync_images_found", region="Leon", status="pending_upload") == 10
    # Images still pending: since this run, until a run leaves none.
    assert value(found, "glancesync_region_pending_since_timestamp_seconds", region="Leon") > 0


def test_failures_in_a_row_are_counted_and_other_regions_are_kept(environ, store, tmp_path):
    path = tmp_path / "glancesync.prom"
    assert run(["--show-status", "--metrics-file", str(path), "Burgos", "Leon"], environ)[0] == 0
    (store / "backup_Burgos.csv").write_text("Burgos,broken,id,active,lots,c,o,True,{}\n")
    for expected in (1, 2):
        assert run(["--show-status", "--metrics-file", str(path), "Burgos"], environ)[0] == 1
        found = metrics(path)
        assert value(found, "glancesync_region_consecutive_failures", region="Burgos") == expected
        assert value(found, "glancesync_region_last_run_success", region="Burgos") == 0
        # Leon was not in these runs: its figures are the last ones known.
        assert value(found, "glancesync_region_last_run_success", region="Leon") == 1
        assert value(found, "glancesync_images", region="Leon", status="pending_upload") == 10
        # Burgos's image counts are the last ones known too.
        assert value(found, "glancesync_images", region="Burgos", status="ok") == 2
        assert value(found, "glancesync_last_run_success") == 0


def test_an_unwritable_metrics_file_is_one_line(environ, tmp_path):
    status, _, err = run(
        ["--show-status", "--metrics-file", str(tmp_path / "no" / "m.prom"), "Leon"], environ
    )
    assert status == ExitStatus.REGION_FAILED
    assert [line for line in err.splitlines() if line.startswith("ERROR")] == [
        f"ERROR: cannot write the metrics file {tmp_path / 'no' / 'm.prom'}: no such file or directory"
    ]

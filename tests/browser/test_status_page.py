"""The status page of ``sync.py --show-status --format html``, in a real Chromium.

What the browser shows is checked against ``--show-status``'s rows: a cell per image and
region with the status's colour, the legend, the counts of each region, the filter; and
a federation of 20 regions x 1,000 images stays readable (every cell there, headers that
stay in view while scrolling). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from fiwareglancesync.cli import main
from fiwareglancesync.image import Image, write_csv
from fiwareglancesync.mock import main as load
from fiwareglancesync.plan import STATUSES
from fiwareglancesync.report import STATUS_STYLE

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples"


def sync(argv: list[str], environ: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    status = main(argv, environ=environ, stdout=out, stderr=io.StringIO())
    return status, out.getvalue()


def rgba(colour: str) -> str:
    """``#2166ac`` as the browser reports a computed colour: ``rgba(33, 102, 172, 1)``."""
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red}, {green}, {blue}, 1)"


@pytest.fixture
def example(tmp_path: Path) -> dict[str, str]:
    store = tmp_path / "store"
    assert load(["--path", str(store), str(EXAMPLE / "scenario")]) == 0
    return {
        "GLANCESYNC_CONFIG": str(EXAMPLE / "glancesync.conf"),
        "GLANCESYNC_MOCKPERSISTENT_PATH": str(store),
    }


def page_of(environ: dict[str, str], tmp_path: Path, regions: list[str]) -> Path:
    status, html = sync(["--show-status", "--format", "html", *regions], environ)
    assert status == 0
    path = tmp_path / "status.html"
    path.write_text(html, encoding="utf-8")
    return path


def test_the_page_shows_every_status_in_its_colour(browser, example, tmp_path, artifacts):
    regions = ["master:", "other:"]
    _, rows = sync(["--show-status", *regions], example)
    expected = {(r, n): s for s, r, n in (line.split(",") for line in rows.splitlines())}
    browser.get(page_of(example, tmp_path, regions).as_uri())

    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "table.matrix th.region")]
    assert headers == ["Leon", "Burgos", "other:Madrid"]
    shown = {}
    for row in browser.find_elements(By.CSS_SELECTOR, "table.matrix tbody tr"):
        name = row.find_element(By.CSS_SELECTOR, "th").text
        for region, cell in zip(headers, row.find_elements(By.TAG_NAME, "td"), strict=True):
            status = cell.get_attribute("data-status")
            if status is None:
                assert cell.text == "—"  # not synchronised to that region
                continue
            shown[(region, name)] = status
            colour, label, _ = STATUS_STYLE[status]
            assert cell.value_of_css_property("background-color") == rgba(colour)
            assert cell.text == label
    assert shown == expected

    legend = browser.find_elements(By.CSS_SELECTOR, "ul.legend li")
    assert [item.get_attribute("data-status") for item in legend] == list(STATUSES)
    for item in legend:
        colour = STATUS_STYLE[item.get_attribute("data-status")][0]
        swatch = item.find_element(By.CSS_SELECTOR, ".swatch")
        assert swatch.value_of_css_property("background-color") == rgba(colour)

    burgos = browser.find_element(By.CSS_SELECTOR, 'table.counts tr[data-region="Burgos"]')
    for status in STATUSES:
        count = sum(1 for (r, _), s in expected.items() if r == "Burgos" and s == status)
        cell = burgos.find_element(By.CSS_SELECTOR, f'td[data-status="{status}"]')
        assert cell.text == (str(count) if count else "")
    browser.save_screenshot(str(artifacts / "status-page.png"))

    rows_before = len(
        [
            r
            for r in browser.find_elements(By.CSS_SELECTOR, "table.matrix tbody tr")
            if r.is_displayed()
        ]
    )
    browser.find_element(By.ID, "only-problems").click()
    visible = [
        r
        for r in browser.find_elements(By.CSS_SELECTOR, "table.matrix tbody tr")
        if r.is_displayed()
    ]
    settled = {n for (_, n), s in expected.items()} - {
        n for (_, n), s in expected.items() if s not in ("ok", "ok_stalled_checksum")
    }
    assert len(visible) == rows_before - len(settled)


def large_federation(tmp_path: Path, regions: int = 20, images: int = 1000) -> dict[str, str]:
    scenario = tmp_path / "large"
    scenario.mkdir()
    master = [
        Image(
            f"image-{n:04d}",
            f"m{n}",
            "Master",
            size=n,
            checksum=f"{n:032x}",
            owner="tenant1id",
            visibility="public",
            user_properties={"type": "x"},
        )
        for n in range(images)
    ]
    with open(scenario / "backup_Master.csv", "w", newline="") as out:
        write_csv(out, master)
    for index in range(regions):
        # Each region holds a different share of the images, some with another content.
        held = [
            image.copy(
                id=f"r{index}-{image.id}",
                region=f"R{index:02d}",
                checksum=image.checksum if n % 7 else "f" * 32,
            )
            for n, image in enumerate(master)
            if (n + index) % 5
        ]
        with open(scenario / f"backup_R{index:02d}.csv", "w", newline="") as out:
            write_csv(out, held)
    config = tmp_path / "large.conf"
    config.write_text(
        "[main]\nmaster_region = Master\n[master]\n"
        "credential = admin,c2VjcmV0,http://127.0.0.1:5000/v3,tenant1\nreplace = any\n"
    )
    store = tmp_path / "large-store"
    assert load(["--path", str(store), str(scenario)]) == 0
    return {"GLANCESYNC_CONFIG": str(config), "GLANCESYNC_MOCKPERSISTENT_PATH": str(store)}


def test_twenty_regions_by_a_thousand_images_stay_readable(browser, tmp_path, artifacts):
    environ = large_federation(tmp_path)
    browser.get(page_of(environ, tmp_path, []).as_uri())
    cells = browser.execute_script("return document.querySelectorAll('table.matrix td').length")
    assert cells == 20 * 1000
    assert (
        browser.execute_script(
            "return document.querySelectorAll('table.matrix td[data-status=pending_replace]').length"
        )
        > 0
    )
    # Scrolled down and right, the region names and the image names stay in view.
    browser.execute_script(
        "var w = document.querySelector('.matrix-wrap'); w.scrollTop = 9000; w.scrollLeft = 400;"
    )
    wrap_top = browser.execute_script(
        "return document.querySelector('.matrix-wrap').getBoundingClientRect().top"
    )
    header_top = browser.execute_script(
        "return document.querySelector('table.matrix thead th').getBoundingClientRect().top"
    )
    assert abs(header_top - wrap_top) <= 2
    wrap_left = browser.execute_script(
        "return document.querySelector('.matrix-wrap').getBoundingClientRect().left"
    )
    first_column = browser.execute_script(
        "var rows = document.querySelectorAll('table.matrix tbody tr');"
        "return rows[rows.length - 1].querySelector('th').getBoundingClientRect().left"
    )
    assert abs(first_column - wrap_left) <= 2
    browser.save_screenshot(str(artifacts / "status-page-large.png"))

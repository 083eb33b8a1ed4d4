"""The federation at a glance: the statuses of every region, as JSON and as an HTML page.

The same :class:`StatusReport` feeds ``sync.py --show-status --format json|html`` and the
service's ``GET /status.json`` and ``GET /status``. The page is one self-contained file
(inline CSS and a few lines of script, no network resource): images as rows, regions as
columns, each cell coloured by its status, a legend, and the counts of each region.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fiwareglancesync import __version__
from fiwareglancesync.plan import STATUSES, ImageStatus

if TYPE_CHECKING:
    from fiwareglancesync.config import Config

FORMAT = "glancesync-status/1"

# Colour, short label and meaning of each status; colours were chosen to stay apart for
# the common kinds of colour blindness (greens for settled, blues and purples for work
# pending, red and magenta for what needs a person).
STATUS_STYLE: dict[str, tuple[str, str, str]] = {
    "ok": ("#1b7837", "ok", "the region has the master's image"),
    "ok_stalled_checksum": ("#7fbc41", "stalled", "another content, kept on purpose (dontupdate)"),
    "pending_metadata": ("#fdb863", "metadata", "same content, metadata to update"),
    "pending_ami": ("#80cdc1", "ami", "waits for its kernel or ramdisk"),
    "pending_upload": ("#2166ac", "upload", "missing: to upload"),
    "pending_replace": ("#5e3c99", "replace", "another content: to replace"),
    "pending_rename": ("#8073ac", "rename", "another content: to rename and replace"),
    "error_checksum": ("#b2182b", "checksum!", "another content, and nothing says what to do"),
    "error_ami": ("#c51b7d", "ami!", "its kernel or ramdisk is not synchronised"),
}


@dataclass
class RegionReport:
    """One region: its images' statuses, or why they could not be computed."""

    region: str
    images: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @classmethod
    def of_statuses(cls, region: str, statuses: Iterable[ImageStatus]) -> RegionReport:
        return cls(region, image_entries(statuses))

    @property
    def ok(self) -> bool:
        return self.error is None

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for image in self.images:
            counts[image["status"]] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "ok": self.ok,
            "error": self.error,
            "counts": self.counts(),
            "images": self.images,
        }


def image_entries(statuses: Iterable[ImageStatus]) -> list[dict[str, Any]]:
    """What the report keeps of each status: plain data, ready for JSON."""
    return [
        {
            "name": entry.name,
            "status": entry.status,
            "id": entry.regional.id if entry.regional is not None else None,
            "size": entry.size,
            "message": entry.message,
        }
        for entry in statuses
    ]


@dataclass
class StatusReport:
    """Every region of one run, with when it was made and from which configuration."""

    regions: list[RegionReport]
    master_region: str
    config_source: str | None
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "config": self.config_source,
            "master_region": self.master_region,
            "glancesync": __version__,
            "statuses": list(STATUSES),
            "regions": [region.to_json() for region in self.regions],
        }

    def json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    def image_names(self) -> list[str]:
        """Every image of any region, smallest first (the order of --show-status)."""
        sizes: dict[str, int] = {}
        for region in self.regions:
            for image in region.images:
                sizes.setdefault(image["name"], image.get("size") or 0)
        return sorted(sizes, key=lambda name: (sizes[name], name))


def build_report(config: Config, regions: Iterable[RegionReport]) -> StatusReport:
    """The one builder of the report: the command line's (from its regions' outcomes)
    and the engine's federation report (for the service) both end here."""
    return StatusReport(list(regions), config.master_region, config.source)


# --------------------------------------------------------------------------- the page

_CSS = """
body { font: 13px/1.35 system-ui, sans-serif; margin: 1.2em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
.made { color: #555; margin: 0 0 1em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: center; white-space: nowrap; }
th { background: #f4f4f4; }
.legend { list-style: none; padding: 0; margin: .4em 0; columns: 3 24em; font-size: 12px; }
.legend li { margin: 0 0 .15em; }
.swatch { display: inline-block; width: 1.2em; height: 1em; vertical-align: middle; }
.matrix-wrap { overflow: auto; max-height: 70vh; border: 1px solid #ccc; margin-top: .6em; }
.matrix thead th { position: sticky; top: 0; z-index: 2; }
.matrix th.image { position: sticky; left: 0; z-index: 1; text-align: left; background: #fafafa; }
.matrix thead th.image { z-index: 3; }
.matrix td { color: #fff; font-size: 11px; min-width: 4.5em; }
.matrix td.none { background: #fff; color: #bbb; }
.matrix td.failed { background: #eee; color: #555; }
.controls { margin: 1em 0 0; }
.error { color: #b2182b; }
"""

_SCRIPT = """
(function () {
  var only = document.getElementById('only-problems');
  var filter = document.getElementById('name-filter');
  function apply() {
    var text = filter.value.toLowerCase();
    var rows = document.querySelectorAll('table.matrix tbody tr');
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var hide = (only.checked && row.getAttribute('data-settled') === 'yes') ||
                 (text && row.getAttribute('data-name').toLowerCase().indexOf(text) < 0);
      row.style.display = hide ? 'none' : '';
    }
  }
  only.addEventListener('change', apply);
  filter.addEventListener('input', apply);
})();
"""

_SETTLED = {"ok", "ok_stalled_checksum"}


def _cell_style(status: str) -> str:
    colour = STATUS_STYLE[status][0]
    # Dark text on the light colours, white on the dark ones.
    light = status in ("ok_stalled_checksum", "pending_metadata", "pending_ami")
    return f"background:{colour};color:{'#222' if light else '#fff'}"


def _legend() -> list[str]:
    """One list of swatches: each status, its colour, its label in the cells, its meaning."""
    items = []
    for status in STATUSES:
        colour, label, meaning = STATUS_STYLE[status]
        items.append(
            f'<li data-status="{status}"><span class="swatch" style="background:{colour}">'
            f"</span> {label}: <code>{status}</code>, {meaning}</li>"
        )
    return ['<ul class="legend">', *items, "</ul>"]


def _counts_table(report: StatusReport) -> list[str]:
    head = "".join(f"<th><code>{status}</code></th>" for status in STATUSES)
    lines = [f'<table class="counts"><tr><th>region</th>{head}<th>images</th></tr>']
    for region in report.regions:
        name = html.escape(region.region)
        if not region.ok:
            lines.append(
                f'<tr data-region="{name}"><th>{name}</th><td colspan="{len(STATUSES) + 1}" '
                f'class="error">failed: {html.escape(region.error or "")}</td></tr>'
            )
            continue
        counts = region.counts()
        cells = "".join(
            f'<td data-status="{status}">{counts[status] or ""}</td>' for status in STATUSES
        )
        lines.append(
            f'<tr data-region="{name}"><th>{name}</th>{cells}<td>{len(region.images)}</td></tr>'
        )
    lines.append("</table>")
    return lines


def _matrix(report: StatusReport) -> list[str]:
    regions = report.regions
    by_region = [{image["name"]: image for image in region.images} for region in regions]
    head = "".join(f'<th class="region">{html.escape(r.region)}</th>' for r in regions)
    lines = [
        '<div class="matrix-wrap"><table class="matrix">',
        f'<thead><tr><th class="image">image</th>{head}</tr></thead><tbody>',
    ]
    for name in report.image_names():
        cells, settled = [], True
        for region, images in zip(regions, by_region, strict=True):
            image = images.get(name)
            if not region.ok:
                cells.append('<td class="failed" title="the region failed">?</td>')
                settled = False
            elif image is None:
                cells.append('<td class="none" title="not synchronised there">&mdash;</td>')
            else:
                status = image["status"]
                settled = settled and status in _SETTLED
                tip = status + (f": {image['message']}" if image.get("message") else "")
                cells.append(
                    f'<td data-status="{status}" style="{_cell_style(status)}" '
                    f'title="{html.escape(tip)}">{STATUS_STYLE[status][1]}</td>'
                )
        escaped = html.escape(name)
        lines.append(
            f'<tr data-name="{escaped}" data-settled="{"yes" if settled else "no"}">'
            f'<th class="image">{escaped}</th>{"".join(cells)}</tr>'
        )
    lines.append("</tbody></table></div>")
    return lines


def render_html(report: StatusReport) -> str:
    """The status matrix as one self-contained HTML page."""
    made = report.generated_at.isoformat(timespec="seconds")
    source = html.escape(report.config_source or "no configuration file (environment only)")
    parts: Sequence[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>GlanceSync status</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>GlanceSync status</h1>",
        f'<p class="made">Made <time datetime="{made}">{made}</time> from '
        f"<code>{source}</code>; master region "
        f"<code>{html.escape(report.master_region)}</code>; {len(report.regions)} regions, "
        f"{len(report.image_names())} images. GlanceSync {__version__}.</p>",
        *_legend(),
        '<h2 id="images">Images by region</h2>',
        '<div class="controls"><label><input type="checkbox" id="only-problems"> only '
        "images that are not ok everywhere</label> &nbsp; <label>name contains <input "
        'type="search" id="name-filter"></label></div>',
        *_matrix(report),
        '<h2 id="regions">Per region</h2>',
        *_counts_table(report),
        f"<script>{_SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"

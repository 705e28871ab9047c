"""Template, HTML, JavaScript and spreadsheet-formula injection through the real report writers.

Reported: a SIGMINE holder name ``{{ 7*7 }}`` showed ``49`` on the map; an ``os.environ``
payload put the webhook signing secret into map.html; ``{% raw %}`` failed the AOI every night;
``asm-monitor map --run`` fired it again from sites.parquet; the AOI name was a second route.
The cause: branca's ``MacroElement.render`` wraps each rendered piece in ``Element(...)``, which
compiles it as Jinja source a second time.

Here registry names, an AOI name, an attribution and a detection period full of Jinja, HTML
and JavaScript syntax go through ``write_map`` (also through ``asm-monitor map --run``),
``write_scorecards``, ``write_index`` and every CSV writer of ``pipeline/report``. Each page
must render, show the text to a reader as it was written, evaluate nothing, and carry no markup
from data; and no template may ever be compiled from data. The browser side is
``tests/report/test_report_browser.py::test_template_payloads_show_as_text_in_chromium``.
"""

from __future__ import annotations

import csv
import html
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import geopandas as gpd
import jinja2
import pandas as pd
import pytest
from shapely.geometry import Point, box

from pipeline.cli.main import main
from pipeline.comply.flags import FLAG_COLUMNS
from pipeline.comply.impact import PHASE_COLUMNS, SUMMARY_COLUMNS, ImpactTables
from pipeline.core.config import Settings
from pipeline.core.records import Aoi
from pipeline.report.exports import write_csv
from pipeline.report.index import write_index
from pipeline.report.map import render_map, write_map
from pipeline.report.scorecard import scorecard_links, site_slug, write_scorecards
from pipeline.report.writer import write_extras

SECRET = "whsec_Y2FuYXJ5LW5ldmVyLWluLWEtcGFnZQ"
#: each payload is written between tildes, so an evaluated ``{{ 7*7 }}`` would read ``~49~``
PAYLOADS = [
    "{{ 7*7 }}",
    "{{ 7*'7' }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    # no quote for html.escape to break: this one ran `id` on the host
    "{{ cycler.__init__.__globals__.os.popen(dict(id=1)|first).read() }}",
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{% raw %}",
    "{#",
    "{%- endraw %}}}",
    "</script><script>window.__pwned=1</script>",
    '"><img src=x onerror="window.__pwned=1">',
    "'><svg onload=window.__pwned=1>",
    "`${window.__pwned=1}`",
    "${7*7} \\u0041 %s %(x)s {0}",
]
AOI_NAME = "Reserva ~" + " ".join(PAYLOADS) + "~"
BENIGN = "x"
#: what an evaluated payload would leave, in the page and in the text a reader sees
RESULTS = ["~49~", "~7777777~", "environ("]
#: markup a payload would add to the page if it were pasted in unescaped
MARKUP = ["<script>window.__pwned", "<img src=x", "<svg onload"]
UID = re.compile(r"uid=\d+\(")
#: bidi controls and NUL: must be shown, never applied
INVISIBLE = "\u202e\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f\x00"
TRICK = "cod\u202egnp.exe\x00"
FORMULAS = ['=HYPERLINK("http://x.test","y")', "+1+2", "-2+3", "@SUM(1)", "\tTAB", "\rCR"]


def _marked(p: str) -> str:
    return f"~{p}~"


@pytest.fixture(autouse=True)
def _secret_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # the os.environ payload would print the whole environment, this secret with it
    monkeypatch.setenv("ASM_WEBHOOK_SECRET", SECRET)


def _frames(words: list[str]) -> dict[str, Any]:
    """AOI, sites, detections and flags with one site, detection and flag per word."""
    n = len(words)
    aoi = gpd.GeoDataFrame(
        {"aoi_id": ["inj"], "name": [AOI_NAME], "designation": ["reserve"], "country": ["BR"]},
        geometry=[box(-52.0, 0.0, -51.0, 1.0)],
        crs=4326,
    )
    ids = [f"{i}/{_marked(w)}" for i, w in enumerate(words)]
    sites = gpd.GeoDataFrame(
        {
            "site_id": ids,
            "name": [_marked(w) for w in words],
            "operator": [_marked(w) for w in words],
            "licence_status": ["active"] * n,
            "licence_kind": [_marked(w) for w in words],
            "allows_extraction": [False] * n,
            "phase": [_marked(w) for w in words],
            "mineral": [_marked(w) for w in words],
            "registry": [_marked(w) for w in words],
            "last_event": [_marked(w) for w in words],
        },
        geometry=[box(-51.95 + i * 0.06, 0.1, -51.91 + i * 0.06, 0.14) for i in range(n)],
        crs=4326,
    )
    detections = gpd.GeoDataFrame(
        {
            "detection_id": [f"d{i}" for i in range(n)],
            "kind": ["mining_deforestation"] * n,
            "aoi_id": ["inj"] * n,
            "area_ha": [2.0] * n,
            "first_seen": ["2020-12-31"] * n,
            "last_seen": ["2020-12-31"] * n,
            # a detection period is data too (external detections bring their own)
            "period": [_marked(w) for w in words],
            "confidence": ["probable"] * n,
            "source": ["test"] * n,
            "mined_area_ha": [float("nan")] * n,
        },
        geometry=[Point(-51.93 + i * 0.06, 0.12).buffer(0.005) for i in range(n)],
        crs=4326,
    )
    rows = []
    for i, w in enumerate(words):
        lon, lat = -51.93 + i * 0.06, 0.12
        rows.append(
            {
                "flag_id": f"{i:016x}",
                "rule_id": "activity_without_valid_licence",
                "rule_version": "1",
                "rulebook_version": "test",
                "severity": "high",
                "status": "new",
                "aoi_id": "inj",
                "site_id": ids[i],
                "site_name": _marked(w),
                "licence_status": "active",
                "licence_kind": _marked(w),
                "detection_ids": f"d{i}",
                "area_ha": 2.0,
                "mined_area_ha": float("nan"),
                "first_seen": "2020-12-31",
                "last_seen": "2020-12-31",
                "periods": _marked(w),
                "reason": f"reason {_marked(w)}",
                "clause": f"clause {_marked(w)}",
                "lon": lon,
                "lat": lat,
                "run_id": "inj-run",
                "geometry": Point(lon, lat).buffer(0.002),
            }
        )
    flags = gpd.GeoDataFrame(
        gpd.GeoDataFrame(rows, geometry="geometry", crs=4326).reindex(columns=[*FLAG_COLUMNS, "geometry"]),
        geometry="geometry",
        crs=4326,
    )
    return {"aoi": aoi, "sites": sites, "detections": detections, "flags": flags}


class _Text(HTMLParser):
    """The text of a page outside its scripts, entities decoded, and its script bodies."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        self.text += [v for k, v in attrs if k in ("title", "aria-label") and v]

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)


def _strip_tags(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]*>", " ", fragment))


def reader_text(page: str) -> str:
    """What a reader can see: the page's text, and each JavaScript string literal (the popups
    and tooltips Leaflet shows) decoded as JSON with its markup removed."""
    parser = _Text()
    parser.feed(page)
    shown = ["\n".join(parser.text)]
    for script in parser.scripts:
        for literal in re.findall(r'"(?:[^"\\\n]|\\.)*"', script):
            try:
                shown.append(_strip_tags(json.loads(literal)))
            except ValueError:
                continue
    return "\n".join(shown)


def assert_inert(page: str, *, words: list[str]) -> None:
    """``page`` shows every word as written and carries nothing a word would have produced."""
    for bad in RESULTS + MARKUP:
        assert bad not in page, bad
    assert not UID.search(page), "a payload ran `id` on the host"
    assert SECRET not in page, "a payload printed the environment"
    text = reader_text(page)
    for word in words:
        assert _marked(word) in text, f"{word!r} is not shown as written"
    for bad in RESULTS:
        assert bad not in text, bad
    assert not UID.search(text)


def _map(frames: dict[str, Any], *, attribution: str = _marked(PAYLOADS[0])) -> str:
    return render_map(
        aoi=frames["aoi"],
        detections=frames["detections"],
        flags=frames["flags"],
        sites=frames["sites"],
        title=AOI_NAME,
        attribution=attribution,
        run_id="inj-run",
        scorecards=scorecard_links(frames["sites"]),
    )


def test_map_renders_every_payload_as_text_and_runs_none() -> None:
    frames = _frames(PAYLOADS)
    page = _map(frames, attribution=" ".join(_marked(p) for p in PAYLOADS))
    assert_inert(page, words=PAYLOADS)
    # the AOI name: page title, legend heading, outline tooltip
    assert AOI_NAME in reader_text(page)
    assert html.unescape(re.search(r"<title>(.*?)</title>", page, re.S)[1]) == AOI_NAME  # type: ignore[index]
    # no markup from data: the page has exactly the tags of a map of harmless names
    control = _map(_frames([BENIGN] * len(PAYLOADS)), attribution=BENIGN)
    for tag in ("<script", "<img", "<svg", "<iframe"):
        assert page.count(tag) == control.count(tag), tag


@pytest.mark.parametrize("payload", PAYLOADS)
def test_each_payload_alone_in_every_map_route(payload: str) -> None:
    # one payload per page: a payload that breaks template compilation cannot hide the others
    frames = _frames([payload])
    frames["aoi"]["name"] = _marked(payload)
    page = render_map(
        aoi=frames["aoi"],
        detections=frames["detections"],
        flags=frames["flags"],
        sites=frames["sites"],
        title=_marked(payload),
        attribution=_marked(payload),
    )
    assert_inert(page, words=[payload])


@pytest.fixture
def compiled_sources(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The source of every Jinja template compiled while the test runs."""
    sources: list[str] = []
    real = jinja2.Environment.compile

    def spy(self: jinja2.Environment, source: Any, *args: Any, **kwargs: Any) -> Any:
        sources.append(source if isinstance(source, str) else "")
        return real(self, source, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", spy)
    yield sources


def test_no_template_is_ever_compiled_from_data(compiled_sources: list[str]) -> None:
    """The root cause: rendered output (data included) compiled as Jinja source again."""
    words = ["canary", "{{ 7*7 }}"]
    frames = _frames(words)
    _map(frames, attribution="canary attribution")
    leaked = [s for s in compiled_sources if "canary" in s or "Reserva" in s or "7*7" in s]
    assert leaked == [], f"{len(leaked)} template(s) compiled from data, e.g. {leaked[0][:200]!r}"


def _write_run(run_dir: Path, frames: dict[str, Any]) -> None:
    """A run folder as `asm-monitor run` leaves it, with hostile registry names in sites.parquet."""
    run_dir.mkdir(parents=True)
    run = {"aoi_id": "inj", "aoi_name": AOI_NAME, "attribution": _marked(PAYLOADS[4]), "run_id": "inj-run"}
    (run_dir / "run.json").write_text(json.dumps(run), encoding="utf-8")
    frames["aoi"].to_file(run_dir / "aoi.geojson", driver="GeoJSON")
    for name in ("flags", "detections", "sites"):
        frames[name].to_parquet(run_dir / f"{name}.parquet")


def test_map_command_rerenders_hostile_sites_parquet_inertly(
    tmp_path: Path, sample_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "out" / "inj"
    _write_run(run_dir, _frames(PAYLOADS))
    code = main(["--sample-data", str(sample_data), "map", "--run", str(run_dir), "--lang", "pt"])
    assert code == 0, capsys.readouterr().err
    assert_inert((run_dir / "map.html").read_text(encoding="utf-8"), words=PAYLOADS)
    for sid in _frames(PAYLOADS)["sites"]["site_id"]:
        page = (run_dir / "scorecards" / f"{site_slug(sid)}.html").read_text(encoding="utf-8")
        assert sid in reader_text(page)


def test_write_map_writes_the_inert_page(tmp_path: Path) -> None:
    frames = _frames(PAYLOADS)
    path = write_map(
        tmp_path / "map.html",
        aoi=frames["aoi"],
        detections=frames["detections"],
        flags=frames["flags"],
        sites=frames["sites"],
        title=AOI_NAME,
        attribution=_marked(PAYLOADS[2]),
    )
    assert_inert(path.read_text(encoding="utf-8"), words=PAYLOADS)


def _licences(sites: gpd.GeoDataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "site_id": sites["site_id"],
            "event_date": ["2020-01-01"] * len(sites),
            "event": sites["name"],
            "phase": sites["phase"],
            "licence_status": ["active"] * len(sites),
            "licence_kind": sites["licence_kind"],
            "first_recorded": ["2020-01-02"] * len(sites),
        }
    )


def test_scorecards_and_their_index_show_every_payload_as_text(tmp_path: Path) -> None:
    frames = _frames(PAYLOADS)
    write_scorecards(
        tmp_path / "scorecards",
        sites=frames["sites"],
        flags=frames["flags"],
        detections=frames["detections"],
        aoi_name=AOI_NAME,
        lang="es",
        licences=_licences(frames["sites"]),
    )
    for sid, word in zip(frames["sites"]["site_id"], PAYLOADS, strict=True):
        page = (tmp_path / "scorecards" / f"{site_slug(sid)}.html").read_text(encoding="utf-8")
        assert_inert(page, words=[word])
        assert sid in reader_text(page) and AOI_NAME in reader_text(page)
    index = (tmp_path / "scorecards" / "index.html").read_text(encoding="utf-8")
    assert_inert(index, words=PAYLOADS)
    assert AOI_NAME in reader_text(index)


def test_output_index_shows_the_aoi_name_as_text(tmp_path: Path) -> None:
    word = " ".join(_marked(p) for p in PAYLOADS)
    write_index(
        tmp_path,
        current={"aoi_id": "inj", "name": word, "designation": word, "country": word, "flags": 1},
    )
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert_inert(page, words=PAYLOADS)


# --- spreadsheets: CSV formula injection (OWASP) and invisible characters ---------------


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _assert_no_formula_or_invisible(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not set(INVISIBLE) & set(text), f"{path.name} carries a raw bidi control or NUL"
    for row in _csv_rows(path):
        for column, cell in row.items():
            assert not cell or cell[0] not in "=+-@\t\r" or re.fullmatch(r"-?\d+(\.\d+)?", cell), (
                f"{path.name} {column}: {cell!r} starts a formula"
            )


def _formula_frames() -> dict[str, Any]:
    words = [*FORMULAS, TRICK]
    frames = _frames(words)
    sites, flags = frames["sites"], frames["flags"]
    # the registry's own id and name start a formula (not only our ~ markers)
    sites["site_id"] = flags["site_id"] = words
    sites["name"] = flags["site_name"] = words
    sites["operator"] = words
    flags["reason"] = words
    # a genuine negative number stays a number
    flags["lon"] = -51.5
    return frames


def test_flags_csv_neutralises_formulas_but_keeps_numbers(tmp_path: Path) -> None:
    frames = _formula_frames()
    path = write_csv(frames["flags"], tmp_path / "flags.csv")
    _assert_no_formula_or_invisible(path)
    rows = _csv_rows(path)
    # a carriage return becomes a line feed, which the writer quotes (a bare CR ends the row)
    guarded = [f"'{f}".replace("\r", "\n") for f in FORMULAS]
    assert [r["site_id"] for r in rows[: len(FORMULAS)]] == guarded
    assert [r["site_name"] for r in rows[: len(FORMULAS)]] == guarded
    assert len(rows) == len(FORMULAS) + 1
    assert {r["lon"] for r in rows} == {"-51.5"}
    assert pd.read_csv(path)["lon"].dtype.kind == "f"  # still numeric for a notebook
    # the bidi override and the NUL are shown as escapes, not applied
    assert rows[-1]["site_id"] == "cod\\u202egnp.exe\\u0000"


def test_scorecard_csvs_neutralise_formulas_and_show_invisible_characters(tmp_path: Path) -> None:
    frames = _formula_frames()
    write_scorecards(
        tmp_path / "sc",
        sites=frames["sites"],
        flags=frames["flags"],
        detections=frames["detections"],
        aoi_name=AOI_NAME,
        licences=_licences(frames["sites"]),
    )
    files = sorted((tmp_path / "sc").glob("*.csv"))
    assert len(files) == len(FORMULAS) + 1 + 2  # per site, sites.csv, licence_history.csv
    for path in files:
        _assert_no_formula_or_invisible(path)
    summary = _csv_rows(tmp_path / "sc" / "sites.csv")
    assert summary[0]["site_id"] in {f"'{f}" for f in FORMULAS}
    assert len(summary) == len(FORMULAS) + 1 and {r["ha_inside_title"] for r in summary} == {"2.0"}


def test_licence_history_read_back_by_map_run_is_guarded_once_and_still_joins(tmp_path: Path) -> None:
    frames = _formula_frames()
    kwargs: dict[str, Any] = {
        "sites": frames["sites"],
        "flags": frames["flags"],
        "detections": frames["detections"],
        "aoi_name": "a",
    }
    history = tmp_path / "sc" / "licence_history.csv"
    write_scorecards(tmp_path / "sc", licences=_licences(frames["sites"]), **kwargs)
    first = history.read_bytes()
    # as pipeline/ops/rerender.py reads it for `asm-monitor map --run`
    again = pd.read_csv(history, dtype=str, keep_default_na=False)
    write_scorecards(tmp_path / "sc", licences=again, **kwargs)
    assert history.read_bytes() == first
    page = (tmp_path / "sc" / f"{site_slug('@SUM(1)')}.html").read_text(encoding="utf-8")
    assert "2020-01-02" in page  # the recorded history row (first_recorded), not the registry's


def test_impact_and_summary_csvs_neutralise_formulas(tmp_path: Path) -> None:
    frames = _formula_frames()
    summary = pd.DataFrame([dict.fromkeys(SUMMARY_COLUMNS, 1.0)]).assign(
        aoi_id="inj", zone_id="=1+1", zone_name="@cmd", zone_designation=TRICK, period="-x", mined_ha=-2.5
    )
    phases = pd.DataFrame([dict.fromkeys(PHASE_COLUMNS, 1.0)]).assign(
        aoi_id="inj", zone_id="+z", period="2020", phase="=phase", licence_kind="\tk"
    )
    aoi = Aoi(aoi_id="inj", name=AOI_NAME, designation="reserve", country="BR", geometry=box(0, 0, 1, 1))
    out = write_extras(
        tmp_path / "inj",
        aoi=aoi,
        flags=frames["flags"],
        detections=frames["detections"],
        sites=frames["sites"],
        settings=Settings(),
        out_dir=tmp_path,
        impact=ImpactTables(summary=summary, by_phase=phases),
    )
    for name in ("impact.csv", "impact_by_phase.csv", "flag_summary.csv"):
        _assert_no_formula_or_invisible(out[name])
    row = _csv_rows(out["impact.csv"])[0]
    assert (row["zone_id"], row["zone_name"], row["period"], row["mined_ha"]) == (
        "'=1+1",
        "'@cmd",
        "'-x",
        "-2.5",
    )


def test_pages_show_bidi_controls_and_nul_instead_of_applying_them(tmp_path: Path) -> None:
    frames = _frames([TRICK])
    frames["sites"]["name"] = TRICK
    page = _map(frames, attribution=TRICK)
    write_scorecards(
        tmp_path / "sc",
        sites=frames["sites"],
        flags=frames["flags"],
        detections=frames["detections"],
        aoi_name=TRICK,
    )
    write_index(tmp_path, current={"aoi_id": "inj", "name": TRICK, "flags": 0})
    pages = [page, *(p.read_text(encoding="utf-8") for p in (tmp_path / "sc").glob("*.html"))]
    pages.append((tmp_path / "index.html").read_text(encoding="utf-8"))
    for text in pages:
        assert not set(INVISIBLE) & set(text), "a raw bidi control or NUL reached the page"
        assert "cod\\u202egnp.exe\\u0000" in reader_text(text)

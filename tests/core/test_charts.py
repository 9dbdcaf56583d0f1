"""B6: the SVG charts are well-formed, accessible and escaped; axes are round; the median
is exact; CSV cells never become spreadsheet formulas."""

from __future__ import annotations

import csv
import io
import statistics
from xml.etree import ElementTree

from hypothesis import given
from hypothesis import strategies as st

from mailbeacon.core.charts import (
    NARROW,
    ChartText,
    Series,
    bar_chart,
    csv_cell,
    hbar_chart,
    label_every,
    line_chart,
    median,
    scale,
    to_csv,
)

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script> & "quotes"'


def text(dom_id: str = "c", width: int | None = None) -> ChartText:
    extra = {"width": width} if width else {}
    return ChartText(dom_id, "Copies sent", "Per day. " + HOSTILE, "Day", "Copies", **extra)


def parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)  # noqa: S314 - our own output, parsed to check it


def test_a_bar_chart_is_a_titled_described_image_with_one_bar_per_value() -> None:
    svg = bar_chart(
        ["Mar 2", "Mar 3", HOSTILE],
        [Series("Sent", (3.0, 2.0, 1.0)), Series("Delivered", (2.0, 0.0, 1.0))],
        text("chart-volume"),
    )
    root = parse(svg)
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "chart-volume-title chart-volume-desc"
    assert root.find(f"{SVG}title").text == "Copies sent"  # type: ignore[union-attr]
    assert HOSTILE in (root.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]
    bars = root.findall(f".//{SVG}g[@class='marks']/{SVG}rect")
    # A zero draws no bar; each bar says what it is.
    assert [bar.find(f"{SVG}title").text for bar in bars] == [  # type: ignore[union-attr]
        "Mar 2, Sent: 3",
        "Mar 2, Delivered: 2",
        "Mar 3, Sent: 2",
        f"{HOSTILE}, Sent: 1",
        f"{HOSTILE}, Delivered: 1",
    ]
    assert "<script>" not in svg
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "Day" in texts and "Copies" in texts  # both axis titles
    assert [t for t in texts if t and t.isdigit()] == ["0", "1", "2", "3"]


def test_a_line_chart_breaks_at_a_gap_instead_of_drawing_a_zero() -> None:
    root = parse(
        line_chart(
            ["a", "b", "c", "d", "e"],
            [Series("Open rate", (50.0, 100.0, None, 0.0, 25.0))],
            text(),
            unit="%",
            maximum=100.0,
        )
    )
    lines = root.findall(f".//{SVG}polyline")
    assert [len((line.get("points") or "").split()) for line in lines] == [2, 2]
    dots = [c.find(f"{SVG}title").text for c in root.iter(f"{SVG}circle")]  # type: ignore[union-attr]
    assert dots == [
        "a, Open rate: 50%",
        "b, Open rate: 100%",
        "d, Open rate: 0%",
        "e, Open rate: 25%",
    ]
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.text and t.text.endswith("%")]
    assert ticks == ["0%", "25%", "50%", "75%", "100%"]


def test_an_empty_chart_is_still_valid_svg() -> None:
    parse(bar_chart([], [Series("Sent", ())], text()))
    parse(line_chart([], [Series("Open rate", ())], text()))
    parse(hbar_chart([], [], text()))


def test_the_narrow_chart_draws_fewer_labels_and_shortens_long_ones() -> None:
    labels = [f"Mar {day}" for day in range(1, 31)]
    wide = parse(bar_chart(labels, [Series("Sent", (1.0,) * 30)], text()))
    narrow = parse(bar_chart(labels, [Series("Sent", (1.0,) * 30)], text(width=NARROW)))
    assert narrow.get("viewBox") == f"0 0 {NARROW} 300"

    def shown(root: ElementTree.Element) -> list[str]:
        return [t.text or "" for t in root.iter(f"{SVG}text") if (t.text or "").startswith("Mar")]

    assert len(shown(narrow)) <= 4 < len(shown(wide)) <= 8
    url = "https://example.com/" + "x" * 80
    root = parse(hbar_chart([url], [3.0], text(width=NARROW)))
    label = next(t.text or "" for t in root.iter(f"{SVG}text") if (t.text or "").startswith("http"))
    assert len(label) == 20 and label.endswith("…")
    assert root.find(f".//{SVG}rect/{SVG}title").text == f"{url}: 3"  # type: ignore[union-attr]


def test_axes_count_in_whole_round_steps() -> None:
    assert scale(3) == [0, 1, 2, 3]
    assert scale(7) == [0, 2, 4, 6, 8]
    assert scale(37) == [0, 10, 20, 30, 40]
    assert scale(0) == [0, 1]
    assert scale(100, whole=False, most=4) == [0, 25, 50, 75, 100]
    assert label_every(90) == 12 and label_every(7) == 1


@given(st.lists(st.integers(min_value=0, max_value=20_000), min_size=1, max_size=60))
def test_the_median_of_grouped_minutes_is_the_exact_median(values: list[int]) -> None:
    groups: dict[int, int] = {}
    for value in values:
        groups[value] = groups.get(value, 0) + 1
    assert median((float(v), n) for v, n in groups.items()) == statistics.median(values)


def test_no_values_have_no_median() -> None:
    assert median([]) is None
    assert median([(5.0, 0)]) is None


def test_csv_cells_that_a_spreadsheet_would_run_are_kept_as_text() -> None:
    for cell in ("=SUM(A1)", "+1", "-1", "@cmd", "\tx", "\rx"):
        assert csv_cell(cell) == "'" + cell
    assert csv_cell("anna@example.com") == "anna@example.com"
    assert csv_cell(-3) == "-3"  # a number is a number
    assert csv_cell(12.5) == "12.5" and csv_cell(50.0) == "50"
    assert csv_cell(None) == ""


@given(st.lists(st.lists(st.text(max_size=20), min_size=2, max_size=2), max_size=8))
def test_csv_reads_back_cell_for_cell(rows: list[list[str]]) -> None:
    written = to_csv(["a", "b"], rows)
    read = list(csv.reader(io.StringIO(written, newline="")))
    assert read[0] == ["a", "b"]
    assert read[1:] == [[csv_cell(cell) for cell in row] for row in rows]

"""Server-drawn SVG charts (pipeline.web.console.charts): bars in proportion, labels
escaped and shortened, the figures as text, a sentence instead of an empty chart."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from pipeline.web.console.charts import columns, horizontal_bars

SVG = "{http://www.w3.org/2000/svg}"


def _rect_widths(markup: str, attribute: str) -> list[float]:
    root = ET.fromstring(str(markup))
    return [float(r.get(attribute)) for r in root.iter(SVG + "rect")]


def test_bars_are_in_proportion_to_their_values():
    markup = horizontal_bars([("NL", 40), ("DE", 20), ("RS", 0)], title="By country")
    widths = _rect_widths(markup, "width")
    plot = 640 - 150 - 90
    assert widths == [plot, plot / 2, 0]
    root = ET.fromstring(str(markup))
    assert root.get("role") == "img" and root.get("aria-label") == "By country"
    assert root.find(SVG + "title").text == "By country"
    texts = [t.text for t in root.iter(SVG + "text")]
    assert texts == ["NL", "40", "DE", "20", "RS", "0"]


def test_a_tiny_value_still_shows_a_bar():
    widths = _rect_widths(horizontal_bars([("big", 1_000_000), ("small", 1)], title="t"),
                          "width")
    assert widths[1] == 1.0


def test_labels_are_escaped_and_long_ones_shortened_with_the_full_label_in_the_title():
    hostile = '<script>alert("x")</script> and a very long label indeed'
    markup = str(horizontal_bars([(hostile, 3)], title="<b>t</b>"))
    assert "<script>" not in markup and "<b>" not in markup
    root = ET.fromstring(markup)
    (group,) = root.iter(SVG + "g")
    assert group.find(SVG + "title").text == f"{hostile}: 3"
    label = group.findall(SVG + "text")[0].text
    assert len(label) == 22 and label.endswith("…")


def test_figures_are_formatted_plainly_or_with_the_formatter_given():
    markup = str(horizontal_bars([("a", 1234), ("b", 2.25)], title="t"))
    assert ">1,234<" in markup and ">2.2<" in markup
    hours = str(columns([("0-1 h", 3.5)], title="t", fmt=lambda v: f"{v:.1f} h"))
    assert ">3.5 h<" in hours


def test_columns_stand_on_the_axis_in_proportion():
    markup = columns([("0-1 h", 10), ("1-4 h", 5), ("4+ h", 0)], title="Takedown")
    heights = _rect_widths(markup, "height")
    assert heights[0] == 220 - 34 - 18 and heights[1] == heights[0] / 2 and heights[2] == 0
    ys = [float(y) + h for y, h in zip(_rect_widths(markup, "y"), heights, strict=True)]
    assert {round(y, 1) for y in ys} == {220 - 34}


def test_no_data_is_said_in_words_not_drawn():
    for chart in (horizontal_bars([], title="Cases"), columns([("a", 0)], title="Cases"),
                  columns([], title="Cases")):
        assert "<svg" not in chart
        assert re.fullmatch(r'<p class="muted">Cases: no data in this period\.</p>', chart)
    assert "&lt;i&gt;" in horizontal_bars([], title="<i>")

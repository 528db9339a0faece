"""The monitoring report: one self-contained HTML page (inline CSS and SVG; no script, no CDN),
written for a reader who does not know the statistics."""

from __future__ import annotations

from html import escape

from lab3.monitor.checks import MEANINGS, Drift, Result

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222 }
.verdict { padding: .8em 1.2em; border-radius: 6px; font-size: 1.15em }
.ok { background: #e6f4ea } .alarm { background: #fde7e7 }
table { border-collapse: collapse; margin: 1em 0 } td, th { padding: .3em .7em; text-align: left }
tr + tr td { border-top: 1px solid #ddd } .moved td { background: #fff4e5 }
.num { text-align: right }
"""
REFERENCE_COLOUR, CURRENT_COLOUR = "#9aa5b1", "#d9480f"


def bars(drift: Drift) -> str:
    """An inline SVG: the share of rows in each bin, training (grey) beside served (orange)."""
    width, height, n = 240, 90, len(drift.reference_shares)
    top = max(max(drift.reference_shares), max(drift.current_shares), 1e-9)
    slot = width / n
    shapes = []
    for i, pair in enumerate(zip(drift.reference_shares, drift.current_shares, strict=True)):
        colours = (REFERENCE_COLOUR, CURRENT_COLOUR)
        for j, (share, colour) in enumerate(zip(pair, colours, strict=True)):
            h = height * share / top
            x = i * slot + j * slot * 0.45 + slot * 0.05
            shapes.append(
                f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{slot * 0.42:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{share:.1%}</title></rect>'
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(drift.name)}">{"".join(shapes)}</svg>'
    )


def verdict(result: Result) -> str:
    if result.rows < result.min_rows:
        return (
            f'<div class="verdict ok">{result.rows} rows are too few to judge (at least '
            f"{result.min_rows}: params.yaml monitoring.min_rows); nothing is flagged.</div>"
        )
    if result.alarms:
        items = "".join(f"<li>{escape(a)}</li>" for a in result.alarms)
        return (
            '<div class="verdict alarm"><b>Alarm.</b> What moved:'
            f"<ul>{items}</ul><b>How much it matters:</b> {escape(result.matters)}.<br>"
            f"<b>Next step:</b> {escape(result.next_step)}.</div>"
        )
    return (
        '<div class="verdict ok"><b>Nothing to act on.</b> The served traffic looks like the '
        "training data, and the model answers as it did in training.</div>"
    )


def quality_table(result: Result) -> str:
    if not result.quality:
        return "<p>No labels were supplied, so quality is not measured (drift still is).</p>"
    q = result.quality
    rows = "".join(
        f'<tr><td>{escape(name.replace("_", " "))}</td><td class="num">{value:.3f}</td>'
        + (f"<td>could be as high as {q[name + '_high']:.3f}</td>" if name + "_high" in q else "")
        + "</tr>"
        for name, value in q.items()
        if not name.endswith("_high")
    )
    return (
        f"<p>{result.labelled_rows} of {result.rows} rows have a label. Recall of a fault kind: "
        "the share of its faulty days that the model flagged. A few hundred rows vary by chance: "
        "quality is flagged only when even the high end of its 95 % interval is under the "
        f"gate's minimum.</p><table>{rows}</table>"
    )


def drift_rows(result: Result) -> str:
    out = []
    for d in [*result.drift, result.prediction]:
        moved = "moved" if d.drifted else "same"
        if not d.computable:
            moved = "moved: not computable (NaN from extreme inputs)"
        out.append(
            f'<tr class="{"moved" if d.drifted else ""}"><td>{escape(MEANINGS[d.name])}<br>'
            f'<small>{escape(d.name)}</small></td><td>{moved}</td><td class="num">{d.psi:.3f}</td>'
            f'<td class="num">{d.ks:.3f}</td><td class="num">{d.p_value:.2g}</td>'
            f"<td>{bars(d)}</td></tr>"
        )
    return "".join(out)


def render(result: Result, title: str, window: str, lineage: str, links: dict[str, str]) -> str:
    """The whole page. ``lineage``: what the version was made from; ``links``: name → URL
    (this run, the version and its training run in the MLflow UI)."""
    t = result.traffic
    linked = " · ".join(f'<a href="{escape(u)}">{escape(n)}</a>' for n, u in links.items())
    other = f" ({t.left_out} rows of other versions left out)" if t.left_out else ""
    skipped = (
        f"<p><b>{t.skipped} log lines were left out</b>: cut short, not JSON, or not of the "
        "log's form (a field missing or of the wrong type).</p>"
        if t.skipped
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{escape(title)}</h1>
<p>Model <b>{escape(t.model)} version {escape(t.version)}</b>, {result.rows} rows served
{escape(window)}{escape(other)}. {escape(lineage)}</p>
{skipped}
<p>In MLflow: {linked}</p>
{verdict(result)}
<h2>Quality on served traffic</h2>
{quality_table(result)}
<h2>Missing readings</h2>
<p>{result.missing_share:.1%} of the readings received were missing
(training: {result.reference_missing_share:.1%}).</p>
<h2>Did the traffic change?</h2>
<p>Each row compares one thing the model looks at with the training data. The bars show the
share of rows in each range of values: <span style="color:{REFERENCE_COLOUR}">■ training</span>
<span style="color:{CURRENT_COLOUR}">■ served</span>. A row is <b>moved</b> when both tests agree:
the stability index (PSI; under 0.1 is stable, over 0.25 a large shift) is high, and the
Kolmogorov-Smirnov test says the difference is very unlikely to be chance (p-value).</p>
<table><tr><th>what</th><th>verdict</th><th>PSI</th><th>KS</th><th>p-value</th>
<th>training vs served</th></tr>{drift_rows(result)}</table>
</body></html>
"""

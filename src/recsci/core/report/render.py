"""Writers: the report as Markdown (images linked) and as one self-contained HTML file (images inlined)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from recsci.core.report.aggregate import TableModel
from recsci.core.report.plots import SavedPlot


@dataclass
class Report:
    """Everything a writer renders; built by :func:`recsci.core.report.build.build_report`."""

    title: str
    root: Path
    generated: str
    results: TableModel
    runs: TableModel
    problems: TableModel  # runs that did not complete: failed, running, pruned, missing, not started
    plots: list[SavedPlot] = field(default_factory=list)
    skipped_plots: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)  # (label, value): command, commits, seeds
    notes: list[str] = field(default_factory=list)
    paired: TableModel | None = None  # paired differences between rows (recsci.core.report.paired)
    paired_notes: list[str] = field(default_factory=list)


# -- Markdown ----------------------------------------------------------------------------------------


def markdown_table(table: TableModel) -> str:
    """A GitHub table; published rows are italic so they never pass for ours."""
    lines = ["| " + " | ".join(_md(c) for c in table.header) + " |", "|" + "---|" * len(table.header)]
    for cells, kind in zip(table.rows, table.kinds, strict=True):
        shown = [f"*{_md(c)}*" if kind == "published" and c else _md(c) for c in cells]
        lines.append("| " + " | ".join(shown) + " |")
    return "\n".join(lines)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report, out_dir: Path) -> str:
    parts = [f"# {report.title}", "", f"Generated {report.generated} from `{report.root}`.", ""]
    parts += [f"- **{label}:** {_md(value)}" for label, value in report.facts]
    parts += ["", "## Results", "", markdown_table(report.results), ""]
    parts += [f"> {note}" for note in report.notes]
    if report.paired is not None:
        parts += ["", "## Paired differences", "", markdown_table(report.paired), ""]
        parts += [f"> {note}" for note in report.paired_notes]
    if report.plots or report.skipped_plots:
        parts += ["", "## Plots", ""]
        for plot in report.plots:
            rel = plot.path.relative_to(out_dir).as_posix()
            parts += [f"### {plot.title}", "", f"![{plot.title}]({rel})", "", plot.caption, ""]
        parts += [f"- skipped: {s}" for s in report.skipped_plots]
    parts += ["", f"## Runs not completed ({len(report.problems.rows)})", ""]
    parts += [markdown_table(report.problems) if report.problems.rows else "None: every run completed."]
    parts += ["", f"## All runs ({len(report.runs.rows)})", "", markdown_table(report.runs), ""]
    return "\n".join(parts)


# -- HTML --------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }
td { white-space: nowrap; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.published td { font-style: italic; background: #fff8e1; }
tr.failed td { background: #fdecea; }
figure { display: inline-block; margin: 0 1rem 1rem 0; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85rem; color: #555; max-width: 40rem; }
code { background: #f5f5f5; padding: 0 0.2rem; }
"""


def html_table(table: TableModel, row_class: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.header)
    rows = []
    for cells, kind in zip(table.rows, table.kinds, strict=True):
        css = row_class or (kind if kind != "ours" else "")
        tds = "".join(f"<td{_num_class(c)}>{html.escape(c)}</td>" for c in cells)
        rows.append(f'<tr class="{css}">{tds}</tr>' if css else f"<tr>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _num_class(cell: str) -> str:
    head = cell.split(" ± ")[0]
    try:
        float(head)
    except ValueError:
        return ""
    return ' class="num"'


def _image_tag(plot: SavedPlot) -> str:
    # Inlined so the file is self-contained: it opens from e-mail, a CI artifact or W&B without its folder.
    data = base64.b64encode(plot.path.read_bytes()).decode("ascii")
    alt = html.escape(plot.title, quote=True)
    return f'<img alt="{alt}" src="data:image/png;base64,{data}">'


def to_html(report: Report) -> str:
    facts = "".join(f"<li><b>{html.escape(k)}:</b> {html.escape(v)}</li>" for k, v in report.facts)
    notes = "".join(f"<p><i>{html.escape(n)}</i></p>" for n in report.notes)
    figures = "".join(
        f"<figure>{_image_tag(p)}<figcaption><b>{html.escape(p.title)}</b> {html.escape(p.caption)}"
        "</figcaption></figure>"
        for p in report.plots
    )
    skipped = "".join(f"<li>skipped: {html.escape(s)}</li>" for s in report.skipped_plots)
    problems = (
        html_table(report.problems, row_class="failed")
        if report.problems.rows
        else "<p>None: every run completed.</p>"
    )
    paired = ""
    if report.paired is not None:
        paired_notes = "".join(f"<p><i>{html.escape(n)}</i></p>" for n in report.paired_notes)
        paired = (
            f'<h2>Paired differences</h2><div id="paired">{html_table(report.paired)}</div>{paired_notes}'
        )
    title = html.escape(report.title)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{title}</h1><p>Generated {html.escape(report.generated)} from "
        f"<code>{html.escape(str(report.root))}</code>.</p><ul>{facts}</ul>"
        f'<h2>Results</h2><div id="results">{html_table(report.results)}</div>{notes}{paired}'
        f'<h2>Plots</h2><div id="plots">{figures}</div><ul>{skipped}</ul>'
        f"<h2>Runs not completed ({len(report.problems.rows)})</h2>{problems}"
        f"<h2>All runs ({len(report.runs.rows)})</h2>{html_table(report.runs)}"
        "</body></html>\n"
    )

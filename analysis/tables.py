"""Tables like the papers': rows x columns of mean and error over runs, the best cell per column
in bold, a dagger where Welch's t-test against a baseline row gives p < 0.05.

One ``SummaryTable`` holds the numbers; it renders as Markdown, LaTeX (booktabs, through pandas
Styler) and a long CSV with every number (mean, error, n, p-value, flags).

Conventions (stated in every caption):
- a run is one trial (one split seed x one seed); n is the number of completed runs in a cell;
- error is the standard error std/sqrt(n) or the standard deviation (ddof=1); none when n = 1;
- bold: the best mean per column at the printed precision (ties all bold), among our rows only;
- dagger: two-sided Welch's t-test against the baseline row's runs of the same column, p < 0.05,
  when both have n >= 2;
- Avg (comparison tables): mean of a row's column means, for rows that have every column.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from pinbench.errors import ConfigError

from .methods import fmt_value, order_methods, short

ERRORS = {"se": "standard error", "std": "standard deviation"}
AVG = "Avg"
P_THRESHOLD = 0.05


@dataclass
class Column:
    """How one column is shown and which direction is better."""

    key: str
    name: str
    better: str | None = "higher"
    """higher, lower or None (not ranked: no bold)."""
    decimals: int = 1
    scale: float = 1.0
    """Multiply values by this before summarising (100 for shares shown in %)."""
    latex: bool = True
    """Include in the LaTeX table (a paper's column is narrow; Markdown and CSV have every column)."""
    short: str | None = None
    """Header in the LaTeX table when ``name`` is too wide."""


@dataclass
class SummaryTable:
    title: str
    columns: list[Column]
    mean: pd.DataFrame
    err: pd.DataFrame
    n: pd.DataFrame
    pvalue: pd.DataFrame
    bold: pd.DataFrame
    dagger: pd.DataFrame
    error: str
    baseline: str | None
    published: dict[str, dict[str, tuple[float, float | None]]] = field(default_factory=dict)
    published_source: str = ""
    notes: str = ""
    """Appended to the caption (definitions of the columns)."""
    runs: str = "split seeds × seeds"
    """What one run of a cell is, for the caption."""

    @property
    def rows(self) -> list[str]:
        return list(self.mean.index)

    def caption(self, notes: bool = True) -> str:
        """The conventions, stated; ``notes`` (the LaTeX headers' abbreviations) where they apply."""
        ns = self.n.drop(columns=[AVG], errors="ignore").to_numpy().ravel()
        ns = ns[ns > 0]
        n_text = (f"n = {int(ns.min())}" if len(ns) and ns.min() == ns.max()
                  else f"n = {int(ns.min())} to {int(ns.max())} (per cell in the CSV)" if len(ns) else "no runs")
        parts = [f"{self.title}: mean ± {ERRORS[self.error]} over runs ({self.runs}), {n_text}.",
                 "Bold: best per column."]
        if self.baseline is not None:
            parts.append(f"†: Welch's t-test against {self.baseline}, p < {P_THRESHOLD}.")
        if AVG in self.mean.columns:
            parts.append("Avg: mean over datasets.")
        if self.published:
            parts.append(f"(pub.): published in {self.published_source}, ± standard error where given; not ranked.")
        if notes and self.notes:
            parts.append(self.notes)
        return " ".join(parts)


def summarise(samples: pd.DataFrame, columns: list[Column], *, title: str, rows: list[str] | None = None,
              error: str = "se", baseline: str | None = None, average: bool = False) -> SummaryTable:
    """``samples`` has one row per run and column: ``row``, ``column``, ``value`` (unscaled)."""
    if error not in ERRORS:
        raise ConfigError(f"error bars: expected one of {sorted(ERRORS)}, got {error!r}")
    rows = rows if rows is not None else list(dict.fromkeys(samples["row"]))
    if baseline is not None and baseline not in rows:
        raise ConfigError(f"baseline method {baseline!r} is not among the table's rows: {rows}")
    keys = [c.key for c in columns]
    shape = pd.DataFrame(index=pd.Index(rows, name="method"), columns=keys, dtype=float)
    mean, err, n, pvalue = shape.copy(), shape.copy(), shape.copy().fillna(0), shape.copy()
    values: dict[tuple[str, str], np.ndarray] = {}
    for col in columns:
        for row in rows:
            hit = (samples["row"] == row) & (samples["column"] == col.key)
            x = samples.loc[hit, "value"].astype(float).to_numpy() * col.scale
            x = x[~np.isnan(x)]
            values[row, col.key] = x
            n.loc[row, col.key] = len(x)
            if len(x):
                mean.loc[row, col.key] = x.mean()
                if len(x) > 1:
                    sd = x.std(ddof=1)
                    err.loc[row, col.key] = sd / math.sqrt(len(x)) if error == "se" else sd
    if baseline is not None:
        for col in columns:
            b = values[baseline, col.key]
            for row in rows:
                x = values[row, col.key]
                if row != baseline and len(x) >= 2 and len(b) >= 2:
                    with warnings.catch_warnings():  # near-identical runs: scipy warns, the p-value stands
                        warnings.simplefilter("ignore", RuntimeWarning)
                        pvalue.loc[row, col.key] = stats.ttest_ind(x, b, equal_var=False).pvalue
    if average and AVG in keys:  # its mean would overwrite the column's
        raise ConfigError(f"a table column is keyed '{AVG}', the name of the average over columns: "
                          "rename that dataset")
    if average:
        complete = mean[keys].notna().all(axis=1)
        mean[AVG] = mean[keys].mean(axis=1).where(complete)
        err[AVG], pvalue[AVG] = np.nan, np.nan
        n[AVG] = n[keys].min(axis=1)
        columns = [*columns, Column(AVG, AVG, next((c.better for c in columns), "higher"),
                                    max((c.decimals for c in columns), default=1))]
    n = n.astype(int)
    bold = pd.DataFrame(False, index=mean.index, columns=mean.columns)
    for col in columns:
        shown = mean[col.key].round(col.decimals)
        if col.better is None or shown.isna().all():
            continue
        best = shown.max() if col.better == "higher" else shown.min()
        bold[col.key] = shown == best
    dagger = (pvalue < P_THRESHOLD).fillna(False).astype(bool)
    return SummaryTable(title, columns, mean, err, n, pvalue, bold, dagger, error, baseline)


def add_published(table: SummaryTable, rows: dict[str, dict[str, tuple[float, float | None]]],
                  source: str) -> SummaryTable:
    """Published rows over the table's columns. Their Avg is the printed one when the table shows
    every dataset the row has, else recomputed over the datasets shown."""
    keys = [c.key for c in table.columns if c.key != AVG]
    kept = {}
    for name, given in rows.items():
        cells = {k: given[k] for k in keys if k in given}
        if not cells:
            continue
        if any(c.key == AVG for c in table.columns) and len(cells) == len(keys):
            printed = AVG in given and set(given) - {AVG} == set(keys)
            cells[AVG] = given[AVG] if printed else (float(np.mean([m for m, _ in cells.values()])), None)
        kept[name] = cells
    table.published, table.published_source = kept, source
    return table


def ablation_table(frame: pd.DataFrame, param: str, columns: list[Column], *, error: str = "se",
                   reference: pd.DataFrame | None = None, reference_name: str | None = None,
                   title: str = "") -> SummaryTable:
    """The ablation figure as a table: a row per line and value of ``param`` (``pin q=1.5, α=0.25``;
    ``frame`` is ``plots.ablation_groups``' output, its ``group`` and ``_x``), the columns'
    mean ± error over runs, then the ``reference`` trials' row (``reference_name``), which the
    daggers test against."""
    def row(group: str, x) -> str:
        return f"{group}, {short(param)}={fmt_value(float(x))}"
    rows = [row(g, x) for g in order_methods(frame["group"].tolist())
            for x in sorted(frame.loc[frame["group"] == g, "_x"].unique())]
    columns = [c for c in columns if c.key in frame.columns and frame[c.key].notna().any()]
    keys = [c.key for c in columns]
    samples = frame.assign(row=[row(g, x) for g, x in zip(frame["group"], frame["_x"])])[["row", *keys]]
    baseline = None
    if reference is not None and len(reference) and reference_name:
        samples = pd.concat([samples, reference.assign(row=reference_name)[["row", *keys]]], ignore_index=True)
        rows, baseline = [*rows, reference_name], reference_name
    samples = samples.melt(id_vars=["row"], value_vars=keys, var_name="column")
    return summarise(samples, columns, title=title or f"Ablation over {short(param)}", rows=rows, error=error,
                     baseline=baseline)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
# < > | in text print as other glyphs under pdflatex's default OT1 encoding (¡ ¿ —): math mode
_LATEX_SYMBOLS = {"α": r"$\alpha$", "±": r"$\pm$", "†": r"$^\dagger$", "×": r"$\times$", "–": "--",
                  "·": r"$\cdot$", "→": r"$\rightarrow$", "<": r"$<$", ">": r"$>$", "|": r"$|$"}


def latex_text(text: str) -> str:
    """Escape text for pdflatex: specials escaped, known symbols as math, other non-ASCII and
    control characters (which stop pdflatex) as '?', a tab or line break as a space."""
    out = []
    for ch in str(text):
        if ch in _LATEX_SPECIALS:
            out.append(_LATEX_SPECIALS[ch])
        elif ch in _LATEX_SYMBOLS:
            out.append(_LATEX_SYMBOLS[ch])
        elif ch in "\t\n\r":
            out.append(" ")
        elif ord(ch) > 127 or ord(ch) < 32 or ord(ch) == 127:
            out.append("?")
        else:
            out.append(ch)
    return "".join(out)


def _unit(x: float) -> tuple[float, str] | None:
    """The divisor and suffix a large value is written with (10,000 and up: K), else None."""
    for scale, divisor, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "K")):
        if abs(x) >= scale:
            return divisor, suffix
    return None


def format_number(x: float, decimals: int, like: float | None = None) -> str:
    """Large values with a suffix, as RLPrompt reports perplexities (254K): 1.1M, not 1100000.0.
    ``like``: write ``x`` in the unit of that value (an error in its mean's unit: 11.4K ± 5.0K)."""
    unit = _unit(x if like is None else like)
    if unit is None:
        return f"{x:.{decimals}f}"
    divisor, suffix = unit
    return f"{x / divisor:.1f}{suffix}"


def _error(mean: float, err: float, decimals: int) -> str:
    return format_number(err, decimals, like=mean if _unit(mean) else err)


def cell(mean: float, err: float | None, decimals: int) -> str:
    """Plain text: ``62.5 ± 1.2``, ``62.5`` without an error, ``–`` without a value."""
    if pd.isna(mean):
        return "–"
    return format_number(mean, decimals) + ("" if pd.isna(err) else f" ± {_error(mean, err, decimals)}")


def latex_cell(mean: float, err: float | None, decimals: int) -> str:
    """LaTeX: the error small after the mean, which keeps wide tables within a column."""
    if pd.isna(mean):
        return "--"
    return format_number(mean, decimals) + ("" if pd.isna(err) else rf"{{\scriptsize$\pm${_error(mean, err, decimals)}}}")


def _distinct(names: list[str], fallbacks: list[str], taken: tuple[str, ...] = ()) -> list[str]:
    """``names`` with each one that repeats an earlier one (or one of ``taken``) replaced by its
    fallback, then numbered: two columns titled alike (``sst-2`` and ``SST-2``; café and cafè,
    both ``caf?`` in LaTeX; a dataset called ``Method``) would otherwise become one."""
    used, out = set(taken), []
    for name, fallback in zip(names, fallbacks):
        candidate, k = name, 2
        if candidate in used:
            candidate = fallback
        while candidate in used:
            candidate, k = f"{fallback} ({k})", k + 1
        used.add(candidate)
        out.append(candidate)
    return out


def display_frame(table: SummaryTable, render=cell, bold=lambda s: f"**{s}**", dagger: str = "†",
                  name=lambda s: s, columns: list[Column] | None = None,
                  header=lambda c: c.name) -> pd.DataFrame:
    """The table as strings, our rows then the published ones; first column ``Method``. Headers
    and row labels are distinct as printed (a repeated one gets its key added)."""
    columns = table.columns if columns is None else columns
    titles = _distinct([name(header(c)) for c in columns], [name(f"{header(c)} [{c.key}]") for c in columns],
                       taken=("Method",))
    labels = [*table.rows, *(pub + " (pub.)" for pub in table.published)]
    labels = _distinct([name(r) for r in labels], [name(r) for r in labels])
    records = []
    for label, row in zip(labels, table.rows):
        rec = {"Method": label}
        for title, col in zip(titles, columns):
            text = render(table.mean.loc[row, col.key], table.err.loc[row, col.key], col.decimals)
            text = bold(text) if table.bold.loc[row, col.key] else text
            rec[title] = text + (dagger if table.dagger.loc[row, col.key] else "")
        records.append(rec)
    for label, cells in zip(labels[len(table.rows):], table.published.values()):
        records.append({"Method": label,
                        **{title: render(*cells[col.key], col.decimals) if col.key in cells else render(None, None, 0)
                           for title, col in zip(titles, columns)}})
    return pd.DataFrame(records)


def to_markdown(table: SummaryTable) -> str:
    frame = display_frame(table)
    cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731  (a '|' in a label would split the cell)
    header = "| " + " | ".join(map(cell, frame.columns)) + " |"
    align = "|" + "|".join([":---", *(["---:"] * (len(frame.columns) - 1))]) + "|"
    body = ["| " + " | ".join(map(cell, row)) + " |" for row in frame.to_numpy().tolist()]
    return "\n".join([header, align, *body, "", table.caption(notes=False), ""])


def to_latex(table: SummaryTable, label: str) -> str:
    """A ``table`` float with booktabs rules rendered by pandas Styler (needs ``\\usepackage{booktabs}``)."""
    columns = [c for c in table.columns if c.latex]
    body = display_frame(table, render=latex_cell, bold=lambda s: s, dagger=r"$^\dagger$", name=latex_text,
                         columns=columns, header=lambda c: c.short or c.name)
    # Bold cells, laid out like ``body``: no Method column bold, no published row bold.
    bold = np.zeros(body.shape, dtype=bool)
    bold[:len(table.rows), 1:] = table.bold[[c.key for c in columns]].to_numpy()
    styler = body.style.hide(axis="index").apply(lambda _: np.where(bold, "textbf:--rwrap;", ""), axis=None)
    # More than four value columns will not fit one column of a two-column paper: span both.
    latex = styler.to_latex(hrules=True, column_format="l" + "c" * (len(body.columns) - 1), position="t",
                            position_float="centering", caption=latex_text(table.caption()), label=label,
                            environment="table*" if len(columns) > 4 else "table")
    # Compact spacing inside the float only; the document's settings elsewhere are untouched.
    latex = latex.replace("\\centering\n", "\\centering\n\\small\n\\setlength{\\tabcolsep}{3pt}\n", 1)
    if table.published:  # a rule between our rows and the published ones
        first = body["Method"].iloc[len(table.rows)]
        latex = latex.replace(f"\n{first} &", f"\n\\midrule\n{first} &", 1)
    return latex


def to_long(table: SummaryTable) -> pd.DataFrame:
    """Every number: one row per (method, column), ours and published."""
    rows = []
    for row in table.rows:
        for col in table.columns:
            rows.append({"method": row, "column": col.key, "mean": table.mean.loc[row, col.key],
                         "error": table.err.loc[row, col.key], "error_kind": table.error,
                         "n": int(table.n.loc[row, col.key]), "p_value": table.pvalue.loc[row, col.key],
                         "best": bool(table.bold.loc[row, col.key]), "significant": bool(table.dagger.loc[row, col.key]),
                         "baseline": table.baseline or "", "source": "ours"})
    for name, cells in table.published.items():
        for key, (m, e) in cells.items():
            rows.append({"method": name, "column": key, "mean": m, "error": e, "error_kind": "se" if e is not None else "",
                         "n": None, "p_value": None, "best": False, "significant": False, "baseline": "",
                         "source": table.published_source})
    return pd.DataFrame(rows)


def write_table_set(table: SummaryTable, stem, label: str) -> list:
    """``stem.md``, ``stem.tex`` (LaTeX label ``label``) and ``stem.csv`` (every number) of a table."""
    from pathlib import Path

    from pinbench.io import write_table, write_text

    stem = Path(stem)
    return [write_text(to_markdown(table), stem.with_suffix(".md")),
            write_text(to_latex(table, label), stem.with_suffix(".tex")),
            write_table(to_long(table), stem.with_suffix(".csv"))]

"""Statistics of Table 1: mean ± SD per organ, and the expert-label model against each crowd-label
model with two-sided Wilcoxon signed-rank tests on paired test cases.

Handling, stated once: a case enters an organ's test only when both models have a Dice for
it (NaN — both prediction and reference empty — drops the pair; the number of pairs is
reported). `scipy.stats.wilcoxon` runs with its defaults: zero differences are dropped
(Wilcoxon's method), the exact null distribution is used for small samples without ties or
zeros and the normal approximation with tie correction otherwise. When every difference is
zero the p-value is 1. The overall row compares each case's mean over organs. Holm's
step-down correction across organs is optional. SD is the sample SD (ddof 1).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from samcrowd.errors import SamcrowdError
from samcrowd.reporting import html_table, markdown_rows


def paired_wilcoxon(reference: pd.Series, other: pd.Series) -> tuple[float, int]:
    """Two-sided Wilcoxon signed-rank p-value of paired values (aligned on index) and the pairs used."""
    pairs = pd.concat([reference.rename("a"), other.rename("b")], axis=1, join="inner").dropna()
    if len(pairs) == 0:
        return float("nan"), 0
    if np.allclose(pairs.a.to_numpy(), pairs.b.to_numpy(), rtol=0, atol=0):
        return 1.0, len(pairs)
    return float(wilcoxon(pairs.a, pairs.b).pvalue), len(pairs)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted)."""
    valid = [(p, i) for i, p in enumerate(pvalues) if not math.isnan(p)]
    m = len(valid)
    adjusted = [float("nan")] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(valid)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def mean_sd(values: pd.Series) -> tuple[float, float, int]:
    """Mean, sample SD (ddof 1) and count of the non-NaN values (NaN Dice: both masks empty)."""
    v = values.dropna()
    return (
        float(v.mean()) if len(v) else float("nan"),
        float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
        int(len(v)),
    )


def compare(
    dice: pd.DataFrame, organs: list[str], reference: str, others: list[str] | None = None, *, correct: bool
) -> pd.DataFrame:
    """Per organ and overall: mean, SD, n of every source's test Dice; p of reference vs each other source.

    `dice` is long: source, case, organ, dice.
    """
    sources = [reference, *(others if others is not None else sorted(set(dice.source) - {reference}))]
    missing = [s for s in sources if s not in set(dice.source)]
    if missing:
        raise SamcrowdError(f"no test Dice of source '{missing[0]}'")
    wide = dice.pivot_table(index=["source", "case"], columns="organ", values="dice", aggfunc="first", dropna=False)
    rows = []
    for organ in [*organs, "mean"]:
        row: dict[str, object] = {"organ": organ}
        per_source = {}
        for source in sources:
            table = wide.loc[source]
            values = table[organs].mean(axis=1, skipna=True) if organ == "mean" else table[organ]
            per_source[source] = values
            row[f"{source}_mean"], row[f"{source}_sd"], row[f"{source}_n"] = mean_sd(values)
        for source in sources[1:]:
            row[f"p_{source}"], row[f"pairs_{source}"] = paired_wilcoxon(per_source[reference], per_source[source])
        rows.append(row)
    out = pd.DataFrame(rows)
    if correct:
        for source in sources[1:]:
            organ_rows = out.organ != "mean"
            out.loc[organ_rows, f"p_{source}_holm"] = holm(out.loc[organ_rows, f"p_{source}"].tolist())
    return out


def format_p(p: float) -> str:
    """p as the study printed it: '< 0.001' or two decimals."""
    if math.isnan(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def _cell(mean: float, sd: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.2f} ± {sd:.2f}" if not math.isnan(sd) else f"{mean:.2f}"


def comparison_markdown(table: pd.DataFrame, reference: str, labels: dict[str, str] | None = None) -> str:
    """A comparison table as Markdown: mean ± SD per source, p against the reference."""
    labels = labels or {}
    sources = [c.removesuffix("_mean") for c in table.columns if c.endswith("_mean")]
    others = [s for s in sources if s != reference]
    header = [
        "organ",
        *[labels.get(s, s) for s in sources],
        *[f"p ({labels.get(reference, reference)} vs {labels.get(s, s)})" for s in others],
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        cells = [str(row.organ), *[_cell(row[f"{s}_mean"], row[f"{s}_sd"]) for s in sources]]
        for s in others:
            text = format_p(row[f"p_{s}"])
            if f"p_{s}_holm" in row and not pd.isna(row.get(f"p_{s}_holm")):
                text += f" (Holm {format_p(row[f'p_{s}_holm'])})"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def read_case_table(path: str | Path) -> pd.DataFrame:
    """A per-case Dice table as published (one row per case, `path` + one `<organ>_dice` column per
    organ) -> long (case, organ, dice)."""
    try:
        wide = pd.read_csv(path)
    except FileNotFoundError:
        raise SamcrowdError("file not found", path) from None
    except pd.errors.ParserError as e:
        raise SamcrowdError(f"not a CSV table ({e})", path) from None
    case_column = "path" if "path" in wide.columns else wide.columns[0]
    organ_columns = [c for c in wide.columns if c.endswith("_dice")]
    if not organ_columns:
        raise SamcrowdError("no '<organ>_dice' columns", path)
    if wide[case_column].duplicated().any():
        raise SamcrowdError(f"case '{wide[case_column][wide[case_column].duplicated()].iloc[0]}' appears twice", path)
    long = wide.melt(id_vars=[case_column], value_vars=organ_columns, var_name="organ", value_name="dice")
    long["organ"] = long.organ.str.removesuffix("_dice")
    long["dice"] = pd.to_numeric(long.dice, errors="coerce")
    return long.rename(columns={case_column: "case"})[["case", "organ", "dice"]]


def compare_tables(reference_csv: str | Path, other_csv: str | Path, correct: bool = False) -> pd.DataFrame:
    """`samcrowd compare`: two per-case tables (same cases) -> the comparison table."""
    a, b = read_case_table(reference_csv), read_case_table(other_csv)
    if set(a.case) != set(b.case):
        only = sorted(set(a.case) ^ set(b.case))[0]
        raise SamcrowdError(f"the tables list different cases (e.g. '{only}')", other_csv)
    organs = list(dict.fromkeys(a.organ))
    if list(dict.fromkeys(b.organ)) != organs:
        raise SamcrowdError(f"organ columns differ from {reference_csv}'s", other_csv)
    dice = pd.concat([a.assign(source="reference"), b.assign(source="other")], ignore_index=True)
    return compare(dice, organs, reference="reference", others=["other"], correct=correct)


def table1(annotation: pd.DataFrame, comparison: pd.DataFrame, organs: list[str], reference: str) -> pd.DataFrame:
    """Table 1 of the study from this run: crowd-label slice/volume Dice and the models' test Dice."""
    left = annotation.set_index("organ")
    right = comparison.set_index("organ")
    rows = []
    for organ in [*organs, "mean"]:
        row = {"organ": organ}
        for column in left.columns:
            row[f"labels_{column}"] = left.loc[organ, column] if organ in left.index else np.nan
        for column in right.columns:
            row[f"test_{column}"] = right.loc[organ, column] if organ in right.index else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def table1_markdown(table: pd.DataFrame, reference: str) -> str:
    """Table 1 as Markdown, laid out like the study's."""
    sources = [
        c.removeprefix("test_").removesuffix("_mean")
        for c in table.columns
        if c.startswith("test_") and c.endswith("_mean")
    ]
    others = [s for s in sources if s != reference]
    header = [
        "organ",
        "slice Dice (crowd labels)",
        "volume Dice (stacked)",
        "volume Dice (crowd)",
        *[f"test Dice, nnU-Net on {s}" for s in sources],
        *[f"p ({reference} vs {s})" for s in others],
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        cells = [str(row.organ)]
        for measure in ("slice_dice", "volume_dice_stacked", "volume_dice_crowd"):
            cells.append(_cell(row.get(f"labels_{measure}_mean", np.nan), row.get(f"labels_{measure}_sd", np.nan)))
        cells += [_cell(row[f"test_{s}_mean"], row[f"test_{s}_sd"]) for s in sources]
        cells += [format_p(row.get(f"test_p_{s}", np.nan)) for s in others]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table1(
    *,
    annotation_path: str | Path,
    test_dice_path: str | Path | None,
    organs: list[str],
    reference: str,
    correct: bool,
    out_table: str | Path,
    out_markdown: str | Path,
    out_comparison: str | Path,
    out_html: str | Path | None = None,
) -> pd.DataFrame:
    """The workflow's `stats` job: Table 1 (TSV, Markdown, HTML for the report) and the comparison."""
    from samcrowd import io

    annotation = pd.read_csv(annotation_path, sep="\t", dtype={"organ": str})
    if test_dice_path is not None:
        dice = pd.read_csv(test_dice_path, sep="\t", dtype={"case": str, "organ": str, "source": str})
        comparison = compare(dice, organs, reference=reference, correct=correct)
    else:
        comparison = pd.DataFrame({"organ": [*organs, "mean"]})
    table = table1(annotation, comparison, organs, reference)
    markdown = table1_markdown(table, reference)
    io.write_tsv(out_table, table)
    io.write_tsv(out_comparison, comparison)
    io.write_text(out_markdown, "# Table 1\n\n" + markdown + "\n" + NOTE + "\n")
    if out_html is not None:
        io.write_text(out_html, html_table(*markdown_rows(markdown), "Table 1", NOTE))
    return table


NOTE = (
    "Mean ± SD across cases (sample SD). Slice Dice: crowd labels on the slices annotators boxed; volume Dice: "
    "stacked fusion and after 3D completion. Test Dice: nnU-Net trained on each label source, ensembled folds, "
    "on the test split. p: two-sided Wilcoxon signed-rank test on paired test cases (scipy.stats.wilcoxon "
    "defaults; pairs with a NaN Dice dropped; 'mean' compares each case's mean over organs)."
)

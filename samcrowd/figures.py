"""Figures of the study (matplotlib; PNG and SVG with reproducible bytes).

- test Dice per organ: paired box/strip plots of every nnU-Net source, lines joining a case's
  values, the Wilcoxon p-values in the titles;
- crowd-label Dice: slice Dice (stacked) beside volume Dice (stacked and crowd) per organ;
- overlays: axial, coronal and sagittal views through the expert labels' centre, CT in the
  abdomen window, the expert outline in white, each other label volume filled;
- annotator reliability: the three agreement measures and the reliability of each annotator.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from samcrowd import io  # noqa: E402
from samcrowd.export import window  # noqa: E402
from samcrowd.geometry import reorient  # noqa: E402
from samcrowd.stats import format_p  # noqa: E402

COLOURS = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf", "#999999"]
plt.rcParams.update({"svg.hashsalt": "samcrowd", "font.size": 9})


def save_all(fig: plt.Figure, outs: list[str | Path], dpi: int) -> None:
    """Write a figure to every path (format from the suffix) atomically and without timestamps."""
    for out in outs:
        out = Path(out)
        metadata = {"Date": None} if out.suffix == ".svg" else {"Software": None}
        with io.atomic_output(out) as tmp:
            fig.savefig(tmp, format=out.suffix[1:], dpi=dpi, bbox_inches="tight", metadata=metadata)
    plt.close(fig)


def test_dice_figure(
    *,
    dice: pd.DataFrame,
    comparison: pd.DataFrame,
    organs: list[str],
    outs: list[str | Path],
    reference: str,
    dpi: int,
) -> None:
    """Paired box/strip plots of test Dice per organ (and the per-case mean) for every source."""
    sources = [reference, *sorted(set(dice.source) - {reference})]
    panels = [*organs, "mean"]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.0 * len(panels), 3.4), sharey=True, squeeze=False)
    wide = dice.pivot_table(index=["source", "case"], columns="organ", values="dice", aggfunc="first", dropna=False)
    for ax, organ in zip(axes[0], panels):
        columns = [wide.loc[s][organs].mean(axis=1) if organ == "mean" else wide.loc[s][organ] for s in sources]
        ax.boxplot([c.dropna() for c in columns], widths=0.5, showfliers=False)
        for case in sorted(set().union(*(c.index for c in columns))):
            ax.plot(range(1, len(sources) + 1), [c.get(case, np.nan) for c in columns], color="0.65", lw=0.6, zorder=1)
        for i, c in enumerate(columns):
            ax.scatter(np.full(len(c), i + 1), c, s=10, color=COLOURS[i % len(COLOURS)], zorder=2)
        row = comparison[comparison.organ == organ]
        ps = [f"p={format_p(float(row[f'p_{s}'].iloc[0]))}" for s in sources[1:] if len(row)]
        ax.set_title(organ + ("\n" + ", ".join(ps) if ps else ""), fontsize=8)
        ax.set_xticks(range(1, len(sources) + 1), sources, rotation=30)
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("test volume Dice")
    fig.suptitle(f"nnU-Net test Dice by training labels (two-sided Wilcoxon signed-rank, {reference} vs others)")
    save_all(fig, outs, dpi)


def annotation_figure(
    *, slices: pd.DataFrame, volumes: pd.DataFrame, organs: list[str], outs: list[str | Path], dpi: int
) -> None:
    """Per organ: the crowd labels' slice Dice (stacked) beside their volume Dice (stacked, crowd)."""
    measures = {
        "slice Dice (stacked)": slices[slices.source == "stacked"].groupby(["case", "organ"]).dice.mean(),
        "volume Dice (stacked)": volumes[volumes.source == "stacked"].set_index(["case", "organ"]).dice,
        "volume Dice (crowd)": volumes[volumes.source == "crowd"].set_index(["case", "organ"]).dice,
    }
    measures = {k: v for k, v in measures.items() if len(v)}
    fig, ax = plt.subplots(figsize=(1.6 * len(organs) + 1.5, 3.4))
    width = 0.8 / max(1, len(measures))
    for j, (name, series) in enumerate(measures.items()):
        data = [
            series.xs(o, level="organ").dropna() if o in series.index.get_level_values("organ") else [] for o in organs
        ]
        positions = np.arange(len(organs)) + (j - (len(measures) - 1) / 2) * width
        box = ax.boxplot(
            data, positions=positions, widths=width * 0.9, patch_artist=True, showfliers=False, manage_ticks=False
        )
        for patch in box["boxes"]:
            patch.set_facecolor(COLOURS[j % len(COLOURS)])
            patch.set_alpha(0.5)
        ax.plot([], [], color=COLOURS[j % len(COLOURS)], lw=6, alpha=0.5, label=name)
    ax.set_xticks(range(len(organs)), organs, rotation=20)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("Dice against expert labels")
    ax.legend(loc="lower left", fontsize=7)
    ax.set_title("Crowd labels: slice Dice on annotated slices vs volume Dice")
    save_all(fig, outs, dpi)


def _views(volume: np.ndarray, centre: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Axial (radiological: patient right left, anterior up), coronal and sagittal (superior up)
    planes of a volume in canonical RAS order through `centre`."""
    i, j, k = centre
    return {"axial": volume[::-1, ::-1, k].T, "coronal": volume[::-1, j, ::-1].T, "sagittal": volume[i, ::-1, ::-1].T}


def overlay_figure(
    image_path: str | Path,
    expert: np.ndarray,
    layers: dict[str, str | Path],
    organs: list[str],
    outs: list[str | Path],
    title: str,
    dpi: int,
    level: float,
    width: float,
) -> None:
    """Rows axial/coronal/sagittal, one column per label layer; expert outline (1..N) in white."""
    image, affine = io.load_volume(image_path)
    canon_image, canon_affine = reorient(image, affine, "RAS")
    canon_expert, _ = reorient(expert, affine, "RAS")
    volumes = {name: reorient(io.load_volume(path, np.uint8)[0], affine, "RAS")[0] for name, path in layers.items()}
    spacing = np.sqrt((canon_affine[:3, :3] ** 2).sum(axis=0))
    where = np.argwhere(canon_expert > 0)
    centre = tuple(int(v) for v in (where.mean(axis=0) if len(where) else np.array(canon_image.shape) // 2))
    aspects = {
        "axial": spacing[1] / spacing[0],
        "coronal": spacing[2] / spacing[0],
        "sagittal": spacing[2] / spacing[1],
    }
    cmap = ListedColormap(COLOURS[: len(organs)])
    fig, axes = plt.subplots(3, len(volumes), figsize=(2.6 * len(volumes), 7.2), squeeze=False)
    ct = _views(window(canon_image, level, width), centre)
    outline = _views(canon_expert, centre)
    for col, (name, volume) in enumerate(volumes.items()):
        planes = _views(volume, centre)
        for row, view in enumerate(("axial", "coronal", "sagittal")):
            ax = axes[row][col]
            ax.imshow(ct[view], cmap="gray", aspect=aspects[view], interpolation="nearest")
            mask = np.ma.masked_equal(planes[view], 0)
            ax.imshow(
                mask - 1,
                cmap=cmap,
                vmin=0,
                vmax=len(organs) - 1,
                alpha=0.45,
                aspect=aspects[view],
                interpolation="nearest",
            )
            if outline[view].any():
                ax.contour(outline[view], levels=np.arange(0.5, len(organs) + 0.5), colors="white", linewidths=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
            if col == 0:
                ax.set_ylabel(view)
    handles = [plt.Line2D([], [], color=COLOURS[i], lw=6, alpha=0.6, label=o) for i, o in enumerate(organs)]
    handles.append(plt.Line2D([], [], color="black", lw=1, label="expert outline (white)"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle(title)
    save_all(fig, outs, dpi)


def reliability_figure(*, quality: pd.DataFrame, threshold: float, outs: list[str | Path], dpi: int) -> None:
    """Each annotator's box IoU, leave-one-out Dice, STAPLE sensitivity and reliability; flagged in red."""
    measures = ["box_iou", "mask_dice_loo", "staple_sensitivity", "reliability"]
    table = quality.sort_values("rank")
    fig, ax = plt.subplots(figsize=(6.5, 0.55 * len(table) + 1.5))
    height = 0.8 / len(measures)
    y = np.arange(len(table))
    for j, measure in enumerate(measures):
        ax.barh(y + (j - 1.5) * height, table[measure], height=height * 0.95, color=COLOURS[j], label=measure)
    ax.axvline(threshold, color="black", ls="--", lw=0.8, label=f"threshold {threshold}")
    labels = [f"{a} (flagged)" if f else a for a, f in zip(table.annotator, table.flagged)]
    ax.set_yticks(y, labels)
    for tick, flagged in zip(ax.get_yticklabels(), table.flagged):
        tick.set_color("#e41a1c" if flagged else "black")
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("agreement with the other annotators")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Annotator reliability without an expert (most reliable first)")
    save_all(fig, outs, dpi)


def overlay_from_files(
    *,
    image: str | Path,
    label: str | Path,
    organ_values: dict[str, int],
    other_labels: str,
    layers: dict[str, str | Path],
    case: str,
    outs: list[str | Path],
    dpi: int,
    level: float,
    width: float,
) -> None:
    """The workflow's overlay job; a layer that is a folder (predictions) contributes `<case>.nii.gz`."""
    from samcrowd.evaluation import read_expert_label

    files = {name: Path(p) / f"{case}.nii.gz" if Path(p).is_dir() else Path(p) for name, p in layers.items()}
    expert = read_expert_label(label, organ_values, other_labels)
    overlay_figure(image, expert, files, list(organ_values), outs, f"{case}: expert outline (white)", dpi, level, width)

"""A crowd campaign: who sees which slice (the plan), what each annotator takes home (the
package), and how far the returns have come (status).

The plan hands every chosen exported slice to `k` annotators, the least loaded first (ties
broken at random), so workloads differ by at most one slice; gold slices, drawn from slices
whose expert label shows an organ, go to everyone. `assignment.tsv` is the record: one row per
(slice, annotator), with `gold` yes or no. Everything is reproducible from the seed.
"""

from __future__ import annotations

import base64
import html
import io as stdio
import logging
import math
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from samcrowd import io
from samcrowd.errors import SamcrowdError
from samcrowd.export import load_manifest, png_stem, read_png, shows_body
from samcrowd.geometry import mask_bbox
from samcrowd.openlabeling import MARKER, write_class_list

log = logging.getLogger(__name__)

ASSIGNMENT_COLUMNS = ["case", "slice", "stem", "annotator", "gold"]
#: The campaign settings the plan follows (the others - unassigned, zip - must not re-plan).
PLAN_KEYS = ("k", "slices", "stride", "gold", "gold_slices", "seed")
STATUS_COLUMNS = [
    "annotator",
    "assigned",
    "done",
    "boxes",
    "waiting",
    "below_k",
    "gold_assigned",
    "gold_done",
    "gold_iou",
    "unassigned",
    "refused",
    "reason",
]
#: Box colours of the instruction sheet, one per organ in config order (RGB).
COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180)]


def candidate_slices(
    *,
    manifests: list[str | Path],
    choice: str,
    images: dict[str, str],
    labels: dict[str, str],
    organ_values: dict[str, int],
) -> pd.DataFrame:
    """The exported slices that can be handed out: case, slice, stem, organs (does the expert label
    show a study organ there; False without a label), n_organs (how many), labelled.

    `choice`: all, body (the slice shows the body) or organs (its expert label shows an organ).
    """
    rows = []
    values = np.asarray(list(organ_values.values()))
    for path in manifests:
        manifest, geometry = load_manifest(path)
        case = manifest["case"]
        if choice == "organs" and not labels.get(case):
            raise SamcrowdError(
                f"campaign.slices: organs needs expert labels, case '{case}' has none (use body or all)"
            )
        label = io.load_volume(labels[case], np.uint8)[0] if labels.get(case) else None
        image = io.load_volume(images[case])[0] if choice == "body" else None
        for record in manifest["slices"]:
            k = record["slice"]
            shown = 0 if label is None else int(np.isin(values, geometry.extract(label, k)).sum())
            if choice == "organs" and not shown:
                continue
            if choice == "body" and not shows_body(geometry.extract(image, k)):
                continue
            rows.append(
                {
                    "case": case,
                    "slice": k,
                    "stem": png_stem(case, k),
                    "organs": shown > 0,
                    "n_organs": shown,
                    "labelled": label is not None,
                }
            )
    return pd.DataFrame(rows, columns=["case", "slice", "stem", "organs", "n_organs", "labelled"])


def every_nth(slices: pd.DataFrame, stride: int) -> pd.Series:
    """Which chosen slices a sparse campaign hands out: each case's first, then every `stride`-th."""
    order = slices.sort_values(["slice"], kind="stable").groupby("case", sort=False).cumcount()
    return (order.reindex(slices.index) % stride == 0).rename("handed_out")


def ordinal(n: int) -> str:
    """2nd, 3rd, 4th, 21st: how the sheet, the plan and the status name a stride."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def sparse_summary(slices: pd.DataFrame, stride: int, k: int) -> str:
    """What handing out every n-th chosen slice saves, e.g. 'every 3rd chosen slice handed out: 24 of 36
    left to filling, 48 slice assignments (k = 2) and 96 boxes saved (organs the expert labels show
    there)'; empty for stride 1."""
    if stride == 1:
        return ""
    skipped = slices[~every_nth(slices, stride)]
    text = (
        f"every {ordinal(stride)} chosen slice handed out: {len(skipped)} of {len(slices)} left to filling, "
        f"{len(skipped) * k} slice assignments (k = {k})"
    )
    if slices.labelled.any():
        text += f" and {int(skipped.n_organs.sum()) * k} boxes saved (organs the expert labels show there)"
    else:
        text += " saved"
    return text


def check_k(k: int, annotators: list[str]) -> None:
    """Every slice goes to k different annotators: there must be at least k."""
    if not annotators:
        raise SamcrowdError("campaign.plan needs annotators to plan for (annotations.annotators or crowd.annotators)")
    if k > len(annotators):
        raise SamcrowdError(
            f"config: key 'campaign.k': {k} annotators per slice, but the campaign has only {len(annotators)} "
            f"({', '.join(annotators)})"
        )


def check_settings(settings: dict[str, Any], annotators: list[str], *, has_labels: bool) -> None:
    """What can be said of a plan before any slice is read: k fits, gold has expert labels to come from."""
    check_k(settings["k"], annotators)
    if (settings["gold"] > 0 or settings["gold_slices"]) and not has_labels:
        raise SamcrowdError(
            "config: key 'campaign.gold': gold slices need expert labels, and no annotated case has one "
            "(set campaign.gold: 0)"
        )


def plan(
    slices: pd.DataFrame,
    annotators: list[str],
    *,
    k: int,
    gold: float = 0.0,
    gold_slices: list[str] | tuple[str, ...] = (),
    seed: int = 0,
    stride: int = 1,
) -> pd.DataFrame:
    """The assignment: every `stride`-th slice of each case (`every_nth`) to `k` annotators, gold
    slices (among those) to all (columns ASSIGNMENT_COLUMNS).

    Raises SamcrowdError (one line) when k exceeds the annotators, or gold is asked for without
    slices whose expert label shows an organ.
    """
    check_k(k, annotators)
    if slices.empty:
        raise SamcrowdError("campaign: no exported slice to hand out (campaign.slices, export.splits)")
    rng = np.random.default_rng(seed)
    slices = slices[every_nth(slices, stride)]
    eligible = slices[slices.organs]
    if gold_slices:
        unknown = [s for s in gold_slices if s not in set(eligible.stem)]
        if unknown:
            raise SamcrowdError(
                f"config: key 'campaign.gold_slices': '{unknown[0]}' is not a handed-out slice whose expert label shows an organ"
                + (f" (campaign.stride {stride} hands out every {ordinal(stride)} slice)" if stride > 1 else "")
            )
        gold_stems = set(gold_slices)
    elif gold > 0:
        if eligible.empty:
            raise SamcrowdError(
                f"config: key 'campaign.gold': a gold fraction ({gold}) needs expert labels showing organs on "
                "the handed-out slices; none has one"
            )
        n = min(len(eligible), max(1, round(gold * len(slices))))
        gold_stems = set(rng.choice(eligible.stem.to_numpy(), size=n, replace=False))
    else:
        gold_stems = set()
    rest = slices[~slices.stem.isin(gold_stems)]
    if not gold_stems and len(rest) * k < len(annotators):
        raise SamcrowdError(
            f"campaign: {len(rest)} slices x k = {k} leave {len(annotators) - len(rest) * k} of the "
            f"{len(annotators)} annotators without a slice; raise campaign.k, add gold slices or hand out more slices"
        )
    load = dict.fromkeys(annotators, 0)
    rows = []
    for i in rng.permutation(len(rest)):
        row = rest.iloc[i]
        ties = rng.random(len(annotators))
        chosen = sorted(range(len(annotators)), key=lambda a: (load[annotators[a]], ties[a]))[:k]
        for a in chosen:
            load[annotators[a]] += 1
            rows.append(
                {"case": row.case, "slice": int(row.slice), "stem": row.stem, "annotator": annotators[a], "gold": "no"}
            )
    for row in slices[slices.stem.isin(gold_stems)].itertuples():
        for a in annotators:
            rows.append({"case": row.case, "slice": int(row.slice), "stem": row.stem, "annotator": a, "gold": "yes"})
    table = pd.DataFrame(rows, columns=ASSIGNMENT_COLUMNS)
    order = {c: i for i, c in enumerate(dict.fromkeys(slices.case))}
    table = table.assign(_case=table.case.map(order), _annotator=table.annotator.map(annotators.index))
    return (
        table.sort_values(["_case", "slice", "_annotator"]).drop(columns=["_case", "_annotator"]).reset_index(drop=True)
    )


def gold_cells(assignment: pd.DataFrame) -> pd.DataFrame:
    """The gold slices of a plan, once each (columns case, slice)."""
    gold = assignment[assignment.gold == "yes"][["case", "slice"]].drop_duplicates()
    return gold.astype({"slice": int}).reset_index(drop=True)


def read_assignment(path: str | Path) -> pd.DataFrame:
    """Read assignment.tsv, checking its columns."""
    try:
        table = pd.read_csv(path, sep="\t", dtype={"case": str, "stem": str, "annotator": str, "gold": str})
    except FileNotFoundError:
        raise SamcrowdError("assignment not found (run the plan first: samcrowd campaign plan)", path) from None
    missing = [c for c in ASSIGNMENT_COLUMNS if c not in table.columns]
    if missing:
        raise SamcrowdError(f"not an assignment table: column '{missing[0]}' is missing", path)
    return table


def write_plan(
    *,
    manifests: list[str],
    images: dict[str, str],
    labels: dict[str, str],
    organ_values: dict[str, int],
    annotators: list[str],
    settings: dict[str, Any],
    out: str | Path,
) -> tuple[pd.DataFrame, str]:
    """The `campaign_plan` job and `samcrowd campaign plan`: choose slices, plan, write assignment.tsv;
    returns the plan and its summary line (what a sparse campaign saves included)."""
    check_settings(settings, annotators, has_labels=any(labels.values()))
    slices = candidate_slices(
        manifests=manifests, choice=settings["slices"], images=images, labels=labels, organ_values=organ_values
    )
    table = plan(
        slices,
        annotators,
        k=settings["k"],
        gold=settings["gold"],
        gold_slices=settings["gold_slices"],
        seed=settings["seed"],
        stride=settings["stride"],
    )
    io.write_tsv(out, table)
    summary = "; ".join(
        filter(None, [plan_summary(table, settings["k"]), sparse_summary(slices, settings["stride"], settings["k"])])
    )
    log.info("%s", summary)
    return table, summary


def plan_summary(table: pd.DataFrame, k: int) -> str:
    """'campaign plan: 36 slices (2 gold) to 5 annotators, k = 2; 15 to 16 slices each'."""
    per = table.groupby("annotator").size()
    return (
        f"campaign plan: {table.stem.nunique()} slices ({table[table.gold == 'yes'].stem.nunique()} gold) to "
        f"{len(per)} annotators, k = {k}; {per.min()} to {per.max()} slices each"
    )


# ---- hand-out -------------------------------------------------------------------------------


def example_boxes(
    *,
    manifests: list[str],
    labels: dict[str, str],
    slices_dirs: dict[str, str],
    organ_values: dict[str, int],
    gold: set[tuple[str, int]],
) -> list[tuple[str, np.ndarray, tuple[int, int, int, int]]]:
    """One example per organ: (organ, the exported PNG where the expert label shows it largest, its box),
    never on a gold slice (the sheet must not give away the answer to a gold check)."""
    best: dict[str, tuple[int, str, int, tuple[int, int, int, int]]] = {}
    for path in manifests:
        manifest, geometry = load_manifest(path)
        case = manifest["case"]
        if not labels.get(case):
            continue
        label = io.load_volume(labels[case], np.uint8)[0]
        for record in manifest["slices"]:
            if (case, record["slice"]) in gold:
                continue
            plane = geometry.extract(label, record["slice"])
            for organ, value in organ_values.items():
                mask = plane == value
                area = int(mask.sum())
                if area and area > best.get(organ, (0,))[0]:
                    (y0, y1), (x0, x1) = mask_bbox(mask)
                    best[organ] = (area, case, record["slice"], (x0, y0, x1, y1))
    examples = []
    for organ in organ_values:
        if organ in best:
            _, case, k, box = best[organ]
            png = read_png(Path(slices_dirs[case]) / f"{png_stem(case, k)}.png")
            examples.append((organ, png, box))
    return examples


def draw_example(png: np.ndarray, box: tuple[int, int, int, int], colour: tuple[int, int, int]) -> bytes:
    """A slice with one box drawn on it, as PNG bytes (x1, y1 exclusive), enlarged to at least 384 pixels."""
    from PIL import Image, ImageDraw

    scale = max(1, math.ceil(384 / max(png.shape)))
    img = Image.fromarray(png).convert("RGB").resize((png.shape[1] * scale, png.shape[0] * scale), Image.NEAREST)
    x0, y0, x1, y1 = box
    ImageDraw.Draw(img).rectangle(
        [x0 * scale, y0 * scale, x1 * scale - 1, y1 * scale - 1], outline=colour, width=max(2, scale)
    )
    buffer = stdio.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def instructions_html(
    examples: list[tuple[str, np.ndarray, tuple[int, int, int, int]]], organs: list[str], stride: int = 1
) -> str:
    """The one-page instruction sheet: what to box, how, how to say "seen, nothing there", and for a
    sparse campaign (`stride` > 1) that the slices in between are left out on purpose."""
    figures = []
    for organ, png, box in examples:
        colour = COLOURS[organs.index(organ) % len(COLOURS)]
        data = base64.b64encode(draw_example(png, box, colour)).decode()
        name = html.escape(organ.replace("_", " "))
        figures.append(
            f'<figure><img alt="example box: {name}" src="data:image/png;base64,{data}">'
            f"<figcaption>{name}: one box from the organ's top-left to bottom-right edge</figcaption></figure>"
        )
    if not figures:
        figures.append("<p><em>No expert label in this study to draw examples from.</em></p>")
    classes = "".join(f"<li><code>{html.escape(o)}</code></li>" for o in organs)
    sparse = (
        f'<li class="sparse">You get only every {ordinal(stride)} slice of each scan, so the images jump a few slices '
        "from one to the next: <b>that is meant</b>. The slices in between are filled by the computer from your "
        "boxes; please do not look for them.</li>\n"
        if stride > 1
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>samcrowd: how to draw your boxes</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 1em auto; line-height: 1.4; }}
figure {{ display: inline-block; width: 18em; margin: 0.5em; vertical-align: top; text-align: center; }}
figure img {{ width: 18em; image-rendering: pixelated; border: 1px solid #999; }}
code {{ background: #eee; padding: 0 0.2em; }}
</style></head><body>
<h1>How to draw your boxes</h1>
<ol>
<li>Open this folder in <a href="https://github.com/Cartucho/OpenLabeling">OpenLabeling</a>:
<code>python main.py -i input -o output</code>, run from this folder (it reads <code>class_list.txt</code> here).</li>
<li>On every image in <code>input/</code>, draw <b>one box per organ</b> you see, tight around the whole organ on that slice,
and pick its class:<ul>{classes}</ul>The images show the patient's right on the left, front at the top.</li>
<li>If an image shows <b>none</b> of these organs, draw one small box anywhere with the class
<code>{MARKER}</code>: this says "seen, nothing there". An image without any box counts as <b>not done</b>
(OpenLabeling creates an empty file for every image when it starts).</li>
{sparse}<li>When you are done (or done for today), send back this folder with its <code>output/</code>; partial returns are welcome.</li>
</ol>
<h2>Examples from this study</h2>
{"".join(figures)}
</body></html>
"""


def write_instructions(
    *,
    manifests: list[str],
    labels: dict[str, str],
    slices_dirs: dict[str, str],
    organ_values: dict[str, int],
    assignment: str | Path,
    out: str | Path,
    stride: int,
) -> None:
    """The `campaign_instructions` job: the instruction sheet with an example box per organ (and, for a
    sparse campaign, the note that skipped slices are meant)."""
    plan = read_assignment(assignment)
    gold = set(gold_cells(plan).itertuples(index=False, name=None))
    examples = example_boxes(
        manifests=manifests, labels=labels, slices_dirs=slices_dirs, organ_values=organ_values, gold=gold
    )
    missing = [o for o in organ_values if o not in {e[0] for e in examples}]
    if missing:
        log.warning("no expert label shows %s: the instruction sheet has no example of it", ", ".join(missing))
    io.write_text(out, instructions_html(examples, list(organ_values), stride))


def write_package(
    *,
    annotator: str,
    assignment: pd.DataFrame,
    slices_dirs: dict[str, str],
    organs: list[str],
    instructions: str | Path,
    out_dir: str | Path,
    zip_path: str | Path | None = None,
) -> int:
    """One annotator's hand-out: input/<stem>.png, class_list.txt (organs, then the marker),
    instructions.html and slices.txt, laid out as OpenLabeling expects; optionally zipped."""
    own = assignment[assignment.annotator == annotator]
    if own.empty:
        raise SamcrowdError(f"annotator '{annotator}' has no slice in the assignment")
    with io.atomic_output(out_dir, directory=True) as tmp:
        (tmp / "input").mkdir()
        for row in own.itertuples():
            shutil.copyfile(Path(slices_dirs[row.case]) / f"{row.stem}.png", tmp / "input" / f"{row.stem}.png")
        write_class_list(tmp / "class_list.txt", [*organs, MARKER])
        shutil.copyfile(instructions, tmp / "instructions.html")
        (tmp / "slices.txt").write_text("".join(f"{s}\n" for s in own.stem), encoding="utf-8")
    if zip_path is not None:
        with io.atomic_output(zip_path) as tmp_zip, zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(Path(out_dir).rglob("*")):
                if path.is_file():  # fixed dates: the same package zips to the same bytes
                    info = zipfile.ZipInfo(f"{annotator}/{path.relative_to(out_dir).as_posix()}", (1980, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    z.writestr(info, path.read_bytes())
    log.info("package %s: %d slices (%d gold)", annotator, len(own), int((own.gold == "yes").sum()))
    return len(own)


# ---- collecting -----------------------------------------------------------------------------


def assigned_slices(assignment: pd.DataFrame, annotator: str) -> set[tuple[str, int]]:
    """(case, slice) of every slice assigned to an annotator."""
    own = assignment[assignment.annotator == annotator]
    return set(zip(own.case, own.slice.astype(int)))


def unassigned_rows(table: pd.DataFrame, assigned: set[tuple[str, int]]) -> pd.Series:
    """Which rows of a box table lie on slices not assigned to its annotator."""
    return pd.Series(
        [(c, int(k)) not in assigned for c, k in zip(table.case, table.slice)], index=table.index, dtype=bool
    )


def check_assigned(
    table: pd.DataFrame, assigned: set[tuple[str, int]], policy: str, folder: str | Path, annotator: str
) -> pd.DataFrame:
    """Refuse (policy refuse) or flag in the log (policy flag) files for slices not assigned to the annotator."""
    outside = unassigned_rows(table, assigned)
    if not outside.any():
        return table
    files = sorted(set(table.file[outside]))
    first = table[outside].iloc[0]
    if policy == "refuse":
        raise SamcrowdError(
            f"slice {int(first.slice)} of case '{first.case}' was not assigned to {annotator} "
            f"(campaign.unassigned: refuse; flag keeps such files)",
            Path(folder) / first.file,
        )
    log.warning(
        "%s: %d file(s) for slices not assigned to %s kept, flagged (campaign.unassigned: flag): %s",
        folder,
        len(files),
        annotator,
        ", ".join(files[:5]) + (" ..." if len(files) > 5 else ""),
    )
    return table


def read_returns(
    *,
    folders: dict[str, str | Path | None],
    manifests: dict[str, str | Path],
    naming: str,
    organs: list[str],
    classes: dict[str, str],
    known_cases: set[str],
) -> dict[str, pd.DataFrame | str | None]:
    """Each annotator's box table on the annotated cases; the reason (one line) where its folder
    cannot be read; None where nothing has come back yet."""
    from samcrowd.boxes import annotator_table, frame_from_manifest
    from samcrowd.openlabeling import PRESETS

    preset = PRESETS[naming]
    frames = {case: frame_from_manifest(io.read_json(path), preset) for case, path in manifests.items()}
    returns: dict[str, pd.DataFrame | str | None] = {}
    for annotator, folder in folders.items():
        if folder is None or not Path(folder).is_dir():
            returns[annotator] = None
            continue
        try:
            returns[annotator] = annotator_table(
                folder, annotator, preset, organs, frames.get, classes, known_cases=known_cases
            )
        except SamcrowdError as e:
            returns[annotator] = str(e)
    return returns


def status(
    assignment: pd.DataFrame,
    returns: dict[str, pd.DataFrame | str | None],
    *,
    k: int,
    policy: str,
    expert: pd.DataFrame,
    folders: dict[str, str | Path | None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per annotator (STATUS_COLUMNS) and coverage (slices by number of votes, planned and returned).

    `below_k` counts an annotator's non-gold slices with fewer than k returned votes (gold slices
    go to everyone); `folders` name the files in `reason`."""
    from samcrowd.quality import gold_agreement

    done: dict[str, set[tuple[str, int]]] = {}
    owns: dict[str, set[tuple[str, int]]] = {}
    rows = []
    for annotator in sorted(set(assignment.annotator)):
        own = owns[annotator] = assigned_slices(assignment, annotator)
        gold = assigned_slices(assignment[assignment.gold == "yes"], annotator)
        table = returns.get(annotator)
        row = dict.fromkeys(STATUS_COLUMNS, 0) | {"annotator": annotator, "assigned": len(own), "reason": ""}
        row["gold_assigned"], row["gold_iou"] = len(gold), np.nan
        if isinstance(table, str):
            row["refused"], row["reason"] = 1, table
            table = None
        if table is not None and not table.empty:
            outside = unassigned_rows(table, own)
            n_outside = table.file[outside].nunique()
            if n_outside and policy == "refuse":
                first = table[outside].iloc[0]
                row["refused"] = n_outside
                where = Path((folders or {}).get(annotator) or "") / first.file
                row["reason"] = f"{where.as_posix()}: slice {int(first.slice)} of case '{first.case}' was not assigned"
                table = table.iloc[0:0]  # the masks job refuses the whole folder
            else:
                row["unassigned"] = n_outside
        seen = set() if table is None else set(zip(table.case, table.slice.astype(int)))
        done[annotator] = seen & own
        row["done"] = len(done[annotator])
        row["waiting"] = row["assigned"] - row["done"]
        if table is not None:
            row["boxes"] = int((table.organ != "").sum())
            row["gold_done"] = len(seen & gold)
            agreement = gold_agreement(table[[(c, int(s)) in gold for c, s in zip(table.case, table.slice)]], expert)
            row["gold_iou"] = agreement.get(annotator, (np.nan, 0))[0]
        rows.append(row)
    votes = pd.Series(0, index=pd.MultiIndex.from_frame(assignment[["case", "slice"]].drop_duplicates()))
    for cells in done.values():
        for cell in cells:
            votes[cell] += 1
    planned = assignment.groupby(["case", "slice"]).size()
    is_gold = assignment.groupby(["case", "slice"]).gold.first() == "yes"
    short = {cell for cell in planned.index if not is_gold[cell] and votes[cell] < k}
    table = pd.DataFrame(rows, columns=STATUS_COLUMNS)
    table["below_k"] = [len(owns[a] & short) for a in table.annotator]
    top = int(max(planned.max(), votes.max()))
    coverage = pd.DataFrame(
        {
            "votes": range(top + 1),
            "planned": [int((planned == n).sum()) for n in range(top + 1)],
            "returned": [int((votes == n).sum()) for n in range(top + 1)],
        }
    )
    return table, coverage


def summary_line(assignment: pd.DataFrame, table: pd.DataFrame, coverage: pd.DataFrame, k: int) -> str:
    """'campaign: 36 slices (2 gold), 5 annotators, k = 2: ... 8 slices with 2 votes or more, 28 below; ...'
    (over all slices, gold included)."""
    slices = assignment.stem.nunique()
    gold = assignment[assignment.gold == "yes"].stem.nunique()
    reached = int(coverage.returned[coverage.votes >= k].sum())
    return (
        f"campaign: {slices} slices ({gold} gold), {table.annotator.size} annotators, k = {k}: "
        f"{int(table.done.sum())} of {int(table.assigned.sum())} assignments done, {reached} slices with "
        f"{k} votes or more, {slices - reached} below; {int(table.refused.sum())} file(s) refused, "
        f"{int(table.unassigned.sum())} flagged"
    )


def write_status(
    *,
    assignment_path: str | Path,
    folders: dict[str, str | Path | None],
    manifests: dict[str, str | Path],
    labels: dict[str, str],
    organ_values: dict[str, int],
    annotations: dict[str, Any],
    settings: dict[str, Any],
    known_cases: set[str],
    images: dict[str, str] | None,
    out_table: str | Path | None = None,
    out_coverage: str | Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The `campaign_status` job and `samcrowd campaign status`: read the returns, compare with the plan.
    `settings`: the campaign's k, unassigned, slices and stride; `images`: the annotated cases' images,
    needed when a sparse campaign chose the slices that show the body (to say what it saves)."""
    from samcrowd.quality import expert_boxes

    assignment = read_assignment(assignment_path)
    organs = list(organ_values)
    returns = read_returns(
        folders=folders,
        manifests=manifests,  # every annotated case: files of a case without planned slices are unassigned
        naming=annotations["naming"],
        organs=organs,
        classes=annotations["classes"],
        known_cases=known_cases,
    )
    expert = expert_boxes(gold_cells(assignment), manifests=manifests, labels=labels, organ_values=organ_values)
    table, coverage = status(
        assignment, returns, k=settings["k"], policy=settings["unassigned"], expert=expert, folders=folders
    )
    line = summary_line(assignment, table, coverage, settings["k"])
    if settings["stride"] > 1:
        chosen = candidate_slices(
            manifests=list(manifests.values()),
            choice=settings["slices"],
            images=images or {},
            labels=labels,
            organ_values=organ_values,
        )
        line += "; " + sparse_summary(chosen, settings["stride"], settings["k"])
    if out_table is not None:
        io.write_tsv(out_table, table)
    if out_coverage is not None:
        io.write_tsv(out_coverage, coverage)
    log.info("%s", line)
    return table, coverage, line

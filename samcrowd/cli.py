"""The `samcrowd` command: helpers around the workflow (case sheets, checks).

Errors in the user's input print one line (``samcrowd: error: <file>:<line>: <problem>``)
and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import samcrowd
from samcrowd import boxes, campaign, cases, config, io, nnunet, openlabeling, stats, study, submissions
from samcrowd.errors import SamcrowdError


def _btcv_sheet(args: argparse.Namespace) -> int:
    preset = config.load_dataset("btcv") if args.preset is None else config.load_yaml(args.preset)
    if not isinstance(preset, dict) or "dataset" not in preset:
        raise SamcrowdError("no 'dataset' section in this preset", args.preset)
    config.validate(
        preset["dataset"], config.load_schema("config")["properties"]["dataset"], "preset: dataset", args.preset
    )
    table = cases.btcv_sheet(args.folder, preset["dataset"])
    text = table.to_csv(sep="\t", index=False, lineterminator="\n")
    if args.output == "-":
        sys.stdout.write(text)
    else:
        io.write_text(args.output, text)
        print(
            f"wrote {len(table)} cases ({(table.split == 'train').sum()} train, "
            f"{(table.split == 'test').sum()} test) to {args.output}",
            file=sys.stderr,
        )
    return 0


def _check_sheet(args: argparse.Namespace) -> int:
    table = cases.read_sheet(args.sheet, project_dir=args.project, allow_outside=args.allow_outside)
    for row in table.itertuples():
        cases.check_pair(row.image, row.label or None)
    print(f"{args.sheet}: {len(table)} cases, images and labels readable and on matching grids")
    return 0


def _boxes(args: argparse.Namespace) -> int:
    settings = config.check_config({} if args.config is None else config.load_yaml(args.config))
    organs = list(settings["organs"])
    naming = openlabeling.PRESETS[args.preset]
    folder = Path(args.folder)
    found = openlabeling.scan_folder(folder)
    folders = [folder] if (found.yolo or found.voc) else [folder / n for n in boxes.discover_annotators(folder)]
    manifests = {}
    if args.manifests:
        for path in sorted(Path(args.manifests).glob("*.manifest.json")):
            manifest = io.read_json(path)
            manifests[manifest["case"]] = boxes.frame_from_manifest(manifest, naming)
        if not manifests:
            raise SamcrowdError("no *.manifest.json here", args.manifests)
    tables = []
    for annotator_folder in folders:
        frames = manifests or boxes.campaign_frames(annotator_folder, naming)
        table = boxes.annotator_table(
            annotator_folder, annotator_folder.name, naming, organs, frames.get, settings["annotations"]["classes"]
        )
        print(f"{annotator_folder}: {boxes.summary(table, organs)}", file=sys.stderr)
        tables.append(table)
    merged = boxes.to_frame([r for t in tables for r in t.to_dict("records")], organs)
    sys.stdout.write(merged.to_csv(sep="\t", index=False, lineterminator="\n"))
    return 0


def _compare(args: argparse.Namespace) -> int:
    table = stats.compare_tables(args.reference, args.other, correct=args.holm)
    labels = (
        {"reference": args.labels[0], "other": args.labels[1]}
        if args.labels
        else {"reference": Path(args.reference).stem, "other": Path(args.other).stem}
    )
    print(stats.comparison_markdown(table, "reference", labels), end="")
    print(
        f"\nn = {int(table.reference_n.iloc[0])} paired cases; mean ± SD across cases; two-sided Wilcoxon "
        "signed-rank test (scipy.stats.wilcoxon defaults)" + ("; Holm across organs" if args.holm else "")
    )
    return 0


def _config_reference(args: argparse.Namespace) -> int:
    print(config.reference(), end="")
    return 0


def _submissions(args: argparse.Namespace) -> int:
    if args.dry_run == "-":
        found = submissions.count(sys.stdin)
    else:
        with open(args.dry_run, encoding="utf-8") as f:
            found = submissions.count(f)
    for name, n in sorted(found.items()):
        print(f"{name}\t{n}")
    print(f"total\t{sum(found.values())}")
    return 0


def _project_study(args: argparse.Namespace) -> tuple[dict, study.Study]:
    """The project's config (config.yaml, then each --configfile, as the workflow reads them) and its plan."""
    files = args.configfile or []
    if Path("config.yaml").is_file() and "config.yaml" not in files:
        files = ["config.yaml", *files]
    settings = config.load_configs(files)
    return settings, study.plan(settings)


def _training_status(args: argparse.Namespace) -> int:
    settings, plan = _project_study(args)
    nnunet_settings = settings["nnunet"]
    table = nnunet.training_status(
        paths=plan.nnunet_paths,
        dataset_ids=nnunet_settings["dataset_ids"],
        sources=plan.nnunet_sources,
        trainer=nnunet_settings["trainer"],
        configuration=nnunet_settings["configuration"],
        folds=nnunet_settings["folds"],
    )
    if table.empty:
        print("no nnU-Net training in this study (nnunet.sources is empty, or its stage is off)")
        return 0
    print(table.to_string(index=False))
    return 0


def _campaign_study(args: argparse.Namespace) -> tuple[dict, study.Study]:
    """The project's config and plan, which must plan a campaign."""
    settings, plan = _project_study(args)
    if not plan.campaign:
        raise SamcrowdError("config: key 'campaign.plan': the campaign is not planned here (set campaign.plan: true)")
    return settings, plan


def _manifests(cases: list[str], slices: str) -> list[str]:
    paths = [str(Path(slices) / f"{c}.manifest.json") for c in cases]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise SamcrowdError(
            "export manifest not found (export the slices first: snakemake --until export_slices)", missing[0]
        )
    return paths


def _campaign_plan(args: argparse.Namespace) -> int:
    settings, plan = _campaign_study(args)
    labels = {c: plan.cases.loc[c, "label"] for c in plan.evaluated}
    _, summary = campaign.write_plan(
        manifests=_manifests(plan.annotated, args.slices),
        images={c: plan.cases.loc[c, "image"] for c in plan.annotated},
        labels=labels,
        organ_values=settings["organs"],
        annotators=plan.campaign,
        settings=settings["campaign"],
        out=args.output,
    )
    print(f"{args.output}: {summary}", file=sys.stderr)
    return 0


def _campaign_status(args: argparse.Namespace) -> int:
    settings, plan = _campaign_study(args)
    table, coverage, line = campaign.write_status(
        assignment_path=args.assignment,
        folders={a: study.annotation_folder(settings["annotations"], a) for a in plan.campaign},
        manifests=dict(zip(plan.annotated, _manifests(plan.annotated, args.slices))),
        labels={c: plan.cases.loc[c, "label"] for c in plan.evaluated},
        organ_values=settings["organs"],
        annotations=settings["annotations"],
        settings=settings["campaign"],
        known_cases=set(plan.cases.index),
        images={c: plan.cases.loc[c, "image"] for c in plan.annotated},
    )
    shown = table.assign(gold_iou=table.gold_iou.map(lambda v: "-" if v != v else f"{v:.3f}"))
    print(shown.to_string(index=False))
    print()
    print(coverage.to_string(index=False))
    print(line)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="samcrowd", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"samcrowd {samcrowd.__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("btcv-sheet", help="write a case sheet for a BTCV folder (the published split)")
    b.add_argument("folder", help="folder holding img00XX.nii.gz and label00XX.nii.gz (searched recursively)")
    b.add_argument("-o", "--output", default="-", help="output TSV (default: standard output)")
    b.add_argument(
        "--preset",
        help="YAML file with a 'dataset' section (default: BTCV's layout and published split, shipped with samcrowd)",
    )
    b.set_defaults(func=_btcv_sheet)

    x = sub.add_parser("boxes", help="print the box table (TSV) of an OpenLabeling folder or campaign")
    x.add_argument("folder", help="an annotator's folder, or a folder of annotator folders")
    x.add_argument(
        "--preset",
        choices=sorted(openlabeling.PRESETS),
        default="project",
        help="file naming and PNG orientation (default: project; the published campaign: med2image)",
    )
    x.add_argument("--manifests", help="folder of *.manifest.json from the export (needed for the project naming)")
    x.add_argument("--config", help="config giving the organs and class names (default: the schema's defaults)")
    x.set_defaults(func=_boxes)

    m = sub.add_parser("compare", help="compare two per-case Dice tables (mean ± SD, Wilcoxon signed-rank p)")
    m.add_argument("reference", help="CSV of the reference model, one row per case, one <organ>_dice column per organ")
    m.add_argument("other", help="CSV of the model to compare, same cases and columns")
    m.add_argument("--labels", nargs=2, metavar=("REFERENCE", "OTHER"), help="column titles (default: file names)")
    m.add_argument("--holm", action="store_true", help="add Holm-corrected p-values across organs")
    m.set_defaults(func=_compare)

    c = sub.add_parser("check-sheet", help="check a case sheet and the headers of its images and labels")
    c.add_argument("sheet")
    c.add_argument("--project", default=".", help="project folder that paths must stay inside (default: .)")
    c.add_argument("--allow-outside", action="store_true", help="allow paths outside the project folder")
    c.set_defaults(func=_check_sheet)

    r = sub.add_parser("config-reference", help="print the configuration reference (Markdown) from the schemas")
    r.set_defaults(func=_config_reference)

    s = sub.add_parser(
        "submissions",
        help="count the cluster jobs a dry run would submit (snakemake --profile profiles/slurm -n | samcrowd submissions)",
    )
    s.add_argument("dry_run", nargs="?", default="-", help="the dry run's output (default: standard input)")
    s.set_defaults(func=_submissions)

    t = sub.add_parser(
        "training-status",
        help="how far each nnU-Net fold has trained: epochs done of total, saved epoch, round, state (docs/hpc.md)",
    )
    t.add_argument(
        "--configfile", action="append", help="config on top of ./config.yaml, as given to snakemake (repeatable)"
    )
    t.set_defaults(func=_training_status)

    g = sub.add_parser("campaign", help="plan a crowd campaign and follow its returns (docs/campaign.md)")
    gs = g.add_subparsers(dest="campaign_command", required=True)
    for name, func, what in (
        ("plan", _campaign_plan, "assign the exported slices to annotators (k each, gold to all): assignment.tsv"),
        ("status", _campaign_status, "per annotator: assigned, done, boxes, refused files, below k, gold agreement"),
    ):
        c = gs.add_parser(name, help=what, description=what)
        c.add_argument(
            "--configfile",
            action="append",
            help="config on top of ./config.yaml, as given to snakemake (repeatable)",
        )
        c.add_argument(
            "--slices", default="results/slices", help="the exported slices' manifests (default: results/slices)"
        )
        c.set_defaults(func=func)
        if name == "plan":
            c.add_argument("-o", "--output", default="results/campaign/assignment.tsv", help="(default: %(default)s)")
        else:
            c.add_argument("--assignment", default="results/campaign/assignment.tsv", help="(default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except SamcrowdError as e:
        print(f"samcrowd: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

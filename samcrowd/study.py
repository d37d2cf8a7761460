"""The study's plan: which cases and annotators each stage takes, checked before any job runs.

rules/common.smk turns one `Study` into the DAG and nothing more; every check that stops a run
before its first job (case sheet, annotator names, nnU-Net's needs, overlay cases, the checkpoint)
lives here, where unit tests reach it without Snakemake.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from samcrowd import cases as case_sheet
from samcrowd import nnunet, phantom, segmenters
from samcrowd.boxes import discover_annotators
from samcrowd.config import check_config
from samcrowd.errors import SamcrowdError
from samcrowd.evaluation import LABEL_SOURCES
from samcrowd.openlabeling import has_returns

#: The overlay figures: which config key picks each one's case, and from which cases.
OVERLAYS = {"crowd": "overlay_train_case", "models": "overlay_test_case"}


@dataclass(frozen=True)
class Study:
    """Who and what takes part in each stage of one run."""

    cases: pd.DataFrame  # indexed by case; columns case, image, label ('' when none), split
    annotators: list[str]  # the annotators whose work this run uses (simulated, or folder returned)
    campaign: list[str]  # the annotators the campaign plan hands slices to (empty: no plan)
    annotated: list[str]  # cases exported for annotation (export.splits), in sheet order
    evaluated: list[str]  # annotated cases with an expert label
    batches: dict[str, list[str]]  # batch -> its annotated cases: one embed job, one masks job per annotator
    train: list[str]
    test: list[str]  # test cases with an expert label: the ones nnU-Net's models are scored on
    nnunet_sources: list[str]  # the label sources nnU-Net trains on in this run (empty: stage off)
    nnunet_paths: dict[str, str]  # raw, preprocessed, results
    overlay_cases: dict[str, str | None]  # figure (crowd, models) -> case, None when there is none
    checkpoint: str | None  # the segmenter's weights file
    notes: list[str]  # stages left out of this run (and annotators not back yet): why, and how to switch them on


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
    notes: list[str] = []
    planned, annotators = study_annotators(config["annotations"], config["crowd"], notes)
    campaign = planned if config["campaign"]["plan"] else []
    if config["campaign"]["plan"]:
        check_campaign(
            config["campaign"], config["annotations"], planned, labelled=[c for c in annotated if c in labelled]
        )
    if config["annotations"]["source"] == "simulate":
        check_simulated_crowd(annotated=annotated, labelled=labelled)
    sources = nnunet_sources(config["nnunet"], test=test, annotators=annotators, notes=notes)
    check_nnunet(
        {**config["nnunet"], "sources": sources}, train=train, test=test, annotated=annotated, labelled=labelled
    )
    pools = {"crowd": evaluated if annotators else [], "models": test if sources else []}
    return Study(
        cases=cases,
        annotators=annotators,
        campaign=campaign,
        annotated=annotated,
        evaluated=evaluated,
        batches=batches(annotated, config["batch"]["cases"]),
        train=train,
        test=test,
        nnunet_sources=sources,
        nnunet_paths=nnunet_paths(config["nnunet"]["paths"], os.environ if environ is None else environ),
        overlay_cases={kind: overlay_case(config["figures"], kind=kind, pool=pool) for kind, pool in pools.items()},
        checkpoint=segmenter_checkpoint(config["segmenter"]),
        notes=notes,
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


def study_annotators(
    annotations: dict[str, Any], crowd: dict[str, Any], notes: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """(the study's annotators, those whose work this run can use).

    Simulated: the configured crowd, both. Folder: the listed annotators, else every subfolder;
    of these, the ones whose folder is there. Annotators still out, or no annotation folder at
    all, are said in `notes` (the annotation stages wait, the DAG does not stop).
    Refuses a name that is a label source (gt, crowd, stacked): tables and paths would mix them.
    """
    notes = [] if notes is None else notes
    folder = Path(annotations["folder"])
    if annotations["source"] == "simulate":
        names = list(crowd["annotators"])
    elif annotations["annotators"]:
        names = list(annotations["annotators"])
    elif folder.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir()):
        names = discover_annotators(folder)
    else:
        names = []
    clash = [a for a in names if a in LABEL_SOURCES]
    if clash:
        raise SamcrowdError(
            f"annotator name '{clash[0]}' is reserved for a label source ({', '.join(LABEL_SOURCES)}); rename it"
        )
    if annotations["source"] == "simulate":
        return names, names
    returned = [a for a in names if has_returns(folder / a)]
    if not returned:
        where = (
            f"folder '{folder}' (annotations.folder) not found"
            if not folder.is_dir()
            else f"no annotator has returned files to '{folder}'"
        )
        notes.append(
            f"annotation stages off (masks, quality, fusion, evaluation, Table 1, figures): {where} yet; "
            f"they start once annotators' OpenLabeling folders are in {folder}/<annotator>/"
        )
    elif len(returned) < len(names):
        out = [a for a in names if a not in returned]
        notes.append(
            f"waiting for {len(out)} annotator(s) with no files in '{folder}' yet ({', '.join(out)}): "
            "left out until their files are there"
        )
    return names, returned


def check_campaign(
    campaign: dict[str, Any], annotations: dict[str, Any], planned: list[str], *, labelled: list[str]
) -> None:
    """A campaign plan needs its annotators named, k of them per slice, and expert labels for gold."""
    from samcrowd.campaign import check_settings

    if annotations["source"] == "folder" and not annotations["annotators"]:
        raise SamcrowdError(
            "config: key 'annotations.annotators': campaign.plan needs the annotators to plan for; list them"
        )
    if annotations["naming"] != "project":
        raise SamcrowdError(
            "config: key 'annotations.naming': a campaign plan hands out samcrowd's own slices "
            f"({{case}}_{{slice:04d}}.png); '{annotations['naming']}' names would not match them (use project)"
        )
    check_settings(campaign, planned, has_labels=bool(labelled))


def annotation_folder(annotations: dict[str, Any], annotator: str) -> str:
    """An annotator's OpenLabeling folder: the simulator's under results/, or the user's."""
    if annotations["source"] == "simulate":
        return f"results/annotations/{annotator}"
    return os.path.join(annotations["folder"], annotator)


def nnunet_sources(nnunet: dict[str, Any], *, test: list[str], annotators: list[str], notes: list[str]) -> list[str]:
    """The label sources nnU-Net trains on in this run: none without labelled test cases or without
    crowd labels yet (said in `notes`), else the configured ones."""
    sources = list(nnunet["sources"])
    if not sources:
        return []
    if not test:
        notes.append(
            "nnU-Net stage off: the case sheet has no test case with an expert label (split test); "
            "add some to switch it on, or set nnunet.sources: [] to say it is off"
        )
        return []
    if not annotators:
        notes.append(
            "nnU-Net stage off: it compares models trained on crowd labels with the expert-label model, "
            "and there are no crowd labels yet"
        )
        return []
    return sources


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
    if "gt" in sources:
        unlabelled = [c for c in train if c not in labelled]
        if unlabelled:
            raise SamcrowdError(
                f"nnU-Net source gt needs expert labels of every training case; '{unlabelled[0]}' has none"
            )
    crowd = {"crowd", "stacked", "sparse"} & set(sources)
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
    if not pool:  # the figure's stage is off in this run
        return None
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

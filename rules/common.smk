# Config validation, the case table and input functions shared by all stages.

import sys

sys.path.insert(0, workflow.basedir)  # scripts and the Snakefile use this checkout's samcrowd

from snakemake.exceptions import WorkflowError

from samcrowd import cases as case_sheet
from samcrowd import phantom
from samcrowd.config import check_config
from samcrowd.errors import SamcrowdError


wildcard_constraints:
    case="[A-Za-z0-9][A-Za-z0-9_-]*",


def _load_cases():
    """Validate the config, then return the case table (phantom: from config; sheet: read)."""
    check_config(config)
    if config["data"]["source"] == "phantom":
        table = phantom.case_table(phantom.PhantomSettings.from_config(config["phantom"]))
        return table.drop(columns="orientation")
    return case_sheet.read_sheet(
        config["data"]["sheet"], allow_outside=config["data"]["allow_outside_project"]
    )


try:
    CASES = _load_cases().set_index("case", drop=False)
except SamcrowdError as e:
    raise WorkflowError(str(e)) from None

ANNOTATED = [c for c in CASES.index if CASES.loc[c, "split"] in config["export"]["splits"]]


def case_files(wildcards):
    """Image and (if there is one) label of a case."""
    row = CASES.loc[wildcards.case]
    files = {"image": row["image"]}
    if row["label"]:
        files["label"] = row["label"]
    return files


def case_image(wildcards):
    return CASES.loc[wildcards.case, "image"]


def final_outputs():
    """What `snakemake` builds by default."""
    return [
        *expand("results/data/checked/{case}.json", case=CASES.index),
        *expand("results/slices/{case}.manifest.json", case=ANNOTATED),
    ]

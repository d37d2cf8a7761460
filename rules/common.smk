# Config validation, the case table and input functions shared by all stages.

import os

# envs/samcrowd.yaml installs samcrowd from the workflow's checkout: pip expands this variable there
os.environ.setdefault("SAMCROWD_SOURCE", workflow.basedir)

from snakemake.exceptions import WorkflowError

from samcrowd import cases as case_sheet
from samcrowd import nnunet as nnunet_lib
from samcrowd import litemedsam, phantom, segmenters
from samcrowd.config import check_config
from samcrowd.provenance import settings as provenance_settings
from samcrowd.errors import SamcrowdError
from samcrowd.identifiers import IDENTIFIER
from samcrowd.boxes import discover_annotators
from samcrowd.evaluation import LABEL_SOURCES


wildcard_constraints:
    case=IDENTIFIER,
    annotator=IDENTIFIER,
    dataset=rf"Dataset\d{{3}}_samcrowd_({'|'.join(LABEL_SOURCES)})",
    source="|".join(LABEL_SOURCES),
    fold=r"\d+",


def _load_cases():
    """Validate the config, then return the case table (phantom: from config; sheet: read)."""
    check_config(config)
    if config["data"]["source"] == "phantom":
        table = phantom.case_table(phantom.PhantomSettings.from_config(config["phantom"]))
        return table.drop(columns="orientation")
    return case_sheet.read_sheet(config["data"]["sheet"], allow_outside=config["data"]["allow_outside_project"])


try:
    CASES = _load_cases().set_index("case", drop=False)
except SamcrowdError as e:
    raise WorkflowError(str(e)) from None

KNOWN_CASES = list(CASES.index)
IMAGE_OF, LABEL_OF = dict(CASES["image"]), dict(CASES["label"])  # plain dicts: input functions run per job
ANNOTATED = [c for c in CASES.index if CASES.loc[c, "split"] in config["export"]["splits"]]


def _annotators():
    """Simulated: the configured crowd. Folder: the listed or discovered annotator subfolders."""
    if config["annotations"]["source"] == "simulate":
        return list(config["crowd"]["annotators"])
    if config["annotations"]["annotators"]:
        return list(config["annotations"]["annotators"])
    return discover_annotators(config["annotations"]["folder"])


try:
    ANNOTATORS = _annotators()
    clash = [a for a in ANNOTATORS if a in LABEL_SOURCES]
    if clash:
        raise SamcrowdError(
            f"annotator name '{clash[0]}' is reserved for a label source (gt, crowd, stacked); rename it"
        )
except SamcrowdError as e:
    raise WorkflowError(str(e)) from None


def case_files(wildcards):
    """Image and (if there is one) label of a case."""
    row = CASES.loc[wildcards.case]
    files = {"image": row["image"]}
    if row["label"]:
        files["label"] = row["label"]
    return files


def case_image(wildcards):
    return IMAGE_OF[wildcards.case]


#: An annotator's OpenLabeling folder: simulated under results/, or the user's (a pattern, not an
#: input function: it is resolved for every boxes job).
ANNOTATION_FOLDER = (
    "results/annotations/{annotator}"
    if config["annotations"]["source"] == "simulate"
    else os.path.join(config["annotations"]["folder"].replace("{", "{{").replace("}", "}}"), "{annotator}")
)


def annotated_labels():
    """Expert labels of the annotated cases, which the crowd simulator draws its boxes from."""
    missing = [c for c in ANNOTATED if not CASES.loc[c, "label"]]
    if missing:
        raise WorkflowError(
            f"the simulated crowd needs expert labels, case '{missing[0]}' has none "
            "(give it a label or set annotations.source: folder)"
        )
    return [CASES.loc[c, "label"] for c in ANNOTATED]


def crowd_profile(annotator):
    """The noise profile of a simulated annotator (only its own: adding one changes no others)."""
    return config["crowd"]["profiles"][config["crowd"]["annotators"][annotator]]


def scaled(base):
    """A memory (MB) or runtime (min) request that grows with each retry: attempt n asks n x base,
    so a cluster job killed for running out of either is resubmitted with more (profile `retries`)."""
    return lambda wildcards, attempt: int(base) * attempt


SEGMENTER = segmenters.SEGMENTERS[config["segmenter"]["kind"]]
USES_EMBEDDING = SEGMENTER.needs_embedding
SAM_GPU = 1 if USES_EMBEDDING and config["segmenter"]["device"] != "cpu" else 0
#: LiteMedSAM's image encoder converted once for OpenVINO (unless the config asks for plain torch).
USES_ENCODER_IR = SEGMENTER is segmenters.LiteMedSamSegmenter and config["segmenter"]["runtime"] != "torch"
ENCODER_IR = {"xml": "results/segmenter/litemedsam_encoder.xml", "bin": "results/segmenter/litemedsam_encoder.bin"}


def _checkpoint():
    """The segmenter's weights file: the configured one, or LiteMedSAM's shipped in its package."""
    if not SEGMENTER.needs_checkpoint:
        return None
    if SEGMENTER is segmenters.LiteMedSamSegmenter and not config["segmenter"]["checkpoint"]:
        return str(litemedsam.shipped_weights())
    return config["segmenter"]["checkpoint"]


try:
    CHECKPOINT = _checkpoint()
except SamcrowdError as e:
    raise WorkflowError(str(e)) from None


def checkpoint_input():
    """The segmenter's checkpoint, when it has one."""
    return [CHECKPOINT] if CHECKPOINT else []


def embed_inputs(wildcards):
    files = {
        "manifest": f"results/slices/{wildcards.case}.manifest.json",
        "slices": f"results/slices/{wildcards.case}",
        "segmenter": "results/segmenter.json",
        "checkpoint": CHECKPOINT,
    }
    if USES_ENCODER_IR:
        files.update(encoder_xml=ENCODER_IR["xml"], encoder_bin=ENCODER_IR["bin"])
    return files


def masks_inputs(wildcards):
    """Boxes, slices and image grid; for SAM-family segmenters also the case's embeddings and the checkpoint."""
    files = {
        "table": f"results/boxes/{wildcards.case}/{wildcards.annotator}.tsv",
        "manifest": f"results/slices/{wildcards.case}.manifest.json",
        "slices": f"results/slices/{wildcards.case}",
        "image": case_image(wildcards),
        "segmenter": "results/segmenter.json",
    }
    if USES_EMBEDDING:
        files["embeddings"] = f"results/embeddings/{wildcards.case}.npy"
        files["embedding_record"] = f"results/embeddings/{wildcards.case}.json"
        files["checkpoint"] = CHECKPOINT
    return files


EVALUATED = [c for c in ANNOTATED if CASES.loc[c, "label"]]  # annotated cases with expert labels


def annotator_masks(case):
    """Every annotator's mask volume of a case (in ANNOTATORS' order)."""
    return [f"results/masks/{case}/{a}.nii.gz" for a in ANNOTATORS]


def annotator_coverage(case):
    """Every annotator's coverage table of a case (in ANNOTATORS' order), written by the masks job."""
    return [f"results/masks/{case}/{a}.coverage.tsv" for a in ANNOTATORS]


def quality_inputs(wildcards):
    """Every annotator's boxes, masks and coverage on every annotated case, in QUALITY_PAIRS' order."""
    return {
        "tables": [f"results/boxes/{c}/{a}.tsv" for c, a in QUALITY_PAIRS],
        "volumes": [f"results/masks/{c}/{a}.nii.gz" for c, a in QUALITY_PAIRS],
        "coverage": [f"results/masks/{c}/{a}.coverage.tsv" for c, a in QUALITY_PAIRS],
        "manifests": [f"results/slices/{c}.manifest.json" for c in ANNOTATED],
    }


#: (case, annotator) of every annotated case and annotator: the quality job's inputs, in order.
QUALITY_PAIRS = [(c, a) for c in ANNOTATED for a in ANNOTATORS]


def fuse_inputs(wildcards):
    """The case's masks of all annotators (and the quality table when flagged ones are dropped)."""
    files = {
        "volumes": annotator_masks(wildcards.case),
        "coverage": annotator_coverage(wildcards.case),
        "manifest": f"results/slices/{wildcards.case}.manifest.json",
        "image": case_image(wildcards),
    }
    if config["quality"]["drop_flagged"]:
        files["quality"] = "results/quality/annotators.tsv"
    return files


def evaluate_inputs(wildcards):
    return {
        "label": LABEL_OF[wildcards.case],
        "volumes": annotator_masks(wildcards.case),
        "coverage": annotator_coverage(wildcards.case),
        "stacked": f"results/labels/stacked/{wildcards.case}.nii.gz",
        "crowd": f"results/labels/crowd/{wildcards.case}.nii.gz",
        "fusion": f"results/labels/fusion/{wildcards.case}.tsv",
        "manifest": f"results/slices/{wildcards.case}.manifest.json",
    }


# ---- nnU-Net ----------------------------------------------------------------------------

TRAIN = [c for c in CASES.index if CASES.loc[c, "split"] == "train"]
TEST = [c for c in CASES.index if CASES.loc[c, "split"] == "test" and CASES.loc[c, "label"]]
NNUNET_SOURCES = list(config["nnunet"]["sources"])
NNUNET_IDS = config["nnunet"]["dataset_ids"]
DATASET_OF = {s: nnunet_lib.dataset_name(NNUNET_IDS[s], s) for s in NNUNET_SOURCES}
SOURCE_OF = {name: s for s, name in DATASET_OF.items()}
NNUNET_TRAINER_FOLDER = nnunet_lib.trainer_folder(config["nnunet"]["trainer"], config["nnunet"]["configuration"])
NNUNET_GPU = 0 if config["nnunet"]["device"] == "cpu" else 1


def _nnunet_paths():
    """nnU-Net's folders: the config's, else the environment's, else inside results/."""
    paths = {}
    for key, variable in (
        ("raw", "nnUNet_raw"),
        ("preprocessed", "nnUNet_preprocessed"),
        ("results", "nnUNet_results"),
    ):
        paths[key] = config["nnunet"]["paths"][key] or os.environ.get(variable) or f"results/nnunet/{key}"
    return paths


NNUNET = _nnunet_paths()


def _check_nnunet():
    """Stop before any job when the nnU-Net stage cannot work with these cases."""
    if not NNUNET_SOURCES:
        return
    folds = config["nnunet"]["folds"]
    if len(TRAIN) < folds:
        raise SamcrowdError(
            f"config: key 'nnunet.folds': {folds} folds need at least {folds} training cases, "
            f"the case sheet has {len(TRAIN)}"
        )
    if not TEST:
        raise SamcrowdError("the nnU-Net stage needs test cases with expert labels; the sheet has none")
    if "gt" in NNUNET_SOURCES:
        unlabelled = [c for c in TRAIN if not CASES.loc[c, "label"]]
        if unlabelled:
            raise SamcrowdError(
                f"nnU-Net source gt needs expert labels of every training case; '{unlabelled[0]}' has none"
            )
    crowd = {"crowd", "stacked"} & set(NNUNET_SOURCES)
    missing = [c for c in TRAIN if c not in ANNOTATED]
    if crowd and missing:
        raise SamcrowdError(
            f"nnU-Net source {sorted(crowd)[0]} needs crowd labels of every training case; "
            f"'{missing[0]}' is not annotated (export.splits)"
        )


try:
    _check_nnunet()
except SamcrowdError as e:
    raise WorkflowError(str(e)) from None


def nnunet_dataset_inputs(wildcards):
    """Images and labels of the training cases, for the dataset's source."""
    source = SOURCE_OF[wildcards.dataset]
    if source == "gt":
        labels = [CASES.loc[c, "label"] for c in TRAIN]
    else:
        kind = "crowd" if source == "crowd" else "stacked"
        labels = [f"results/labels/{kind}/{c}.nii.gz" for c in TRAIN]
    return {"images": [CASES.loc[c, "image"] for c in TRAIN], "labels": labels}


def nnunet_fold_checkpoints(wildcards):
    dataset = DATASET_OF[wildcards.source]
    return expand(
        f"{NNUNET['results']}/{dataset}/{NNUNET_TRAINER_FOLDER}/fold_{{fold}}/checkpoint_final.pth",
        fold=range(config["nnunet"]["folds"]),
    )


# ---- statistics and figures -------------------------------------------------------------------


def _overlay_case(kind):
    chosen = config["figures"][f"overlay_{'train' if kind == 'crowd' else 'test'}_case"]
    pool = EVALUATED if kind == "crowd" else TEST
    if chosen and chosen not in pool:
        raise SamcrowdError(
            f"config: key 'figures.overlay_{'train' if kind == 'crowd' else 'test'}_case': "
            f"'{chosen}' is not one of {pool}"
        )
    return chosen or (pool[0] if pool else None)


try:
    OVERLAY_CASE = {"crowd": _overlay_case("crowd"), "models": _overlay_case("models")}
except SamcrowdError as e:
    raise WorkflowError(str(e)) from None


def overlay_layers(kind):
    """{column title: label volume} of an overlay figure."""
    case = OVERLAY_CASE[kind]
    if kind == "crowd":
        return {
            "stacked labels": f"results/labels/stacked/{case}.nii.gz",
            "crowd labels": f"results/labels/crowd/{case}.nii.gz",
        }
    return {f"nnU-Net on {source}": f"results/nnunet/predictions/{source}" for source in NNUNET_SOURCES}


def overlay_inputs(wildcards):
    case = OVERLAY_CASE[wildcards.kind]
    return {
        "image": CASES.loc[case, "image"],
        "label": CASES.loc[case, "label"],
        "layers": list(overlay_layers(wildcards.kind).values()),
    }


def stats_inputs(wildcards):
    files = {"annotation": "results/tables/annotation_dice.tsv"}
    if NNUNET_SOURCES:
        files["test_dice"] = "results/tables/test_dice.tsv"
    return files


def final_outputs():
    """What `snakemake` builds by default."""
    return [
        *expand("results/data/checked/{case}.json", case=CASES.index),
        *expand("results/slices/{case}.manifest.json", case=ANNOTATED),
        *expand("results/labels/crowd/{case}.nii.gz", case=ANNOTATED),
        "results/quality/annotators.tsv",
        "results/tables/annotation_dice.md",
        "results/tables/table1.md",
        "results/tables/provenance.html",
        *expand("results/figures/{name}.png", name=["annotation_dice", "annotators"]),
        *(["results/figures/overlay_crowd.png"] if OVERLAY_CASE["crowd"] else []),
        *(["results/figures/test_dice.png", "results/figures/overlay_models.png"] if NNUNET_SOURCES else []),
    ]

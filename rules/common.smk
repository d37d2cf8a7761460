# The study's plan (samcrowd.study) turned into the DAG: case lists, wildcards and the input functions of all stages.

import functools
import os

# envs/samcrowd.yaml installs samcrowd from the workflow's checkout: pip expands this variable there
os.environ.setdefault("SAMCROWD_SOURCE", workflow.basedir)

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from samcrowd import nnunet as nnunet_lib
from samcrowd import cluster, openlabeling, segmenters, study, submissions
from samcrowd.campaign import PLAN_KEYS
from samcrowd.provenance import settings as provenance_settings
from samcrowd.errors import SamcrowdError
from samcrowd.identifiers import IDENTIFIER
from samcrowd.evaluation import LABEL_SOURCES


wildcard_constraints:
    case=IDENTIFIER,
    annotator=IDENTIFIER,
    dataset=rf"Dataset\d{{3}}_samcrowd_({'|'.join(LABEL_SOURCES)})",
    source="|".join(LABEL_SOURCES),
    fold=r"\d+",
    round=r"\d+",
    batch=r"batch\d+",


# Aggregations that take seconds run where snakemake runs, never as cluster jobs (docs/hpc.md).
workflow.localrules(*submissions.LOCAL_RULES)

# The study's plan (samcrowd.study): validates the config and stops with one line before any job
# when the cases, annotators or settings cannot make a study.
try:
    STUDY = study.plan(config)
except SamcrowdError as e:
    raise WorkflowError(str(e)) from None

# Stages whose inputs are not there yet are left out of this run, each said in one line.
for note in STUDY.notes:
    logger.info(f"samcrowd: {note}")

CASES = STUDY.cases
KNOWN_CASES = list(CASES.index)
IMAGE_OF, LABEL_OF = dict(CASES["image"]), dict(CASES["label"])  # plain dicts: input functions run per job
ANNOTATED = STUDY.annotated
ANNOTATORS = STUDY.annotators  # the annotators whose work this run uses
CAMPAIGN = STUDY.campaign  # the annotators of the campaign plan (empty: no plan)
BATCHES = STUDY.batches  # batch -> its annotated cases: one embed job, one masks job per annotator
BATCH_OF = {case: batch for batch, cases in BATCHES.items() for case in cases}


def case_files(wildcards):
    """Image and (if there is one) label of a case."""
    row = CASES.loc[wildcards.case]
    files = {"image": row["image"]}
    if row["label"]:
        files["label"] = row["label"]
    return files


def case_image(wildcards):
    return IMAGE_OF[wildcards.case]


def manifests_of(cases):
    """The export manifests of these cases (the export rule's output pattern, filled in)."""
    return [f"results/slices/{c}.manifest.json" for c in cases]


def annotation_folder(annotator):
    """An annotator's OpenLabeling folder (samcrowd.study.annotation_folder)."""
    return study.annotation_folder(config["annotations"], annotator)


@functools.cache
def returned(annotator):
    """{case: fingerprint} of an annotator's returned files (folder source), read once per run:
    a masks job reruns when its batch's cases' files change (partial returns completed)."""
    return openlabeling.returned_files(
        annotation_folder(annotator), openlabeling.PRESETS[config["annotations"]["naming"]]
    )


def returned_by_all(wildcards):
    """Every annotator's fingerprints (folder source): the status reruns when any file comes back."""
    if config["annotations"]["source"] == "simulate":
        return {}
    return {a: returned(a) for a in ANNOTATORS}


def returned_in_batch(wildcards):
    """The fingerprints of the annotator's files on the batch's cases (and of its class list)."""
    if config["annotations"]["source"] == "simulate":
        return {}
    found = returned(wildcards.annotator)
    return {key: found[key] for key in ["", *BATCHES[wildcards.batch]] if key in found}


def annotated_labels():
    """Expert labels of the annotated cases, which the crowd simulator draws its boxes from."""
    return [LABEL_OF[c] for c in ANNOTATED]


def crowd_profile(annotator):
    """The noise profile of a simulated annotator (only its own: adding one changes no others)."""
    return config["crowd"]["profiles"][config["crowd"]["annotators"][annotator]]


def scaled(base):
    """A memory request (MB) that grows with each retry: attempt n asks n x base, so a cluster job
    killed for running out of it is resubmitted with more (profile `retries`)."""
    return lambda wildcards, attempt: int(base) * attempt


#: The longest job the cluster allows (0: no limit): no runtime request goes above it.
MAX_JOB_MINUTES = config["cluster"]["max_job_minutes"]


def minutes(base):
    """A runtime request (min): attempt n asks n x base, never above cluster.max_job_minutes."""
    return lambda wildcards, attempt: cluster.request(base, attempt, MAX_JOB_MINUTES)


def per_case(base):
    """A batch job's runtime request (min): `base` per case of its batch, grown and capped as `minutes`."""
    return lambda wildcards, attempt: cluster.request(
        int(base) * len(BATCHES[wildcards.batch]), attempt, MAX_JOB_MINUTES
    )


SEGMENTER = segmenters.SEGMENTERS[config["segmenter"]["kind"]]
USES_EMBEDDING = SEGMENTER.needs_embedding
SAM_GPU = 1 if USES_EMBEDDING and config["segmenter"]["device"] != "cpu" else 0
#: LiteMedSAM's image encoder and box decoder converted once for OpenVINO (unless the config asks for
#: plain torch): {part: [model .xml, weights .bin]}.
USES_OPENVINO = SEGMENTER.converts_for_openvino and config["segmenter"]["runtime"] != "torch"
OPENVINO_IR = {
    part: [f"results/segmenter/litemedsam_{part}.xml", f"results/segmenter/litemedsam_{part}.bin"]
    for part in ("encoder", "decoder")
}


def openvino_ir(part):
    """{'encoder_ir' or 'decoder_ir': its two files} as a job's input, when the workflow converts them."""
    return {f"{part}_ir": OPENVINO_IR[part]} if USES_OPENVINO else {}


CHECKPOINT = STUDY.checkpoint


def checkpoint_input():
    """The segmenter's checkpoint, when it has one."""
    return [CHECKPOINT] if CHECKPOINT else []


def batch_slices(batch):
    """The export manifests and slice folders of a batch's cases, in the batch's order."""
    cases = BATCHES[batch]
    return {
        "manifests": manifests_of(cases),
        "slices": [f"results/slices/{c}" for c in cases],
    }


def embed_inputs(wildcards):
    return {
        **batch_slices(wildcards.batch),
        "segmenter": "results/segmenter.json",
        "checkpoint": CHECKPOINT,
        **openvino_ir("encoder"),
    }


def masks_inputs(wildcards):
    """The annotator's folder, the batch's slices and images; for SAM-family segmenters also the
    batch's embeddings, the checkpoint and (LiteMedSAM) the converted decoder."""
    files = {
        "folder": annotation_folder(wildcards.annotator),
        **batch_slices(wildcards.batch),
        "images": [IMAGE_OF[c] for c in BATCHES[wildcards.batch]],
        "segmenter": "results/segmenter.json",
    }
    if USES_EMBEDDING:
        files["embeddings"] = f"results/embeddings/{wildcards.batch}"
        files["checkpoint"] = CHECKPOINT
        files.update(openvino_ir("decoder"))
    if CAMPAIGN:
        files["assignment"] = ASSIGNMENT
    return files


EVALUATED = STUDY.evaluated  # annotated cases with expert labels


def masks_folder(annotator, batch):
    """A masks job's output folder (the rule's output pattern, filled in)."""
    return f"results/masks/{annotator}/{batch}"


def annotator_masks(case):
    """The masks folder of every annotator's batch holding the case (in ANNOTATORS' order)."""
    return [masks_folder(a, BATCH_OF[case]) for a in ANNOTATORS]


#: (case, annotator) of every annotated case and annotator, and the masks folder holding each: the
#: quality job's inputs, in order.
QUALITY_PAIRS = [(c, a) for c in ANNOTATED for a in ANNOTATORS]
QUALITY_FOLDERS = [masks_folder(a, BATCH_OF[c]) for c, a in QUALITY_PAIRS]


def quality_inputs(wildcards):
    """Every annotator's masks folders and the annotated cases' manifests; with a campaign plan,
    the plan and the expert labels its gold slices may come from."""
    files = {
        "masks": [masks_folder(a, b) for a in ANNOTATORS for b in BATCHES],
        "manifests": manifests_of(ANNOTATED),
    }
    if CAMPAIGN:
        files.update(assignment=ASSIGNMENT, gold_labels=[LABEL_OF[c] for c in EVALUATED])
    return files


# ---- campaign ----------------------------------------------------------------------------

ASSIGNMENT = "results/campaign/assignment.tsv"


def campaign_plan_inputs(wildcards):
    """The annotated cases' manifests, their expert labels, and (for body-only choice) images."""
    files = {"manifests": manifests_of(ANNOTATED), "labels": [LABEL_OF[c] for c in EVALUATED]}
    if config["campaign"]["slices"] == "body":
        files["images"] = [IMAGE_OF[c] for c in ANNOTATED]
    return files


def campaign_status_inputs(wildcards):
    """The plan, the folders returned so far, the manifests and the expert labels (gold); for a sparse
    campaign choosing body slices, the images."""
    files = {
        "assignment": ASSIGNMENT,
        "folders": [annotation_folder(a) for a in ANNOTATORS],
        "manifests": manifests_of(ANNOTATED),
        "labels": [LABEL_OF[c] for c in EVALUATED],
    }
    if config["campaign"]["stride"] > 1 and config["campaign"]["slices"] == "body":
        files["images"] = [IMAGE_OF[c] for c in ANNOTATED]  # which slices a sparse campaign left out
    return files


def campaign_outputs():
    """The campaign's files: plan, instruction sheet, packages (and zips), status."""
    if not CAMPAIGN:
        return []
    files = [ASSIGNMENT, "results/campaign/instructions.html"]  # and the status, from the first run on
    files += expand("results/campaign/packages/{annotator}", annotator=CAMPAIGN)
    if config["campaign"]["zip"]:
        files += expand("results/campaign/packages/{annotator}.zip", annotator=CAMPAIGN)
    files.append("results/campaign/status.tsv")
    return files


#: Filling by the segmenter (fusion.completion segmenter): the fuse job loads the segmenter (on the GPU
#: of a machine that has one, else the CPU: it only decodes) and reads the batch's cached embeddings.
FILLS_BY_SEGMENTER = config["fusion"]["completion"] == "segmenter"


def fused_annotators(wildcards):
    """The annotators whose work is on a case: the simulated ones all; of folder annotators those who
    returned a file of it (the others voted on none of its slices), so that an annotator added later
    reruns the fusion and filling of the cases it touches only."""
    if config["annotations"]["source"] == "simulate":
        return ANNOTATORS
    touched = [a for a in ANNOTATORS if wildcards.case in returned(a)]
    return touched or ANNOTATORS  # nobody yet: empty labels from everyone's (empty) masks, as before


def fuse_inputs(wildcards):
    """The case's masks of its annotators (and the quality table when flagged ones are dropped); for
    filling by the segmenter its record, the case's slices, the batch's embeddings and (LiteMedSAM) the
    converted decoder."""
    batch = BATCH_OF[wildcards.case]
    files = {
        "masks": [masks_folder(a, batch) for a in fused_annotators(wildcards)],
        "manifest": manifests_of([wildcards.case])[0],
        "image": case_image(wildcards),
        "slices": f"results/slices/{wildcards.case}",
    }
    if config["quality"]["drop_flagged"]:
        files["quality"] = "results/quality/annotators.tsv"
    if FILLS_BY_SEGMENTER:
        files.update(segmenter="results/segmenter.json", checkpoint=checkpoint_input())
        if USES_EMBEDDING:
            files["embeddings"] = f"results/embeddings/{batch}"
            files.update(openvino_ir("decoder"))
    return files


def evaluate_inputs(wildcards):
    return {
        "label": LABEL_OF[wildcards.case],
        "masks": annotator_masks(wildcards.case),
        "stacked": f"results/labels/stacked/{wildcards.case}.nii.gz",
        "crowd": f"results/labels/crowd/{wildcards.case}.nii.gz",
        "fusion": f"results/labels/fusion/{wildcards.case}.tsv",
        "manifest": manifests_of([wildcards.case])[0],
    }


# ---- nnU-Net ----------------------------------------------------------------------------

TRAIN = STUDY.train
TEST = STUDY.test  # test cases with expert labels
NNUNET_SOURCES = STUDY.nnunet_sources  # empty when the stage is off in this run
NNUNET_IDS = config["nnunet"]["dataset_ids"]
DATASET_OF = {s: nnunet_lib.dataset_name(NNUNET_IDS[s], s) for s in NNUNET_SOURCES}
SOURCE_OF = {name: s for s, name in DATASET_OF.items()}
NNUNET_TRAINER_FOLDER = nnunet_lib.trainer_folder(config["nnunet"]["trainer"], config["nnunet"]["configuration"])
NNUNET_GPU = 0 if config["nnunet"]["device"] == "cpu" else 1


NNUNET = STUDY.nnunet_paths


def nnunet_dataset_inputs(wildcards):
    """Images and labels of the training cases, for the dataset's source."""
    source = SOURCE_OF[wildcards.dataset]
    if source == "gt":
        labels = [CASES.loc[c, "label"] for c in TRAIN]
    else:  # crowd, stacked, sparse: the fuse job's output of that name
        labels = [f"results/labels/{source}/{c}.nii.gz" for c in TRAIN]
    return {"images": [CASES.loc[c, "image"] for c in TRAIN], "labels": labels}


#: A fold's training in rounds that fit cluster.max_job_minutes (one round where there is no limit),
#: each round asking its share of nnunet.train_resources.runtime.
NNUNET_ROUNDS = cluster.rounds(config["nnunet"]["train_resources"]["runtime"], MAX_JOB_MINUTES)
NNUNET_ROUND_MINUTES = cluster.round_minutes(config["nnunet"]["train_resources"]["runtime"], MAX_JOB_MINUTES)
NNUNET_FOLD = f"{NNUNET['results']}/{{dataset}}/{NNUNET_TRAINER_FOLDER}/fold_{{fold}}"


def nnunet_round_inputs(wildcards, round_number):
    """The dataset's splits and, after round 1, the previous round's checkpoint."""
    files = {"splits": f"{NNUNET['preprocessed']}/{wildcards.dataset}/splits_final.json"}
    if round_number > 1:
        folder = NNUNET_FOLD.format(dataset=wildcards.dataset, fold=wildcards.fold)
        files["start"] = str(nnunet_lib.round_checkpoint(folder, round_number - 1))
    return files


#: The setting behind each rule's runtime request, named when a request is above its partition's limit.
RUNTIME_KEYS = {
    "nnunet_train": "config: key 'nnunet.train_resources.runtime'",
    "nnunet_train_round": "config: key 'nnunet.train_resources.runtime'",
}


def refuse_requests_over_partition_limits():
    """Before the first submission to SLURM: no job asks for more time than its partition allows (sinfo);
    otherwise stop with one line naming the setting to change and the partition's limit."""
    plugin = workflow.executor_plugin
    if plugin is None or plugin.common_settings.local_exec:
        return
    partitions = cluster.partition_limits()
    if partitions is None:  # no SLURM answering here: nothing to compare with
        return
    requests = [
        cluster.Request(
            job.rule.name,
            int(job.resources.get("runtime", 0) or 0),
            job.resources.get("slurm_partition") or None,
            RUNTIME_KEYS.get(job.rule.name, f"set-resources {job.rule.name}:runtime"),
            cluster.warning_seconds(job.resources.get("slurm_extra")),
        )
        for job in workflow.dag.needrun_jobs()
        if not job.is_local
    ]
    line = cluster.over_limit(requests, partitions, MAX_JOB_MINUTES)
    if line:
        raise WorkflowError(f"samcrowd: refused before submitting any job: {line}")


def nnunet_fold_checkpoints(wildcards):
    """The final checkpoint of each of a source's folds (the nnunet_train rule's output, filled in)."""
    return expand(
        f"{NNUNET_FOLD}/checkpoint_final.pth",
        dataset=DATASET_OF[wildcards.source],
        fold=range(config["nnunet"]["folds"]),
    )


# ---- statistics and figures -------------------------------------------------------------------


OVERLAY_CASE = STUDY.overlay_cases


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
    """What `snakemake` builds by default: the stages whose inputs are there (STUDY.notes says
    which are off and why)."""
    files = [
        *expand("results/data/checked/{case}.json", case=CASES.index),
        *manifests_of(ANNOTATED),
        *campaign_outputs(),
    ]
    if not ANNOTATORS:
        return files
    return [
        *files,
        *expand("results/labels/crowd/{case}.nii.gz", case=ANNOTATED),
        "results/quality/annotators.tsv",
        "results/tables/annotation_dice.md",
        "results/tables/table1.md",
        "results/tables/provenance.html",
        *expand("results/figures/{name}.png", name=["annotation_dice", "annotators"]),
        *(["results/figures/overlay_crowd.png"] if OVERLAY_CASE["crowd"] else []),
        *(["results/figures/test_dice.png", "results/figures/overlay_models.png"] if NNUNET_SOURCES else []),
    ]

# samcrowd: crowdsourced boxes + Segment Anything -> 3D CT labels, evaluated against experts.
# The stages live in rules/*.smk; rules/common.smk turns the study's plan (samcrowd.study) into inputs.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/export.smk"
include: "rules/campaign.smk"
include: "rules/annotations.smk"
include: "rules/sam.smk"
include: "rules/fusion.smk"
include: "rules/evaluate.smk"
include: "rules/nnunet.smk"
include: "rules/stats.smk"


onstart:
    refuse_requests_over_partition_limits()


rule all:
    default_target: True
    input:
        final_outputs(),

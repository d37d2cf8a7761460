# campaign: plan who sees which exported slice, hand out packages, and follow the returns
# (campaign.plan; docs/campaign.md).


rule campaign_plan:
    """Assign every chosen slice to k annotators and gold slices to all: assignment.tsv."""
    input:
        unpack(campaign_plan_inputs),
    output:
        report(
            ASSIGNMENT,
            caption="../report/campaign_assignment.rst",
            category="1. Campaign",
        ),
    log:
        "results/logs/campaign/plan.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=minutes(10),
    params:
        cases=ANNOTATED,
        labelled=EVALUATED,
        annotators=CAMPAIGN,
        organ_values=config["organs"],
        settings={key: config["campaign"][key] for key in PLAN_KEYS},
    script:
        "../scripts/campaign_plan.py"


rule campaign_instructions:
    """The annotators' one-page instruction sheet, with an example box per organ on a slice of the
    study (never a gold slice)."""
    input:
        assignment=ASSIGNMENT,
        manifests=manifests_of(ANNOTATED),
        slices=expand("results/slices/{case}", case=ANNOTATED),
        labels=[LABEL_OF[c] for c in EVALUATED],
    output:
        report(
            "results/campaign/instructions.html",
            caption="../report/campaign_instructions.rst",
            category="1. Campaign",
        ),
    log:
        "results/logs/campaign/instructions.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=minutes(10),
    params:
        cases=ANNOTATED,
        labelled=EVALUATED,
        organ_values=config["organs"],
        stride=config["campaign"]["stride"],
    script:
        "../scripts/campaign_instructions.py"


rule campaign_package:
    """One annotator's hand-out, laid out for OpenLabeling: input/ PNGs, class_list.txt, instructions."""
    input:
        assignment=ASSIGNMENT,
        instructions="results/campaign/instructions.html",
        slices=expand("results/slices/{case}", case=ANNOTATED),
    output:
        **({"zip": "results/campaign/packages/{annotator}.zip"} if config["campaign"]["zip"] else {}),
        folder=directory("results/campaign/packages/{annotator}"),
    log:
        "results/logs/campaign/package/{annotator}.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=minutes(10),
    params:
        cases=ANNOTATED,
        organs=list(config["organs"]),
    script:
        "../scripts/campaign_package.py"


rule campaign_status:
    """Per annotator: assigned, done, boxes, refused files, slices below k votes, gold agreement."""
    input:
        unpack(campaign_status_inputs),
    output:
        table=report(
            "results/campaign/status.tsv",
            caption="../report/campaign_status.rst",
            category="1. Campaign",
        ),
        coverage=report(
            "results/campaign/coverage.tsv",
            caption="../report/campaign_coverage.rst",
            category="1. Campaign",
        ),
    log:
        "results/logs/campaign/status.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=minutes(10),
    params:
        annotators=ANNOTATORS,
        cases=ANNOTATED,
        labelled=EVALUATED,
        organ_values=config["organs"],
        annotations=config["annotations"],
        settings={key: config["campaign"][key] for key in ("k", "unassigned", "slices", "stride")},
        known_cases=lambda wildcards: KNOWN_CASES,
        returned=returned_by_all,  # changes when any annotator returns more files
    script:
        "../scripts/campaign_status.py"

# evaluate: crowd labels against expert labels (slice and volume Dice), Table 1 (left).


rule evaluate_case:
    """Slice and volume Dice of each label source of one case: every annotator, stacked and crowd."""
    input:
        unpack(evaluate_inputs),
    output:
        slices="results/evaluation/{case}.slice_dice.tsv",
        volumes="results/evaluation/{case}.volume_dice.tsv",
        exclusions="results/evaluation/{case}.exclusions.tsv",
    log:
        "results/logs/evaluate_case/{case}.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=minutes(10),
    params:
        organ_values=config["organs"],
        annotators=ANNOTATORS,
        completion=config["fusion"]["completion"],
        other_labels=config["data"]["other_labels"],
    script:
        "../scripts/evaluate_case.py"


rule evaluate:
    """Collect the per-case Dice tables; Table 1 (left) as TSV and Markdown."""
    input:
        slices=expand("results/evaluation/{case}.slice_dice.tsv", case=EVALUATED),
        volumes=expand("results/evaluation/{case}.volume_dice.tsv", case=EVALUATED),
        exclusions=expand("results/evaluation/{case}.exclusions.tsv", case=EVALUATED),
    output:
        slices=report(
            "results/tables/annotation_slice_dice.tsv",
            caption="../report/annotation_dice.rst",
            category="2. Crowd labels",
        ),
        volumes=report(
            "results/tables/annotation_volume_dice.tsv",
            caption="../report/annotation_dice.rst",
            category="2. Crowd labels",
        ),
        exclusions=report(
            "results/tables/exclusions.tsv",
            caption="../report/exclusions.rst",
            category="2. Crowd labels",
        ),
        table="results/tables/annotation_dice.tsv",
        markdown=report(
            "results/tables/annotation_dice.md",
            caption="../report/annotation_table.rst",
            category="2. Crowd labels",
        ),
    log:
        "results/logs/evaluate.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=minutes(10),
    params:
        organs=list(config["organs"]),
        no_label=[c for c in ANNOTATED if c not in EVALUATED],
    script:
        "../scripts/evaluate.py"

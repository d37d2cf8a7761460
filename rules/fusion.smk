# fusion: annotators' masks -> one crowd label volume per case; annotator quality without an expert.


rule quality:
    """Rank annotators by agreement with each other (box IoU, leave-one-out Dice, STAPLE)."""
    input:
        unpack(quality_inputs),
    output:
        report(
            "results/quality/annotators.tsv",
            caption="../report/quality.rst",
            category="2. Crowd labels",
        ),
    log:
        "results/logs/quality.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=minutes(60),
    params:
        organs=list(config["organs"]),
        pairs=QUALITY_PAIRS,
        folders=QUALITY_FOLDERS,
        cases=ANNOTATED,
        method=config["fusion"]["method"],
        absent=config["fusion"]["absent"],
        threshold=config["quality"]["threshold"],
        gold_cases=EVALUATED,
        organ_values=config["organs"],
    script:
        "../scripts/quality.py"


rule fuse:
    """Fuse the annotators of one case (stacked), complete it in 3D (crowd: by the segmenter, on the cached
    embeddings, or by distance interpolation), and mark the slices nobody voted on (sparse)."""
    input:
        unpack(fuse_inputs),
    output:
        stacked="results/labels/stacked/{case}.nii.gz",
        crowd="results/labels/crowd/{case}.nii.gz",
        sparse="results/labels/sparse/{case}.nii.gz",
        table="results/labels/fusion/{case}.tsv",
    log:
        "results/logs/fuse/{case}.log",
    benchmark:
        "results/benchmarks/fuse/{case}.tsv"
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(8000 if FILLS_BY_SEGMENTER and USES_EMBEDDING else 4000),
        runtime=minutes(10),
    params:
        organs=list(config["organs"]),
        annotators=fused_annotators,
        method=config["fusion"]["method"],
        absent=config["fusion"]["absent"],
        completion=config["fusion"]["completion"],
        fill=config["fusion"]["fill"],
    script:
        "../scripts/fuse.py"

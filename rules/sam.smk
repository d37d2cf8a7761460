# SAM stage: record and check the segmenter once, encode every exported slice once (SAM, MedSAM,
# LiteMedSAM), decode each annotator's boxes against the cached embeddings. Both run per batch of
# cases (batch.cases), so the model loads once per job.


rule segmenter:
    """Check the checkpoint against its published hash and record what makes the masks."""
    input:
        checkpoint_input(),
    output:
        "results/segmenter.json",
    log:
        "results/logs/segmenter.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=minutes(10),
    params:
        settings=config["segmenter"],
    script:
        "../scripts/segmenter.py"


if USES_OPENVINO:

    rule litemedsam_openvino:
        """Convert LiteMedSAM's checked image encoder and box decoder for OpenVINO once (the CPU fast path)."""
        input:
            segmenter="results/segmenter.json",
            checkpoint=CHECKPOINT,
        output:
            encoder=OPENVINO_IR["encoder"],
            decoder=OPENVINO_IR["decoder"],
        log:
            "results/logs/litemedsam_openvino.log",
        conda:
            "../envs/samcrowd.yaml"
        threads: 1
        resources:
            mem_mb=scaled(4000),
            runtime=minutes(15),
        script:
            "../scripts/litemedsam_openvino.py"


if USES_EMBEDDING:

    rule embed:
        """Run the image encoder once per exported slice of a batch's cases; cache float16 features."""
        input:
            unpack(embed_inputs),
        output:
            directory("results/embeddings/{batch}"),
        log:
            "results/logs/embed/{batch}.log",
        benchmark:
            "results/benchmarks/embed/{batch}.tsv"
        conda:
            "../envs/samcrowd.yaml"
        threads: 2
        resources:
            gpu=SAM_GPU,
            mem_mb=scaled(16000),
            runtime=per_case(30),
        params:
            cases=lambda wildcards: BATCHES[wildcards.batch],
        script:
            "../scripts/embed.py"


rule masks:
    """Read one annotator's OpenLabeling files on a batch's cases and decode the boxes into label volumes."""
    input:
        unpack(masks_inputs),
    output:
        directory("results/masks/{annotator}/{batch}"),
    log:
        "results/logs/masks/{annotator}/{batch}.log",
    benchmark:
        "results/benchmarks/masks/{annotator}/{batch}.tsv"
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        gpu=SAM_GPU,
        mem_mb=scaled(8000 if USES_EMBEDDING else 2000),
        runtime=per_case(10),
    params:
        cases=lambda wildcards: BATCHES[wildcards.batch],
        organs=list(config["organs"]),
        naming=config["annotations"]["naming"],
        classes=config["annotations"]["classes"],
        known_cases=lambda wildcards: KNOWN_CASES,  # a callable: Snakemake does not scan it for wildcards per job
        unassigned=config["campaign"]["unassigned"],
        returned=returned_in_batch,  # changes when the annotator returns more files of the batch's cases
    script:
        "../scripts/masks.py"

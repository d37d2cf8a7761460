# SAM stage: record and check the segmenter once, encode every exported slice once per case
# (SAM, MedSAM, LiteMedSAM), decode each annotator's boxes against the cached embeddings.


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
        runtime=scaled(10),
    params:
        settings=config["segmenter"],
    script:
        "../scripts/segmenter.py"


if USES_ENCODER_IR:

    rule litemedsam_encoder:
        """Convert LiteMedSAM's checked image encoder for OpenVINO once (the CPU fast path)."""
        input:
            segmenter="results/segmenter.json",
            checkpoint=CHECKPOINT,
        output:
            xml=ENCODER_IR["xml"],
            bin=ENCODER_IR["bin"],
        log:
            "results/logs/litemedsam_encoder.log",
        conda:
            "../envs/samcrowd.yaml"
        threads: 1
        resources:
            mem_mb=scaled(4000),
            runtime=scaled(15),
        script:
            "../scripts/litemedsam_encoder.py"


if USES_EMBEDDING:

    rule embed:
        """Run the image encoder once per exported slice; cache float16 features."""
        input:
            unpack(embed_inputs),
        output:
            array="results/embeddings/{case}.npy",
            record="results/embeddings/{case}.json",
        log:
            "results/logs/embed/{case}.log",
        benchmark:
            "results/benchmarks/embed/{case}.tsv"
        conda:
            "../envs/samcrowd.yaml"
        threads: 2
        resources:
            gpu=SAM_GPU,
            mem_mb=scaled(16000),
            runtime=scaled(120),
        script:
            "../scripts/embed.py"


rule masks:
    """Decode one annotator's boxes on one case into a label volume and a coverage table."""
    input:
        unpack(masks_inputs),
    output:
        volume="results/masks/{case}/{annotator}.nii.gz",
        coverage="results/masks/{case}/{annotator}.coverage.tsv",
    log:
        "results/logs/masks/{case}/{annotator}.log",
    benchmark:
        "results/benchmarks/masks/{case}/{annotator}.tsv"
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        gpu=SAM_GPU,
        mem_mb=scaled(8000 if USES_EMBEDDING else 2000),
        runtime=scaled(60),
    params:
        organs=list(config["organs"]),
    script:
        "../scripts/masks.py"

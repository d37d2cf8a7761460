# annotations: the crowd's OpenLabeling folders (simulated or real) -> validated box tables.

if config["annotations"]["source"] == "simulate":

    rule simulate_crowd:
        """Write one simulated annotator's OpenLabeling folder from the expert labels."""
        input:
            labels=annotated_labels(),
            manifests=expand("results/slices/{case}.manifest.json", case=ANNOTATED),
        output:
            directory("results/annotations/{annotator}"),
        log:
            "results/logs/simulate_crowd/{annotator}.log",
        conda:
            "../envs/samcrowd.yaml"
        threads: 1
        resources:
            mem_mb=scaled(2000),
            runtime=scaled(10),
        params:
            profile=lambda wildcards: crowd_profile(wildcards.annotator),
            organ_values=config["organs"],
            seed=config["crowd"]["seed"],
            formats=config["crowd"]["formats"],
        script:
            "../scripts/simulate_crowd.py"


rule boxes:
    """Parse and check one annotator's files for one case into a box table."""
    input:
        folder=ANNOTATION_FOLDER,
        manifest="results/slices/{case}.manifest.json",
    output:
        "results/boxes/{case}/{annotator}.tsv",
    log:
        "results/logs/boxes/{case}/{annotator}.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=scaled(10),
    params:
        naming=config["annotations"]["naming"],
        organs=list(config["organs"]),
        classes=config["annotations"]["classes"],
        known_cases=lambda wildcards: KNOWN_CASES,  # a callable: Snakemake does not scan it for wildcards per job
    script:
        "../scripts/boxes.py"

# stats: Table 1 of the study from this run, figures, and the provenance table of the report.


rule stats:
    """Table 1: crowd-label Dice, each source's test Dice, Wilcoxon signed-rank p-values."""
    input:
        unpack(stats_inputs),
    output:
        table=report(
            "results/tables/table1.tsv",
            caption="../report/table1.rst",
            category="4. Table 1",
        ),
        markdown="results/tables/table1.md",
        html=report(
            "results/tables/table1.html",
            caption="../report/table1.rst",
            category="4. Table 1",
        ),
        comparison=report(
            "results/tables/test_comparison.tsv",
            caption="../report/test_comparison.rst",
            category="3. nnU-Net",
        ),
    log:
        "results/logs/stats.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=minutes(10),
    params:
        organs=list(config["organs"]),
        reference=config["stats"]["reference"],
        holm=config["stats"]["holm"],
    script:
        "../scripts/stats.py"


rule provenance:
    """What made these numbers: segmenter and checkpoint hash, nnU-Net settings, software versions."""
    input:
        segmenter="results/segmenter.json",
    output:
        table="results/tables/provenance.tsv",
        html=report(
            "results/tables/provenance.html",
            caption="../report/provenance.rst",
            category="5. Provenance",
        ),
    log:
        "results/logs/provenance.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=minutes(5),
    params:
        settings=provenance_settings(config),
    script:
        "../scripts/provenance.py"


rule figure_test_dice:
    input:
        dice="results/tables/test_dice.tsv",
        comparison="results/tables/test_comparison.tsv",
    output:
        png=report(
            "results/figures/test_dice.png",
            caption="../report/figure_test_dice.rst",
            category="3. nnU-Net",
        ),
        svg="results/figures/test_dice.svg",
    log:
        "results/logs/figures/test_dice.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=minutes(5),
    params:
        organs=list(config["organs"]),
        reference=config["stats"]["reference"],
        dpi=config["figures"]["dpi"],
    script:
        "../scripts/figure_test_dice.py"


rule figure_annotation_dice:
    input:
        slices="results/tables/annotation_slice_dice.tsv",
        volumes="results/tables/annotation_volume_dice.tsv",
    output:
        png=report(
            "results/figures/annotation_dice.png",
            caption="../report/figure_annotation_dice.rst",
            category="2. Crowd labels",
        ),
        svg="results/figures/annotation_dice.svg",
    log:
        "results/logs/figures/annotation_dice.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=minutes(5),
    params:
        organs=list(config["organs"]),
        dpi=config["figures"]["dpi"],
    script:
        "../scripts/figure_annotation_dice.py"


rule figure_annotators:
    input:
        "results/quality/annotators.tsv",
    output:
        png=report(
            "results/figures/annotators.png",
            caption="../report/figure_annotators.rst",
            category="2. Crowd labels",
        ),
        svg="results/figures/annotators.svg",
    log:
        "results/logs/figures/annotators.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000),
        runtime=minutes(5),
    params:
        threshold=config["quality"]["threshold"],
        dpi=config["figures"]["dpi"],
    script:
        "../scripts/figure_annotators.py"


rule figure_overlay:
    """Axial/coronal/sagittal views of one case: crowd labels (train) or predictions (test)."""
    input:
        unpack(overlay_inputs),
    output:
        png=report(
            "results/figures/overlay_{kind}.png",
            caption="../report/figure_overlay.rst",
            category="4. Table 1",
        ),
        svg="results/figures/overlay_{kind}.svg",
    log:
        "results/logs/figures/overlay_{kind}.log",
    wildcard_constraints:
        kind="crowd|models",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=minutes(5),
    params:
        case=lambda wildcards: OVERLAY_CASE[wildcards.kind],
        names=lambda wildcards: list(overlay_layers(wildcards.kind)),
        organ_values=config["organs"],
        other_labels=config["data"]["other_labels"],
        level=config["export"]["window_level"],
        width=config["export"]["window_width"],
        dpi=config["figures"]["dpi"],
    script:
        "../scripts/figure_overlay.py"

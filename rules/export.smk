# export: windowed axial PNGs for annotators, one folder and one manifest per case.


rule export_slices:
    input:
        image=case_image,
        checked="results/data/checked/{case}.json",
    output:
        slices=directory("results/slices/{case}"),
        manifest="results/slices/{case}.manifest.json",
    log:
        "results/logs/export_slices/{case}.log",
    benchmark:
        "results/benchmarks/export_slices/{case}.tsv"
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000),
        runtime=minutes(10),
    params:
        level=config["export"]["window_level"],
        width=config["export"]["window_width"],
        every=config["export"]["every"],
        body_only=config["export"]["body_only"],
    script:
        "../scripts/export_slices.py"

# data: the cases. Demo: generate the synthetic abdomen. Real data: the case sheet.

if config["data"]["source"] == "phantom":

    rule phantom:
        output:
            sheet="results/data/cases.tsv",
            images=expand("results/data/images/{case}.nii.gz", case=CASES.index),
            labels=expand("results/data/labels/{case}.nii.gz", case=CASES.index),
        log:
            "results/logs/phantom.log",
        benchmark:
            "results/benchmarks/phantom.tsv"
        conda:
            "../envs/samcrowd.yaml"
        threads: 1
        resources:
            mem_mb=scaled(2000),
            runtime=minutes(30),
        params:
            settings=config["phantom"],
        script:
            "../scripts/phantom.py"


rule check_case:
    """Refuse a case whose image or label is unreadable, absurd or on different grids."""
    input:
        unpack(case_files),
    output:
        "results/data/checked/{case}.json",
    log:
        "results/logs/check_case/{case}.log",
    conda:
        "../envs/samcrowd.yaml"
    threads: 1
    resources:
        mem_mb=scaled(500),
        runtime=minutes(5),
    script:
        "../scripts/check_case.py"

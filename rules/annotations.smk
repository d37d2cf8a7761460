# annotations: the crowd's OpenLabeling folders (simulated); real folders are read by the masks jobs.

if config["annotations"]["source"] == "simulate":

    rule simulate_crowd:
        """Write one simulated annotator's OpenLabeling folder from the expert labels (with a campaign
        plan: exactly its assigned slices)."""
        input:
            **({"assignment": ASSIGNMENT} if CAMPAIGN else {}),
            labels=annotated_labels(),
            manifests=manifests_of(ANNOTATED),
        output:
            directory("results/annotations/{annotator}"),
        log:
            "results/logs/simulate_crowd/{annotator}.log",
        conda:
            "../envs/samcrowd.yaml"
        threads: 1
        resources:
            mem_mb=scaled(2000),
            runtime=minutes(10),
        params:
            profile=lambda wildcards: crowd_profile(wildcards.annotator),
            organ_values=config["organs"],
            seed=config["crowd"]["seed"],
            formats=config["crowd"]["formats"],
        script:
            "../scripts/simulate_crowd.py"

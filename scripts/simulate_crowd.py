# Snakemake entry point: write one simulated annotator's OpenLabeling folder.
from samcrowd import crowd, jobs

p = snakemake.params
jobs.run(
    snakemake,
    lambda: crowd.simulate_annotator(
        snakemake.wildcards.annotator,
        crowd.Profile.from_config(p.profile),
        list(zip(snakemake.input.labels, snakemake.input.manifests)),
        p.organ_values,
        snakemake.output[0],
        seed=p.seed,
        formats=tuple(p.formats),
    ),
)

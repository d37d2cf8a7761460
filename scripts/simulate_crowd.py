# Snakemake entry point: write one simulated annotator's OpenLabeling folder.
from samcrowd import crowd, jobs

p = snakemake.params
jobs.run(
    snakemake,
    lambda: crowd.simulate_annotator(
        name=snakemake.wildcards.annotator,
        profile=crowd.Profile.from_config(p.profile),
        cases=list(zip(snakemake.input.labels, snakemake.input.manifests)),
        organ_values=p.organ_values,
        out_dir=snakemake.output[0],
        seed=p.seed,
        formats=tuple(p.formats),
    ),
)

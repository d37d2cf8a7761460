# Snakemake entry point: write one simulated annotator's OpenLabeling folder.
from samcrowd import campaign, crowd, jobs

i, p = snakemake.input, snakemake.params
annotator = snakemake.wildcards.annotator
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
        assigned=campaign.assigned_slices(campaign.read_assignment(i.assignment), annotator)
        if "assignment" in i.keys()
        else None,
    ),
)

# Snakemake entry point: one label source's training cases as an nnU-Net raw dataset.
from samcrowd import jobs, nnunet

i, p = snakemake.input, snakemake.params
jobs.run(
    snakemake,
    lambda: nnunet.write_dataset(
        snakemake.output[0],
        p.paths,
        p.dataset_id,
        p.source,
        list(zip(p.cases, i.images, i.labels)),
        p.organ_values,
        p.other_labels,
    ),
)

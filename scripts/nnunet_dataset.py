# Snakemake entry point: one label source's training cases as an nnU-Net raw dataset.
from samcrowd import jobs, nnunet

i, p = snakemake.input, snakemake.params
jobs.run(
    snakemake,
    lambda: nnunet.write_dataset(
        out_dir=snakemake.output[0],
        paths=p.paths,
        dataset_id=p.dataset_id,
        source=p.source,
        cases=list(zip(p.cases, i.images, i.labels)),
        organ_values=p.organ_values,
        other_labels=p.other_labels,
    ),
)

# Snakemake entry point: plan and preprocess a dataset, write the fold split.
from samcrowd import jobs, nnunet

p = snakemake.params
jobs.run(
    snakemake,
    lambda: nnunet.preprocess(
        snakemake.input[0], p.paths, p.dataset_id, p.configuration, p.folds, p.seed, snakemake.threads
    ),  # writes snakemake.output[0], the dataset's splits_final.json
)

# Snakemake entry point: plan and preprocess a dataset, write the fold split.
from samcrowd import jobs, nnunet

p = snakemake.params
jobs.run(
    snakemake,
    lambda: nnunet.preprocess(
        raw_dataset=snakemake.input[0],
        paths=p.paths,
        dataset_id=p.dataset_id,
        configuration=p.configuration,
        n_folds=p.folds,
        seed=p.seed,
        processes=snakemake.threads,
    ),  # writes snakemake.output[0], the dataset's splits_final.json
)

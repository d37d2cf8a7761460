# Snakemake entry point: predict the test split with a source's fold ensemble.
from samcrowd import jobs, nnunet

p = snakemake.params
jobs.run(
    snakemake,
    lambda: nnunet.predict(
        snakemake.input.images,
        list(zip(p.cases, snakemake.input.originals)),
        snakemake.output[0],
        p.paths,
        p.dataset_id,
        p.configuration,
        p.trainer,
        p.folds,
        p.device,
        snakemake.threads,
    ),
)

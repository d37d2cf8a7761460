# Snakemake entry point: predict the test split with a source's fold ensemble.
from samcrowd import jobs, nnunet

p = snakemake.params
jobs.run(
    snakemake,
    lambda: nnunet.predict(
        images=snakemake.input.images,
        cases=list(zip(p.cases, snakemake.input.originals)),
        out_dir=snakemake.output[0],
        paths=p.paths,
        dataset_id=p.dataset_id,
        configuration=p.configuration,
        trainer=p.trainer,
        n_folds=p.folds,
        device=p.device,
        processes=snakemake.threads,
    ),
)

# Snakemake entry point: train one fold (resumes an interrupted training).
from samcrowd import jobs, nnunet

p = snakemake.params
jobs.run(
    snakemake,
    lambda: nnunet.train(
        p.paths,
        p.dataset_id,
        p.source,
        p.configuration,
        int(snakemake.wildcards.fold),
        p.trainer,
        p.device,
        snakemake.threads,
        deterministic=p.deterministic,
        seed=p.seed,
    ),
)

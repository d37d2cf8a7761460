# Snakemake entry point: train one fold (resumes an interrupted training).
from samcrowd import jobs, nnunet

p = snakemake.params
jobs.run(
    snakemake,
    lambda: nnunet.train(
        paths=p.paths,
        dataset_id=p.dataset_id,
        source=p.source,
        configuration=p.configuration,
        fold=int(snakemake.wildcards.fold),
        trainer=p.trainer,
        device=p.device,
        processes=snakemake.threads,
        deterministic=p.deterministic,
        seed=p.seed,
    ),
)

# Snakemake entry point: train one round of a fold (the whole fold where it trains in one round).
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
        round_number=p.round_number,
        n_rounds=p.rounds,
    ),
)

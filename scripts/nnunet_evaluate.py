# Snakemake entry point: test-set Dice of every source's model.
from samcrowd import io, jobs, nnunet

i, p = snakemake.input, snakemake.params
jobs.run(
    snakemake,
    lambda: io.write_tsv(
        snakemake.output[0],
        nnunet.test_dice(
            predictions=dict(zip(p.sources, i.predictions)),
            references=list(zip(p.cases, i.labels)),
            organ_values=p.organ_values,
            other_labels=p.other_labels,
        ),
    ),
)

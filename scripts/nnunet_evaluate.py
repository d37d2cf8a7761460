# Snakemake entry point: test-set Dice of every source's model.
from samcrowd import io, jobs, nnunet

i, p = snakemake.input, snakemake.params
jobs.run(
    snakemake,
    lambda: io.write_tsv(
        snakemake.output[0],
        nnunet.test_dice(
            dict(zip(p.sources, i.predictions)), list(zip(p.cases, i.labels)), p.organ_values, p.other_labels
        ),
    ),
)

# Snakemake entry point: Table 1 and the test-Dice comparison.
from samcrowd import jobs, stats

i, o, p = snakemake.input, snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: stats.write_table1(
        i.annotation, i.get("test_dice"), p.organs, p.reference, p.holm, o.table, o.markdown, o.comparison, o.html
    ),
)

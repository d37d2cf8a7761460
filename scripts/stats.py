# Snakemake entry point: Table 1 and the test-Dice comparison.
from samcrowd import stats, workflow

i, o, p = snakemake.input, snakemake.output, snakemake.params
workflow.run(
    snakemake,
    lambda: stats.write_table1(i.annotation, i.get("test_dice"), p.organs, p.reference, p.holm, o.table, o.markdown,
                               o.comparison, o.html),
)

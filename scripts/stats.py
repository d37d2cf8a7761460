# Snakemake entry point: Table 1 and the test-Dice comparison.
from samcrowd import jobs, stats

i, o, p = snakemake.input, snakemake.output, snakemake.params
jobs.run(
    snakemake,
    lambda: stats.write_table1(
        annotation_path=i.annotation,
        test_dice_path=i.get("test_dice"),
        organs=p.organs,
        reference=p.reference,
        correct=p.holm,
        out_table=o.table,
        out_markdown=o.markdown,
        out_comparison=o.comparison,
        out_html=o.html,
    ),
)

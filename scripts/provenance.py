# Snakemake entry point: the provenance table of the report.
from samcrowd import provenance, workflow

o = snakemake.output
workflow.run(snakemake, lambda: provenance.write_provenance(snakemake.input.segmenter, snakemake.params.settings,
                                                            o.table, o.html))

# Snakemake entry point: the provenance table of the report.
from samcrowd import jobs, provenance

o = snakemake.output
jobs.run(
    snakemake,
    lambda: provenance.write_provenance(snakemake.input.segmenter, snakemake.params.settings, o.table, o.html),
)

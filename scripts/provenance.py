# Snakemake entry point: the provenance table of the report.
from samcrowd import jobs, provenance

o = snakemake.output
jobs.run(
    snakemake,
    lambda: provenance.write_provenance(
        segmenter_json=snakemake.input.segmenter, config=snakemake.params.settings, out=o.table, out_html=o.html
    ),
)

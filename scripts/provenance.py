# Snakemake entry point: the provenance table of the report.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from samcrowd import provenance, workflow

o = snakemake.output
workflow.run(snakemake, lambda: provenance.write_provenance(snakemake.input.segmenter, snakemake.params.settings,
                                                            o.table, o.html))

# Snakemake entry point: encode every exported slice of a case once.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from samcrowd import masks, workflow

i, o = snakemake.input, snakemake.output
workflow.run(
    snakemake,
    lambda: masks.embed_case(masks.segmenter_from_record(i.segmenter), i.manifest, i.slices, o.array, o.record),
)

# Snakemake entry point: check a case's image and label headers.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))
from samcrowd import cases, io, workflow


def main():
    summary = cases.check_pair(snakemake.input.image, snakemake.input.get("label"))
    io.write_json(snakemake.output[0], {"case": snakemake.wildcards.case, **summary})


workflow.run(snakemake, main)

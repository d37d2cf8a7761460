# Snakemake entry point: check a case's image and label headers.
from samcrowd import cases, io, jobs


def main():
    summary = cases.check_pair(snakemake.input.image, snakemake.input.get("label"))
    io.write_json(snakemake.output[0], {"case": snakemake.wildcards.case, **summary})


jobs.run(snakemake, main)

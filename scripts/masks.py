# Snakemake entry point: decode one annotator's boxes on one case.
from samcrowd import jobs, masks


def main():
    i, o = snakemake.input, snakemake.output
    segmenter = masks.segmenter_from_record(i.segmenter)
    embeddings = masks.Embeddings(i.embeddings, i.embedding_record, segmenter) if "embeddings" in i.keys() else None
    masks.mask_case(
        segmenter,
        snakemake.wildcards.annotator,
        i.table,
        i.manifest,
        i.slices,
        i.image,
        snakemake.params.organs,
        o.volume,
        o.coverage,
        embeddings,
        threads=snakemake.threads,
    )


jobs.run(snakemake, main)

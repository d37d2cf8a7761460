# Snakemake entry point: decode one annotator's boxes on one case.
from samcrowd import jobs, masks


def main():
    i, o = snakemake.input, snakemake.output
    segmenter = masks.segmenter_from_record(path=i.segmenter)
    embeddings = masks.Embeddings(i.embeddings, i.embedding_record, segmenter) if "embeddings" in i.keys() else None
    masks.mask_case(
        segmenter=segmenter,
        annotator=snakemake.wildcards.annotator,
        table_path=i.table,
        manifest_path=i.manifest,
        slices_dir=i.slices,
        image_path=i.image,
        organs=snakemake.params.organs,
        out_volume=o.volume,
        out_coverage=o.coverage,
        embeddings=embeddings,
        threads=snakemake.threads,
    )


jobs.run(snakemake, main)

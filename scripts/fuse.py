# Snakemake entry point: fuse one case's annotators and complete the labels in 3D.
from samcrowd import filling, jobs, quality
from samcrowd.masks import case_masks


def main():
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    case = snakemake.wildcards.case
    masks = case_masks(annotators=p.annotators, folders=list(i.masks), case=case)
    if "quality" in i.keys():
        masks = {a: masks[a] for a in quality.kept_annotators(quality_table=i.quality, annotators=p.annotators)}
    filling.complete_case(
        case=case,
        masks=masks,
        manifest_path=i.manifest,
        image_path=i.image,
        slices_dir=i.slices,
        organs=p.organs,
        out_stacked=o.stacked,
        out_crowd=o.crowd,
        out_sparse=o.sparse,
        out_table=o.table,
        method=p.method,
        absent=p.absent,
        completion=p.completion,
        fill_settings=p.fill,
        segmenter_record=i.segmenter if "segmenter" in i.keys() else None,
        embeddings=i.embeddings if "embeddings" in i.keys() else None,
        decoder_ir=tuple(i.decoder_ir) if "decoder_ir" in i.keys() else None,
        threads=snakemake.threads,
    )


jobs.run(snakemake, main)

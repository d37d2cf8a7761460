# Snakemake entry point: generate the synthetic abdomen study.
from samcrowd import phantom, workflow

settings = phantom.PhantomSettings.from_config(snakemake.params.settings)
workflow.run(snakemake, lambda: phantom.write_study(settings, snakemake.output.sheet))

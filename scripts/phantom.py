# Snakemake entry point: generate the synthetic abdomen study.
from samcrowd import jobs, phantom

settings = phantom.PhantomSettings.from_config(snakemake.params.settings)
jobs.run(snakemake, lambda: phantom.write_study(settings=settings, sheet_path=snakemake.output.sheet))

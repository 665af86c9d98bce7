"""Write one dataset's HDF5 file (MNIST-1D generated offline, others downloaded, verified, or a
dataset of your own read from its arrays or image folders)."""


from lossatlas import io
from lossatlas.data import prepare_dataset

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True) as log:
    prepare_dataset(smk.wildcards.dataset, smk.output[0], download_dir=smk.params.download_dir,
                    mirror=smk.params.mirror, source=smk.params.source)

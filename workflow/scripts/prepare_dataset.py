"""Write one dataset's HDF5 file (MNIST-1D generated offline, others downloaded, verified)."""

import logging

from lossatlas.data import prepare_dataset

smk = snakemake  # noqa: F821
with open(smk.log[0], "w") as log:
    logging.basicConfig(stream=log, level=logging.INFO, force=True)
    prepare_dataset(smk.wildcards.dataset, smk.output[0], download_dir=smk.params.download_dir,
                    mirror=smk.params.mirror)

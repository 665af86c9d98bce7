"""A 2D surface file (``surface_2d`` or ``trajectory_pca``) as a VTK structured grid for ParaView
(``io.write_surface_vts``), its height the metric named in the output file (``train_loss``,
``train_acc``, ``test_loss`` or ``test_acc``); on request only, not part of ``all``."""

import logging

from lossatlas import io

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True):
    arrays, attrs = io.read_h5(smk.input[0])
    if attrs["status"] != "ok":
        raise ValueError(f"{smk.input[0]} holds no surface ({attrs['status']})")
    io.write_surface_vts(smk.output[0], arrays, smk.wildcards.metric)
    logging.info("wrote %s (height %s)", smk.output[0], smk.wildcards.metric)

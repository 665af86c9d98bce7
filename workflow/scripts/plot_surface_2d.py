"""Render the 2D surfaces of the chosen solutions side by side, with their roughness index."""

import logging

import pandas as pd

from lossatlas import io
from lossatlas.plots import save_figure
from lossatlas.plots.landscape import plot_surfaces_2d

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0]) as log:
    surfaces = {}
    for run, surface_path, roughness_path in zip(smk.params.runs, smk.input.surfaces,
                                                 smk.input.roughness):
        arrays, attrs = io.read_h5(surface_path)
        if attrs["status"] != "ok":
            logging.warning("%s", attrs["status"])
            surfaces[f"{run} ({attrs['status']})"] = {}
            continue
        roughness = pd.read_csv(roughness_path)["roughness_index"].iloc[0]
        surfaces[f"{run}, roughness index {roughness:.3f}"] = arrays
    save_figure(plot_surfaces_2d(surfaces), smk.output.pdf, smk.output.png)

"""Render the 2D surfaces of the chosen solutions side by side, with their roughness index, and
the basin-width claim row; solutions skipped upstream (a diverged run) are named in a footnote."""

import logging

import matplotlib.pyplot as plt
import pandas as pd

from lossatlas import io
from lossatlas.claims import write_claims
from lossatlas.figure_claims import surface_width_claim
from lossatlas.plots import save_figure
from lossatlas.plots.landscape import plot_surfaces_2d, roughness_label

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0]):
    surfaces, skipped, solved = {}, [], {}
    for run, surface_path, roughness_path in zip(smk.params.runs, smk.input.surfaces,
                                                 smk.input.roughness):
        arrays, attrs = io.read_h5(surface_path)
        if attrs["status"] != "ok":
            logging.warning("%s", attrs["status"])
            skipped.append(attrs["status"])
            continue
        roughness = pd.read_csv(roughness_path)
        surfaces[f"{run}, {roughness_label(roughness)}"] = arrays
        solved[run] = arrays
    claims = pd.DataFrame([surface_width_claim(solved, smk.params.small_batch,
                                               smk.params.large_batch, smk.params.width_delta,
                                               "random filter-normalized")])
    logging.info("\n%s", claims.to_string())
    write_claims(claims, smk.output.claims)
    if surfaces:
        figure = plot_surfaces_2d(surfaces)
    else:
        figure = plt.figure(figsize=(6, 2))
    if skipped:
        figure.text(0.5, 0.0, "; ".join(skipped), ha="center", va="top", color="firebrick")
    save_figure(figure, smk.output.pdf, smk.output.png)

"""Render the 2D surfaces of the chosen solutions along both direction kinds (random
filter-normalized, top-2 Hessian eigenvectors), with their roughness index, and the basin-width
claim rows; solutions skipped upstream (a diverged run) are named in a footnote."""

import logging

import matplotlib.pyplot as plt
import pandas as pd

from lossatlas import io
from lossatlas.claims import read_regime, write_claims
from lossatlas.figure_claims import surface_width_claim
from lossatlas.plots import save_figure
from lossatlas.plots.landscape import plot_surfaces_2d, roughness_label

KIND_LABELS = {"random": "random filter-normalized", "hessian": "top-2 Hessian eigenvector"}

smk = snakemake  # noqa: F821
runs, kinds = smk.params.runs, smk.params.kinds
paths = iter(smk.input.surfaces)
with io.job_log(smk.log[0], exit_when_done=True):
    surfaces, skipped, claims = {}, set(), []
    for kind in kinds:
        solved = {}
        for run, roughness_path in zip(runs, smk.input.roughness):
            arrays, attrs = io.read_h5(next(paths))
            if attrs["status"] != "ok":
                logging.warning("%s", attrs["status"])
                skipped.add(attrs["status"])
                continue
            label = f"{run}, {KIND_LABELS[kind]}"
            if kind == "random":
                label += f"\n{roughness_label(io.read_csv(roughness_path))}"
            surfaces[label] = arrays
            solved[run] = arrays
        claims.append(surface_width_claim(solved, smk.params.small_batch, smk.params.large_batch,
                                          smk.params.width_delta, KIND_LABELS[kind]))
    claims = pd.DataFrame(claims)
    logging.info("\n%s", claims.to_string())
    write_claims(claims, smk.output.claims,
                 regime=read_regime(smk.input.regime_solutions, smk.params.regime))
    if surfaces:
        figure = plot_surfaces_2d(surfaces)
    else:
        figure = plt.figure(figsize=(6, 2))
    if skipped:
        figure.text(0.5, 0.0, "; ".join(sorted(skipped)), ha="center", va="top",
                    color="firebrick")
    save_figure(figure, smk.output.pdf, smk.output.png)

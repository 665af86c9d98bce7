"""Render the SGD walk: loss on the segments between consecutive iterates, with the claim row."""

import logging

import matplotlib.pyplot as plt
import pandas as pd

from lossatlas import io
from lossatlas.claims import read_regime, write_claims
from lossatlas.figure_claims import sgd_walk_claim
from lossatlas.plots import save_figure
from lossatlas.plots.landscape import plot_sgd_walk

smk = snakemake  # noqa: F821
with io.job_log(smk.log[0], exit_when_done=True) as log:
    walk = io.read_csv(smk.input.walk)
    write_claims(pd.DataFrame([sgd_walk_claim(walk, smk.params.run,
                                              smk.params.min_interior_fraction)]),
                 smk.output.claims,
                 regime=read_regime(smk.input.regime_solutions, smk.params.regime))
    if (walk["status"] != "ok").any():
        logging.warning("%s", walk["status"].iloc[0])
        figure = plt.figure(figsize=(5, 4))
        figure.text(0.5, 0.5, f"SGD walk: {walk['status'].iloc[0]}", ha="center")
    else:
        interior = walk.groupby("segment")["segment_min_interior"].first().mean()
        figure = plot_sgd_walk(walk, float(interior))
    save_figure(figure, smk.output.pdf, smk.output.png)

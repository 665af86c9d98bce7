# lossatlas: dataset -> training sweep -> measurements -> figures.
# `snakemake --cores all` builds every figure; `snakemake --cores all <figure>` builds one.


# The default config applies only when none is given: a --configfile replaces it instead of being
# merged into it key by key (which would mix the default runs into another config's sweep).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/lb_sb.smk"
include: "workflow/rules/landscape.smk"
include: "workflow/rules/curvature.smk"
include: "workflow/rules/subspace.smk"
include: "workflow/rules/goldilocks.smk"
include: "workflow/rules/wedge.smk"
include: "workflow/rules/structures.smk"
include: "workflow/rules/sweeps.smk"
# after every file that adds runs: it plans the vmapped training batches over all of them
include: "workflow/rules/train.smk"


report: "workflow/report/workflow.rst"


FIGURES = [
    "lb_sb_interpolation",
    "surface_2d",
    "trajectory_pca",
    "mli",
    "sgd_walk",
    "hessian_spectrum",
    "curvature_along_training",
    "subspace_training",
    "goldilocks",
    "long_short_directions",
    "wedge_cuts",
    "mode_connectivity",
    "low_loss_subspace",
    "ensembles",
    "hyperparams_curvature",
    "taxonomy_metrics",
    "taxonomy_phases",
]


include: "workflow/rules/claims.smk"


wildcard_constraints:
    run=r"[A-Za-z0-9_.]+-s\d+",
    structure=r"[A-Za-z0-9_.-]+",
    sweep=r"[A-Za-z0-9]+",
    row=r"[A-Za-z0-9_.]+",


rule all:
    default_target: True
    input:
        expand(
            f"{RESULTS}/figures/{{figure}}.{{ext}}", figure=FIGURES, ext=["pdf", "png"]
        ),
        rules.claims.output,
        rules.plot_claims_by_scale.output,

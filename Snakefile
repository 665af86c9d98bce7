# lossatlas: dataset -> training sweep -> measurements -> figures.
# `snakemake --cores all` builds every figure; `snakemake --cores all <figure>` builds one.


# The default config applies only when none is given: a --configfile replaces it instead of being
# merged into it key by key (which would mix the default runs into another config's sweep).
# The second scale's DAG (below) is this Snakefile with a config of its own (scale_folder set).
if not workflow.overwrite_configfiles and not config.get("scale_folder"):

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


# A second scale (config second_scale): the figures it names, rerun with its model settings by
# this Snakefile as a module, under {RESULTS}/scales/NAME/; the claims table gathers their rows.
if SECOND_SCALE:
    _unknown = set(SECOND_SCALE["figures"]) - set(FIGURES)
    if _unknown:
        raise ValueError(
            f"config second_scale.figures: unknown figures {', '.join(sorted(_unknown))}; "
            f"figures are {', '.join(FIGURES)}"
        )

    module second_scale:
        snakefile:
            "Snakefile"
        config:
            second_scale_config()

    use rule * from second_scale exclude all, prepare_dataset as second_scale_*

"""Cost plan of a config before launch: every job of its DAG (as `snakemake --forceall` would run
it), its compute in FLOPs (lossatlas.plan), hours per rule, the largest job per rule in minutes
against the Slurm profile's runtime, a warning per job over it, and the claims the config can
only leave inconclusive. Exit status 1 when a job is over its runtime.

    .venv/bin/python workflow/plan.py --configfile config/paper.yaml
    .venv/bin/python workflow/plan.py --configfile config/smoke.yaml --calibrate

Throughput: --flops-per-second if given; else --calibrate measures training steps of the config's
model on this machine's CPU; else a GPU config (device auto or cuda) assumes ASSUMED_GPU_FLOPS
and a CPU config is calibrated.
"""

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

import torch
import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings,
    DAGSettings,
    OutputSettings,
    ResourceSettings,
    StorageSettings,
)

from lossatlas.data import dataset_info
from lossatlas.functional import has_batch_norm
from lossatlas.plan import (
    JobCost,
    ModelCost,
    Sizes,
    format_plan,
    forward_flops,
    job_flops,
    measure_throughput,
    over_limit,
    rule_family,
    undecidable_claims,
)
from lossatlas.runs import build_run_model

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "workflow/profiles/slurm/config.yaml"
# An assumption, not a measurement: the sustained FLOP/s of ResNet-20-sized convnets (batches of
# 128 CIFAR images, data on the device) on one data-center GPU, about 6 s per CIFAR-10 epoch.
ASSUMED_GPU_FLOPS = 2e12


def dag_jobs(configfile: Path) -> tuple[dict, list]:
    """The validated config and every job of its DAG with all outputs missing (forceall)."""
    with contextlib.redirect_stderr(io.StringIO()), SnakemakeApi(OutputSettings()) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[configfile.resolve()]),
            storage_settings=StorageSettings(),
            snakefile=ROOT / "Snakefile",
            workdir=ROOT,
        )
        workflow_api.dag(DAGSettings(forceall=True))
        workflow = workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        return workflow.config, list(workflow.dag.jobs)


def runtime_limits(profile: Path) -> tuple[dict, float]:
    """Runtime in minutes per rule in the profile's set-resources, and its default."""
    settings = yaml.safe_load(profile.read_text())
    limits = {rule: resources["runtime"]
              for rule, resources in settings.get("set-resources", {}).items()
              if "runtime" in resources}
    return limits, settings["default-resources"]["runtime"]


def job_name(job) -> str:
    wildcards = dict(job.wildcards)
    if wildcards:
        return " ".join(f"{key}={value}" for key, value in wildcards.items())
    family = rule_family(job.rule.name)
    return job.rule.name[len(family) + 1:] if family != job.rule.name else job.rule.name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", type=Path, default=ROOT / "config/config.yaml")
    parser.add_argument("--profile", type=Path, default=PROFILE,
                        help="profile whose runtimes are the limits (default: the Slurm profile)")
    parser.add_argument("--flops-per-second", type=float,
                        help="throughput to assume (e.g. a GPU's sustained FLOP/s)")
    parser.add_argument("--calibrate", action="store_true",
                        help="measure the throughput of the config's model on this CPU")
    args = parser.parse_args(argv)

    config, jobs = dag_jobs(args.configfile)
    info = dataset_info(config["dataset"]["name"], config["dataset"].get("path"))
    model_name = config["model"]["name"]
    costs = {}

    def cost_of(knobs):
        key = json.dumps(knobs, sort_keys=True)
        if key not in costs:
            model = build_run_model(model_name, knobs, info)
            costs[key] = ModelCost(forward_flops(model, info.input_shape),
                                   sum(p.numel() for p in model.parameters() if p.requires_grad),
                                   has_batch_norm(model))
        return costs[key]

    limits, default_limit = runtime_limits(args.profile)
    sizes = Sizes(info.n_train, info.n_test)
    planned = []
    for job in jobs:
        rule = job.rule.name
        limit = limits.get(rule, job.resources.get("runtime") or default_limit)
        flops = job_flops(rule_family(rule), dict(job.params.items()), sizes, cost_of)
        planned.append(JobCost(rule, job_name(job), flops, limit))

    if args.flops_per_second is not None:
        rate, source = args.flops_per_second, "given"
    elif args.calibrate or config["device"] == "cpu":
        torch.set_num_threads(1)
        model_knobs = {k: config["model"][k] for k in ("width", "depth", "norm", "factory",
                                                        "kwargs") if k in config["model"]}
        model = build_run_model(model_name, model_knobs, info)
        rate = measure_throughput(model, info.input_shape)
        source = f"measured: training steps of {model_name} on one thread of this CPU"
    else:
        rate = ASSUMED_GPU_FLOPS
        source = "assumed for one GPU, not measured (--flops-per-second to change)"
    print(f"Cost plan of {args.configfile} (runtime limits: {args.profile})\n")
    print(format_plan(planned, rate, source))
    for reason in undecidable_claims({job.rule.name: dict(job.params.items()) for job in jobs}):
        print(f"UNDECIDABLE CLAIM: {reason}")
    return 1 if over_limit(planned, rate) else 0


if __name__ == "__main__":
    sys.exit(main())

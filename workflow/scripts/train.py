"""Train the runs of one job in their parameterizations, batch after batch, each batch as one
vmapped computation (`train_members`; a run alone is a batch of one); writes each run's init,
trajectory, final checkpoints, trainable tensors, metrics and status in its run directory as soon
as its batch has finished."""

import logging

import torch

from lossatlas import io
from lossatlas.runs import prepare_member, write_run_files
from lossatlas.train import resolve_device, train_members

smk = snakemake  # noqa: F821
torch.set_num_threads(smk.threads)
batches, runs, run_dirs = smk.params.batches, smk.params.runs, smk.params.run_dirs
# a run that starts from another run's final checkpoint trains alone
inits = dict(zip(runs, smk.input.init))
with io.job_log(smk.log[0], exit_when_done=True) as log:
    device = resolve_device(smk.params.device)
    for number, (batch, names) in enumerate(batches.items(), start=1):
        members = []
        for run in names:
            logging.info("run %s settings %s", run, runs[run])
            members.append(prepare_member(smk.input.data, smk.params.model, runs[run],
                                          inits.get(run), device))
            if inits.get(run):
                logging.info("run %s initialized from %s", run, inits[run])
            logging.info("run %s parameterization %s", run,
                         members[-1].parameterization.describe())
        logging.info("batch %s (%d of %d in this job): training %d run(s) as one vmapped batch",
                     batch, number, len(batches), len(members))
        results = train_members(members, resume_path=smk.params.resume[batch], device=device,
                                progress_file=log)
        for run, result in zip(names, results):
            write_run_files(result, run_dirs[run])
            logging.info("run %s finished with status %s after %d steps%s", run, result.status,
                         result.steps, f" ({result.divergence})" if result.divergence else "")
        io.remove_file(smk.params.resume[batch])

"""The launchers' steps as tested Python commands, so ``launch/grpo_local.sh``, ``slurm/grpo.sbatch`` and
``slurm/task.sh`` stay a few readable lines per step with no decision of their own.

* ``reasoner launch-env``: plan the run for the launcher (layout, memory, checkpoints) and print what the script
  needs as shell assignments: the prefetch arguments, the pins file, the server and training commands;
* ``reasoner node-env``: this node's caches (``REASONER_CACHE_DIR`` with ``{node}`` expanded), inside each task;
* ``reasoner serve-generation``: the generation server on its node (local model path, GPUs, TRL's command);
* ``reasoner wait-health``: wait for the server's health endpoint, or say why it never answered;
* ``reasoner train-node``: accelerate on one training node, turning SLURM's signals into a checkpoint;
* ``reasoner stop-process``: signal a process, wait for it, kill it if asked;
* ``reasoner should-requeue``: requeue only a run that got the preemption warning and saved a checkpoint.
"""

"""Training: one GRPO run on every rank, from recipe to checkpoints.

``run`` is what ``python -m reasoner.train`` (and so ``accelerate launch``) executes; beside it live the parts
of a run: ``callbacks``, ``tracking``, ``precision``, ``vllm_support``, ``ranks`` (agreement between ranks),
``checkpoints``, ``resume``, ``preemption`` and ``preempted`` (signals and the requeue marker), ``aftereval``
(evaluation at the end) and ``report`` (plots of a run from its logs).
"""

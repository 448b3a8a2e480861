"""Where generation runs and which ranks train: a pure function of the environment.

GRPO alternates between generating completions (vLLM, memory- and latency-bound) and training on them
(accelerate, compute-bound). How the machines are split between the two decides throughput and whether the run
fits at all, so it is computed in one place, printed before anything starts (``reasoner plan``), and unit-tested
without a cluster. The launchers read the result through ``reasoner launch-env``.

The steps, each a small pure function: ``environment`` (nodes, addresses, GPUs, ports, overrides),
``placement`` (tensor-parallel size, placement, the GPU split, training processes, ranks), ``server`` (the
generation server's command and how training reaches it), composed by ``layout.plan``; ``output`` prints a plan.
"""

from reasoner.topology.environment import gpus_from_env
from reasoner.topology.layout import Plan, plan, plan_for_recipe
from reasoner.topology.output import format_env, format_plan, plan_to_env
from reasoner.topology.placement import model_params_from_id, tensor_parallel_for

__all__ = ["Plan", "format_env", "format_plan", "gpus_from_env", "model_params_from_id", "plan", "plan_for_recipe",
           "plan_to_env", "tensor_parallel_for"]

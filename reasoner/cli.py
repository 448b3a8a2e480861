"""The ``reasoner`` command: one entry point, one sub-command per job, heavy imports only when used.

Every sub-command runs through ``run_guarded`` so that a ``UserError`` anywhere becomes one line on stderr
and exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

from reasoner.errors import UserError

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module:function taking argv, one-line help)
    "train": ("reasoner.train.run:main", "run GRPO on a recipe (what accelerate launch runs on every rank)"),
    "demo": ("reasoner.demo:main", "the whole loop on this machine: embedded hub, CPU training, push, summary"),
    "prefetch": ("reasoner.hubclient.prefetch:main", "preflight the hub, pin commits, download them into the node-local cache"),
    "plan": ("reasoner.plan.cli:main", "print where generation and training run, the memory estimate and the checkpoints"),
    "eval": ("reasoner.eval.cli:eval_main", "accuracy of a model on a recipe's task (strict and lenient), optionally against a baseline"),
    "report": ("reasoner.train.report:report_main", "plots and a summary of a finished or running run"),
    "push": ("reasoner.publish.command:main", "upload a folder (a model or checkpoint) to the hub with retries and verification"),
    "hub": ("reasoner_hub.cli:main", "the HF-compatible hub server (reasoner-hub, installed beside reasoner): 'reasoner hub serve ...'"),
    "recipes": ("reasoner.cli:list_recipes", "list the packaged recipes"),
    # The launchers' steps (launch/grpo_local.sh, slurm/grpo.sbatch, slurm/task.sh); see reasoner.launch.
    "launch-env": ("reasoner.launch.launchenv:main", "(launchers) plan a launch and print its commands as shell variables"),
    "node-env": ("reasoner.launch.commands:node_env_main", "(launchers) print this node's cache variables"),
    "serve-generation": ("reasoner.launch.commands:serve_generation_main", "(launchers) start the generation server here"),
    "wait-health": ("reasoner.launch.commands:wait_health_main", "(launchers) wait for a server's health endpoint"),
    "train-node": ("reasoner.launch.commands:train_node_main", "(launchers) accelerate on this training node"),
    "stop-process": ("reasoner.launch.commands:stop_process_main", "(launchers) signal a process, wait, kill it if asked"),
    "signal-grace": ("reasoner.launch.commands:signal_grace_main", "(launchers) the ranks' grace after SLURM's warning"),
    "should-requeue": ("reasoner.launch.commands:should_requeue_main", "(launchers) whether a stopped job requeues"),
}


def run_guarded(fn: Callable[[], int]) -> int:
    """Run a command; user errors become one line and exit code 2; a reader that stops early (``| head``) ends
    the command quietly, as it ends ``cat``."""
    try:
        code = fn()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 141  # what a shell reports for a command that SIGPIPE stopped
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def list_recipes(argv: Sequence[str]) -> int:
    from reasoner.recipe.files import packaged_recipes

    for name in packaged_recipes():
        print(name)
    return 0


def usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: reasoner COMMAND [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_target, help_) in COMMANDS.items()]
    lines += ["", "Every command reads HF_ENDPOINT and HF_TOKEN like the rest of the Hugging Face stack.",
              "'reasoner COMMAND --help' shows a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] in ("-V", "--version"):
        from reasoner import __version__

        print(__version__)
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"error: unknown command '{command}'; run 'reasoner --help' for the list", file=sys.stderr)
        return 2
    module_name, func_name = COMMANDS[command][0].split(":")
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != "reasoner_hub":
            raise
        print("error: the hub server is its own distribution, reasoner-hub, and is not installed here; "
              "install it with 'pip install ./hub' from the reasoner checkout", file=sys.stderr)
        return 2
    return run_guarded(lambda: getattr(module, func_name)(rest))


if __name__ == "__main__":
    sys.exit(main())

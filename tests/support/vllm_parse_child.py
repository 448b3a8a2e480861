"""Parse ``vllm serve`` argument lists (JSON on stdin) with vLLM's own CLI parser; print the results as JSON.

Run by tests/support/vllm_parser.py in an environment that can import vLLM's Python parts. The parser is made as
``vllm.entrypoints.cli.main`` makes it: a FlexibleArgumentParser with the serve subcommand's arguments; then
vLLM's own check of parsed serve arguments runs, and the engine arguments are built from them.
"""

import contextlib
import io
import json
import sys

from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.entrypoints.cli.serve import ServeSubcommand
from vllm.entrypoints.launchers.cli_args import validate_parsed_serve_args
from vllm.utils.argparse_utils import FlexibleArgumentParser

FIELDS = ("model_tag", "host", "port", "tensor_parallel_size", "data_parallel_size", "gpu_memory_utilization",
          "dtype", "max_model_len", "revision", "logprobs_mode", "max_logprobs", "kv_cache_dtype", "model_impl")


def parse(args):
    parser = FlexibleArgumentParser(prog="vllm")
    subparsers = parser.add_subparsers(dest="subparser")
    ServeSubcommand().subparser_init(subparsers)
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            ns = parser.parse_args(["serve", *args])
    except SystemExit:
        return {"error": errors.getvalue().strip().splitlines()[-1] if errors.getvalue().strip() else "refused"}
    if ns.model_tag is not None:  # as `vllm serve` does before it builds the engine
        ns.model = ns.model_tag
    validate_parsed_serve_args(ns)
    engine = AsyncEngineArgs.from_cli_args(ns)
    values = {name: getattr(ns, name, None) for name in FIELDS}
    transfer = getattr(ns, "weight_transfer_config", None)
    values["weight_transfer_backend"] = getattr(transfer, "backend", None)
    values["engine_model"] = engine.model
    return {k: (str(v) if not isinstance(v, (int, float, str, bool, type(None))) else v) for k, v in values.items()}


print(json.dumps([parse(args) for args in json.load(sys.stdin)]))

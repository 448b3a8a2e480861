"""The lead SLURM's warning signal gives a job, against what its plan needs (reasoner.launch.signallead)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from reasoner.launch.launchenv import check_signal_lead
from reasoner.launch.signallead import (LEAD_ENV, grace_after_warning, header_lead, parse_end_time, requested_lead,
                                        short_lead_warning)
from reasoner.plan import run
from reasoner.recipe.files import packaged_recipes
from reasoner.recipe.load import load_recipe

ROOT = Path(__file__).resolve().parents[2]
SBATCH = ROOT / "slurm" / "grpo.sbatch"


def stated(name: str) -> run.RunPlan:
    recipe = load_recipe(name)
    resources = recipe.resources
    gpus = resources.gpus_per_node if recipe.generation.backend == "vllm" else 0
    return run.plan_run(recipe, env={}, nodes=resources.nodes, gpus_per_node=gpus)


@pytest.mark.parametrize("name", [n for n in packaged_recipes() if n.startswith("qwen2.5-")])
def test_the_job_scripts_default_lead_covers_every_packaged_recipe(name):
    """The header's lead is at least what each recipe states and what its plan needs at its documented size."""
    lead = header_lead(SBATCH)
    assert lead is not None and lead >= load_recipe(name).resources.signal_lead_s
    needed = stated(name).checkpoints.lead_needed_s
    assert lead >= needed, f"{name} needs ~{needed:.0f} s after the warning; the header gives {lead}"


def test_the_lead_asked_for_comes_from_the_variable_else_the_header(tmp_path):
    script = tmp_path / "job.sbatch"
    script.write_text("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --signal=B:USR1@90\necho\n")
    assert requested_lead({}, script) == (90, "job.sbatch's #SBATCH --signal line")
    assert requested_lead({LEAD_ENV: "600"}, script) == (600, LEAD_ENV)
    script.write_text("#!/bin/bash\n#SBATCH --signal=USR1@45\n")
    assert header_lead(script) == 45
    script.write_text("#!/bin/bash\n# no signal asked for\n")
    assert header_lead(script) is None and header_lead(tmp_path / "missing") is None


def test_a_short_lead_is_one_line_naming_the_sbatch_option():
    warning = short_lead_warning(120, "grpo.sbatch's #SBATCH --signal line", 301.5)
    assert warning is not None and "\n" not in warning
    assert "120 s" in warning and "~302 s" in warning and "sbatch --signal=B:USR1@360" in warning
    assert short_lead_warning(360, "x", 301.5) is None and short_lead_warning(None, "x", 300) is None


def test_the_start_check_warns_for_a_big_recipe_with_a_short_lead(tmp_path, capsys):
    plan = stated("qwen2.5-7b-gsm8k")
    script = tmp_path / "slurm_script"
    script.write_text("#!/bin/bash\n#SBATCH --signal=B:USR1@60\n")
    needed = check_signal_lead(plan, {"REASONER_BATCH_SCRIPT": str(script)})
    assert int(needed) >= plan.checkpoints.lead_needed_s > 60
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the signal lead is 60 s (slurm_script's #SBATCH --signal line)" in err
    check_signal_lead(plan, {"REASONER_BATCH_SCRIPT": str(SBATCH)})
    assert capsys.readouterr().err == ""


def test_the_grace_is_the_time_left_less_the_scripts_exit():
    text = "JobId=7 JobName=x\n   StartTime=2026-12-07T10:00:00 EndTime=2026-12-07T10:05:00 Deadline=N/A\n"
    end = parse_end_time(text)
    assert end == datetime(2026, 12, 7, 10, 5)
    assert grace_after_warning((end - datetime(2026, 12, 7, 10, 3)).total_seconds(), fallback=340) == 100
    assert grace_after_warning(None, fallback=340) == 340
    assert grace_after_warning(5, fallback=340) == 1
    assert parse_end_time("EndTime=Unknown") is None

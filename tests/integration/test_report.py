"""Training reports: plots and a summary from a run's metrics.jsonl or trainer_state.json, for hand-written
logs (finished, running, resumed) and for the logs of a real three-step GRPO run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reasoner.errors import UserError
from reasoner.train.report import load_run_logs, report_main, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LINE_RGB = np.array([31, 119, 180]) / 255  # matplotlib's tab:blue, the colour of every plotted series
REAL_RUN_PLOTS = {
    "reward_xml_count.png", "reward_soft_format.png", "reward_strict_format.png", "reward_integer.png",
    "reward_correctness.png", "reward.png", "kl.png", "completion_length.png", "learning_rate.png",
}


def assert_real_plot(path: Path) -> None:
    """A non-empty, valid PNG with more than one colour, and pixels of the series' line colour."""
    import matplotlib.image

    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == PNG_MAGIC, path
    pixels = matplotlib.image.imread(path)[..., :3]
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 1, f"{path} is a single colour"
    line = np.all(np.abs(pixels - LINE_RGB) < 0.02, axis=-1).sum()
    assert line > 50, f"{path} shows no plotted line"


def entry(step: int, *, reward: float, kl: float | None = 0.01, lr: float | None = 1e-5, **extra) -> dict:
    """One log dict with the keys TRL 1.16's GRPOTrainer logs, as metrics.jsonl stores it."""
    record = {
        "step": step,
        "time_s": 10.0 * step,
        "loss": 0.01,
        "grad_norm": 0.5,
        "completions/mean_length": 100.0 - step,
        "rewards/correctness/mean": reward / 2,
        "rewards/correctness/std": 0.1,
        "rewards/strict_format/mean": reward / 4,
        "rewards/strict_format/std": 0.05,
        "reward": reward,
        "reward_std": 0.2,
        "epoch": step / 100,
    }
    if kl is not None:
        record["kl"] = kl
    if lr is not None:
        record["learning_rate"] = lr
    record.update(extra)
    return record


def write_jsonl(path: Path, records: list[dict], tail: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")


def test_finished_run_from_metrics_jsonl(tmp_path):
    run = tmp_path / "run"
    records = [entry(s, reward=0.25 * s, kl=0.001 * s, lr=1e-5 * (7 - s)) for s in range(1, 7)]
    records.append({"step": 6, "time_s": 75.0, "train_runtime": 123.4, "train_loss": 0.01, "epoch": 0.06})
    write_jsonl(run / "metrics.jsonl", records)

    paths = write_report(run, tmp_path / "out")
    assert set(p.name for p in paths.plots.values()) == {
        "reward_correctness.png", "reward_strict_format.png", "reward.png", "kl.png", "completion_length.png",
        "learning_rate.png",
    }
    for path in paths.plots.values():
        assert path.parent == tmp_path / "out"
        assert_real_plot(path)
    summary = paths.summary.read_text(encoding="utf-8")
    assert "Last step: 6 (7 log entries)" in summary
    assert "Wall time: 123.4 s" in summary
    # first / last / min / max of each series
    assert "| `reward` | 6 | 0.25 | 1.5 | 0.25 | 1.5 |" in summary
    assert "| `rewards/correctness/mean` | 6 | 0.125 | 0.75 | 0.125 | 0.75 |" in summary
    assert "| `completions/mean_length` | 6 | 99 | 94 | 94 | 99 |" in summary
    assert "| `learning_rate` | 6 | 6e-05 | 1e-05 | 1e-05 | 6e-05 |" in summary
    assert "Skipped" not in summary


def test_running_run_with_missing_and_sparse_series(tmp_path):
    run = tmp_path / "run"
    records = [entry(1, reward=0.1, kl=None, lr=2e-5)] + [entry(s, reward=0.1 * s, kl=None, lr=None) for s in (2, 3)]
    write_jsonl(run / "metrics.jsonl", records, tail='{"step": 4, "time_s": 40.0, "rew')  # being written now

    paths = write_report(run)
    assert paths.output_dir == run / "report"
    assert "kl" not in paths.plots and "learning_rate" not in paths.plots
    assert paths.skipped["kl"] == "not in the logs"
    assert paths.skipped["learning_rate"].startswith("only one value")
    summary = paths.summary.read_text(encoding="utf-8")
    assert "- `kl`: not in the logs" in summary
    assert "- `learning_rate`: only one value (2e-05)" in summary
    assert "Last step: 3 (3 log entries)" in summary
    assert "30.0 s (0h 00m 30.0s) so far" in summary
    for path in paths.plots.values():
        assert_real_plot(path)


def test_a_resumed_run_keeps_the_latest_value_of_a_repeated_step(tmp_path):
    run = tmp_path / "run"
    first = [entry(s, reward=1.0) for s in (1, 2, 3)]
    resumed = [entry(s, reward=2.0) for s in (3, 4)]  # restarted from checkpoint-2: step 3 is logged again
    write_jsonl(run / "metrics.jsonl", first + resumed)
    summary = write_report(run).summary.read_text(encoding="utf-8")
    assert "| `reward` | 4 | 1 | 2 | 1 | 2 |" in summary


def _state(step: int, rewards: list[float], final: bool = False) -> dict:
    history = [entry(i + 1, reward=r) for i, r in enumerate(rewards)]
    if final:
        history.append({"step": step, "train_runtime": 9.5, "epoch": 1.0})
    return {"global_step": step, "log_history": history}


def test_newest_trainer_state_is_used_without_metrics_jsonl(tmp_path):
    run = tmp_path / "run"
    for step, rewards in ((2, [0.1, 0.2]), (10, [0.1, 0.2, 0.3]), (5, [0.1])):
        (run / f"checkpoint-{step}").mkdir(parents=True)
        (run / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps(_state(step, rewards)))
    logs = load_run_logs(run)
    assert logs.source == run / "checkpoint-10" / "trainer_state.json"  # by step, not by name
    assert len(logs.entries) == 3

    (run / "trainer_state.json").write_text(json.dumps(_state(10, [0.1, 0.2, 0.3], final=True)))
    assert load_run_logs(run).source == run / "trainer_state.json"  # the final state, same step, wins
    summary = write_report(run).summary.read_text(encoding="utf-8")
    assert "Wall time: 9.5 s" in summary and "| `reward` | 3 | 0.1 | 0.3 | 0.1 | 0.3 |" in summary


def test_empty_and_missing_folders_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="holds no training logs"):
        write_report(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        write_report(tmp_path / "nope")
    write_jsonl(tmp_path / "metrics.jsonl", [])
    with pytest.raises(UserError, match="no log entries yet"):
        write_report(tmp_path)


def test_cli_errors_exit_2_with_one_line(tmp_path, capsys):
    from reasoner.cli import main

    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "holds no training logs" in err and "\n" not in err


# --------------------------------------------------------------------------------------------------
# A real run


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "run"
    result = subprocess.run(
        [sys.executable, "-m", "reasoner.train", "--recipe", "tiny-cpu", "--max_steps", "3", "--output_dir", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_report_of_a_real_run_from_metrics_jsonl(real_run, tmp_path, capsys):
    assert (real_run / "metrics.jsonl").is_file()
    assert report_main([str(real_run), "--output", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    assert "Source: `" in printed and "metrics.jsonl" in printed
    plots = {p.name for p in (tmp_path / "report").glob("*.png")}
    assert plots == REAL_RUN_PLOTS
    for name in plots:
        assert_real_plot(tmp_path / "report" / name)


def test_report_of_a_real_run_from_its_checkpoint_trainer_state(real_run, tmp_path):
    states = sorted(real_run.glob("checkpoint-*/trainer_state.json"))
    assert states, "the run saved no checkpoint with a trainer_state.json"
    copy = tmp_path / "copied-run"
    shutil.copytree(states[-1].parent, copy / states[-1].parent.name)  # the checkpoints only, no metrics.jsonl

    paths = write_report(copy, tmp_path / "report")
    assert paths.summary.read_text(encoding="utf-8").count("trainer_state.json") == 1
    assert {p.name for p in paths.plots.values()} == REAL_RUN_PLOTS
    for path in paths.plots.values():
        assert_real_plot(path)

    # Both sources hold the same numbers for the same steps.
    from reasoner.train.report import collect_series

    by_state = {s.key: (s.x, s.y) for s in collect_series(load_run_logs(copy))}
    by_jsonl = {s.key: (s.x, s.y) for s in collect_series(load_run_logs(real_run))}
    assert by_state.keys() == by_jsonl.keys()
    for key, (xs, ys) in by_state.items():
        assert xs == by_jsonl[key][0][: len(xs)]
        assert ys == pytest.approx(by_jsonl[key][1][: len(ys)])

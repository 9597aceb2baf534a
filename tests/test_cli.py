"""The `stare-robot` dispatcher."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stare_robot import cli, keys


def test_unknown_command_suggests_the_closest_and_lists_all(capsys):
    assert cli.main(["stagse"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'stages'?" in err
    for name in cli.COMMANDS:
        assert name in err


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_command_module_has_a_main(name):
    module = importlib.import_module(cli.COMMANDS[name][0])
    assert callable(getattr(module, "main", None)), f"{cli.COMMANDS[name][0]} lacks main(argv)"


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "stare_robot.cli", "nope"], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 2 and "unknown command 'nope'" in out.stderr


def test_version_prints_the_installed_package_version():
    out = subprocess.run([sys.executable, "-m", "stare_robot.cli", "--version"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0
    assert out.stdout.strip() == f"stare-robot {importlib.metadata.version('stare-robot')}"


def test_tasks_lists_every_task_with_its_stages_family_and_horizon(capsys):
    from stare_robot.sim.evaluate import DEFAULT_MAX_STEPS
    from stare_robot.sim.tasks import TASKS

    from stare_robot.stages import get_family

    assert cli.main(["tasks", "--json"]) == 0
    rows = {r["task"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(TASKS)
    for name, spec in TASKS.items():
        assert rows[name]["family"] == spec.stage_family
        assert rows[name]["stages"] == list(get_family(spec.stage_family).stage_names)
        assert rows[name]["eval_horizon"] == DEFAULT_MAX_STEPS[name]
    assert rows["PushCube-v1"]["stages"] == ["reach", "contact", "push_pull", "goal"]
    assert cli.main(["tasks"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["task", "family", "stages", "horizon", "robot"]
    stack = next(line for line in table if line.startswith("StackCube-v1 "))
    assert "reach > grasp > transport > place" in stack and " 220 " in stack


def _history(**last):
    return [{"iteration": 0, "env_steps": 0, "eval_success": 0.25},
            {"iteration": 1, "env_steps": 40, "train_success": 0.5, **last}]


def test_ppo_summary_says_evaluation_is_off_instead_of_nan():
    from stare_robot.sim.ppo import PPOArgs, summary_line

    off = PPOArgs(ckpt=Path("c"), task="PushCube-v1", out=Path("o"), eval_every=0)
    line = summary_line(off, [{"iteration": 1, "env_steps": 40, "train_success": 0.5}], Path("f"))
    assert "nan" not in line.lower() and "evaluation off (--eval-every 0)" in line
    assert "train success 0.50" in line
    # with evaluation on, the last measured value is reported even if the last row has none
    on = PPOArgs(ckpt=Path("c"), task="PushCube-v1", out=Path("o"), eval_every=5)
    assert "eval success 0.25" in summary_line(on, _history(), Path("f"))
    assert "eval success 0.75" in summary_line(on, _history(eval_success=0.75), Path("f"))


class _Stop(Exception):
    pass


@pytest.mark.parametrize("obs_mode", ["state", "rgb"])
def test_eval_video_episodes_warns_for_a_state_policy(obs_mode, tmp_path, monkeypatch, capsys):
    """The warning comes before any rollout (the rollouts are not this test's business)."""
    import stare_robot.sim.evaluate as evaluate_module
    import torch

    from stare_robot.policies import make_config, make_policy
    from stare_robot.policies.normalize import NormalizationStats

    torch.manual_seed(0)
    config = make_config("pi0_tokens", obs_mode=obs_mode, env_state_dim=5 if obs_mode == "state"
                         else 0, use_stake=False, num_bins=32)
    rng = np.random.default_rng(0)
    arrays = {keys.OBS_STATE: rng.normal(size=(20, config.state_dim)),
              keys.ACTION: rng.normal(size=(20, config.action_dim))}
    if config.env_state_dim:
        arrays[keys.OBS_ENV_STATE] = rng.normal(size=(20, config.env_state_dim))
    policy = make_policy(config, NormalizationStats.from_arrays(arrays))
    ckpt = policy.save_pretrained(tmp_path / "c")

    def no_rollouts(*args, **kwargs):
        raise _Stop

    monkeypatch.setattr(evaluate_module, "evaluate", no_rollouts)
    with pytest.raises(_Stop):
        cli.main(["eval", "--ckpt", str(ckpt), "--task", "PushCube-v1", "--episodes", "1",
                  "--video-episodes", "2"])
    err = capsys.readouterr().err
    if obs_mode == "state":
        assert "warning: --video-episodes 2 records nothing" in err and "rgb policy" in err
    else:
        assert "warning" not in err

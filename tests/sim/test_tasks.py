"""The task table and its error for unknown names (no simulator needed)."""

from __future__ import annotations

import pytest
from stare_robot.sim.tasks import TASKS, UnknownTaskError, get_task

PAPER_TASKS = {
    "StackCube-v1": "stack",
    "PushCube-v1": "push_pull",
    "PullCube-v1": "push_pull",
    "LiftPegUpright-v1": "lift_upright",
    "PickCube-v1": "pick_place",
}


def test_table_lists_the_five_tasks_with_their_stage_families():
    franka = {name: spec for name, spec in TASKS.items() if spec.robot == "panda"}
    assert {name: spec.stage_family for name, spec in franka.items()} == PAPER_TASKS
    for spec in franka.values():
        assert spec.instruction and spec.solver.startswith("solve")
        assert (spec.target_attr is not None) == (spec.stage_family == "stack")


def test_unknown_task_names_the_valid_ones_and_suggests_the_closest():
    with pytest.raises(UnknownTaskError) as err:
        get_task("PushCub-v1")
    message = str(err.value)
    assert "Did you mean 'PushCube-v1'?" in message
    for name in PAPER_TASKS:
        assert name in message


def test_unknown_task_without_a_close_match_still_lists_valid_names():
    with pytest.raises(ValueError, match="Valid tasks: LiftPegUpright-v1") as err:
        get_task("xyz")
    assert "Did you mean" not in str(err.value)


def test_demos_cli_rejects_unknown_task_before_touching_disk(tmp_path, capsys):
    from stare_robot.sim.demos import main

    out = tmp_path / "never.zarr"
    assert main(["--task", "StackCub-v1", "--num", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "StackCube-v1" in err and "PickCube-v1" in err
    assert not out.exists()

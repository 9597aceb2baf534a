"""The one table of ManiSkill3 tasks stare-robot knows, by friendly name.

Each entry says which ManiSkill3 env to build, the language instruction given to the policy, the
STARE stage family, the motion-planning solution that solves it, and where the privileged quantities
(manipulated object, second object, goal) live on the env. Nothing here imports ManiSkill3, so the
table is cheap to read (``stare-robot demos --help``, task validation in other modules).

    >>> get_task("PushCube-v1").stage_family
    'push_pull'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stare_robot.names import did_you_mean

ROBOT = "panda"  # every task here uses ManiSkill's Franka Emika Panda


@dataclass(frozen=True)
class TaskSpec:
    """One task: how to build it and where to read its privileged state.

    ``obj_attr`` / ``target_attr`` are attribute names of actors on the unwrapped ManiSkill env;
    ``goal`` says how the goal position is found: ``"actor:<attr>"`` (that actor's position),
    ``"on_top:<attr>"`` (the position one cube height above that actor, for stacking) or
    ``"none"`` (no goal position; stored as NaN).
    """

    name: str
    env_id: str
    instruction: str
    stage_family: str
    solver: str  # function name in mani_skill.examples.motionplanning.panda.solutions
    obj_attr: str
    goal: str
    obj_half_size: float  # object half extent along z when resting on the table (metres)
    target_attr: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)


# The paper's four Franka tasks plus PickCube. Instructions follow the tasks' ManiSkill docstrings.
TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="StackCube-v1",
            env_id="StackCube-v1",
            instruction="stack the red cube on top of the green cube",
            stage_family="stack",
            solver="solveStackCube",
            obj_attr="cubeA",
            target_attr="cubeB",
            goal="on_top:cubeB",
            obj_half_size=0.02,
        ),
        TaskSpec(
            name="PushCube-v1",
            env_id="PushCube-v1",
            instruction="push the cube to the goal region",
            stage_family="push_pull",
            solver="solvePushCube",
            obj_attr="obj",
            goal="actor:goal_region",
            obj_half_size=0.02,
        ),
        TaskSpec(
            name="PullCube-v1",
            env_id="PullCube-v1",
            instruction="pull the cube to the goal region",
            stage_family="push_pull",
            solver="solvePullCube",
            obj_attr="obj",
            goal="actor:goal_region",
            obj_half_size=0.02,
        ),
        TaskSpec(
            name="LiftPegUpright-v1",
            env_id="LiftPegUpright-v1",
            instruction="lift the peg and stand it upright on the table",
            stage_family="lift_upright",
            solver="solveLiftPegUpright",
            obj_attr="peg",
            goal="none",
            obj_half_size=0.025,  # the peg lies on its side: half its width
        ),
        TaskSpec(
            name="PickCube-v1",
            env_id="PickCube-v1",
            instruction="pick up the cube and move it to the goal position",
            stage_family="pick_place",
            solver="solvePickCube",
            obj_attr="cube",
            goal="actor:goal_site",
            obj_half_size=0.02,
        ),
    )
}


class UnknownTaskError(ValueError):
    """A task name that is not in :data:`TASKS`."""


def get_task(name: str) -> TaskSpec:
    """The spec of task ``name``; an unknown name raises with the valid names and a suggestion."""
    if name in TASKS:
        return TASKS[name]
    hint = did_you_mean(name, TASKS, cutoff=0.5)
    raise UnknownTaskError(f"unknown task '{name}'.{hint} Valid tasks: {', '.join(sorted(TASKS))}.")

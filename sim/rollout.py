"""One closed-loop episode of a policy in a ManiSkill3 task, with stages tracked online.

    env = make_env("PushCube-v1", "state")
    result = rollout_episode(env, policy, seed=10_000, max_steps=60, execute_steps=2)
    result.outcome.success, result.outcome.furthest_stage

The policy is used only through :meth:`~stare_robot.policies.base.Policy.predict` (observation ->
action chunk), so any object with that method works (a local checkpoint or a server client).
Chunk execution: the first ``execute_steps`` actions of each predicted chunk are executed, then
the policy is queried again on the newest observation.

Each episode starts from a rebuilt scene (``reset(seed, reconfigure=True)``, as the expert demos
do), so an episode's outcome depends on its seed alone, not on which episodes ran before it.
The episode ends at the first step where the task's success predicate holds (as the expert demos
do), or after ``max_steps`` actions. The :class:`~stare_robot.stages.StageTracker` sees every
observation, including the reset one, on the privileged simulator state the policy never sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from stare_robot.sim.env import SimEnv, Step

from stare_robot import keys
from stare_robot.eval.metrics import EpisodeOutcome
from stare_robot.stages import StageTracker


@dataclass
class RolloutResult:
    """An episode's outcome plus, when asked for, its camera frames (T+1, H, W, 3) uint8."""

    outcome: EpisodeOutcome
    frames: list[np.ndarray] = field(default_factory=list)


def task_has_grasp(stage_names: tuple[str, ...] | list[str]) -> bool:
    """Grasp success is reported for families with a grasp stage (not for push/pull)."""
    return "grasp" in stage_names


def _tracked(step: Step) -> dict[str, Any]:
    """The privileged step fields the stage families read (obs/ee_pose, sim/*, gripper)."""
    return dict(step.privileged)


def rollout_episode(
    env: SimEnv,
    policy: Any,
    seed: int,
    max_steps: int,
    execute_steps: int,
    record_frames: bool = False,
) -> RolloutResult:
    """Run one episode from ``env.reset(seed)``; see the module docstring for the rules."""
    if max_steps < 1 or execute_steps < 1:
        raise ValueError(f"max_steps and execute_steps must be >= 1, got {max_steps}, {execute_steps}")
    spec = env.spec
    tracker = StageTracker(spec.stage_family, **spec.stage_settings)
    has_grasp = task_has_grasp(tracker.family.stage_names)
    camera_key = keys.obs_rgb(env.camera)

    # a fresh scene per episode: an outcome depends on its seed only, not on earlier episodes
    step = env.reset(seed=seed, reconfigure=True)
    furthest = tracker.update(_tracked(step))
    grasped = bool(step.privileged.get(keys.SIM_IS_GRASPED, False))
    frames = [step.obs[camera_key]] if record_frames and camera_key in step.obs else []
    success, length = bool(step.success), 0
    while not success and length < max_steps:
        chunk = np.asarray(policy.predict(step.obs), dtype=np.float32)
        for action in chunk[: min(execute_steps, max_steps - length)]:
            step = env.step(action)
            length += 1
            furthest = max(furthest, tracker.update(_tracked(step)))
            grasped |= bool(step.privileged.get(keys.SIM_IS_GRASPED, False))
            if frames:
                frames.append(step.obs[camera_key])
            success = bool(step.success)
            if success:
                break
    outcome = EpisodeOutcome(
        seed=int(seed),
        success=success,
        length=length,
        furthest_stage=int(furthest),
        grasped=grasped if has_grasp else None,
        extra={"final_stage": tracker.stage_name, "keyframes": list(tracker.keyframes)},
    )
    return RolloutResult(outcome, frames)

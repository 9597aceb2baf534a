"""Gripper-only stages and StaKe keyframes: any robot, real or sim, no object knowledge.

StaKe supervises two things from the gripper signal alone: a per-step *motion / skill* label
(gripper open in free space vs holding after a grasp) and, for every step, the robot joint
configuration at the *next keyframe* – a step where the gripper state changes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stare_robot import keys
from stare_robot.stages import geometry as geo
from stare_robot.stages.family import Conditions, FamilyConfig, StageFamily, Trajectory
from stare_robot.stages.history import EpisodeBatch
from stare_robot.stages.registry import register
from stare_robot.stages.segments import StageSegments, per_stage

MOTION, SKILL = 0, 1  # StaKe per-step labels


@dataclasses.dataclass
class GripperConfig(FamilyConfig):
    # The closed level depends on what is held (empty 0, a 4 cm cube ~0.46 on the Panda), so a
    # change is detected from the motion of the opening (0 closed .. 1 open), not a fixed level.
    # opening change per step that counts as closing / opening (Panda at 20 Hz: about 0.2-0.5
    # when it really moves; a cube pushing the closed fingers apart: under 0.07)
    min_change: float = 0.1
    open_above: float = 0.9  # an opening over this is open whatever the motion
    command_threshold: float = 0.0  # action[6] under this = close command (when no opening)
    min_hold: int = 2  # steps a new state must last to count (debounces chattering)
    hold_tau: float = 5.0  # steps for the Skill potential tanh(closed steps / tau)


@register
class Gripper(StageFamily):
    """Stages and keyframes from the gripper signal only.

    Task:
        Any manipulation; only the gripper opening ``OBS_GRIPPER`` (or, without it, the gripper
        command ``ACTION[:, 6]``) and ``OBS_JOINT_POS`` are used. The raw closed state comes from a
        latch on the opening's motion (falling by ``min_change`` in a step = closing, rising by it or
        being above ``open_above`` = open); a change counts only once it has lasted ``min_hold`` steps
        (``is_closed`` is the debounced state). A *keyframe* is the first step of a confirmed change.

    Stages:
        approach  until the gripper closes      (``closes``: debounced open -> closed)
        skill     until it opens again          (``opens``: debounced closed -> open)
        retreat   final stage
        A stage changes when the change is confirmed (``min_hold - 1`` steps after its keyframe),
        so the online tracker can follow it. The StaKe labels (:func:`motion_skill_labels`) are
        the debounced state itself and may alternate for several grasps.

    Success:
        Unknown without object knowledge: ``success`` is never true; use the episode's success.
    """

    name = "gripper"
    stage_names = ("approach", "skill", "retreat")
    required_fields = ((keys.OBS_GRIPPER, keys.ACTION), keys.OBS_JOINT_POS)
    config_class = GripperConfig
    key_distances = ("signal",)

    def conditions(self, traj: Trajectory, history) -> Conditions:
        c = self.config
        if keys.OBS_GRIPPER in traj:
            signal = geo.as_float(traj[keys.OBS_GRIPPER]).reshape(-1)
            change = signal - history.previous("signal", signal)
            closing = change < -c.min_change
            rising = change > c.min_change
            if keys.ACTION in traj:
                # a rise counts as opening only under an open command (now or just before): a
                # pushed object can spread closed fingers without any release
                command_open = geo.as_float(traj[keys.ACTION])[..., 6] >= c.command_threshold
                rising &= command_open | history.previous("command_open", command_open)
            opening = rising | (signal > c.open_above)
            raw = history.latch("moving", closing, opening, signal <= c.open_above)
        else:
            signal = geo.as_float(traj[keys.ACTION])[:, 6]
            raw = signal < c.command_threshold
        run = history.run_length("raw", raw)
        confirmed = run >= c.min_hold
        closed = history.latch("closed", confirmed & raw, confirmed & ~raw, raw)
        was_closed = history.previous("closed", closed)
        changed = closed != was_closed
        closed_steps = np.where(closed, history.run_length("closed_run", closed), 0)
        return {
            "signal": signal,
            "raw_closed": raw,
            "is_closed": closed,
            "closes": changed & closed,
            "opens": changed & ~closed,
            # a confirmed change at step t began run - 1 steps earlier: that is the keyframe
            "keyframe": changed,
            "keyframe_lag": np.where(changed, run - 1, 0),
            "closed_steps": closed_steps,
            "chatter": raw != closed,
        }

    def exit_events(self, cond: Conditions) -> list[np.ndarray]:
        return [cond["closes"], cond["opens"]]

    def stage_potentials(self, cond: Conditions) -> list[np.ndarray]:
        zeros = np.zeros(cond["signal"].shape[0])
        return [zeros, np.tanh(cond["closed_steps"] / self.config.hold_tau), zeros + 1.0]

    def success(self, cond: Conditions) -> np.ndarray:
        return np.zeros(cond["signal"].shape[0], dtype=bool)

    def stage_costs(self, cond: Conditions, seg: StageSegments) -> np.ndarray:
        # Fraction of steps whose raw signal disagrees with the debounced state (0 = clean).
        chatter = seg.mean(cond["chatter"].astype(np.float64))
        return per_stage(*[chatter] * self.num_stages)


def keyframes_from_conditions(cond: Conditions, batch: EpisodeBatch) -> list[list[int]]:
    """Per episode, the step indices (from the episode start) where the gripper state changes.

    Offline the end of an episode also confirms a change still held at its last step (nothing
    can contradict it any more), so a release in the final ``min_hold - 1`` steps still counts;
    the online tracker cannot know the end and reports only confirmed changes."""
    steps = np.flatnonzero(cond["keyframe"])
    frames = steps - cond["keyframe_lag"][steps]
    last = batch.ends - 1
    pending = cond["raw_closed"][last] != cond["is_closed"][last]
    run = batch.run_length("raw", cond["raw_closed"])
    tail_frames = (last - run[last] + 1)[pending]
    frames = np.concatenate([frames, tail_frames])
    episode = np.concatenate([batch.episode_of_step[steps], np.flatnonzero(pending)])
    local = frames - batch.starts[episode]
    return [sorted(local[episode == e].tolist()) for e in range(batch.num_episodes)]


def gripper_keyframes(traj: Trajectory, **config) -> list[int]:
    """Keyframes of one episode: steps where the debounced gripper state changes."""
    family = Gripper(**config)
    n = family.check(traj)
    batch = EpisodeBatch([n])
    return keyframes_from_conditions(family.conditions(traj, batch), batch)[0]


def motion_skill_labels(traj: Trajectory, **config) -> np.ndarray:
    """(T,) int8 StaKe labels: SKILL (1) while the gripper is closed, from each closing keyframe
    on; MOTION (0) elsewhere. May alternate for several grasps (unlike the monotone stages)."""
    family = Gripper(**config)
    n = family.check(traj)
    batch = EpisodeBatch([n])
    cond = family.conditions(traj, batch)
    toggles = np.zeros(n, dtype=np.int64)
    toggles[keyframes_from_conditions(cond, batch)[0]] = 1  # the state flips at each keyframe
    return ((int(cond["is_closed"][0]) + np.cumsum(toggles)) % 2).astype(np.int8)


def keyframe_targets(traj: Trajectory, keyframes: list[int] | None = None, **config) -> np.ndarray:
    """(T, J + 1) StaKe keyframe target of every step: joint positions at the next keyframe after
    the step (the last step once no keyframe follows), then the gripper command there
    (+1 open / -1 closed, the debounced state at that keyframe)."""
    if keyframes is None:
        keyframes = gripper_keyframes(traj, **config)
    joints = np.asarray(traj[keys.OBS_JOINT_POS], dtype=np.float32)
    n = joints.shape[0]
    labels = motion_skill_labels(traj, **config)
    frames = np.asarray(sorted(keyframes), dtype=np.int64)
    target_step = np.full(n, n - 1)
    if frames.size:
        pos = np.searchsorted(frames, np.arange(n), side="right")  # index of first keyframe > t
        target_step = np.where(pos < frames.size, frames[np.minimum(pos, frames.size - 1)], n - 1)
    gripper = np.where(labels[target_step] == SKILL, keys.GRIPPER_CLOSED, keys.GRIPPER_OPEN)
    return np.concatenate([joints[target_step], gripper[:, None].astype(np.float32)], axis=1)

"""Scripted expert for the SimplerEnv-WidowX tasks (no motion planner exists for them).

From the privileged object and goal poses it drives the WidowX's EE-delta controller through
approach -> descend -> grasp -> lift -> carry -> lower -> release -> retreat, in the project's
normalised 7-D action (see :mod:`stare_robot.sim.bridge_tasks`). Each seed draws its own approach
height, speed, grasp point along the object, yaw jitter, lift and release heights and release
point, so demos of one task differ in more than the initial scene.

    expert = BridgeExpert(env)        # env: BridgeSimEnv, e.g. make_env("PutCarrotOnPlateInScene-v1")
    rollout = expert.run(seed=3)      # Rollout(steps, actions, results, success, failure)

The controller moves a *target* pose that the arm follows with some lag; the expert commands
deltas from that target (exact) and waits for the measured EE pose only where it matters (before
closing or opening the gripper).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation
from stare_robot.sim.env import Step
from stare_robot.sim.expert import Rollout

from stare_robot import keys
from stare_robot.robots.ee_action import POS_BOUND, pose_delta_to_action, pose_distance

# Failure reasons reported in demo summaries.
FAIL_REACH = "reach_timeout"  # the EE did not get to a waypoint in time
FAIL_GRASP = "grasp_missed"  # the gripper closed without holding the object
FAIL_DROPPED = "dropped"  # the object left the gripper before the release point
FAIL_UNSUCCESSFUL = "not_placed"  # released, but the env's success never came


@dataclass
class ScriptConfig:
    """Ranges (low, high) are sampled per seed; scalars are fixed. Metres unless noted."""

    approach_height: tuple[float, float] = (0.05, 0.09)  # above the grasp point: descent start
    grasp_depth: tuple[float, float] = (0.0, 0.008)  # EE below the object's centre at the grasp
    # the fingertips reach ~16 mm below the EE point: lower, they press on the table (measured)
    min_grasp_height: float = 0.018  # EE never goes lower than this above the surface
    grasp_shift: float = 0.01  # grasp point moved up to this far along an elongated object
    yaw_jitter: float = 0.12  # radians of gripper yaw added to the aligned grasp
    lift_height: tuple[float, float] = (0.07, 0.11)  # object lift above its start
    release_height: tuple[float, float] = (0.01, 0.025)  # object centre above its goal at release
    place_jitter: float = 0.01  # release point offset from the goal centre (xy)
    speed: tuple[float, float] = (0.03, 0.05)  # per control step (controller: 0.1 at |a| = 1)
    near: float = 0.012  # measured EE within this of a waypoint: reached
    near_rot: float = 0.05  # radians, the same for its orientation
    near_grasp: float = 0.005  # tighter, for the pose the gripper closes at
    blocked: float = 0.002  # the EE moved less than this in a step while touching the object
    gripper_steps: tuple[int, int] = (2, 6)  # steps holding still while the gripper moves: min, max
    gripper_settled: float = 0.01  # opening (0..1) change per step under which the fingers rest
    settle_steps: int = 8  # steps after the release allowed for the success predicate
    max_waypoint_steps: int = 25
    elongated: bool = True  # align the fingers across the object's long (model x) axis
    approach_gripper: float = keys.GRIPPER_OPEN  # gripper command on the way down (pre-shaped)


# Per-task settings: cubes are square (any yaw multiple of 90 degrees grasps them) and leave
# little room on the lower cube; the eggplant lies next to the sink's rim, which a fully open
# finger hits (measured: seeds 0, 1), so the gripper comes down half-closed, and it is lifted
# higher to clear the sink.
TASK_SCRIPTS: dict[str, ScriptConfig] = {
    "StackGreenCubeOnYellowCubeBakedTexInScene-v1": ScriptConfig(
        elongated=False, place_jitter=0.003, grasp_shift=0.0, release_height=(0.005, 0.012)
    ),
    "PutEggplantInBasketScene-v1": ScriptConfig(lift_height=(0.10, 0.13), approach_gripper=-0.2),
}


@dataclass
class ScriptDraw:
    """One seed's sample of the :class:`ScriptConfig` ranges."""

    approach_height: float
    grasp_depth: float
    grasp_shift: float
    yaw_jitter: float
    lift_height: float
    release_height: float
    place_offset: np.ndarray  # (2,)
    speed: float

    @classmethod
    def sample(cls, cfg: ScriptConfig, rng: np.random.Generator) -> ScriptDraw:
        def pick(bounds: tuple[float, float]) -> float:
            return float(rng.uniform(*bounds))

        angle = rng.uniform(0, 2 * np.pi)
        return cls(
            approach_height=pick(cfg.approach_height),
            grasp_depth=pick(cfg.grasp_depth),
            grasp_shift=float(rng.uniform(-cfg.grasp_shift, cfg.grasp_shift)),
            yaw_jitter=float(rng.uniform(-cfg.yaw_jitter, cfg.yaw_jitter)),
            lift_height=pick(cfg.lift_height),
            release_height=pick(cfg.release_height),
            place_offset=cfg.place_jitter * np.sqrt(rng.uniform()) * np.array([np.cos(angle), np.sin(angle)]),
            speed=pick(cfg.speed),
        )


def _rot(pose: np.ndarray) -> Rotation:
    return Rotation.from_quat(np.roll(np.asarray(pose[3:], np.float64), -1))


def _pose(pos: np.ndarray, rot: Rotation) -> np.ndarray:
    return np.concatenate([pos, np.roll(rot.as_quat(), 1)]).astype(np.float64)


def long_axis(obj_pose: np.ndarray, extents: np.ndarray) -> np.ndarray:
    """(3,) unit horizontal direction along which the object is longest: of its model axes scaled
    by its bounding-box ``extents`` (3,), the one with the longest projection on the table."""
    axes = _rot(obj_pose).as_matrix() * np.asarray(extents, np.float64)  # columns: scaled axes
    flat = axes[:2]
    best = int(np.argmax(np.linalg.norm(flat, axis=0)))
    return np.append(flat[:, best], 0.0) / max(np.linalg.norm(flat[:, best]), 1e-9)


def grasp_yaw(ee_pose: np.ndarray, along: np.ndarray, elongated: bool) -> float:
    """World-z rotation (rad, smallest magnitude) that puts the gripper's finger axis (EE y) across
    the object's long horizontal axis ``along``; for a square object, across any of its sides."""
    fingers = _rot(ee_pose).apply([0.0, 1.0, 0.0])
    current = np.arctan2(fingers[1], fingers[0])
    wanted = np.arctan2(along[1], along[0]) + np.pi / 2
    period = np.pi if elongated else np.pi / 2  # finger axis sign is irrelevant; cubes are square
    return float((wanted - current + period / 2) % period - period / 2)


class BridgeExpert:
    """Scripted pick-and-place for a :class:`~stare_robot.sim.bridge_tasks.BridgeSimEnv`."""

    def __init__(self, sim, config: ScriptConfig | None = None):
        self.sim = sim
        self.cfg = config or TASK_SCRIPTS.get(sim.spec.name, ScriptConfig())

    def close(self) -> None:  # nothing of its own to release (same interface as EEDeltaExpert)
        pass

    def run(self, seed: int) -> Rollout:
        """One scripted episode from ``sim.reset(seed)``; the seed also draws the script's
        randomness. Success needs the env's success predicate with the gripper open."""
        rng = np.random.default_rng([seed, 0x5C12])
        draw = ScriptDraw.sample(self.cfg, rng)
        rollout = Rollout(seed=seed)
        step = self.sim.reset(seed=seed, reconfigure=True)
        try:
            self._script(rollout, step, draw)
        except _Abort as stop:
            rollout.failure = str(stop)
        rollout.success = rollout.failure is None and bool(rollout.results and rollout.results[-1].success)
        if not rollout.success and rollout.failure is None:
            rollout.failure = FAIL_UNSUCCESSFUL
        return rollout

    # --- the script ---
    def _script(self, rollout: Rollout, step: Step, d: ScriptDraw) -> None:
        cfg = self.cfg
        up = np.array([0.0, 0.0, 1.0])
        start_rot = _rot(step.privileged[keys.OBS_EE_POSE])

        def grasp_pose(s: Step, height: float = 0.0) -> np.ndarray:
            """From the object's *current* pose: some objects still roll after the reset."""
            obj = s.privileged[keys.SIM_OBJ_POSE]
            along = long_axis(obj, self.sim.object_extents())
            yaw = grasp_yaw(_pose(np.zeros(3), start_rot), along, cfg.elongated) + d.yaw_jitter
            pos = np.asarray(obj[:3], np.float64) + d.grasp_shift * along
            pos[2] = max(obj[2] - d.grasp_depth, cfg.min_grasp_height) + height
            return _pose(pos, Rotation.from_euler("z", yaw) * start_rot)

        step = self._move(rollout, step, lambda s: grasp_pose(s, d.approach_height),
                          cfg.approach_gripper, d.speed)
        step = self._move(rollout, step, grasp_pose, cfg.approach_gripper, d.speed / 2,
                          near=cfg.near_grasp, stop_when_blocked=True)
        step = self._hold(rollout, step, keys.GRIPPER_CLOSED)
        if not step.privileged[keys.SIM_IS_GRASPED]:
            raise _Abort(FAIL_GRASP)

        # lift from where the EE is (the target may lie below it, e.g. pressed onto the object)
        grasp_pos = np.asarray(step.privileged[keys.OBS_EE_POSE][:3], np.float64)
        grasp_rot = _rot(self.sim.ee_target_pose())
        obj = step.privileged[keys.SIM_OBJ_POSE]
        lifted = grasp_pos + (d.lift_height + max(obj[2] - grasp_pos[2], 0.0)) * up
        step = self._move(rollout, step, _pose(lifted, grasp_rot), keys.GRIPPER_CLOSED, d.speed, hold=True)
        # Carry the object (not the EE) over the goal: keep the in-hand offset measured now.
        priv = step.privileged
        in_hand = np.asarray(priv[keys.OBS_EE_POSE][:3], np.float64) - priv[keys.SIM_OBJ_POSE][:3]
        goal = np.asarray(priv[keys.SIM_GOAL_POS], np.float64) + np.append(d.place_offset, 0.0)
        release = goal + in_hand + d.release_height * up
        above = release.copy()
        above[2] = max(lifted[2], release[2] + 0.03)
        step = self._move(rollout, step, _pose(above, grasp_rot), keys.GRIPPER_CLOSED, d.speed, hold=True)
        step = self._move(rollout, step, _pose(release, grasp_rot), keys.GRIPPER_CLOSED, d.speed / 2,
                          hold=True, near=cfg.near_grasp)
        step = self._hold(rollout, step, keys.GRIPPER_OPEN)
        retreat = _pose(release + 0.05 * up, grasp_rot)
        for _ in range(cfg.settle_steps):
            if step.success and step.obs[keys.OBS_GRIPPER][0] > 0.5:
                return
            step = self._act(rollout, step, retreat, keys.GRIPPER_OPEN, d.speed)

    # --- pieces ---
    def _act(self, rollout: Rollout, step: Step, pose: np.ndarray, gripper: float, speed: float) -> Step:
        """One step that moves the controller's target towards ``pose`` by at most ``speed``."""
        arm = pose_delta_to_action(self.sim.ee_target_pose(), pose, base=self.sim.base_pose)
        metres = np.linalg.norm(arm[:3]) * POS_BOUND
        if metres > speed:
            arm[:3] *= speed / metres
        action = np.append(arm, gripper).astype(np.float32)
        result = self.sim.step(action)
        rollout.steps.append(step)
        rollout.actions.append(action)
        rollout.results.append(result)
        return result

    def _move(self, rollout: Rollout, step: Step, pose: np.ndarray | Callable[[Step], np.ndarray],
              gripper: float, speed: float, hold: bool = False, near: float | None = None,
              stop_when_blocked: bool = False) -> Step:
        """Steps until the measured EE is within ``near`` (default ``cfg.near``) of ``pose`` (or
        of ``pose(step)``, re-aimed every step). ``hold``: the object must stay grasped on the
        way; ``stop_when_blocked``: also done once the fingers rest on the object (e.g. a wide
        object's flanks) and the EE stops moving."""
        near = self.cfg.near if near is None else near
        aim = pose if callable(pose) else (lambda _: pose)
        for _ in range(self.cfg.max_waypoint_steps):
            ee, pose = step.privileged[keys.OBS_EE_POSE], aim(step)
            dp, dr = pose_distance(ee, pose)
            if dp <= near and dr <= self.cfg.near_rot:
                return step
            step = self._act(rollout, step, pose, gripper, speed)
            moved, _ = pose_distance(ee, step.privileged[keys.OBS_EE_POSE])
            if stop_when_blocked and moved < self.cfg.blocked and step.privileged[keys.SIM_CONTACT]:
                return step
            if hold and not step.privileged[keys.SIM_IS_GRASPED]:
                raise _Abort(FAIL_DROPPED)
        raise _Abort(FAIL_REACH)

    def _hold(self, rollout: Rollout, step: Step, gripper: float) -> Step:
        """Keep the arm's target still while the gripper closes or opens, until the fingers rest."""
        pose = self.sim.ee_target_pose()
        least, most = self.cfg.gripper_steps
        for i in range(most):
            before = float(step.obs[keys.OBS_GRIPPER][0])
            step = self._act(rollout, step, pose, gripper, 0.0)
            moved = abs(float(step.obs[keys.OBS_GRIPPER][0]) - before)
            if i + 1 >= least and moved < self.cfg.gripper_settled:
                break
        return step


class _Abort(Exception):
    """Ends a scripted episode early; the message is the failure reason."""

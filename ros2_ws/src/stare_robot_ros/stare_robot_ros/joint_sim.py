"""A ManiSkill3 task scene driven like a real arm: absolute joint targets in, joint states out.

The env runs in ManiSkill's ``pd_joint_pos`` control mode (the same PD gains as every other
controller), so a joint target computed outside by IK moves the arm exactly as ManiSkill's own
``pd_ee_delta_pose`` controller would have. No rclpy here; :mod:`stare_robot_ros.sim_robot` wraps it.

    sim = JointSim("PushCube-v1", get_profile("panda"), camera=True)
    sim.reset(seed=0)
    sim.step(q_target, gripper_command)   # (7,) radians, finger position in metres
    sim.joint_positions, sim.image, sim.success
"""

from __future__ import annotations

import dataclasses

import numpy as np
from stare_robot.sim.env import build_maniskill_env
from stare_robot.sim.tasks import WIDOWX, get_task

from stare_robot.robots.profiles import RobotProfile

JOINT_CONTROL_MODE = "pd_joint_pos"
DEFAULT_SIM_FREQ = 100  # ManiSkill's physics rate; the control rate must divide it


def sim_config_for_rate(control_rate_hz: float) -> dict[str, int]:
    """ManiSkill ``sim_config`` whose control step lasts ``1 / control_rate_hz`` seconds of sim
    time (physics rate = the nearest multiple of the control rate to 100 Hz)."""
    rate = round(control_rate_hz)
    if rate < 1 or abs(rate - control_rate_hz) > 1e-9:
        raise ValueError(f"control_rate_hz must be a whole number of Hz >= 1, got {control_rate_hz}")
    substeps = max(1, round(DEFAULT_SIM_FREQ / rate))
    return {"control_freq": rate, "sim_freq": rate * substeps}


def add_joint_control_to_bridge_widowx() -> None:
    """Give ManiSkill's SimplerEnv-Bridge WidowX a ``pd_joint_pos`` arm controller (same gains and
    gripper as its only, end-effector, controller), so a joint trajectory drives it as on the real
    arm. ManiSkill builds that agent class inside the Bridge envs, so the class itself is extended,
    once, in this (sim_robot) process."""
    from mani_skill.agents.controllers import PDJointPosControllerConfig
    from mani_skill.envs.tasks.digital_twins.bridge_dataset_eval.base_env import (
        WidowX250SBridgeDatasetFlatTable as Agent,
    )

    original = Agent._controller_configs
    if getattr(original.fget, "with_joint_control", False):
        return

    def controller_configs(agent):
        configs = dict(original.fget(agent))
        gripper = next(iter(configs.values()))["gripper"]
        arm = PDJointPosControllerConfig(
            agent.arm_joint_names, None, None, agent.arm_stiffness, agent.arm_damping,
            agent.arm_force_limit, agent.arm_friction, normalize_action=False,
        )
        configs[JOINT_CONTROL_MODE] = {"arm": arm, "gripper": gripper}
        return configs

    controller_configs.with_joint_control = True
    Agent._controller_configs = property(controller_configs)


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


class JointSim:
    """One ManiSkill3 task scene with the arm under absolute joint-position control."""

    def __init__(
        self,
        task: str,
        profile: RobotProfile,
        camera: bool = False,
        image_size: int = 128,
        control_rate_hz: float | None = None,
        sim_backend: str = "physx_cpu",
        env_state: bool = False,
    ):
        spec = get_task(task)
        if profile.name != spec.robot:
            raise ValueError(f"ManiSkill task {task!r} uses robot {spec.robot!r}, not {profile.name!r}")
        if spec.robot == WIDOWX:
            add_joint_control_to_bridge_widowx()
        if control_rate_hz is not None:  # sim time per step = 1 / control rate
            spec = dataclasses.replace(
                spec, env_kwargs={**spec.env_kwargs, "sim_config": sim_config_for_rate(control_rate_hz)}
            )
        self.task = task
        self.camera_name = spec.camera
        self.profile = profile
        self.camera = camera
        self.with_env_state = env_state  # ManiSkill's flat state vector, for sim-only state policies
        obs_mode = "+".join(m for m, on in (("rgb", camera), ("state", env_state)) if on) or "none"
        self.env = build_maniskill_env(
            spec, obs_mode, JOINT_CONTROL_MODE, image_size, 1, sim_backend,
            max_episode_steps=10**9,  # the graph decides when an episode ends, not a time limit
        )
        self.base = self.env.unwrapped
        self.control_rate_hz = float(self.base.control_freq)
        robot = self.base.agent.robot
        names = [j.name for j in robot.active_joints]
        wanted = [*profile.arm_joints, *profile.gripper_joints]
        if names != wanted:
            raise ValueError(f"sim robot joints {names} differ from profile {profile.name!r}: {wanted}")
        self.step_count = 0
        self._raw = None
        self._gripper_action = 1.0  # open

    def reset(self, seed: int) -> None:
        # reconfigure: rebuild the scene so no solver state survives from an earlier episode (a
        # seed then replays bit-exactly, as ManiSkill's own replay does)
        self._raw, _ = self.env.reset(seed=int(seed), options={"reconfigure": True})
        self.step_count = 0
        self._gripper_action = 1.0

    def step(self, q_target: np.ndarray, gripper_command: float | None = None) -> None:
        """Advance one control step towards (dof,) joint targets; ``gripper_command`` is a finger
        position (metres), None keeps the previous one."""
        q = np.asarray(q_target, dtype=np.float32).reshape(-1)
        if q.shape != (self.profile.dof,) or not np.all(np.isfinite(q)):
            raise ValueError(f"joint target must be {self.profile.dof} finite numbers, got {q}")
        if gripper_command is not None:
            self._gripper_action = self.profile.gripper_action(gripper_command)
        action = np.concatenate([q, [self._gripper_action]]).astype(np.float32)
        self._raw, *_ = self.env.step(action)
        self.step_count += 1

    @property
    def joint_positions(self) -> np.ndarray:
        """(dof + fingers,) float64 arm then finger joint positions."""
        return _np(self.base.agent.robot.get_qpos())[0].astype(np.float64)

    @property
    def joint_velocities(self) -> np.ndarray:
        return _np(self.base.agent.robot.get_qvel())[0].astype(np.float64)

    @property
    def arm_targets(self) -> np.ndarray:
        """(dof,) the joint targets the arm is driving to now (the reset pose before any step)."""
        ctrl = self.base.agent.controller.controllers["arm"]
        target = getattr(ctrl, "_target_qpos", None)
        return _np(target)[0].astype(np.float64) if target is not None else self.joint_positions[: self.profile.dof]

    @property
    def image(self) -> np.ndarray | None:
        """(H, W, 3) uint8 image of the task camera after the last step, None without camera."""
        if not self.camera or self._raw is None:
            return None
        return _np(self._raw["sensor_data"][self.camera_name]["rgb"])[0].astype(np.uint8)

    @property
    def env_state(self) -> np.ndarray | None:
        """(E,) float32 ManiSkill's flat ``state`` observation after the last step (what
        ``obs/env_state`` holds in ``stare_robot.sim``), None unless built with ``env_state``."""
        if not self.with_env_state or self._raw is None:
            return None
        raw = self._raw["state"] if isinstance(self._raw, dict) else self._raw
        return _np(raw).reshape(-1).astype(np.float32)

    @property
    def camera_intrinsics(self) -> np.ndarray:
        """(3, 3) pinhole matrix K of the task camera (OpenCV convention)."""
        params = self.base.scene.sensors[self.camera_name].get_params()
        return _np(params["intrinsic_cv"])[0].astype(np.float64)

    @property
    def success(self) -> bool:
        return bool(_np(self.base.evaluate()["success"]).reshape(-1)[0])

    def close(self) -> None:
        self.env.close()

"""SimplerEnv-WidowX (Bridge) tasks: assets, observations and the 7-D action for ManiSkill3's ports.

    env = make_env("PutCarrotOnPlateInScene-v1", obs_mode="rgb")   # -> BridgeSimEnv
    step = env.reset(seed=0)
    step = env.step(np.zeros(7, np.float32))

The four envs (``PutSpoonOnTableClothInScene-v1``, ``PutCarrotOnPlateInScene-v1``,
``StackGreenCubeOnYellowCubeBakedTexInScene-v1``, ``PutEggplantInBasketScene-v1``; entries of
:data:`stare_robot.sim.tasks.TASKS`) differ from the Franka tabletop in four ways, all hidden here so
that demos, training and evaluation use them unchanged:

- **Assets.** The WidowX and the Bridge scenes are not in the ManiSkill wheel. They are read from
  ``$MS_ASSET_DIR/data`` (default ``~/.maniskill/data``); when missing, :class:`MissingAssetsError`
  names the missing files and the commands that fetch them.
- **Observations.** The envs render only ``obs_mode="rgb+segmentation"``. Our ``"rgb"`` mode
  resizes the 640x480 ``3rd_view_camera`` image to ``image_size`` x ``image_size`` (as Bridge
  policies do, aspect not kept); ``"state"`` mode gives ``obs/env_state`` = object pose then target
  pose (14). ``obs/state`` is the WidowX's qpos then qvel (6 arm + 2 finger joints each, 16).
- **Frame.** Every reported position (``obs/ee_pose``, ``sim/*``, ``base_pose``) is the world
  position minus ``TaskSpec.surface_z`` in z, so the surface the object starts on is at z = 0 as on
  the Franka tabletop, and the stage families' "height above rest" means the same thing.
- **Action.** Ours is the project's normalised 7-D EE delta (:mod:`stare_robot.robots.ee_action`:
  0.1 m and 0.1 rad per unit, rotation as ManiSkill's Panda reads it, gripper +1 open / -1 closed).
  The WidowX controller (``arm_pd_ee_target_delta_pose_align2``) takes raw metres and XYZ Euler
  radians instead, applied to its previous *target* pose (not the measured one), so an unreachable
  command is not forgotten; :meth:`BridgeSimEnv._env_action` converts.

The asset pack used in tests replaces two table meshes and the eggplant's visual mesh with
stand-ins (see its README): results measured with it are close to, not identical with, the
published SimplerEnv numbers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation
from stare_robot.sim.env import SimEnv, _np
from stare_robot.sim.tasks import TaskSpec

from stare_robot import keys
from stare_robot.robots.ee_action import action_to_pose_delta

# One file per ManiSkill asset id whose presence means the download is there.
ASSET_MARKERS: dict[str, str] = {
    "widowx250s": "robots/widowx/wx250s.urdf",
    "bridge_v2_real2sim": "tasks/bridge_v2_real2sim_dataset/custom/info_bridge_custom_v0.json",
}
BRIDGE_DATASET_DIR = "tasks/bridge_v2_real2sim_dataset"
WIDOWX_URDF = "robots/widowx/wx250s.urdf"
EE_LINK = "ee_gripper_link"  # the point between the fingertips that the controller moves
FINGER_CLOSED, FINGER_OPEN = 0.015, 0.037  # finger joint range of the Bridge WidowX (metres)


class MissingAssetsError(FileNotFoundError):
    """The WidowX / Bridge scene assets a task needs are not in the ManiSkill asset directory."""


def asset_data_dir() -> Path:
    """``$MS_ASSET_DIR/data`` (ManiSkill's own rule; ``~/.maniskill`` when the variable is unset)."""
    root = os.environ.get("MS_ASSET_DIR") or os.path.join(os.path.expanduser("~"), ".maniskill")
    return Path(root) / "data"


def check_assets(spec: TaskSpec, data_dir: Path | None = None) -> Path:
    """Return the asset ``data`` directory holding everything ``spec`` needs, or raise
    :class:`MissingAssetsError` naming the missing files and how to get them."""
    data_dir = asset_data_dir() if data_dir is None else Path(data_dir)
    missing = [
        (asset, data_dir / ASSET_MARKERS[asset])
        for asset in spec.assets
        if not (data_dir / ASSET_MARKERS[asset]).is_file()
    ]
    if missing:
        lines = "\n".join(f"  - {asset}: {path}" for asset, path in missing)
        downloads = "\n".join(
            f"  MS_ASSET_DIR={data_dir.parent} python -m mani_skill.utils.download_asset {asset}"
            for asset, _ in missing
        )
        raise MissingAssetsError(
            f"{spec.name} needs ManiSkill assets that are not in {data_dir} "
            f"(MS_ASSET_DIR={os.environ.get('MS_ASSET_DIR', '<unset: ~/.maniskill>')}):\n{lines}\n"
            f"Fix: set MS_ASSET_DIR to a folder whose data/ holds them (an unpacked asset pack: "
            f"MS_ASSET_DIR=<dir>/simpler_assets), or download them on a machine with internet:\n"
            f"{downloads}"
        )
    return data_dir


def prepare_assets(spec: TaskSpec) -> Path:
    """Check ``spec``'s assets, then make an already-imported ManiSkill read them from there.

    ManiSkill turns ``MS_ASSET_DIR`` into paths once, when it is imported; a process that imported
    it before setting the variable (e.g. after running a Franka task) would otherwise look in the
    old place, and ManiSkill's own check would then prompt for a download and ``exit()``.
    """
    data_dir = check_assets(spec)
    if "mani_skill" in sys.modules:
        _point_maniskill_at(data_dir.resolve())
    return data_dir


def _point_maniskill_at(data_dir: Path) -> None:
    """Re-point the import-time asset paths of ManiSkill 3.0.1's WidowX and Bridge modules."""
    import mani_skill
    from mani_skill.agents.robots.widowx.widowx import WidowX250S
    from mani_skill.envs.tasks.digital_twins.bridge_dataset_eval import base_env
    from mani_skill.utils import assets

    if Path(mani_skill.ASSET_DIR).resolve() == data_dir:
        return
    mani_skill.ASSET_DIR = data_dir
    for asset in ASSET_MARKERS:
        assets.DATA_SOURCES[asset].output_dir = data_dir
    base_env.BRIDGE_DATASET_ASSET_PATH = data_dir / BRIDGE_DATASET_DIR
    WidowX250S.urdf_path = str(data_dir / WIDOWX_URDF)


def ours_to_widowx(action: np.ndarray) -> np.ndarray:
    """(..., 7) normalised EE-delta actions -> (..., 7) raw WidowX controller actions
    ``[dx, dy, dz (m), rx, ry, rz (XYZ Euler rad), gripper (-1..1)]``, the same motion."""
    rows = np.atleast_2d(np.asarray(action, np.float64))
    out = np.empty_like(rows)
    for i, row in enumerate(rows):
        dpos, drot = action_to_pose_delta(row)
        out[i, :3] = dpos
        out[i, 3:6] = Rotation.from_matrix(drot).as_euler("XYZ")
        out[i, 6] = np.clip(row[6], -1.0, 1.0)
    return out.reshape(np.shape(action)).astype(np.float32)


def _shift(pose: np.ndarray, dz: float) -> np.ndarray:
    """``pose`` (..., 7 or 3) with ``dz`` subtracted from its z."""
    pose = np.array(pose, np.float32, copy=True)
    pose[..., 2] -= dz
    return pose


class BridgeSimEnv(SimEnv):
    """A ManiSkill3 Bridge (WidowX) task behind :class:`SimEnv`'s interface; see the module doc."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # ManiSkill keeps overlay images in a class-level dict shared by the flat-table and sink
        # envs under the same camera name: give this env its own so another Bridge env built later
        # in the process cannot swap its background.
        self.base._rgb_overlay_images = dict(self.base._rgb_overlay_images)
        self.action_low = -np.ones(keys.ACTION_DIM, np.float32)
        self.action_high = np.ones(keys.ACTION_DIM, np.float32)

    def _env_action(self, action: np.ndarray) -> np.ndarray:
        return ours_to_widowx(action)

    @property
    def base_pose(self) -> np.ndarray:
        return _shift(_np(self.base.agent.robot.pose.raw_pose)[0], self.spec.surface_z)

    def ee_target_pose(self) -> np.ndarray:
        """(7,) the arm controller's current target pose (task frame), what the next delta is
        applied to; equals the EE pose after a reset."""
        target = _np(self.base.agent.controller.controllers["arm"].get_state()["target_pose"])[0]
        base = _np(self.base.agent.robot.pose.raw_pose)[0]
        base_rot = Rotation.from_quat(np.roll(base[3:], -1))
        pos = base[:3] + base_rot.apply(target[:3])
        quat = (base_rot * Rotation.from_quat(np.roll(target[3:], -1))).as_quat()
        return _shift(np.concatenate([pos, np.roll(quat, 1)]), self.spec.surface_z)

    def objects(self) -> tuple[Any, Any]:
        """(manipulated object, target object) actors."""
        return self.base.objs[self.spec.obj_attr], self.base.objs[self.spec.target_attr]

    def object_extents(self) -> np.ndarray:
        """(3,) the manipulated object's bounding-box size in its own frame (metres, this
        episode's scale)."""
        return _np(self.base.episode_model_bbox_sizes[self.spec.obj_attr]).astype(np.float64)

    def _policy_obs(self, raw) -> dict[str, Any]:
        robot = self.base.agent.robot
        qpos = _np(robot.get_qpos()).astype(np.float32)
        qvel = _np(robot.get_qvel()).astype(np.float32)
        fingers = qpos[:, -2:].mean(axis=1, keepdims=True)
        opening = np.clip((fingers - FINGER_CLOSED) / (FINGER_OPEN - FINGER_CLOSED), 0, 1)
        obs: dict[str, Any] = {
            keys.OBS_STATE: np.concatenate([qpos, qvel], axis=1),
            keys.OBS_JOINT_POS: qpos,
            # looked up each time: a reconfiguring reset rebuilds the robot and its links
            keys.OBS_EE_POSE: _shift(_np(robot.links_map[EE_LINK].pose.raw_pose), self.spec.surface_z),
            keys.OBS_GRIPPER: opening.astype(np.float32),
        }
        if self.obs_mode == "state":
            obj, target = self.objects()
            poses = [_shift(_np(a.pose.raw_pose), self.spec.surface_z) for a in (obj, target)]
            obs[keys.OBS_ENV_STATE] = np.concatenate(poses, axis=1)
        else:
            obs[keys.obs_rgb(self.camera)] = self._resize(raw["sensor_data"][self.camera]["rgb"])
        obs = {k: self._unbatch(v) for k, v in obs.items()}
        obs[keys.INSTRUCTION] = self.spec.instruction
        return obs

    def _resize(self, rgb) -> np.ndarray:
        """(N, 480, 640, 3) camera images -> (N, image_size, image_size, 3) uint8."""
        import cv2

        size = (self.image_size, self.image_size)
        frames = _np(rgb).astype(np.uint8)
        return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])

    def _privileged(self, success: np.ndarray) -> dict[str, Any]:
        obj, target = self.objects()
        dz = self.spec.surface_z
        priv: dict[str, Any] = {
            keys.SIM_OBJ_POSE: _shift(_np(obj.pose.raw_pose), dz),
            keys.SIM_TARGET_POSE: _shift(_np(target.pose.raw_pose), dz),
            keys.SIM_GOAL_POS: self._goal_pos(),
            keys.SIM_IS_GRASPED: _np(self.base.agent.is_grasping(obj)).astype(bool).reshape(-1),
            keys.SIM_CONTACT: self._contact(obj),
            keys.SIM_SUCCESS: np.asarray(success, bool).reshape(-1),
        }
        return {k: self._unbatch(v) for k, v in priv.items()}

    def _touch_links(self) -> list:
        agent = self.base.agent
        return [agent.finger1_link, agent.finger2_link]

    def _goal_pos(self) -> np.ndarray:
        """(num_envs, 3) where the object's centre rests when placed (see ``TaskSpec.goal``):
        ``on_top`` one object height above the target's centre (stacked cubes), ``resting_on`` on
        the target's top face (its bounding-box half height above its centre)."""
        kind, _, name = self.spec.goal.partition(":")
        target = self.base.objs[name]
        pos = _shift(_np(target.pose.p), self.spec.surface_z).reshape(self.num_envs, 3)
        if kind == "on_top":
            lift = 2 * self.spec.obj_half_size
        else:
            lift = float(_np(self.base.episode_model_bbox_sizes[name])[2]) / 2 + self.spec.obj_half_size
        return pos + np.array([0.0, 0.0, lift], np.float32)

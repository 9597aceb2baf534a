"""Robot profiles: everything a bridge must know about one arm, as data.

A profile names the arm's joints as the robot's URDF does and as its ROS 2 driver publishes them
(``joint_prefix``: franka_ros2 calls the Panda's joints ``panda_joint1..7`` or, on an FR3,
``fr3_joint1..7``), its joint limits, home pose, the workspace box the end effector may be sent to,
the largest joint move allowed per control step, and the gripper's command range. A second robot
(WidowX 250s, :data:`WIDOWX_250S`) is a second entry in :data:`PROFILES`.

URDFs: the Panda's ships inside the ManiSkill3 wheel; the WidowX's is ManiSkill's downloadable
``widowx250s`` asset pack, found under ManiSkill's asset directory (``$MS_ASSET_DIR/data``, default
``~/.maniskill/data``). Either can be replaced by an explicit ``urdf_path``.

Poses are 7-D ``[x, y, z, qw, qx, qy, qz]`` in the robot-base frame (metres, unit quaternion wxyz).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stare_robot.names import did_you_mean


class UnknownRobotError(ValueError):
    """A robot name that is not in :data:`PROFILES`, or a joint prefix the robot does not use."""


class JointStateError(ValueError):
    """A joint-state message that lacks joints, repeats them, or carries non-finite values."""


def _maniskill_asset(relative: str) -> Path:
    """Path of a robot asset shipped inside the installed ``mani_skill`` wheel, without importing
    it (importing ManiSkill pulls in SAPIEN and torch)."""
    spec = importlib.util.find_spec("mani_skill")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the robot URDF {relative!r} ships with ManiSkill3; install the sim extra "
            "(pip install -e '.[sim]') or pass an explicit urdf_path"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / relative


def _maniskill_download(relative: str) -> Path:
    """Path of a robot asset from ManiSkill's downloadable packs: ``$MS_ASSET_DIR/data/<relative>``
    (ManiSkill's own default ``~/.maniskill/data``)."""
    root = Path(os.environ.get("MS_ASSET_DIR", Path.home() / ".maniskill")) / "data"
    path = root / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"robot URDF {path} not found: download ManiSkill's asset pack "
            "(python -m mani_skill.utils.download_asset widowx250s), point MS_ASSET_DIR at a folder "
            "holding data/robots/..., or pass an explicit urdf_path"
        )
    return path


# where a profile's ``urdf_asset`` is looked up
URDF_SOURCES = {"maniskill_wheel": _maniskill_asset, "maniskill_download": _maniskill_download}


@dataclass(frozen=True)
class RobotProfile:
    """One arm. Joint tuples are in kinematic order (base to tip); limits in radians."""

    name: str
    urdf_asset: str  # path inside mani_skill/assets (see ``urdf_path``)
    base_link: str
    ee_link: str  # the controlled frame (the TCP between the fingertips)
    arm_joints: tuple[str, ...]  # URDF names
    gripper_joints: tuple[str, ...]  # URDF names; the first is the commanded one (others mimic it)
    joint_prefix: str  # prefix of the URDF joint names, replaced by the configured ROS prefix
    ros_prefixes: tuple[str, ...]  # prefixes the real drivers use for this arm
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    home: tuple[float, ...]
    workspace_low: tuple[float, float, float]  # EE position box, base frame (metres)
    workspace_high: tuple[float, float, float]
    max_joint_step: float  # largest |q_target - q| per control step (radians)
    max_joint_velocity: tuple[float, ...]  # rad/s per arm joint: a command's duration respects it
    gripper_range: tuple[float, float]  # commanded finger position (closed, open) in metres
    finger_open_width: float  # finger joint position when fully open (metres)
    control_rate_hz: float
    urdf_source: str = "maniskill_wheel"  # a key of URDF_SOURCES

    @property
    def dof(self) -> int:
        return len(self.arm_joints)

    @property
    def urdf_path(self) -> Path:
        return URDF_SOURCES[self.urdf_source](self.urdf_asset)

    @property
    def lower_array(self) -> np.ndarray:
        return np.asarray(self.lower, dtype=np.float64)

    @property
    def upper_array(self) -> np.ndarray:
        return np.asarray(self.upper, dtype=np.float64)

    def _rename(self, names: Sequence[str], prefix: str | None) -> tuple[str, ...]:
        prefix = self.joint_prefix if prefix is None else prefix
        if prefix not in self.ros_prefixes:
            raise UnknownRobotError(
                f"joint prefix {prefix!r} is not used by robot {self.name!r}; "
                f"valid: {', '.join(self.ros_prefixes)}"
            )
        if prefix == self.joint_prefix:
            return tuple(names)
        old = self.joint_prefix + "_"
        return tuple(prefix + "_" + n[len(old):] if n.startswith(old) else n for n in names)

    def ros_arm_joints(self, prefix: str | None = None) -> tuple[str, ...]:
        """Arm joint names as the ROS 2 driver publishes them, e.g. ``fr3_joint1..7``."""
        return self._rename(self.arm_joints, prefix)

    def ros_gripper_joints(self, prefix: str | None = None) -> tuple[str, ...]:
        return self._rename(self.gripper_joints, prefix)

    def gripper_command(self, action_value: float) -> float:
        """Normalised gripper action (-1 close .. +1 open, clipped) -> finger position command,
        the same affine map as ManiSkill's ``clip_and_scale_action``."""
        lo, hi = self.gripper_range
        a = float(np.clip(action_value, -1.0, 1.0))
        return lo + 0.5 * (a + 1.0) * (hi - lo)

    def gripper_action(self, command: float) -> float:
        """Inverse of :meth:`gripper_command` (finger position -> normalised action in [-1, 1])."""
        lo, hi = self.gripper_range
        return float(np.clip(2.0 * (command - lo) / (hi - lo) - 1.0, -1.0, 1.0))


def order_joints(names: Sequence[str], values: Sequence[float], wanted: Sequence[str]) -> np.ndarray:
    """Pick ``wanted`` joints out of a joint-state message's parallel ``names``/``values`` lists.

    Returns (len(wanted),) float64 in ``wanted`` order. Raises :class:`JointStateError` when the
    lists differ in length, a wanted joint is missing or repeated, or a value is not finite.
    """
    names = list(names)
    if len(names) != len(values):
        raise JointStateError(f"joint state has {len(names)} names but {len(values)} positions")
    index = {}
    for i, n in enumerate(names):
        if n in index:
            raise JointStateError(f"joint state names {n!r} twice")
        index[n] = i
    missing = [n for n in wanted if n not in index]
    if missing:
        raise JointStateError(
            f"joint state lacks joints {missing}; expected {list(wanted)}, got {names}"
        )
    out = np.array([values[index[n]] for n in wanted], dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise JointStateError(f"joint state has non-finite positions {out.tolist()}")
    return out


# Franka Emika Panda as ManiSkill3 3.0.1 models it (panda_v2.urdf). Limits are Franka's published
# ones (= the URDF's; tests/robots check they agree). Home = ManiSkill's "rest" keyframe.
PANDA = RobotProfile(
    name="panda",
    urdf_asset="robots/panda/panda_v2.urdf",
    base_link="panda_link0",
    ee_link="panda_hand_tcp",
    arm_joints=tuple(f"panda_joint{i}" for i in range(1, 8)),
    gripper_joints=("panda_finger_joint1", "panda_finger_joint2"),
    joint_prefix="panda",
    ros_prefixes=("panda", "fr3"),
    lower=(-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973),
    upper=(2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973),
    home=(0.0, np.pi / 8, 0.0, -np.pi * 5 / 8, 0.0, np.pi * 3 / 4, np.pi / 4),
    # In front of the base, above the table (the base sits at table height in ManiSkill's scenes).
    workspace_low=(0.15, -0.5, -0.02),
    workspace_high=(0.85, 0.5, 0.7),
    max_joint_step=0.25,
    # Franka's published maximum joint velocities (Panda; the FR3's are equal or higher)
    max_joint_velocity=(2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61),
    # ManiSkill's gripper controller: -0.01 (squeezes thin objects) .. 0.04 m per finger
    gripper_range=(-0.01, 0.04),
    finger_open_width=0.04,
    control_rate_hz=20.0,
)

# Trossen/Interbotix WidowX 250s (6 DOF), as ManiSkill3's ``widowx250s`` pack models it (the
# Interbotix description; wx250s.urdf). The Interbotix driver (interbotix_xsarm_control /
# ros_control) publishes these joint names unprefixed, in the robot's namespace (e.g.
# /wx250s/joint_states). Limits = the URDF's (= Interbotix's). Home = the measured Bridge-dataset
# rest pose of ManiSkill's SimplerEnv scenes. Fingers: 0.015 (closed) .. 0.037 m.
WIDOWX_250S = RobotProfile(
    name="widowx250s",
    urdf_asset="robots/widowx/wx250s.urdf",
    urdf_source="maniskill_download",
    base_link="base_link",
    ee_link="ee_gripper_link",
    arm_joints=("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"),
    gripper_joints=("left_finger", "right_finger"),
    joint_prefix="",
    ros_prefixes=("",),
    lower=(-np.pi, -1.8849555921538759, -2.1467549799530254, -3.141582653589793,
           -1.7453292519943295, -3.141582653589793),
    upper=(np.pi, 1.9896753472735358, 1.6057029118347832, 3.141582653589793,
           2.1467549799530254, 3.141582653589793),
    home=(-0.01840777, 0.0398835, 0.22242722, -0.00460194, 1.36524296, 0.00153398),
    # In front of the base over the table (Bridge's tabletop is at the base's height); the arm
    # reaches ~0.65 m, the box keeps the gripper well inside that and above the table.
    workspace_low=(0.12, -0.35, 0.0),
    workspace_high=(0.50, 0.35, 0.40),
    max_joint_step=0.3,
    # the URDF's velocity limit (pi rad/s) halved: Dynamixel arms overshoot near their limit
    max_joint_velocity=(np.pi / 2,) * 6,
    gripper_range=(0.015, 0.037),
    finger_open_width=0.037,
    control_rate_hz=5.0,  # BridgeData v2's control rate
)

PROFILES: dict[str, RobotProfile] = {p.name: p for p in (PANDA, WIDOWX_250S)}


def get_profile(name: str) -> RobotProfile:
    """The profile of robot ``name``; an unknown name raises with the valid names."""
    if name in PROFILES:
        return PROFILES[name]
    hint = did_you_mean(name, PROFILES)
    raise UnknownRobotError(f"unknown robot {name!r}.{hint} Valid robots: {', '.join(PROFILES)}")

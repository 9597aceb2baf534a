"""Latest sensor messages -> one policy observation, refusing stale or mismatched data.

The policy client node keeps the newest message of each *source* (camera image, joint state,
end-effector pose, privileged env state) in an :class:`ObservationPairer`; at each control tick
it asks for a pair. A pair is refused (:class:`StaleObservation`) when a needed source has never
arrived, arrived longer than ``max_age_s`` ago (receive time, so sim-time stamps work too), or was
stamped more than ``max_skew_s`` away from the joint state it is paired with.

Which sources a policy needs follows from its metadata (:func:`required_sources`), and
:func:`check_inputs_available` refuses at start-up, by name, an input the graph cannot provide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from stare_robot import keys
from stare_robot.policies.base import PolicyMetadata

SOURCE_IMAGE = "image"  # sensor_msgs/Image, (H, W, 3) uint8
SOURCE_JOINTS = "joint_states"  # sensor_msgs/JointState -> (position (J,), velocity (J,))
SOURCE_EE_POSE = "ee_pose"  # geometry_msgs/PoseStamped from the bridge, (7,)
SOURCE_ENV_STATE = "env_state"  # std_msgs/Float32MultiArray from sim_robot (sim only), (E,)


class InputUnavailableError(ValueError):
    """The policy needs an input this graph does not provide."""


class StaleObservation(Exception):
    """No usable observation right now (``reason`` says which source and why)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class GraphInputs:
    """What the running graph can provide to a policy."""

    camera: str | None  # camera name whose images arrive (None = no camera topic)
    ee_pose: bool = True  # the bridge publishes the end-effector pose
    env_state: bool = False  # sim_robot publishes privileged env state (sim-only runs)


def source_of(key: str, camera: str | None) -> str | None:
    """Which source feeds observation ``key`` (None = no source in this graph can)."""
    if key in (keys.OBS_STATE, keys.OBS_JOINT_POS, keys.OBS_GRIPPER):
        return SOURCE_JOINTS
    if key == keys.OBS_EE_POSE:
        return SOURCE_EE_POSE
    if key == keys.OBS_ENV_STATE:
        return SOURCE_ENV_STATE
    if camera is not None and key == keys.obs_rgb(camera):
        return SOURCE_IMAGE
    return None


def check_inputs_available(metadata: PolicyMetadata, graph: GraphInputs) -> list[str]:
    """The sources ``metadata``'s inputs need; raises :class:`InputUnavailableError` naming every
    input the graph cannot provide and why."""
    problems, sources = [], []
    for key in metadata.inputs:
        source = source_of(key, graph.camera)
        if source is None:
            where = f"camera {graph.camera!r}" if graph.camera else "no camera"
            problems.append(f"{key!r} (no topic provides it; this graph has {where})")
        elif source == SOURCE_ENV_STATE and not graph.env_state:
            problems.append(f"{key!r} (privileged simulator state: a real robot has none; for a "
                            "sim-only run set env_state_topic and let sim_robot publish it, or "
                            "serve an rgb-mode policy)")
        elif source == SOURCE_EE_POSE and not graph.ee_pose:
            problems.append(f"{key!r} (no ee_pose topic)")
        else:
            sources.append(source)
    if problems:
        raise InputUnavailableError(
            f"policy {metadata.name!r} needs inputs this graph cannot provide: {'; '.join(problems)}"
        )
    return list(dict.fromkeys(sources))


@dataclass(frozen=True)
class Sample:
    value: Any
    stamp: float  # the message's header stamp, seconds (sensor or sim time)
    received: float  # monotonic seconds when it arrived


class ObservationPairer:
    """Keeps the newest sample of each source; :meth:`pair` returns them if fresh and matched."""

    def __init__(self, sources: list[str], max_age_s: float, max_skew_s: float = np.inf):
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s}")
        self.sources = list(sources)
        self.max_age_s = max_age_s
        self.max_skew_s = max_skew_s
        self._latest: dict[str, Sample] = {}

    def update(self, source: str, value: Any, stamp: float, received: float) -> None:
        self._latest[source] = Sample(value, float(stamp), float(received))

    def pair(self, now: float) -> tuple[dict[str, Any], float]:
        """``({source: value}, joint-state stamp)`` or raise :class:`StaleObservation`."""
        for source in self.sources:
            sample = self._latest.get(source)
            if sample is None:
                raise StaleObservation(f"no {source} message received yet")
            age = now - sample.received
            if age > self.max_age_s:
                raise StaleObservation(f"{source} is {age * 1e3:.0f} ms old "
                                       f"(max_observation_age_s = {self.max_age_s:g})")
        ref = self._latest[SOURCE_JOINTS].stamp if SOURCE_JOINTS in self._latest else None
        if ref is not None:
            for source in self.sources:
                skew = abs(self._latest[source].stamp - ref)
                if skew > self.max_skew_s:
                    raise StaleObservation(f"{source} stamp is {skew * 1e3:.0f} ms from the joint "
                                           f"state's (max_stamp_skew_s = {self.max_skew_s:g})")
        return {s: self._latest[s].value for s in self.sources}, (ref if ref is not None else now)


def resize_image(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, 3) uint8 -> (height, width, 3) uint8, bilinear (unchanged when already that size)."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    if rgb.shape[:2] == (height, width):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))


def build_observation(
    metadata: PolicyMetadata,
    values: Mapping[str, Any],
    instruction: str,
    camera: str | None,
    finger_open_width: float,
) -> dict[str, Any]:
    """Source values (see the ``SOURCE_*`` names) -> the observation dict ``metadata`` asks for.

    ``values[SOURCE_JOINTS]`` is ``(position (J,), velocity (J,))`` already in the policy's joint
    order (arm joints then fingers: ManiSkill's Panda qpos); ``obs/state`` is positions then
    velocities, ``obs/gripper`` the finger opening 0..1 as in simulation.
    """
    obs: dict[str, Any] = {keys.INSTRUCTION: instruction}
    for key, spec in metadata.inputs.items():
        source = source_of(key, camera)
        if source == SOURCE_IMAGE:
            obs[key] = resize_image(values[SOURCE_IMAGE], spec.shape[0], spec.shape[1])
            continue
        if source == SOURCE_JOINTS:
            q, v = (np.asarray(a, dtype=np.float32) for a in values[SOURCE_JOINTS])
            if key == keys.OBS_STATE:
                value = np.concatenate([q, v])
            elif key == keys.OBS_JOINT_POS:
                value = q
            else:  # gripper opening from the two finger joints
                value = np.clip([q[-2:].sum() / (2 * finger_open_width)], 0.0, 1.0)
        else:
            value = values[source]
        value = np.asarray(value, dtype=np.float32)
        if value.shape != tuple(spec.shape):
            raise InputUnavailableError(
                f"{key!r} from {source} has shape {value.shape} but the policy expects "
                f"{tuple(spec.shape)} (check the joint names / robot profile the policy was trained on)"
            )
        obs[key] = value
    return obs

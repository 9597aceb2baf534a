"""Latest sensor messages -> one policy observation, refusing stale or mismatched data.

The policy client node keeps the newest message of each *source* (camera image, joint state,
end-effector pose, privileged env state) in an :class:`ObservationPairer`; at each control tick
it asks for a pair. A pair is refused (:class:`StaleObservation`) when a needed source has never
arrived, arrived longer than ``max_age_s`` ago (receive time, so sim-time stamps work too), or was
stamped more than ``max_skew_s`` away from the joint state it is paired with.

Which sources a policy needs follows from its metadata (:func:`required_sources`), and
:func:`check_inputs_available` refuses at start-up, by name, an input the graph cannot provide.

The episode recorder needs every step exactly paired instead of the newest of each: a
:class:`StampMatcher` holds each *frame* message until every other source's message nearest to
its stamp is known, and emits the parts together, in stamp order.
"""

from __future__ import annotations

import bisect
from collections import deque
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

    def latest(self, source: str) -> Sample | None:
        """The newest sample of ``source`` (None before the first)."""
        return self._latest.get(source)

    def clear(self) -> None:
        """Forget every sample (a new episode: nothing from the old one may be paired)."""
        self._latest.clear()

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


class StampMatcher:
    """Pairs each message of ``frame_source`` with the message of every ``required`` source
    nearest to it in header stamp (within ``max_skew_s``), and with the nearest ``optional`` one
    when there is one (None otherwise: never waited for).

    A frame waits until the nearest is certain: a required source has a message stamped at or
    after the frame (or exactly at it). Frames come out in stamp order from :meth:`add`. A frame
    whose nearest message is too far away, or that is still waiting when ``max_pending`` newer
    frames queue behind it, is dropped and counted in ``unmatched``.

        m = StampMatcher(SOURCE_IMAGE, [SOURCE_JOINTS], optional=[SOURCE_EE_POSE], max_skew_s=0.02)
        m.add(SOURCE_JOINTS, 0.10, q)                 # -> []
        m.add(SOURCE_IMAGE, 0.10, rgb)                # -> [(0.10, {"image": rgb, "joint_states": q, "ee_pose": None})]
    """

    def __init__(self, frame_source: str, required: list[str], optional: list[str] = (),
                 max_skew_s: float = 0.02, history: int = 64, max_pending: int = 32):
        if max_skew_s < 0:
            raise ValueError(f"max_skew_s must be >= 0, got {max_skew_s}")
        self.frame_source = frame_source
        self.required, self.optional = list(required), list(optional)
        self.max_skew_s = max_skew_s
        self.max_pending = max_pending
        # per source: stamps (sorted) and values, the newest ``history`` of them
        self._stamps: dict[str, list[float]] = {s: [] for s in [*self.required, *self.optional]}
        self._values: dict[str, list[Any]] = {s: [] for s in self._stamps}
        self._history = history
        self._pending: deque[tuple[float, Any]] = deque()
        self.unmatched = 0  # frames dropped: no message close enough, or waited too long

    def reset(self) -> None:
        """Forget every message and the unmatched count (a new episode)."""
        for s in self._stamps:
            self._stamps[s].clear()
            self._values[s].clear()
        self._pending.clear()
        self.unmatched = 0

    def add(self, source: str, stamp: float, value: Any) -> list[tuple[float, dict[str, Any]]]:
        """Offer one message; returns the frames it completed, ``(frame stamp, {source: value})``."""
        stamp = float(stamp)
        if source == self.frame_source:
            self._pending.append((stamp, value))
        elif source in self._stamps:
            stamps, values = self._stamps[source], self._values[source]
            i = bisect.bisect_right(stamps, stamp)
            if i and stamps[i - 1] == stamp:  # a re-published message: keep the newest value
                values[i - 1] = value
            else:
                stamps.insert(i, stamp)
                values.insert(i, value)
            if len(stamps) > self._history:
                del stamps[0], values[0]
        else:
            raise ValueError(f"unknown source {source!r}; this matcher pairs "
                             f"{[self.frame_source, *self._stamps]}")
        return self._complete()

    def _nearest(self, source: str, t: float, wait: bool) -> tuple[str, Any]:
        """("ok", value) | ("wait", None) | ("far", None)."""
        stamps = self._stamps[source]
        i = bisect.bisect_left(stamps, t)
        after = i < len(stamps)
        if wait and not after:
            return "wait", None
        candidates = [j for j in (i - 1, i) if 0 <= j < len(stamps)]
        if not candidates:
            return "far", None
        j = min(candidates, key=lambda k: abs(stamps[k] - t))
        if abs(stamps[j] - t) > self.max_skew_s:
            return "far", None
        return "ok", self._values[source][j]

    def _complete(self) -> list[tuple[float, dict[str, Any]]]:
        out = []
        while self._pending:
            t, value = self._pending[0]
            parts, state = {self.frame_source: value}, "ok"
            for source in self.required:
                state, parts[source] = self._nearest(source, t, wait=True)
                if state != "ok":
                    break
            if state == "wait" and len(self._pending) <= self.max_pending:
                break  # the nearest message may still come
            self._pending.popleft()
            if state != "ok":
                self.unmatched += 1
                continue
            for source in self.optional:
                parts[source] = self._nearest(source, t, wait=False)[1]
            out.append((t, parts))
        return out


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

"""Node logic of the ROS 2 deployment graph, free of rclpy so it unit-tests without ROS.

- :mod:`~stare_robot.deploy.pairing`: latest camera image + joint state -> one policy observation
  (freshness and stamp-matching checks, metadata-driven inputs); ``StampMatcher`` pairs the
  recorder's frames by header stamp.
- :mod:`~stare_robot.deploy.executor`: executes action chunks step by step and holds on any fault
  (server slow/down/erroring, malformed or NaN chunk), resuming when the server answers again.
- :mod:`~stare_robot.deploy.recorder`: buffers recorded frames and writes them into an episode
  store on a background thread, with online stages and gripper keyframes; counts drops.
"""

from __future__ import annotations

from stare_robot.deploy.executor import ChunkExecutor, ExecutorStatus, Hold
from stare_robot.deploy.pairing import (
    GraphInputs,
    InputUnavailableError,
    ObservationPairer,
    StaleObservation,
    StampMatcher,
    build_observation,
    check_inputs_available,
)
from stare_robot.deploy.recorder import EpisodeRecorder, RecordedFrame, RecorderError

__all__ = [
    "ChunkExecutor",
    "EpisodeRecorder",
    "ExecutorStatus",
    "GraphInputs",
    "Hold",
    "InputUnavailableError",
    "ObservationPairer",
    "RecordedFrame",
    "RecorderError",
    "StaleObservation",
    "StampMatcher",
    "build_observation",
    "check_inputs_available",
]

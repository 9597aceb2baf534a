"""stare-robot: stage-aware fine-tuning and deployment of vision-language-action robot policies.

The core library imports neither rclpy nor mani_skill; those live in ``stare_robot.sim`` and the
ROS 2 package.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stare-robot")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

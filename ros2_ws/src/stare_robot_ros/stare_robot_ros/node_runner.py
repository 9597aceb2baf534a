"""How every stare-robot node process starts and stops (ros2/examples minimal_publisher shape)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


class NodeConfigError(ValueError):
    """A parameter value the node cannot work with (message names the parameter)."""


def run_node(make_node: Callable[[], Node], args: list[str] | None = None) -> int:
    """Build the node under the ``rclpy.init`` context and spin until SIGINT/SIGTERM.

    rclpy's default signal handlers turn both signals into a clean shutdown; a bad parameter (or
    a start-up condition a callback finds unmet, raised as NodeConfigError) exits with status 2
    and one line saying what is wrong.
    """
    try:
        with rclpy.init(args=args):
            try:
                node = make_node()
            except NodeConfigError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            try:
                rclpy.spin(node)
            except NodeConfigError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            finally:
                close = getattr(node, "close", None)
                if close is not None:
                    close()
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0

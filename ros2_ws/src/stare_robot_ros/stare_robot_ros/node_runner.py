"""How every stare-robot node process starts and stops (ros2/examples minimal_publisher shape)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
import yaml
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter

PARAM_FLAGS = ("-p", "--param")


class NodeConfigError(ValueError):
    """A parameter value the node cannot work with (message names the parameter)."""


def command_line_overrides(argv: list[str]) -> list[Parameter]:
    """The bare ``-p name:=value`` rules of ``argv``'s ``--ros-args`` sections, typed as YAML.

    Why: rcl files a bare ``-p`` under the wildcard node ``/**``, and a node's own section of a
    params file (``policy_client: ros__parameters: ...``) beats the wildcard whatever the order,
    so ``--params-file F -p x:=y`` silently kept F's value. A node built with these as
    ``parameter_overrides`` lets the command line win, as documented. Node-prefixed rules
    (``-p policy_client:x:=y``) are left to rcl, which already orders them against the file.
    """
    overrides: dict[str, Parameter] = {}
    in_ros_args = False
    for i, arg in enumerate(argv):
        if arg == "--ros-args":
            in_ros_args = True
        elif arg == "--":
            in_ros_args = False
        elif in_ros_args and arg in PARAM_FLAGS and i + 1 < len(argv):
            name, sep, raw = argv[i + 1].partition(":=")
            if sep and name and ":" not in name:
                try:
                    overrides[name] = Parameter(name, value=_parameter_value(raw))
                except (TypeError, ValueError) as err:
                    raise NodeConfigError(f"-p {argv[i + 1]}: {err}") from None
    return list(overrides.values())


def _parameter_value(raw: str):
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if value is None:
        return ""
    if isinstance(value, list) and value:
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            kinds = {type(v) for v in value}
            return [float(v) for v in value] if len(kinds) > 1 else value  # [0.1, 1] = doubles
        return value
    return value if isinstance(value, (bool, int, float, str)) else raw


def run_node(make_node: Callable[..., Node], args: list[str] | None = None) -> int:
    """Build the node under the ``rclpy.init`` context and spin until SIGINT/SIGTERM.

    ``make_node(parameter_overrides=...)`` gets the command line's ``-p`` values (they win over
    any params file). rclpy's default signal handlers turn both signals into a clean shutdown (a
    callback caught mid-way by it ends quietly too); a bad parameter (or a start-up condition a
    callback finds unmet, raised as NodeConfigError) exits with status 2 and one line saying what
    is wrong.
    """
    argv = list(sys.argv if args is None else args)
    try:
        with rclpy.init(args=argv):
            try:
                node = make_node(parameter_overrides=command_line_overrides(argv))
            except NodeConfigError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            try:
                rclpy.spin(node)
            except NodeConfigError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            except Exception:
                if rclpy.ok():
                    raise
                # a signal shut the context down while a callback was publishing: a clean stop
            finally:
                close = getattr(node, "close", None)
                if close is not None:
                    close()
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0

"""Record demonstrations on a real robot: camera_node, robot_bridge in ``observe`` mode (it never
commands the arm; it publishes the EE-delta action that explains the arm's own motion while an
operator teleoperates it) and the episode recorder, all reading ``config/<robot>.yaml``. The
robot's driver and the teleoperation (leader arm, SpaceMouse, ...) run on their own.

    ros2 launch stare_robot_ros record.launch.py robot:=widowx store_path:=data/demos_real.zarr \
        camera_serial:=123456789 task:=PutCarrotOnPlateInScene-v1 instruction:="put the carrot on the plate"

Each demonstration: ``ros2 service call /episode_recorder/start std_srvs/srv/Trigger``, teleoperate,
``.../label`` (std_srvs/SetBool, success) and ``.../stop``. Keyframes and motion/skill stages are
labelled online from the gripper. Arguments as deploy.launch.py, plus ``task`` / ``instruction``
("" = the params file's).
"""

import os
import tempfile
from pathlib import Path

import yaml
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

CONFIG_DIR = Path(__file__).resolve().parent / "config"
ROBOTS = ("widowx", "franka")
PACKAGE = "stare_robot_ros"


def overrides_file(executable: str, overrides: dict) -> str:
    """A params file holding ``overrides`` under the node's own name, loaded after the robot's:
    there they win (a dict override lands under ``/**``, which a node's own section beats)."""
    fd, path = tempfile.mkstemp(prefix=f"stare_robot_{executable}_", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump({f"/**/{executable}": {"ros__parameters": overrides}}, f)  # any namespace
    return path


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in
           ("robot", "camera_serial", "store_path", "task", "instruction", "rate")}
    if arg["robot"] not in ROBOTS:
        raise ValueError(f"robot:={arg['robot']} is not valid; use one of {ROBOTS}")
    params = str(CONFIG_DIR / f"{arg['robot']}.yaml")
    rate = {"control_rate_hz": float(arg["rate"])} if arg["rate"] else {}
    episode = {k: arg[k] for k in ("task", "instruction") if arg[k]}

    def node(executable: str, **overrides) -> Node:
        return Node(package=PACKAGE, executable=executable, name=executable,
                    parameters=[params, overrides_file(executable, {**rate, **overrides})],
                    output="screen")

    return [
        node("camera_node", serial_number=arg["camera_serial"]),
        node("robot_bridge", mode="observe"),
        node("episode_recorder", store_path=arg["store_path"], **episode),
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("robot", default_value="franka", choices=list(ROBOTS)),
        DeclareLaunchArgument("camera_serial", default_value=""),
        DeclareLaunchArgument("store_path", default_value="data/demos_real.zarr"),
        DeclareLaunchArgument("task", default_value=""),
        DeclareLaunchArgument("instruction", default_value=""),
        DeclareLaunchArgument("rate", default_value=""),
        OpaqueFunction(function=_nodes),
    ])

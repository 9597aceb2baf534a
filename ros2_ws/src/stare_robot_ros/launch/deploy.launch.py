"""Deploy a served policy on a robot: camera (or the simulated robot), robot bridge, policy client
and, with ``record:=true``, the episode recorder - all reading
``config/<robot>[_sim][_state].yaml``.

    ros2 launch stare_robot_ros deploy.launch.py robot:=widowx sim:=false \
        server_url:=http://gpu-box:8000 camera_serial:=123456789 record:=true store_path:=data/real.zarr

Arguments: ``robot`` widowx | franka; ``sim`` true (sim_robot: ManiSkill3 standing in for the
drivers and the camera) | false (the real drivers must already run; camera_node reads the
RealSense); ``server_url``; ``token`` (the server's ``--auth-token``; "" = the policy client reads
``$STARE_ROBOT_TOKEN``, which it inherits: exporting it before ``ros2 launch`` keeps the token out
of every process list; given here it reaches the node in its environment, not its command line);
``camera_serial`` ("" = the first RealSense); ``record`` true | false; ``store_path`` (with
record); ``rate`` control rate in Hz ("" = the params file's); ``obs_mode`` rgb | state (state:
a state-mode checkpoint such as ``make demo``'s, fed sim_robot's privileged state:
``robot:=franka sim:=true`` only, ``config/franka_sim_state.yaml``).

The arguments' values reach the nodes in a second params file under each node's own name, so
they win over the robot's params file (a ``/**`` value, as a plain dict override would be,
loses to a node's own section).

Needs a ROS 2 install (``launch``/``launch_ros`` are not on PyPI). Without one, start the same
executables with the same params file, e.g.
``robot_bridge --ros-args --params-file launch/config/widowx.yaml`` (what tests/ros does).
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
OBS_MODES = ("rgb", "state")
TOKEN_ENV = "STARE_ROBOT_TOKEN"  # what policy_client reads when its token parameter is ""
PACKAGE = "stare_robot_ros"


def params_file(robot: str, sim: bool, obs_mode: str = "rgb") -> Path:
    """``config/<robot>.yaml`` (real), ``config/<robot>_sim.yaml`` or, for a state-mode policy,
    ``config/franka_sim_state.yaml``."""
    if robot not in ROBOTS:
        raise ValueError(f"robot:={robot} is not valid; use one of {ROBOTS}")
    if obs_mode not in OBS_MODES:
        raise ValueError(f"obs_mode:={obs_mode} is not valid; use one of {OBS_MODES}")
    if obs_mode == "state" and (robot, sim) != ("franka", True):
        raise ValueError("obs_mode:=state needs robot:=franka sim:=true: a state-mode policy reads "
                         "the simulator's privileged state, which no real robot has")
    return CONFIG_DIR / f"{robot}{'_sim' if sim else ''}{'_state' if obs_mode == 'state' else ''}.yaml"


def overrides_file(executable: str, overrides: dict) -> str:
    """A params file holding ``overrides`` under the node's own name (loaded after the robot's)."""
    fd, path = tempfile.mkstemp(prefix=f"stare_robot_{executable}_", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump({f"/**/{executable}": {"ros__parameters": overrides}}, f)  # any namespace
    return path


def flag(value: str, name: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ValueError(f"{name}:={value} is not valid; use true or false")
    return value.lower() == "true"


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in
           ("robot", "sim", "server_url", "token", "camera_serial", "record", "store_path", "rate",
            "obs_mode")}
    sim, record = flag(arg["sim"], "sim"), flag(arg["record"], "record")
    params = str(params_file(arg["robot"], sim, arg["obs_mode"]))
    rate = {"control_rate_hz": float(arg["rate"])} if arg["rate"] else {}

    def node(executable: str, env: dict | None = None, **overrides) -> Node:
        return Node(package=PACKAGE, executable=executable, name=executable,
                    parameters=[params, overrides_file(executable, {**rate, **overrides})],
                    additional_env=env or {}, output="screen")

    token_env = {TOKEN_ENV: arg["token"]} if arg["token"] else None  # not in argv, not in the log
    nodes = [node("sim_robot") if sim else node("camera_node", serial_number=arg["camera_serial"]),
             node("robot_bridge"),
             node("policy_client", token_env, server_url=arg["server_url"])]
    if record:
        nodes.append(node("episode_recorder", store_path=arg["store_path"]))
    return nodes


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("robot", default_value="franka", choices=list(ROBOTS)),
        DeclareLaunchArgument("sim", default_value="true", choices=["true", "false"]),
        DeclareLaunchArgument("server_url", default_value="http://127.0.0.1:8000"),
        DeclareLaunchArgument("token", default_value=""),
        DeclareLaunchArgument("obs_mode", default_value="rgb"),  # rgb | state (checked in _nodes)
        DeclareLaunchArgument("camera_serial", default_value=""),
        DeclareLaunchArgument("record", default_value="false", choices=["true", "false"]),
        DeclareLaunchArgument("store_path", default_value="data/deploy.zarr"),
        DeclareLaunchArgument("rate", default_value=""),
        OpaqueFunction(function=_nodes),
    ])

"""Deploy a served policy on a robot: camera (or the simulated robot), robot bridge, policy client
and, with ``record:=true``, the episode recorder - all reading ``config/<robot>[_sim].yaml``.

    ros2 launch stare_robot_ros deploy.launch.py robot:=widowx sim:=false \
        server_url:=http://gpu-box:8000 camera_serial:=123456789 record:=true store_path:=data/real.zarr

Arguments: ``robot`` widowx | franka; ``sim`` true (sim_robot: ManiSkill3 standing in for the
drivers and the camera) | false (the real drivers must already run; camera_node reads the
RealSense); ``server_url``; ``camera_serial`` ("" = the first RealSense); ``record`` true | false;
``store_path`` (with record); ``rate`` control rate in Hz ("" = the params file's).

Needs a ROS 2 install (``launch``/``launch_ros`` are not on PyPI). Without one, start the same
executables with the same params file, e.g.
``robot_bridge --ros-args --params-file launch/config/widowx.yaml`` (what tests/ros does).
"""

from pathlib import Path

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

CONFIG_DIR = Path(__file__).resolve().parent / "config"
ROBOTS = ("widowx", "franka")
PACKAGE = "stare_robot_ros"


def params_file(robot: str, sim: bool) -> Path:
    """``config/<robot>.yaml`` (real) or ``config/<robot>_sim.yaml``."""
    if robot not in ROBOTS:
        raise ValueError(f"robot:={robot} is not valid; use one of {ROBOTS}")
    return CONFIG_DIR / f"{robot}{'_sim' if sim else ''}.yaml"


def flag(value: str, name: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ValueError(f"{name}:={value} is not valid; use true or false")
    return value.lower() == "true"


def _nodes(context):
    arg = {name: LaunchConfiguration(name).perform(context) for name in
           ("robot", "sim", "server_url", "camera_serial", "record", "store_path", "rate")}
    sim, record = flag(arg["sim"], "sim"), flag(arg["record"], "record")
    params = str(params_file(arg["robot"], sim))
    rate = {"control_rate_hz": float(arg["rate"])} if arg["rate"] else {}

    def node(executable: str, **overrides) -> Node:
        return Node(package=PACKAGE, executable=executable, name=executable,
                    parameters=[params, {**rate, **overrides}], output="screen")

    nodes = [node("sim_robot") if sim else node("camera_node", serial_number=arg["camera_serial"]),
             node("robot_bridge"),
             node("policy_client", server_url=arg["server_url"])]
    if record:
        nodes.append(node("episode_recorder", store_path=arg["store_path"]))
    return nodes


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("robot", default_value="franka", choices=list(ROBOTS)),
        DeclareLaunchArgument("sim", default_value="true", choices=["true", "false"]),
        DeclareLaunchArgument("server_url", default_value="http://127.0.0.1:8000"),
        DeclareLaunchArgument("camera_serial", default_value=""),
        DeclareLaunchArgument("record", default_value="false", choices=["true", "false"]),
        DeclareLaunchArgument("store_path", default_value="data/deploy.zarr"),
        DeclareLaunchArgument("rate", default_value=""),
        OpaqueFunction(function=_nodes),
    ])

"""Simulated Franka graph: sim_robot, robot_bridge, policy_client and episode_recorder, all reading
launch/config/franka_sim.yaml; the policy runs behind `stare-robot serve` at ``server_url``.

``deploy.launch.py robot:=franka sim:=true record:=true`` starts the same graph from the same params
file (and the WidowX one, and the real robots); this file stays for its ``params:=`` argument.

Needs a full ROS 2 install (``launch`` / ``launch_ros`` are not on PyPI):

    ros2 launch launch/franka_sim.launch.py server_url:=http://127.0.0.1:8000 \
        store_path:=data/sim_graph.zarr [params:=launch/config/franka_sim_lockstep.yaml]

Without one, start the same executables directly (what tests/ros does):

    sim_robot --ros-args --params-file launch/config/franka_sim.yaml
    robot_bridge --ros-args --params-file launch/config/franka_sim.yaml
    policy_client --ros-args --params-file launch/config/franka_sim.yaml -p server_url:=http://127.0.0.1:8000
    episode_recorder --ros-args --params-file launch/config/franka_sim.yaml -p store_path:=data/sim_graph.zarr
"""

from pathlib import Path

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

CONFIG = Path(__file__).resolve().parent / "config" / "franka_sim.yaml"


def generate_launch_description() -> LaunchDescription:
    params = LaunchConfiguration("params")
    server_url = LaunchConfiguration("server_url")
    store_path = LaunchConfiguration("store_path")
    return LaunchDescription(
        [
            DeclareLaunchArgument("params", default_value=str(CONFIG)),
            DeclareLaunchArgument("server_url", default_value="http://127.0.0.1:8000"),
            DeclareLaunchArgument("store_path", default_value="data/sim_graph.zarr"),
            Node(package="stare_robot_ros", executable="sim_robot", name="sim_robot",
                 parameters=[params], output="screen"),
            Node(package="stare_robot_ros", executable="robot_bridge", name="robot_bridge",
                 parameters=[params], output="screen"),
            Node(package="stare_robot_ros", executable="policy_client", name="policy_client",
                 parameters=[params, {"server_url": server_url}], output="screen"),
            Node(package="stare_robot_ros", executable="episode_recorder", name="episode_recorder",
                 parameters=[params, {"store_path": store_path}], output="screen"),
        ]
    )

"""Simulated Franka graph: sim_robot + robot_bridge with launch/config/franka_sim.yaml.

Needs a full ROS 2 install (``launch`` / ``launch_ros`` are not on PyPI):

    ros2 launch launch/franka_sim.launch.py [params:=launch/config/franka_sim_lockstep.yaml]

Without one, start the same executables directly (what tests/ros does):

    sim_robot --ros-args --params-file launch/config/franka_sim.yaml
    robot_bridge --ros-args --params-file launch/config/franka_sim.yaml
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

CONFIG = Path(__file__).resolve().parent / "config" / "franka_sim.yaml"


def generate_launch_description() -> LaunchDescription:
    params = LaunchConfiguration("params")
    return LaunchDescription(
        [
            DeclareLaunchArgument("params", default_value=str(CONFIG)),
            Node(package="stare_robot_ros", executable="sim_robot", name="sim_robot",
                 parameters=[params], output="screen"),
            Node(package="stare_robot_ros", executable="robot_bridge", name="robot_bridge",
                 parameters=[params], output="screen"),
        ]
    )

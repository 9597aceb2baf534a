"""ament_python package of the stare-robot ROS 2 nodes; also pip-installable into the project's
virtualenv (``pip install -e ros2_ws/src/stare_robot_ros``), which puts the node executables
(``sim_robot``, ``robot_bridge``, ``camera_node``, ...) on the venv's PATH."""

from glob import glob

from setuptools import setup

package_name = "stare_robot_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=[package_name],
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        # `ros2 launch stare_robot_ros deploy.launch.py` after a colcon build; the repository's
        # top-level launch/ is a link to this folder
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/launch/config", glob("launch/config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="stare-robot maintainers",
    maintainer_email="maintainers@stare-robot.invalid",
    description="ROS 2 nodes of stare-robot (sim robot, robot bridge, policy client, episode recorder)",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "sim_robot = stare_robot_ros.sim_robot:main",
            "robot_bridge = stare_robot_ros.robot_bridge:main",
            "policy_client = stare_robot_ros.policy_client:main",
            "episode_recorder = stare_robot_ros.episode_recorder:main",
            "camera_node = stare_robot_ros.camera_node:main",
        ],
    },
)

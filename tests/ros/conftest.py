"""The ROS tests' fixtures (``probe``, ``start_node``) for every module here, without each test
module importing them by name (ruff F811: a fixture parameter redefining the import)."""

from ros_graph import probe, start_node  # noqa: F401

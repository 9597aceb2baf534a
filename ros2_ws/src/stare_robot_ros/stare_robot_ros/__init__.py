"""ROS 2 nodes of stare-robot. Each node module is a thin rclpy shell (``main(args=None)``); the
logic lives in :mod:`stare_robot.robots` (kinematics, safety), :mod:`stare_robot.cameras` (the
RealSense, reconnection) and :mod:`stare_robot_ros.joint_sim` (the simulated arm), which import no
rclpy."""

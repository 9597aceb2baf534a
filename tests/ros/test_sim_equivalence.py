"""Sim-to-ROS equivalence (a), lock-step: a recorded demo's actions, open loop, through
robot_bridge (IK) into sim_robot (joint position control), track the end-effector poses ManiSkill's
own pd_ee_delta_pose controller reached within 2 mm / 2 deg per step, and the demo still succeeds.
Both nodes run as their own processes from their console scripts with the lock-step params file."""

from __future__ import annotations

import numpy as np
import pytest
from ros_graph import call, probe, spin_until, start_node  # noqa: F401  (fixtures)
from scipy.spatial.transform import Rotation

from stare_robot import keys
from stare_robot.robots.ee_action import pose_distance

pytestmark = [pytest.mark.ros, pytest.mark.sim]

TASK = "PushCube-v1"
PARAMS = "franka_sim_lockstep.yaml"
RATE = 20.0  # launch/config/franka_sim_lockstep.yaml control_rate_hz


def _matrix(pose: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(pose[[4, 5, 6, 3]]).as_matrix()
    T[:3, 3] = pose[:3]
    return T


def _pose(T: np.ndarray) -> np.ndarray:
    x, y, z, w = Rotation.from_matrix(T[:3, :3]).as_quat()
    return np.array([*T[:3, 3], w, x, y, z])


def test_demo_replayed_through_bridge_and_sim_robot_tracks_maniskill(demo_store, probe, start_node):
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState
    from stare_robot_ros.conversions import pose_array, time_seconds
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import Trigger

    from stare_robot.data.store import EpisodeStore

    episode = next(iter(EpisodeStore.open(demo_store(TASK))))
    actions = np.asarray(episode[keys.ACTION][:], np.float64)
    demo_poses = np.asarray(episode[keys.OBS_EE_POSE][:], np.float64)  # before each action, world
    seed = int(episode.attrs[keys.ATTR_SEED])
    assert episode.attrs[keys.ATTR_SUCCESS]

    sim = start_node("sim_robot", PARAMS, task=TASK, seed=seed)
    bridge = start_node("robot_bridge", PARAMS)
    procs = [sim, bridge]
    by_step: dict[int, np.ndarray] = {}  # sim step -> TCP pose the bridge computed (base frame)
    states: list[JointState] = []

    def on_pose(msg: PoseStamped) -> None:
        by_step[round(time_seconds(msg.header.stamp) * RATE)] = pose_array(msg)

    probe.create_subscription(PoseStamped, "ee_pose", on_pose, 50)
    probe.create_subscription(JointState, "joint_states", states.append, 50)
    act_pub = probe.create_publisher(Float64MultiArray, "action", 10)
    success = probe.create_client(Trigger, "sim_robot/success")
    reset = probe.create_client(Trigger, "sim_robot/reset")

    spin_until(probe, lambda: 0 in by_step and states and act_pub.get_subscription_count() > 0, 120,
               "the first ee_pose of the lock-step graph", procs)
    assert list(states[-1].name) == [*(f"panda_joint{i}" for i in range(1, 8)),
                                     "panda_finger_joint1", "panda_finger_joint2"]
    assert not call(probe, success, Trigger.Request(), 10, procs).success
    for k, action in enumerate(actions):
        act_pub.publish(Float64MultiArray(data=[float(v) for v in action]))
        spin_until(probe, lambda k=k: k + 1 in by_step, 20, f"the state after action {k}", procs)
    solved = call(probe, success, Trigger.Request(), 10, procs)

    # the base -> world transform from the shared initial state (same seed, same joints)
    world_from_base = _matrix(demo_poses[0]) @ np.linalg.inv(_matrix(by_step[0]))
    errors = []
    for t in range(1, len(actions)):  # demo pose t = after action t-1
        reached = _pose(world_from_base @ _matrix(by_step[t]))
        errors.append(pose_distance(reached, demo_poses[t]))
    errors = np.array(errors)
    assert solved.success, "the demo no longer succeeds"
    assert errors[:, 0].max() < 2e-3, f"worst position error {errors[:, 0].max() * 1e3:.2f} mm"
    assert np.degrees(errors[:, 1].max()) < 2.0, f"worst rotation error {np.degrees(errors[:, 1].max()):.2f} deg"
    # the arm really moved (the comparison is not between standing poses)
    assert np.linalg.norm(demo_poses[-1, :3] - demo_poses[0, :3]) > 0.05

    # reset to the seed: back to step 0, at the initial pose
    by_step.clear()
    assert call(probe, reset, Trigger.Request(), 30, procs).success
    spin_until(probe, lambda: 0 in by_step, 20, "the state after reset", procs)
    dp, dr = pose_distance(_pose(world_from_base @ _matrix(by_step[0])), demo_poses[0])
    assert dp < 1e-4 and dr < 1e-3
    assert "limited by" not in bridge.log()  # the comparison ran without any safety clamp
    for proc in procs:
        assert proc.stop() == 0

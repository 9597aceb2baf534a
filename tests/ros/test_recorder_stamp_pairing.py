"""episode_recorder pairs each frame's image, joint state and action by stamp, not by arrival:
here each step's action (stamped by ``conversions.action_msg`` with the step's stamp) is
published first, then its image, then its joint state, so the newest joint state at an image's
arrival is the previous step's, and the action arrives before its frame. Each step's image,
joints and action carry the step number, so a frame holding parts of two steps shows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ros_graph import call, probe, spin_for, start_node  # noqa: F401  (fixtures)

from stare_robot import keys

pytestmark = pytest.mark.ros

STEPS = 15


def test_recorded_frames_pair_image_and_joint_state_of_the_same_stamp(tmp_path, probe, start_node):
    from builtin_interfaces.msg import Time
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState
    from stare_robot_ros import conversions as conv
    from stare_robot_ros.conversions import action_msg
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import Trigger

    from stare_robot.data.store import EpisodeStore

    store = tmp_path / "rec.zarr"
    rec = start_node("episode_recorder", "franka_sim.yaml", store_path=str(store),
                     frame_topic="image", max_stamp_skew_s=0.001)
    names = [*(f"panda_joint{i}" for i in range(1, 8)), "panda_finger_joint1", "panda_finger_joint2"]
    joints = probe.create_publisher(JointState, "joint_states", 10)
    images = probe.create_publisher(Image, "camera/image_raw", qos_profile_sensor_data)
    actions = probe.create_publisher(Float64MultiArray, "action", 10)
    start = probe.create_client(Trigger, "episode_recorder/start")
    stop = probe.create_client(Trigger, "episode_recorder/stop")
    assert call(probe, start, Trigger.Request(), 60, [rec]).success
    for step in range(1, STEPS + 1):
        stamp = Time(sec=100 + step // 10, nanosec=(step % 10) * 100_000_000)  # 0.1 s apart
        q = np.zeros(9)
        q[0] = 0.01 * step
        actions.publish(action_msg([0.01 * step, 0, 0, 0, 0, 0, 1.0], conv.time_seconds(stamp)))
        spin_for(probe, 0.02)
        images.publish(conv.image_msg(np.full((8, 8, 3), step, np.uint8), "cam", stamp))
        spin_for(probe, 0.02)
        joints.publish(conv.joint_state_msg(names, q, np.zeros(9), stamp))
        spin_for(probe, 0.08)
    spin_for(probe, 0.5)
    answer = call(probe, stop, Trigger.Request(), 60, [rec])
    assert answer.success, answer.message
    report = json.loads(answer.message)
    ep = EpisodeStore.open(store)[report["episode_id"]]
    image_step = ep[keys.obs_rgb(keys.DEFAULT_CAMERA)][:, 0, 0, 0].astype(int)
    joint_step = np.round(ep[keys.OBS_JOINT_POS][:, 0] / 0.01).astype(int)
    # every step but the last (no action followed it) and any image lost on the way
    assert len(ep) >= STEPS - 3 and report["unmatched"] == 0
    np.testing.assert_array_equal(image_step, joint_step)
    np.testing.assert_array_equal(np.round(ep[keys.ACTION][:, 0] / 0.01).astype(int), image_step)
    assert np.all(np.diff(image_step) > 0)
    np.testing.assert_allclose(np.diff(ep[keys.TIMESTAMP][:]), 0.1 * np.diff(image_step), atol=1e-6)


def test_action_stamp_round_trips_exactly_and_is_none_when_absent():
    from stare_robot_ros.conversions import action_msg, action_stamp
    from std_msgs.msg import Float64MultiArray, MultiArrayDimension

    stamp = 1732250000.123456789
    msg = action_msg(np.arange(7.0), stamp)
    assert list(msg.data) == list(np.arange(7.0)) and action_stamp(msg) == stamp  # the same float
    assert action_stamp(action_msg(np.zeros(7))) is None
    assert action_stamp(Float64MultiArray(data=[0.0] * 7)) is None
    garbled = Float64MultiArray(data=[0.0] * 7)
    garbled.layout.dim = [MultiArrayDimension(label=f"{keys.ACTION_STAMP_LABEL}=soon", size=7, stride=7)]
    assert action_stamp(garbled) is None

"""The whole graph, every node its own process: sim_robot -> policy_client -> ``stare-robot
serve`` (real uvicorn, tiny freshly initialised rgb pi0) -> robot_bridge -> sim_robot, in
lock-step, recorded by episode_recorder; then the same graph in real time with the server killed
and restarted mid-episode."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graph_server import ServerProcess, tiny_rgb_checkpoint
from ros_graph import call, probe, spin_for, spin_until, start_node  # noqa: F401  (fixtures)
from stare_robot import keys

pytestmark = [pytest.mark.ros, pytest.mark.sim, pytest.mark.slow]

STEPS = 12


@pytest.fixture
def server(tmp_path):
    ckpt = tiny_rgb_checkpoint(tmp_path / "ckpt")
    srv = ServerProcess(ckpt, tmp_path / "server.log")
    yield srv
    srv.kill()


def test_lockstep_closed_loop_episode_is_recorded_and_trains(tmp_path, server, probe, start_node):
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import SetBool, Trigger

    from stare_robot.data.dataset import EpisodeWindowDataset
    from stare_robot.data.store import EpisodeStore
    from stare_robot_ros.conversions import time_seconds

    server.wait_ready()
    store = tmp_path / "rec.zarr"
    params = "franka_sim_lockstep.yaml"
    procs = [start_node("sim_robot", params, camera_enabled="true", seed=3),
             start_node("robot_bridge", params),
             start_node("episode_recorder", params, store_path=str(store))]
    steps, actions = [], []
    probe.create_subscription(JointState, "joint_states",
                              lambda m: steps.append(round(time_seconds(m.header.stamp) * 20)), 50)
    probe.create_subscription(Float64MultiArray, "action", lambda m: actions.append(list(m.data)), 50)
    start = probe.create_client(Trigger, "episode_recorder/start")
    stop = probe.create_client(Trigger, "episode_recorder/stop")
    label = probe.create_client(SetBool, "episode_recorder/label")
    spin_until(probe, lambda: steps, 120, "sim_robot's first joint state", procs)
    assert call(probe, start, Trigger.Request(), 30, procs).success
    procs.append(start_node("policy_client", params, server_url=server.url))
    spin_until(probe, lambda: max(steps) >= STEPS, 180, f"{STEPS} lock-step steps", procs)
    procs[-1].stop()  # policy off: the sim stands still (lock-step)
    spin_for(probe, 1.0)
    sim_steps = max(steps)
    # lock-step: exactly one sim step per action, every action a finite 7-vector
    assert len(actions) == sim_steps and all(len(a) == 7 and np.all(np.isfinite(a)) for a in actions)
    assert call(probe, label, SetBool.Request(data=False), 10, procs).success
    answer = call(probe, stop, Trigger.Request(), 60, procs)
    assert answer.success, answer.message
    report = json.loads(answer.message)

    ep = EpisodeStore.open(store)[report["episode_id"]]
    # every step whose action arrived: sim steps 0..n-1 (the last state has no action after it)
    assert len(ep) == sim_steps and report["dropped"] == 0
    np.testing.assert_allclose(ep[keys.ACTION][:], np.asarray(actions, np.float32), atol=1e-6)
    ts = ep[keys.TIMESTAMP][:]
    assert np.all(np.diff(ts) > 0)
    np.testing.assert_allclose(ts, np.arange(len(ep)) / 20.0, atol=1e-6)  # sim time of each step
    assert ep[keys.obs_rgb(keys.DEFAULT_CAMERA)].shape == (len(ep), 128, 128, 3)
    assert ep[keys.OBS_STATE].shape == (len(ep), 18) and np.all(np.isfinite(ep[keys.OBS_EE_POSE][:]))
    assert ep.attrs[keys.ATTR_SUCCESS] is False and ep.attrs[keys.ATTR_STAGE_NAMES]
    from stare_robot.stages import gripper_keyframes
    traj = {keys.OBS_GRIPPER: ep[keys.OBS_GRIPPER][:], keys.OBS_JOINT_POS: ep[keys.OBS_JOINT_POS][:]}
    offline = gripper_keyframes(traj)
    assert set(ep.attrs[keys.ATTR_KEYFRAMES]) <= set(offline)  # online = offline minus the tail
    ds = EpisodeWindowDataset(store, chunk_size=4,
                              obs_keys=[keys.obs_rgb(keys.DEFAULT_CAMERA), keys.OBS_STATE])
    sample = ds[0]
    assert np.asarray(sample[keys.ACTION]).shape[-2:] == (4, 7)


def test_realtime_server_killed_holds_then_resumes_after_restart(tmp_path, server, probe, start_node):
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray, String

    from stare_robot.robots.profiles import order_joints

    server.wait_ready()
    params = "franka_sim.yaml"
    procs = [start_node("sim_robot", params, seed=1), start_node("robot_bridge", params),
             start_node("policy_client", params, server_url=server.url)]
    actions, statuses, q = [], [], []
    arm = [f"panda_joint{i}" for i in range(1, 8)]
    probe.create_subscription(Float64MultiArray, "action", lambda m: actions.append(np.array(m.data)), 50)
    probe.create_subscription(String, "policy_client/status", lambda m: statuses.append(json.loads(m.data)), 50)
    probe.create_subscription(JointState, "joint_states",
                              lambda m: q.append(order_joints(m.name, m.position, arm)), 50)
    spin_until(probe, lambda: sum(not s["holding"] for s in statuses) >= 2, 180,
               "the policy client executing chunks", procs)
    server.kill()
    spin_until(probe, lambda: statuses and statuses[-1]["holding"] and "server" in statuses[-1]["reason"],
               30, "a hold reported after the server died", procs)
    n = len(actions)
    spin_for(probe, 1.0)
    held = actions[n:]
    assert len(held) >= 10  # one hold per control period (20 Hz), never silence
    assert all(np.allclose(a[:6], 0.0) for a in held)  # zero motion, never a stale action repeated
    assert np.max(np.abs(q[-1] - q[-10])) < 1e-2  # the arm stays put
    server.start()
    server.wait_ready()
    spin_until(probe, lambda: not statuses[-1]["holding"], 60, "actions resuming after restart", procs)

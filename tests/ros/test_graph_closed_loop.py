"""The whole graph, every node its own process: sim_robot -> policy_client -> ``stare-robot
serve`` (real uvicorn, tiny freshly initialised rgb pi0) -> robot_bridge -> sim_robot, in
lock-step, recorded by episode_recorder; then the same graph in real time with the server killed
and restarted mid-episode. Node-level fault checks after them (sensors fed by the test's probe,
no simulator): a NaN chunk from a misbehaving server makes policy_client hold, and an
episode_recorder killed with SIGKILL leaves every committed episode intact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from graph_server import GOOD_X, NanServer, ServerProcess, tiny_rgb_checkpoint
from ros_graph import call, probe, spin_for, spin_until, start_node  # noqa: F401  (fixtures)

from stare_robot import keys

pytestmark = [pytest.mark.ros, pytest.mark.slow]
sim = pytest.mark.sim

STEPS = 12
# Real-time runs at 5 Hz (slower when the server is measured slower): on a 2-core machine one sim
# step with rendering (~30-70 ms) and one tiny-pi0 answer (~30-60 ms, far more under load) must
# both fit in a control period with room to spare.
RATE_HZ = 5.0
IMAGE_SIZE = 64  # the checkpoint's own size: no resize in the loop


def realtime_client(rate_hz: float) -> dict:
    """policy_client budgets derived from the control period."""
    period = 1.0 / rate_hz
    return {
        "control_rate_hz": rate_hz,
        # the newest image is up to a period old, plus latency
        "max_observation_age_s": 2.5 * period,
        # an image at most one step older than the joint state
        "max_stamp_skew_s": 1.25 * period,
        # a chunk (4 steps) lasts 4 periods: answer within ~that
        "request_timeout_s": 5 * period,
    }


def is_hold(action) -> bool:
    return bool(np.all(np.asarray(action)[:6] == 0.0))


def warm_up(url: str, timed: int = 5) -> float:
    """A first request (torch's start-up) before anything is timed, then the median of
    ``timed`` requests, seconds: what this machine's server takes right now."""
    import time

    from stare_robot.client import PolicyClient

    client = PolicyClient(url, timeout=120)
    obs = {k: np.zeros(spec.shape, spec.dtype) for k, spec in client.metadata.inputs.items()}
    obs[keys.INSTRUCTION] = "push the cube to the goal"
    assert np.asarray(client.predict(obs)).shape == (client.metadata.chunk_size, 7)
    took = []
    for _ in range(timed):
        t0 = time.monotonic()
        client.predict(obs)
        took.append(time.monotonic() - t0)
    client.close()
    return float(np.median(took))


def control_rate_for(latency_s: float) -> float:
    """RATE_HZ, or on a loaded machine the whole-Hz rate (sim_robot's steps) whose period is at
    least one answer of the server, down to 1 Hz."""
    return float(max(1, min(int(RATE_HZ), int(1.0 / max(latency_s, 1e-3)))))


@pytest.fixture
def server(tmp_path):
    ckpt = tiny_rgb_checkpoint(tmp_path / "ckpt")
    srv = ServerProcess(ckpt, tmp_path / "server.log")
    yield srv
    srv.kill()


@sim
def test_lockstep_closed_loop_episode_is_recorded_and_trains(tmp_path, server, probe, start_node):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState
    from stare_robot_ros.conversions import image_array, time_seconds
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import SetBool, Trigger

    from stare_robot.data.dataset import EpisodeWindowDataset
    from stare_robot.data.store import EpisodeStore

    server.wait_ready()
    store = tmp_path / "rec.zarr"
    params = "franka_sim_lockstep.yaml"
    procs = [start_node("sim_robot", params, camera_enabled="true", seed=3),
             start_node("robot_bridge", params),
             start_node("episode_recorder", params, store_path=str(store))]
    steps, actions, images = [], [], {}
    probe.create_subscription(JointState, "joint_states",
                              lambda m: steps.append(round(time_seconds(m.header.stamp) * 20)), 50)
    probe.create_subscription(  # sim_robot's camera, by step: what each recorded frame must hold
        Image, "camera/image_raw",
        lambda m: images.setdefault(round(time_seconds(m.header.stamp) * 20), image_array(m).copy()),
        qos_profile_sensor_data)
    probe.create_subscription(Float64MultiArray, "action", lambda m: actions.append(list(m.data)), 50)
    start = probe.create_client(Trigger, "episode_recorder/start")
    stop = probe.create_client(Trigger, "episode_recorder/stop")
    label = probe.create_client(SetBool, "episode_recorder/label")
    spin_until(probe, lambda: steps, 120, "sim_robot's first joint state", procs)
    assert call(probe, start, Trigger.Request(), 30, procs).success
    # three listeners before the first action: robot_bridge, episode_recorder and this probe
    procs.append(start_node("policy_client", params, server_url=server.url, lockstep_min_subscribers=3))
    spin_until(probe, lambda: max(steps) >= STEPS, 180, f"{STEPS} lock-step steps", procs)
    procs.pop().stop()  # policy off: the sim stands still (lock-step)
    spin_for(probe, 1.0)
    sim_steps = max(steps)
    # lock-step: exactly one sim step per action (a hold would be a step too, so none is sent),
    # every action a finite 7-vector
    assert len(actions) == sim_steps and all(len(a) == 7 and np.all(np.isfinite(a)) for a in actions)
    assert not any(is_hold(a) for a in actions)  # waiting for the server/sensors sent nothing
    assert call(probe, label, SetBool.Request(data=False), 10, procs).success
    answer = call(probe, stop, Trigger.Request(), 60, procs)
    assert answer.success, answer.message
    report = json.loads(answer.message)

    ep = EpisodeStore.open(store)[report["episode_id"]]
    # every step whose action arrived: sim steps 0..n-1 (the last state has no action after it)
    assert len(ep) == sim_steps and report["dropped"] == 0
    recorded, sent = ep[keys.ACTION][:], np.asarray(actions, np.float32)
    wrong = np.flatnonzero(~np.all(np.isclose(recorded, sent, atol=1e-6), axis=1)).tolist()
    assert not wrong, f"recorded actions of steps {wrong} differ from the ones sent: {recorded[wrong]}"
    ts = ep[keys.TIMESTAMP][:]
    assert np.all(np.diff(ts) > 0)
    np.testing.assert_allclose(ts, np.arange(len(ep)) / 20.0, atol=1e-6)  # sim time of each step
    rgb = ep[keys.obs_rgb(keys.DEFAULT_CAMERA)][:]
    assert rgb.shape == (len(ep), 128, 128, 3)
    # each step's image is the one sim_robot published with that step's stamp (paired by stamp,
    # not the newest to arrive); the arm moves, so neighbouring steps' images differ
    seen = [k for k in range(len(ep)) if k in images]
    assert len(seen) >= len(ep) - 2, f"the probe saw images of steps {sorted(images)}"
    for k in seen:
        np.testing.assert_array_equal(rgb[k], images[k], err_msg=f"step {k}")
    assert any(not np.array_equal(images[k], images[k + 1]) for k in seen if k + 1 in images)
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


@sim
def test_realtime_server_killed_holds_then_resumes_after_restart(tmp_path, server, probe, start_node):
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray, String

    from stare_robot.robots.profiles import order_joints

    server.wait_ready()
    # a loaded machine gets a slower control rate (a period at least one measured answer), so
    # the run checks the hold/resume logic rather than this machine's load
    latency = warm_up(server.url)
    rate = control_rate_for(latency)
    params = "franka_sim.yaml"
    procs = [start_node("sim_robot", params, seed=1, control_rate_hz=rate, image_size=IMAGE_SIZE),
             start_node("robot_bridge", params, control_rate_hz=rate),
             start_node("policy_client", params, server_url=server.url, **realtime_client(rate))]
    actions, statuses, q = [], [], []
    arm = [f"panda_joint{i}" for i in range(1, 8)]
    probe.create_subscription(Float64MultiArray, "action", lambda m: actions.append(np.array(m.data)), 50)
    probe.create_subscription(String, "policy_client/status", lambda m: statuses.append(json.loads(m.data)), 50)
    probe.create_subscription(JointState, "joint_states",
                              lambda m: q.append(order_joints(m.name, m.position, arm)), 50)
    spin_until(probe, lambda: sum(not is_hold(a) for a in actions) >= 8, 180,
               f"the policy client executing two chunks at {rate:g} Hz (server answers "
               f"in {latency:.2f} s)", procs)
    server.kill()
    k = len(actions)
    spin_until(probe, lambda: statuses and statuses[-1]["holding"] and "server" in statuses[-1]["reason"],
               30, "a hold reported after the server died", procs)
    spin_until(probe, lambda: sum(map(is_hold, actions[k:])) >= 10, 60,
               "10 hold commands after the server died", procs)
    after = actions[k:]
    first_hold = next(i for i, a in enumerate(after) if is_hold(a))
    # the steps of the chunk already received may finish (at most a chunk), then the very next
    # control tick holds, and every tick after it holds: never silence, never a stale action
    assert first_hold <= 4, f"{first_hold} policy steps after the server died"
    assert all(is_hold(a) for a in after[first_hold:])
    assert all(a[6] == after[first_hold][6] for a in after[first_hold:])  # gripper kept as it was
    n_q = len(q)
    spin_until(probe, lambda: len(q) >= n_q + 5, 30, "joint states while holding", procs)
    settled = np.asarray(q[n_q:])
    assert np.max(np.abs(settled - settled[0])) < 1e-2  # the arm stays put
    server.start()
    server.wait_ready()
    n = len(actions)
    spin_until(probe, lambda: any(not is_hold(a) for a in actions[n:]), 120,
               "policy actions resuming after the restart", procs)
    assert all(np.all(np.isfinite(a)) and len(a) == 7 for a in actions)


def publish_sensors(node, rate_hz: float = 10.0):
    """``node`` plays camera + robot: panda joint states and 64x64 images, stamped now."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState
    from stare_robot_ros import conversions as conv

    from stare_robot.robots.profiles import get_profile

    profile = get_profile("panda")
    names = [*profile.ros_arm_joints("panda"), *profile.ros_gripper_joints("panda")]
    q = np.array([0.0, 0.2, 0.0, -2.0, 0.0, 2.2, 0.8, 0.04, 0.04])
    joints = node.create_publisher(JointState, "joint_states", 10)
    images = node.create_publisher(Image, "camera/image_raw", qos_profile_sensor_data)
    rng = np.random.default_rng(0)

    def tick():
        stamp = node.get_clock().now().to_msg()
        q[0] += 0.01  # moving, so recorded frames differ
        joints.publish(conv.joint_state_msg(names, q, np.zeros_like(q), stamp))
        rgb = rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        images.publish(conv.image_msg(rgb, "camera_color_optical_frame", stamp))

    node.create_timer(1.0 / rate_hz, tick)


def test_nan_chunk_from_the_server_makes_the_policy_client_hold(probe, start_node):
    from std_msgs.msg import Float64MultiArray, String

    server = NanServer()
    try:
        publish_sensors(probe)
        actions, statuses = [], []
        probe.create_subscription(Float64MultiArray, "action", lambda m: actions.append(np.array(m.data)), 50)
        probe.create_subscription(String, "policy_client/status",
                                  lambda m: statuses.append(json.loads(m.data)), 50)
        procs = [start_node("policy_client", "franka_sim.yaml", server_url=server.url,
                            **realtime_client(RATE_HZ))]
        spin_until(probe, lambda: any(a[0] == pytest.approx(GOOD_X) for a in actions), 120,
                   "actions from the well-behaved server", procs)
        server.mode = "nan"
        spin_until(probe, lambda: statuses and "bad chunk" in statuses[-1]["reason"], 30,
                   "a hold reported for the NaN chunk", procs)
        k = len(actions)
        spin_until(probe, lambda: len(actions) >= k + 5, 30, "hold commands while the server answers NaN",
                   procs)
        assert statuses[-1]["holding"] and "NaN" in statuses[-1]["reason"]
        assert all(is_hold(a) and a[6] == keys.GRIPPER_OPEN for a in actions[k:])
        assert server.requests >= 2  # it kept asking (and kept refusing the answers)
        server.mode = "good"
        n = len(actions)
        spin_until(probe, lambda: any(not is_hold(a) for a in actions[n:]), 30,
                   "actions resuming once the chunks are finite again", procs)
        assert all(np.all(np.isfinite(a)) for a in actions)  # a NaN never reached the robot
    finally:
        server.close()


def store_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_recorder_killed_mid_episode_leaves_committed_episodes_intact(tmp_path, probe, start_node):
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import Trigger

    from stare_robot.data.store import EpisodeStore

    store = tmp_path / "rec.zarr"
    rec = start_node("episode_recorder", "franka_sim.yaml", store_path=str(store))  # frames on images
    publish_sensors(probe)
    act = probe.create_publisher(Float64MultiArray, "action", 10)
    probe.create_timer(0.1, lambda: act.publish(Float64MultiArray(data=[0.01, 0, 0, 0, 0, 0, 1.0])))
    start = probe.create_client(Trigger, "episode_recorder/start")
    stop = probe.create_client(Trigger, "episode_recorder/stop")
    assert call(probe, start, Trigger.Request(), 60, [rec]).success
    spin_for(probe, 1.5)
    answer = call(probe, stop, Trigger.Request(), 60, [rec])
    assert answer.success, answer.message
    first = json.loads(answer.message)["episode_id"]
    ep = EpisodeStore.open(store)[first]
    assert len(ep) >= 3
    before = store_files(store)
    arrays = {k: ep[k][:] for k in (keys.ACTION, keys.OBS_STATE, keys.TIMESTAMP,
                                    keys.obs_rgb(keys.DEFAULT_CAMERA))}

    assert call(probe, start, Trigger.Request(), 60, [rec]).success
    spin_for(probe, 1.5)  # the second episode is being written...
    rec.proc.kill()  # ... when the recorder dies without any chance to clean up
    rec.proc.wait(30)
    after = store_files(store)
    assert set(after) > set(before), "the unfinished episode never reached the disk"
    assert {name: after[name] for name in before} == before  # committed bytes untouched
    reopened = EpisodeStore.open(store)
    assert reopened.episode_ids() == [first]  # the partial episode is invisible
    ep = reopened[first]
    for key, value in arrays.items():
        np.testing.assert_array_equal(ep[key][:], value)

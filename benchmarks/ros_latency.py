"""ROS graph latency and recorder throughput (real-time mode).

1. Observation-to-command latency: sim_robot (real-time clock, camera at the policy's 64x64) ->
   policy_client -> ``stare-robot serve`` (tiny freshly initialised rgb pi0, real uvicorn) ->
   robot_bridge, at 5, 10 and 15 Hz. For every chunk the policy client reports the header stamp
   of the observation it answered (sim_robot stamps image and joint state alike) and when it
   published the chunk's first action; the latency is from that stamp to the header stamp of the
   JointTrajectory robot_bridge publishes for it (p50/p99), with the client's share beside it.
   All stamps are the one machine's ROS clock.
2. Recorder: frames written vs published when a publisher sends 640x480 rgb8 images (+ joint
   states and poses, same stamps) at 30 Hz into ``episode_recorder`` (frame_topic image), with the
   messages the recorder received per topic, so losses in transport and in the recorder show apart.

    .venv/bin/python benchmarks/ros_latency.py [--quick]
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "ros"), str(ROOT / "tests" / "policies")]
os.environ.setdefault("ROS_DOMAIN_ID", str(np.random.default_rng().integers(101, 200)))
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
os.environ["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"

from graph_server import ServerProcess, tiny_rgb_checkpoint
from ros_graph import NodeProcess, call, spin_for, spin_until
from test_graph_closed_loop import IMAGE_SIZE, is_hold, realtime_client, warm_up

RATES_HZ = (5.0, 10.0, 15.0)


def percentiles(ms: list[float]) -> dict:
    if not ms:
        return {"n": 0}
    a = np.asarray(ms)
    return {"n": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "max_ms": round(float(a.max()), 2)}


def latency_at(node, tmp: Path, url: str, rate: float, seconds: float) -> dict:
    """One real-time graph at ``rate`` Hz for ``seconds``; see the module docstring."""
    from sensor_msgs.msg import JointState
    from stare_robot_ros.conversions import time_seconds
    from std_msgs.msg import Float64MultiArray, String
    from trajectory_msgs.msg import JointTrajectory

    log_dir = tmp / f"rate_{rate:g}"
    log_dir.mkdir()
    procs = [NodeProcess("sim_robot", "franka_sim.yaml", log_dir, seed=0, control_rate_hz=rate,
                         image_size=IMAGE_SIZE),
             NodeProcess("robot_bridge", "franka_sim.yaml", log_dir, control_rate_hz=rate),
             NodeProcess("policy_client", "franka_sim.yaml", log_dir, server_url=url,
                         **realtime_client(rate))]
    statuses, trajectories, joints, actions = [], [], [], []
    subs = [
        node.create_subscription(String, "policy_client/status", lambda m: statuses.append(json.loads(m.data)), 100),
        node.create_subscription(JointTrajectory, "arm_controller/joint_trajectory",
                                 lambda m: trajectories.append(time_seconds(m.header.stamp)), 100),
        node.create_subscription(JointState, "joint_states", lambda m: joints.append(time.monotonic()), 100),
        node.create_subscription(Float64MultiArray, "action", lambda m: actions.append(np.array(m.data)), 100),
    ]
    try:
        spin_until(node, lambda: any(not is_hold(a) for a in actions), 180, "policy actions", procs)
        for buf in (statuses, trajectories, joints, actions):
            buf.clear()
        spin_for(node, seconds)
        trajectories.sort()
        total, client = [], []
        for s in statuses:
            if s.get("obs_stamp") is None or s.get("command_stamp") is None or s["holding"]:
                continue
            i = bisect.bisect_left(trajectories, s["command_stamp"])
            if i < len(trajectories) and trajectories[i] - s["command_stamp"] < 1.0:
                total.append(1e3 * (trajectories[i] - s["obs_stamp"]))
                client.append(1e3 * (s["command_stamp"] - s["obs_stamp"]))
        span = lambda ts: (len(ts) - 1) / (ts[-1] - ts[0]) if len(ts) > 1 else 0.0
        return {
            "requested_hz": rate,
            "joint_states_hz": round(span(joints), 2),
            "actions": len(actions),
            "holds": int(sum(map(is_hold, actions))),
            "trajectories_hz": round(span(trajectories), 2),
            "obs_stamp_to_trajectory": percentiles(total),
            "obs_stamp_to_action_publish": percentiles(client),
            # one full example per kind of hold (the kind is the text before the first colon)
            "hold_reasons": {k: v for s in statuses if s["holding"]
                             for k, v in [(s["reason"].split(":")[0], s["reason"][:200])]},
        }
    finally:
        for sub in subs:
            node.destroy_subscription(sub)
        for p in procs:
            p.stop()


def latency(node, tmp: Path, seconds: float, rates=RATES_HZ) -> dict:
    srv = ServerProcess(tiny_rgb_checkpoint(tmp / "ckpt", IMAGE_SIZE), tmp / "server.log")
    try:
        srv.wait_ready()
        answer_s = warm_up(srv.url)
        return {"server_answer_median_ms": round(1e3 * answer_s, 1),
                "rates": [latency_at(node, tmp, srv.url, r, seconds) for r in rates]}
    finally:
        srv.kill()


def recorder(node, tmp: Path, seconds: float, rate_hz: float = 30.0) -> dict:
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState
    from stare_robot_ros import conversions as conv
    from std_srvs.srv import Trigger

    from stare_robot.data.store import EpisodeStore

    store = tmp / "rec.zarr"
    proc = NodeProcess("episode_recorder", "franka_sim.yaml", tmp, store_path=str(store))
    # QoS as a camera driver and sim_robot publish images (sensor data: best effort)
    img_pub = node.create_publisher(Image, "camera/image_raw", qos_profile_sensor_data)
    js_pub = node.create_publisher(JointState, "joint_states", 10)
    pose_pub = node.create_publisher(PoseStamped, "ee_pose", 10)
    try:
        start = node.create_client(Trigger, "episode_recorder/start")
        stop = node.create_client(Trigger, "episode_recorder/stop")
        spin_until(node, lambda: img_pub.get_subscription_count() > 0, 60, "the recorder's image subscription", [proc])
        assert call(node, start, Trigger.Request(), 60, [proc]).success
        names = [*(f"panda_joint{i}" for i in range(1, 8)), "panda_finger_joint1", "panda_finger_joint2"]
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(4)]
        published, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            stamp = node.get_clock().now().to_msg()
            q = np.full(9, 0.02 + 1e-3 * published)
            js_pub.publish(conv.joint_state_msg(names, q, np.zeros(9), stamp))
            pose_pub.publish(conv.pose_stamped_msg(np.array([0.4, 0, 0.2, 1, 0, 0, 0]), "base", stamp))
            img_pub.publish(conv.image_msg(frames[published % 4], "cam", stamp))
            published += 1
            spin_for(node, max(0.0, t0 + published / rate_hz - time.monotonic()))
        achieved = published / (time.monotonic() - t0)
        spin_for(node, 1.0)  # let the last messages arrive
        answer = call(node, stop, Trigger.Request(), 120, [proc])
        report = json.loads(answer.message)
        ep = EpisodeStore.open(store)[report["episode_id"]]
        ts = ep["timestamp"][:]
        return {"published": published, "published_hz": round(achieved, 2), "received": report["received"],
                "written": len(ep), "dropped_by_writer": report["dropped"], "unmatched": report["unmatched"],
                "timestamps_monotonic": bool(np.all(np.diff(ts) > 0)),
                "rate_hz": rate_hz, "image": [480, 640, 3]}
    finally:
        for pub in (img_pub, js_pub, pose_pub):
            node.destroy_publisher(pub)
        proc.stop()


def main() -> int:
    from bench_out import add_out_option

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_out_option(ap)
    ap.add_argument("--quick", action="store_true", help="5 s windows instead of 30 s")
    ap.add_argument("--only", choices=("latency", "recorder"), help="run one part")
    args = ap.parse_args()
    import tempfile

    import rclpy

    seconds = 5.0 if args.quick else 30.0
    result = {"benchmark": "ros_latency",
              "command": " ".join([".venv/bin/python", "benchmarks/ros_latency.py", *sys.argv[1:]]),
              "window_s": seconds, "load_average_start": os.getloadavg(),
              "machine": {"cpus": os.cpu_count(), "note": "2 cores shared with other engineers' jobs"}}
    rclpy.init()
    node = rclpy.create_node("ros_latency_bench")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # each part says which command and load produced it (--only keeps the other's numbers)
            part = {"command": result["command"], "window_s": seconds}
            if args.only in (None, "recorder"):
                result["recorder_30hz_vga"] = {**part, "load_average": os.getloadavg(),
                                               **recorder(node, Path(tmp), seconds)}
            if args.only in (None, "latency"):
                result["obs_to_command_latency"] = {**part, "load_average": os.getloadavg(),
                                                    **latency(node, Path(tmp), seconds)}
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    result["load_average_end"] = os.getloadavg()
    out = args.out / "ros_latency.json"
    if args.only:  # keep the other part's last numbers
        old = json.loads(out.read_text()) if out.exists() else {}
        result = {**old, **result}
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

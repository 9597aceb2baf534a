"""ROS graph latency and recorder throughput.

1. Observation-to-command latency of ``policy_client`` in real-time mode (sim_robot + robot_bridge
   + policy_client + ``stare-robot serve`` with a tiny freshly initialised rgb pi0): the client's
   own measurement from a joint state's arrival to the publication of the first action of the
   chunk computed from it (``~/status`` obs_to_command_ms), p50/p99.
2. Recorder: frames written vs published when a publisher sends 640x480 rgb8 images (+ joint
   states and poses) at 30 Hz into ``episode_recorder`` (frame_topic image).

    .venv/bin/python benchmarks/ros_latency.py [--quick]
"""

from __future__ import annotations

import argparse
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

from graph_server import ServerProcess, tiny_rgb_checkpoint
from ros_graph import NodeProcess, call, spin_for, spin_until


def latency(node, tmp: Path, seconds: float) -> dict:
    from std_msgs.msg import String

    srv = ServerProcess(tiny_rgb_checkpoint(tmp / "ckpt"), tmp / "server.log")
    procs = []
    try:
        srv.wait_ready()
        procs = [NodeProcess("sim_robot", "franka_sim.yaml", tmp, seed=0),
                 NodeProcess("robot_bridge", "franka_sim.yaml", tmp),
                 NodeProcess("policy_client", "franka_sim.yaml", tmp, server_url=srv.url)]
        statuses = []
        node.create_subscription(String, "policy_client/status", lambda m: statuses.append(json.loads(m.data)), 100)
        spin_until(node, lambda: any(not s["holding"] for s in statuses), 180, "policy actions", procs)
        statuses.clear()
        spin_for(node, seconds)
        ms = np.array([s["obs_to_command_ms"] for s in statuses if not s["holding"]])
        return {"chunks": int(ms.size), "p50_ms": float(np.percentile(ms, 50)),
                "p99_ms": float(np.percentile(ms, 99)),
                "holds_reported": sum(s["holding"] for s in statuses)}
    finally:
        for p in procs:
            p.stop()
        srv.kill()


def recorder(node, tmp: Path, seconds: float) -> dict:
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState
    from stare_robot_ros import conversions as conv
    from std_srvs.srv import Trigger

    from stare_robot.data.store import EpisodeStore

    store = tmp / "rec.zarr"
    proc = NodeProcess("episode_recorder", "franka_sim.yaml", tmp, store_path=str(store))
    try:
        img_pub = node.create_publisher(__import__("sensor_msgs.msg", fromlist=["Image"]).Image, "camera/image_raw", 10)
        js_pub = node.create_publisher(JointState, "joint_states", 10)
        pose_pub = node.create_publisher(PoseStamped, "ee_pose", 10)
        start = node.create_client(Trigger, "episode_recorder/start")
        stop = node.create_client(Trigger, "episode_recorder/stop")
        assert call(node, start, Trigger.Request(), 60, [proc]).success
        names = [*(f"panda_joint{i}" for i in range(1, 8)), "panda_finger_joint1", "panda_finger_joint2"]
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(4)]
        published, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            stamp = node.get_clock().now().to_msg()
            js_pub.publish(conv.joint_state_msg(names, np.full(9, 0.02), np.zeros(9), stamp))
            pose_pub.publish(conv.pose_stamped_msg(np.array([0.4, 0, 0.2, 1, 0, 0, 0]), "base", stamp))
            img_pub.publish(conv.image_msg(frames[published % 4], "cam", stamp))
            published += 1
            spin_for(node, max(0.0, t0 + published / 30.0 - time.monotonic()))
        answer = call(node, stop, Trigger.Request(), 120, [proc])
        report = json.loads(answer.message)
        ep = EpisodeStore.open(store)[report["episode_id"]]
        return {"published": published, "written": len(ep), "dropped": report["dropped"],
                "rate_hz": 30.0, "image": [480, 640, 3]}
    finally:
        proc.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 s runs instead of 30 s")
    args = ap.parse_args()
    import tempfile

    import rclpy

    os.environ["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    seconds = 5.0 if args.quick else 30.0
    rclpy.init()
    node = rclpy.create_node("ros_latency_bench")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = {"command": " ".join([".venv/bin/python", "benchmarks/ros_latency.py", *sys.argv[1:]]),
                      "seconds": seconds,
                      "recorder_30hz_vga": recorder(node, Path(tmp), seconds),
                      "obs_to_command_latency": None}
            try:
                result["obs_to_command_latency"] = latency(node, Path(tmp), seconds)
            except AssertionError as err:  # e.g. the server could not start: report, keep the rest
                result["obs_to_command_latency"] = {"error": str(err)[-500:]}
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    out = ROOT / "benchmarks" / "results" / "ros_latency.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

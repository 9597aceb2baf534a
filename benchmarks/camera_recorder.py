"""camera_node -> episode_recorder at 30 Hz, 640x480 colour + aligned depth, through librealsense's
software device: frames injected vs published by the camera node vs recorded, and the CPU use
of each node process, over a 60 s window (--quick: 10 s).

The camera node runs in a child process of this script (``--camera-process``): the real
``CameraNode`` whose RealSense is a software device fed by a thread at 30 Hz (the feeder's own
CPU time is measured on its thread and subtracted). The recorder is the ``episode_recorder``
executable with the real-robot params file (launch/config/franka.yaml); this script plays the
robot (joint states at 100 Hz) and counts what reaches a subscriber.

    .venv/bin/python benchmarks/camera_recorder.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "ros")]
os.environ.setdefault("ROS_DOMAIN_ID", str(np.random.default_rng().integers(101, 200)))
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
os.environ["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"

W, H, FPS = 640, 480, 30
PARAMS = "franka.yaml"
JOINT_RATE_HZ = 100.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the child: camera_node over a software device ---
def camera_process(report_path: str, ros_args: list[str]) -> int:
    from software_camera import SoftwareRealSense, frame
    from stare_robot_ros import camera_node

    sw = SoftwareRealSense(W, H, FPS)
    frames = [frame(i, W, H, FPS)[:2] for i in range(4)]  # made once: the feeder only injects
    stats = {"injected": 0, "feeder_cpu_s": 0.0}
    timeline = []  # (wall time, injected, published, feeder cpu s), twice a second
    stop = threading.Event()
    nodes = []

    def feed():
        t0 = time.monotonic()
        while not stop.is_set():
            i = stats["injected"]
            rgb, depth = frames[i % 4]
            sw.inject_arrays(rgb, depth, time.time() * 1e3, i)
            stats["injected"] = i + 1
            stats["feeder_cpu_s"] = time.thread_time()
            if i % (FPS // 2) == 0:
                timeline.append((time.time(), i + 1, nodes[0].published if nodes else 0, time.thread_time()))
            stop.wait(max(0.0, t0 + (i + 1) / FPS - time.monotonic()))

    original = camera_node.CameraNode

    def make(device_factory):
        node = original(device_factory)
        nodes.append(node)
        return node

    camera_node.CameraNode = make
    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        code = camera_node.main(["camera_node", *ros_args], device_factory=lambda: sw.device)
    finally:
        stop.set()
        feeder.join(5)
        published = nodes[0].published if nodes else 0
        Path(report_path).write_text(json.dumps({
            **stats, "published": published, "timeline": timeline,
            "incomplete_sets": nodes[0].camera.incomplete if nodes else 0}))
    return code


# --- the parent ---
def run(seconds: float, tmp: Path) -> dict:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from ros_graph import CONFIG_DIR, NodeProcess, call, ros_env, spin_for, spin_until
    from sensor_msgs.msg import CameraInfo, JointState
    from stare_robot_ros import conversions as conv
    from std_srvs.srv import Trigger

    from stare_robot.data.store import EpisodeStore
    from stare_robot.robots import get_profile

    report = tmp / "camera.json"
    cam_log = open(tmp / "camera_node.log", "w")  # noqa: SIM115 (the child writes it until stopped)
    cam = subprocess.Popen(
        [sys.executable, __file__, "--camera-process", str(report), "--ros-args",
         "--params-file", str(CONFIG_DIR / PARAMS)], stdout=cam_log, stderr=subprocess.STDOUT, env=ros_env())
    rec = NodeProcess("episode_recorder", PARAMS, tmp, store_path=str(tmp / "rec.zarr"))
    rclpy.init()
    node = rclpy.create_node("camera_recorder_bench")
    # counted on the small CameraInfo messages (one per image): a Python subscriber to the 1 MB
    # images themselves would compete with the nodes for the 2 cores
    seen = {"color": 0, "depth": 0}
    node.create_subscription(CameraInfo, "camera/color/camera_info",
                             lambda m: seen.__setitem__("color", seen["color"] + 1), qos_profile_sensor_data)
    node.create_subscription(CameraInfo, "camera/aligned_depth_to_color/camera_info",
                             lambda m: seen.__setitem__("depth", seen["depth"] + 1), qos_profile_sensor_data)
    profile = get_profile("panda")
    names = [*profile.ros_arm_joints("fr3"), *profile.ros_gripper_joints("fr3")]
    js_pub = node.create_publisher(JointState, "/joint_states", 10)
    node.create_timer(1.0 / JOINT_RATE_HZ, lambda: js_pub.publish(conv.joint_state_msg(
        names, np.r_[profile.home, 0.04, 0.04], np.zeros(9), node.get_clock().now().to_msg())))
    start = node.create_client(Trigger, "episode_recorder/start")
    stop = node.create_client(Trigger, "episode_recorder/stop")

    class _Proc:  # spin_until's view of the camera child
        proc, log_path = cam, tmp / "camera_node.log"

        @staticmethod
        def log():
            return (tmp / "camera_node.log").read_text()

    try:
        spin_until(node, lambda: seen["color"] > 30, 120, "camera images", [rec, _Proc])
        assert call(node, start, Trigger.Request(), 60, [rec]).success
        seen.update(color=0, depth=0)
        cpu0 = {"camera_node": cpu_seconds(cam.pid), "episode_recorder": cpu_seconds(rec.proc.pid)}
        t0, wall_t0 = time.monotonic(), time.time()
        spin_for(node, seconds)
        wall, wall_t1 = time.monotonic() - t0, time.time()
        cpu = {k: cpu_seconds(p) - cpu0[k] for k, p in
               (("camera_node", cam.pid), ("episode_recorder", rec.proc.pid))}
        received = dict(seen)
        answer = call(node, stop, Trigger.Request(), 300, [rec])
        stopped = json.loads(answer.message)
        written = len(EpisodeStore.open(tmp / "rec.zarr")[stopped["episode_id"]])
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        rec.stop()
        cam.send_signal(2)
        try:
            cam.wait(30)
        except subprocess.TimeoutExpired:
            cam.kill()
        cam_log.close()
    child = json.loads(report.read_text()) if report.exists() else {}
    timeline = np.asarray(child.pop("timeline", []) or [[0, 0, 0, 0]])
    at = lambda t: timeline[np.argmin(np.abs(timeline[:, 0] - t))]
    (ta, inj_a, pub_a, fcpu_a), (tb, inj_b, pub_b, fcpu_b) = at(wall_t0), at(wall_t1)
    span = max(tb - ta, 1e-9)
    return {
        "window_s": round(wall, 2),
        "camera_node_whole_run": child,  # over the child's whole life (start-up included)
        "window": {
            "injected_hz": round((inj_b - inj_a) / span, 2),
            "camera_node_published_hz": round((pub_b - pub_a) / span, 2),
            "published_per_injected": round((pub_b - pub_a) / max(inj_b - inj_a, 1), 3),
            "color_camera_info_received_by_probe": received["color"],
            "depth_camera_info_received_by_probe": received["depth"],
            "recorder_frames_written": written,
            "recorder_report": {k: stopped[k] for k in ("received", "dropped", "unmatched") if k in stopped},
            "written_hz": round(written / wall, 2),
        },
        "cpu_percent_of_one_core": {
            "camera_node": round(100 * (cpu["camera_node"] - (fcpu_b - fcpu_a)) / wall, 1),
            "software_device_feeder": round(100 * (fcpu_b - fcpu_a) / span, 1),
            "episode_recorder": round(100 * cpu["episode_recorder"] / wall, 1),
        },
    }


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--camera-process":
        ros_args = sys.argv[sys.argv.index("--ros-args"):] if "--ros-args" in sys.argv else []
        return camera_process(sys.argv[2], ros_args)
    from bench_out import add_out_option

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_out_option(ap)
    ap.add_argument("--quick", action="store_true", help="10 s window instead of 60 s")
    args = ap.parse_args()
    seconds = 10.0 if args.quick else 60.0
    result = {"benchmark": "camera_recorder",
              "command": " ".join([".venv/bin/python", "benchmarks/camera_recorder.py", *sys.argv[1:]]),
              "stream": {"width": W, "height": H, "fps": FPS, "streams": "rgb8 + z16 aligned to colour"},
              "load_average_start": os.getloadavg(),
              "machine": {"cpus": os.cpu_count(), "note": "2 cores shared with other engineers' jobs"}}
    with tempfile.TemporaryDirectory() as tmp:
        result.update(run(seconds, Path(tmp)))
    result["load_average_end"] = os.getloadavg()
    out = args.out / "camera_recorder.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

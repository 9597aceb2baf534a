"""Control-loop timing of sim_robot in real-time mode: achieved vs requested rate.

For each requested rate, sim_robot (its console script, launch/config/franka_sim.yaml: real-time,
camera on) runs in its own process; an in-process subscriber records ``joint_states`` and
``camera/image_raw`` for a fixed window and reports the achieved rates (from the messages' header
stamps) and the jitter of the step period.

    .venv/bin/python benchmarks/ros_control_rate.py [--quick] [--rates 5 10 15] [--seconds 10]

Writes OUT/ros_control_rate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "launch" / "config" / "franka_sim.yaml"


def measure(rate: float, seconds: float, log_dir: Path) -> dict:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState

    exe = Path(sys.executable).parent / "sim_robot"
    log = open(log_dir / f"sim_robot_{rate:g}hz.log", "w")  # noqa: SIM115 (the child writes it)
    proc = subprocess.Popen(
        [str(exe), "--ros-args", "--params-file", str(PARAMS), "-p", f"control_rate_hz:={rate}"],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
    )
    rclpy.init()
    node = rclpy.create_node("rate_probe")
    states, images = [], []
    node.create_subscription(JointState, "joint_states", lambda m: states.append(m.header.stamp), 100)
    node.create_subscription(Image, "camera/image_raw", lambda m: images.append(m.header.stamp), qos_profile_sensor_data)
    try:
        deadline = time.monotonic() + 180
        while len(states) < 3:  # startup (ManiSkill scene build) is not part of the measurement
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sim_robot did not start; see {log.name}")
            rclpy.spin_once(node, timeout_sec=0.1)
        states.clear(), images.clear()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.01)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        log.close()

    def stats(stamps):
        t = np.array([s.sec + s.nanosec * 1e-9 for s in stamps])
        dt = np.diff(t)
        return {
            "messages": len(t),
            "achieved_hz": float((len(t) - 1) / (t[-1] - t[0])) if len(t) > 1 else 0.0,
            "period_ms_mean": float(dt.mean() * 1e3) if len(dt) else None,
            "period_ms_std": float(dt.std() * 1e3) if len(dt) else None,
            "period_ms_p95": float(np.percentile(dt, 95) * 1e3) if len(dt) else None,
        }

    return {"requested_hz": rate, "window_s": seconds, "joint_states": stats(states),
            "image_raw": stats(images)}


def main(argv: list[str] | None = None) -> int:
    from bench_out import add_out_option

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_out_option(ap)
    ap.add_argument("--quick", action="store_true", help="4 s windows")
    ap.add_argument("--rates", type=float, nargs="+", default=[5.0, 10.0, 15.0])
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args(argv)
    results_path = args.out / "ros_control_rate.json"
    seconds = 4.0 if args.quick else args.seconds
    os.environ["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 200)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for rate in args.rates:
        r = measure(rate, seconds, Path(tempfile.gettempdir()))
        js = r["joint_states"]
        print(f"requested {rate:g} Hz: achieved {js['achieved_hz']:.2f} Hz "
              f"(period {js['period_ms_mean']:.1f} +- {js['period_ms_std']:.1f} ms), "
              f"images {r['image_raw']['achieved_hz']:.2f} Hz")
        results.append(r)
    record = {
        "benchmark": "ros_control_rate",
        "command": " ".join([".venv/bin/python", "benchmarks/ros_control_rate.py", *(argv if argv is not None else sys.argv[1:])]),
        "params_file": str(PARAMS.relative_to(ROOT)),
        "machine": {"cpus": os.cpu_count(), "note": "shared with other jobs; CPU physics + lavapipe rendering"},
        "results": results,
    }
    results_path.write_text(json.dumps(record, indent=2))
    print(f"wrote {results_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Test helpers: node executables in their own processes, and an in-process probe node.

Every node is started from its console script with ``--ros-args --params-file
launch/config/<file>.yaml`` (plus ``-p`` overrides), on Fast DDS over loopback, in the session's
random ROS_DOMAIN_ID (tests/conftest.py), and is stopped with SIGINT at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "launch" / "config"
BIN_DIR = Path(sys.executable).parent


os.environ["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"  # before rclpy loads its middleware


@pytest.fixture
def probe():
    """An rclpy node in the test process (default context, shut down afterwards)."""
    import rclpy

    rclpy.init()
    node = rclpy.create_node("test_probe")
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


@pytest.fixture
def start_node(tmp_path):
    """``start_node("robot_bridge", "franka_sim.yaml", args=[...], env={...}, **overrides) ->
    NodeProcess``; every process started is stopped (SIGINT) at the end of the test."""
    started: list[NodeProcess] = []

    def start(executable: str, params_file: str, *, args=(), env=None, **overrides) -> NodeProcess:
        proc = NodeProcess(executable, params_file, tmp_path, args=args, env=env, **overrides)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def ros_env() -> dict[str, str]:
    env = dict(os.environ)
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    env.setdefault("RCUTILS_COLORIZED_OUTPUT", "0")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class NodeProcess:
    """One node executable as a child process; its stdout+stderr go to ``log_path``.

    ``overrides`` go in a second params file under the node's own name (``/**/<name>``, name = the
    executable's; what the launch files do too); ``args`` are appended to its ``--ros-args`` (e.g. ``-p x:=y``,
    ``-r __node:=other``); ``env`` is added to its environment."""

    def __init__(self, executable: str, params_file: str, log_dir: Path, *, args=(), env=None,
                 **overrides):
        exe = BIN_DIR / executable
        assert exe.exists(), f"{exe} missing: pip install -e ros2_ws/src/stare_robot_ros"
        argv = [str(exe), "--ros-args", "--params-file", str(CONFIG_DIR / params_file)]
        tag = next((a.split(":=", 1)[1] for a in args if a.startswith("__node:=")), executable)
        if overrides:  # values parse as YAML, exactly as `-p key:=value` would
            extra = log_dir / f"{tag}.overrides.yaml"
            extra.write_text(f"/**/{tag}:\n  ros__parameters:\n"
                             + "".join(f"    {k}: {v}\n" for k, v in overrides.items()))
            argv += ["--params-file", str(extra)]
        argv += list(args)
        self.log_path = log_dir / f"{tag}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 (the node writes it; closed by stop)
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**ros_env(), **(env or {})})

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def spin_until(node, condition: Callable[[], bool], timeout: float, what: str, procs=()) -> None:
    """Spin ``node`` until ``condition()`` holds; fail naming ``what`` (and dead processes)."""
    import rclpy

    deadline = time.monotonic() + timeout
    while not condition():
        for p in procs:
            if p.proc.poll() is not None:
                raise AssertionError(f"{p.log_path.name} exited ({p.proc.returncode}):\n{p.log()[-3000:]}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.log_path.name}\n{p.log()[-2000:]}" for p in procs)
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
        rclpy.spin_once(node, timeout_sec=0.05)


def spin_for(node, seconds: float) -> None:
    import rclpy

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.02)


def call(node, client, request, timeout: float, procs=()):
    """Call a service and wait for its answer (spinning ``node``)."""
    spin_until(node, lambda: client.service_is_ready(), timeout, f"service {client.srv_name}", procs)
    future = client.call_async(request)
    spin_until(node, future.done, timeout, f"answer of {client.srv_name}", procs)
    return future.result()

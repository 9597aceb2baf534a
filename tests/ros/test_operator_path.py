"""The operator's ROS path without a simulator (joint states from the test's probe): the policy
client against a ``stare-robot serve`` started with an auth token (connects with the token, from
the environment or the parameter; refused without it, reported as "authentication failed" on
``~/status`` within a retry period, the token never shown), command-line ``-p`` overrides winning
over the params file, the ``stare-robot robot`` commands calling the services of running nodes,
camera_node's missing recording and a clean exit on SIGINT/SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import pytest
import ros_graph
from graph_server import ServerProcess, tiny_state_checkpoint
from ros_graph import BIN_DIR, NodeProcess, ros_env

probe, start_node = ros_graph.probe, ros_graph.start_node  # the harness's fixtures

pytestmark = pytest.mark.ros

TOKEN = "tok-7f3a9c-not-for-logs"
STATE_PARAMS = "franka_sim_state.yaml"
RETRY_S = 1.0


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    """A tiny state-mode checkpoint served with an auth token."""
    tmp = tmp_path_factory.mktemp("token_server")
    server = ServerProcess(tiny_state_checkpoint(tmp / "ckpt"), tmp / "server.log", token=TOKEN)
    try:
        server.wait_ready()
        yield server
    finally:
        server.kill()


class Spinner:
    """Spins the probe on a thread (the graph's joint states keep flowing while the test waits
    for a subprocess); ``statuses[topic]`` collects the JSON status messages."""

    def __init__(self, node):
        from rclpy.executors import SingleThreadedExecutor

        self.node, self.statuses = node, {}
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.executor.shutdown()
        self._thread.join(5)

    def watch_status(self, topic: str) -> list[dict]:
        from std_msgs.msg import String

        got = self.statuses.setdefault(topic, [])
        self.node.create_subscription(String, topic, lambda m: got.append(json.loads(m.data)), 50)
        return got

    def publish_joint_states(self, rate_hz: float = 20.0) -> None:
        """The Panda at its home pose, stamped now (what a driver publishes)."""
        import numpy as np
        from sensor_msgs.msg import JointState

        from stare_robot.robots.profiles import get_profile

        profile = get_profile("panda")
        names = [*profile.ros_arm_joints("panda"), *profile.ros_gripper_joints("panda")]
        q = [*map(float, profile.home), profile.finger_open_width, profile.finger_open_width]
        pub = self.node.create_publisher(JointState, "joint_states", 10)

        def tick():
            msg = JointState(name=names, position=q, velocity=list(np.zeros(len(q))))
            msg.header.stamp = self.node.get_clock().now().to_msg()
            pub.publish(msg)

        self.node.create_timer(1.0 / rate_hz, tick)


def wait_for(condition, timeout: float, what: str, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for p in procs:
            assert p.proc.poll() is None, f"{p.log_path.name} exited:\n{p.log()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}\n" + \
            "\n".join(f"--- {p.log_path.name}\n{p.log()[-2000:]}" for p in procs)
        time.sleep(0.05)


def subscriptions(node, name: str, namespace: str) -> set[str]:
    """Topics node ``namespace/name`` subscribes to, as the graph shows them (empty until seen)."""
    from rclpy.node import NodeNameNonExistentError

    try:
        return {topic for topic, _ in node.get_subscriber_names_and_types_by_node(name, namespace)}
    except NodeNameNonExistentError:
        return set()


def robot(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """``stare-robot robot ARGS`` as an operator types it."""
    return subprocess.run([str(BIN_DIR / "stare-robot"), "robot", *args, "--timeout", "15"],
                          capture_output=True, text=True, check=False, env=ros_env(), timeout=timeout + 30)


def status_lines(out: subprocess.CompletedProcess) -> dict[str, str]:
    """``stare-robot robot status`` output: node -> what it says."""
    assert out.returncode == 0, out.stderr
    return dict(line.split(": ", 1) for line in out.stdout.strip().splitlines())


def test_command_line_overrides_are_typed_bare_rules_only():
    from stare_robot_ros.node_runner import NodeConfigError, command_line_overrides

    argv = ["exe", "--ros-args", "--params-file", "f.yaml", "-p", "rate:=1.5", "-p",
            "policy_client:skip:=1", "--param", "url:=http://127.0.0.1:8000", "-p", "low:=[0.1, 1]",
            "-p", 'empty:=""', "-p", "flag:=true", "-r", "__node:=x", "--", "-p", "after:=1"]
    got = {p.name: p.value for p in command_line_overrides(argv)}
    assert got == {"rate": 1.5, "url": "http://127.0.0.1:8000", "low": [0.1, 1.0], "empty": "",
                   "flag": True}
    assert command_line_overrides(["exe", "-p", "x:=1"]) == []  # not a ROS argument
    with pytest.raises(NodeConfigError, match="mixed"):
        command_line_overrides(["exe", "--ros-args", "-p", "mixed:=[1, a]"])


def test_policy_client_refused_without_the_token_says_authentication_failed(token_server, probe,
                                                                            start_node):
    from std_msgs.msg import Float64MultiArray

    actions = []
    probe.create_subscription(Float64MultiArray, "action", actions.append, 10)
    with Spinner(probe) as spin:
        statuses = spin.watch_status("policy_client/status")
        spin.publish_joint_states()
        client = start_node("policy_client", STATE_PARAMS, server_url=token_server.url,
                            retry_period_s=RETRY_S, auth_retry_period_s=2.0, connect_timeout_s=5.0)
        wait_for(lambda: statuses, 60, "the first ~/status", [client])
        first = time.monotonic()
        wait_for(lambda: statuses[-1]["reason"].startswith("authentication failed"), RETRY_S + 1.0,
                 "'authentication failed' on ~/status within one retry period", [client])
        time.sleep(7.0)  # past connect_timeout_s: a refused token is no "server down", never given up
        assert client.proc.poll() is None, client.log()
    assert time.monotonic() - first > 5.0
    latest = statuses[-1]
    assert latest["holding"] and not latest["connected"] and "HTTP 401" in latest["reason"]
    assert "STARE_ROBOT_TOKEN" in latest["reason"]  # says how to fix it
    assert not any("no policy server" in s["reason"] for s in statuses)
    assert not actions  # nothing commanded before the server accepted the client
    log = client.log()
    assert "authentication failed" in log and TOKEN not in log


@pytest.mark.parametrize("how", ["env", "parameter"])
def test_policy_client_with_the_token_connects_and_never_shows_it(how, token_server, probe,
                                                                 start_node):
    from rcl_interfaces.srv import ListParameters

    given = {"STARE_ROBOT_TOKEN": TOKEN} if how == "env" else {}
    args = ["-p", f"token:={TOKEN}"] if how == "parameter" else []
    with Spinner(probe) as spin:
        statuses = spin.watch_status("policy_client/status")
        spin.publish_joint_states()
        client = start_node("policy_client", STATE_PARAMS, server_url=token_server.url,
                            args=args, env=given)
        wait_for(lambda: statuses and statuses[-1].get("connected"), 60, "a connected status", [client])
        lister = probe.create_client(ListParameters, "policy_client/list_parameters")
        wait_for(lister.service_is_ready, 30, "policy_client's parameter services", [client])
        names = lister.call(ListParameters.Request(), timeout_sec=10).result.names
    assert "server_url" in names and "token" not in names  # not readable from the graph
    assert not any(s["reason"].startswith("authentication") for s in statuses)
    assert TOKEN not in json.dumps(statuses) and TOKEN not in client.log()


def test_a_command_line_override_wins_over_the_params_files_node_section(token_server, probe,
                                                                        start_node):
    """franka_sim.yaml (rgb graph) says env_state_topic: "" and image_topic: camera/image_raw in
    policy_client's own section; ``-p`` turns it into the state graph the served policy needs
    (else: exit 2, "needs inputs this graph cannot provide")."""
    with Spinner(probe) as spin:
        statuses = spin.watch_status("policy_client/status")
        client = start_node("policy_client", "franka_sim.yaml", server_url=token_server.url,
                            env={"STARE_ROBOT_TOKEN": TOKEN},
                            args=["-p", "env_state_topic:=env_state", "-p", 'image_topic:=""'])
        wait_for(lambda: statuses and statuses[-1].get("connected"), 60, "a connected status", [client])

        def subscribed():
            return subscriptions(probe, "policy_client", "/")

        wait_for(lambda: "/env_state" in subscribed(), 20, "a subscription to /env_state", [client])
    assert "/camera/image_raw" not in subscribed()
    assert client.proc.poll() is None


def test_a_namespaced_node_keeps_its_params_file_section_and_is_operated_there(token_server, probe,
                                                                             start_node):
    """``-r __ns:=/arm``: policy_client's ``/**/policy_client`` section still applies (its
    env_state_topic, resolved in the namespace), and ``robot --namespace /arm`` reaches it."""
    client = start_node("policy_client", STATE_PARAMS, server_url=token_server.url,
                        args=["-r", "__ns:=/arm"], env={"STARE_ROBOT_TOKEN": TOKEN})

    def subscribed():
        import rclpy

        rclpy.spin_once(probe, timeout_sec=0.05)
        return subscriptions(probe, "policy_client", "/arm")

    wait_for(lambda: "/arm/env_state" in subscribed(), 90, "a subscription to /arm/env_state", [client])
    out = robot("--namespace", "/arm", "reset")
    assert out.returncode == 0 and "/arm/policy_client/reset: ok" in out.stdout, out


def test_stare_robot_robot_commands_call_the_running_nodes(token_server, probe, start_node, tmp_path):
    from stare_robot import keys
    from stare_robot.data.store import EpisodeStore

    store = tmp_path / "ops.zarr"
    with Spinner(probe) as spin:
        statuses = spin.watch_status("policy_client/status")
        spin.publish_joint_states()
        procs = [
            start_node("robot_bridge", STATE_PARAMS, joint_state_timeout_s=120.0),
            start_node("episode_recorder", STATE_PARAMS, store_path=str(store),
                       frame_topic="joint_states"),
            start_node("policy_client", STATE_PARAMS, server_url=token_server.url,
                       env={"STARE_ROBOT_TOKEN": TOKEN}),
        ]
        wait_for(lambda: statuses and statuses[-1].get("connected"), 90, "policy_client connected", procs)

        reset = robot("reset")
        assert reset.returncode == 0, reset.stderr
        assert "/policy_client/reset: ok" in reset.stdout
        wait_for(lambda: statuses[-1].get("resets") == 1, 10, "the reset counted on ~/status", procs)

        assert robot("record", "start").returncode == 0
        time.sleep(1.5)  # ~30 joint states recorded as frames
        during = status_lines(robot("status"))
        assert '"recording": true' in during["episode_recorder"]
        label = robot("record", "label", "--success")
        assert label.returncode == 0 and "success = True" in label.stdout, label
        stop = robot("record", "stop")
        assert stop.returncode == 0, stop.stderr
        report = json.loads(stop.stdout.split(": ok: ", 1)[1])
        again = robot("record", "stop")  # nothing recording: the node says no, the command fails
        assert again.returncode == 1 and "refused" in again.stdout

        assert robot("estop", "on").returncode == 0
        refused = robot("home")
        assert refused.returncode == 1 and "e-stop engaged" in refused.stdout
        assert robot("estop", "off").returncode == 0
        home = robot("home")
        assert home.returncode == 0 and "home pose" in home.stdout

        lines = status_lines(robot("status"))
        assert lines["policy_client"].startswith("running; status {")
        assert '"resets": 1' in lines["policy_client"]
        assert lines["episode_recorder"].startswith("running; status {")
        assert f'"last_episode": "{report["episode_id"]}"' in lines["episode_recorder"]
        assert '"recording": false' in lines["episode_recorder"]
        assert lines["robot_bridge"] == "running"
        assert all(p.proc.poll() is None for p in procs)

    episode = EpisodeStore.open(store)[report["episode_id"]]
    assert len(episode) == report["frames"] > 10
    assert episode.attrs[keys.ATTR_SUCCESS] is True


def test_stare_robot_robot_names_a_service_that_does_not_answer():
    t0 = time.monotonic()
    out = subprocess.run([str(BIN_DIR / "stare-robot"), "robot", "--namespace", "/nowhere",
                          "--timeout", "1.5", "reset"], capture_output=True, text=True,
                         check=False, env=ros_env(), timeout=60)
    assert out.returncode == 1
    assert "service /nowhere/policy_client/reset did not appear within 1.5 s" in out.stderr
    assert time.monotonic() - t0 < 30


def test_camera_node_with_a_missing_recording_exits_with_an_error(tmp_path):
    missing = tmp_path / "missing.bag"
    out = subprocess.run([str(BIN_DIR / "camera_node"), "--ros-args", "-p", f"recording:={missing}"],
                         capture_output=True, text=True, check=False, env=ros_env(), timeout=120)
    assert out.returncode == 2
    assert f"recording '{missing}': no such file" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_nodes_stop_cleanly_on_a_signal(sig, tmp_path, token_server, probe):
    """Mid-spin, with timers and callbacks busy (policy_client re-publishing hold actions)."""
    with Spinner(probe) as spin:
        spin.publish_joint_states()
        statuses = spin.watch_status("policy_client/status")
        procs = [NodeProcess("episode_recorder", STATE_PARAMS, tmp_path, store_path=str(tmp_path / "s.zarr")),
                 NodeProcess("policy_client", STATE_PARAMS, tmp_path, server_url=token_server.url,
                             control_rate_hz=100.0, env={"STARE_ROBOT_TOKEN": TOKEN})]
        try:
            wait_for(lambda: statuses and statuses[-1].get("connected"), 90, "policy_client up", procs)
            time.sleep(1.0)
            for p in procs:
                p.proc.send_signal(sig)
            codes = [p.proc.wait(30) for p in procs]
        finally:
            for p in procs:
                p.stop()
    for p, code in zip(procs, codes):
        assert code == 0, p.log()
        assert "Traceback" not in p.log() and "RCLError" not in p.log()

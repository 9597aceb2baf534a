"""deploy.launch.py ``robot:=franka sim:=true obs_mode:=state`` (what ``make demo``'s state-mode
checkpoint needs) against a server started with an auth token: sim_robot in real time, the
robot bridge and the policy client, every node its own process. The client given the token
drives the simulated arm; a second client without it is refused, says "authentication failed"
on its ``~/status`` within one retry period and commands nothing; the token appears in no
status and no log. Then sim_robot stops cleanly on SIGINT / SIGTERM mid-run (no traceback)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import ros_graph
import yaml
from graph_server import ServerProcess, tiny_state_checkpoint
from launch_files import launched_nodes
from ros_graph import REPO_ROOT, NodeProcess, spin_until
from test_graph_closed_loop import is_hold

probe, start_node = ros_graph.probe, ros_graph.start_node  # the harness's fixtures

pytestmark = [pytest.mark.ros, pytest.mark.sim]

TOKEN = "deploy-tok-51c0ffee"
RATE_HZ = 5.0
RETRY_S = 1.0


def state_deploy_nodes() -> dict:
    """deploy.launch.py's franka sim state graph: executable -> (params file, launch overrides)."""
    for context, nodes in launched_nodes(REPO_ROOT / "launch" / "deploy.launch.py", obs_mode="state"):
        if (context["robot"], context["sim"], context["record"]) == ("franka", "true", "false"):
            out = {}
            for n in nodes:
                params, extra = n.kwargs["parameters"]
                exe = n.kwargs["executable"]
                out[exe] = (Path(params).name, yaml.safe_load(Path(extra).read_text())[f"/**/{exe}"]["ros__parameters"])
            return out
    raise AssertionError("deploy.launch.py has no franka sim state run")


def test_state_deploy_graph_connects_with_the_token_and_refuses_without_it(tmp_path, request, probe,
                                                                          start_node):
    from std_msgs.msg import Float64MultiArray, String

    server = ServerProcess(tiny_state_checkpoint(tmp_path / "ckpt"), tmp_path / "server.log", token=TOKEN)
    request.addfinalizer(server.kill)
    server.wait_ready()
    nodes = state_deploy_nodes()
    assert list(nodes) == ["sim_robot", "robot_bridge", "policy_client"]
    assert {params for params, _ in nodes.values()} == {"franka_sim_state.yaml"}
    rate = {"control_rate_hz": RATE_HZ}
    client_budget = {"max_observation_age_s": 2.5 / RATE_HZ, "max_stamp_skew_s": 1.25 / RATE_HZ,
                     "request_timeout_s": 5 / RATE_HZ, "retry_period_s": RETRY_S}
    per_node = {"sim_robot": rate, "robot_bridge": rate,
                "policy_client": {**rate, **client_budget, "server_url": server.url}}
    procs = [start_node(exe, params, env={"STARE_ROBOT_TOKEN": TOKEN} if exe == "policy_client" else None,
                        **{**overrides, **per_node[exe]})
             for exe, (params, overrides) in nodes.items()]
    # the same client without the token, on its own action topic (it must never command anything)
    intruder = start_node("policy_client", "franka_sim_state.yaml", args=["-r", "__node:=no_token"],
                          action_topic="action_no_token", server_url=server.url, **rate, **client_budget)
    procs.append(intruder)

    actions, stray, statuses = [], [], {"policy_client": [], "no_token": []}
    probe.create_subscription(Float64MultiArray, "action", lambda m: actions.append(np.array(m.data)), 50)
    probe.create_subscription(Float64MultiArray, "action_no_token", stray.append, 50)
    for name, got in statuses.items():
        probe.create_subscription(String, f"{name}/status", lambda m, g=got: g.append(json.loads(m.data)), 50)

    spin_until(probe, lambda: statuses["no_token"], 300, "the token-less client's first status", procs)
    first = time.monotonic()
    spin_until(probe, lambda: statuses["no_token"][-1]["reason"].startswith("authentication failed"),
               RETRY_S + 1.0, "'authentication failed' within one retry period", procs)
    assert time.monotonic() - first <= RETRY_S + 1.0
    spin_until(probe, lambda: sum(not is_hold(a) for a in actions) >= 8, 300,
               "8 policy actions from the client with the token", procs)

    assert all(p.proc.poll() is None for p in procs), "every node still running"
    assert not stray, "the refused client commanded nothing"
    refused = statuses["no_token"][-1]
    assert refused["holding"] and not refused["connected"] and "HTTP 401" in refused["reason"]
    assert statuses["policy_client"][-1]["connected"]
    assert not any(s["reason"].startswith("authentication") for s in statuses["policy_client"])
    shown = json.dumps(statuses) + "".join(p.log() for p in procs)
    assert TOKEN not in shown


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sim_robot_stops_cleanly_on_a_signal_mid_step(sig, tmp_path, probe):
    """Real time at 20 Hz with the camera on: the timer's step + publish is busy most of the
    time, so the signal lands in a callback (the case that printed an RCLError traceback)."""
    from sensor_msgs.msg import JointState

    states = []
    probe.create_subscription(JointState, "joint_states", states.append, 10)
    sim = NodeProcess("sim_robot", "franka_sim.yaml", tmp_path, control_rate_hz=20.0, image_size=64)
    try:
        spin_until(probe, lambda: len(states) >= 10, 300, "sim_robot stepping", [sim])
        sim.proc.send_signal(sig)
        code = sim.proc.wait(60)
    finally:
        sim.stop()
    log = sim.log()
    assert code == 0, log
    assert "Traceback" not in log and "RCLError" not in log

"""Closed-loop episodes through the whole lock-step graph, ended the way in-process evaluation
ends them (``stare_robot.sim.rollout.rollout_episode``): at the first state where the task is
solved, or after ``max_steps`` actions.

The graph is sim_robot -> policy_client -> (server) -> robot_bridge -> sim_robot. Only the episode
boundary needs the test's hand: the probe node sits on the action topic as a *gate*
(policy_client publishes on ``action``, robot_bridge listens on ``action_gated``) and forwards each
action only after asking ``sim_robot/success`` about the state the action was computed from. In
lock-step the sim waits for that forwarded action, so the success check sees exactly the state
in-process evaluation checks, and a solved episode stops before another step (a real episode
would be stopped by an operator or a success detector, not by the policy).

    runner = GraphEpisodeRunner(probe, procs, max_steps=80)
    outcome = runner.run(seed=10_000)       # {"seed", "success", "length", "seconds"}

or all of it, server and nodes started and stopped: :func:`run_graph_episodes`.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

from ros_graph import NodeProcess, call, spin_until

ACTION_IN = "action"  # policy_client's action_topic
ACTION_GATED = "action_gated"  # robot_bridge's action_topic in these runs
PARAMS = "franka_sim_lockstep.yaml"


class GraphEpisodeRunner:
    def __init__(self, node, procs, max_steps: int, sim_rate_hz: float = 20.0, step_timeout_s: float = 60.0):
        from rcl_interfaces.srv import SetParameters
        from sensor_msgs.msg import JointState
        from stare_robot_ros.conversions import time_seconds
        from std_msgs.msg import Float64MultiArray
        from std_srvs.srv import Trigger

        self.node, self.procs, self.max_steps = node, list(procs), max_steps
        self.step_timeout_s = step_timeout_s
        self._msg = Float64MultiArray
        self._active = False
        self._actions: deque = deque()
        self.sim_step: int | None = None  # step index of the newest joint state (sim time * rate)
        self.max_queued = 0  # > 1 would mean the policy client ran ahead of lock-step

        def on_joints(msg):
            self.sim_step = round(time_seconds(msg.header.stamp) * sim_rate_hz)

        def on_action(msg):
            if self._active:
                self._actions.append(msg)
                self.max_queued = max(self.max_queued, len(self._actions))

        node.create_subscription(JointState, "joint_states", on_joints, 10)
        node.create_subscription(Float64MultiArray, ACTION_IN, on_action, 10)
        self.gate = node.create_publisher(Float64MultiArray, ACTION_GATED, 10)
        self._set_params = node.create_client(SetParameters, "sim_robot/set_parameters")
        self._sim_reset = node.create_client(Trigger, "sim_robot/reset")
        self._success = node.create_client(Trigger, "sim_robot/success")
        self._policy_reset = node.create_client(Trigger, "policy_client/reset")
        self._trigger = Trigger.Request
        self._set_params_request = SetParameters.Request

    def _call(self, client, request, timeout: float = 60.0):
        return call(self.node, client, request, timeout, self.procs)

    def _reset(self, seed: int) -> None:
        from rclpy.parameter import Parameter

        self._active = False
        answer = self._call(self._set_params, self._set_params_request(
            parameters=[Parameter("seed", value=int(seed)).to_parameter_msg()]))
        assert all(r.successful for r in answer.results), answer.results
        self.sim_step = None
        assert self._call(self._sim_reset, self._trigger()).success
        spin_until(self.node, lambda: self.sim_step == 0, 30, f"seed {seed}'s reset state", self.procs)
        # after the sim: the policy client forgets the old episode and waits for fresh messages,
        # so every action arriving from here on was computed from this episode's states
        self._actions.clear()
        self._active = True
        assert self._call(self._policy_reset, self._trigger()).success

    def solved(self, step: int) -> bool:
        answer = self._call(self._success, self._trigger())
        reported = int(answer.message.split(":", 1)[0].removeprefix("step "))
        assert reported == step, f"success asked at step {step}, the sim is at step {reported}"
        return bool(answer.success)

    def run(self, seed: int) -> dict:
        """One episode from ``seed``: {"seed", "success", "length", "seconds"}."""
        t0 = time.monotonic()
        self._reset(seed)
        length, success = 0, False
        while True:
            success = self.solved(length)
            if success or length >= self.max_steps:
                break
            spin_until(self.node, lambda: self._actions, self.step_timeout_s,
                       f"the policy's action {length} of seed {seed}", self.procs)
            self.gate.publish(self._actions.popleft())
            length += 1
            spin_until(self.node, lambda n=length: self.sim_step == n, self.step_timeout_s,
                       f"sim step {length} of seed {seed}", self.procs)
        self._active = False
        return {"seed": int(seed), "success": success, "length": length,
                "seconds": round(time.monotonic() - t0, 3)}


def graph_nodes(policy, task: str, seed: int, instruction: str, execute_steps: int, url: str,
                log_dir: Path) -> list[NodeProcess]:
    """sim_robot, robot_bridge (behind the gate) and policy_client, in lock-step, fed what
    ``policy`` reads: the camera at its image size (rgb mode) or sim_robot's env state (state)."""
    from stare_robot.sim.evaluate import policy_image_size, policy_obs_mode

    rgb = policy_obs_mode(policy) == "rgb"
    sensors = ({"camera_enabled": "true", "image_size": policy_image_size(policy)} if rgb
               else {"camera_enabled": "false", "env_state_topic": "env_state"})
    return [
        NodeProcess("sim_robot", PARAMS, log_dir, task=task, seed=seed, **sensors),
        NodeProcess("robot_bridge", PARAMS, log_dir, action_topic=ACTION_GATED),
        NodeProcess("policy_client", PARAMS, log_dir, server_url=url, action_topic=ACTION_IN,
                    instruction=f'"{instruction}"', execute_steps=execute_steps,
                    control_rate_hz=50.0,  # lock-step: only how often it looks for a new state
                    env_state_topic="" if rgb else "env_state"),
    ]


def run_graph_episodes(node, log_dir: Path, ckpt: Path, policy, task: str, seeds: list[int],
                       max_steps: int, execute_steps: int, instruction: str) -> list[dict]:
    """Serve ``ckpt`` with ``stare-robot serve``, start the lock-step graph, run one episode per
    seed (progress bar), stop everything; the outcomes of :meth:`GraphEpisodeRunner.run`."""
    from graph_server import ServerProcess
    from tqdm.auto import tqdm

    server = ServerProcess(ckpt, log_dir / "server.log")
    procs = []
    try:
        server.wait_ready()
        procs = graph_nodes(policy, task, seeds[0], instruction, execute_steps, server.url, log_dir)
        runner = GraphEpisodeRunner(node, procs, max_steps)
        outcomes = [runner.run(s) for s in tqdm(seeds, desc="graph", unit="ep")]
        assert runner.max_queued <= 1, "the policy client ran ahead of the lock-step sim"
        return outcomes
    finally:
        for p in procs:
            p.stop()
        server.kill()

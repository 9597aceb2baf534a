"""``stare-robot robot ...``: operator commands for a running robot graph, without a ROS CLI.

The PyPI rclpy wheels bring no ``ros2`` command, so these call the nodes' services over rclpy:

    stare-robot robot reset                        # policy_client ~/reset: a new episode
    stare-robot robot record start                 # episode_recorder ~/start
    stare-robot robot record label --success       # ~/label (or --failure)
    stare-robot robot record stop                  # ~/stop: commits the episode, prints its report
    stare-robot robot home                         # robot_bridge ~/home (slowly, to the home pose)
    stare-robot robot estop on                     # robot_bridge ~/estop (on = hold, off = resume)
    stare-robot robot status                       # the latest status of each node

Node names default to the launch files' (``policy_client``, ``episode_recorder``,
``robot_bridge``); ``--namespace`` is the graph's (``-r __ns:=...``). A service that does not answer
within ``--timeout`` is an error (exit 1) naming it; a service that answers "no" exits 1 with its
message; missing rclpy exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

RECORD_ACTIONS = ("start", "stop", "label")


class OperatorError(RuntimeError):
    """A node did not answer (message names the service and the timeout)."""


OPTION_DEFAULTS = {"namespace": "", "timeout": 10.0, "policy_client": "policy_client",
                   "recorder": "episode_recorder", "bridge": "robot_bridge",
                   "camera_status_topic": "camera/status"}


def _options(defaults: bool) -> argparse.ArgumentParser:
    """The common options; given before or after the command (``robot reset --timeout 5``)."""
    opts = argparse.ArgumentParser(add_help=False)
    d = OPTION_DEFAULTS if defaults else dict.fromkeys(OPTION_DEFAULTS, argparse.SUPPRESS)
    opts.add_argument("--namespace", default=d["namespace"], help="the graph's namespace (default: none)")
    opts.add_argument("--timeout", type=float, default=d["timeout"],
                      help="seconds to wait for a service or a status (default 10)")
    opts.add_argument("--policy-client", default=d["policy_client"], help="policy client node name")
    opts.add_argument("--recorder", default=d["recorder"], help="episode recorder node name")
    opts.add_argument("--bridge", default=d["bridge"], help="robot bridge node name")
    opts.add_argument("--camera-status-topic", default=d["camera_status_topic"],
                      help="camera_node's status topic (relative to the namespace)")
    return opts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stare-robot robot", parents=[_options(defaults=True)],
        description="Operator commands for a running stare-robot ROS 2 graph (over rclpy).")
    common = _options(defaults=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("reset", parents=[common],
                   help="start a new episode in the policy client (policy_client ~/reset)")
    record = sub.add_parser("record", parents=[common],
                            help="episode recorder: start | stop | label --success/--failure")
    record.add_argument("action", choices=RECORD_ACTIONS)
    outcome = record.add_mutually_exclusive_group()
    outcome.add_argument("--success", dest="success", action="store_true", default=None,
                         help="with label: the episode succeeded")
    outcome.add_argument("--failure", dest="success", action="store_false",
                         help="with label: the episode failed")
    sub.add_parser("home", parents=[common],
                   help="move the arm slowly to its home pose (robot_bridge ~/home)")
    estop = sub.add_parser("estop", parents=[common],
                           help="e-stop: on = hold and ignore actions, off = resume")
    estop.add_argument("state", choices=("on", "off"))
    sub.add_parser("status", parents=[common], help="print the latest status of each node")
    return parser


def resolve(namespace: str, *parts: str) -> str:
    """An absolute ROS name: ``resolve("/arm", "policy_client", "reset") == "/arm/policy_client/reset"``."""
    return "/" + "/".join(p.strip("/") for p in (namespace, *parts) if p.strip("/"))


class Operator:
    """One short-lived rclpy node that calls the graph's services and reads its status topics."""

    def __init__(self, timeout: float):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.rclpy = rclpy
        self.timeout = timeout
        # a context of its own: usable in a process that already runs rclpy (tests, notebooks)
        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context)
        self.node = rclpy.create_node(f"stare_robot_operator_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)

    def _spin_until(self, done, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def call(self, srv_type, name: str, request):
        client = self.node.create_client(srv_type, name)
        start = time.monotonic()
        if not self._spin_until(client.service_is_ready, self.timeout):
            raise OperatorError(f"service {name} did not appear within {self.timeout:g} s: is the "
                                "node running (and --namespace / the node name right)?")
        future = client.call_async(request)
        if not self._spin_until(future.done, max(0.5, self.timeout - (time.monotonic() - start))):
            raise OperatorError(f"service {name} did not answer within {self.timeout:g} s")
        return future.result()

    def service_up(self, srv_type, name: str, timeout: float) -> bool:
        client = self.node.create_client(srv_type, name)
        return self._spin_until(client.service_is_ready, timeout)

    def listen(self, topics: list[str]) -> dict[str, str]:
        """The newest std_msgs/String on each topic, filled in while this node spins."""
        from std_msgs.msg import String

        got: dict[str, str] = {}
        for topic in topics:
            self.node.create_subscription(String, topic, lambda m, t=topic: got.__setitem__(t, m.data), 10)
        return got

    def wait(self, done, timeout: float) -> bool:
        return self._spin_until(done, timeout)


def run(args: argparse.Namespace, op: Operator) -> int:
    from std_srvs.srv import SetBool, Trigger

    ns = args.namespace

    def report(name: str, response) -> int:
        print(f"{name}: {'ok' if response.success else 'refused'}: {response.message}")
        return 0 if response.success else 1

    if args.command == "reset":
        name = resolve(ns, args.policy_client, "reset")
        return report(name, op.call(Trigger, name, Trigger.Request()))
    if args.command == "record":
        if args.action == "label":
            name = resolve(ns, args.recorder, "label")
            return report(name, op.call(SetBool, name, SetBool.Request(data=args.success)))
        name = resolve(ns, args.recorder, args.action)
        return report(name, op.call(Trigger, name, Trigger.Request()))
    if args.command == "home":
        name = resolve(ns, args.bridge, "home")
        return report(name, op.call(Trigger, name, Trigger.Request()))
    if args.command == "estop":
        name = resolve(ns, args.bridge, "estop")
        return report(name, op.call(SetBool, name, SetBool.Request(data=args.state == "on")))
    return status(args, op)


def status(args: argparse.Namespace, op: Operator) -> int:
    """policy_client's ~/status (re-published every second), the recorder's last report and the
    camera's state if they speak within the wait, and which nodes' services are up."""
    from std_srvs.srv import SetBool, Trigger

    ns = args.namespace
    policy = resolve(ns, args.policy_client, "status")
    topics = {args.policy_client: policy, args.recorder: resolve(ns, args.recorder, "status"),
              "camera": resolve(ns, args.camera_status_topic)}
    got = op.listen(list(topics.values()))
    op.wait(lambda: policy in got, args.timeout)  # re-published every second
    # the recorder's heartbeat (also every second), if it runs: a short extra wait at most
    op.wait(lambda: topics[args.recorder] in got, min(2.0, args.timeout))
    services = {args.policy_client: (Trigger, "reset"), args.recorder: (Trigger, "start"),
                args.bridge: (SetBool, "estop")}
    quick = min(2.0, args.timeout)  # discovery is done by now: a short look per node
    found = 0
    for node, (srv_type, srv) in services.items():
        up = op.service_up(srv_type, resolve(ns, node, srv), quick)
        found += up
        line = f"{node}: {'running' if up else 'not found'}"
        topic = topics.get(node)
        if topic in got:
            text = got[topic]
            try:
                text = json.dumps(json.loads(text), sort_keys=True)
            except ValueError:
                pass
            line += f"; status {text}"
        print(line)
    if topics["camera"] in got:
        print(f"camera: {got[topics['camera']]}")
    if not found and not got:
        print(f"no stare-robot node answered within {args.timeout:g} s (namespace {ns or '/'!r}; "
              "same ROS_DOMAIN_ID?)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be > 0, got {args.timeout:g}")
    if args.command == "record" and (args.action == "label") != (args.success is not None):
        parser.error("--success or --failure goes with `record label` (and only there)")
    try:
        import rclpy  # noqa: F401
        from std_srvs.srv import Trigger  # noqa: F401
    except ImportError as err:
        print(f"error: `stare-robot robot` needs rclpy and std_srvs ({err}); install the ROS extra: "
              "pip install -e '.[ros]' (or source a ROS 2 install)", file=sys.stderr)
        return 2
    op = Operator(args.timeout)
    try:
        return run(args, op)
    except OperatorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        op.close()


if __name__ == "__main__":
    raise SystemExit(main())

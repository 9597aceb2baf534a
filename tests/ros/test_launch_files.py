"""Static checks of the ROS 2 launch files (``ros2 launch`` is not installable here).

Each launch file is loaded with stand-ins for the ``launch`` / ``launch_ros`` classes it uses (they
record what would be started), for every combination of its choice arguments. Then: every
executable is a console script of the package; every params file exists and holds only parameters
that the node it configures declares (read from the node's source), with the declared type;
every inline override is a declared parameter too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from launch_files import launched_nodes, load_launch_file
from ros_graph import REPO_ROOT

PACKAGE_DIR = REPO_ROOT / "ros2_ws" / "src" / "stare_robot_ros"
LAUNCH_DIR = REPO_ROOT / "launch"
LAUNCH_FILES = sorted(LAUNCH_DIR.glob("*.launch.py"))


# --- what the package offers ---
def console_scripts() -> dict[str, str]:
    """executable -> module, from setup.py's console_scripts."""
    tree = ast.parse((PACKAGE_DIR / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and any(
            isinstance(k, ast.Constant) and k.value == "console_scripts" for k in node.keys
        ):
            entries = ast.literal_eval(node.values[0])
            return {e.split("=")[0].strip(): e.split("=")[1].strip().split(":")[0] for e in entries}
    raise AssertionError("setup.py has no console_scripts")


def declared_parameters(module: str) -> dict[str, type | None]:
    """Parameters a node module declares -> the default's type (None when not a literal): the
    ``defaults`` dict of ``_declare_parameters`` and literal ``declare_parameter(name, ...)`` calls."""
    path = PACKAGE_DIR / Path(*module.split(".")).with_suffix(".py")
    found: dict[str, type | None] = {}

    def literal_type(node):
        try:
            value = ast.literal_eval(node)
        except ValueError:
            return None
        return list if isinstance(value, list) else type(value)

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "defaults" for t in node.targets):
            for key, value in zip(node.value.keys, node.value.values):
                found[key.value] = literal_type(value)
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "declare_parameter"
                and isinstance(node.args[0], ast.Constant)):
            found[node.args[0].value] = literal_type(node.args[1])
    assert found, f"no declared parameters found in {path}"
    return found


def node_section(doc: dict, name: str) -> dict:
    """A params file's section for node ``name``: keyed ``/**/<name>`` (any namespace); a bare
    ``<name>`` key would match only ``/<name>`` and vanish under ``-r __ns:=...``."""
    assert name not in doc, f"section {name!r} applies only outside a namespace: key it /**/{name}"
    return doc.get(f"/**/{name}", {}).get("ros__parameters", {})


def _type_ok(declared: type | None, value) -> bool:
    if declared is None:
        return True
    if declared is float:  # rclpy refuses an int where a double was declared, and vice versa
        return isinstance(value, float)
    return isinstance(value, declared) and not (declared is int and isinstance(value, bool))


ALL_RUNS = [(path, ctx, nodes) for path in LAUNCH_FILES for ctx, nodes in launched_nodes(path)]
# obs_mode has no choices list (state is valid for one robot only): its state run, added by hand
ALL_RUNS += [(path, {**ctx, "obs_mode": "state"}, nodes)
             for path in LAUNCH_FILES if path.name == "deploy.launch.py"
             for ctx, nodes in launched_nodes(path, obs_mode="state")
             if (ctx["robot"], ctx["sim"]) == ("franka", "true")]


def test_the_launch_files_are_there_and_the_top_level_folder_is_the_packages():
    names = {p.name for p in LAUNCH_FILES}
    assert {"deploy.launch.py", "record.launch.py", "franka_sim.launch.py"} <= names
    # one source of truth: launch/ at the top is the ROS package's folder (installed by setup.py)
    assert LAUNCH_DIR.resolve() == (PACKAGE_DIR / "launch").resolve()
    assert "launch/*.launch.py" in (PACKAGE_DIR / "setup.py").read_text()


@pytest.mark.parametrize("path, context, nodes", ALL_RUNS,
                         ids=[f"{p.name}-" + "-".join(f"{k}={v}" for k, v in c.items() if k in ("robot", "sim", "record"))
                              for p, c, _ in ALL_RUNS])
def test_every_node_is_a_console_script_configured_only_with_declared_parameters(path, context, nodes):
    scripts = console_scripts()
    assert nodes, f"{path.name} starts no node for {context}"
    for node in nodes:
        exe = node.kwargs["executable"]
        assert node.kwargs["package"] == "stare_robot_ros"
        assert exe in scripts, f"{path.name}: {exe!r} is not a console script ({sorted(scripts)})"
        declared = declared_parameters(scripts[exe])
        name = node.kwargs.get("name", exe)
        for params in node.kwargs["parameters"]:
            if isinstance(params, dict):
                unknown = set(params) - set(declared)
                assert not unknown, f"{path.name}: {exe} overrides undeclared {sorted(unknown)}"
                continue
            file = Path(params.perform(context) if hasattr(params, "perform") else params)
            assert file.is_file(), f"{path.name} loads a missing params file {file}"
            doc = yaml.safe_load(file.read_text())
            own = node_section(doc, name)
            sections = {**doc.get("/**", {}).get("ros__parameters", {}), **own}
            unknown = set(own) - set(declared)
            assert not unknown, f"{file.name}: section {name} has parameters {exe} never declares: {sorted(unknown)}"
            for key, value in sections.items():
                if key in declared:
                    assert _type_ok(declared[key], value), (
                        f"{file.name}: {name}.{key} = {value!r} but {exe} declares a {declared[key].__name__}")


def test_shared_parameters_are_each_declared_by_some_launched_node():
    scripts = console_scripts()
    for path, context, nodes in ALL_RUNS:
        declared = set().union(*(declared_parameters(scripts[n.kwargs["executable"]]) for n in nodes))
        for node in nodes:
            for params in node.kwargs["parameters"]:
                if isinstance(params, dict):
                    continue
                file = Path(params.perform(context) if hasattr(params, "perform") else params)
                shared = yaml.safe_load(file.read_text()).get("/**", {}).get("ros__parameters", {})
                assert set(shared) <= declared, f"{file.name}: /** holds {sorted(set(shared) - declared)}, declared by no node"


def test_deploy_starts_the_camera_on_hardware_and_the_sim_robot_in_simulation():
    by_args = {(c["robot"], c["sim"], c["record"]): [n.kwargs["executable"] for n in nodes]
               for c, nodes in launched_nodes(LAUNCH_DIR / "deploy.launch.py")}
    assert by_args[("widowx", "false", "true")] == ["camera_node", "robot_bridge", "policy_client", "episode_recorder"]
    assert by_args[("franka", "true", "false")] == ["sim_robot", "robot_bridge", "policy_client"]
    assert len(by_args) == 8
    runs = launched_nodes(LAUNCH_DIR / "record.launch.py")
    assert {tuple(n.kwargs["executable"] for n in nodes) for _, nodes in runs} == {
        ("camera_node", "robot_bridge", "episode_recorder")}
    bridge = next(n for n in runs[0][1] if n.kwargs["executable"] == "robot_bridge")
    assert {"mode": "observe"}.items() <= launch_overrides(bridge).items()  # never commands


def launch_overrides(node) -> dict:
    """The launch arguments' values a node gets: its second params file, under its own name."""
    _, overrides = node.kwargs["parameters"]
    doc = yaml.safe_load(Path(overrides).read_text())
    assert list(doc) == [f"/**/{node.kwargs['name']}"]  # its own section: beats the robot file's
    return node_section(doc, node.kwargs["name"])


def deploy_run(**args) -> dict:
    """deploy.launch.py's nodes for ``args`` (the others at their defaults), by executable."""
    _, entities = load_launch_file(LAUNCH_DIR / "deploy.launch.py")
    context = {e.args[0]: e.kwargs["default_value"] for e in entities
               if type(e).__name__ == "DeclareLaunchArgument"}
    context.update(args)
    opaque = next(e for e in entities if type(e).__name__ == "OpaqueFunction")
    return {n.kwargs["executable"]: n for n in opaque.kwargs["function"](context)}


def test_deploy_hands_the_token_to_the_policy_client_in_its_environment_only():
    nodes = deploy_run(token="s3cret", server_url="http://gpu:8000")
    client = nodes["policy_client"]
    assert client.kwargs["additional_env"] == {"STARE_ROBOT_TOKEN": "s3cret"}
    assert launch_overrides(client) == {"server_url": "http://gpu:8000"}  # not a parameter
    assert all("s3cret" not in repr(n.kwargs) for name, n in nodes.items() if name != "policy_client")
    assert deploy_run()["policy_client"].kwargs["additional_env"] == {}  # "" = $STARE_ROBOT_TOKEN


def test_deploy_obs_mode_state_runs_the_state_graph_in_simulation_only():
    nodes = deploy_run(obs_mode="state", rate="5")
    params, _ = nodes["policy_client"].kwargs["parameters"]
    assert Path(params).name == "franka_sim_state.yaml"
    doc = yaml.safe_load(Path(params).read_text())
    assert node_section(doc, "policy_client")["env_state_topic"] == "env_state"
    assert node_section(doc, "sim_robot")["env_state_topic"] == "env_state"
    assert launch_overrides(nodes["sim_robot"]) == {"control_rate_hz": 5.0}
    with pytest.raises(ValueError, match="obs_mode:=state needs robot:=franka sim:=true"):
        deploy_run(obs_mode="state", sim="false")
    with pytest.raises(ValueError, match=r"obs_mode:=depth is not valid"):
        deploy_run(obs_mode="depth")


def test_deploy_rejects_an_unknown_robot_naming_the_valid_ones():
    module, _ = load_launch_file(LAUNCH_DIR / "deploy.launch.py")
    with pytest.raises(ValueError, match=r"robot:=ur5 is not valid; use one of \('widowx', 'franka'\)"):
        module.params_file("ur5", sim=False)

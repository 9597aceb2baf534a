"""The README's commands work as written.

Convention (stated in the README's Tests section): every fenced ```bash block is commands. A
``<!-- not-tested: why -->`` line right before a block keeps it out of the slow run (hardware, a
GPU machine, a ROS install, a long-running viewer); it is still checked by the fast tests.

- fast (default run): every ``stare-robot ...`` command names sub-commands that exist and uses
  only ``--flags`` its ``--help`` lists (flags in the line's trailing comment, the documented
  options, too); every ``make`` target exists; every ``benchmarks/``, ``launch/``, ``docs/`` and
  ``scripts/`` path the README names anywhere exists.
- slow (``slow``, ``sim``): the tested blocks run, in order, as one bash script (so ``&`` and
  ``kill $!`` behave as in the user's terminal) in a temporary folder holding a tiny ``ipi`` run
  at ``runs/PushCube-v1``, with sizes shrunk by :data:`SUBSTITUTIONS`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import shlex
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
NOT_TESTED = re.compile(r"^\s*<!--\s*not-tested:\s*(?P<why>.+?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
OPERATORS = {";", "&&", "||", "|", "&", "(", ")"}
REPO_PATH = re.compile(r"(?<![\w/.$-])((?:benchmarks|launch|docs|scripts)/[\w./*-]*)")
FLAG = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    code: str
    not_tested: str | None  # the reason, when marked


@dataclass
class Command:
    line: int  # 1-based README line where the command starts
    text: str  # the command as written (continuations joined), for messages
    words: list[str]  # shell words of this one command (no operators)
    comment_flags: list[str]  # --flags named in the line's trailing comment


def bash_blocks(text: str) -> list[Block]:
    """Every fenced ```bash block, with its not-tested marker (the nearest non-blank line above)."""
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start, indent = i, fence["indent"]
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i].removeprefix(indent))
            i += 1
        i += 1
        if fence["lang"] != "bash":
            continue
        above = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_TESTED.match(above)
        blocks.append(Block(start + 1, "\n".join(body), marker["why"] if marker else None))
    return blocks


def logical_lines(block: Block) -> list[tuple[int, str]]:
    """(README line, text) of each command line: continuations joined, heredoc bodies dropped."""
    out, pending, first, heredoc_end = [], "", 0, None
    for offset, raw in enumerate(block.code.splitlines(), start=1):
        if heredoc_end is not None:
            if raw.strip() == heredoc_end:
                heredoc_end = None
            continue
        if not pending:
            first = block.line + offset
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line, pending = pending + raw, ""
        here = re.search(r"<<-?\s*'?\"?(\w+)'?\"?", line)
        if here:
            heredoc_end = here.group(1)
        if line.strip():
            out.append((first, line))
    return out


def split_comment(line: str) -> tuple[str, str]:
    """The line without its trailing ``# comment`` (a ``#`` outside quotes after a space)."""
    quote = None
    for k, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (k == 0 or line[k - 1].isspace()):
            return line[:k], line[k + 1:]
    return line, ""


def commands(block: Block) -> list[Command]:
    found = []
    for line_no, line in logical_lines(block):
        code, comment = split_comment(line)
        lexer = shlex.shlex(code, posix=True, punctuation_chars=";&|()")
        lexer.whitespace_split = True
        try:
            tokens = list(lexer)
        except ValueError as err:  # unbalanced quotes: report, do not guess
            tokens = ["<unparsable>", str(err)]
        segment: list[str] = []
        for token in tokens + [";"]:
            if token in OPERATORS:
                if segment:
                    shown = " ".join(code.split())
                    found.append(Command(line_no, shown, segment, FLAG.findall(comment)))
                segment = []
            else:
                segment.append(token)
    return found


# ---------------------------------------------------------------------------- the fast checks


@functools.cache
def cli_help(path: tuple[str, ...]) -> tuple[int, str]:
    """Exit code and output of ``stare-robot PATH... --help``, run in process (it is cheap)."""
    from stare_robot.cli import main

    out = io.StringIO()
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "200"  # no wrapped option lines
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                code = main([*path, "--help"])
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        if before is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = before
    return int(code or 0), out.getvalue()


def lists_subcommand(help_text: str, word: str) -> bool:
    """``word`` is offered as a sub-command: in a usage ``{a,b}`` or at the start of a listing line."""
    w = re.escape(word)
    return bool(re.search(rf"\{{[^}}]*\b{w}\b[^}}]*\}}", help_text)
                or re.search(rf"(?m)^[\s│•]*{w}(\s{{2,}}|\s*│|$)", help_text))


def check_stare_robot(cmd: Command) -> list[str]:
    """Problems of one ``stare-robot ...`` command: unknown sub-command, flags its help lacks."""
    where = f"README line {cmd.line}: `{cmd.text}`"
    args = cmd.words[1:]
    path: list[str] = []
    code, text = cli_help(())
    for word in args:
        if word.startswith("-") or not re.fullmatch(r"[a-z][a-z0-9_-]*", word):
            break
        if not lists_subcommand(text, word):
            if not path:  # the first word must be a command
                return [f"{where}: `stare-robot {word}` is not a command (stare-robot --help)"]
            break
        path.append(word)
        code, text = cli_help(tuple(path))
        if code != 0:
            first = text.strip().splitlines()[0] if text.strip() else ""
            return [f"{where}: `stare-robot {' '.join(path)} --help` fails (exit {code}): {first}"]
    accepted = set(FLAG.findall(text))
    used = [a.split("=", 1)[0] for a in args if FLAG.fullmatch(a.split("=", 1)[0])]
    name = "stare-robot" + "".join(f" {p}" for p in path)
    return [f"{where}: `{name}` does not accept {flag} (not in `{name} --help`)"
            for flag in dict.fromkeys(used + cmd.comment_flags) if flag not in accepted]


def make_targets() -> set[str]:
    return set(re.findall(r"(?m)^([A-Za-z][\w-]*):", (REPO / "Makefile").read_text()))


def check_readme(text: str) -> list[str]:
    """Every problem the fast checks find in a README text (empty: all good)."""
    problems = []
    targets = None
    for block in bash_blocks(text):
        for cmd in commands(block):
            if cmd.words[0] == "stare-robot":
                problems += check_stare_robot(cmd)
            elif cmd.words[0] == "make":
                targets = targets if targets is not None else make_targets()
                for target in (w for w in cmd.words[1:] if "=" not in w and not w.startswith("-")):
                    if target not in targets:
                        problems.append(f"README line {cmd.line}: `{cmd.text}`: no make target "
                                        f"'{target}' in the Makefile")
    for line_no, line in enumerate(text.splitlines(), start=1):
        for found in dict.fromkeys(REPO_PATH.findall(line)):
            problems += check_path(found, line_no)
    return problems


def check_path(found: str, line_no: int) -> list[str]:
    path = found.split("<", 1)[0].rstrip(".")
    if "*" in path:
        ok = any(REPO.glob(path))
    else:
        ok = (REPO / path).exists()
    return [] if ok else [f"README line {line_no}: names `{path}`, which does not exist in the repository"]


def test_readme_commands_flags_make_targets_and_paths_exist():
    problems = check_readme(README.read_text())
    assert not problems, "the README and the code disagree:\n" + "\n".join(problems)


def test_checker_catches_a_renamed_flag_command_target_and_path():
    lines = [
        "Intro naming benchmarks/no_such_benchmark.py and launch/config/franka_sim.yaml.",
        "```bash",
        "stare-robot eval --ckpt runs/x/final --bogus-flag 3   # [--also-bogus]",
        "stare-robot stages annotate data/x.zarr --family gripper",
        "stare-robot nosuchcommand --task X",
        "stare-robot train sft --data d \\",
        "    --stepz 5",
        "make demo TASK=X && make no-such-target",
        "```",
    ]
    problems = check_readme("\n".join(lines))
    text = "\n".join(problems)
    assert "README line 3: `stare-robot eval" in text
    assert "`stare-robot eval` does not accept --bogus-flag" in text
    assert "`stare-robot eval` does not accept --also-bogus" in text
    assert "`stare-robot nosuchcommand` is not a command" in text
    assert "`stare-robot train sft` does not accept --stepz" in text  # continuation line joined
    assert "README line 6:" in text  # ... reported at the command's first line
    assert "no make target 'no-such-target'" in text and "'demo'" not in text
    assert "benchmarks/no_such_benchmark.py" in text and "franka_sim.yaml" not in text
    assert len(problems) == 6, text  # the good lines (annotate --family, make demo) pass


def test_blocks_markers_and_command_splitting():
    lines = [
        "<!-- not-tested: needs a robot -->",
        "```bash",
        "stare-robot robot status",
        "```",
        "",
        "```python",
        "stare-robot ignored --not-bash",
        "```",
        "   ```bash",
        "   source .venv/bin/activate; stare-robot serve --port 8000 &",
        "   until curl -sf http://127.0.0.1:8000/readyz; do sleep 1; done",
        "   python - <<'PY'",
        "   stare-robot inside-a-heredoc --is-python",
        "   PY",
        "   ```",
    ]
    blocks = bash_blocks("\n".join(lines))
    assert [(b.line, b.not_tested) for b in blocks] == [(2, "needs a robot"), (9, None)]
    words = [c.words for c in commands(blocks[1])]
    assert ["stare-robot", "serve", "--port", "8000"] in words
    assert ["source", ".venv/bin/activate"] in words
    assert not any("inside-a-heredoc" in w for c in words for w in c)


# ---------------------------------------------------------------------------- the slow run

# README text -> what the slow run executes: small sizes, a free loopback port. Applied in order.
SUBSTITUTIONS: list[tuple[str, str]] = [
    (r"127\.0\.0\.1:8000", "127.0.0.1:{port}"),
    (r"--port 8000", "--port {port}"),
    (r"port=8000", "port={port}"),
    (r"--budget (default|long)", "--budget tiny"),
    (r"--episodes \d{2,}", "--episodes 2"),  # counts, not `stages show --episodes 0 1`
    (r"--num \d+", "--num 2"),
    (r"stare-robot train sft ", "stare-robot train sft --steps 5 "),
    (r"stare-robot train tpo ", "stare-robot train tpo --steps 2 "),
    (r"stare-robot train ppo ", ("stare-robot train ppo --iterations 1 --episodes-per-iter 2 "
                                 "--eval-episodes 1 --num-envs 1 ")),
    # A 5-step SFT policy fails every rollout alike, so `pairs` rightly finds no pair and says so
    # (checked); then the tpo line stands the SFT checkpoint in for its output, which is what
    # `train tpo` itself does with fewer than --min-pairs pairs.
    (r"(?m)^(stare-robot pairs [^#\n]*?--out (\S+))[^\n]*$",
     "\\1 2>pairs.err || {{ cat pairs.err; grep -q 'no preference pair' pairs.err && touch \\2.none; }}"),
    (r"(?m)^(stare-robot train tpo [^#\n]*?--ckpt (\S+) --pairs (\S+)[^#\n]*?--out (\S+))[^\n]*$",
     "if [ -e \\3.none ]; then mkdir -p \\4 && cp -r \\2 \\4/final; else \\1; fi"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def runnable_script(text: str, port: int) -> str:
    """The README's tested blocks as one bash script, sizes shrunk, background jobs stopped at exit."""
    parts = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for block in bash_blocks(text):
        if block.not_tested:
            continue
        code = block.code
        for pattern, replacement in SUBSTITUTIONS:
            code = re.sub(pattern, replacement.format(port=port), code)
        parts += [f"echo '### README block at line {block.line}'", code]
    return "\n".join(parts) + "\n"


def test_substitutions_shrink_sizes_and_move_the_port():
    fake = "```bash\nstare-robot eval --ckpt c --episodes 100 --server http://127.0.0.1:8000\n```\n"
    script = runnable_script(fake, 4321)
    assert "--episodes 2 --server http://127.0.0.1:4321" in script
    assert "### README block at line 1" in script


@pytest.mark.slow
@pytest.mark.sim
def test_readme_blocks_run_against_a_tiny_run(tmp_path):
    for name in (".venv", "launch", "benchmarks"):  # what the README's relative paths reach
        (tmp_path / name).symlink_to(REPO / name)
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"}
    made = subprocess.run([str(REPO / ".venv" / "bin" / "stare-robot"), "ipi", "--task", "PushCube-v1", "--budget", "tiny",
                           "--out", "runs/PushCube-v1"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=1500, check=False)
    assert made.returncode == 0, made.stderr[-3000:]
    script = tmp_path / "readme.sh"
    script.write_text(runnable_script(README.read_text(), free_port()))
    done = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=2400, check=False)
    last_block = re.findall(r"### README block at line \d+", done.stdout)
    assert done.returncode == 0, (
        f"failed in {last_block[-1] if last_block else 'the set-up'} (exit {done.returncode}):\n"
        f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    assert (tmp_path / "data" / "pushcube.zarr").is_dir()
    assert (tmp_path / "runs" / "PushCube-v1" / "eval_served" / "results.json").is_file()

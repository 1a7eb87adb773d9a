"""``tb-stagnation LOGDIR``: the first ten minutes of a user at a shell.

Every test runs the installed console script (``python -m
tb_stagnation.cli`` where it is not installed) on logs written by real
writers: the shared ``writer_logs`` (one run ``train`` per writer, see
tests/writers.py) and, for roles and long names, a PyTorch training logged
with tensorboardX, parameters and their gradients. Output goes to a pipe,
as in a script, or to a pseudo-terminal of a set width, as at a shell.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import urllib.parse
from pathlib import Path

import pytest
from conftest import QUIET_ENV

SCRIPT = Path(sys.executable).with_name("tb-stagnation")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tb_stagnation.cli"]
ENV = {k: v for k, v in QUIET_ENV.items() if k not in ("COLUMNS", "LINES")}  # the width is each test's choice
FROZEN = "frozen_output_projection_after_attention"  # a long name, as real models have
# A small PyTorch training: `encoder` and `head` train, FROZEN does not; every parameter's histogram
# and (for the trained ones) its gradient's, every third step.
TRAINING = f"""
import sys
from collections import OrderedDict
import torch
from tensorboardX import SummaryWriter
torch.manual_seed(0)
model = torch.nn.Sequential(OrderedDict(
    encoder=torch.nn.Linear(16, 32), {FROZEN}=torch.nn.Linear(32, 32), head=torch.nn.Linear(32, 4)))
model.{FROZEN}.requires_grad_(False)
optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
x, y = torch.randn(64, 16), torch.randn(64, 4)
with SummaryWriter(sys.argv[1]) as writer:
    for step in range(30):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        if step % 3 == 0:
            for name, p in model.named_parameters():
                writer.add_histogram(name, p, step)
                if p.grad is not None:
                    writer.add_histogram(name + ".grad", p.grad, step)
        optimizer.step()
"""
PARAMETERS, GRADIENTS = 6, 4  # three layers' weight and bias; the two trained layers' gradients


@pytest.fixture(scope="module")
def training(tmp_path_factory) -> Path:
    """A run directory written straight into (no run subdirectory): ``.../bert-finetune``."""
    logdir = tmp_path_factory.mktemp("training") / "bert-finetune"
    subprocess.run([sys.executable, "-c", TRAINING, str(logdir)], env=ENV, check=True, capture_output=True, timeout=600)
    return logdir


def tb_stagnation(*args: object, **env: str) -> subprocess.CompletedProcess:
    """The command as a script runs it: stdout and stderr piped."""
    return subprocess.run([*COMMAND, *map(str, args)], capture_output=True, text=True, env={**ENV, **env}, timeout=300)


def on_terminal(*args: object, columns: int) -> str:
    """What the command prints on a terminal ``columns`` wide (a pseudo-terminal; stderr apart)."""
    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([*COMMAND, *map(str, args)], stdin=side, stdout=side, stderr=subprocess.DEVNULL, env=ENV)
    os.close(side)
    out = b""
    while True:
        try:
            chunk = os.read(main, 1 << 16)
        except OSError:  # EIO: the command exited and closed its side
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert proc.wait(timeout=300) == 0
    return out.decode().replace("\r\n", "\n")


def table_lines(text: str) -> list[str]:
    """The table's rows (after its ``#`` header, up to the blank line before the notes)."""
    table = text[text.index("\n#") + 1:].split("\n\n")[0]
    return table.splitlines()[1:]


def verdicts(body: dict) -> list[tuple[str, str]]:
    """(tag, status) of each row of a ranking object, sorted."""
    return sorted((r["tag"], r["status"]) for r in body["rows"])


def test_an_unknown_run_exits_2_naming_the_runs_there_are(writer_logs) -> None:
    root = writer_logs["tf2"].parent
    runs = json.loads(tb_stagnation(root, "--json").stdout)["runs"]
    assert "tf2/train" in runs and len(runs) >= 5
    for extra in ([], ["--json"], ["--csv"]):
        proc = tb_stagnation(root, "--run", "tf2/train", "--run", "nope", *extra)
        assert proc.returncode == 2 and proc.stdout == ""
        assert f"tb-stagnation: --run nope: no such run in {root}; its runs: {', '.join(runs)}" in proc.stderr
    assert tb_stagnation(root, "--run", "tf2/train").returncode == 0


def test_a_file_given_as_the_log_directory_is_called_a_file(writer_logs, tmp_path) -> None:
    run = writer_logs["tf2"] / "train"
    [event_file] = run.glob("*tfevents*")
    proc = tb_stagnation(event_file)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (f"tb-stagnation: {event_file} is an event file; LOGDIR is the directory holding it: "
                           f"tb-stagnation {run}\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a log\n")
    proc = tb_stagnation(notes)
    assert proc.returncode == 2 and proc.stderr == (
        f"tb-stagnation: {notes} is a file, not a directory; LOGDIR is the directory holding the event files\n"
    )
    proc = tb_stagnation(tmp_path / "missing")
    assert proc.returncode == 2 and proc.stderr == f"tb-stagnation: {tmp_path / 'missing'}: no such directory\n"


def test_a_single_run_directory_names_its_run_after_the_directory(writer_logs) -> None:
    run_dir = writer_logs["tf2"] / "train"  # the event files at its top: TensorBoard's run "."
    body = json.loads(tb_stagnation(run_dir, "--json").stdout)
    assert body["runs"] == ["train"] and list(body["thresholds"]) == ["train"]
    assert {r["run"] for r in body["rows"]} == {r["run"] for r in body["layers"]} == {"train"}
    assert body["findings"] and {f["run"] for f in body["findings"]} == {"train"}
    # The same run read from the directory above, where it is a subdirectory, is the same object.
    assert json.loads(tb_stagnation(writer_logs["tf2"], "--json").stdout) == body
    # The name goes back into --run, and so does TensorBoard's.
    for name in ("train", "."):
        assert json.loads(tb_stagnation(run_dir, "--json", "--run", name).stdout) == body
    rows = list(csv.DictReader(io.StringIO(tb_stagnation(run_dir, "--csv").stdout)))
    assert [(r["run"], r["tag"]) for r in rows] == [(r["run"], r["tag"]) for r in body["rows"]]
    text = tb_stagnation(run_dir).stdout
    assert text.startswith("== run train\n")
    assert {line.split()[5] for line in table_lines(text)} == {"train"}


def test_tensorboard_calls_that_run_dot_and_the_cli_takes_it_back(writer_logs, start_tensorboard) -> None:
    run_dir = writer_logs["tf2"] / "train"
    server = start_tensorboard(run_dir)
    status, route, _ = server.plugin("ranking?" + urllib.parse.urlencode({"run": "."}))
    assert status == 200 and route["runs"] == ["."] and {r["run"] for r in route["rows"]} == {"."}
    cli = json.loads(tb_stagnation(run_dir, "--json", "--run", ".").stdout)
    assert verdicts(cli) == verdicts(route)
    assert [f["message"] for f in cli["findings"]] == [f["message"] for f in route["findings"]]


def test_the_table_shows_parameters_and_says_how_to_see_the_rest(training: Path) -> None:
    text = tb_stagnation(training).stdout
    rows = table_lines(text)
    assert len(rows) == PARAMETERS and not [line for line in rows if line.split()[-1] == "gradient"]
    assert text.endswith(
        f"\n\n{GRADIENTS} gradient rows not shown (the table shows parameters): "
        "--role gradient or --all-roles shows them\n"
    )
    gradients = table_lines(tb_stagnation(training, "--role", "gradient").stdout)
    assert len(gradients) == GRADIENTS and {line.split()[-1] for line in gradients} == {"gradient"}
    every = tb_stagnation(training, "--all-roles").stdout
    assert len(table_lines(every)) == PARAMETERS + GRADIENTS and "not shown" not in every
    # --json and --csv are data: every role unless --role narrows them.
    assert len(json.loads(tb_stagnation(training, "--json").stdout)["rows"]) == PARAMETERS + GRADIENTS
    assert len(tb_stagnation(training, "--csv").stdout.splitlines()) == 1 + PARAMETERS + GRADIENTS
    assert tb_stagnation(training, "--role", "gradient", "--all-roles").returncode == 2


def test_findings_wrap_at_the_width_and_names_fit_a_terminal(training: Path) -> None:
    [finding] = json.loads(tb_stagnation(training, "--json").stdout)["findings"]
    tags = [f"{FROZEN}.weight", f"{FROZEN}.bias"]
    assert finding["kind"] == "frozen" and len(finding["message"]) > 100
    for text, width in ((on_terminal(training, columns=80), 80), (tb_stagnation(training).stdout, 100),
                        (tb_stagnation(training, COLUMNS="60").stdout, 60)):
        head = text.split("\n\n")[0].splitlines()
        assert head[0] == "== run bert-finetune" and all(len(line) <= width for line in head)
        assert head[1].startswith("  frozen: ") and all(line.startswith("    ") for line in head[2:])
        assert " ".join(line.strip() for line in head[1:]) == f"frozen: {finding['message']}"
    # On a terminal every line fits, long names shortened in their middle and said to be;
    # in a pipe the table keeps them whole, for grep.
    terminal = on_terminal(training, "--all-roles", columns=80)
    assert all(len(line) <= 80 for line in terminal.splitlines())
    assert "names shortened in the middle (…) to fit 80 columns; --csv prints them whole" in terminal
    table = table_lines(terminal)
    assert not [line for line in table if any(tag in line for tag in tags)]
    assert len([line for line in table if "frozen_o…" in line]) == 2
    piped = tb_stagnation(training, "--all-roles").stdout
    assert all(f"  {tag}  " in piped for tag in tags) and "shortened" not in piped


def test_json_is_one_line_with_findings_before_rows_unless_indented(training: Path) -> None:
    compact = tb_stagnation(training, "--json").stdout
    assert compact.count("\n") == 1 and compact.endswith("}\n")
    body = json.loads(compact)
    assert list(body)[:4] == ["ratio", "runs", "findings", "rows"]
    indented = tb_stagnation(training, "--json", "--indent", "2").stdout
    assert json.loads(indented) == body and indented.startswith('{\n  "ratio": ')
    proc = tb_stagnation(training, "--csv", "--indent", "2")
    assert proc.returncode == 2 and "--indent" in proc.stderr and proc.stdout == ""


def test_help_lists_the_checkpoints_subcommand_which_keeps_its_own_help() -> None:
    proc = tb_stagnation("--help")
    usage = proc.stdout.split("\n\n")[0]
    assert proc.returncode == 0 and usage.startswith("usage: tb-stagnation [-h]")
    assert "LOGDIR" in usage and "\n       tb-stagnation checkpoints [-h]" in usage and "SRC" in usage
    assert "--all-roles" in usage and "--indent N" in usage
    sub = tb_stagnation("checkpoints", "--help")
    assert sub.returncode == 0 and sub.stdout.startswith("usage: tb-stagnation checkpoints [-h]")
    assert "--rebuild" in sub.stdout and "LOGDIR\n" not in sub.stdout.split("\n\n")[0]

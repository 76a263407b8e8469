"""Help and usage errors read like a product (issue 25 items 10 and 11).

``--help`` of run, analyze, bench and convert: options in titled groups, in order, each with a
metavar that says what it wants and its default; no word cut across lines, no description cut
short. Every usage error (missing, unknown or bad option, unknown command) is one line
``edge-fer: error: ...`` naming the option, on stderr, exit code 2, nothing on stdout.
"""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from conftest import REPO
from edge_fer.cli import COMMANDS, main
from edge_fer.commands import OTHER_OPTIONS, GroupedCommand

#: The groups each command's help shows, in order.
GROUPS = {
    "run": ["Input", "Output", "Serving", "Detection", "Model", "Performance"],
    "analyze": ["Input", "Output", "Detection", "Model", "Performance"],
    "bench": ["Input", "Model", "Detection", "Performance", "Measurement", "Output"],
    "convert": ["Output", "Verification", "Model", "Performance"],
}
#: Metavars that only name a type, not what is wanted.
GENERIC_METAVARS = {"TEXT", "INTEGER", "FLOAT", "PATH", "FILENAME", "BOOLEAN", "INTEGER RANGE", "FLOAT RANGE"}


def command(name: str) -> click.Command:
    return main.get_command(click.Context(main), name)


def help_text(*args: str, width: int = 80) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=width)
    assert result.exit_code == 0, result.output
    return result.stdout


def sections(text: str) -> list[str]:
    """The titles of the help's sections ("Input:", ...), in order."""
    return [line[:-1] for line in text.splitlines() if re.fullmatch(r"[A-Z][A-Za-z ]*:", line)]


# --- help ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GROUPS)
def test_help_has_the_groups_in_order(name):
    cmd = command(name)
    assert isinstance(cmd, GroupedCommand)
    assert sections(help_text(name)) == [*GROUPS[name], OTHER_OPTIONS]
    assert list(cmd.groups) == GROUPS[name]


@pytest.mark.parametrize("name", GROUPS)
def test_groups_name_real_options_once_and_leave_only_help_over(name):
    cmd = command(name)
    listed = [param for names in cmd.groups.values() for param in names]
    options = {p.name for p in cmd.params if isinstance(p, click.Option)}
    assert len(listed) == len(set(listed)), listed
    assert set(listed) <= options, set(listed) - options  # no typo, no option that has gone
    assert options - set(listed) == set(), "an option of this command falls into 'Other options'"
    other = help_text(name).split(f"{OTHER_OPTIONS}:\n")[1].split("\n\n")[0]  # not the epilog
    assert other.split() == ["-h,", "--help", "Show", "this", "message", "and", "exit."]


@pytest.mark.parametrize("name", sorted(COMMANDS) + [""])
@pytest.mark.parametrize("width", [60, 80])
def test_no_word_is_cut_across_lines(name, width):
    """Wrapped at 60 or 80 columns, the help holds the same words as unwrapped: no `--tls-` /
    `cert`, no `[default:` / `0.5]`."""
    args = [name] if name else []
    wrapped, unwrapped = help_text(*args, width=width), help_text(*args, width=10_000)
    assert wrapped.split() == unwrapped.split()
    assert not re.search(r"\w-\n", wrapped), wrapped
    assert "[default:\n" not in wrapped


def test_the_command_list_shows_whole_sentences():
    """`edge-fer --help` lists each command with its first sentence whole (click cut them at 45
    characters with '...')."""
    text = help_text(width=10_000)
    rows = text.split("Commands:\n")[1].strip().splitlines()
    assert len(rows) == len(COMMANDS)
    for row in rows:
        name, description = row.split(None, 1)
        assert name in COMMANDS
        assert description.endswith(".") and not description.endswith("..."), row


@pytest.mark.parametrize("name", GROUPS)
def test_metavars_say_what_is_wanted(name):
    cmd = command(name)
    ctx = click.Context(cmd, info_name=name)
    text = help_text(name, width=10_000)
    for param in cmd.params:
        if not isinstance(param, click.Option) or param.is_flag:
            continue
        metavar = param.make_metavar(ctx)
        assert metavar not in GENERIC_METAVARS, f"{param.opts[0]} {metavar}"
        assert f"{param.opts[-1]} {metavar}" in text, f"{param.opts[-1]} {metavar}"


@pytest.mark.parametrize("name", GROUPS)
def test_defaults_are_shown(name):
    cmd = command(name)
    ctx = click.Context(cmd, info_name=name, **cmd.context_settings)
    text = " ".join(help_text(name, width=10_000).split())
    for param in cmd.params:
        default = param.get_default(ctx) if isinstance(param, click.Option) else None
        if not isinstance(default, (bool, int, float, str)) or default in (False, ""):
            continue  # none (click's UNSET), a flag that is off, or a multiple option's ()
        first, second = param.get_help_record(ctx)
        assert "[default: " in second, first
        assert " ".join(f"{first} {second}".split()) in text, first


def test_run_help_groups_serving_options_together():
    text = help_text("run")
    serving = text.split("Serving:\n")[1].split("\n\n")[0]
    assert [line.split()[0] for line in serving.splitlines() if line.startswith("  --")] == [
        "--serve", "--token", "--max-clients", "--tls-cert", "--tls-key"]
    assert "--serve [HOST:]PORT" in serving and "--open-timeout SECONDS" in text


def test_fetch_detectors_lists_only_what_it_fetches():
    """yunet and blazeface ship inside the package and haar comes with OpenCV: fetch-detectors
    offers (and by default fetches) only the others."""
    from edge_fer import commands
    from edge_fer.detectors.fetch import FETCHABLE
    from edge_fer.detectors.registry import DETECTOR_FILES
    from edge_fer.detectors.shipped import shipped_detectors

    assert commands.SHIPPED_DETECTORS == shipped_detectors()
    assert commands.FETCH_NAMES == tuple(n for n in DETECTOR_FILES if n not in shipped_detectors())
    assert set(commands.FETCH_NAMES) <= set(FETCHABLE)
    first = help_text("fetch-detectors", width=10_000).split("\n\n")[1].strip()
    assert first == f"Fetch the detector files that edge-fer does not ship: {', '.join(commands.FETCH_NAMES)}."
    usage = CliRunner().invoke(main, ["fetch-detectors", "--help"]).stdout
    assert "DETECTORS: some of ssd, rfb" in " ".join(usage.split())


def test_version_and_bare_group_still_work():
    version = CliRunner().invoke(main, ["--version"])
    assert version.exit_code == 0 and ", version " in version.stdout
    bare = CliRunner().invoke(main, [])
    assert "Commands:" in bare.output and "edge-fer: error" not in bare.output


# --- usage errors -------------------------------------------------------------------------------

USAGE_ERRORS = [
    # (args, the option the line names, more it must say)
    (["convert", "model.keras"], "--out", "missing option --out FILE|DIR: output file"),
    (["convert"], "MODEL", "missing argument MODEL"),
    (["analyze", "clip.mp4"], "--out", "missing option --out"),
    (["balance", "--data", "d"], "--source", "missing option --source CLASS: common class"),
    (["run", "--bogus"], "--bogus", "no such option --bogus"),
    (["run", "--detect"], "--detect", "did you mean one of --detector"),
    (["bench", "--frame", "3"], "--frame", "(did you mean one of --frames"),
    (["analyze", "clip.mp4", "--out", "r.csv", "--bogus"], "--bogus", "no such option"),
    (["convert", "m.keras", "--out", "m.onnx", "--bogus"], "--bogus", "no such option"),
    (["run", "--threads", "x"], "--threads", "'x' is not a valid integer (e.g. --threads 2)"),
    (["analyze", "clip.mp4", "--out", "r.csv", "--threads", "x"], "--threads", "(e.g. --threads 1)"),
    (["bench", "--threads", "x"], "--threads", "--threads takes integers such as 1,2"),  # bench's own
    (["convert", "m.keras", "--out", "m.onnx", "--threads", "x"], "--threads", "(e.g. --threads 2)"),
    (["run", "--smooth", "much"], "--smooth", "not a valid float (e.g. --smooth 0.5)"),
    (["bench", "--frames", "lots"], "--frames", "(e.g. --frames 300)"),
    (["run", "--detector", "retinaface"], "--detector",
     "unknown detector 'retinaface'; expected one of haar, ssd, yunet, blazeface, rfb, mtcnn"),
    (["run", "--device", "gpu"], "--device", "unknown device 'gpu'; expected one of auto, cpu, cuda, tensorrt"),
    (["analyze", "clip.mp4", "--out", "r.csv", "--engine", "spark"], "--engine", "'spark' is not one of"),
    (["bench", "--device", "npu"], "--device", "unknown device 'npu'"),
    (["convert", "m.keras", "--out", "m.pt", "--to", "pt"], "--to", "unknown target 'pt'"),
    (["convert", "m.keras", "--out"], "--out", "option --out needs a value, FILE|DIR"),
    (["run", "--json=yes"], "--json", "option --json does not take a value"),
    (["run", "extra"], "extra", "got unexpected extra argument (extra)"),
    (["rn"], "rn", "no such command 'rn' (did you mean run?)"),
    (["--bogus"], "--bogus", "no such option --bogus"),
    (["-v"], "command", "missing command"),
]


@pytest.mark.parametrize("args, names, says", USAGE_ERRORS, ids=[" ".join(c[0]) for c in USAGE_ERRORS])
def test_usage_errors_are_one_line(args, names, says, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written: checked below
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("edge-fer: error: ") and "Usage:" not in line and "Traceback" not in line
    assert names in line and says in line, line
    sub = args[0] if args[0] in COMMANDS else None
    if says.startswith("--threads takes"):  # a library check (EdgeFerError), not click's: no hint
        return
    assert line.endswith(f"; see edge-fer {sub} --help" if sub else "; see edge-fer --help"), line
    assert list(tmp_path.iterdir()) == []


def test_usage_errors_from_the_shell_match(tmp_path):
    """The installed entry point prints the same line (click's standalone handling, real argv)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "edge_fer.cli", "convert", "model.keras"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("edge-fer: error: missing option --out FILE|DIR: output file (.tflite or .onnx); "
                           "see edge-fer convert --help\n")


# --- shell completion ---------------------------------------------------------------------------


@pytest.mark.parametrize("words, cword, expected", [
    ("edge-fer ru", 1, "plain,run"),
    ("edge-fer run --detector bl", 3, "plain,blazeface"),
    ("edge-fer run --video ", 3, "file,"),
    ("edge-fer fetch-detectors ", 2, "plain,ssd\nplain,rfb"),
])
def test_shell_completion(words, cword, expected):
    env = {"_EDGE_FER_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = CliRunner().invoke(main, [], prog_name="edge-fer", env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == expected


def test_readme_documents_shell_completion():
    readme = (REPO / "README.md").read_text()
    for shell in ("bash", "zsh", "fish"):
        assert f"_EDGE_FER_COMPLETE={shell}_source edge-fer" in readme

"""Every shell command of the README and of docs/ is executed, so none can break unnoticed.

A command is a line of a ```bash (sh, shell, console) block, with its ``\\`` continuations and
heredoc, or a ``$ `` line of a plain block (a transcript, its output below it). Each file's commands
run in order in one bash process (so ``export`` and files carry over), in a scratch copy of the
checkout (symlinks to this one, ``../shared`` beside it; outputs stay in the copy), with the
checkout's ``.venv/bin`` first on PATH.

Three things happen to a command, decided by ``RULES`` (first match wins, each with its reason):

- ``run``: executed, shortened by the substitutions below;
- ``parse``: not executed (a placeholder such as SUITE, a user's own file, a hub model, a GPU, a
  cloud), but every ``pinbench`` call in it is parsed by pinbench's own argument parser, so a
  renamed flag or command is still caught;
- ``skip``: neither (the set-up commands, pip and ray): tested elsewhere, named in the reason.

Substitutions (``shorten``), so that the whole takes minutes, not hours: training budgets become
2 steps with an evaluation every step and no test scoring (``--steps 2 --eval-every 1 --test
false``; in suites ``--set run.steps=2 --set run.eval_every=1 --set run.test=false``); the SST-2
test split becomes its dev split in ``eval`` (32 examples, not 1,821); style transfer runs on 2 dev
and 2 test sentences with 2 samples and 1 bootstrap; optional ``[...]`` parts of a command are
dropped.

Two tiers. ``make test`` runs the quick commands (listings, --help, --dry-run, eval, data copies,
the scripts that need no model) of every file; ``make test-docs`` (PINBENCH_DOCS=all) runs every
``run`` command, training, sweeps and reports included (about 15 minutes on 2 cores)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
SCRIPT_FENCES = {"bash", "sh", "shell", "console"}

# (pattern on the command's text, what happens, why); the first match wins.
RULES: list[tuple[str, str, str]] = [
    (r"^make (demo|test)\b", "skip", "the two set-up commands: CI runs `make test`; `make demo` is measured on a fresh clone"),
    (r"^pip |^python -m venv", "skip", "installation: tests/test_wheel.py installs the wheel into a fresh venv"),
    (r"^ray ", "skip", "a cloud cluster (cluster.yaml); tests/test_ray_job.py runs the job path on a local head"),
    (r"s3://|YOUR-BUCKET|/home/ubuntu", "parse", "a cloud bucket or cluster path"),
    (r"--device cuda", "parse", "needs a GPU (the code path on CPU: `pinbench sweep SUITE --smoke`)"),
    (r"openai/clip|facebook/opt|roberta-large|gpt2-xl|(-lm|-model) gpt2\b", "parse",
     "a hub model: no network here (their shapes run offline in `pinbench sweep SUITE --smoke`)"),
    (r"pinbench data download(?!.*--from)|--mirror", "parse", "downloads from the data sets' public sources"),
    (r"pinbench data manifest", "parse", "a maintainer's command that rewrites the package's manifest"),
    (r"my-reviews\.yaml|their_outputs\.txt", "parse", "the user's own file"),
    (r"\bSUITE\b|\bDIR\b|\bNAME\.\.\.|\bURL\b|RESULTS\.\.\.|\s\.\.\.(\s|$)", "parse", "a placeholder"),
    (r"/work/tsallis-results", "parse", "reads the ablation's 2-hour results store, which is not kept in the repository"),
    (r"results/cpu-study", "parse", "reads the CPU study's 3-hour results store (docs/cpu-study), not kept in the repository"),
    (r"--from ", "run", ""),
    (r".", "run", ""),
]

# Quick enough for `make test`: what loads no model.
QUICK = re.compile(r"pinbench (list|models|datasets|data download)\b|--help\b|--dry-run\b"
                   r"|^(\.venv/bin/)?python bench/import_graph\.py|^(export|rm|mkdir|cat) ")


@dataclass(frozen=True)
class Command:
    file: str  # relative to the checkout
    line: int
    text: str  # continuation lines joined with newlines; a heredoc's body included

    @property
    def head(self) -> str:
        """The first line without its trailing comment (what rules and the parser read)."""
        return strip_comment(self.text.split("\n", 1)[0])

    @property
    def action(self) -> tuple[str, str]:
        flat = " ".join(line.rstrip("\\").strip() for line in self.text.split("\n") if not _heredoc(self.text))
        flat = flat or self.head
        for pattern, action, reason in RULES:
            if re.search(pattern, flat):
                return action, reason
        raise AssertionError("RULES ends with a catch-all")

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text.splitlines()[0]}"


def _heredoc(text: str) -> bool:
    return "<<" in text.split("\n", 1)[0]


def strip_comment(line: str) -> str:
    """The line without a ``# comment`` outside quotes."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def commands_in(path: Path) -> list[Command]:
    """The commands of one Markdown file, in order."""
    out: list[Command] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    rel = str(path.relative_to(REPO))
    fence = None  # the open block's language ('' for a plain block), None outside blocks
    i = 0
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if stripped.startswith("```"):
            fence = stripped[3:].strip().lower() if fence is None else None
            i += 1
            continue
        if fence is None or not stripped or stripped.startswith("#"):
            i += 1
            continue
        transcript = fence not in SCRIPT_FENCES
        if transcript and not stripped.startswith("$ "):
            i += 1
            continue
        start, parts = i, [stripped[2:] if transcript else stripped]
        while strip_comment(parts[-1]).endswith("\\") and i + 1 < len(lines):
            i += 1
            parts.append(lines[i].strip())
        match = re.search(r"<<-?\s*'?(\w+)'?", parts[0])
        if match:  # a heredoc: its body and terminator belong to the command
            while i + 1 < len(lines) and lines[i + 1].strip() != match.group(1):
                i += 1
                parts.append(lines[i])
            i += 1
            parts.append(match.group(1))
        out.append(Command(rel, start + 1, "\n".join(parts)))
        i += 1
    return out


ALL = [c for path in DOC_FILES for c in commands_in(path)]


def pinbench_calls(command: Command) -> list[list[str]]:
    """The argument lists of the ``pinbench`` calls in a command (``ray job submit ... --
    pinbench sweep ...`` included), optional ``[...]`` parts unbracketed."""
    first = command.text if not _heredoc(command.text) else command.head
    first = " ".join(strip_comment(line).rstrip("\\") for line in first.split("\n"))
    lexer = shlex.shlex(first.replace("[", " ").replace("]", " "), posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    tokens = list(lexer)
    calls, current = [], None
    for token in tokens:
        if token and set(token) <= set(";&|<>"):
            current = None
        elif current is not None:
            current.append(token)
        elif Path(token).name == "pinbench":
            current = []
            calls.append(current)
    return calls


def shorten(command: Command) -> str:
    """The command as ``run`` executes it (see the module docstring)."""
    if _heredoc(command.text) or "pinbench" not in command.head:
        return command.text
    text = re.sub(r"\s*\[[^\]]*\]", "", command.text)  # optional parts
    text = re.sub(r"--steps \d+", "--steps 2", text)
    text = re.sub(r"--eval-every \d+", "--eval-every 1", text)
    text = re.sub(r"run\.steps=\d+", "run.steps=2", text)
    flat = " ".join(strip_comment(line).rstrip("\\").strip() for line in text.split("\n"))
    style = "style_transfer" in flat or "tst-quickstart" in flat
    extra = []
    if re.search(r"pinbench train\b", flat) and "--help" not in flat:
        if "--steps" not in flat and "run.steps" not in flat:
            extra += ["--steps", "2", "--eval-every", "1"]
        extra += ["--test", "false"]
    if re.search(r"pinbench sweep\b", flat) and not re.search(r"--dry-run|--smoke", flat):
        extra += ["--set", "run.steps=2", "--set", "run.eval_every=1", "--set", "run.test=false"]
    if style and re.search(r"pinbench (train|sweep|eval)\b", flat) and "--help" not in flat:
        extra += [f"--set task.{k}={v}" for k, v in (("dev_size", 2), ("test_size", 2), ("num_samples", 2),
                                                      ("num_bootstraps", 1))]
    if re.search(r"pinbench eval\b", flat) and not style:
        flat = flat.replace("--split test", "--split dev")
    return " ".join([flat, *extra])


def is_quick(command: Command) -> bool:
    return bool(QUICK.search(" ".join(command.text.split("\n")))) and not re.search(
        r"pinbench (train|sweep|report)\b(?!.*(--help|--dry-run))", command.head)


# --- what every `make test` checks --------------------------------------------------------------


def test_the_docs_hold_commands_and_each_has_a_rule_with_a_reason():
    assert len(ALL) >= 40, f"only {len(ALL)} commands found in README.md and docs/: is the extraction broken?"
    files = {c.file for c in ALL}
    assert {"README.md", "docs/architecture.md", "docs/sweeps.md"} <= files
    for command in ALL:
        action, reason = command.action
        assert action == "run" or reason, f"{command}: a command that is not run needs its reason"


def test_plain_blocks_hold_no_unmarked_commands():
    """A command in a plain block must be a ``$ `` transcript line, or it would never be run."""
    starts = re.compile(r"^(pinbench [a-z]|\.venv/bin/|make [a-z]|python |ray [a-z])")
    for path in DOC_FILES:
        fence, lines = None, path.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines, 1):
            stripped = line.strip()
            if stripped.startswith("```"):
                fence = stripped[3:].strip().lower() if fence is None else None
            elif fence == "" and starts.match(stripped):
                raise AssertionError(f"{path.relative_to(REPO)}:{n}: a command in a plain block; write it as "
                                     f"'$ {stripped}' (a transcript) or put it in a ```bash block")


@pytest.mark.parametrize("command", [c for c in ALL if c.action[0] != "skip" and pinbench_calls(c)], ids=str)
def test_every_pinbench_call_parses(command, plugin_presets):
    """Every documented ``pinbench`` call is one that pinbench's parser accepts (placeholders are
    values, so they parse)."""
    import argparse

    from pinbench.cli import build_parser

    commands = next(a for a in build_parser([])._actions if isinstance(a, argparse._SubParsersAction)).choices
    for argv in pinbench_calls(command):
        if "..." in argv:  # "any arguments": the command name must still be one
            assert argv[0] in commands, f"{command}: pinbench has no command '{argv[0]}'"
            continue
        try:
            build_parser(argv).parse_args(argv)
        except SystemExit as exc:
            if exc.code != 0:  # --help exits 0
                raise AssertionError(f"{command}: pinbench {shlex.join(argv)} does not parse") from None


def test_the_extraction_reads_continuations_heredocs_and_transcripts(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("text\n```bash\n# a comment\npinbench list   # trailing\npinbench train --steps 300 \\\n"
                    "    --out runs/x\ncat > f.yaml <<'EOF'\nname: x\nEOF\n```\n```\n$ pinbench models\noutput line\n"
                    "```\n```yaml\npinbench: not a command\n```\n")
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    found = commands_in(page)
    assert [c.text for c in found] == ["pinbench list   # trailing", "pinbench train --steps 300 \\\n--out runs/x",
                                       "cat > f.yaml <<'EOF'\nname: x\nEOF", "pinbench models"]
    assert [c.line for c in found] == [4, 5, 7, 12]
    assert pinbench_calls(found[1]) == [["train", "--steps", "300", "--out", "runs/x"]]
    assert shorten(found[1]) == "pinbench train --steps 2 --out runs/x --test false"


# --- running them ---------------------------------------------------------------------------------


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A scratch copy of the checkout: its top-level entries as symlinks, except the folders that
    commands write into; ``../shared`` beside it when this checkout has one."""
    root = tmp_path / "pinbench"
    root.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in ("runs", "results", "report", ".git", ".pytest_cache", "build", "dist"):
            (root / entry.name).symlink_to(entry)
    shared = REPO.parent / "shared"
    if shared.is_dir():
        (tmp_path / "shared").symlink_to(shared)
    return root


def run_file(file: str, checkout: Path, quick: bool) -> str | None:
    """Run a file's commands in order in one bash process; the failure, or None."""
    commands = [c for c in ALL if c.file == file and c.action[0] == "run" and (is_quick(c) or not quick)]
    script = ["set -euo pipefail"]
    for n, command in enumerate(commands):
        script += [f"echo '@@ {n}' >&2", shorten(command)]
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PINBENCH_DATA_DIR", None)  # the docs' data rule: ../shared/data beside the checkout
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=checkout, env=env, capture_output=True,
                          text=True, timeout=3000)
    if done.returncode == 0:
        return None
    marks = re.findall(r"^@@ (\d+)$", done.stderr, flags=re.M)
    failed = commands[int(marks[-1])] if marks else None
    tail = "\n".join(line for line in done.stderr.strip().splitlines()[-15:] if not line.startswith("@@ "))
    return f"{failed} exited {done.returncode}; ran as:\n  {shorten(failed) if failed else ''}\n{tail}"


@pytest.mark.slow
@pytest.mark.parametrize("file", sorted({c.file for c in ALL if c.action[0] == "run" and is_quick(c)}))
def test_quick_documented_commands_run(file, checkout):
    failure = run_file(file, checkout, quick=True)
    assert failure is None, failure


@pytest.mark.skipif(os.environ.get("PINBENCH_DOCS") != "all", reason="every documented command: make test-docs")
@pytest.mark.slow
def test_every_documented_command_runs(checkout):
    """One checkout for all files, README first: a page may report on a store the README's sweep
    made (docs/results.md). A failing file does not stop the next."""
    files = sorted({c.file for c in ALL if c.action[0] == "run"}, key=lambda f: (f != "README.md", f))
    failures = [f for f in (run_file(file, checkout, quick=False) for file in files) if f]
    assert not failures, "\n\n".join(failures)

"""CLI start-up: `toolforgectl --help`, `--version` and a TAB completion, beside `python -c pass`.

    .venv/bin/python bench/cli.py --runs 30 --write docs/benchmarks.md
    .venv/bin/python bench/cli.py --before /tmp/old-checkout     # also time another source tree

Every case is a fresh process, run the way the console script runs it (set argv[0], import
toolforgectl.cli.app, call main), with PYTHONPATH pointing at the source tree under test, so an
older tree (`git archive REV | tar -x -C DIR`) is timed with the same Python and packages. Cases
are interleaved round by round (after one warm-up round that also writes the .pyc files), so a
busy neighbour slows them alike; each figure is the median over rounds. Besides wall time, the
child's CPU time (user + system) is recorded: on a shared machine it moves much less than wall
time, and on an idle one the two are close. Every run's output is checked, so a case that
errors cannot look fast.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from dataplane_report import write_section

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 0.3  # issue 9: --help, --version and completion each within 0.3 s on an idle machine
ENTRY = "import sys; sys.argv[0] = 'toolforgectl'; from toolforgectl.cli.app import main; main()"
COMPLETION = {
    "_TOOLFORGECTL_COMPLETE": "complete_bash",
    "COMP_WORDS": "toolforgectl routes ",
    "COMP_CWORD": "2",
}


@dataclass(frozen=True)
class Case:
    """One command line to start, and a word its output must contain."""

    name: str
    argv: tuple[str, ...]
    expect: str
    env: dict[str, str] = field(default_factory=dict)
    targeted: bool = True


CASES = (
    Case("python -c pass", ("-c", "pass"), "", targeted=False),
    Case("toolforgectl --help", ("-c", ENTRY, "--help"), "routes"),
    Case("toolforgectl --version", ("-c", ENTRY, "--version"), "toolforgectl"),
    Case("TAB completion (toolforgectl routes <TAB>)", ("-c", ENTRY), "list", COMPLETION),
)


@dataclass(frozen=True)
class Sample:
    """One run: wall seconds from spawn to exit, and the child's CPU seconds (user + system)."""

    wall: float
    cpu: float


def run_once(case: Case, tree: Path) -> Sample:
    """Start `case` on the code in `tree` once; fails if it did not answer as expected."""
    env = {**os.environ, **case.env, "PYTHONPATH": str(tree)}
    env.pop("TOOLFORGECTL_CONFIG", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # cwd: `python -c` puts the working directory first on sys.path, before PYTHONPATH.
    done = subprocess.run(
        [sys.executable, *case.argv], cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or case.expect not in done.stdout:
        raise SystemExit(f"{case.name} ({tree}) did not answer: exit {done.returncode}: {done.stderr[-500:]}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Sample(wall, cpu)


def measure(trees: dict[str, Path], runs: int) -> dict[tuple[str, str], list[Sample]]:
    """(tree label, case name) -> one Sample per run, cases interleaved round by round."""
    samples: dict[tuple[str, str], list[Sample]] = {}
    for rnd in range(runs + 1):
        for label, tree in trees.items():
            for case in CASES:
                sample = run_once(case, tree)
                if rnd:  # round 0 warms the page cache and writes .pyc files
                    samples.setdefault((label, case.name), []).append(sample)
    return samples


def git_describe(tree: Path) -> str:
    """The tree's commit (with -dirty), or its path when it is not a git checkout."""
    done = subprocess.run(
        ["git", "-C", str(tree), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else str(tree)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def report(samples: dict[tuple[str, str], list[Sample]], trees: dict[str, Path], runs: int, load: str) -> str:
    """The '## CLI start-up' section of docs/benchmarks.md."""
    before = " --before DIR" if len(trees) > 1 else ""
    lines = [
        "## CLI start-up",
        "",
        f"Command: `.venv/bin/python bench/cli.py --runs {runs}{before} --write docs/benchmarks.md`",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} shared cores,"
        f" Python {sys.version.split()[0]}; {runs} runs per case, interleaved, after a warm-up round;"
        f" medians. Load average (1/5/15 min) {load}. Each run is a fresh process started the way the"
        " console script starts (`python -c pass` is the floor: the interpreter alone).",
        "",
        *(
            [
                "The `before` rows time the code of another tree (`--before`, extracted with"
                " `git archive REV | tar -x -C DIR`) with the same Python and packages, in the same run.",
                "",
            ]
            if before
            else []
        ),
        "| tree | what | wall, median | wall, min - max | CPU, median | CPU over `python -c pass` |"
        " target <= 0.3 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in trees:
        floor = statistics.median(s.cpu for s in samples[(label, CASES[0].name)])
        for case in CASES:
            walls = [s.wall for s in samples[(label, case.name)]]
            cpu = statistics.median(s.cpu for s in samples[(label, case.name)])
            wall = statistics.median(walls)
            verdict = ("met" if wall <= TARGET_S else "**not met**") if case.targeted else ""
            extra = f"+{ms(cpu - floor)}" if case.targeted else ""
            lines.append(
                f"| {label} | {case.name} | **{ms(wall)}** | {ms(min(walls))} - {ms(max(walls))} |"
                f" {ms(cpu)} | {extra} | {verdict} |"
            )
    lines += [
        "",
        "What keeps it short: the sub-app modules import only typer and toolforgectl.core; each command"
        " imports its adapters (redis, jinja2, yaml, the lab) when it runs. `tests/cli/test_startup.py`"
        " fails if `--help`, `--version` or a completion loads one of them again. What is left is"
        " typer itself (with pydantic for completion) and rich for the help screen; `python -X importtime"
        " -m toolforgectl --help` shows the split.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Time every case in this checkout (and --before), print (or --write) the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--before", type=Path, help="Also time this source tree (e.g. an older commit).")
    parser.add_argument("--write", type=Path, help="Replace the '## CLI start-up' section of this file.")
    args = parser.parse_args()
    trees = {f"this checkout ({git_describe(ROOT)})": ROOT}
    if args.before:
        trees[f"before ({git_describe(args.before)})"] = args.before.resolve()
    load = "before: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    samples = measure(trees, args.runs)
    load += "; after: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    section = report(samples, trees, args.runs, load)
    print(section)
    if args.write:
        write_section(args.write, section)


if __name__ == "__main__":
    main()

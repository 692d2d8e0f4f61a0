"""Run every benchmark, each in its own process, and print all their figures in one table.

    python bench/run_all.py [--quick] [--markdown] [--timeout 1800]

Each bench script runs with --json and prints its figures as the last line of its stdout; the
table puts them beside the reference figures and targets of bench/common.py. A subprocess per
script keeps the memory figures of one from being inflated by another, and a crash of one from
hiding the others. Exit status 1 if a benchmark crashed; a missed target only says "no".
"""
import argparse
import datetime
import importlib.metadata
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import EXPECTED, expected  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
# benchmark -> (script, extra flags of --quick)
BENCHMARKS = {
    "loss": ("bench_loss.py", ["--rounds", "1", "--repeats", "2"]),
    "metaseg": ("bench_metaseg.py", ["--repeats", "2", "--images", "2"]),
    "evaluation": ("bench_evaluation.py", ["--repeats", "2"]),
    "smiyc": ("bench_smiyc.py", ["--repeats", "1", "--frames", "10"]),
    "pipeline": ("bench_pipeline.py", ["--images", "2", "--repeats", "2"]),
    "gpu": ("bench_gpu.py", ["--repeats", "1"]),  # the paper's sizes on a GPU, small ones on a CPU
}
COLUMNS = ["benchmark", "figure", "ours", "reference", "target", "met?"]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                        "unknown CPU")
    except OSError:
        return "unknown CPU"


def machine_line():
    """CPU, cores, library versions, load average and date: what the figures depend on."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu_model()}, {os.cpu_count()} cores ({usable} usable); "
            f"torch {importlib.metadata.version('torch')}, numpy {importlib.metadata.version('numpy')}; "
            f"load average {load} at start; {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")


def parse_result(stdout):
    """The JSON object on the last non-empty line of a script's stdout; ValueError if there is none."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("no output: expected a JSON line last")
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError as error:
        raise ValueError(f"last line is not JSON ({error}): {lines[-1][:200]!r}") from None
    if not isinstance(result, dict) or not isinstance(result.get("figures"), list):
        raise ValueError(f"last line: expected an object with a list of figures, got {lines[-1][:200]!r}")
    return result


def run_benchmark(name, quick, timeout):
    """The parsed result of one script, or a string saying why there is none."""
    script, quick_flags = BENCHMARKS[name]
    command = [sys.executable, str(BENCH_DIR / script), "--json"] + (quick_flags if quick else [])
    print(f"running {' '.join([script] + command[2:])}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"crashed: no result within {timeout} s"
    print(f"  {script}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    if done.returncode != 0:
        sys.stderr.write("".join(done.stderr.splitlines(keepends=True)[-20:]))
        return f"crashed: exit status {done.returncode}"
    try:
        return parse_result(done.stdout)
    except ValueError as error:
        return f"crashed: {error}"


def format_value(value, unit=""):
    """Three significant digits (a count, without unit, as a whole number), never in exponent
    notation, then the unit."""
    if value is None:
        return ""
    whole = value == 0 or (not unit and float(value).is_integer())
    digits = 0 if whole else max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{digits}f}" + (f" {unit}" if unit else "")


def table_rows(results):
    """One row (COLUMNS) per figure; a crashed benchmark gets one row, a figure with a target
    that its benchmark did not report gets a row that says so."""
    rows = []
    for benchmark, result in results.items():
        if isinstance(result, str):
            rows.append([benchmark, result, "", "", "", ""])
            continue
        names = set()
        for fig in result["figures"]:
            names.add(fig["name"])
            exp = expected(benchmark, fig["name"])
            met = exp.met(fig["value"])
            rows.append([benchmark, fig["name"], format_value(fig["value"], fig["unit"]),
                         format_value(exp.reference, fig["unit"]), exp.target_text(),
                         "" if met is None else "yes" if met else "no"])
        rows += [[benchmark, name, "missing", format_value(exp.reference), exp.target_text(), "no"]
                 for (bench, name), exp in EXPECTED.items()
                 if bench == benchmark and name not in names and exp.target is not None]
    return rows


def text_table(rows):
    widths = [max(len(row[i]) for row in [COLUMNS] + rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in [COLUMNS, ["-" * w for w in widths]] + rows)


def markdown_table(rows):
    def line(cells):
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
    return "\n".join([line(COLUMNS), line(["---"] * len(COLUMNS))] + [line(row) for row in rows])


def notes(results):
    """Each benchmark's own line on what it ran."""
    return [f"{benchmark}: {result['context']}" for benchmark, result in results.items()
            if not isinstance(result, str) and result.get("context")]


def report(header, results, markdown):
    rows = table_rows(results)
    footer = notes(results) + [f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end"]
    if markdown:
        return "\n".join([header, "", markdown_table(rows), ""] + [f"- {line}" for line in footer])
    return "\n".join([header, "", text_table(rows), ""] + footer)


def exit_status(results):
    return 1 if any(isinstance(result, str) for result in results.values()) else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats: a smoke run, not figures to quote")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a benchmark may run")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS),
                        help="run only these benchmarks")
    args = parser.parse_args()
    header = machine_line() + (" (--quick)" if args.quick else "")
    results = {name: run_benchmark(name, args.quick, args.timeout) for name in args.only}
    print(report(header, results, args.markdown))
    return exit_status(results)


if __name__ == "__main__":
    sys.exit(main())

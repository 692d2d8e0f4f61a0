"""bench/run_all.py: reading the scripts' JSON, judging targets, building the table, crashes."""
import json
import os
import subprocess
import sys

import pytest

from bench import run_all
from bench.common import EXPECTED, Expected, child_stdout, figure, print_json


def fake_result(benchmark, *figures):
    return {"benchmark": benchmark, "context": f"{benchmark} context", "figures": list(figures)}


def test_parse_result_reads_the_last_line_after_human_output(capsys):
    print("a human-readable table\nwith | two lines")
    print_json("loss", [figure("ours time", 0.25, "s")], "8x19x480x480")
    print("")  # trailing blank lines do not count
    result = run_all.parse_result(capsys.readouterr().out)
    assert result == {"benchmark": "loss", "context": "8x19x480x480",
                      "figures": [{"name": "ours time", "value": 0.25, "unit": "s"}]}


@pytest.mark.parametrize("stdout, message", [
    ("", "no output"),
    ("human output only\n", "not JSON"),
    ('{"figures": 3}\n', "list of figures"),
    ('[1, 2]\n', "list of figures"),
])
def test_parse_result_rejects_output_without_figures(stdout, message):
    with pytest.raises(ValueError, match=message):
        run_all.parse_result(stdout)


def test_expected_judges_upper_and_lower_bounds():
    assert Expected(target=0.25).met(0.25) and not Expected(target=0.25).met(0.26)
    assert Expected(target=3, at_least=True).met(3.5) and not Expected(target=3, at_least=True).met(2.9)
    assert Expected(reference=4.5).met(100) is None
    assert Expected(target=0.25).target_text() == "<= 0.25"
    assert Expected(target=3, at_least=True).target_text() == ">= 3"
    assert Expected().target_text() == ""


@pytest.mark.parametrize("value, unit, text", [
    (0.038181, "s", "0.0382 s"), (4.796, "%", "4.80 %"), (186.0, "", "186"), (12.0, "", "12"), (21.0, "MB", "21.0 MB"), (0.96, "s", "0.960 s"),
    (20500, "ms", "20500 ms"), (0, "MB", "0 MB"), (12.03, "x", "12.0 x"), (None, "s", ""),
])
def test_format_value_three_significant_digits_without_exponent(value, unit, text):
    assert run_all.format_value(value, unit) == text


def test_table_rows_put_references_and_targets_beside_the_figures():
    results = {"metaseg": fake_result("metaseg", figure("both metric calls", 0.04, "s"),
                                      figure("both metric calls alloc", 300, "MB"),
                                      figure("mask share", 4.8, "%"),
                                      figure("an extra figure", 1.5, "s"))}
    rows = {row[1]: row for row in run_all.table_rows(results)}
    both = EXPECTED["metaseg", "both metric calls"]
    assert rows["both metric calls"] == ["metaseg", "both metric calls", "0.0400 s",
                                         run_all.format_value(both.reference, "s"), both.target_text(), "yes"]
    assert rows["both metric calls alloc"][5] == "no"  # 300 MB misses the 160 MB target
    assert rows["mask share"][3:] == ["4.80 %", "", ""]  # a reference, no target
    assert rows["an extra figure"][2:] == ["1.50 s", "", "", ""]
    # figures with a target that this (fake) run did not report are listed as missing, not dropped
    missing = [name for (bench, name), exp in EXPECTED.items() if bench == "metaseg" and exp.target is not None
               and name not in ("both metric calls", "both metric calls alloc")]
    assert missing and all(rows[name][2] == "missing" and rows[name][5] == "no" for name in missing)
    assert EXPECTED["metaseg", "predicted segments"].target is None and "predicted segments" not in rows
    assert all(row[0] == "metaseg" and len(row) == len(run_all.COLUMNS) for row in rows.values())


def test_lower_bound_target_of_a_speed_up():
    rows = run_all.table_rows({"loss": fake_result("loss", figure("time dense / ours", 2.5, "x"),
                                                   figure("memory dense / ours", 9.0, "x"))})
    met = {row[1]: row[5] for row in rows}
    assert met["time dense / ours"] == "no" and met["memory dense / ours"] == "yes"


def test_a_crash_is_one_row_and_a_non_zero_exit_status_a_missed_target_is_not():
    missed = {"evaluation": fake_result("evaluation", figure("paper metrics", 50.0, "ms"))}
    assert [row[5] for row in run_all.table_rows(missed) if row[1] == "paper metrics"] == ["no"]
    assert run_all.exit_status(missed) == 0
    crashed = dict(missed, loss="crashed: exit status 1")
    assert run_all.table_rows(crashed)[-1] == ["loss", "crashed: exit status 1", "", "", "", ""]
    assert run_all.exit_status(crashed) == 1


def test_text_and_markdown_tables():
    rows = [["loss", "ours time", "0.131 s", "", "", ""], ["metaseg", "a|b", "1.00 s", "7.56 s", "<= 0.25", "no"]]
    text = run_all.text_table(rows).splitlines()
    assert text[0].split() == ["benchmark", "figure", "ours", "reference", "target", "met?"]
    # every column starts at the same offset on every line
    assert text[2].index("ours time") == text[3].index("a|b") == text[0].index("figure")
    assert text[2].index("0.131 s") == text[3].index("1.00 s") == text[0].index("ours")
    markdown = run_all.markdown_table(rows).splitlines()
    assert markdown[0] == "| benchmark | figure | ours | reference | target | met? |"
    assert markdown[1] == "| --- | --- | --- | --- | --- | --- |"
    assert markdown[3] == "| metaseg | a\\|b | 1.00 s | 7.56 s | <= 0.25 | no |"


def test_report_has_the_header_the_table_and_each_benchmark_context():
    results = {"loss": fake_result("loss", figure("ours time", 0.1, "s")), "metaseg": "crashed: exit status 2"}
    lines = run_all.report("MACHINE LINE", results, markdown=True).splitlines()
    assert lines[0] == "MACHINE LINE"
    assert "| loss | ours time | 0.100 s |  |  |  |" in lines
    assert "- loss: loss context" in lines and lines[-1].startswith("- load average")


def test_machine_line_names_cpu_cores_versions_and_load():
    line = run_all.machine_line()
    assert f"{os.cpu_count()} cores" in line and "torch " in line and "numpy " in line
    assert "load average" in line


@pytest.mark.parametrize("source, reason", [
    ("import sys; print('half a table'); sys.exit(3)", "crashed: exit status 3"),
    ("print('a table but no JSON')", "crashed: last line is not JSON"),
    ("import time; time.sleep(30)", "crashed: no result within 1 s"),
])
def test_run_benchmark_reports_why_a_script_gave_no_figures(tmp_path, monkeypatch, source, reason):
    script = tmp_path / "bench_fake.py"
    script.write_text(source)
    monkeypatch.setitem(run_all.BENCHMARKS, "fake", (str(script), []))
    assert run_all.run_benchmark("fake", quick=False, timeout=1).startswith(reason)


def test_run_benchmark_returns_the_script_figures(tmp_path, monkeypatch):
    script = tmp_path / "bench_fake.py"
    script.write_text("import json, sys\nprint('human')\n"
                      "print(json.dumps({'figures': [{'name': 'n', 'value': float(len(sys.argv)), 'unit': ''}]}))")
    monkeypatch.setitem(run_all.BENCHMARKS, "fake", (str(script), ["--quick-flag"]))
    assert run_all.run_benchmark("fake", quick=True, timeout=60)["figures"][0]["value"] == 3  # --json, --quick-flag


def _figures_of_a_run(benchmark, *args):
    """The parsed JSON result of bench_<benchmark>.py run with args, after checking that it has
    every figure of EXPECTED, once each, as a float >= 0."""
    script = run_all.BENCH_DIR / f"bench_{benchmark}.py"
    done = subprocess.run([sys.executable, str(script), *args, "--json"],
                          capture_output=True, text=True, timeout=120, check=True)
    result = run_all.parse_result(done.stdout)
    names = [f["name"] for f in result["figures"]]
    assert all(isinstance(f["value"], float) and f["value"] >= 0 for f in result["figures"])
    assert {name for bench, name in EXPECTED if bench == benchmark} <= set(names)
    assert len(names) == len(set(names))
    assert json.loads(done.stdout.splitlines()[-1]) == result
    return result


def test_bench_evaluation_json_has_every_expected_figure():
    _figures_of_a_run("evaluation", "--repeats", "1")


def test_bench_smiyc_json_has_every_expected_figure_at_a_tiny_size():
    result = _figures_of_a_run("smiyc", "--frames", "3", "--distinct", "2", "--height", "128", "--width", "256",
                               "--repeats", "1")
    assert {"alloc, list", "alloc, generator"} <= {f["name"] for f in result["figures"]}
    assert "3 frames of 128x256" in result["context"]


def test_child_stdout_shows_the_child_stderr_when_it_fails():
    assert child_stdout([sys.executable, "-c", "print('figures')"]) == "figures\n"
    crash = "import sys; sys.stderr.write('Traceback: MemoryError in the child'); sys.exit(3)"
    with pytest.raises(RuntimeError, match="exit status 3(.|\n)*MemoryError in the child"):
        child_stdout([sys.executable, "-c", crash])


def test_bench_pipeline_json_has_every_expected_figure_at_a_tiny_size():
    result = _figures_of_a_run("pipeline", "--height", "64", "--width", "128", "--images", "2", "--repeats", "1")
    names = {f["name"] for f in result["figures"]}
    assert {"compact path, per image", "probs path, per image", "plain pass over the softmax"} <= names
    sizes = {f["name"]: f["value"] for f in result["figures"]}
    assert sizes["compact path, bytes per image"] < sizes["probs path, bytes per image"]


def test_bench_gpu_runs_on_the_cpu_at_a_tiny_size_with_the_small_network():
    result = _figures_of_a_run("gpu", "--networks", "DeepLabV3+_MobileNetV3", "--height", "64", "--width", "128",
                               "--crop", "32", "--train_batch", "2", "--images", "2", "--repeats", "1")
    names = {f["name"] for f in result["figures"]}
    for precision in ("fp32", "bf16"):
        assert {f"DeepLabV3+_MobileNetV3: {kind} {precision}" for kind in ("inference", "training step",
                                                                           "-prepare -segment")} <= names
    assert "CPU" in result["context"]

"""The step-time gate (bench/gate.py) on hand-made pytest-benchmark results."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("gate", Path(__file__).parents[1] / "bench" / "gate.py")
gate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gate)


def _bench(name, group, median, key=None, **info):
    return {"name": name, "group": group, "params": {"key": key} if key else {}, "stats": {"median": median},
            "extra_info": info}


RESULTS = {"benchmarks": [
    _bench("step[sgd-mlp]", "step/mlp", 0.010, key="sgd"),
    _bench("step[adam-mlp]", "step/mlp", 0.015, key="adam"),
    _bench("step[sgd-lenet]", "step/lenet", 0.004, key="sgd"),
    _bench("step[lqa-lenet]", "step/lenet", 0.010, key="lqa"),
    _bench("report", "report", 0.050, reference_group="step/mlp"),
    _bench("harness[bare]", "harness", 2.0),
    _bench("harness[runner]", "harness", 2.1, ratio_of="harness[bare]"),
]}


def test_ratios_are_to_sgd_of_the_same_group_or_the_named_benchmark():
    r = gate.ratios(RESULTS)
    assert r == pytest.approx({"step[sgd-mlp]": 1.0, "step[adam-mlp]": 1.5, "step[sgd-lenet]": 1.0,
                               "step[lqa-lenet]": 2.5, "report": 5.0, "harness[runner]": 1.05})
    assert "harness[bare]" not in r  # no reference: not gated


def test_a_ratio_beyond_tolerance_fails_and_an_override_widens_it():
    base = {"tolerance": 0.15, "overrides": {"b": 0.5}, "ratios": {"a": 2.0, "b": 2.0, "c": 2.0, "gone": 1.0}}
    rows, ok = gate.compare(base, {"a": 2.2, "b": 2.8, "c": 2.4, "fresh": 3.0})
    verdicts = {r[0]: r[-1] for r in rows}
    assert verdicts == {"a": "ok", "b": "ok", "c": "FAIL", "fresh": "new", "gone": "not run"}
    assert not ok
    assert gate.compare(base, {"a": 1.0, "b": 2.0, "c": 2.29})[1]  # faster, or within 15 %


def test_cli_fails_readably_and_update_refreshes(tmp_path, capsys):
    res = tmp_path / "r.json"
    res.write_text(json.dumps(RESULTS))
    base = tmp_path / "baseline.json"
    assert gate.main([str(res), "--baseline", str(base), "--update"]) == 0
    assert json.loads(base.read_text())["ratios"]["step[adam-mlp]"] == 1.5
    assert gate.main([str(res), "--baseline", str(base)]) == 0
    slower = json.loads(json.dumps(RESULTS))
    slower["benchmarks"][1]["stats"]["median"] = 0.02  # adam: 1.5 -> 2.0, +33 %
    res.write_text(json.dumps(slower))
    capsys.readouterr()
    assert gate.main([str(res), "--baseline", str(base)]) == 1
    out = capsys.readouterr().out
    assert "| step[adam-mlp]" in out and "+33.3%" in out and "FAILED: 1 slower" in out and "step[adam-mlp]" in out
    res.write_text("{not json")
    assert gate.main([str(res), "--baseline", str(base)]) == 2


def test_a_paired_ratio_is_gated_as_measured():
    results = {"benchmarks": [*RESULTS["benchmarks"],
                              _bench("step[tlr-mlp]", "step/mlp", 0.050, key="tlr", paired_ratio=2.7,
                                     reference_group="step/mlp")]}
    assert gate.ratios(results)["step[tlr-mlp]"] == 2.7  # not 0.050 / 0.010


def test_several_runs_give_the_median_ratio_and_tolerance_can_be_set(tmp_path, capsys):
    paths = []
    for i, adam in enumerate((0.015, 0.018, 0.012)):  # adam/sgd: 1.5, 1.8, 1.2 -> median 1.5
        r = json.loads(json.dumps(RESULTS))
        r["benchmarks"][1]["stats"]["median"] = adam
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(r))
    base = tmp_path / "baseline.json"
    assert gate.main([*map(str, paths), "--baseline", str(base), "--update"]) == 0
    assert json.loads(base.read_text())["ratios"]["step[adam-mlp]"] == 1.5
    assert gate.main([str(paths[1]), "--baseline", str(base)]) == 1  # 1.8 vs 1.5: +20 % > 15 %
    assert gate.main([str(paths[1]), "--baseline", str(base), "--tolerance", "0.25"]) == 0
    capsys.readouterr()
    assert gate.main([str(paths[1]), "--baseline", str(base), "--tolerance", "-1"]) == 2
    assert "invalid tolerance" in capsys.readouterr().err


def _timing_report():
    spec = importlib.util.spec_from_file_location("timing_report", Path(__file__).parents[1] / "bench" /
                                                  "timing_report.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gate", gate)  # timing_report imports the gate as a sibling module
    spec.loader.exec_module(mod)
    return mod


def test_timing_report_tables_ratios_memory_and_speed_up():
    step = {"forward_per_step": 3.130434, "backward_per_step": 1.0, "state_bytes_per_param": 8.0, "n_params": 1000,
            "peak_memory_bytes": None}
    results = {"machine_info": {"cpu": {"brand_raw": "TestCPU"}}, "datetime": "2026-12-01T00:00:00", "benchmarks": [
        {"name": "test_step[sgd-mlp-cpu]", "group": "step/mlp/cpu", "params": {"key": "sgd"},
         "stats": {"median": 0.010}, "extra_info": {**step, "paired_ratio": 1.0}},
        {"name": "test_step[sls-mlp-cpu]", "group": "step/mlp/cpu", "params": {"key": "sls"},
         "stats": {"median": 0.020}, "extra_info": {**step, "paired_ratio": 1.9}},
        {"name": "test_seeds[loop]", "group": "seeds", "params": {}, "stats": {"median": 40.0}, "extra_info": {}},
        {"name": "test_seeds[vectorized]", "group": "seeds", "params": {}, "stats": {"median": 0.8},
         "extra_info": {"ratio_of": "test_seeds[loop]"}},
    ]}
    md = _timing_report().render(results, "cmd", {"sls/mlp": 3 * 2**20})
    assert "## mlp on cpu (1,000 parameters, batch 128)" in md and "TestCPU" in md
    sls = next(line for line in md.splitlines() if line.startswith("| sls"))
    assert "| 1.90 " in sls and "3.13 / 1" in sls and "3.0 MiB" in sls and "8.00" in sls
    sgd = next(line for line in md.splitlines() if line.startswith("| sgd"))
    assert "| —" in sgd  # no memory measured for it
    assert "50.0× faster than `test_seeds[loop]`" in md  # 40 / 0.8

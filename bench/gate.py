"""The step-time regression gate: ratios to ``sgd`` measured in the same session, against a
committed baseline.

    pytest bench -m "not full" --benchmark-json=bench/results.json   # or all of bench/
    python bench/gate.py bench/results.json                          # check: exit 1 on a regression
    python bench/gate.py bench/results.json --update                 # refresh bench/baseline.json
    python bench/gate.py run1.json run2.json run3.json --update      # ... from the median of runs

A benchmark timed in pairs with its reference (``bench/_paired.py``: the two alternate round
by round) carries ``extra_info["paired_ratio"]``, the median of its per-round ratios, which is
gated as it is. Otherwise, its median is divided by the median of the ``sgd`` benchmark of its reference
group (its own group for step costs: same model and device; ``extra_info["reference_group"]``
names it), so a faster or slower machine moves numerator and denominator together. Benchmarks
that are themselves ratios of two measurements (``extra_info["ratio_of"]``: the name of the
benchmark to divide by) use that instead. A ratio fails when it exceeds its baseline by more
than the tolerance (default 15 %, ``overrides`` in the baseline file per benchmark). A
benchmark missing from the baseline is reported as ``new`` and does not fail; one in the
baseline but not measured is ``not run``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from tabulate import tabulate

BASELINE = Path(__file__).with_name("baseline.json")
DEFAULT_TOLERANCE = 0.15


def _name(b: dict) -> str:
    return b["name"]


def ratios(results: dict) -> dict[str, float]:
    """Benchmark name -> its median divided by its reference's median (pytest-benchmark JSON)."""
    benches = results["benchmarks"]
    median = {_name(b): b["stats"]["median"] for b in benches}
    sgd = {b["group"]: b["stats"]["median"] for b in benches if (b.get("params") or {}).get("key") == "sgd"}
    out = {}
    for b in benches:
        info = b.get("extra_info", {})
        if "paired_ratio" in info:
            out[_name(b)] = info["paired_ratio"]
            continue
        if "ratio_of" in info:
            ref = median.get(info["ratio_of"])
        else:
            ref = sgd.get(info.get("reference_group", b["group"]))
        if ref:
            out[_name(b)] = b["stats"]["median"] / ref
    return out


def compare(baseline: dict, new: dict[str, float]) -> tuple[list[list], bool]:
    """Rows (benchmark, old, new, change, tolerance, verdict) and whether all pass."""
    old = baseline.get("ratios", {})
    tol_default = baseline.get("tolerance", DEFAULT_TOLERANCE)
    overrides = baseline.get("overrides", {})
    rows, ok = [], True
    for name in sorted(set(old) | set(new)):
        tol = overrides.get(name, tol_default)
        if name not in new:
            rows.append([name, f"{old[name]:.3f}", "—", "—", f"{tol:.0%}", "not run"])
            continue
        if name not in old:
            rows.append([name, "—", f"{new[name]:.3f}", "—", f"{tol:.0%}", "new"])
            continue
        change = new[name] / old[name] - 1.0
        verdict = "FAIL" if change > tol else "ok"
        ok &= verdict == "ok"
        rows.append([name, f"{old[name]:.3f}", f"{new[name]:.3f}", f"{change:+.1%}", f"{tol:.0%}", verdict])
    return rows, ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="step-time regression gate on ratios to sgd")
    ap.add_argument("results", nargs="+", help="pytest-benchmark JSON (--benchmark-json); with several, "
                    "each ratio is the median over them")
    ap.add_argument("--baseline", default=str(BASELINE))
    ap.add_argument("--tolerance", type=float, default=None,
                    help="default tolerance instead of the baseline's (per-benchmark overrides still apply)")
    ap.add_argument("--update", action="store_true", help="write the measured ratios as the new baseline")
    args = ap.parse_args(argv)
    try:
        runs = [ratios(json.loads(Path(p).read_text())) for p in args.results]
        new = {k: statistics.median(r[k] for r in runs if k in r) for k in sorted(set().union(*runs))}
        base_path = Path(args.baseline)
        baseline = json.loads(base_path.read_text()) if base_path.exists() else {}
    except (OSError, ValueError, KeyError) as exc:
        print(f"gate: error: cannot read results or baseline: {exc}", file=sys.stderr)
        return 2
    if args.tolerance is not None:
        if not args.tolerance > 0:
            print(f"gate: error: invalid tolerance: {args.tolerance}", file=sys.stderr)
            return 2
        baseline = {**baseline, "tolerance": args.tolerance}
    if args.update:
        merged = {**baseline.get("ratios", {}), **{k: round(v, 4) for k, v in new.items()}}
        out = {**{k: v for k, v in baseline.items() if k not in ("tolerance", "overrides", "ratios")},
               "tolerance": baseline.get("tolerance", DEFAULT_TOLERANCE), "overrides": baseline.get("overrides", {}),
               "ratios": dict(sorted(merged.items()))}
        base_path.write_text(json.dumps(out, indent=1) + "\n")
        print(f"gate: wrote {len(new)} ratios to {base_path}")
        return 0
    rows, ok = compare(baseline, new)
    shown = [r for r in rows if r[-1] != "not run"]  # a subset run (-m "not full") leaves most out
    print(tabulate(shown, headers=["benchmark", "baseline ratio", "new ratio", "change", "tolerance", "verdict"],
                   tablefmt="github", disable_numparse=True))
    if len(shown) < len(rows):
        print(f"gate: {len(rows) - len(shown)} baseline benchmarks not in these results (not run)")
    failed = [r[0] for r in rows if r[-1] == "FAIL"]
    print("gate: passed" if ok else f"gate: FAILED: {len(failed)} slower than baseline beyond tolerance: "
          + ", ".join(failed))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# reports/timing.md from a fresh run of the whole benchmark set (about 12 min on 2 idle cores):
#     bash bench/timing.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
python -m pytest bench -p no:cacheprovider -q --benchmark-json=bench/results.json
python bench/cpu_memory.py > bench/cpu_memory.json
python bench/timing_report.py bench/results.json --memory bench/cpu_memory.json --command "bash bench/timing.sh" \
    > reports/timing.md
python bench/gate.py bench/results.json

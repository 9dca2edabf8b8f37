"""Peak CPU memory of one optimizer step, for the "peak memory" column of ``reports/timing.md``.

    OMP_NUM_THREADS=1 python bench/cpu_memory.py > bench/cpu_memory.json
    python bench/timing_report.py bench/results.json --memory bench/cpu_memory.json > reports/timing.md

For every optimizer of ``bench/test_step_cost.py`` and both models: build it, take two steps
(state allocated), then reset the process's resident high-water mark (Linux:
``/proc/self/clear_refs``), take one step and record ``VmHWM − VmRSS`` before it: the memory a
step needs beyond what stays resident between steps (parameters, gradients, optimizer state),
i.e. its temporaries (probe copies, graphs kept for second derivatives, activations). glibc's
mmap threshold is pinned at 64 KiB so that every block of that size or more is mapped and
unmapped and so shows in the resident size; smaller ones are not counted. Linux only; CUDA
peaks come from the step benchmark itself (``torch.cuda.max_memory_allocated``).
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from test_step_cost import KEYS, MODELS, _training_step  # noqa: E402

from lrbench._libc import libc  # noqa: E402


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def step_peak(key: str, model_name: str) -> int:
    """Bytes a step holds at its peak beyond the memory resident just before it."""
    step = _training_step(key, model_name, torch.device("cpu"))[0]
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status("VmRSS")
    step()
    return max(0, _status("VmHWM") - before)


def main() -> None:
    libc().mallopt(-3, 64 << 10)  # M_MMAP_THRESHOLD, fixed
    torch.set_num_threads(1)
    out = {f"{key}/{model}": step_peak(key, model) for model in MODELS for key in KEYS}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

"""Fuzzing the command line: generated malformed suites and argument lists.

The contract: for any input, ``lrbench.cli.main(argv)`` returns 0 (it worked) or 2 (bad
input, with exactly one line on stderr, ``lrbench: error: ...``; a warning or a logged warning
counts as a line, as it would in a real process); no exception escapes it, no case runs past
:data:`LIMIT_S` (an alarm fails that case only), and nothing recorded before the case is lost
(the runs ``load_runs`` gives, the rows of every database in the folder; the text and binary
files offered as ``--db`` are left as they were).

Every case is generated from a fixed seed and its index alone (``random.Random("fuzz-suite-17")``),
so a failing case is reproduced by its id: ``python tests/test_fuzz.py suite-017`` prints
its suite file and argument list.

* ``suite-NNN``: a small valid suite (``beale`` smoke × ``sgd``, ``adam``; 1 seed, 5 steps)
  with one or two mutations: valid but odd (suite names, extreme schedules, hyper-parameters,
  tuning and robustness grids, seeds), structural (a key deleted, retyped or given an
  out-of-range number or an odd string; deep nesting; unknown keys; bad schedules, search
  spaces, ``[tune]``, ``[robustness]``, seeds, ``[optimizers.on.<x>]``, ``module:Class`` keys)
  and/or textual (truncation, binary bytes, a duplicated line, ...); run as ``lrbench run FILE``,
  and for some, when that returned 0, ``lrbench report`` of what it recorded.
* ``argv-NNN``: each value of the ``*_ARGS`` lists alone in an otherwise valid command
  (``--db``: empty, a directory, ``/dev/null``, text, random bytes, another program's database,
  damaged copies of an lrbench database; ``--out``; ``--seeds``; ``--optimizers`` /
  ``--problems`` with odd keys and modules of the working folder that raise on import; ...),
  junk argument lists, then a few random combinations.

Every case starts from a copy of a database holding the base suite's runs, so accepted
mutations of the base suite mostly re-run nothing; mutations never make a valid large budget
(steps ≤ 50), more than 3 valid seeds or a valid grid of more than 4 points.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import random
import re
import shutil
import signal
import sqlite3
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SEED = "fuzz"
N_SUITE = 110
N_ARGV = 10
"""Random argument lists; besides them every value of each ``*_ARGS`` list below is tried alone."""
LIMIT_S = 20.0
"""A case still running after this many seconds is a hang (it fails, the suite goes on)."""

BASE_RUNS = 2  # the base suite's runs, recorded in the template database


# --- a TOML writer that can also write what TOML rejects ------------------------------------

class Raw(str):
    """Text written into the TOML file as it is (deep nesting, literals)."""


DATE = _dt.date(1979, 5, 27)
DATETIME = _dt.datetime(1979, 5, 27, 7, 32, tzinfo=_dt.timezone.utc)
TIME = _dt.time(7, 32)
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _tstr(s: str) -> str:
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _tkey(k: str) -> str:
    return k if _BARE.match(k) else _tstr(k)


def tvalue(v) -> str:
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _tstr(v)
    if isinstance(v, (_dt.date, _dt.time)):  # datetime is a date
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(tvalue(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_tkey(k)} = {tvalue(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def _is_tables(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def to_toml(doc: dict) -> str:
    lines = []
    for k, v in doc.items():
        if not isinstance(v, dict) and not _is_tables(v):
            lines.append(f"{_tkey(k)} = {tvalue(v)}")
    for k, v in doc.items():
        if isinstance(v, dict):
            lines += ["", f"[{_tkey(k)}]"] + [f"{_tkey(a)} = {tvalue(b)}" for a, b in v.items()]
    for k, v in doc.items():
        if _is_tables(v):
            for table in v:
                lines += ["", f"[[{_tkey(k)}]]"] + [f"{_tkey(a)} = {tvalue(b)}" for a, b in table.items()]
    return "\n".join(lines) + "\n"


def base_suite() -> dict:
    return {
        "name": "fuzz",
        "seeds": 1,
        "device": "cpu",
        "problems": [{"key": "beale", "size": "smoke", "steps": 5, "eval_every": 5}],
        "optimizers": [{"key": "sgd", "lr": 0.01}, {"key": "adam"}],
    }


# --- the values mutations draw from -----------------------------------------------------------

NUMS = [0, -1, math.nan, math.inf, -math.inf, 1e308, -1e308, 1e-300, 2**64, 10**20, 2**63, -(2**63), -0.0]
RETYPES = ["5", "", 2, 0.5, True, False, [1, 2], [], ["a", 1, True], {"a": 1}, {}, DATE, DATETIME, TIME]
ODD = [
    "x" * 100_000, "a" * 201, "[/x]", "[bold]boom[/bold]", "[link=file:///etc]x[/link]", "a|b|c",
    "two\nlines", "$HOME ${X} $(id) `id`", "ünïcødé ✓ 日本語 🚀", "\x01\x02\x07\x1b[31mred\x7f",
    "", " ", "\t", "../../etc/passwd", "%s %d {0} {} %(x)s", "\\", "'\"", "\u202e rtl", "\r",
]
DEEP = [
    Raw("[" * 2000 + "]" * 2000),
    Raw("[" * 40 + "1" + "]" * 40),
    Raw("[" * 33 + "]" * 33),
    Raw("{ a = " * 40 + "1" + " }" * 40),
    Raw("{ a = " * 2000 + "1" + " }" * 2000),
]
UNKNOWN_KEYS = ["lrr", "momentom", "foo", "", "a b", "ü", "[bold]", "x" * 300, "steps ", "on", "tune",
                "schedule", "name", "seeds", "key", "size", "low", "criterion"]
SCHEDULES = [
    "sgdr", "multistep", "nope", "", {"name": "sgdr", "t0": 0}, {"name": "staircase", "every_epochs": 0},
    {"name": "multistep", "gamma": 1e308}, {"name": "sgdr", "min_factor": math.nan},
    {"name": "sgdr", "bogus": 1}, {"name": "nope", "t0": 1}, {"name": 3}, {}, ["sgdr"],
    {"name": "exponential", "gamma": -1}, {"name": "multistep", "milestones": []},
    {"name": "multistep", "milestones": [2]}, {"name": "multistep", "milestones": [math.nan]},
    {"name": "sgdr", "t0": 1e-300}, {"name": "sgdr", "t0": 1e308, "t_mult": 1e308},
    {"name": "sgdr", "t0": 1e-300, "t_mult": 1e308}, {"name": "sgdr", "t_mult": 1},
    {"name": "staircase", "every_epochs": 1e-300}, {"name": "exponential", "gamma": 1e-300},
    {"name": "sgdr", "t0": DATE}, {"name": "sgdr", "t0": True}, {"name": "sgdr", "t0": 2**64},
    {"name": "staircase", "gamma": 0}, {"name": "multistep", "milestones": "0.5"},
    {"name": "exponential", "gamma": 1, "steps_per_epoch": 0},
]
SPACES = [
    {"lr": {"low": 1e-300, "high": 1e300}}, {"lr": {"low": 1e-2, "high": 1e-1, "per_decade": 1}},
    {"lr": [0.01, 0.1]}, {"lr": []}, {"lr": {"low": 0, "high": 1}}, {"lr": {"low": math.nan, "high": 1}},
    {"lr": {"low": 1, "high": math.inf}}, {"lr": {"low": 1e-3, "high": 1, "per_decade": 0}},
    {"lr": {"low": "a", "high": 1}}, {"lr": {"low": 1e-3}}, {"lr": {"low": 1e-3, "high": 1e-2, "per_decade": 2**64}},
    {"lr": {"low": 1e-3, "high": 1e-2, "per_decade": 1e308}}, {"bogus": [1, 2]}, {"lr": [0.01], "betas": [[0.9, 0.99]]},
    {}, "lr", [1, 2], {"lr": {"low": 1e-2, "high": 1e-1, "per_decade": 1, "x": 1}}, {"lr": [math.nan, -1]},
    {"lr": [DATE]}, {"lr": {"low": 1e-2, "high": 1e-3}}, {"lr": [0.01, 0.01, 0.01]}, {"lr": [1e308, 1e-300]},
]
TUNE_TABLES = [
    {"seeds": 0}, {"seeds": [0, 0]}, {"seeds": 10**20}, {"seeds": "x"}, {"seeds": []}, {"seeds": [-1]},
    {"seeds": 2**63}, {"seeds": [2**63]}, {"seeds": 1}, {"criterion": "nope"}, {"criterion": "final_nope"},
    {"criterion": "best_nope", "sense": "max"}, {"criterion": "best_train_loss", "sense": "max"},
    {"criterion": "final_", "sense": "min"}, {"sense": "up"}, {"sense": "min"}, {"criterion": 5},
    {"criterion": "final_train_loss", "sense": 1}, {"bogus": 1}, 5, "x", [1], {"seeds": 1.5},
]
ROBUSTNESS = [
    {"low": 1e-2, "high": 1e-1, "per_decade": 1, "seeds": 1}, {"low": 0.01, "high": 0.01, "per_decade": 1, "seeds": 1},
    {"low": 0, "high": 1}, {"low": -1, "high": 1}, {"low": math.nan, "high": 1}, {"low": 1e-3, "high": math.inf},
    {"low": 1, "high": 1e-3}, {"low": 1e-2, "high": 1e-1, "per_decade": 0}, {"low": 1e-2, "high": 1e-1, "per_decade": 1.5},
    {"low": 1e-2, "high": 1e-1, "per_decade": True}, {"low": 1e-2, "high": 1e-1, "per_decade": 1, "seeds": 0},
    {"low": 1e-2, "high": 1e-1, "per_decade": 1, "seeds": []}, {"low": 1e-2, "high": 1e-1, "per_decade": 1, "seeds": [-1]},
    {"low": 1e-2, "high": 1e-1, "per_decade": 1, "seeds": 10**20}, {"low": 1e-2, "high": 1e-1, "per_decade": 1, "seeds": "x"},
    {"low": "a", "high": 1}, {"low": 1e-2, "high": 1e-1, "bogus": 1}, "yes", [1], {"low": 1e-300, "high": 1e300},
    {"low": 1e-2, "high": 1e-1, "per_decade": 2**64}, {"low": 1e-300, "high": 1e-299, "per_decade": 1, "seeds": 1},
    {"low": 1e307, "high": 1e308, "per_decade": 1, "seeds": 1}, {"low": DATE, "high": 1},
    {"low": 1e-2, "high": 1e-1, "per_decade": 1, "seeds": [2**63 - 1]},
]
TOP_SEEDS = [[0, 0], 2**64, 10**20, [0, -1], [], [1.5], [True], "3", 0, -1, [2**63], [2**63 - 1], 10_001,
             2**63, math.nan, [0, 1, 2], [[0]], {"n": 1}]
ONS = [
    {"rosenbrock": {"lr": 1.0}}, {"beale": 5}, {"beale": {"lr": "x"}}, {"beale": {"lr": 0.1}}, {"nope": {}},
    "x", [1], {"beale": {"tune": {"lr": [0.01, 0.1]}}}, {"beale": {"on": {"beale": {}}}}, {"": {}},
    {"beale": {"key": "adam"}}, {"beale": {"schedule": {"name": "sgdr", "t0": 0}}}, {"beale": {"lr": math.nan}},
    {"beale[size=smoke]": {"lr": 0.1}}, {"builtins:print": {}},
]
KEYS = ["builtins:print", "no_such_module:X", "os:path", "fz_rt:X", "fz_exit:X", "fz_exit0:X", "fz_exitstr:X",
        "fz_syntax:X", "fz_kls:BadOpt", "fz_kls:BadProb", "fz_kls:GoodOpt", "fz_kls:NotAClass", "fz_kls:Missing",
        "lrbench.cli:main", ":", "a:", ":b", "sgd ", "SGD", "", "adma", "beale ", "x" * 10_000, "[bold]sgd",
        "a.b.c:D", "..:x", "sgdr", "l4_adam", "mnist_logreg", "rosenbrock", "illcond_regression", "lqa", "marthe",
        "fd_newton", "tlr", "sls", "dadapt_adam", "sf_adamw"]
DEVICES = ["cuda", "gpu", "", 5, "auto", "CPU", "cpu "]
FILE_NAMES = ["fz.toml"] * 24 + ["[bold]fz.toml", "a|b$c.toml", "ü ✓.toml", "fz[/x].toml", "-fz.toml", ".toml",
                                "x" * 250 + ".toml"]

MODULES = {
    "fz_rt.py": 'raise RuntimeError("fz: boom on import")\n',
    "fz_exit.py": "raise SystemExit(3)\n",
    "fz_exit0.py": "raise SystemExit(0)\n",
    "fz_exitstr.py": 'raise SystemExit("fz: exit\\nwith two lines")\n',
    "fz_syntax.py": "def (:\n",
    "fz_kls.py": '''
import torch
from lrbench.problems import Problem

class BadOpt(torch.optim.SGD):
    def __init__(self, params, lr=0.01):
        raise RuntimeError("fz: BadOpt.__init__")

class GoodOpt(torch.optim.SGD):
    """An SGD of the working folder."""
    def __init__(self, params, lr=0.01):
        super().__init__(params, lr=lr)

class BadProb(Problem):
    def __init__(self, **options):
        raise RuntimeError("fz: BadProb.__init__")

    def build(self, seed, device):
        raise RuntimeError("fz: BadProb.build")

NotAClass = 5
''',
}


# --- mutations of the parsed suite ------------------------------------------------------------

def _slots(node, depth=0):
    """(container, key) of every value in the document, nested tables and lists too."""
    out = []
    if depth > 4 or isinstance(node, Raw):
        return out
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        out.append((node, k))
        out += _slots(v, depth + 1)
    return out


def _path(doc, container, key) -> str:
    def walk(node, prefix):
        if node is container:
            return f"{prefix}[{key!r}]"
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            if isinstance(v, (dict, list)) and not isinstance(v, Raw):
                found = walk(v, f"{prefix}[{k!r}]")
                if found:
                    return found
        return None

    return walk(doc, "") or f"?[{key!r}]"


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:60] + f"...<{len(text)} chars>"


def _slot(doc, rng):
    """A random slot, usually a leaf (a value that is not a table or a list)."""
    slots = _slots(doc)
    leaves = [(c, k) for c, k in slots if not isinstance(c[k], (dict, list)) or isinstance(c[k], Raw)]
    return rng.choice(leaves if leaves and rng.random() < 0.8 else slots)


def _set_slot(doc, rng, values, what):
    container, key = _slot(doc, rng)
    value = rng.choice(values)
    container[key] = value
    return f"{what} {_path(doc, container, key)} = {_short(value)}"


def _set_top(name, choices, label):
    """A mutation that sets the top-level ``name`` to one of ``choices``, described as ``label = …``."""

    def mutate(doc, rng):
        doc[name] = _copy(rng.choice(choices))
        return f"{label} = {_short(doc[name])}"

    return mutate


def m_delete(doc, rng):
    container, key = _slot(doc, rng)
    where = _path(doc, container, key)
    del container[key]
    return f"delete {where}"


def m_retype(doc, rng):
    return _set_slot(doc, rng, RETYPES, "retype")


def m_number(doc, rng):
    return _set_slot(doc, rng, NUMS, "number")


def m_string(doc, rng):
    return _set_slot(doc, rng, ODD, "string")


def m_deep(doc, rng):
    return _set_slot(doc, rng, DEEP, "deep")


def m_duplicate(doc, rng):
    lists = [(c, k) for c, k in _slots(doc) if isinstance(c[k], list) and c[k] and not isinstance(c[k], Raw)]
    if not lists:
        return m_delete(doc, rng)
    container, key = rng.choice(lists)
    i = rng.randrange(len(container[key]))
    container[key].append(_copy(container[key][i]))
    return f"duplicate {_path(doc, container, key)}[{i}]"


def _copy(v):
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list) and not isinstance(v, Raw):
        return [_copy(x) for x in v]
    return v


def _tables(doc):
    out = [("top", doc)]
    for name in ("problems", "optimizers"):
        for i, t in enumerate(doc.get(name) if isinstance(doc.get(name), list) else []):
            if isinstance(t, dict):
                out.append((f"{name}[{i}]", t))
                for sub in ("schedule", "tune", "on"):
                    if isinstance(t.get(sub), dict):
                        out.append((f"{name}[{i}].{sub}", t[sub]))
    for name in ("tune", "robustness"):
        if isinstance(doc.get(name), dict):
            out.append((name, doc[name]))
    return out


def m_unknown(doc, rng):
    where, table = rng.choice(_tables(doc))
    key, value = rng.choice(UNKNOWN_KEYS), rng.choice(RETYPES + NUMS)
    table[key] = value
    return f"unknown key {where}[{_short(key)}] = {_short(value)}"


def _optimizer(doc, rng):
    opts = [o for o in doc.get("optimizers", []) if isinstance(o, dict)] if isinstance(doc.get("optimizers"), list) else []
    if not opts:
        doc["optimizers"] = [{"key": "sgd", "lr": 0.01}]
        opts = doc["optimizers"]
    i = rng.randrange(len(opts))
    return i, opts[i]


def m_schedule(doc, rng):
    i, opt = _optimizer(doc, rng)
    opt["schedule"] = _copy(rng.choice(SCHEDULES))
    extra = ""
    if rng.random() < 0.15:
        opt["key"] = "sgdr"
        extra = " (key = 'sgdr')"
    return f"optimizers[{i}].schedule = {_short(opt['schedule'])}{extra}"


def m_space(doc, rng):
    i, opt = _optimizer(doc, rng)
    opt["tune"] = _copy(rng.choice(SPACES))
    return f"optimizers[{i}].tune = {_short(opt['tune'])}"


def m_tune_table(doc, rng):
    doc["tune"] = _copy(rng.choice(TUNE_TABLES))
    desc = f"[tune] = {_short(doc['tune'])}"
    if rng.random() < 0.7:  # something to tune, so that the protocol is used
        i, opt = _optimizer(doc, rng)
        opt["tune"] = {"lr": [0.01, 0.1]}
        desc += f"; optimizers[{i}].tune = {{lr = [0.01, 0.1]}}"
    return desc


m_robustness = _set_top("robustness", ROBUSTNESS, "[robustness]")


m_seeds = _set_top("seeds", TOP_SEEDS, "seeds")


def m_on(doc, rng):
    i, opt = _optimizer(doc, rng)
    opt["on"] = _copy(rng.choice(ONS))
    return f"optimizers[{i}].on = {_short(opt['on'])}"


def m_key(doc, rng):
    key = rng.choice(KEYS)
    if rng.random() < 0.6:
        i, opt = _optimizer(doc, rng)
        opt["key"] = key
        return f"optimizers[{i}].key = {_short(key)}"
    probs = doc.get("problems")
    if _is_tables(probs):
        probs[0]["key"] = key
    else:
        doc["problems"] = [{"key": key}]
    return f"problems[0].key = {_short(key)}"


m_device = _set_top("device", DEVICES, "device")


def m_toplevel(doc, rng):
    name, value = rng.choice([
        ("problems", []), ("problems", "beale"), ("problems", [{}]), ("problems", [{"key": 5}]),
        ("optimizers", []), ("optimizers", [{}]), ("optimizers", [{"key": 5}]), ("optimizers", {"key": "sgd"}),
        ("problems", [{"key": "beale", "size": "smoke", "steps": 5, "eval_every": 5}, 1]),
        ("name", "a/b"), ("name", "fuzz"), ("seeds", 2), ("bogus", 1),
    ])
    doc[name] = _copy(value)
    return f"{name} = {_short(value)}"


# valid but odd: these run (cheaply) and reach the runner, the store and the report
ODD_NAMES = ["[bold]boom[/bold]", "[/x]", "[link=file:///etc]x[/link]", "a|b|c", "$HOME ${X} $(id) `id`",
             "ünïcødé ✓ 日本語 🚀", "a" * 200, " x ", "%s %d {0} {} %(x)s", "\\", "'\"", "fuzz (tuning)", "<b>&amp;</b>",
             "‮ rtl", "# not a heading", "| a | b |", "*", "-", "`x`"]
ODD_SCHEDULES = [
    {"name": "sgdr", "t0": 1e-300, "t_mult": 1e308}, {"name": "sgdr", "t0": 1e-300}, {"name": "sgdr", "t0": 1e308},
    {"name": "staircase", "every_epochs": 1e-300}, {"name": "exponential", "gamma": 1e-300}, "exponential",
    {"name": "multistep", "milestones": [1e-300, 1.0], "gamma": 1e-300}, {"name": "sgdr", "t_mult": 1, "min_factor": 1},
    {"name": "sgdr", "t0": 5e-324, "t_mult": 1.0000000000000002}, {"name": "staircase", "every_epochs": 1e308, "gamma": 1},
]
ODD_HPARAMS = [("lr", 1e308), ("lr", 1e-300), ("lr", 0), ("lr", 0.0), ("lr", 5e-324), ("lr", 2**63 - 1), ("lr", 1),
               ("momentum", 0.999999), ("weight_decay", 1e308), ("weight_decay", 1e-300), ("nesterov", True),
               ("dampening", 1), ("eps", 1e-300), ("eps", 1e308), ("beta1", 0), ("beta2", 0.0)]
ODD_TUNING = [
    ({"lr": [1e308, 1e300]}, {}), ({"lr": [0.01, 0.1]}, {"criterion": "best_train_loss", "sense": "max"}),
    ({"lr": [0.01, 0.1]}, {"criterion": "final_train_loss", "sense": "min", "seeds": [0]}),
    ({"lr": [0.01, 1e308]}, {"seeds": [2**63 - 1]}), ({"lr": {"low": 1e307, "high": 1e308, "per_decade": 1}}, {"seeds": 1}),
    ({"lr": [5e-324]}, {"seeds": [0, 0]}), ({"lr": [0.01, 0.1], "weight_decay": [0, 1e308]}, {"seeds": 1}),
]
ODD_ROBUSTNESS = [
    {"low": 1e307, "high": 1e308, "per_decade": 1, "seeds": 1}, {"low": 1e-300, "high": 1e-299, "per_decade": 1, "seeds": 1},
    {"low": 5e-324, "high": 5e-324, "per_decade": 1, "seeds": 1},
    {"low": 1.7976931348623157e308, "high": 1.7976931348623157e308, "per_decade": 1, "seeds": [0]},
    {"low": 0.1, "high": 1.0, "per_decade": 3, "seeds": [2**63 - 1]}, {"low": 1e-2, "high": 1e-2, "seeds": [1, 0, 1]},
]
ODD_SEEDS = [[2**63 - 1], [0, 2**63 - 1], [7], [1, 0], [3, 2, 1], [0, 0, 0, 0], [2**32], [2**32 - 1]]


m_odd_name = _set_top("name", ODD_NAMES, "name")


def m_odd_schedule(doc, rng):
    i, opt = _optimizer(doc, rng)
    opt["schedule"] = _copy(rng.choice(ODD_SCHEDULES))
    return f"optimizers[{i}].schedule = {_short(opt['schedule'])}"


def m_odd_hparam(doc, rng):
    i, opt = _optimizer(doc, rng)
    name, value = rng.choice(ODD_HPARAMS)
    opt[name] = value
    return f"optimizers[{i}].{name} = {_short(value)}"


def m_odd_tuning(doc, rng):
    i, opt = _optimizer(doc, rng)
    space, table = _copy(rng.choice(ODD_TUNING))
    opt["tune"] = space
    desc = f"optimizers[{i}].tune = {_short(space)}"
    if table:
        doc["tune"] = table
        desc += f"; [tune] = {_short(table)}"
    return desc


m_odd_robustness = _set_top("robustness", ODD_ROBUSTNESS, "[robustness]")


m_odd_seeds = _set_top("seeds", ODD_SEEDS, "seeds")


VALID_ODD = [(m_odd_name, 3), (m_odd_schedule, 3), (m_odd_hparam, 3), (m_odd_tuning, 2), (m_odd_robustness, 2),
             (m_odd_seeds, 1)]

STRUCTURAL = [
    (m_delete, 3), (m_retype, 4), (m_number, 4), (m_string, 3), (m_deep, 1), (m_duplicate, 2), (m_unknown, 3),
    (m_schedule, 4), (m_space, 3), (m_tune_table, 2), (m_robustness, 3), (m_seeds, 2), (m_on, 2), (m_key, 3),
    (m_device, 1), (m_toplevel, 1),
]


def _cheap(doc) -> list[str]:
    """Keep what would be accepted cheap: steps ≤ 50 (the smoke budget is 50), ≤ 3 seeds."""
    notes = []
    if _is_tables(doc.get("problems")):
        for p in doc["problems"]:
            steps = p.get("steps")
            valid = isinstance(steps, int) and not isinstance(steps, bool)
            if (valid and 50 < steps <= 10**7) or ("steps" not in p and (p.get("size"), p.get("key")) != ("smoke", "beale")):
                p["steps"] = 5
                notes.append("(cheap: steps = 5)")
    seeds = doc.get("seeds")
    if isinstance(seeds, int) and not isinstance(seeds, bool) and 3 < seeds <= 10_000:
        doc["seeds"] = 3
        notes.append("(cheap: seeds = 3)")
    return notes


# --- mutations of the file's text -------------------------------------------------------------

def t_truncate(data, rng):
    n = rng.randrange(len(data)) if data else 0
    return data[:n], f"truncated at byte {n}"


def t_binary(data, rng):
    n = rng.randrange(len(data) + 1)
    junk = rng.choice([b"\xff\xfe", b"\x80\x81\x82", b"\xc3", bytes(rng.randrange(256) for _ in range(16))])
    return data[:n] + junk + data[n:], f"bytes {junk!r} at {n}"


def t_dupline(data, rng):
    lines = data.split(b"\n")
    candidates = [i for i, l in enumerate(lines) if l.strip()]
    i = rng.choice(candidates) if candidates else 0
    lines.insert(i, lines[i] if lines else b"")
    return b"\n".join(lines), f"line {i + 1} duplicated ({lines[i][:40]!r})"


def t_nul(data, rng):
    n = rng.randrange(len(data) + 1)
    return data[:n] + b"\x00" + data[n:], f"NUL at {n}"


def t_bom(data, rng):
    return b"\xef\xbb\xbf" + data, "UTF-8 BOM"


def t_crlf(data, rng):
    return data.replace(b"\n", b"\r\n"), "CRLF"


def t_random(data, rng):
    return bytes(rng.randrange(256) for _ in range(rng.choice([1, 64, 2000]))), "random bytes"


def t_empty(data, rng):
    return b"", "empty file"


def t_latin1(data, rng):
    return data.replace(b'"fuzz"', '"füzz"'.encode("latin-1")), "latin-1 byte in a string"


def t_control(data, rng):
    return data.replace(b'"fuzz"', b'"fu\x01zz"'), "raw control char in a string"


def t_many(data, rng):
    return data + b'\n[[optimizers]]\nkey = "sgd"\nlr = 0.01\n' * 2000, "2000 more [[optimizers]] sgd"


def t_header(data, rng):
    return data.replace(b"[[optimizers]]", b"[[optimizers]]\n[[optimizers]]", 1), "[[optimizers]] header duplicated"


def t_equals(data, rng):
    return data.replace(b" = ", b" : ", 1), "'=' replaced by ':'"


TEXTUAL = [(t_truncate, 3), (t_binary, 2), (t_dupline, 3), (t_nul, 1), (t_bom, 1), (t_crlf, 1), (t_random, 1),
           (t_empty, 1), (t_latin1, 1), (t_control, 1), (t_many, 1), (t_header, 1), (t_equals, 1)]


def _pick(rng, weighted):
    fns, weights = zip(*weighted)
    return rng.choices(fns, weights=weights)[0]


# --- argument lists ---------------------------------------------------------------------------

SEEDS_ARGS = ["0", "-1", "99999999999999999999", "1000000000", "x", "", "1", "2", "3", " 2", "1e3", "0x2"]
TAMPERED = {  # copies of the template database, changed by hand (a database is input too)
    "corrupt.sqlite": None,  # its first half
    "garbage.sqlite": "UPDATE runs SET hparams = '{', final = '[1'",
    "nulls.sqlite": "UPDATE runs SET env = 'null', final = '[]', best = 'null', result = '{}'",
    "envmiss.sqlite": "UPDATE runs SET env = '{}'",
    "partial.sqlite": "ALTER TABLE runs DROP COLUMN problem_name",
    "nocurves.sqlite": "DROP TABLE curves",
    "nan.sqlite": "UPDATE runs SET final = '{\"train_loss\": NaN}', best = '{\"train_loss\": Infinity}', "
                  "wall_time_s = NULL, median_step_s = -1",
    "oddnames.sqlite": "UPDATE runs SET suite = '[bold]x|y', optimizer = 'fz_kls:GoodOpt', optimizer_name = '[/x]', "
                       "problem_name = 'two' || char(10) || 'lines'",
    "badtypes.sqlite": "UPDATE runs SET status = 'weird', seed = 'x', steps = -5, budget_steps = 'y'",
}
DB_ARGS = ["", ".", "/dev/null", "adir", "adir/", "missing/x.sqlite", "text.txt", "random.bin", "empty.sqlite",
           "foreign.sqlite", "lrbench.sqlite", "lrbench.sqlite", "new.sqlite", "a\x00b", "x" * 5000, "afile/x.sqlite",
           "fz.toml", *TAMPERED]
OUT_ARGS = ["/dev/null", "afile", "afile/sub", "", "out", ".", "adir", "x" * 5000, "a\x00b", "new/deep/dir", " ",
            "odir"]  # odir/leaderboard.md and odir/index.html are directories
OPT_ARGS = ["sgd", "adam,sgd", "momentum", "nope", "adma", ",", "", "sgd,,adam", "fz_rt:X", "fz_exit:X",
            "fz_exit0:X", "fz_exitstr:X", "fz_syntax:X", "fz_kls:BadOpt", "fz_kls:GoodOpt", "fz_kls:NotAClass",
            "fz_kls:Missing", "fz_kls:BadProb", "builtins:print", "no_such_module:X", "os:path", ":", "x" * 10_000,
            "[bold]sgd", "l4_adam", "sgdr", "lrbench.cli:main", "a\x00b:C", "lqa", "marthe", "fd_newton", "tlr", "sls",
            "sps", "dadapt_adam", "prodigy", "sf_adamw", "sgd_hd,adam_hd", "rtho", "fd_first_order", "dog"]
PROB_ARGS = ["beale", "nope", "beale,nope", ",", "", "fz_rt:X", "fz_exit:X", "fz_exitstr:X", "fz_syntax:X",
             "fz_kls:BadProb", "fz_kls:BadOpt", "fz_kls:GoodOpt", "builtins:print", "os:path", "no_such_module:X",
             "x" * 10_000, "[/x]", "bael"]
SUITE_ARGS = ["fz.toml"] * 10 + ["missing.toml", "adir", "adir.toml", "text.txt", "random.bin", "nope_suite",
                                 "afile/x.toml", "empty.sqlite", "[bold]"]
FORMAT_ARGS = ["md", "md", "md", "html", "all", "pdf", "", "MD", "md,html"]
REF_ARGS = ["nope", "[bold]", "adam", "sgd[lr=0.01]", "", "x" * 10_000, "adam*", "|", "sgd"]
DATA_ARGS = ["/dev/null", "afile", "", "~", "x\x00y", "adir"]
UNKNOWN_FLAGS = [["--nope"], ["-x"], ["--seeds"], ["--db"], ["--format", "md"], ["--problem", "beale"],
                 ["--device", "gpu"], ["--vectorize", "maybe"], ["extra"], ["--seeds=1", "--seeds", "x"]]
JUNK = [[], [""], ["-"], ["--"], ["run run"], ["\x00"], ["--db"], ["RUN"], ["list"], ["list", "bad"],
        ["list", "problems", "extra"], ["list", ""], ["report", "extra"], ["run", "--nope"], ["run", "--seeds"],
        ["run", "fz.toml", "fz.toml"], ["--seeds", "1", "run"], ["report", "--format"]]


def _distinct(rng, items, weights, k):
    """``k`` distinct items, drawn by weight (an option given twice only tests argparse)."""
    pool, out = list(zip(items, weights)), []
    for _ in range(min(k, len(pool))):
        item = rng.choices(pool, weights=[w for _, w in pool])[0]
        pool.remove(item)
        out.append(item[0])
    return out


def argv_cases() -> list[list[str]]:
    """Each value alone (the rest of the command valid), then :data:`N_ARGV` random lists."""
    out = [["run", "fz.toml", "--db", db, "--out", "out"] for db in DB_ARGS]
    out += [["report", "--db", db, "--out", "out"] for db in DB_ARGS]
    out += [["run", "fz.toml", "--out", o] for o in OUT_ARGS]
    out += [["run", "fz.toml", "--seeds", n, "--out", "out"] for n in SEEDS_ARGS]
    out += [["run", "fz.toml", "--optimizers", o, "--out", "out"] for o in OPT_ARGS]
    out += [["run", "fz.toml", "--problems", p, "--out", "out"] for p in PROB_ARGS]
    out += [["report", "--reference", r, "--out", "out"] for r in REF_ARGS]
    out += [["report", "--format", f, "--out", "out"] for f in FORMAT_ARGS]
    out += [list(j) for j in JUNK]
    out = [list(argv) for argv in dict.fromkeys(map(tuple, out))]  # a value listed twice: once
    return out + [gen_argv(i) for i in range(N_ARGV)]


def _run_argv(rng):
    argv = ["run", rng.choice(SUITE_ARGS)]
    options = [
        lambda: ["--seeds", rng.choice(SEEDS_ARGS)],
        lambda: ["--db", rng.choice(DB_ARGS)],
        lambda: ["--out", rng.choice(OUT_ARGS)],
        lambda: ["--optimizers", rng.choice(OPT_ARGS)],
        lambda: ["--problems", rng.choice(PROB_ARGS)],
        lambda: ["--device", rng.choice(["cpu", "auto", "cuda"])],
        lambda: ["--vectorize", rng.choice(["auto", "off"])],
        lambda: ["--data-dir", rng.choice(DATA_ARGS)],
        lambda: rng.choice(UNKNOWN_FLAGS),
    ]
    for option in _distinct(rng, options, [3, 4, 3, 4, 3, 1, 1, 1, 1], rng.choice([1, 2, 2, 3])):
        argv += option()
    if "--out" not in argv:
        argv += ["--out", "out"]
    return argv


def _report_argv(rng):
    argv = ["report"]
    options = [
        lambda: ["--db", rng.choice(DB_ARGS)],
        lambda: ["--format", rng.choice(FORMAT_ARGS)],
        lambda: ["--out", rng.choice(OUT_ARGS)],
        lambda: ["--reference", rng.choice(REF_ARGS)],
        lambda: rng.choice(UNKNOWN_FLAGS),
    ]
    for option in _distinct(rng, options, [4, 2, 2, 2, 1], rng.choice([1, 2, 2, 3])):
        argv += option()
    if "--out" not in argv:
        argv += ["--out", "out"]
    if "--format" in argv:  # html and all render figures (about a second): keep them rare
        i = argv.index("--format") + 1
        if i < len(argv) and argv[i] in ("html", "all") and rng.random() < 0.5:
            argv[i] = "md"
    return argv


def gen_argv(i: int) -> list[str]:
    rng = random.Random(f"{SEED}-argv-{i}")
    kind = rng.choices(["run", "report", "list", "junk"], weights=[6, 3, 1, 1])[0]
    if kind == "run":
        return _run_argv(rng)
    if kind == "report":
        return _report_argv(rng)
    if kind == "list":
        return ["list", rng.choice(["problems", "optimizers", "suites", "bad", "", "PROBLEMS"])]
    return list(rng.choice(JUNK))


# --- cases ------------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    argv: list[str]
    suite_file: str = "fz.toml"
    suite: bytes = b""
    steps: list[str] = field(default_factory=list)
    then: list[str] | None = None
    """Run next when ``argv`` returned 0 (the report of what it recorded), same contract."""

    def describe(self) -> str:
        head = f"case {self.id}\n  argv: {_short_argv(self.argv)}"
        if self.then:
            head += f"\n  then (if 0): {_short_argv(self.then)}"
        if not self.id.startswith("suite"):
            return head + "\n  (fz.toml: the base suite)"
        text = self.suite.decode("utf-8", "backslashreplace")
        if len(text) > 3000:
            text = text[:1500] + f"\n...<{len(text)} chars>...\n" + text[-500:]
        return head + f"\n  mutations: {'; '.join(self.steps) or '-'}\n  suite file {_short(self.suite_file)}:\n{text}"


def _short_argv(argv) -> str:
    return "[" + ", ".join(_short(a) for a in argv) + "]"


def gen_suite(i: int) -> Case:
    rng = random.Random(f"{SEED}-suite-{i}")
    doc, steps = base_suite(), []
    mode = rng.choices(["valid", "struct", "text", "both"], weights=[35, 45, 12, 8])[0]
    if mode == "valid":  # one or two valid but odd mutations, sometimes with a malformed one
        for _ in range(rng.choice([1, 2])):
            steps.append(_pick(rng, VALID_ODD)(doc, rng))
        if rng.random() < 0.3:
            steps.append(_pick(rng, STRUCTURAL)(doc, rng))
        steps += _cheap(doc)
    if mode in ("struct", "both"):
        for _ in range(rng.choice([1, 1, 2])):
            steps.append(_pick(rng, STRUCTURAL)(doc, rng))
        steps += _cheap(doc)
    data = to_toml(doc).encode("utf-8", "surrogatepass")
    if mode in ("text", "both"):
        data, what = _pick(rng, TEXTUAL)(data, rng)
        steps.append(what)
    name = rng.choice(FILE_NAMES)
    # --data-dir: an empty folder, so that a problem whose data is missing never downloads it
    argv = ["run", name, "--db", "lrbench.sqlite", "--out", "out", "--data-dir", "adir"]
    then = None
    if rng.random() < 0.3:  # the report of what the mutated suite recorded (html/all: figures, ~1 s)
        then = ["report", "--db", "lrbench.sqlite", "--out", "out", "--format", rng.choice(["md", "md", "all"])]
    return Case(f"suite-{i:03d}", argv, name, data, steps, then)


CASES = [gen_suite(i) for i in range(N_SUITE)] + [Case(f"argv-{i:03d}", argv) for i, argv in enumerate(argv_cases())]
_BY_ID = {c.id: c for c in CASES}


# --- the test ---------------------------------------------------------------------------------

class _Hang(BaseException):
    """Raised by the alarm in a case that runs past :data:`LIMIT_S`."""


def _alarm(signum, frame):  # noqa: ARG001
    raise _Hang(f"still running after {LIMIT_S:g} s")


_SIGNALS = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]


def _call_main(argv):
    """``main(argv)``, with its signal handlers put back afterwards (it installs its own)."""
    from lrbench.cli import main

    saved = {s: signal.getsignal(s) for s in _SIGNALS}
    try:
        return main(argv)
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A folder with ``t.sqlite``, a database holding the base suite's runs (every case starts
    from a copy), and the :data:`TAMPERED` copies of it."""
    from lrbench.store import load_runs

    d = tmp_path_factory.mktemp("fuzz-template")
    (d / "fz.toml").write_text(to_toml(base_suite()))
    old = os.getcwd()
    os.chdir(d)
    try:
        assert _call_main(["run", "fz.toml", "--db", "t.sqlite", "--out", "out"]) == 0
    finally:
        os.chdir(old)
    db = d / "t.sqlite"
    assert len(load_runs(db)) == BASE_RUNS
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for name, sql in TAMPERED.items():
        if sql is None:
            data = db.read_bytes()
            (d / name).write_bytes(data[: len(data) // 2])
            continue
        shutil.copyfile(db, d / name)
        with sqlite3.connect(d / name) as conn:
            conn.execute(sql)
        conn.close()
    return d


RANDOM_BYTES = bytes(random.Random(f"{SEED}-bytes").randrange(256) for _ in range(512))
TEXT = "not a database\n"


def _workdir(tmp: Path, template: Path, case: Case) -> None:
    shutil.copyfile(template / "t.sqlite", tmp / "lrbench.sqlite")
    for name in TAMPERED:
        if name in case.argv:
            shutil.copyfile(template / name, tmp / name)
    (tmp / "adir").mkdir()
    (tmp / "adir.toml").mkdir()
    (tmp / "odir" / "leaderboard.md").mkdir(parents=True)
    (tmp / "odir" / "index.html").mkdir()
    (tmp / "text.txt").write_text(TEXT)
    (tmp / "random.bin").write_bytes(RANDOM_BYTES)
    (tmp / "empty.sqlite").write_bytes(b"")
    (tmp / "afile").write_text("a file\n")
    with sqlite3.connect(tmp / "foreign.sqlite") as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('someone')")
    conn.close()
    for name, text in MODULES.items():
        (tmp / name).write_text(text)
    (tmp / "fz.toml").write_text(to_toml(base_suite()))
    if not case.id.startswith("suite"):
        return
    try:
        (tmp / case.suite_file).parent.mkdir(parents=True, exist_ok=True)  # fz[/x].toml: in fz[
        (tmp / case.suite_file).write_bytes(case.suite)
    except OSError:  # a name the file system refuses: the case runs without the file
        pass


def _rows(path: Path, table: str = "runs") -> int | None:
    """Rows of ``table`` in the database ``path`` (read with sqlite3 itself), or None."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def _drop_fuzz_modules():
    for name in [m for m in sys.modules if m.startswith("fz_")]:
        del sys.modules[name]


@dataclass
class _Call:
    argv: list[str]
    rc: int | None
    err: str
    elapsed: float
    escaped: BaseException | None = None
    tb: str = ""
    extra: list[str] = field(default_factory=list)  # warnings and log records: stderr lines of a real process


def _guarded(argv, caplog, capsys) -> _Call:
    """``main(argv)`` under the alarm, with what it printed on stderr."""
    from lrbench import registry

    tables = [t for t in (getattr(registry, "_OPTIMIZERS", None), getattr(registry, "_PROBLEMS", None)) if t is not None]
    known = [set(t) for t in tables]
    _drop_fuzz_modules()
    caplog.clear()
    capsys.readouterr()
    call = _Call(argv, None, "", 0.0)
    t0 = time.perf_counter()
    old_alarm = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, LIMIT_S)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.simplefilter("ignore", category)  # what Python hides by default
            try:
                call.rc = _call_main(argv)
            except BaseException as exc:  # noqa: BLE001 - that is what is being checked
                call.escaped, call.tb = exc, traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_alarm)
        _drop_fuzz_modules()
        for table, keys in zip(tables, known):
            for key in set(table) - keys:
                if ":" in key:  # registered by a module:Class key of this case
                    del table[key]
    call.elapsed = time.perf_counter() - t0
    call.err = capsys.readouterr().err
    call.extra = [f"warning: {w.category.__name__}: {w.message}" for w in caught]
    call.extra += [f"log {r.levelname}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
    return call


def _check(case: Case, call: _Call) -> None:
    what = f"{case.id}: {_short_argv(call.argv)}"
    if isinstance(call.escaped, _Hang):
        pytest.fail(f"{what}: hang: {call.escaped}", pytrace=False)
    if call.escaped is not None:
        last = traceback.format_exception_only(type(call.escaped), call.escaped)[-1].strip()
        pytest.fail(f"{what}: exception escaped main: {_short(last)}\n{call.tb[-3000:]}", pytrace=False)
    assert call.rc in (0, 2), f"{what}: return code {call.rc!r}; stderr: {call.err[-500:]!r}"
    if call.rc == 2:
        lines = [line for line in call.err.splitlines() if line.strip()] + call.extra
        assert len(lines) == 1 and lines[0].startswith("lrbench: error: "), (
            f"{what}: exit 2 needs one line 'lrbench: error: ...' on stderr, got {len(lines)}: "
            f"{[_short(line) for line in lines[:5]]}")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_contract(case, tmp_path, monkeypatch, capsys, caplog, template):
    from lrbench.store import load_runs

    _workdir(tmp_path, template, case)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # main may append the working folder
    monkeypatch.delenv("LRBENCH_DATA", raising=False)  # --data-dir sets it
    caplog.set_level(logging.WARNING)
    dbs = {"lrbench.sqlite": "runs", "foreign.sqlite": "users", **{n: "runs" for n in TAMPERED if n in case.argv}}
    before = {name: _rows(tmp_path / name, table) for name, table in dbs.items()}
    loadable = len(load_runs(tmp_path / "lrbench.sqlite"))

    calls = [_guarded(case.argv, caplog, capsys)]
    if case.then and calls[0].rc == 0 and calls[0].escaped is None:
        calls.append(_guarded(case.then, caplog, capsys))
    print(case.describe())
    for call in calls:
        print(f"  {_short_argv(call.argv)} -> rc={call.rc!r} in {call.elapsed:.2f} s"
              f"{' ESCAPED ' + type(call.escaped).__name__ if call.escaped else ''}\n  stderr: {call.err[-2000:]!r}")
    for call in calls:
        _check(case, call)

    # nothing recorded before is lost, and files that are not databases are left alone
    after = len(load_runs(tmp_path / "lrbench.sqlite"))
    assert after >= loadable, f"{case.id}: {loadable} runs loadable before, {after} after"
    for name, n in before.items():
        now = _rows(tmp_path / name, dbs[name])
        if n is not None:
            assert now is not None and now >= n, f"{case.id}: {name} had {n} rows in {dbs[name]}, now {now}"
    assert (tmp_path / "text.txt").read_text() == TEXT, f"{case.id}: text.txt was overwritten"
    assert (tmp_path / "random.bin").read_bytes() == RANDOM_BYTES, f"{case.id}: random.bin was overwritten"


def test_cases_are_many_and_distinct():
    assert 150 <= len(CASES) <= 300
    assert len({(tuple(c.argv), c.suite) for c in CASES}) > 0.9 * len(CASES)


if __name__ == "__main__":  # python tests/test_fuzz.py suite-017 [argv-003 ...]: print the cases
    for ref in sys.argv[1:] or [c.id for c in CASES]:
        print(_BY_ID[ref].describe(), end="\n\n")

"""The tuning protocol and the LR-robustness sweep, from suite file to leaderboard."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lrbench.cli import main
from lrbench.report import leaderboard_markdown
from lrbench.spec import Budget, OptimizerSpec, ProblemSpec, RunConfig, log_grid
from lrbench.store import load_runs
from lrbench.suite import SuiteError, load_suite
from lrbench.tuning import TuningError, grid_points, lr_param, main_configs, robustness_configs, tuning_configs

QUAD = """
name = "quad"
seeds = 2
device = "cpu"

[[problems]]
key = "plugins:Quadratic"

[[optimizers]]
key = "sgd"
lr = 0.1
tune = {{ lr = [0.1, 0.5, 1.0, 1.5, 6.0] }}
{extra}
"""


def _suite(tmp_path, text):
    f = tmp_path / "s.toml"
    f.write_text(text)
    return load_suite(str(f))


def test_log_grid_two_per_decade():
    grid = log_grid(1e-4, 1.0, 2)
    assert len(grid) == 9 and grid[0] == 1e-4 and grid[-1] == 1.0 and grid[2] == 1e-3
    assert grid[1] == pytest.approx(10**-3.5, rel=1e-6)
    assert all(b / a == pytest.approx(10**0.5, rel=1e-5) for a, b in zip(grid, grid[1:]))
    with pytest.raises(ValueError, match="invalid grid"):
        log_grid(1.0, 1e-4, 2)


def test_grid_points_cross_in_sorted_order():
    assert grid_points({"lr": (1, 2), "beta": (0.9,)}) == [{"beta": 0.9, "lr": 1}, {"beta": 0.9, "lr": 2}]


def test_tuned_spec_is_named_with_a_star_and_untuned_keys_are_unchanged():
    plain = OptimizerSpec("adam", {"lr": 0.01})
    assert plain.to_dict() == {"key": "adam", "hparams": {"lr": 0.01}}  # run keys recorded before stay valid
    tuned = OptimizerSpec("adam", {"lr": 0.01}, tuned=True)
    assert tuned.name == "adam*" and tuned.to_dict()["tuned"] is True
    cfg = RunConfig("s", ProblemSpec("beale"), tuned, 0, "cpu", Budget(5, 5))
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.run_key != RunConfig("s", ProblemSpec("beale"), plain, 0, "cpu", Budget(5, 5)).run_key


def test_suite_declares_tuning_and_robustness(tmp_path):
    suite = _suite(tmp_path, QUAD.format(extra="[tune]\nseeds = 2\n[robustness]\nlow = 0.01\nhigh = 1.0\nseeds = [7]"))
    (entry,) = suite.entries
    assert entry.tune == {"lr": (0.1, 0.5, 1.0, 1.5, 6.0)}
    assert suite.tuning.seeds == (1000, 1001)
    tune = tuning_configs(suite)
    assert len(tune) == 5 * 2 and {c.suite for c in tune} == {"quad/tune"}
    assert {c.seed for c in tune}.isdisjoint(suite.seeds)
    robust = robustness_configs(suite)
    assert sorted(c.optimizer.hparams["lr"] for c in robust) == [0.01, 0.0316228, 0.1, 0.316228, 1.0]
    assert {c.suite for c in robust} == {"quad/robustness"} and {c.seed for c in robust} == {7}


def test_log_grid_search_space(tmp_path):
    suite = _suite(tmp_path, QUAD.format(extra="").replace("[0.1, 0.5, 1.0, 1.5, 6.0]",
                                                            "{ low = 0.001, high = 1, per_decade = 1 }"))
    assert suite.entries[0].tune == {"lr": (0.001, 0.01, 0.1, 1.0)}


@pytest.mark.parametrize("extra, expect", [
    ("[tune]\ncriterion = 'train_loss'", "invalid criterion"),
    ("[tune]\nsense = 'max'", "invalid sense"),
    ("[tune]\nseed = 3", "unknown key 'seed' in [tune]"),
    ("[robustness]\nlow = 0", "invalid grid"),
    ("[robustness]\nper_decade = 0.5", "invalid per_decade"),
])
def test_bad_tuning_tables(tmp_path, extra, expect):
    with pytest.raises(SuiteError, match=expect.replace("[", r"\[").replace("]", r"\]")):
        _suite(tmp_path, QUAD.format(extra=extra))


def test_bad_search_space(tmp_path):
    with pytest.raises(SuiteError, match="tune.lr must be a non-empty list"):
        _suite(tmp_path, QUAD.format(extra="").replace("[0.1, 0.5, 1.0, 1.5, 6.0]", "[]"))
    with pytest.raises(SuiteError, match="invalid lr"):  # every grid point is validated
        _suite(tmp_path, QUAD.format(extra="").replace("6.0]", "-1.0]"))


def test_lr_param():
    from lrbench.registry import optimizer_class

    assert lr_param(optimizer_class("adam")) == "lr"
    assert lr_param(optimizer_class("lqa")) == "delta0"
    assert lr_param(optimizer_class("l4_adam")) is None


def test_main_configs_need_the_tuning_runs(tmp_path):
    suite = _suite(tmp_path, QUAD.format(extra=""))  # 5 grid points × 3 default tuning seeds
    with pytest.raises(TuningError, match="15 of 15 tuning runs are not recorded"):
        main_configs(suite, pd.DataFrame(columns=["run_key"]))


def test_tuning_picks_the_known_best_step_end_to_end(tmp_path, capsys):
    """On f(w) = ½‖w − 1‖² gradient descent with η = 1 reaches f = 0 in one step; the other
    grid values leave 2(1 − η)^{10} > 0 after 5 steps, and η = 6 diverges (2·5^{10} exceeds
    10^6 × the initial loss 2)."""
    f = tmp_path / "quad.toml"
    f.write_text(QUAD.format(extra="[tune]\nseeds = 2\n[robustness]\nlow = 0.01\nhigh = 10.0\nper_decade = 2\nseeds = 1"))
    db = tmp_path / "r.sqlite"
    assert main(["run", str(f), "--db", str(db), "--out", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    runs = load_runs(db)
    tune = runs[runs["suite"] == "quad/tune"]
    assert len(tune) == 10
    by_lr = tune.groupby(tune["hparams"].map(lambda h: h["lr"]))["final_train_loss"].mean()
    for lr in (0.1, 0.5, 1.5):  # the criterion the protocol minimised, checked by hand
        assert by_lr[lr] == pytest.approx(2 * (1 - lr) ** 10, rel=1e-4)
    assert set(tune.loc[tune["hparams"].map(lambda h: h["lr"]) == 6.0, "status"]) == {"diverged"}
    main_runs = runs[runs["suite"] == "quad"]
    assert sorted(main_runs["optimizer_name"].unique()) == ["sgd*", "sgd[lr=0.1]"]
    picked = main_runs.loc[main_runs["optimizer_name"] == "sgd*", "hparams"]
    assert all(h == {"lr": 1.0} for h in picked) and len(picked) == 2
    assert (main_runs.loc[main_runs["optimizer_name"] == "sgd*", "final_train_loss"] == 0).all()

    board = (tmp_path / "out" / "leaderboard.md").read_text()
    assert board == leaderboard_markdown(runs, command=f"lrbench run {f} --db {db} --out {tmp_path / 'out'}")
    row = next(line for line in board.splitlines() if line.startswith("| sgd*"))
    seconds = tune["wall_time_s"].sum()
    assert "sgd[lr=1]; 10 runs" in row and f"{seconds:.3g} s" in row
    assert any(line.startswith("| sgd[lr=0.1]") for line in board.splitlines())  # the default beside it
    # robustness, by hand: the first threshold f ≤ 1 after 5 steps needs |1 − η| ≤ 2^{-1/10},
    # i.e. 0.067 ≤ η ≤ 1.933: grid values 0.1, 0.316, 1 work; η = 10 diverges (2·9^{10} > 2·10^6),
    # η = 3.16 does not (2·2.16^{10} ≈ 4.4·10^3) but misses the threshold
    robust = runs[runs["suite"] == "quad/robustness"]
    lrs = sorted(robust["hparams"].map(lambda h: h["lr"]))
    assert lrs == [0.01, 0.0316228, 0.1, 0.316228, 1.0, 3.16228, 10.0]
    works = [lr for lr in lrs if 2 * (1 - lr) ** 10 <= 1.0]
    assert works == [0.1, 0.316228, 1.0]
    section = board[board.index("## Robustness"):]
    row = next(line for line in section.splitlines() if line.startswith("| sgd"))
    assert "| 1.5 " in row and "0.1 … 1 " in row and "14%" in row  # 3 cells × 0.5 decade; 1 of 7 diverged
    assert math.isclose(robust["status"].eq("diverged").mean(), 1 / 7)

    # a re-run plans the same tuned runs from the stored tuning runs and redoes nothing
    capsys.readouterr()
    assert main(["run", str(f), "--db", str(db), "--out", str(tmp_path / "out")]) == 0
    assert "finished" not in capsys.readouterr().out
    assert len(load_runs(db)) == len(runs)

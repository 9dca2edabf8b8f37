import json

import pytest

from lrbench.spec import Budget, OptimizerSpec, ProblemSpec, RunConfig


def _config(**kw):
    base = dict(suite="s", problem=ProblemSpec("beale"), optimizer=OptimizerSpec("adam", {"lr": 0.001, "beta1": 0.8}),
                seed=3, device="cpu", budget=Budget(10, 2))
    base.update(kw)
    return RunConfig(**base)


def test_name_from_sorted_keys():
    assert OptimizerSpec("adam", {"lr": 0.001}).name == "adam[lr=0.001]"
    assert OptimizerSpec("adam", {"lr": 0.001, "beta1": 0.8}).name == "adam[beta1=0.8,lr=0.001]"
    assert OptimizerSpec("sgd").name == "sgd"


def test_json_round_trip_and_stable_key():
    c = _config()
    again = RunConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c and again.run_key == c.run_key
    # key order of the hyper-parameters does not change the key
    c2 = _config(optimizer=OptimizerSpec("adam", {"beta1": 0.8, "lr": 0.001}))
    assert c2.run_key == c.run_key
    assert _config(seed=4).run_key != c.run_key
    assert hash(c) == hash(again)


def test_budget_validation():
    with pytest.raises(ValueError, match="invalid steps"):
        Budget(0, 1)
    with pytest.raises(ValueError, match="invalid eval_every"):
        Budget(5, 0)

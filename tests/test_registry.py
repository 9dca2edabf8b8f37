import pytest
import torch

import lrbench
from lrbench.registry import RegistryError, optimizer_class


def test_make_optimizer_and_problem():
    p = torch.zeros(3, requires_grad=True)
    opt = lrbench.make_optimizer("adam", [p], lr=0.1)
    assert isinstance(opt, torch.optim.Optimizer) and opt.param_groups[0]["lr"] == 0.1
    assert lrbench.make_problem("beale").registry_key == "beale"


def test_unknown_key_names_close_keys():
    with pytest.raises(RegistryError) as info:
        lrbench.make_optimizer("adma", [])
    assert "adam" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(RegistryError, match="beale"):
        lrbench.make_problem("beal")


def test_module_class_key():
    cls = optimizer_class("plugins:Exploding")
    assert cls.__name__ == "Exploding"
    with pytest.raises(RegistryError, match="cannot load"):
        optimizer_class("plugins:Missing")


def test_duplicate_registration_refused():
    with pytest.raises(ValueError, match="already registered"):
        lrbench.register_optimizer("adam")(type("Other", (torch.optim.SGD,), {}))


def test_entry_point_plugins_register(tmp_path, monkeypatch):
    from lrbench import registry

    dist = tmp_path / "lrbench_fake_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lrbench-fake-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lrbench.optimizers]\nfake_exploding = plugins:Exploding\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_loaded", set())
    monkeypatch.setattr(registry, "_OPTIMIZERS", dict(registry._OPTIMIZERS))
    monkeypatch.setitem(registry._GROUPS, "optimizer", ("lrbench.optimizers", registry._OPTIMIZERS))
    assert "fake_exploding" in registry.optimizer_keys()
    assert registry.optimizer_class("fake_exploding").__name__ == "Exploding"

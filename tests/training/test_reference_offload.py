"""``model.reference_offload``: GRPO's frozen reference is loaded for each of its passes and
dropped after, and training is exactly what it is with the reference held for the whole run."""

import contextlib
import gc
import weakref

from r1kit.stages.grpo import module as grpo_module
from r1kit.stages.grpo.reference import FrozenReference
from tests.training.test_grpo_run import _metrics, _train, with_test_reward  # noqa: F401

KEYS = ("reward/mean", "train/kl", "train/loss", "train/grad_norm", "train/entropy")


def _run(tmp_path, registry, offload, *extra):
    _train(["reward=[sevens]", "trainer.max_steps=3", "algo.beta=0.04",
            "sampler.max_new_tokens=6", f"model.reference_offload={str(offload).lower()}",
            *extra], tmp_path, registry)
    return [{k: row[k] for k in KEYS} for row in _metrics(tmp_path)]


def _record_reference_models(monkeypatch, record):
    """Every model ``FrozenReference.use`` hands a pass goes through ``record``."""
    original_use = FrozenReference.use

    @contextlib.contextmanager
    def use(self):
        with original_use(self) as model:
            record(model)
            yield model

    monkeypatch.setattr(FrozenReference, "use", use)


def test_offloaded_reference_trains_exactly_as_the_resident_one(tmp_path, with_test_reward,
                                                                 monkeypatch):
    loaded, alive_at_update = [], []
    original_update = grpo_module.GRPOModule._update

    def update(self, batch):
        gc.collect()
        alive_at_update.append((self.reference, sum(r() is not None for r in loaded)))
        return original_update(self, batch)

    _record_reference_models(monkeypatch, lambda model: loaded.append(weakref.ref(model)))
    monkeypatch.setattr(grpo_module.GRPOModule, "_update", update)
    offloaded = _run(tmp_path / "offload", with_test_reward, True)
    assert len(loaded) >= 3 and len({id(r) for r in loaded}) == len(loaded)
    # no reference model is held while the policy trains
    assert alive_at_update == [(None, 0)] * 3
    resident = _run(tmp_path / "resident", with_test_reward, False)
    assert resident == offloaded
    assert all(float(row["train/kl"]) > 0 for row in offloaded[1:])  # β's term did act


def test_offloaded_reference_follows_mixed_precision(tmp_path, with_test_reward, monkeypatch):
    import torch

    dtypes = []
    _record_reference_models(monkeypatch,
                             lambda model: dtypes.append(next(model.parameters()).dtype))
    offloaded = _run(tmp_path / "offload", with_test_reward, True, "trainer.precision=bf16-mixed",
                     "trainer.max_steps=2")
    assert dtypes and set(dtypes) == {torch.bfloat16}
    resident = _run(tmp_path / "resident", with_test_reward, False,
                    "trainer.precision=bf16-mixed", "trainer.max_steps=2")
    assert resident == offloaded

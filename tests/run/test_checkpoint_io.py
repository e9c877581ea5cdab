"""Checkpoints are written straight to disk (no in-memory copy of them), atomically."""

import tracemalloc

import pytest
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from r1kit.run.checkpoint_io import StreamingCheckpointIO

MB = 2 ** 20


def _checkpoint():
    return {"state_dict": {"w": torch.arange(16 * MB // 4, dtype=torch.float32)}, "step": 7}


def _python_peak_while_saving(io, path) -> int:
    tracemalloc.start()
    try:
        io.save_checkpoint(_checkpoint(), path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_saved_checkpoint_loads_back_equal(tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    StreamingCheckpointIO().save_checkpoint(_checkpoint(), path)
    loaded = StreamingCheckpointIO().load_checkpoint(path)
    assert loaded["step"] == 7 and torch.equal(loaded["state_dict"]["w"],
                                               _checkpoint()["state_dict"]["w"])
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no partial file left


def test_no_copy_of_the_checkpoint_is_held_in_memory(tmp_path):
    # a 16 MB tensor: Lightning's save buffers all of it in Python memory, ours streams it
    lightning_peak = _python_peak_while_saving(TorchCheckpointIO(), tmp_path / "a.ckpt")
    streaming_peak = _python_peak_while_saving(StreamingCheckpointIO(), tmp_path / "b.ckpt")
    assert lightning_peak > 16 * MB
    assert streaming_peak < 2 * MB


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    StreamingCheckpointIO().save_checkpoint(_checkpoint(), path)
    before = path.read_bytes()

    def half_then_crash(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_then_crash)
    with pytest.raises(OSError, match="disk full"):
        StreamingCheckpointIO().save_checkpoint({"step": 8}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_stages_save_through_it(tmp_path):
    from r1kit.run.trainer import build_trainer
    from tests.conftest import compose_config
    from r1kit.config.validate import validate
    from r1kit.plugin.manager import get_registry

    plan = validate(compose_config(["pipeline=grpo", "model=tiny", "data=arithmetic"],
                                   run_dir=str(tmp_path)), get_registry())
    trainer = build_trainer(plan.stage("rl").config, tmp_path / "rl")
    assert isinstance(trainer.strategy.checkpoint_io, StreamingCheckpointIO)

"""Read an offline W&B run back from its files: the run record (name, group, job type, config)
and the tables it logged. wandb >= 0.2x has no Python reader for its ``run-*.wandb`` file (the
Go core reads it), so this follows its documented layout: LevelDB's log format (32 KiB blocks of
records, each with a 7-byte header: CRC, length, type), every record a ``wandb_internal_pb2
.Record`` protobuf."""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _records(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending, out = 7, b"", []  # the file header is one 7-byte record-sized slot
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            break
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == FULL:
            out.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            out.append(pending + chunk)
    return out


def _run_file(run_dir: Path) -> Path:
    found = list(run_dir.glob("run-*.wandb"))
    assert len(found) == 1, (f"{run_dir} has {len(found)} run-*.wandb files: "
                             f"{sorted(p.name for p in run_dir.iterdir())}")
    return found[0]


def offline_run(stage_dir: Path) -> dict:
    """The single offline run under ``stage_dir/wandb``: its name, group, job type, config
    (nested dicts) and tables (key -> list of {"columns", "data"}, in logged order)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (run_dir,) = (stage_dir / "wandb").glob("offline-run-*")
    log = _run_file(run_dir)
    run, config = None, {}
    for raw in _records(log):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            config.update({i.key: json.loads(i.value_json) for i in run.config.update})
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in record.config.update})
    tables: dict[str, list] = {}
    for path in sorted((run_dir / "files" / "media" / "table").rglob("*.table.json"),
                       key=lambda p: int(p.name.rsplit("_", 2)[-2])):
        key = str(path.relative_to(run_dir / "files" / "media" / "table")).rsplit("_", 2)[0]
        tables.setdefault(key, []).append(json.loads(path.read_text()))
    return {"name": run.display_name, "group": run.run_group, "job_type": run.job_type,
            "config": config, "tables": tables}

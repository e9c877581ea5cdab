"""``python -m r1kit -m ...``: a summary of the final metrics of every job of a sweep.

``SweepSummary`` is a Hydra callback (registered under ``hydra.callbacks`` in ``conf/config.yaml``).
When a job ends it records, in the job's Hydra output directory
(``<sweep dir>/<overrides>/r1kit_job.json``), the job's run directory, its overrides and its
stages — this runs in the job's own process, so it also works where a launcher runs jobs
elsewhere (SLURM). After every job, and again when the sweep ends (in the launching process),
it reads each job's stage manifests (``<run dir>/<stage>/manifest.json``, field ``metrics``) and
writes ``<sweep dir>/summary.csv``, one row per job — the swept values, the job's status, one
column per ``<stage>/<metric>``, its full overrides and run directory — and prints it as a table.

This module is imported at every start-up of ``python -m r1kit``: keep it light.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import OmegaConf

from r1kit.run.ranks import is_global_zero
from r1kit.stages import MANIFEST

JOB_RECORD = "r1kit_job.json"
SUMMARY = "summary.csv"


class SweepSummary(Callback):
    def on_job_end(self, config, job_return, **kwargs) -> None:
        if HydraConfig.get().mode != RunMode.MULTIRUN or not is_global_zero():
            return  # a single run, or another rank of a multi-device job
        out = Path(config.hydra.runtime.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        stages = OmegaConf.select(config, "pipeline.stages") or {}
        record = {"num": int(config.hydra.job.num),
                  "overrides": list(config.hydra.overrides.task),
                  "run_dir": str(Path(str(config.run_dir)).resolve()),
                  "stages": list(stages.keys()),
                  "status": getattr(job_return.status, "name", str(job_return.status))}
        tmp = out / (JOB_RECORD + ".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        tmp.replace(out / JOB_RECORD)  # atomic: other jobs may be reading the records
        # kept current after every job: a sweep stopped by a failed job still has its summary
        summarize(Path(str(config.hydra.sweep.dir)))

    def on_multirun_end(self, config, **kwargs) -> None:
        if not is_global_zero():
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        rows = summarize(sweep_dir)
        if rows:
            print(format_table(rows))
            print(f"r1kit: sweep summary written to {sweep_dir / SUMMARY}")


def _job_rows(sweep_dir: Path) -> list[dict]:
    records = sorted((json.loads(path.read_text()) for path in sweep_dir.rglob(JOB_RECORD)),
                     key=lambda record: record["num"])
    overrides = [dict(o.split("=", 1) if "=" in o else (o, "") for o in r["overrides"])
                 for r in records]
    # the swept keys: those whose value is not the same in every job
    keys = list(dict.fromkeys(k for o in overrides for k in o))
    swept = [k for k in keys if len({o.get(k) for o in overrides}) > 1]
    rows = []
    for record, chosen in zip(records, overrides):
        row = {"job": record["num"], **{k: chosen.get(k, "") for k in swept},
               "status": record["status"]}
        run_dir = Path(record["run_dir"])
        for stage in record["stages"]:
            manifest = run_dir / stage / MANIFEST
            if not manifest.exists():  # the job failed or stopped before this stage finished
                continue
            metrics = json.loads(manifest.read_text()).get("metrics") or {}
            row.update({f"{stage}/{name}": value for name, value in metrics.items()})
        rows.append({**row, "overrides": " ".join(record["overrides"]),
                     "run_dir": record["run_dir"]})
    return rows


def summarize(sweep_dir: Path) -> list[dict]:
    """One row per job of the sweep in ``sweep_dir``, also written to ``summary.csv``."""
    rows = _job_rows(sweep_dir)
    if not rows:
        return rows
    columns = list(dict.fromkeys(key for row in rows for key in row))
    tmp = sweep_dir / f"{SUMMARY}.{os.getpid()}.tmp"  # jobs may run at once (SLURM)
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(sweep_dir / SUMMARY)
    return rows


def _cell(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def format_table(rows: list[dict]) -> str:
    """The summary as an aligned text table (full overrides and run directories: see the CSV)."""
    columns = [c for c in dict.fromkeys(k for row in rows for k in row)
               if c not in ("overrides", "run_dir")]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])

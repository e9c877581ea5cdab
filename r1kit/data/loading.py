"""Turn the ``data`` config node into train and held-out rows."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from r1kit.config.store import schema_fields
from r1kit.plugin.registry import Registry


def load_splits(data_cfg: DictConfig, registry: Registry, seed: int) -> tuple[list, list]:
    """(train rows, val rows). A source without a val split gives up its last ``val_size`` rows."""
    entry = registry.get("dataset", data_cfg.name)
    node = OmegaConf.to_container(data_cfg, resolve=True)
    options = {k: v for k, v in node.items() if k in schema_fields(entry.schema)}
    train = list(entry.obj("train", seed, **options))
    val = list(entry.obj("val", seed, **options))
    if not val and data_cfg.val_size > 0:
        if len(train) <= data_cfg.val_size:
            raise ValueError(f"data: {len(train)} rows is too few to hold out "
                             f"data.val_size={data_cfg.val_size}")
        train, val = train[:-data_cfg.val_size], train[-data_cfg.val_size:]
    return train, val[: data_cfg.val_size] if data_cfg.val_size > 0 else val


def render_prompt(row: dict, template: str) -> str:
    try:
        return template.format(**row)
    except KeyError as err:
        raise ValueError(f"data.template uses field {err} that the row lacks "
                         f"(fields: {', '.join(row)})") from None



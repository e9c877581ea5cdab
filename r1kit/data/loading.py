"""Turn the ``data`` config node into train and held-out rows."""

from __future__ import annotations

from r1kit.plugin.registry import Registry


def load_rows(data_cfg, registry: Registry, split: str, seed: int) -> list[dict]:
    """The rows of one split as the dataset plugin gives them (no hold-out)."""
    return list(registry.get("dataset", data_cfg.name).obj(split, seed, data_cfg))


def load_splits(data_cfg, registry: Registry, seed: int) -> tuple[list, list]:
    """(train rows, val rows) of the typed ``data`` options. A source without a val split
    gives up its last ``val_size`` rows."""
    train = load_rows(data_cfg, registry, "train", seed)
    val = load_rows(data_cfg, registry, "val", seed)
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



"""r1kit: train reasoning language models the way DeepSeek-R1 was trained."""

import pluggy

__version__ = "0.1.0"

#: Decorator for plugin hook implementations: ``@hookimpl def r1kit_register_rewards(register): ...``
hookimpl = pluggy.HookimplMarker("r1kit")

__all__ = ["hookimpl", "__version__"]

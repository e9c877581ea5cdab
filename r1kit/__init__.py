"""r1kit: train reasoning language models the way DeepSeek-R1 was trained.

Plugin packages import what they need from :mod:`r1kit.api`. It is not imported here, so that
``import r1kit`` (for ``hookimpl`` or ``__version__``) does not import torch.
"""

import pluggy

__version__ = "0.1.0"

#: Decorator for plugin hook implementations: ``@hookimpl def r1kit_register_rewards(register): ...``
hookimpl = pluggy.HookimplMarker("r1kit")

__all__ = ["hookimpl", "__version__"]

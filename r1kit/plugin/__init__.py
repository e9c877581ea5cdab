"""The plugin machinery: hook specs, the pluggy manager that loads plugins, the registry."""

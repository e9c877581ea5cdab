"""Configuration: typed schemas, the Hydra config store fed by plugins, and validation."""

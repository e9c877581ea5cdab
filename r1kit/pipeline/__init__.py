"""The multi-stage pipeline: stages declared in config, each resumable, each with a manifest."""

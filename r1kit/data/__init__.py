"""Dataset sources (plugins) and the prompt stream the trainers draw from."""

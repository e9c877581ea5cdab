"""One module per stage kind: each exposes run(cfg, ctx) -> outputs dict."""

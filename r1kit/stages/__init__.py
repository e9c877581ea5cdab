"""One folder per stage kind (its ``stage.run(cfg, ctx)`` and its LightningModule), and the shell
the training stages share."""

#: Stage kind (``pipeline.stages.<name>.kind``) -> the module whose ``run(cfg, ctx)`` runs it.
STAGE_MODULES = {
    "sft": "r1kit.stages.sft.stage",
    "grpo": "r1kit.stages.grpo.stage",
    "rejection_sampling": "r1kit.stages.rejection_sampling.stage",
    "eval": "r1kit.stages.eval.stage",
}

#: A finished stage's record in its directory; a stage without one is run (or resumed).
MANIFEST = "manifest.json"

"""The ablation experiment (+experiment=variant_ablation) sweeps the six published recipes over
three seeds with the embedded RL stage's settings, the recipe choosing only what defines it."""

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from tests.conftest import compose_config


def test_the_sweep_is_six_recipes_by_three_seeds():
    from r1kit.cli.startup import CONF_DIR, prepare

    prepare()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose("config", overrides=["+experiment=variant_ablation"],
                      return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params["+recipe"].split(",") == ["grpo", "dr_grpo", "dapo", "gspo", "cispo", "sapo"]
    assert params["seed"].split(",") == ["0", "1", "2"]
    assert cfg.hydra.sweep.dir == "multirun/variant_ablation"


def test_each_job_keeps_the_shared_settings_under_its_recipe():
    for recipe, policy_loss in (("grpo", "ppo_clip"), ("cispo", "cispo"), ("sapo", "sapo")):
        cfg = compose_config(["+experiment=variant_ablation", f"+recipe={recipe}", "seed=2"])
        assert cfg.model.path == "runs/default/cold_start/model"
        assert (cfg.algo.policy_loss, cfg.algo.iterations, cfg.data.batch_size) == (
            policy_loss, 2, 16)
        assert (cfg.trainer.max_steps, cfg.eval.every, cfg.optim.lr, cfg.seed) == (
            60, 10, 3e-5, 2)
        assert list(cfg.pipeline.stages) == ["rl"]
    assert compose_config(["+experiment=variant_ablation", "+recipe=dr_grpo"]).advantage.name \
        == "dr_grpo"

"""The RL math as pure tensor functions: policy loss, surrogates, KL estimators, ratios,
aggregations."""

from r1kit.algo.aggregation import AGGREGATIONS
from r1kit.algo.kl import KL_ESTIMATORS
from r1kit.algo.loss import LossOutput, policy_loss
from r1kit.algo.ratio import RATIOS
from r1kit.algo.surrogates import SURROGATES

__all__ = ["AGGREGATIONS", "KL_ESTIMATORS", "RATIOS", "SURROGATES", "LossOutput", "policy_loss"]

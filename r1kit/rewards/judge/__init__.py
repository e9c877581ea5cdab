"""The ``judge`` reward: a generative reward model (an LLM judge) decides whether a response is
right, given the question and a reference answer (DeepSeek-R1's rejection sampling of prompts no
rule can check, and "RL for all scenarios").

One concern per module: ``options`` (the config node and its checks), ``prompt`` (what the judge
reads), ``verdict`` (parsing its reply, strictly), ``cache`` (replies already paid for),
``counters`` (what the stage logs), ``reward`` (the reward itself) and ``backends/`` (the models
it can ask: a local HF causal LM, a vLLM engine, an OpenAI-compatible server), which are plugins
of their own kind (``r1kit_register_judge_backends``).
"""

"""Judge backends, the models the ``judge`` reward asks: ``hf`` (a local causal LM), ``vllm``
(an in-process engine) and ``openai`` (any OpenAI-compatible chat-completions server)."""

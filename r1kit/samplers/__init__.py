"""Built-in samplers: ``hf`` (transformers generate) and ``vllm`` (a colocated vLLM engine)."""

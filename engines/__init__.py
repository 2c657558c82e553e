"""Collaborative SLM/LLM decoding: engines (tensors) and the scheduler (plain Python).

    types.py        messages between scheduler and engines (no torch)
    hf.py           Hugging Face engine: per-sequence KV caches, batched extends
    kvcache.py      per-sequence caches and the padded batch one forward uses
    sampling.py     batched sampling, one random stream per (seed, position)
    features.py     RouterFeatures rows from engine tensors
    scheduler.py    one step: SLM draft -> route -> commit -> LLM -> emit
    sequence.py     per-request counters; detok.py: text deltas and stop strings
    async_engine.py asyncio streaming (AsyncEngine) and generate_batch

Nothing is imported here, so ``import engines.scheduler`` stays torch-free.
"""

"""Collaborative SLM/LLM decoding: engines (tensors) and the scheduler (plain Python).

    types.py        messages between scheduler and engines (no torch)
    scheduler.py    one step: admit -> SLM draft -> route -> commit -> LLM -> emit
    slm_phase.py    the SLM half of a step: plan drafts, check scores, commit
    llm_phase.py    the LLM half: catch-up + the routed token, fail-open fallback
    deferral.py     deferred LLM batching: routed sequences park for a fuller LLM pass
    isolation.py    a failed batched call is bisected down to the sequences it hurts
    sequence.py     per-request counters; detok.py: text deltas and stop strings
    async_engine.py asyncio streaming (AsyncEngine) and generate_batch
    hf.py           Hugging Face engine: batched extends over one KV slot pool
    kvcache.py      the slot pool: dense slots, a view per forward where it can be
    sampling.py     batched sampling, one random stream per (seed, position)
    features.py     RouterFeatures rows from engine tensors
    vllm_engine.py  two vLLM engines in this process (needs vLLM)
    remote.py       the LLM on another server (remote_client.py: its HTTP client);
                    bookkeeping.py: cache bookkeeping of engines without local caches
    pair.py         an SLM/LLM pair from two model folders (modelcheck.py checks them)
    reference.py    one model alone through HF generate (evaluation's reference)

Nothing is imported here, so ``import engines.scheduler`` stays torch-free.
"""

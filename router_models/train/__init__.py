"""CITER router training: an importable pipeline; ``citer train-router`` is its CLI.

Data flow (one module per arrow)::

    task items --collect--> Collection (teacher-forced rows: SLM hidden, SLM/LLM argmax, ref)
      --labels.shortcut--> slm / llm / needs-rollout per row
      --rollout (real scheduler, current policy, verifier)--> slm / llm for sampled rows
      --train (cost-aware weighted BCE)--> CiterMLP
      --loop: re-label the rollout rows with the new policy, repeat until < tol flip
      --calibrate (validation rows)--> threshold -> LLM share table --> router card

``pipeline.train_router`` runs all of it; ``sweep`` and ``plot`` turn routed
decoding runs into the accuracy-vs-LLM-share report of ``citer eval --sweep``.
Nothing here seeds a generator or picks a device at import time.
"""

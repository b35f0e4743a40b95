#!/usr/bin/env bash
# The speed harness of issue 13: one epoch of the MNIST MLP (784-256-256-10, batch 64) in imcc
# (f32 reference, all-digital 4-bit, two-level, full IMC) and in the peers (PyTorch f32, aihwkit
# InferenceRPUConfig and SingleRPUConfig), plus the MNIST CNN in imcc (full IMC, f32) and
# PyTorch; prints samples/s, test accuracy and each peer's ratio to imcc, all measured in this
# one run. Not part of CI.
#
# Usage: bench/run.sh [PEERS_DIR]    (default ${TMPDIR:-/tmp}/imcc-peers; install the peers
#        with ../shared/tools/install-peers.sh; without them only imcc is measured)
# Environment: BENCH_THREADS (default 2) for PyTorch; imcc uses every core (rayon).
set -euo pipefail
cd "$(dirname "$0")/.."
peers=${1:-${TMPDIR:-/tmp}/imcc-peers}
out=$(mktemp -d)
cargo build --release -q
imcc=./target/release/imcc
echo "imcc: MNIST MLP, one epoch per run" >&2
for run in f32_reference all_digital two_level full; do
    "$imcc" train examples/mnist_mlp.imc --train "$run" --epochs 1 --metrics-json "$out/mlp_$run.json" >/dev/null
done
echo "imcc: MNIST CNN, one epoch per run" >&2
for run in f32_reference full; do
    "$imcc" train examples/mnist_cnn.imc --train "$run" --epochs 1 --metrics-json "$out/cnn_$run.json" >/dev/null
done
# The paper's CIFAR-10 CNN (examples/paper/cifar_cnn.imc) on random data of CIFAR-10's shape
# and binary format (no CIFAR data ships here): what a paper-scale epoch costs.
echo "imcc: CIFAR-10 CNN of the paper, 64 samples per run on synthetic batches" >&2
python3 - "$out/cifar" <<'PY'
import os, random, sys
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
rng = random.Random(1)
for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    with open(os.path.join(d, name), "wb") as f:
        for _ in range(64):
            f.write(bytes([rng.randrange(10)]) + bytes(rng.randrange(256) for _ in range(3072)))
PY
cat > "$out/cifar.imc" <<IMC
import "$PWD/examples/paper/cifar_cnn.imc";
train cifar_full extends full { data = cifar10("$out/cifar"); epochs = 1; }
train cifar_f32 extends full { data = cifar10("$out/cifar"); epochs = 1; reference = true; }
IMC
for run in cifar_full cifar_f32; do
    "$imcc" train "$out/cifar.imc" --train "$run" --limit 64 --metrics-json "$out/$run.json" >/dev/null 2>&1
done
if PYTHONPATH="$peers" python3 -c 'import torch' 2>/dev/null; then
    echo "peers: PyTorch and aihwkit" >&2
    PYTHONPATH="$peers" python3 bench/peers.py > "$out/peers.jsonl"
else
    echo "peers not installed in $peers: imcc only" >&2
    : > "$out/peers.jsonl"
fi
python3 bench/report.py "$out"

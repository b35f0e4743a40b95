"""Prints `bench/run.sh`'s table from the imcc metrics files and the peers' JSON lines."""

import json
import os
import platform
import sys

out = sys.argv[1]


def imcc(name):
    path = os.path.join(out, name + ".json")
    if not os.path.exists(path):
        return None
    r = json.load(open(path))["runs"][0]
    return r["samples_per_second"], r["final_test_accuracy"]


peers = {}
for line in open(os.path.join(out, "peers.jsonl")):
    r = json.loads(line)
    peers[(r["system"], r["config"])] = (r["samples_per_second"], r["test_accuracy"])

rows = [
    ("MLP", "PyTorch f32", peers.get(("pytorch", "mlp f32"))),
    ("MLP", "aihwkit InferenceRPUConfig", peers.get(("aihwkit", "InferenceRPUConfig"))),
    ("MLP", "aihwkit SingleRPUConfig", peers.get(("aihwkit", "SingleRPUConfig(ConstantStepDevice)"))),
    ("MLP", "imcc f32 reference", imcc("mlp_f32_reference")),
    ("MLP", "imcc all-digital 4-bit", imcc("mlp_all_digital")),
    ("MLP", "imcc two-level (2 of 3 MVMs on IMC)", imcc("mlp_two_level")),
    ("MLP", "imcc full IMC (3 of 3, bit-true)", imcc("mlp_full")),
    ("CNN", "PyTorch f32", peers.get(("pytorch", "cnn f32"))),
    ("CNN", "imcc f32 reference", imcc("cnn_f32_reference")),
    ("CNN", "imcc full IMC (3 of 3, bit-true)", imcc("cnn_full")),
]
paper = [("imcc f32 reference", imcc("cifar_f32")), ("imcc full IMC (3 of 3, bit-true)", imcc("cifar_full"))]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
print(f"one epoch of MNIST (60,000 samples), batch 64; {os.cpu_count()} cores, {cpu}")
print(f"{'net':<4} {'system':<38} {'samples/s':>10} {'test acc':>9}")
for net, name, r in rows:
    if r is None:
        print(f"{net:<4} {name:<38} {'-':>10} {'-':>9}")
    else:
        print(f"{net:<4} {name:<38} {r[0]:>10.0f} {r[1]:>9.4f}")
print()
print("the paper's CIFAR-10 CNN (examples/paper/cifar_cnn.imc), 64 samples of random data in CIFAR-10's format:")
for name, r in paper:
    if r is not None:
        hours = 50_000 / max(r[0], 1e-9) / 3600
        print(f"     {name:<38} {r[0]:>10.1f} samples/s, {hours:.1f} h per 50,000-sample epoch")
print()
targets = [
    ("imcc full IMC / aihwkit SingleRPUConfig (target >= 1.0)", imcc("mlp_full"), peers.get(("aihwkit", "SingleRPUConfig(ConstantStepDevice)"))),
    ("imcc full IMC / aihwkit InferenceRPUConfig (goal >= 1.0)", imcc("mlp_full"), peers.get(("aihwkit", "InferenceRPUConfig"))),
    ("imcc two-level / aihwkit InferenceRPUConfig (target >= 1.0)", imcc("mlp_two_level"), peers.get(("aihwkit", "InferenceRPUConfig"))),
    ("imcc f32 / PyTorch f32 (target >= 1.0)", imcc("mlp_f32_reference"), peers.get(("pytorch", "mlp f32"))),
    ("imcc all-digital / PyTorch f32 (target >= 0.5)", imcc("mlp_all_digital"), peers.get(("pytorch", "mlp f32"))),
    ("imcc CNN f32 / PyTorch CNN f32", imcc("cnn_f32_reference"), peers.get(("pytorch", "cnn f32"))),
]
for label, a, b in targets:
    ratio = f"{a[0] / b[0]:.3f}x" if a and b else "-"
    print(f"{label:<62} {ratio:>9}")

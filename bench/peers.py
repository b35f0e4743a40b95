"""The peer side of `bench/run.sh`: the MNIST MLP (784-256-256-10, ReLU, batch 64, SGD lr 0.05
momentum 0.9 weight decay 1e-4, one epoch) in PyTorch f32 and IBM aihwkit, and the MNIST CNN of
`examples/mnist_cnn.imc` in PyTorch f32. Prints one JSON object per run on stdout:
{"system", "config", "samples_per_second", "test_accuracy"}.

Run it through `bench/run.sh` (which installs nothing: see `../shared/tools/install-peers.sh`).
Timing covers the training loop only (no data loading, no evaluation), as imcc's samples/s does.
"""

import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 64
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
torch.set_num_threads(THREADS)


def idx(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4 : 4 + 4 * rank])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def mnist():
    d = os.path.join(ROOT, "data", "mnist")
    x = idx(os.path.join(d, "train-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
    y = idx(os.path.join(d, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    tx = idx(os.path.join(d, "t10k-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
    ty = idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(tx), torch.from_numpy(ty)


def mlp(linear):
    return nn.Sequential(
        nn.Flatten(), linear(784, 256), nn.ReLU(), linear(256, 256), nn.ReLU(), linear(256, 10)
    )


def cnn():
    # examples/mnist_cnn.imc
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def train(model, opt, data, image):
    x, y, tx, ty = data
    if image:
        x, tx = x.unsqueeze(1), tx.unsqueeze(1)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(1)
    order = torch.randperm(len(y), generator=g)
    model.train()
    t0 = time.perf_counter()
    for i in range(0, len(y), BATCH):
        b = order[i : i + BATCH]
        opt.zero_grad()
        loss = loss_fn(model(x[b]), y[b])
        loss.backward()
        opt.step()
    elapsed = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        correct = sum(
            (model(tx[i : i + 1000]).argmax(1) == ty[i : i + 1000]).sum().item() for i in range(0, len(ty), 1000)
        )
    return len(y) / elapsed, correct / len(ty)


def report(system, config, result):
    sps, acc = result
    print(json.dumps({"system": system, "config": config, "samples_per_second": sps, "test_accuracy": acc}))
    sys.stdout.flush()


def aihwkit_runs(data):
    from aihwkit.nn import AnalogLinear
    from aihwkit.optim import AnalogSGD
    from aihwkit.simulator.configs import InferenceRPUConfig, SingleRPUConfig
    from aihwkit.simulator.configs.devices import ConstantStepDevice

    def tile(cfg):
        # As close to imcc's chip as aihwkit allows: 1152-row tiles, 8-bit ADC, 4-bit inputs.
        cfg.mapping.max_input_size = 1152
        cfg.mapping.max_output_size = 256
        cfg.forward.out_res = 1 / 256
        cfg.forward.inp_res = 1 / 16
        return cfg

    for name, make in [
        ("InferenceRPUConfig", lambda: tile(InferenceRPUConfig())),
        ("SingleRPUConfig(ConstantStepDevice)", lambda: tile(SingleRPUConfig(device=ConstantStepDevice()))),
    ]:
        torch.manual_seed(1)
        model = mlp(lambda i, o: AnalogLinear(i, o, rpu_config=make()))
        opt = AnalogSGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
        opt.regroup_param_groups(model)
        report("aihwkit", name, train(model, opt, data, image=False))


def main():
    data = mnist()
    torch.manual_seed(1)
    model = mlp(nn.Linear)
    report("pytorch", "mlp f32", train(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4), data, False))
    torch.manual_seed(1)
    model = cnn()
    report("pytorch", "cnn f32", train(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4), data, True))
    try:
        aihwkit_runs(data)
    except ImportError as e:
        print(f"aihwkit not available: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()

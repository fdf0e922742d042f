"""Training throughput of EfficientNet-Lite0 under the choices imgcls made for CPUs.

One training step = forward + backward + AdamW step on a batch of 32, the frozen prefix
(stem + first ``freeze`` stages) run without gradients in eval mode. Random input: this
measures arithmetic, not data (data loading is measured by `imgcls train --profile`).
The first row is the plain eager loop (contiguous fp32, nothing frozen) - the baseline.

    python benchmarks/finetune_speed.py [--steps 3] [--compile]
"""

from __future__ import annotations

import argparse
import time

import timm
import torch

CASES = [
    {"label": "plain eager fp32 (baseline)", "cl": False},
    {"label": "channels-last", "cl": True},
    {"label": "channels-last + bf16 autocast", "cl": True, "bf16": True},
    {"label": "channels-last, freeze stem+stage1", "cl": True, "freeze": 2},
    {"label": "channels-last, freeze to stride 8 (imgcls auto)", "cl": True, "freeze": 3},
    {"label": "channels-last, freeze to stride 8 + bf16", "cl": True, "freeze": 3, "bf16": True},
    {"label": "channels-last, freeze to stride 16", "cl": True, "freeze": 4},
    {"label": "160 px, freeze to stride 8", "cl": True, "freeze": 3, "res": 160},
]


def images_per_s(res=224, cl=False, bf16=False, freeze=0, batch=32, steps=3, compile_=False,
                 **_) -> float:
    model = timm.create_model("tf_efficientnet_lite0", num_classes=2)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    prefix = torch.nn.Sequential(model.conv_stem, model.bn1, *model.blocks[:freeze]).eval()
    for p in prefix.parameters():
        p.requires_grad = False
    rest = torch.nn.Sequential(*model.blocks[freeze:], model.conv_head, model.bn2,
                               model.global_pool, model.classifier).train()
    optimizer = torch.optim.AdamW(rest.parameters(), lr=1e-3)
    if compile_:
        rest = torch.compile(rest)
    x = torch.randn(batch, 3, res, res)
    x = x.contiguous(memory_format=torch.channels_last) if cl else x
    y = torch.randint(0, 2, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            with torch.no_grad():
                h = prefix(x)
            loss = torch.nn.functional.cross_entropy(rest(h), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    compiling = time.perf_counter()
    step()  # with --compile this first step compiles
    if compile_:
        print(f"  (first step, compiling: {time.perf_counter() - compiling:.0f} s)", flush=True)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="add torch.compile cases (minutes)")
    args = parser.parse_args()
    cases = CASES + ([{"label": "channels-last + torch.compile", "cl": True, "compile_": True},
                      {"label": "freeze to stride 8 + torch.compile", "cl": True, "freeze": 3,
                       "compile_": True}] if args.compile else [])
    torch.set_num_threads(args.threads)
    base = None
    for case in cases:
        rate = images_per_s(steps=args.steps, **case)
        base = base or rate
        print(f"{case['label']:<50} {rate:6.1f} img/s  {rate / base:4.2f}x", flush=True)


if __name__ == "__main__":
    main()

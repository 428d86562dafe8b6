"""Training-step throughput and peak memory: llmlib's GPT against transformers' GPT2LMHeadModel.

    PYTHONPATH=$PWD python benchmarks/bench_gpt.py                 # the default cases, eager fp32 on the CPU
    PYTHONPATH=$PWD python benchmarks/bench_gpt.py --cases small gpt2 --device cuda

One step = forward, cross-entropy loss from the logits (computed the same way for both), backward, AdamW step.
Both models have the same configuration and the same weights (llmlib's is loaded from the HF model with
GPT.from_gpt2). Timings come from the same process, alternating between the two models round by round so
that both see the same machine load; the table reports tokens/s of the fastest step of each (the one least
disturbed by other processes: on a shared machine the noise only ever adds time) and the ratio llmlib /
transformers, and the ratio of the medians for comparison.
Peak memory is measured in a fresh subprocess per model: on the CPU (Linux) the process's peak RSS (VmHWM,
reset through /proc/self/clear_refs just before the first step) minus its RSS then, which holds the weights;
on CUDA torch.cuda.max_memory_allocated minus the memory allocated before the first step.
Not a test: timings on a shared machine are noisy; read the ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from llmlib.gpt import GPT, GPTConfig, count_parameters

# name -> (GPTConfig fields, batch, sequence length)
CASES: dict[str, tuple[dict, int, int]] = {
    "tiny": (dict(vocab_size=128, context_length=128, n_layer=4, n_head=4, n_embd=128), 8, 128),
    "small": (dict(GPTConfig.preset("small").to_dict(), dropout=0.0), 8, 256),
    "gpt2-vocab": (dict(vocab_size=50257, context_length=256, n_layer=4, n_head=4, n_embd=256), 4, 256),
    "gpt2": (GPTConfig.preset("gpt2").to_dict(), 1, 256),
}


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{os.cpu_count()}-core {platform.machine()} CPU ({cpu}), {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}")


def build(case: str, device: torch.device, seed: int = 0):
    """The HF model and llmlib's GPT with identical weights, both in train mode."""
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    transformers.logging.set_verbosity_error()
    fields, _, _ = CASES[case]
    cfg = GPTConfig.from_dict(fields)
    torch.manual_seed(seed)
    hf_cfg = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.context_length, n_embd=cfg.n_embd,
                        n_layer=cfg.n_layer, n_head=cfg.n_head, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
                        attn_pdrop=cfg.dropout, bos_token_id=0, eos_token_id=0, use_cache=False)
    hf = GPT2LMHeadModel(hf_cfg).to(device).train()
    ours = GPT.from_gpt2(hf.state_dict(), cfg).to(device).train()
    return cfg, ours, hf


def make_step(model, idx: torch.Tensor, hf_style: bool):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> float:
        logits = model(idx, use_cache=False).logits if hf_style else model(idx)[0]
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), idx.reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if idx.device.type == "cuda":
            torch.cuda.synchronize()
        return loss.item()

    return step


def saved_activation_bytes(model, idx: torch.Tensor, hf_style: bool) -> int:
    """Bytes of the tensors autograd saves for backward in one forward + loss, parameters excluded
    (exact and device-independent; each storage counted once)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits = model(idx, use_cache=False).logits if hf_style else model(idx)[0]
        F.cross_entropy(logits.reshape(-1, logits.size(-1)), idx.reshape(-1))
    return sum(saved.values())


def time_case(case: str, device: torch.device, rounds: int, steps: int) -> dict:
    cfg, ours, hf = build(case, device)
    _, batch, seq = CASES[case]
    idx = torch.randint(cfg.vocab_size, (batch, seq), device=device)
    runs = {"llmlib": make_step(ours, idx, False), "transformers": make_step(hf, idx, True)}
    first = {name: step() for name, step in runs.items()}  # warm-up; same weights, same data -> same loss
    assert abs(first["llmlib"] - first["transformers"]) < 1e-4, first
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds):
        order = list(runs) if r % 2 == 0 else list(runs)[::-1]
        for name in order:
            for _ in range(steps):
                start = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - start)
    tokens = batch * seq
    act = {"llmlib_act": saved_activation_bytes(ours, idx, False), "transformers_act": saved_activation_bytes(hf, idx, True)}
    return {"case": case, **act, "params": count_parameters(cfg), "batch": batch, "seq": seq,
            **{f"{name}_tok_s": tokens / min(t) for name, t in times.items()},
            **{f"{name}_median_tok_s": tokens / statistics.median(t) for name, t in times.items()},
            **{f"{name}_n": len(t) for name, t in times.items()}}


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def memory_child(case: str, which: str, device: torch.device, steps: int) -> dict:
    """Run in a fresh process: the memory `steps` training steps of one model take beyond its weights."""
    import gc

    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    transformers.logging.set_verbosity_error()
    fields, batch, seq = CASES[case]
    cfg = GPTConfig.from_dict(fields)
    torch.manual_seed(0)
    if which == "llmlib":
        model = GPT(cfg).to(device).train()
    else:
        model = GPT2LMHeadModel(GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.context_length,
                                           n_embd=cfg.n_embd, n_layer=cfg.n_layer, n_head=cfg.n_head,
                                           resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0,
                                           eos_token_id=0, use_cache=False)).to(device).train()
    idx = torch.randint(cfg.vocab_size, (batch, seq), device=device)
    step = make_step(model, idx, which == "transformers")
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        for _ in range(steps):
            step()
        return {"before": before, "peak": torch.cuda.max_memory_allocated(), "how": "max_memory_allocated"}
    try:  # Linux: reset the process's peak RSS (VmHWM) so that it measures the training steps only
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _proc_status_kib("VmRSS") * 1024
        for _ in range(steps):
            step()
        return {"before": before, "peak": _proc_status_kib("VmHWM") * 1024, "how": "VmHWM after reset"}
    except OSError:  # elsewhere: ru_maxrss, a high-water mark that includes building the model
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        for _ in range(steps):
            step()
        return {"before": before, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "how": "ru_maxrss"}


def memory_case(case: str, which: str, device: torch.device, steps: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--memory-child", case, which, "--device", str(device),
                          "--steps", str(steps), "--threads", str(torch.get_num_threads())],
                         capture_output=True, text=True, check=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["tiny", "small", "gpt2-vocab"], choices=sorted(CASES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=10, help="alternations between the two models")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per model per round")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-child", nargs=2, metavar=("CASE", "WHICH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.memory_child:
        print(json.dumps(memory_child(*args.memory_child, device, args.steps)))
        return 0

    print(f"Machine: {machine(device)}; eager fp32 on {device.type}")
    print("One step = forward + cross-entropy + backward + AdamW; tokens/s of the fastest of "
          f"{args.rounds} alternating rounds x {args.steps} steps per model (after a warm-up step)\n")
    header = (f"{'case':11s} {'params':>8s} {'B x T':>9s} | {'llmlib tok/s':>12s} {'HF tok/s':>10s} {'ratio':>6s} {'median':>6s}"
              f" | {'activations llmlib':>18s} {'HF':>9s} {'ratio':>6s}")
    if not args.no_memory:
        header += f" | {'peak mem llmlib':>15s} {'peak mem HF':>12s} {'ratio':>6s}"
    print(header)
    print("-" * len(header))
    for case in args.cases:
        r = time_case(case, device, args.rounds, args.steps)
        line = (f"{case:11s} {r['params'] / 1e6:7.2f}M {r['batch']:>3d} x {r['seq']:<4d} | "
                f"{r['llmlib_tok_s']:12,.0f} {r['transformers_tok_s']:10,.0f} "
                f"{r['llmlib_tok_s'] / r['transformers_tok_s']:5.2f}x {r['llmlib_median_tok_s'] / r['transformers_median_tok_s']:5.2f}x"
                f" | {r['llmlib_act'] / 2**20:14,.0f} MiB "
                f"{r['transformers_act'] / 2**20:5,.0f} MiB {r['llmlib_act'] / r['transformers_act']:5.2f}x")
        if not args.no_memory:
            mem = {w: memory_case(case, w, device, 2) for w in ("llmlib", "transformers")}
            growth = {w: (m["peak"] - m["before"]) / 2**20 for w, m in mem.items()}
            line += f" | {growth['llmlib']:11,.0f} MiB {growth['transformers']:8,.0f} MiB {growth['llmlib'] / growth['transformers']:5.2f}x"
        print(line, flush=True)
    print("\nactivations = bytes of the tensors autograd saves for backward in one step (parameters excluded), "
          "counted with torch.autograd.graph.saved_tensors_hooks.")
    if not args.no_memory:
        what = "max_memory_allocated" if device.type == "cuda" else "peak RSS (VmHWM, reset before the first step)"
        print(f"peak mem = growth of {what} during 2 training steps over the memory held before the first step "
              "(the model's weights): gradients, AdamW state and activations; measured in a fresh process per model.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/work/venv/bin/python
"""PyTorch's side of bench/hf_bench.c: the same measurement with transformers'
model of the same directory (BertForMaskedLM / RobertaForMaskedLM), one per run.

    hf_bench.py DIR load|sample|train [--threads N] [--len 128] [--steps 32] [--batch 8]

sample: a 1 x LEN canvas of [MASK], STEPS steps of ancestral masked-diffusion
sampling as a user would write it with transformers (a full forward pass
per step, the positions the step reveals drawn from the softmax of their
logits; the log-linear schedule reveals about LEN/STEPS positions a step).
train: one warm-up and one timed AdamW step of the masked-diffusion loss on
a random batch B x LEN (a random masking rate per sequence). Prints one JSON
line like hf_bench.c (peak RSS includes the Python interpreter and torch).
"""
import argparse
import json
import resource
import time

import torch
from transformers import AutoModelForMaskedLM, BertForMaskedLM, RobertaForMaskedLM  # noqa: F401


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("what", choices=["load", "sample", "train"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    BertForMaskedLM, RobertaForMaskedLM  # imported before the clock starts
    w0, c0 = time.perf_counter(), time.process_time()
    model = AutoModelForMaskedLM.from_pretrained(a.dir)
    load = time.perf_counter() - w0
    wall, cpu, tokens = load, time.process_time() - c0, 0
    V = model.config.vocab_size
    mask = 103 if V == 30522 else 50264 if V == 50265 else V - 1
    if a.what == "sample":
        model.eval()
        T = a.len
        x = torch.full((1, T), mask, dtype=torch.long)
        order = torch.randperm(T)
        w0, c0 = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            done = 0
            for s in range(a.steps):
                upto = round(T * (s + 1) / a.steps)
                rows = order[done:upto]
                done = upto
                if len(rows) == 0:
                    continue
                logits = model(input_ids=x).logits[0, rows]
                logits[:, mask] = -float("inf")
                x[0, rows] = torch.multinomial(torch.softmax(logits.double(), -1), 1)[:, 0]
        wall, cpu, tokens = time.perf_counter() - w0, time.process_time() - c0, T
    elif a.what == "train":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.1)
        ids = torch.randint(0, V, (a.batch, a.len))
        ids[ids == mask] = 0

        def step():
            t = torch.rand(a.batch, 1).clamp_min(1e-3)
            m = torch.rand(a.batch, a.len) < t
            inp = ids.masked_fill(m, mask)
            logits = model(input_ids=inp).logits
            ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids, reduction="none")
            loss = ((ce * m) / t).sum() / (a.batch * a.len)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

        step()
        w0, c0 = time.perf_counter(), time.process_time()
        step()
        wall, cpu, tokens = time.perf_counter() - w0, time.process_time() - c0, a.batch * a.len
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"impl": "pytorch", "what": a.what,
                      "params": sum(p.numel() for p in model.parameters()),
                      "threads": a.threads, "load_s": round(load, 3), "wall_s": round(wall, 3),
                      "cpu_s": round(cpu, 3), "tokens_per_s": round(tokens / wall, 1) if tokens else 0,
                      "peak_rss_mb": round(rss)}))


if __name__ == "__main__":
    main()

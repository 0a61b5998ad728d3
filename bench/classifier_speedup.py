"""Speed-up of the summation classifier over the attention classifier (docs/paper.md section 2).

    python -m bench.classifier_speedup                 # 256 and 512 tokens, 5 timed runs each
    python -m bench.classifier_speedup --lengths 256 512 1024 --repeats 9

The paper's sizes: vocabulary 10,000, d 256, batch 64, binary output (one sigmoid unit);
attention with 4 heads of key size 256. A training step is forward, binary
cross-entropy, backward, gradient clipping by value 1.0 and Adam (lr 1e-4), as
train_cls.py does; inference is the forward pass alone, without the graph. The paper
reports summation "up to ~18x faster" at 512 tokens.
"""
import argparse
import json

import numpy as np

from bench.common import RESULTS, machine_line, median, table, time_calls
from minisum import no_grad, ops
from minisum.backend import seed
from minisum.models import AttentionClassifier, SummationClassifier
from minisum.optim import AdamW, clip_grad_value

MODELS = {"summation": SummationClassifier, "attention": AttentionClassifier}


def step_functions(kind, length, batch, vocab, d_model):
    """(training step, inference) closures for one classifier on one random batch."""
    seed(0)
    model = MODELS[kind](vocab_size=vocab, seq_len=length, d_model=d_model, n_classes=2)
    optimizer = AdamW(model.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, vocab, (batch, length))
    labels = rng.integers(0, 2, (batch, 1)).astype(np.float32)

    def train_step():
        loss = ops.binary_cross_entropy_with_logits(model(ids), labels)
        optimizer.zero_grad()
        loss.backward()
        clip_grad_value(model.parameters(), 1.0)
        optimizer.step()

    def inference():
        with no_grad():
            model(ids)
    return train_step, inference


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    print(machine_line())
    rows, records = [], []
    for length in args.lengths:
        fns = {kind: step_functions(kind, length, args.batch, args.vocab, args.d_model) for kind in MODELS}
        for phase, index in (("training step", 0), ("inference", 1)):
            for kind in MODELS:
                fns[kind][index]()  # warm-up
            times = {kind: [] for kind in MODELS}
            for _ in range(args.repeats):  # alternate the two models: both see the same machine load
                for kind in MODELS:
                    times[kind] += time_calls(fns[kind][index], 1, warmup=0)
            s, a = median(times["summation"]), median(times["attention"])
            rows.append([f"{length}", phase, f"{1e3 * s:,.1f}", f"{1e3 * a:,.1f}", f"{a / s:.1f}"])
            records.append(dict(length=length, phase=phase, summation_ms=1e3 * s, attention_ms=1e3 * a,
                                speedup=a / s))
            print(f"  {length} {phase}: summation {[round(1e3 * x, 1) for x in times['summation']]} ms, "
                  f"attention {[round(1e3 * x, 1) for x in times['attention']]} ms", flush=True)

    print(f"\nclassifiers, batch {args.batch}, vocabulary {args.vocab:,}, d {args.d_model}; median of {args.repeats}")
    print(table(["tokens", "phase", "summation ms", "attention ms", "speed-up"], rows))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "classifier_speedup.json").write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()

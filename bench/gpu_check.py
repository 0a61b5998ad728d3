"""Check minisum on the GPU in one command (a few minutes at most):

    python bench/gpu_check.py          (or python -m bench.gpu_check)

1. every op, forward and backward, in CuPy against NumPy (float32 tolerances);
2. every model: loss, every parameter gradient and one AdamW update, CuPy against NumPy;
   greedy generation with the caches; a checkpoint written from the GPU and read on the CPU;
3. one training step timed at the paper's language-model size (V 50,257, d 512, 4 layers,
   8 heads, batch 8, context 256) for the three variants;
4. train_lm.py on the GPU and on the CPU with tiny sizes on the committed WikiText
   fixture: both runs must give the same losses (1e-2), and the GPU checkpoint must generate.

Its whole purpose is the GPU, so without CuPy or a CUDA device it FAILS (exit status 1)
instead of skipping. `--target cpu` runs the same comparisons NumPy against NumPy: a
check of this script itself on a machine without a GPU, not of the GPU.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as `python bench/gpu_check.py`: the repository root is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, median, time_calls
from minisum import Tensor, backend, ops
from minisum.checkpoint import load_checkpoint, save_checkpoint
from minisum.errors import UserError
from minisum.models import (MIXERS, AttentionClassifier, AttentionFusionRegressor, LanguageModel,
                            SummationClassifier, SummationFusionRegressor)
from minisum.optim import AdamW, clip_grad_value
from minisum.run import runtime

RTOL = 1e-4  # relative L2 error allowed between devices (float32, different summation orders)
rng = np.random.default_rng(0)


def floats(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape).astype(np.float32)


def on_device(a):
    """A host constant (mask, index) on the device the current run uses."""
    return backend.device_module().asarray(a)


MASK = rng.random((3, 4)) > 0.5
INDEX = np.array([0, 2, 0, 1])  # a repeated row: its gradient must add up
IDS = np.array([[1, 2, 1], [9, 1, 0]])
TARGETS = np.array([[1, 0, 3, 6, 6], [2, 2, 0, 5, 1]])  # 0 is ignored below

# (name, function of tensors, host inputs: float arrays become tensors that want gradients)
OP_CASES = [
    ("add (broadcast)", ops.add, [floats(3, 4, 5), floats(4, 1)]),
    ("sub", ops.sub, [floats(3, 4), floats(3, 4)]),
    ("mul (broadcast)", ops.mul, [floats(2, 3, 4), floats(4)]),
    ("div", ops.div, [floats(3, 4), positive(3, 4)]),
    ("neg", ops.neg, [floats(3, 4)]),
    ("pow", lambda x: ops.pow(x, 3), [floats(3, 4)]),
    ("exp", ops.exp, [floats(3, 4)]),
    ("log", ops.log, [positive(3, 4)]),
    ("tanh", ops.tanh, [floats(3, 4)]),
    ("sigmoid", ops.sigmoid, [floats(3, 4)]),
    ("relu", ops.relu, [floats(3, 4)]),
    ("sum over an axis", lambda x: ops.sum(x, axis=1), [floats(3, 4, 5)]),
    ("sum of all", ops.sum, [floats(3, 4, 5)]),
    ("mean, keepdims", lambda x: ops.mean(x, axis=(0, 2), keepdims=True), [floats(3, 4, 5)]),
    ("max", lambda x: ops.max(x, axis=-1), [floats(3, 4, 5)]),
    ("reshape", lambda x: ops.reshape(x, 6, 10), [floats(3, 4, 5)]),
    ("transpose", lambda x: ops.transpose(x, 2, 0, 1), [floats(3, 4, 5)]),
    ("getitem, slice", lambda x: ops.getitem(x, (slice(None), 1)), [floats(3, 4, 5)]),
    ("getitem, repeated rows", lambda x: ops.getitem(x, on_device(INDEX)), [floats(3, 4)]),
    ("concat", lambda a, b: ops.concat([a, b], axis=1), [floats(2, 3), floats(2, 4)]),
    ("matmul (batched, broadcast)", ops.matmul, [floats(2, 3, 4, 5), floats(5, 6)]),
    ("linear", ops.linear, [floats(2, 3, 8), floats(5, 8), floats(5)]),
    ("embedding (repeated ids)", lambda w: ops.embedding(w, on_device(IDS)), [floats(10, 4)]),
    ("cumsum", lambda x: ops.cumsum(x, axis=1), [floats(2, 7, 3)]),
    ("softmax", ops.softmax, [floats(3, 6)]),
    ("log_softmax", ops.log_softmax, [floats(3, 6)]),
    ("layer_norm", ops.layer_norm, [floats(2, 3, 8), floats(8), floats(8)]),
    ("attention", lambda q, k, v: ops.attention(q, k, v, 2), [floats(2, 5, 8), floats(2, 5, 8), floats(2, 5, 8)]),
    ("attention, causal", lambda q, k, v: ops.attention(q, k, v, 2, causal=True),
     [floats(2, 5, 8), floats(2, 5, 8), floats(2, 5, 8)]),
    ("attention, causal, cached keys", lambda q, k, v: ops.attention(q, k, v, 2, causal=True),
     [floats(2, 2, 8), floats(2, 5, 8), floats(2, 5, 8)]),
    ("where", lambda a, b: ops.where(on_device(MASK), a, b), [floats(3, 4), floats(4)]),
    ("masked_fill", lambda x: ops.masked_fill(x, on_device(MASK), -1e9), [floats(3, 4)]),
    ("cross_entropy, ignore_index", lambda z: ops.cross_entropy(z, on_device(TARGETS), ignore_index=0),
     [floats(2, 5, 7)]),
    ("binary_cross_entropy_with_logits",
     lambda z: ops.binary_cross_entropy_with_logits(z, on_device(np.array([[1.0], [0.0], [1.0]], np.float32))),
     [floats(3, 1)]),
    ("mse_loss", ops.mse_loss, [floats(4, 3), floats(4, 3)]),
]


def relative_error(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-6))


def run_op(device, fn, host_inputs):
    """Forward and backward of fn on `device`: the output and the inputs' gradients, on the host."""
    backend.set_device(device)
    tensors = [Tensor(on_device(a), requires_grad=True) for a in host_inputs]
    out = fn(*tensors)
    out.backward(on_device(np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)))
    return [out.data] + [t.grad for t in tensors]


def check_ops(target, report):
    for name, fn, inputs in OP_CASES:
        want, got = run_op("cpu", fn, inputs), run_op(target, fn, inputs)
        labels = ["output"] + [f"grad {i}" for i in range(len(inputs))]
        errors = {label: relative_error(backend.to_numpy(g), w)
                  for label, g, w in zip(labels, got, want) if w is not None}
        report(f"op {name}", max(errors.values()) <= RTOL, f"largest relative error {max(errors.values()):.1e}")
    check_dropout(target, report)


def check_dropout(target, report):
    """Masks are random, so compare properties: kept values scaled by 1/(1-p), the gradient
    through the same mask, about p of the values dropped."""
    backend.set_device(target)
    x = Tensor(on_device(positive(200, 100)), requires_grad=True)
    y = ops.dropout(x, 0.25, training=True)
    y.backward(on_device(np.ones(x.shape, np.float32)))
    ratio, grad = backend.to_numpy(y.data / x.data), backend.to_numpy(x.grad)
    kept = ratio > 0
    ok = (np.allclose(ratio[kept], 1 / 0.75, rtol=1e-6) and np.allclose(grad, np.where(kept, 1 / 0.75, 0), rtol=1e-6)
          and abs(1 - kept.mean() - 0.25) < 0.01)
    report("op dropout", ok, f"dropped {1 - kept.mean():.3f} of the values (p 0.25)")


def lm_loss(model):
    ids = on_device(np.random.default_rng(2).integers(0, 64, (2, 13)))
    return ops.cross_entropy(model(ids[:, :-1]), ids[:, 1:], ignore_index=0)


def classifier_loss(model, classes):
    gen = np.random.default_rng(3)
    logits = model(on_device(gen.integers(0, 50, (4, 12))))
    if classes == 2:
        return ops.binary_cross_entropy_with_logits(logits, on_device(gen.integers(0, 2, (4, 1)).astype(np.float32)))
    return ops.cross_entropy(logits, on_device(gen.integers(0, classes, (4,))))


def regressor_loss(model):
    gen = np.random.default_rng(4)
    out = model(on_device(gen.integers(0, 50, (4, 12))), on_device(gen.random((4, 4)).astype(np.float32)))
    return ops.mse_loss(out, on_device(gen.random((4, 1)).astype(np.float32)))


# (name, constructor, loss); small sizes: the ops are the same at any size.
MODEL_CASES = [(f"LanguageModel {mixer}", lambda mixer=mixer: LanguageModel(64, 32, 2, 4, 16, mixer), lm_loss)
               for mixer in MIXERS] + [
    ("SummationClassifier, binary", lambda: SummationClassifier(50, 12, 16, 2), lambda m: classifier_loss(m, 2)),
    ("AttentionClassifier, 4 classes", lambda: AttentionClassifier(50, 12, 16, 4, n_heads=2, head_dim=8),
     lambda m: classifier_loss(m, 4)),
    ("SummationFusionRegressor", lambda: SummationFusionRegressor(50, 12, 16), regressor_loss),
    ("AttentionFusionRegressor", lambda: AttentionFusionRegressor(50, 12, 16, n_heads=2, head_dim=8), regressor_loss),
]


def run_model(device, make, loss_fn):
    """Loss, gradients and parameters after one clipped AdamW step (eval mode: dropout off)."""
    backend.set_device(device)
    backend.seed(0)
    model = make().eval()
    loss = loss_fn(model)
    loss.backward()
    grads = {name: backend.to_numpy(p.grad) for name, p in model.named_parameters()}  # copies: clipping is in place
    clip_grad_value(model.parameters(), 1.0)
    # A large eps: Adam's first step moves every weight by about lr * sign(g), so a gradient
    # that is rounding noise around 0 could flip sign between devices and differ by 2 lr.
    AdamW(model.parameters(), lr=1e-2, weight_decay=0.01, eps=1e-3).step()
    return float(loss.item()), grads, model.state_dict()


def check_models(target, report):
    for name, make, loss_fn in MODEL_CASES:
        want, got = run_model("cpu", make, loss_fn), run_model(target, make, loss_fn)
        loss_error = relative_error(got[0], want[0])
        grad_error = max(relative_error(got[1][k], want[1][k]) for k in want[1])
        param_error = max(relative_error(got[2][k], want[2][k]) for k in want[2])
        report(f"model {name}", max(loss_error, grad_error, param_error) <= RTOL,
               f"loss {loss_error:.1e}, worst gradient {grad_error:.1e}, after AdamW {param_error:.1e}")


def check_generation_and_checkpoint(target, report):
    outputs = {}
    for device in ("cpu", target):
        backend.set_device(device)
        backend.seed(0)
        model = LanguageModel(64, 32, 2, 4, 40, "hybrid")
        outputs[device] = model.generate([5, 9, 2], 20, temperature=0)
    report("generation (greedy, caches)", outputs["cpu"] == outputs[target], f"{len(outputs[target])} tokens")

    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/model.npz"
        backend.set_device(target)
        backend.seed(1)
        saved = LanguageModel(64, 32, 2, 4, 16, "summation")
        save_checkpoint(path, saved, AdamW(saved.parameters()), config={"device": target})
        backend.set_device("cpu")
        backend.seed(2)
        loaded = LanguageModel(64, 32, 2, 4, 16, "summation")
        load_checkpoint(path, loaded)
        got = loaded.state_dict()
        same = all(np.array_equal(v, got[k]) for k, v in saved.state_dict().items())
        report("checkpoint written on the device, read on the CPU", same, "")


def time_paper_step(target, report):
    """One training step at the paper's LM size, median of 5 after 2 warm-up steps."""
    backend.set_device(target)
    vocab, batch, context = 50257, 8, 256
    ids = on_device(np.random.default_rng(5).integers(0, vocab, (batch, context + 1)))
    for mixer in MIXERS:
        backend.seed(0)
        model = LanguageModel(vocab, 512, 4, 8, context, mixer)
        optimizer = AdamW(model.parameters(), lr=1e-4)

        def step():
            loss = ops.cross_entropy(model(ids[:, :-1]), ids[:, 1:])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds = median(time_calls(step, 5, warmup=2, sync=runtime.synchronize))
        report(f"paper-size training step, {mixer}", True,
               f"{1e3 * seconds:.1f} ms, {batch * context / seconds:,.0f} tokens/s")


TINY_LM = ["--data-dir", "tests/fixtures/lm", "--tokenizer", "bpe:300", "--d-model", "32", "--layers", "2",
           "--heads", "2", "--context", "32", "--batch-size", "4", "--train-samples", "16", "--valid-samples", "8",
           "--lr", "1e-2", "--epochs", "2"]


def check_train_lm(target, report):
    """train_lm.py on the target and on the CPU with the same seed: the same losses."""
    env = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    with tempfile.TemporaryDirectory() as folder:
        losses = {}
        for device in ("cpu", target):
            out_dir = f"{folder}/{device}"
            done = subprocess.run([sys.executable, "train_lm.py", *TINY_LM, "--device", device, "--out-dir", out_dir,
                                   "--overwrite"],  # --target cpu runs twice in one folder
                                  cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, **env})
            if done.returncode != 0:
                report(f"train_lm.py --device {device}", False, done.stderr.strip()[-1500:])
                return
            models = json.loads(Path(out_dir, "results.json").read_text())["models"]
            losses[device] = [epoch[key] for model in models.values() for epoch in model["epochs"]
                              for key in ("train_loss", "valid_loss")]
        error = relative_error(losses[target], losses["cpu"])
        # Looser than RTOL: eight Adam steps amplify rounding differences; the ops and models
        # were compared exactly above, this is the end-to-end run.
        report(f"train_lm.py --device {target} (2 epochs, 3 models) against the CPU", error <= 1e-2,
               f"losses differ by {error:.1e} relative")
        done = subprocess.run([sys.executable, "train_lm.py", "--generate", "The", "--device", target, "--out-dir",
                               f"{folder}/{target}", "--max-new-tokens", "10"],
                              cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, **env})
        report(f"train_lm.py --generate --device {target}", done.returncode == 0,
               (done.stdout or done.stderr).strip()[-300:].replace("\n", " | "))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=["gpu", "cpu"], default="gpu",
                        help="gpu (default); cpu compares NumPy with itself, to test this script without a GPU")
    args = parser.parse_args()
    if args.target == "gpu":
        try:
            backend.set_device("gpu")
        except UserError as err:
            print(f"GPU CHECK FAILED: {err}\n(this check needs CuPy and a CUDA GPU; --target cpu only tests "
                  "the script itself)", file=sys.stderr)
            sys.exit(1)
        info = runtime.hardware_info()
        print(f"GPU: {info['gpu']}, CuPy {info['cupy']}")

    failures = []

    def report(name, ok, detail):
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
        if not ok:
            failures.append(name)

    for part in (check_ops, check_models, check_generation_and_checkpoint, time_paper_step, check_train_lm):
        try:
            part(args.target, report)
        except Exception:  # one broken part must not hide the others
            report(part.__name__, False, "raised\n" + traceback.format_exc())
    if failures:
        print(f"\nGPU CHECK FAILED: {len(failures)} check(s) failed: {', '.join(failures)}", file=sys.stderr)
        sys.exit(1)
    print(f"\nall checks passed on {args.target}")


if __name__ == "__main__":
    main()

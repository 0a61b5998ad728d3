"""python -m minisum.torch_convert: a trained checkpoint to PyTorch and back (skipped without torch)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import minisum  # noqa: E402
from conftest import on_device  # noqa: E402
from minisum.checkpoint import read_checkpoint, save_checkpoint  # noqa: E402
from minisum.errors import UserError  # noqa: E402
from minisum.models import LanguageModel  # noqa: E402
from minisum.optim import AdamW  # noqa: E402
from minisum.torch_convert import main  # noqa: E402
from minisum.torch_reference import TorchLanguageModel  # noqa: E402
from minisum.training import lm_train_step  # noqa: E402

pytestmark = pytest.mark.needs_engine  # trains a model: code of every task

PAD = 0


def batch(seed):
    ids = np.random.default_rng(seed).integers(1, 40, (4, 11))
    ids[2, 7:] = PAD  # a padded sample
    return ids[:, :-1], ids[:, 1:]


@pytest.fixture
def trained_checkpoint(tmp_path):
    minisum.seed(0)
    model = LanguageModel(vocab_size=40, d_model=16, n_layers=2, n_heads=2, max_len=12, mixer="hybrid")
    optimizer = AdamW(model.parameters(), lr=1e-2)
    for seed in range(3):
        lm_train_step(model, optimizer, *map(on_device, batch(seed)), PAD)
    path = tmp_path / "hybrid.npz"
    save_checkpoint(path, model, optimizer, {"model": model.config, "run": {"epochs": 1}}, step=optimizer.step_count)
    return path, model


def test_round_trip_is_exact_and_pytorch_gives_the_same_loss(trained_checkpoint, tmp_path):
    npz_path, model = trained_checkpoint
    main([str(npz_path), str(tmp_path / "hybrid.pt")])
    saved = torch.load(tmp_path / "hybrid.pt")
    reference = TorchLanguageModel(**saved["config"]["model"])
    reference.load_state_dict(saved["model"], strict=True)

    inputs, targets = batch(seed=7)
    ours, _ = model.loss(on_device(inputs), on_device(targets), PAD)
    with torch.no_grad():
        logits = reference(torch.from_numpy(inputs))
        theirs = torch.nn.functional.cross_entropy(logits.reshape(-1, 40), torch.from_numpy(targets).reshape(-1),
                                                   ignore_index=PAD)
    assert abs(ours.item() - theirs.item()) <= 1e-6

    main([str(tmp_path / "hybrid.pt"), str(tmp_path / "back.npz")])
    before, after = read_checkpoint(npz_path), read_checkpoint(tmp_path / "back.npz")
    assert sorted(after["model"]) == sorted(before["model"])
    for name, array in before["model"].items():
        assert after["model"][name].dtype == array.dtype
        assert np.abs(after["model"][name] - array).max() == 0, name
    assert (after["config"], after["step"]) == (before["config"], before["step"])

    # saved from the DDP wrapper rather than the model inside: names prefixed "module."
    torch.save(dict(saved, model={f"module.{k}": v for k, v in saved["model"].items()}), tmp_path / "ddp.pt")
    main([str(tmp_path / "ddp.pt"), str(tmp_path / "ddp.npz")])
    from_ddp = read_checkpoint(tmp_path / "ddp.npz")["model"]
    assert all(np.array_equal(from_ddp[name], array) for name, array in before["model"].items())


def test_bad_input_is_one_line_and_nothing_is_overwritten(trained_checkpoint, tmp_path):
    npz_path, _ = trained_checkpoint
    existing = tmp_path / "existing.pt"
    existing.write_bytes(b"the user's file")
    not_a_model = tmp_path / "classifier.npz"
    save_checkpoint(not_a_model, LanguageModel(vocab_size=5, d_model=4, n_layers=1, n_heads=1, max_len=3),
                    config={"run": {}})
    for args, message in [([npz_path, existing], "exists: choose another name"),
                          ([not_a_model, tmp_path / "x.pt"], "is not a language-model checkpoint"),
                          ([existing, tmp_path / "x.npz"], "unreadable"),
                          ([npz_path, tmp_path / "x.npz"], "name it .pt")]:
        with pytest.raises(UserError, match=message) as error:
            main([str(a) for a in args])
        assert "\n" not in str(error.value)  # run_main prints it as one line
    assert existing.read_bytes() == b"the user's file"
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "x.npz").exists()

"""One training step of a language model, the loop every training script repeats.

forward -> loss -> zero the old gradients -> backward -> optimizer step.
"""
from minisum import ops


def lm_train_step(model, optimizer, inputs, targets, pad_id):
    """One step of next-token training on a batch; returns the loss (a float) and the logits.

    inputs, targets: (B, T) integer arrays, targets = the inputs shifted by one; positions
    whose target is `pad_id` do not count in the loss (cross-entropy's ignore_index).
    """
    # BEGIN TASK 5.2 train a language model: one training step
    logits = model(inputs)  # (B, T, V)
    loss = ops.cross_entropy(logits, targets, ignore_index=pad_id)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item(), logits
    # END TASK 5.2

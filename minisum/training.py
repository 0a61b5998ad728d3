"""One training step of a language model: zero the old gradients -> forward and loss ->
backward -> optimizer step. The old gradients go first: at the paper's vocabulary they are
230 MB that the forward pass need not share memory with. Under mpiexec the ranks' gradients
are summed before the optimizer's step, by a DistributedOptimizer passed in as `optimizer`
(minisum/distributed.py).

train_cls.py and train_mm.py take their steps in the same order (their `train_step`), with
what their models add: Keras' gradient clipping, a mean-squared error, and the ranks'
gradients summed explicitly.
"""


def lm_train_step(model, optimizer, inputs, targets, pad_id):
    """One step of next-token training on a batch.

    inputs, targets: (B, T) integer arrays, targets = the inputs shifted by one; positions
    whose target is `pad_id` do not count in the loss (cross-entropy's ignore_index).
    Returns the loss (a 0-d Tensor) and the number of targets the model's argmax got right
    (a 0-d integer array); both stay on the device, so a step never waits for the GPU.
    """
    # BEGIN TASK 5.2 train a language model: one training step
    optimizer.zero_grad()
    loss, hits = model.loss(inputs, targets, pad_id)
    loss.backward(free_graph=True)  # the activations go as backward passes them
    optimizer.step()
    return loss, hits
    # END TASK 5.2

"""What the training scripts and the command-line tools share; the engine (autograd, ops,
nn, models) never imports it.

    runtime      run_main (one line and an exit status for every way a run ends short), the device,
                 batches to the device, progress bars, Timer, results files
    arguments    the command-line argument types: finite, in range, checked before anything runs
    folder       a run folder belongs to its run: --resume, --overwrite, run.json
    progress     what a checkpoint holds beside the weights, so that --resume continues bit-identically
    signals      SIGINT / SIGTERM stop at the next batch boundary
    meter        loss and accuracy summed on the device; divergence
    memory       will the run fit? the largest activation, estimated before anything is loaded
"""

"""The course in one table: points per task, what a task's blocks may not use, and the files
that answer a task outside its blocks (left out of a handout while that task is stubbed).

Task ids and titles live in the markers in the code (tools/task_markers.py); everything a
teacher may want to change about grading lives here.
"""

# Points per task; they add up to 100. A task without points here cannot be graded.
POINTS = {
    "1.1": 8, "1.2": 5, "1.3": 8, "1.4": 5, "1.5": 6, "1.6": 8,
    "2.1": 10, "2.2": 8,
    "3.1": 6, "3.2": 8,
    "4.1": 14,
    "5.1": 7, "5.2": 7,
}

# Names no block may use, as a variable or an attribute: implementations of the tasks made by
# someone else (PyTorch, the composite twins, finite differences), ways out of the block
# (modules, eval, files, frames) and ways to change code outside it.
FORBIDDEN_NAMES = {
    "torch", "composite", "gradcheck", "numerical_gradient", "GradcheckError",
    "os", "sys", "subprocess", "builtins", "importlib", "ctypes", "ctypeslib", "atexit", "signal",
    "inspect", "threading", "multiprocessing", "socket", "shutil", "pathlib", "tempfile",
    "pytest", "conftest", "tools",
    "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "globals", "locals", "vars",
    "breakpoint", "input", "exit", "quit", "help", "memoryview",
    "modules", "environ", "system", "popen", "f_globals", "f_locals", "f_back", "f_builtins",
    "gi_frame", "cr_frame", "tb_frame", "co_code",
    "load", "loadtxt", "genfromtxt", "fromfile", "fromregex", "memmap", "tofile", "save", "savez",
    "savez_compressed", "savetxt", "DataSource", "open_memmap",
}
FORBIDDEN_SUFFIXES = ("_composite", "_reference")  # the composite twins (cumsum_composite, ...), torch_reference

# The ops a task implements: its blocks may not hand the work to them (autograd inside a
# backward, or the op calling itself).
OWN_OPS = {
    "1.3": {"Add", "Sub", "Mul", "Div", "Neg", "Pow", "add", "sub", "mul", "div", "neg", "pow"},
    "1.4": {"Exp", "Log", "Tanh", "Sigmoid", "Relu", "exp", "log", "tanh", "sigmoid", "relu"},
    "1.5": {"Sum", "Mean", "Max"},
    "1.6": {"MatMul", "Linear", "matmul", "linear"},
    "2.1": {"Softmax", "LogSoftmax", "CrossEntropy", "softmax", "log_softmax", "cross_entropy"},
    "2.2": {"LayerNorm", "layer_norm"},
    "3.1": {"Embedding", "embedding"},
    "3.2": {"CumSum"},
    "4.1": {"Attention", "attention"},
    "5.2": {"lm_train_step"},
}

# Files (or folders, ending in /) that answer tasks outside the blocks, and files that need them.
# A handout leaves each out while any of its tasks is stubbed.
ANSWERS_OUTSIDE_BLOCKS = {
    "minisum/ops/composite.py": ("2.1", "2.2", "3.2", "4.1"),  # the composite twins
    "tests/test_composite_twins.py": ("2.1", "2.2", "3.2", "4.1"),  # imports the twins
    "tests/test_linear_cross_entropy.py": ("2.1", "2.2", "3.2", "4.1"),  # imports the twins too
    "docs/derivations.md": ("2.1", "2.2", "3.1", "3.2", "4.1"),  # the backwards derived, down to the loops
    "tests/test_derivations_doc.py": ("2.1", "2.2", "3.1", "3.2", "4.1"),  # reads it
    "train_cls.py": ("5.2",),  # training loops: 5.2 written out
    "train_mm.py": ("5.2",),
    "tests/test_train_cls.py": ("5.2",),  # run those scripts
    "tests/test_train_mm.py": ("5.2",),
    "tests/test_bad_input.py": ("5.2",),  # runs the three scripts
    "tests/test_resume.py": ("5.2",),
    "tests/test_models.py": ("5.2",),  # fit(): a training loop
    "tests/test_device.py": ("5.2",),  # train_step(): one too
    "tests/test_keras_parity.py": ("5.2",),  # three training steps against Keras
    "bench/": ("5.2",),  # timed training steps
    "tests/test_optim.py": ("5.1",),  # adamw_reference: AdamW written out
}


# The course tools' own tests: a handout has no use for them (they build handouts from a git checkout).
TEACHER_ONLY = ("tests/test_handout.py", "tests/test_grading_redteam.py")


def assignment(task_id):
    """The assignment a task belongs to: "3.2" -> 3."""
    return int(task_id.split(".")[0])

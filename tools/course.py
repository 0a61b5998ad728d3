"""The course in one table: points per task, what a task's blocks may use, and the files
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

# What a block may use (tools/rules.py): an allow-list. Besides its function's parameters and
# locals, `self` and the names its file defines or imports, a block may name these builtins ...
BLOCK_BUILTINS = {
    "abs", "all", "any", "bool", "dict", "divmod", "enumerate", "filter", "float", "frozenset", "id", "int",
    "isinstance", "iter", "len", "list", "map", "max", "min", "next", "pow", "print", "range", "reversed",
    "round", "set", "slice", "sorted", "str", "sum", "tuple", "zip",
    "Exception", "ArithmeticError", "IndexError", "KeyError", "NotImplementedError", "RuntimeError",
    "StopIteration", "TypeError", "ValueError", "ZeroDivisionError",
}
# ... and use these attributes, on anything, one name at a time: the array module's functions,
# constants and dtypes (`xp.matmul`; no submodule, so no `xp.testing`, `xp.ma`, `xp.lib`, `xp.linalg`),
ARRAY_FUNCTIONS = {
    "abs", "absolute", "add", "all", "allclose", "amax", "amin", "any", "arange", "argmax", "argmin",
    "argpartition", "argsort", "array", "array_equal", "asarray", "ascontiguousarray", "atleast_1d", "atleast_2d",
    "atleast_3d", "bincount", "broadcast_arrays", "broadcast_shapes", "broadcast_to", "ceil", "clip",
    "concatenate", "copy", "copyto", "cos", "cosh", "count_nonzero", "cumprod", "cumsum", "diag", "diagonal",
    "diff", "divide", "dot", "einsum", "empty", "empty_like", "equal", "exp", "expand_dims", "expm1", "eye",
    "flatnonzero", "flip", "floor", "floor_divide", "full", "full_like", "greater", "greater_equal", "hstack",
    "identity", "indices", "inner", "isclose", "isfinite", "isin", "isinf", "isnan", "less", "less_equal",
    "linspace", "log", "log1p", "log2", "log10", "logaddexp", "logical_and", "logical_not", "logical_or",
    "matmul", "max", "maximum", "mean", "min", "minimum", "mod", "moveaxis", "multiply", "nan_to_num",
    "negative", "nonzero", "not_equal", "ones", "ones_like", "outer", "power", "prod", "put_along_axis",
    "ravel", "reciprocal", "remainder", "repeat", "reshape", "result_type", "roll", "rollaxis", "sign",
    "sin", "sinh", "split", "sqrt", "square", "squeeze", "stack", "std", "subtract", "sum", "swapaxes",
    "take", "take_along_axis", "tanh", "tensordot", "tile", "transpose", "tril", "triu", "true_divide",
    "unravel_index", "var", "vstack", "where", "zeros", "zeros_like",
    "e", "inf", "nan", "newaxis", "pi", "finfo", "iinfo", "promote_types", "dtype",
    "bool_", "float16", "float32", "float64", "int8", "int16", "int32", "int64", "intp", "uint8",
    "at", "reduce", "accumulate",  # a ufunc's methods: np.add.at (scatter-add)
    "sqrt", "isqrt", "log", "exp", "prod", "fsum",  # the math module's, for scalars
}
# an array's methods and attributes (`x.reshape`, `x.T`, `x.dtype.type`),
ARRAY_ATTRIBUTES = {
    "T", "all", "any", "argmax", "argmin", "argsort", "astype", "clip", "copy", "cumprod", "cumsum",
    "diagonal", "dot", "dtype", "fill", "flat", "flatten", "imag", "item", "itemsize", "max", "mean", "min",
    "nbytes", "ndim", "nonzero", "prod", "put", "ravel", "real", "repeat", "reshape", "round", "shape",
    "size", "sort", "squeeze", "std", "sum", "swapaxes", "take", "tolist", "trace", "transpose", "var",
    "kind", "type",  # a dtype's: x.dtype.type(0.5) is a scalar of x's dtype
    "eps", "tiny",  # np.finfo(x.dtype)'s
}
# the methods of lists, sets and dicts, and the engine's tensors, ops, models and optimizers.
CONTAINER_METHODS = {"append", "extend", "insert", "pop", "remove", "index", "count", "reverse", "add",
                     "discard", "clear", "update", "get", "items", "keys", "values", "setdefault"}
ENGINE_ATTRIBUTES = {"data", "grad", "requires_grad", "creator", "inputs", "needs_grad", "backward",
                     "zero_grad", "step", "loss", "parameters", "params", "detach", "numpy"}

# Names no block may use even where its file has them: implementations of the tasks made by
# someone else (PyTorch, the composite twins, finite differences), ways out of the block
# (modules, eval, files, frames) and ways to change code outside it.
FORBIDDEN_NAMES = {
    "torch", "composite", "gradcheck", "numerical_gradient", "GradcheckError",
    "os", "sys", "subprocess", "builtins", "importlib", "ctypes", "ctypeslib", "atexit", "signal",
    "inspect", "threading", "multiprocessing", "socket", "shutil", "pathlib", "tempfile",
    "pytest", "conftest", "tools", "_ops", "type", "object", "super",
    "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "globals", "locals", "vars",
    "breakpoint", "input", "exit", "quit", "help", "memoryview",
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
    "tests/test_distributed.py": ("5.2",),  # trains with the three scripts on two ranks
    "tests/distributed_launch.py": ("5.2",),  # how test_distributed.py starts them
    "bench/": ("5.2",),  # timed training steps
    "tests/test_optim.py": ("5.1",),  # adamw_reference: AdamW written out
}


# The course tools' own tests: a handout has no use for them (they build handouts from a git checkout).
TEACHER_ONLY = ("tests/test_handout.py", "tests/test_grading_redteam.py", "tests/test_grading_wrong_answers.py")


def assignment(task_id):
    """The assignment a task belongs to: "3.2" -> 3."""
    return int(task_id.split(".")[0])

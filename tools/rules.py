"""The rules for task blocks, checked on the code before it runs (tools/grade.py).

An allow-list: a block may name only
- its function's parameters and locals, and `self`;
- the names its file defines or imports at module level (the array module, the file's helpers,
  earlier tasks' functions such as `sum_to`);
- the builtins of tools/course.py BLOCK_BUILTINS;
and may use only the attributes of tools/course.py (the array module's functions, an array's
methods, the engine's fields), one name at a time, so that no chain of them reaches a module
(`xp.testing`, `xp.ma`, `xp.lib` are not on the list). Anything of `self` may be read.
It may not import, define a class, declare names global / nonlocal, use PyTorch, the composite twins,
gradcheck or the minisum op its task implements (FORBIDDEN_NAMES, OWN_OPS), touch dunder or
private attributes, rebind `self` or a parameter to something else, or assign attributes
other than `self.<its own>` and a tensor's `.data` / `.grad`.
What a block does at run time is checked too (tools/grading_plugin.py).
"""
import ast
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from tools.course import (ARRAY_ATTRIBUTES, ARRAY_FUNCTIONS, BLOCK_BUILTINS, CONTAINER_METHODS, ENGINE_ATTRIBUTES,
                          FORBIDDEN_NAMES, FORBIDDEN_SUFFIXES, OWN_OPS)

ROOT = Path(__file__).resolve().parents[1]
ASSIGNABLE_ATTRIBUTES = {"data", "grad"}  # a tensor's fields; 5.1 updates p.data in place
ALLOWED_ATTRIBUTES = ARRAY_FUNCTIONS | ARRAY_ATTRIBUTES | CONTAINER_METHODS | ENGINE_ATTRIBUTES
# what `self` has from the engine: a block may read these but not replace them
ENGINE_OWN = ENGINE_ATTRIBUTES | {"forward", "release", "result_dtype", "promotes", "hands_over_grads", "released",
                                  "input_dtypes", "output_id"}


@dataclass
class Scope:
    """The names a block's function gives it: parameters, its other locals, its file's module-level names."""
    parameters: set = field(default_factory=set)
    local_names: set = field(default_factory=set)
    module_names: set = field(default_factory=set)

    def __or__(self, other):
        return Scope(self.parameters | other.parameters, self.local_names | other.local_names,
                     self.module_names | other.module_names)


def _forbidden(name):
    return name in FORBIDDEN_NAMES or name.endswith(FORBIDDEN_SUFFIXES)


def _bound_names(nodes):
    """Names that statements bind (assignments, loops, defs, arguments, imports, handlers)."""
    names = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
                names.add(sub.id)
            elif isinstance(sub, ast.arg):
                names.add(sub.arg)
            elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(sub.name)
            elif isinstance(sub, ast.ExceptHandler) and sub.name:
                names.add(sub.name)
            elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in sub.names)
    return names


def _module_names(tree):
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)):
            names |= _bound_names([node]) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else {node.name}
    return {n for n in names if not _forbidden(n)}


def block_scope(path, begin, end):
    """The Scope of the block whose markers are on lines `begin`, `end` (0-based) of the file `path`."""
    tree = ast.parse(Path(path).read_text())
    scope = Scope(module_names=_module_names(tree))
    functions = [f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and f.lineno <= begin + 1 <= f.end_lineno]  # comments (the END marker) are not in the tree
    if functions:
        function = max(functions, key=lambda f: f.lineno)  # the innermost
        scope.parameters = {a.arg for a in [*function.args.posonlyargs, *function.args.args,
                                            *function.args.kwonlyargs, function.args.vararg, function.args.kwarg] if a}
        # the teacher's block included: a name only its body binds is at worst unbound in another body
        scope.local_names = _bound_names(function.body) - scope.parameters
    return scope


def task_scope(task_id, root=ROOT):
    """The Scopes of all blocks of `task_id` in the tree under `root`, together."""
    from tools.task_markers import collect_tasks
    scopes = [block_scope(b.path, b.begin, b.end) for b in collect_tasks(root)[task_id][1]]
    scope = Scope()
    for one in scopes:
        scope = scope | one
    # a parameter of one block only is a local of another: only the parameters of all are kept from rebinding
    everywhere = set.intersection(*(one.parameters for one in scopes))
    scope.local_names |= scope.parameters - everywhere
    scope.parameters = everywhere
    return scope


class _Checker(ast.NodeVisitor):
    def __init__(self, own_ops, scope, known):
        self.own_ops, self.scope, self.known, self.problems = own_ops, scope, known, []

    def report(self, node, what):
        self.problems.append((node.lineno, what))

    def visit_Import(self, node):
        self.report(node, f"imports {', '.join(a.name for a in node.names)}")

    def visit_ImportFrom(self, node):
        self.report(node, f"imports from {node.module or '.'}")

    def visit_Global(self, node):
        self.report(node, f"declares {', '.join(node.names)} global")

    def visit_Nonlocal(self, node):
        self.report(node, f"declares {', '.join(node.names)} nonlocal")

    def visit_Name(self, node):
        name = node.id
        if name.startswith("__") or _forbidden(name) or name in self.own_ops:
            self.report(node, f"uses {name}")
        elif name not in self.known:
            self.report(node, f"uses {name}, which is not a parameter, local, name of its file or allowed builtin")

    def visit_Attribute(self, node):
        on_self = isinstance(node.value, ast.Name) and node.value.id == "self"
        if node.attr.startswith("_") or (_forbidden(node.attr) and node.attr not in ALLOWED_ATTRIBUTES):
            self.report(node, f"uses .{node.attr}")
        elif not on_self and node.attr not in ALLOWED_ATTRIBUTES and not self._reported_root(node):
            self.report(node, f"uses .{node.attr}, which is not on the list of array functions and methods "
                              "a block may use (docs/teaching.md)")
        if isinstance(node.ctx, (ast.Store, ast.Del)) and (not _own_attribute(node) or self._of_the_file(node)):
            self.report(node, f"assigns to {ast.unparse(node)} (only self.x, .data and .grad may be assigned)")
        self.generic_visit(node)

    def _of_the_file(self, node):
        """Whether an assigned attribute belongs to a name of the file (`Tensor.grad = ...` changes the class)."""
        return isinstance(node.value, ast.Name) and node.value.id in self.scope.module_names - self.scope.local_names

    def _reported_root(self, node):
        """Whether the name an attribute chain starts from is reported already (`torch.autograd.grad`)."""
        while isinstance(node, ast.Attribute):
            node = node.value
        return isinstance(node, ast.Name) and (node.id not in self.known or _forbidden(node.id)
                                               or node.id in self.own_ops or node.id.startswith("__"))

    def _definition(self, node):
        if node.name.startswith("__"):
            self.report(node, f"defines {node.name}")
        self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = _definition

    def visit_ClassDef(self, node):  # a class could dress data up as a shape or a dtype in the engine's messages
        self.report(node, f"defines a class ({node.name}): a block computes with arrays")
        self.generic_visit(node)


def _own_attribute(node):
    base = node.value
    if node.attr in ASSIGNABLE_ATTRIBUTES:
        return True
    return isinstance(base, ast.Name) and base.id == "self" and node.attr not in ENGINE_OWN


def _rebinds(tree, parameters):
    """[(line, what)] for statements that rebind `self` or a parameter to something not made from it
    (`gy = gy.reshape(...)` keeps gy; `self = np.testing` does not)."""
    problems = []

    def check(target, value, line):
        if isinstance(target, (ast.Tuple, ast.List)):
            values = value.elts if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts) \
                else [value] * len(target.elts)
            for t, v in zip(target.elts, values):
                check(t, v, line)
        elif isinstance(target, ast.Starred):
            check(target.value, value, line)
        elif isinstance(target, ast.Name) and (target.id == "self" or target.id in parameters):
            uses = value is not None and any(isinstance(n, ast.Name) and n.id == target.id for n in ast.walk(value))
            if target.id == "self" or not uses:
                problems.append((line, f"rebinds {target.id} (a parameter or self) to something else"))

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                check(target, node.value, node.lineno)
        elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            check(node.target, node.value, node.lineno)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            check(node.target, None, getattr(node, "lineno", getattr(node.target, "lineno", 1)))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    check(item.optional_vars, None, node.lineno)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                check(target, None, node.lineno)
        elif isinstance(node, ast.ExceptHandler) and node.name in parameters | {"self"}:
            problems.append((node.lineno, f"rebinds {node.name} (a parameter or self) to something else"))
    return problems


def check_block(body, task_id, scope=None):
    """[(line within the body, from 1; what is wrong), ...] for one block's body (its lines, indented).

    scope: the Scope of the block it replaces (block_scope); default, the Scopes of all of the
    task's blocks in the teacher's tree together."""
    try:
        tree = ast.parse(textwrap.dedent(body))
    except SyntaxError as err:
        return [(err.lineno or 1, f"does not parse ({err.msg})")]
    scope = task_scope(task_id) if scope is None else scope
    known = scope.parameters | scope.local_names | scope.module_names | BLOCK_BUILTINS | {"self"} | _bound_names([tree])
    checker = _Checker(OWN_OPS.get(task_id, set()), scope, known)
    checker.visit(tree)
    return sorted(checker.problems + _rebinds(tree, scope.parameters))

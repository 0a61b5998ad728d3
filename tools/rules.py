"""The rules for task blocks, checked on the code before it runs (tools/grade.py).

A block may use what its file already has in scope (the array module, the file's helpers,
earlier tasks' functions that the file imports) and Python's plain builtins. It may not:
- import anything, or declare names global / nonlocal;
- use PyTorch, the composite twins, gradcheck / numerical_gradient, or the minisum op its
  task implements (tools/course.py: FORBIDDEN_NAMES, OWN_OPS; the array module's own
  functions, `xp.matmul` or `xp.exp`, are fine);
- touch dunder names or private attributes (`__class__`, `x._y`), reach modules, files or
  frames, or assign to attributes other than its own (`self.x`) and a tensor's `.data` / `.grad`.
What a block does at run time is checked too: a backward that calls its own op's forward
more than once (finite differences) fails its task (tools/grading_plugin.py).
"""
import ast
import textwrap

from tools.course import FORBIDDEN_NAMES, FORBIDDEN_SUFFIXES, OWN_OPS

ASSIGNABLE_ATTRIBUTES = {"data", "grad"}  # a tensor's fields; 5.1 updates p.data in place


def _forbidden(name):
    return name in FORBIDDEN_NAMES or name.endswith(FORBIDDEN_SUFFIXES)


class _Checker(ast.NodeVisitor):
    def __init__(self, own_ops):
        self.own_ops, self.problems = own_ops, []

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
        if node.id.startswith("__") or _forbidden(node.id) or node.id in self.own_ops:
            self.report(node, f"uses {node.id}")

    def visit_Attribute(self, node):
        if node.attr.startswith("_") or _forbidden(node.attr):  # xp.matmul is NumPy's, not the op
            self.report(node, f"uses .{node.attr}")
        if isinstance(node.ctx, (ast.Store, ast.Del)) and not _own_attribute(node):
            self.report(node, f"assigns to {ast.unparse(node)} (only self.x, .data and .grad may be assigned)")
        self.generic_visit(node)

    def _definition(self, node):
        if node.name.startswith("__"):
            self.report(node, f"defines {node.name}")
        self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _definition


def _own_attribute(node):
    base = node.value
    return isinstance(base, ast.Name) and (base.id == "self" or node.attr in ASSIGNABLE_ATTRIBUTES)


def check_block(body, task_id):
    """[(line within the body, from 1; what is wrong), ...] for one block's body (its lines, indented)."""
    try:
        tree = ast.parse(textwrap.dedent(body))
    except SyntaxError as err:
        return [(err.lineno or 1, f"does not parse ({err.msg})")]
    checker = _Checker(OWN_OPS.get(task_id, set()))
    checker.visit(tree)
    return checker.problems

"""What the grader takes from a submission: the bodies of its task blocks, read and checked.

Only the text between a submission's task markers is read, never run or imported here; each
task's bodies are written into the teacher's files (`prepare`), or stubs when a body is
missing, does not parse, reaches outside its block or breaks a rule (tools/rules.py).
"""
import ast
import re
from pathlib import Path

from tools.course import POINTS
from tools.rules import block_scope, check_block
from tools.task_markers import MarkerError, collect_tasks, scan_blocks

ROOT = Path(__file__).resolve().parents[1]
STUB = re.compile(r'^\s*raise NotImplementedError\("Task [\d.]+: .*"\)\s*$')


def teacher_tasks():
    """task id -> (title, [blocks]) of the teacher's tree; every task must have points."""
    tasks = collect_tasks(ROOT)
    unpointed = sorted(set(tasks) ^ set(POINTS))
    if unpointed:
        raise MarkerError(f"tools/course.py POINTS and the task markers disagree on {', '.join(unpointed)}")
    return tasks


def read_bodies(submission, tasks):
    """task id -> ({relative path: [(line of BEGIN, body), ...]}, problems) from the submission's files.

    A task gets problems (and no bodies) when a file is missing, a symbolic link, not a regular
    file (a FIFO, a folder) or unreadable,
    when one of its markers is broken, or when it has another number of blocks than the teacher's.
    """
    found = {t: ({}, []) for t in tasks}
    files = sorted({b.path.relative_to(ROOT) for _, blocks in tasks.values() for b in blocks})
    for rel in files:
        in_file = [t for t, (_, blocks) in tasks.items() if any(b.path.relative_to(ROOT) == rel for b in blocks)]
        path = submission / rel
        try:
            if any(p.is_symlink() for p in [path, *path.parents] if p != submission and submission in p.parents):
                raise OSError("a symbolic link")
            if path.exists() and not path.is_file():  # a FIFO would keep the grader waiting for a writer
                raise OSError("not a regular file")
            lines = path.read_text(errors="replace").splitlines()
        except OSError as err:
            for t in in_file:
                found[t][1].append(f"{rel}: cannot be read ({getattr(err, 'strerror', None) or err})")
            continue
        blocks, _, problems = scan_blocks(rel, lines)
        for task_id, problem in problems:
            if task_id in found:
                found[task_id][1].append(problem)
        for t in in_file:
            if found[t][1]:
                continue
            expected = sum(b.path.relative_to(ROOT) == rel for b in tasks[t][1])
            mine = [b for b in blocks if b.task == t]
            if len(mine) != expected:
                found[t][1].append(f"{rel}: {expected} block(s) of TASK {t} expected, found {len(mine)}")
            else:
                found[t][0][str(rel)] = [(b.begin + 1, "\n".join(lines[b.begin + 1:b.end])) for b in mine]
    return found


def with_bodies(rel, task_id, bodies, tasks):
    """The teacher's file `rel` with the blocks of `task_id` replaced by `bodies` ([(line, body)])."""
    lines = (ROOT / rel).read_text().splitlines()
    mine = [b for b in tasks[task_id][1] if str(b.path.relative_to(ROOT)) == rel]
    for block, (_, body) in sorted(zip(mine, bodies), key=lambda pair: pair[0].begin, reverse=True):
        lines[block.begin + 1:block.end] = body.splitlines()
    return "\n".join(lines) + "\n"


def stubbed(task_id, tasks):
    """{rel: file text} of the teacher's files with the blocks of `task_id` stubbed."""
    title, blocks = tasks[task_id]
    by_file = {}
    for b in blocks:
        stub = f'{b.indent}raise NotImplementedError("Task {task_id}: {title}")'
        by_file.setdefault(str(b.path.relative_to(ROOT)), []).append((b.begin + 1, stub))
    return {rel: with_bodies(rel, task_id, bodies, tasks) for rel, bodies in by_file.items()}


def prepare(task_id, bodies, problems, tasks):
    """(status, messages, {rel: file text}) for one task before anything runs: "ok" with the files
    holding the submission's bodies, or "missing" / "rule" with the files holding stubs (its tests
    still run, to be counted, but none of its code does)."""
    status, messages, files = _prepare(task_id, bodies, problems, tasks)
    return status, messages, files if status == "ok" else stubbed(task_id, tasks)


def _prepare(task_id, bodies, problems, tasks):
    if problems:
        return "missing", problems, {}
    if all(STUB.match(body) or not body.strip() for blocks in bodies.values() for _, body in blocks):
        return "missing", [f"TASK {task_id} is not done (its blocks still raise NotImplementedError)"], {}
    problems = [(f"{rel}:{begin + line}: TASK {task_id} {what}", what) for rel, blocks in bodies.items()
                for (begin, body), block in zip(blocks, teacher_blocks(task_id, rel, tasks))
                for line, what in outdented(body, block.indent)
                or check_block(body, task_id, block_scope(block.path, block.begin, block.end))]
    if problems:
        status = "missing" if any(what.startswith("does not parse") for _, what in problems) else "rule"
        return status, [message for message, _ in problems], {}
    files = {rel: with_bodies(rel, task_id, blocks, tasks) for rel, blocks in bodies.items()}
    for rel, text in files.items():
        try:
            ast.parse(text)
        except SyntaxError as err:
            return "missing", [f"{rel}:{err.lineno}: TASK {task_id} does not parse in its file ({err.msg})"], {}
    return "ok", [], files


def teacher_blocks(task_id, rel, tasks):
    return [b for b in tasks[task_id][1] if str(b.path.relative_to(ROOT)) == rel]


def outdented(body, indent):
    """[(line, problem)] for the lines of a body indented less than its markers: such a line would
    end the function and put code outside the block (a new method, module-level code)."""
    return [(n, "does not parse inside its block (line indented less than its markers)")
            for n, line in enumerate(body.splitlines(), 1) if line.strip() and not line.startswith(indent)]

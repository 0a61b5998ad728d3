"""Read the task markers that turn the library into assignments.

A task is the code between
    # BEGIN TASK 2.3 <title>
    ...
    # END TASK 2.3
A task may span several blocks (the backward of six arithmetic ops is one task); its
first BEGIN carries the title, later ones repeat the id alone. Blocks never nest.
"""
import re
from dataclasses import dataclass
from pathlib import Path

BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN TASK (?P<id>\d+\.\d+)(?: (?P<title>.+?))?\s*$")
END = re.compile(r"^\s*# END TASK (?P<id>\d+\.\d+)\s*$")
SOURCE_DIRS = ("minisum",)
NOT_RELEASED = "not released yet"  # in the stub of a task a weekly handout has not released (make_handout.py)


class MarkerError(ValueError):
    """The markers in a file are not well formed."""


@dataclass
class Block:
    task: str
    path: Path
    begin: int  # line index of the BEGIN marker (0-based)
    end: int  # line index of the END marker
    indent: str


def find_blocks(path):
    """The task blocks of one file, checking that every BEGIN has its END and none nest."""
    blocks, titles, problems = scan_blocks(path, Path(path).read_text().splitlines())
    if problems:
        raise MarkerError(problems[0][1])
    return blocks, titles


def scan_blocks(path, lines):
    """(well-formed blocks, titles, problems) of one file's lines, reading past bad markers.

    problems: (task id, "file:line: what is wrong"); a block with a bad marker is not returned,
    so a student's broken block costs only its own task (tools/grade.py). A marker of another
    task inside a block is a problem of that block alone: the block it sits in stays open until
    its own END.
    """
    blocks, titles, problems, open_block, broken = [], {}, [], None, False
    for i, line in enumerate(lines):
        begin, end = BEGIN.match(line), END.match(line)
        if begin and open_block:
            problems.append((open_block.task, f"{path}:{i + 1}: TASK {begin['id']} begins inside "
                                              f"TASK {open_block.task}"))
            broken = True
        elif begin:
            open_block, broken = Block(begin["id"], Path(path), i, -1, begin["indent"]), False
            if begin["title"]:
                titles[begin["id"]] = begin["title"]
        elif end and not open_block:
            problems.append((end["id"], f"{path}:{i + 1}: END TASK {end['id']} without its BEGIN"))
        elif end and open_block.task != end["id"]:
            problems.append((open_block.task, f"{path}:{i + 1}: END TASK {end['id']} without its BEGIN, "
                                              f"inside TASK {open_block.task}"))
            broken = True
        elif end:
            open_block.end = i
            if not broken:
                blocks.append(open_block)
            open_block = None
    if open_block:
        problems.append((open_block.task, f"{path}:{open_block.begin + 1}: TASK {open_block.task} has no END"))
    return blocks, titles, problems


def collect_tasks(root):
    """task id -> (title, [blocks]) over the library sources under `root`, in course order."""
    tasks, titles = {}, {}
    for folder in SOURCE_DIRS:
        for path in sorted((Path(root) / folder).rglob("*.py")):
            blocks, file_titles = find_blocks(path)
            for task_id, title in file_titles.items():
                if task_id in titles and titles[task_id] != title:
                    raise MarkerError(f"TASK {task_id} has two titles: {titles[task_id]!r} and {title!r}")
                titles[task_id] = title
            for block in blocks:
                tasks.setdefault(block.task, []).append(block)
    missing = sorted(set(tasks) - set(titles))
    if missing:
        raise MarkerError(f"tasks without a title on any BEGIN line: {', '.join(missing)}")
    return {t: (titles[t], tasks[t]) for t in sorted(tasks, key=task_order)}


def task_order(task_id):
    major, minor = task_id.split(".")
    return int(major), int(minor)


def unreleased_tasks(root):
    """The tasks of the tree under `root` that a weekly handout has not released yet: every block a
    stub saying so. Empty in the teacher's tree and in a handout of every task."""
    unreleased = set()
    for task_id, (_, blocks) in collect_tasks(root).items():
        bodies = [b.path.read_text().splitlines()[b.begin + 1:b.end] for b in blocks]
        if all(len(body) == 1 and NOT_RELEASED in body[0] for body in bodies):
            unreleased.add(task_id)
    return unreleased

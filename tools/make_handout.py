"""Build a course handout: the project with the bodies of tasks removed and no answer left in it.

    python tools/make_handout.py OUT_DIR             # every task removed (the students' copy)
    python tools/make_handout.py OUT_DIR --upto 2    # weekly release: assignments 1-2 to do, 3-5 not yet released
    python tools/make_handout.py OUT_DIR --from 3.1  # 3.1 and every later task removed; earlier ones solved
    python tools/make_handout.py OUT_DIR --solutions # everything kept (the teacher's copy)

Each removed block becomes `raise NotImplementedError("Task 2.1: <title>")` between its
markers; signatures, docstrings (with the math) and the tests stay. A later task is never
handed out solved. Only the files git tracks are copied (no stray notebooks or build folders),
and the files that answer a removed task outside its blocks are left out (tools/course.py:
ANSWERS_OUTSIDE_BLOCKS). See docs/teaching.md.
"""
import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.course import ANSWERS_OUTSIDE_BLOCKS, TEACHER_ONLY, assignment  # noqa: E402
from tools.task_markers import NOT_RELEASED, MarkerError, collect_tasks, task_order  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def stub(task_id, title, indent, released=True):
    later = "" if released else f" (assignment {assignment(task_id)}, {NOT_RELEASED})"
    return f'{indent}raise NotImplementedError("Task {task_id}: {title}{later}")'


def remove_tasks(root, task_ids, released=None):
    """Replace the body of every block of the given tasks under `root`, in place.
    Tasks not in `released` (default: all) say in their stub that they come later."""
    tasks = collect_tasks(root)
    unknown = sorted(set(task_ids) - set(tasks))
    if unknown:
        raise MarkerError(f"unknown task(s) {', '.join(unknown)}: the tasks are {', '.join(tasks)}")
    by_file = {}
    for task_id in task_ids:
        title, blocks = tasks[task_id]
        for block in blocks:
            by_file.setdefault(block.path, []).append((block, title))
    for path, blocks in by_file.items():
        lines = path.read_text().splitlines()
        # bottom to top, so earlier line numbers stay valid
        for block, title in sorted(blocks, key=lambda b: b[0].begin, reverse=True):
            is_released = released is None or block.task in released
            lines[block.begin + 1:block.end] = [stub(block.task, title, block.indent, is_released)]
        path.write_text("\n".join(lines) + "\n")


def tracked_files(root):
    """The files git tracks under `root` (that still exist)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise MarkerError(f"{root} is not a git checkout: a handout copies only the files git tracks")
    return [rel for rel in listed.split("\0") if rel and (root / rel).is_file()]


def left_out(rel, stubbed):
    """True when the file `rel` answers a stubbed task outside its blocks (or needs a file that does),
    or only tests the course tools."""
    return bool(stubbed) and rel in TEACHER_ONLY or any(rel == path or (path.endswith("/") and rel.startswith(path))
               for path, tasks in ANSWERS_OUTSIDE_BLOCKS.items() if set(tasks) & set(stubbed))


def build(out_dir, stubbed=None, released=None, force=False, leave_out=True):
    """Copy the tracked files to `out_dir` and remove the tasks in `stubbed` (default: every task).

    `stubbed` is taken as given (the tests remove one task at a time, and keep every file with
    leave_out=False); the command line always removes every task after the first one it removes.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not force:
            raise MarkerError(f"{out_dir} exists; choose a new folder or pass --force")
        shutil.rmtree(out_dir)
    tasks = collect_tasks(ROOT)
    stubbed = list(tasks) if stubbed is None else stubbed
    for rel in tracked_files(ROOT):
        if not (leave_out and left_out(rel, stubbed)):
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, out_dir / rel)
    remove_tasks(out_dir, stubbed, released)
    return out_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", nargs="?", help="the folder to create")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--upto", type=int, metavar="N", help="release assignments 1 to N; later ones stay stubbed")
    which.add_argument("--from", dest="first", metavar="TASK", help="remove TASK and every later task only")
    which.add_argument("--solutions", action="store_true", help="keep every body (the teacher's copy)")
    parser.add_argument("--force", action="store_true", help="replace out_dir if it exists")
    parser.add_argument("--list", action="store_true", help="list the tasks and exit")
    args = parser.parse_args(argv)
    try:
        tasks = collect_tasks(ROOT)
        if args.list:
            for task_id, (title, blocks) in tasks.items():
                print(f"{task_id:5} {title}  ({len(blocks)} block{'s' if len(blocks) > 1 else ''})")
            return 0
        if not args.out_dir:
            parser.error("give the folder to write the handout to")
        released = None
        if args.solutions:
            stubbed = []
        elif args.first:
            if args.first not in tasks:
                raise MarkerError(f"unknown task {args.first}: the tasks are {', '.join(tasks)}")
            stubbed = [t for t in tasks if task_order(t) >= task_order(args.first)]
        else:
            stubbed = list(tasks)
            if args.upto is not None:
                released = [t for t in tasks if assignment(t) <= args.upto]
                if not released:
                    raise MarkerError(f"--upto {args.upto} releases no task: the first assignment is 1")
        out = build(args.out_dir, stubbed, released, args.force)
    except MarkerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"handout written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build a course handout: the project with the bodies of some tasks removed.

    python tools/make_handout.py OUT_DIR                  # every task removed (the students' copy)
    python tools/make_handout.py OUT_DIR --tasks 1.2,2.1  # only these tasks removed
    python tools/make_handout.py OUT_DIR --solutions      # everything kept (the teacher's copy)

Each removed block becomes `raise NotImplementedError("Task 2.1: <title>")` between its
markers; signatures, docstrings (with the math) and every test stay. See docs/teaching.md.
"""
import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.task_markers import MarkerError, collect_tasks  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOT_COPIED = shutil.ignore_patterns(".git", "runs", "__pycache__", ".pytest_cache", "*.egg-info", "*.pyc")


def stub(task_id, title, indent):
    return f'{indent}raise NotImplementedError("Task {task_id}: {title}")'


def remove_tasks(root, task_ids):
    """Replace the body of every block of the given tasks under `root`, in place."""
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
            lines[block.begin + 1:block.end] = [stub(block.task, title, block.indent)]
        path.write_text("\n".join(lines) + "\n")


def build(out_dir, task_ids=None, solutions=False, force=False):
    """Copy the project to `out_dir` and remove `task_ids` (default: every task)."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not force:
            raise SystemExit(f"error: {out_dir} exists; choose a new folder or pass --force")
        shutil.rmtree(out_dir)
    shutil.copytree(ROOT, out_dir, ignore=NOT_COPIED)
    if not solutions:
        remove_tasks(out_dir, task_ids or list(collect_tasks(out_dir)))
    return out_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", nargs="?", help="the folder to create")
    parser.add_argument("--tasks", help="comma-separated task ids to remove (default: all)")
    parser.add_argument("--solutions", action="store_true", help="keep every body (the teacher's copy)")
    parser.add_argument("--force", action="store_true", help="replace out_dir if it exists")
    parser.add_argument("--list", action="store_true", help="list the tasks and exit")
    args = parser.parse_args(argv)
    try:
        tasks = collect_tasks(ROOT)
        if args.list:
            for task_id, (title, blocks) in tasks.items():
                print(f"{task_id:5} {title}  ({len(blocks)} block{'s' if len(blocks) > 1 else ''})")
            return
        if not args.out_dir:
            parser.error("give the folder to write the handout to")
        task_ids = args.tasks.split(",") if args.tasks else None
        out = build(args.out_dir, task_ids, args.solutions, args.force)
    except MarkerError as err:
        raise SystemExit(f"error: {err}")
    print(f"handout written to {out}")


if __name__ == "__main__":
    main()

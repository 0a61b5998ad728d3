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

A handout is a small repository of its own, consistent with itself: its README.md is the
students' (docs/handout_README.md), its docs/teaching.md has no teachers' part, the sentences
of docstrings and docs that name a file left out are removed, the parts of Markdown files for
a later assignment (`<!-- from assignment N -->` ... `<!-- end -->`) wait for their release,
and the assignment sheets (docs/assignments/) take the derivations of the tasks handed out
solved from docs/derivations.md. This tool itself stays with the teacher.
"""
import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.course import ANSWERS_OUTSIDE_BLOCKS, TEACHER_ONLY, assignment  # noqa: E402
from tools.task_markers import NOT_RELEASED, MarkerError, collect_tasks, task_order  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STUDENT_README = "docs/handout_README.md"  # the handout's README.md
RESEARCH_DOCS = ("docs/benchmarks.md", "docs/runs.md", "docs/to_torch.md", "docs/train_cls.md", "docs/train_mm.md",
                 "docs/bad_input.md", "docs/distributed.md")  # the research repository's, not the course's
TEACHERS_TOOLS = ("tools/make_handout.py", STUDENT_README, *RESEARCH_DOCS)  # never in a handout
TEACHERS_PART = "## For teachers"  # docs/teaching.md from this heading to the next "## " one
DERIVATIONS = "docs/derivations.md"
DERIVATION_OF = {"2.1": "Softmax and cross-entropy", "2.2": "Layer norm", "3.1": "Embedding",
                 "3.2": "The causal sum (cumsum)", "4.1": "Attention"}  # its section in DERIVATIONS
LATER_PART = re.compile(r"<!-- from assignment (\d+) -->\n(.*?)<!-- end -->\n", re.S)
DERIVATIONS_HERE = re.compile(r"<!-- derivations of ([\d. ]+) -->\n")


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


def shipped_names(rel):
    """The ways a text may name the file `rel`: its path, from minisum/ or docs/ too, and its file name."""
    names = [rel]
    for folder in ("minisum/", "docs/", "tests/"):
        if rel.startswith(folder):
            names.append(rel[len(folder):])
    return sorted({*names, rel.rstrip("/").rsplit("/", 1)[-1]}, key=len, reverse=True)


def without_sentences_naming(text, names):
    """`text` less every sentence that names one of `names`. A sentence ends at ". ", at the end of
    a line followed by a blank line or by the end of a docstring, and starts after the one before."""
    ends_a_line = text.endswith("\n")
    for name in names:
        pattern = re.compile(r"(?<![\w/.-])" + re.escape(name) + r"(?![\w-])")
        while match := pattern.search(text):
            i = match.start()
            sentence_ends = [m.end() for m in re.finditer(r"(?<!e\.g)(?<!i\.e)\.\s+", text[:i])]
            start = max(sentence_ends[-1] if sentence_ends else 0, text.rfind("\n\n", 0, i) + 2,
                        text.rfind('"""', 0, i) + 3, text.rfind("\n- ", 0, i) + 1, text.rfind("\n```", 0, i) + 1)
            ends = [m.end() for m in [re.compile(r"\.(?:[ \t]+|(?=\n)|$)").search(text, match.end()),
                                      re.compile(r"\n(?=\n|\s*\"\"\"|- |```)").search(text, match.end())] if m]
            end = min(ends) if ends else len(text)
            if start > 0 and text[start - 1] == "\n" and text[end - 1:end] != "\n" and text[end:end + 1] == "\n":
                end += 1  # the sentence was the whole line
            text = text[:start] + text[end:]
    text = re.sub(r"[ \t]+$", "", text, flags=re.M)  # the space after a sentence that went
    text += "\n" if ends_a_line and not text.endswith("\n") else ""
    return re.sub(r'\s+"""', '\n"""', text, count=1) if text.startswith('"""') else text


def derivation_sections(tasks):
    """The sections of DERIVATIONS that derive `tasks`, in order, as Markdown one heading deeper."""
    sections = re.split(r"^(?=## )", (ROOT / DERIVATIONS).read_text(), flags=re.M)
    titles = {DERIVATION_OF[t] for t in tasks if t in DERIVATION_OF}
    return "".join("#" + s for s in sections if s.startswith("## ") and s[3:].splitlines()[0].strip() in titles)


def for_students(rel, text, stubbed, released_upto, withheld, shipped=()):
    """The text of a shipped file as a handout has it (see the module docstring). `shipped`: the
    files the handout has, whose names alone (README.md, __init__.py) name no withheld file."""
    if rel == "docs/teaching.md" and TEACHERS_PART in text:
        start = text.index(TEACHERS_PART)
        after = text.find("\n## ", start + 1)
        text = text[:start] + (text[after + 1:] if after >= 0 else "")
    if rel.endswith(".md"):
        text = LATER_PART.sub(lambda m: m[2] if int(m[1]) <= released_upto else "", text)
        text = DERIVATIONS_HERE.sub(lambda m: derivation_sections(t for t in m[1].split() if t not in stubbed), text)
    ambiguous = {f.rsplit("/", 1)[-1] for f in shipped}
    names = [n for w in withheld for n in shipped_names(w) if n not in ambiguous]
    if rel.endswith(".md"):
        text = without_sentences_naming(text, names)
    elif rel.endswith(".py") and text.startswith('"""'):  # the module docstring, never code
        end = text.index('"""', 3) + 3
        modules = "|".join(re.escape(w[len("minisum/ops/"):-3]) for w in withheld if w.startswith("minisum/ops/"))
        docstring = re.sub(rf"^    (?:{modules}) .*\n", "", text[:end], flags=re.M) if modules else text[:end]
        text = without_sentences_naming(docstring, names) + text[end:]
    return text


def build(out_dir, stubbed=None, released=None, force=False, leave_out=True):
    """Copy the tracked files to `out_dir` and remove the tasks in `stubbed` (default: every task).

    `stubbed` is taken as given (the tests remove one task at a time, and keep every file with
    leave_out=False); the command line always removes every task after the first one it removes.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not force:
            raise MarkerError(f"{out_dir} exists; choose a new folder or pass --force")
        where = out_dir.resolve()
        if not out_dir.is_dir() or where == ROOT or where in ROOT.parents or ROOT in where.parents:
            # --force removes it first: never this repository, a folder of it or one that holds it
            raise MarkerError(f"{out_dir} is not a folder --force may replace: choose one outside this repository")
        shutil.rmtree(out_dir)
    tasks = collect_tasks(ROOT)
    stubbed = list(tasks) if stubbed is None else stubbed
    tracked = tracked_files(ROOT)
    students = leave_out and bool(stubbed)  # a handout, not the teacher's copy (--solutions)
    withheld = [rel for rel in tracked if leave_out and left_out(rel, stubbed) or students and rel in TEACHERS_TOOLS]
    withheld += [path for path, tasks_ in ANSWERS_OUTSIDE_BLOCKS.items() if path.endswith("/") and leave_out
                 and set(tasks_) & set(stubbed)]
    withheld += [rel for rel in TEACHERS_TOOLS if students and rel not in withheld]
    released_upto = max([assignment(t) for t in released] if released is not None else
                        [assignment(t) for t in tasks], default=0)
    shipped = [rel for rel in tracked if rel not in withheld] + ["README.md"]
    for rel in shipped[:-1]:
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, out_dir / rel)
        if students and rel.endswith((".md", ".py")):
            text = (ROOT / rel).read_text()
            for_them = for_students(rel, text, stubbed, released_upto, withheld, shipped)
            if for_them != text:
                (out_dir / rel).write_text(for_them)
    if students:
        readme = for_students("README.md", (ROOT / STUDENT_README).read_text(), stubbed, released_upto, withheld,
                              shipped)
        (out_dir / "README.md").write_text(readme)
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

"""docs/derivations.md stays attached to the code: the tests it cites exist, and the link in
each op's docstring lands on one of its sections."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "derivations.md").read_text(encoding="utf-8")


def section_anchors(markdown):
    """The anchors GitHub gives `## ` headings: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-") for title in re.findall(r"^## (.+)$", markdown, re.M)}


def test_every_test_it_cites_exists():
    cited = set(re.findall(r"tests/(test_\w+\.py)::(test_\w+)", DOC))
    assert len(cited) >= 10
    for file, name in sorted(cited):
        source = (ROOT / "tests" / file).read_text(encoding="utf-8")
        assert re.search(rf"^def {name}\(", source, re.M), f"docs/derivations.md cites a missing test {file}::{name}"


def test_each_op_links_its_section():
    sections = section_anchors(DOC)
    for op in ("cumsum", "layernorm", "softmax", "losses", "attention", "embedding"):
        links = re.findall(r"docs/derivations\.md#([\w-]+)", (ROOT / "minisum" / "ops" / f"{op}.py").read_text())
        assert links, f"minisum/ops/{op}.py does not link docs/derivations.md"
        assert set(links) <= sections, f"minisum/ops/{op}.py links {links}, the sections are {sorted(sections)}"

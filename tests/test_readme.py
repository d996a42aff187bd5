"""The README stays true: its option tables are the ones the config definitions generate, and every Markdown
table of the repository's documents renders with the columns its header names."""
import re
from pathlib import Path

import pytest

from modernconv.config import PretrainConfig, TrainConfig, option_rows

README = Path(__file__).resolve().parents[1] / "README.md"


def options_table(kind) -> str:
    lines = ["| option | type | default | meaning |", "|---|---|---|---|"]
    lines += [f"| `{flag}` | {kind_} | {default} | {text} |" for flag, kind_, default, text in option_rows(kind)]
    return "\n".join(lines)


@pytest.mark.parametrize("kind, marker", [(TrainConfig, "train"), (PretrainConfig, "pretrain")])
def test_the_readme_option_tables_match_the_config(kind, marker):
    text = README.read_text()
    begin, end = f"<!-- options:{marker} -->\n", f"\n<!-- /options:{marker} -->"
    assert begin in text and end in text, f"README lacks the {marker} options table markers"
    shown = text.split(begin)[1].split(end)[0]
    assert shown == options_table(kind), f"regenerate the README table:\n{options_table(kind)}"


ROOT = README.parent


def cell_count(line: str) -> int:
    """The cells of a Markdown table row as GitHub splits them: at every pipe not escaped by a backslash (code
    spans included), the row's outer pipes aside."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return len(re.split(r"(?<!\\)\|", inner))


DOCUMENTS = sorted(str(path) for path in (p.relative_to(ROOT) for p in ROOT.rglob("*.md"))
                   if path.parts[0] != "runs" and not any(part.startswith(".") for part in path.parts))


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_table_row_has_its_headers_width(document):
    """A literal | in a cell adds a column: the rendered row then loses its last cells (markdown-it finds the
    tables, as a renderer does; code blocks holding pipes are not tables)."""
    from markdown_it import MarkdownIt

    lines = (ROOT / document).read_text().splitlines()
    tables = [t.map for t in MarkdownIt("commonmark").enable("table").parse("\n".join(lines))
              if t.type == "table_open"]
    assert len(tables) >= 5 or document not in ("README.md", "benchmarks/RESULTS.md")
    wrong = [f"{document}:{i + 1}" for start, end in tables for i in range(start, end)
             if i != start + 1 and cell_count(lines[i]) != cell_count(lines[start])]
    assert not wrong, f"rows of another width than their header: {wrong}"

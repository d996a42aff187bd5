"""The README stays true: its option tables are the ones the config definitions generate."""
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

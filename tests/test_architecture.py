"""Where code lives (docs/architecture.md): asset bodies stay thin (read → call the concern → write → describe).

`python tests/test_architecture.py` prints every asset's and asset check's body length, longest first.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASSET_DECORATORS = {"asset", "multi_asset", "graph_asset", "asset_check", "multi_asset_check"}
MAX_BODY_LINES = 45


def _decorator_name(decorator: ast.expr) -> str:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")


def asset_body_lengths(folder: Path = REPO / "assets") -> dict[str, int]:
    """`module:function` → lines from the `def` to the end of the function, for every decorated asset."""
    lengths = {}
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                    _decorator_name(d) in ASSET_DECORATORS for d in node.decorator_list):
                lengths[f"{path.name}:{node.name}"] = node.end_lineno - node.lineno
    return lengths


def test_the_measure_finds_every_asset_of_the_code_location(tmp_path):
    from harmony_pipeline.definitions import build_definitions
    from harmony_pipeline.settings import load_settings

    defs = build_definitions(load_settings({"HARMONY_DATA_DIR": str(tmp_path),
                                            "ENABLE_ARTWORK": "1", "ENABLE_LYRICS": "1"}))
    names = {key.to_user_string() for key in defs.resolve_asset_graph().materializable_asset_keys}
    measured = {name.split(":")[1] for name in asset_body_lengths()}
    assert names <= measured


def test_no_asset_body_is_longer_than_the_limit():
    too_long = {name: lines for name, lines in asset_body_lengths().items() if lines > MAX_BODY_LINES}
    assert not too_long, f"asset bodies over {MAX_BODY_LINES} lines (move the work into the concern): {too_long}"


if __name__ == "__main__":
    for name, lines in sorted(asset_body_lengths().items(), key=lambda item: -item[1]):
        print(f"{lines:4d} {name}")

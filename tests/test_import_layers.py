"""Import layering: the model loader never imports the toy world or the trainer (whose tasks import the loader)."""
import ast
from pathlib import Path

import bench

FORBIDDEN = ("bench.toy", "bench.train")  # bench.train and bench.train_tasks


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_model_loader_does_not_import_the_toy_world_or_the_trainer():
    imports = imported_modules(Path(bench.__file__).parent / "models.py")
    assert "bench.errors" in imports  # the walk does see the loader's imports
    assert not [m for m in imports if m.startswith(FORBIDDEN)]


def test_toy_base_uses_the_loaders_tokenizer():
    from bench.models import TOY_TOKEN_LENGTH, toy_tokenizer
    from bench.toy import base

    assert base.toy_tokenizer is toy_tokenizer and base.TOKEN_LENGTH == TOY_TOKEN_LENGTH == 16
    assert toy_tokenizer().model_max_length == 16

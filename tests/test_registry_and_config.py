import pytest

from bench.config import RunConfig, config_hash, load_config
from bench.errors import UserError
from bench.prompts import load_suite
from bench.registry import METHODS, METRICS


def test_unknown_method_suggests_the_closest_name():
    with pytest.raises(UserError, match="did you mean 'animatediff'"):
        METHODS.target("animatedif")
    with pytest.raises(UserError, match="did you mean 'clip_score'"):
        METRICS.target("clipscore")


def test_registry_is_lazy():
    import subprocess
    import sys

    code = "import sys, bench.registry, bench.cli; print('diffusers' in sys.modules, 'open_clip' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False False"


def test_smoke_config_loads_and_hash_is_canonical():
    cfg = load_config("smoke")
    assert cfg.base.model == "tiny" and "per_frame" in cfg.methods
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


@pytest.mark.parametrize("override,match", [
    ({"sampling.num_frames": 0}, "num_frames: must be >= 1"),
    ({"sampling.height": 30}, "height: must be a positive multiple of 8"),
    ({"sampling.num_inference_steps": 0}, "num_inference_steps: must be >= 1"),
    ({"sampling.colour": 1}, "sampling.colour: unknown key"),
])
def test_bad_config_values_are_one_clear_line(override, match):
    with pytest.raises(UserError, match=match) as info:
        load_config("smoke", override)
    assert "\n" not in str(info.value)


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nsampling: {num_frames: 4\nmethods: [per_frame]\n")
    with pytest.raises(UserError, match=r"bad.yaml:\d+: malformed YAML"):
        load_config(str(path))


def test_unknown_config_name():
    with pytest.raises(UserError, match="did you mean 'smoke'"):
        load_config("smok")


def test_methods_list_shorthand():
    assert RunConfig(methods=["per_frame"]).methods == {"per_frame": {}}


def test_prompt_suites(tmp_path):
    suite = load_suite("smoke")
    assert len(suite.prompts) >= 4 and len({p.id for p in suite.prompts}) == len(suite.prompts)
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text('{"id": "a", "text": "a cat"}\n{"id": "b", "text": "a dog"\n')
    with pytest.raises(UserError, match=r"mine.jsonl:2: not valid JSON"):
        load_suite(str(jsonl))
    jsonl.write_text('{"id": "a", "text": "a cat"}\n{"id": "a", "text": "a dog"}\n')
    with pytest.raises(UserError, match="duplicate prompt id 'a'"):
        load_suite(str(jsonl))
    yml = tmp_path / "mine.yaml"
    yml.write_text("prompts:\n  - {id: x}\n")
    with pytest.raises(UserError, match=r"prompts\[0\]: each prompt needs an 'id' and a 'text'"):
        load_suite(str(yml))
    with pytest.raises(UserError, match="did you mean 'smoke'"):
        load_suite("smok")

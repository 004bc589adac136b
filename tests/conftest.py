import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # tiny models: one thread beats two (less sync); CI has 2 cores


@pytest.fixture(scope="session")
def tiny_base():
    from bench.models import tiny_components

    return tiny_components(0)


@pytest.fixture
def request_factory():
    from bench.api import GenRequest

    def make(prompt_id: str = "p", prompt: str = "a red ball", seed: int = 1, **kw):
        kw.setdefault("num_frames", 4)
        kw.setdefault("num_inference_steps", 2)
        return GenRequest(prompt_id=prompt_id, prompt=prompt, seed=seed, **kw)

    return make

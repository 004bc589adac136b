"""The background writer (failures fail items, pending writes survive Ctrl-C) and the per-run text-embedding cache."""
import threading

import pytest
import torch

from bench.config import load_config
from bench.runner import Runner
from bench.text_cache import TextEmbeddingCache
from bench.writer import BackgroundWriter

SMALL = {"sampling.num_frames": 2, "sampling.num_inference_steps": 2, "sampling.height": 32, "sampling.width": 32,
         "methods": {"per_frame": {}, "causal_cross_frame": {}}, "metrics": ["temporal_flickering"]}


def test_writer_runs_jobs_in_order_and_reports_each_failure():
    done = []
    with BackgroundWriter(max_pending=2) as writer:
        for k in range(5):
            writer.submit(f"job{k}", lambda k=k: done.append(k) if k != 3 else 1 / 0)
        failures = writer.drain()
        assert done == [0, 1, 2, 4]
        assert [(label, type(exc)) for label, exc in failures] == [("job3", ZeroDivisionError)]
        assert writer.drain() == []  # reported once
        assert writer.stats.jobs == 5


def test_leaving_the_block_on_ctrl_c_flushes_pending_writes():
    done, gate = [], threading.Event()
    with pytest.raises(KeyboardInterrupt):
        with BackgroundWriter(max_pending=8) as writer:
            writer.submit("slow", lambda: (gate.wait(5), done.append("slow")))
            for k in range(3):
                writer.submit(f"w{k}", lambda k=k: done.append(k))
            threading.Timer(0.2, gate.set).start()
            raise KeyboardInterrupt
    assert done == ["slow", 0, 1, 2]  # every pending write ran before the interrupt propagated


def test_a_failed_write_fails_its_item_and_a_rerun_regenerates_it(tmp_path, monkeypatch):
    cfg = load_config("smoke", {**SMALL, "methods": {"per_frame": {}}})
    from bench.store import RunStore

    original = RunStore.save_item

    def flaky(self, method, prompt_id, sample, *args, **kwargs):
        if prompt_id == cfg_prompts[1]:
            raise OSError("disk full")
        return original(self, method, prompt_id, sample, *args, **kwargs)

    runner = Runner(cfg, tmp_path / "run", progress=False)
    cfg_prompts = [p.id for p in runner.suite.prompts]
    monkeypatch.setattr(RunStore, "save_item", flaky)
    result = runner.run("generate")
    c = result.counts["per_frame"]
    assert (c["generated"], c["failed"]) == (len(cfg_prompts) - 1, 1)
    monkeypatch.setattr(RunStore, "save_item", original)
    again = Runner(cfg, tmp_path / "run", progress=False).run("generate").counts["per_frame"]
    assert (again["generated"], again["skipped"], again["failed"]) == (1, len(cfg_prompts) - 1, 0)


def test_ctrl_c_during_the_next_batch_keeps_the_previous_batch_written(tmp_path, monkeypatch):
    from methods.per_frame import PerFrame

    cfg = load_config("smoke", {**SMALL, "methods": {"per_frame": {}}})
    original, calls = PerFrame.generate, []

    def interrupted(self, requests):
        calls.append(len(requests))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, requests)

    monkeypatch.setattr(PerFrame, "generate", interrupted)
    runner = Runner(cfg, tmp_path / "run", progress=False)
    with pytest.raises(KeyboardInterrupt):
        runner.run("generate")
    first = runner.plan()[0]
    assert runner.store.is_done(first.method, first.prompt_id, first.sample, first.key)


def test_each_prompt_is_encoded_once_per_run_across_methods_and_batches(tmp_path):
    cfg = load_config("smoke", {**SMALL, "batch_size": 2})
    runner = Runner(cfg, tmp_path / "run", progress=False)
    encoded: list[int] = []
    handle = runner.base().text_encoder.register_forward_hook(lambda m, args, out: encoded.append(args[0].shape[0]))
    try:
        runner.run("generate")
    finally:
        handle.remove()
    n_prompts = len(runner.suite.prompts)
    assert sum(encoded) == n_prompts + 1  # every prompt once, plus the empty negative prompt, for two methods
    cache = runner.base().text_cache
    assert cache.misses == n_prompts + 1 and cache.hits > 0


def test_cached_embeddings_equal_fresh_ones_and_follow_weight_changes(tiny_base):
    from methods.per_frame import PerFrame

    method = PerFrame(tiny_base)
    texts = ["a red ball", "", "a red ball", "a blue cube"]
    fresh = method.encode_prompts(texts)
    cache = TextEmbeddingCache()
    tiny_base.text_cache = cache
    try:
        first = method.encode_prompts(texts[:2])
        again = method.encode_prompts(texts)
        torch.testing.assert_close(again, fresh, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(first, fresh[:2], rtol=1e-5, atol=1e-6)
        assert (cache.misses, cache.hits) == (3, 3)
        weight = dict(tiny_base.text_encoder.named_parameters())["final_layer_norm.bias"]
        with torch.no_grad():
            weight.add_(1.0)  # an in-place edit of the encoder invalidates what it encoded before
        try:
            changed = method.encode_prompts(texts[:1])
            assert not torch.allclose(changed, fresh[:1])
            assert cache.misses == 4
        finally:
            with torch.no_grad():
                weight.sub_(1.0)
    finally:
        tiny_base.text_cache = None


def test_writer_overlaps_the_caller():
    """While a write is in progress the caller is free (a property, not a timing benchmark)."""
    started, release = threading.Event(), threading.Event()
    with BackgroundWriter() as writer:
        writer.submit("w", lambda: (started.set(), release.wait(5)))
        assert started.wait(5)
        assert writer.stats.jobs == 0  # still writing, and submit() already returned
        release.set()
        writer.drain()
        assert writer.stats.jobs == 1

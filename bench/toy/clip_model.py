"""The toy CLIP: a small open_clip model trained contrastively on toy frame-caption pairs, for clip_score and
frame_consistency in the toy world.

The architecture is an open_clip config (t2v-bench-toy-clip.json, registered with `open_clip.add_model_config`);
the weights are one safetensors file that `open_clip.create_model(TOY_CLIP, pretrained=path)` loads. Training
applies the same preprocessing ClipEmbedder applies at evaluation (32x32 frames, OpenAI mean/std), and captions
come half with motion words, half without (toy_images), so prompts of the toy suite are in-vocabulary.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from bench.train import ModuleTask, TrainConfig

TOY_CLIP = "t2v-bench-toy-clip"
CONFIG_PATH = Path(__file__).with_name(f"{TOY_CLIP}.json")
WEIGHTS_FILE = "clip/toy-clip.safetensors"  # under bench/toy/weights


def register() -> str:
    import open_clip

    if TOY_CLIP not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_PATH)
    return TOY_CLIP


def shipped_checkpoint() -> Path:
    from bench.models import toy_weights

    return toy_weights(WEIGHTS_FILE)


class ClipTask(ModuleTask):
    def __init__(self, cfg: TrainConfig):
        import open_clip
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        from bench.toy.world import toy_images

        register()
        self.model = open_clip.create_model(TOY_CLIP).train()
        self.tokenizer = open_clip.get_tokenizer(TOY_CLIP)
        self.mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)

        def data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
            frames, captions = zip(*toy_images(n, seed, cfg.size))
            return (torch.stack(frames) - self.mean) / self.std, self.tokenizer(list(captions))

        self.train_x, self.train_t = data(cfg.num_train, cfg.data_seed)
        self.val_x, self.val_t = data(cfg.num_val, cfg.data_seed + 1)

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.parameters())

    def _loss(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        img = F.normalize(self.model.encode_image(x), dim=-1)
        txt = F.normalize(self.model.encode_text(tokens), dim=-1)
        logits = self.model.logit_scale.exp().clamp(max=100) * img @ txt.T
        # Identical captions in one batch are true pairs, not negatives: spread the target over them.
        same = (tokens[:, None, :] == tokens[None, :, :]).all(-1).float()
        target = same / same.sum(1, keepdim=True)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    def loss(self, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        idx = torch.randint(len(self.train_x), (batch_size,), generator=generator)
        return self._loss(self.train_x[idx], self.train_t[idx])

    @torch.no_grad()
    def val_loss(self) -> float:
        self.model.eval()
        try:
            return float(self._loss(self.val_x, self.val_t))
        finally:
            self.model.train()

    def export(self, folder: Path) -> None:
        """One safetensors file, fp16 (the 49,408-row token table dominates): <folder>/toy-clip.safetensors."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().half().contiguous() for k, v in self.model.state_dict().items()},
                  folder / Path(WEIGHTS_FILE).name)

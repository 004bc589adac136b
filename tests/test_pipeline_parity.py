"""Our shared sampler against diffusers' own pipelines on the same components and noise."""
import torch

from methods.animatediff import AnimateDiff
from methods.per_frame import PerFrame


def test_per_frame_matches_stable_diffusion_pipeline(tiny_base, request_factory):
    from diffusers import StableDiffusionPipeline

    req = request_factory(num_frames=3, num_inference_steps=3)
    ours = PerFrame(tiny_base).generate([req])[0].frames
    b = tiny_base
    pipe = StableDiffusionPipeline(vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=b.unet,
                                   scheduler=b.scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    shape = PerFrame(tiny_base).latent_shape(req)
    noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(req.seed))  # (C, F, h, w)
    theirs = pipe(req.prompt, height=req.height, width=req.width, num_inference_steps=req.num_inference_steps,
                  guidance_scale=req.guidance_scale, num_images_per_prompt=req.num_frames,
                  latents=noise.permute(1, 0, 2, 3), output_type="pt").images
    assert (ours - theirs).abs().max() < 1e-4


def test_animatediff_matches_animatediff_pipeline(tiny_base, request_factory):
    from diffusers import AnimateDiffPipeline

    method = AnimateDiff(tiny_base, adapter_seed=3)
    # a non-identity adapter, so the parity covers the motion modules too
    for name, p in method.unet.named_parameters():
        if "motion_modules" in name and name.endswith("proj_out.weight"):
            torch.nn.init.normal_(p, std=0.02, generator=torch.Generator().manual_seed(0))
    req = request_factory(num_frames=4, num_inference_steps=3)
    ours = method.generate([req])[0].frames
    b = tiny_base
    pipe = AnimateDiffPipeline(vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=method.unet,
                               motion_adapter=method.adapter, scheduler=method.new_scheduler())
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(req.prompt, num_frames=req.num_frames, height=req.height, width=req.width,
                  num_inference_steps=req.num_inference_steps, guidance_scale=req.guidance_scale,
                  generator=torch.Generator("cpu").manual_seed(req.seed), output_type="pt").frames[0]
    assert (ours - PerFrame(tiny_base).generate([req])[0].frames).abs().max() > 1e-3  # the adapter does act
    assert (ours - theirs).abs().max() < 1e-4

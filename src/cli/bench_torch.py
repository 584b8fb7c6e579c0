# The PyTorch side of `unilip bench models --torch PYTHON`.
#
# Reads one JSON object on stdin: {"threads": N, "reps": R, "blocks": [{"name", "kind", "config",
# "reps"}]}, builds each block with the reference implementation (transformers / diffusers, the
# libraries the parity fixtures come from) at the same configuration and input shapes as the Burn
# side (kind "op": a single tensor op), times it in eager mode under torch.inference_mode() the
# same way (one warm-up, median of `reps` runs, on the job's "device": "cpu" or "cuda", waiting for
# the GPU before each clock read) and prints one JSON line per block: {"name", "ms"} or
# {"name", "error"}.
import json
import statistics
import sys
import time

import torch

DEVICE = torch.device("cpu")


def synchronize():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def median_ms(reps, f):
    f()
    times = []
    for _ in range(reps):
        synchronize()
        start = time.perf_counter()
        f()
        synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def internvit(cfg):
    from transformers import InternVLVisionConfig, InternVLVisionModel

    model = InternVLVisionModel(InternVLVisionConfig(**cfg)).eval().to(DEVICE)
    size = cfg["image_size"][0]
    px = torch.randn(1, cfg.get("num_channels", 3), size, size, device=DEVICE)
    return lambda: model(pixel_values=px).last_hidden_state


def qwen2(cfg, tokens):
    from transformers import Qwen2Config, Qwen2Model

    model = Qwen2Model(Qwen2Config(**cfg)).eval().to(DEVICE)
    x = torch.randn(1, tokens, cfg["hidden_size"], device=DEVICE)
    return lambda: model(inputs_embeds=x, use_cache=False).last_hidden_state


def sana(cfg, latent, caption_tokens):
    from diffusers import SanaTransformer2DModel

    model = SanaTransformer2DModel(**cfg).eval().to(DEVICE)
    lat = torch.randn(1, cfg["in_channels"], latent, latent, device=DEVICE)
    cap = torch.randn(1, caption_tokens, cfg["caption_channels"], device=DEVICE)
    mask = torch.ones(1, caption_tokens, device=DEVICE)
    t = torch.tensor([500.0], device=DEVICE)
    return lambda: model(
        hidden_states=lat, encoder_hidden_states=cap, timestep=t, encoder_attention_mask=mask
    ).sample


def dcae(cfg, latent):
    from diffusers import AutoencoderDC

    decoder = AutoencoderDC(**cfg).decoder.eval().to(DEVICE)
    z = torch.randn(1, cfg["latent_channels"], latent, latent, device=DEVICE)
    return lambda: decoder(z)


def op(kind, shape):
    x = torch.randn(*shape, device=DEVICE)
    if kind == "matmul":
        return lambda: x @ x
    if kind == "conv3x3":
        w = torch.randn(shape[1], shape[1], 3, 3, device=DEVICE)
        return lambda: torch.nn.functional.conv2d(x, w, padding=1)
    if kind == "softmax":
        return lambda: x.softmax(-1)
    if kind == "silu":
        return lambda: torch.nn.functional.silu(x)
    raise ValueError(f"unknown op {kind!r}")


def build(block):
    kind, cfg = block["kind"], block.get("config")
    if kind == "op":
        return op(block["op"], block["shape"])
    if kind == "internvit":
        return internvit(cfg)
    if kind == "qwen2":
        return qwen2(cfg, block["tokens"])
    if kind == "sana":
        return sana(cfg, block["latent"], block["caption_tokens"])
    if kind == "dcae":
        return dcae(cfg, block["latent"])
    raise ValueError(f"unknown block kind {kind!r}")


def main():
    global DEVICE
    job = json.load(sys.stdin)
    DEVICE = torch.device(job.get("device", "cpu"))
    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    print(
        json.dumps(
            {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(DEVICE)}
        ),
        flush=True,
    )
    for block in job["blocks"]:
        try:
            with torch.inference_mode():
                run = build(block)
                ms = median_ms(block["reps"], run)
            print(json.dumps({"name": block["name"], "ms": ms}), flush=True)
        except Exception as e:  # report and go on with the next block
            print(json.dumps({"name": block["name"], "error": f"{type(e).__name__}: {e}"}), flush=True)


main()

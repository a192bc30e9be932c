"""Describe a picture with a vision language model (a GGUF plus its mmproj) through
llama-cpp-python's multimodal chat handlers. Used only when `media.vision_model` is configured.

Synchronous; runs on the vision model's own thread (see `MediaService`).
"""

from __future__ import annotations

import base64
from pathlib import Path

from llama_cpp import Llama, llama_chat_format

from breakingwind.config import Settings
from breakingwind.errors import ModelLoadError
from breakingwind.media.images import NormalisedImage
from breakingwind.prompts import render_prompt

# media.vision_chat_handler -> llama-cpp-python handler class (all take the mmproj path).
HANDLERS: dict[str, type] = {
    "mtmd": llama_chat_format.MTMDChatHandler,
    "llava-1-5": llama_chat_format.Llava15ChatHandler,
    "llava-1-6": llama_chat_format.Llava16ChatHandler,
    "moondream": llama_chat_format.MoondreamChatHandler,
    "nanollava": llama_chat_format.NanoLlavaChatHandler,
    "llama-3-vision-alpha": llama_chat_format.Llama3VisionAlphaChatHandler,
    "minicpm-v-2.6": llama_chat_format.MiniCPMv26ChatHandler,
    "qwen2.5-vl": llama_chat_format.Qwen25VLChatHandler,
    "gemma4": llama_chat_format.Gemma4ChatHandler,
}


def load_vision(settings: Settings) -> Llama:
    media = settings.media
    assert media.vision_model is not None and media.mmproj is not None
    model, mmproj = (settings.models_dir_path(name) for name in (media.vision_model, media.mmproj))
    for path in (model, mmproj):
        if not path.is_file():
            raise ModelLoadError(f"vision model file {path} does not exist")
    try:
        handler = HANDLERS[media.vision_chat_handler](clip_model_path=str(mmproj), verbose=False)
        return Llama(
            model_path=str(model),
            chat_handler=handler,
            n_ctx=media.vision_n_ctx,
            n_gpu_layers=-1,
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"the vision model {Path(model).name} failed to load: {exc}") from exc


def describe(model: Llama, picture: NormalisedImage, max_tokens: int) -> str:
    """A short description of the picture, focused on what a coding task needs from it."""
    url = "data:image/png;base64," + base64.b64encode(picture.png_bytes()).decode("ascii")
    response = model.create_chat_completion(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": render_prompt("vision_describe.md")},
                ],
            }
        ],
        max_tokens=max_tokens,
        temperature=0.0,
    )
    return (response["choices"][0]["message"]["content"] or "").strip()

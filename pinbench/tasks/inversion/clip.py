"""CLIP as the inversion task's judge: unit-norm image and text features, their cosine, and the
text tower as a function of prompt embeddings (the white-box path of PEZ).

Any CLIP-style dual encoder that transformers loads (``CLIPModel``: the paper's OpenCLIP
ViT-H/14 laion2b_s32b_b79k is ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` on the hub) works by hub
id or directory. Its image processor does what open_clip's eval transform does in the authors'
code (resize the short side, centre crop, RGB, normalise with CLIP's mean and std).

The prompt text is tokenised by the CLIP tokenizer (which lowercases and adds the start and end
tokens), cut at the model's context (77), and pooled at the end token, as open_clip's
``encode_text`` does for PIN (``pic/clip_reward.py``) and PEZ (``optim_utils.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from ...models import LoadedModel
from .images import read_image


class ClipScorer:
    """Cosines between prompts and target images under one CLIP model.

    Args:
        clip: a loaded ``clip`` model (``pinbench.models.load_model(name, "clip")``).
        max_batch_prompts: prompts per text forward pass (at most the text tower's 77 tokens each).
        max_batch_images: target images per image forward pass.
    """

    def __init__(self, clip: LoadedModel, max_batch_prompts: int = 64, max_batch_images: int = 16):
        self.clip = clip
        self.model = clip.model
        self.tokenizer = clip.tokenizer
        self.max_batch_prompts, self.max_batch_images = max_batch_prompts, max_batch_images
        text = self.model.text_model
        self.max_length = min(int(getattr(self.tokenizer, "model_max_length", 77) or 77),
                              int(text.config.max_position_embeddings))
        self.start_id, self.end_id = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id

    @property
    def name(self) -> str:
        return self.clip.name

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @torch.no_grad()
    def image_features(self, paths: Sequence[str | Path]) -> torch.Tensor:
        """[N, D] unit-norm image features of the files (float32)."""
        out = []
        # Images are read and encoded a batch at a time: memory is one batch's pixels and
        # activations, however many target images there are.
        for start in range(0, len(paths), self.max_batch_images):
            images = [read_image(p) for p in paths[start:start + self.max_batch_images]]
            pixels = self.clip.processor(images=images, return_tensors="pt").pixel_values
            feats = self.model.get_image_features(pixel_values=pixels.to(self.clip.device, self.dtype))
            out.append(F.normalize(feats.pooler_output.float(), dim=-1))
        return torch.cat(out) if out else torch.empty(0, self.model.config.projection_dim)

    @torch.no_grad()
    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        """[P, D] unit-norm text features of the prompts (float32)."""
        out = []
        for start in range(0, len(texts), self.max_batch_prompts):
            batch = self.tokenizer(list(texts[start:start + self.max_batch_prompts]), padding=True,
                                   truncation=True, max_length=self.max_length, return_tensors="pt")
            feats = self.model.get_text_features(**batch.to(self.clip.device)).pooler_output
            out.append(F.normalize(feats.float(), dim=-1))
        return torch.cat(out) if out else torch.empty(0, self.model.config.projection_dim)

    def cosine(self, texts: Sequence[str], images: torch.Tensor) -> torch.Tensor:
        """[P] cosine of each prompt's text features with the image features ``images`` [N, D],
        averaged over the N images (one image: PIN's reward)."""
        return (self.text_features(texts) @ images.to(torch.float32).T).mean(-1).cpu()

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """CLIP tokens of each prompt, start and end tokens left out (before the context cut)."""
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False).input_ids]

    # -- the white-box path --------------------------------------------------------------------

    @property
    def token_embeddings(self) -> torch.Tensor:
        """The text tower's token embedding matrix [V, d]."""
        return self.model.text_model.embeddings.token_embedding.weight

    def embedding_features(self, prompt: torch.Tensor) -> torch.Tensor:
        """[D] unit-norm text features of the sequence start, ``prompt`` [L, d], end: the text
        tower run on embeddings and pooled at the end token, as PEZ's ``forward_text_embedding``.
        With the embeddings of token ids it equals ``text_features`` of their text."""
        from transformers.masking_utils import create_causal_mask

        text = self.model.text_model
        ends = text.embeddings.token_embedding(torch.tensor([self.start_id, self.end_id], device=prompt.device))
        rows = torch.cat([ends[:1], prompt.to(ends.dtype), ends[1:]]).unsqueeze(0)
        if rows.shape[1] > self.max_length:
            raise ValueError(f"a prompt of {prompt.shape[0]} tokens does not fit the CLIP context "
                             f"({self.max_length} with the start and end tokens)")
        hidden = text.embeddings(inputs_embeds=rows)
        mask = create_causal_mask(config=text.config, inputs_embeds=hidden, attention_mask=None, cache=None)
        hidden = text.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True).last_hidden_state
        pooled = text.final_layer_norm(hidden)[0, -1]
        return F.normalize(self.model.text_projection(pooled).float(), dim=-1)

"""Textual inversion from images (PIN's third experiment; docs/tasks/inversion.md): find a prompt
whose CLIP text features match a target image's.

One run inverts one image (PIN's ``target_image_idx``); a suite grids ``task.image`` over a
directory's images. Several images in one ``task.image`` (comma-separated) make the reward their
mean cosine, PEZ's multi-image objective.

The reward is the raw cosine (PIN's ``ClipReward``): no z-score, so shaping is scale x cosine +
shift. There is no dev split: the reported prompt is the best-reward prompt seen while training,
as PIN's code keeps its ``max_prompt``. It is then scored on "test": the same targets, its cosine
recomputed from its text, under a second CLIP too when ``eval_clip_model`` names one (a prompt that
only fools the reward's encoder shows there), and its CLIP token count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ...data_locations import explicit_folder, find, not_found
from ...errors import ConfigError, DataError
from ...fields import require
from ...registry import TASKS
from ..base import DatasetInfo, EvalTable, Metric, Task, WhiteBox
from .images import IMAGE_SUFFIXES, read_image

if TYPE_CHECKING:  # torch and CLIP are imported where they are used (tasks/base.py says why)
    import torch

    from .clip import ClipScorer

PAPER_CLIP = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"


@dataclass
class InversionConfig:
    """Textual inversion's fields (``task.<field>``)."""

    image: str = "0.jpg"
    """The target image: a file name in ``data_dir`` (the stem is enough: ``0`` is ``0.jpg``) or a
    path. Several, comma-separated, make the reward their mean cosine (PEZ's multi-image mode)."""
    data_dir: str | None = None
    """Directory of the target images (the PIN authors' 20 Lexica images:
    ``../shared/data/inversion/lexica``); its name is the report's dataset column. Unset: the
    working directory, then the Lexica images of pinbench's data rule."""
    clip_model: str = PAPER_CLIP
    """The reward's CLIP (hub id or directory): the paper's OpenCLIP ViT-H/14 laion2b_s32b_b79k;
    ``openai/clip-vit-base-patch32`` and the like for cheaper runs."""
    clip_dtype: str = "float32"
    """The CLIP weights as loaded: float32 (the authors' precision) or bfloat16."""
    eval_clip_model: str | None = None
    """A second CLIP that scores the chosen prompt at the end (``eval_clip_score``); None: none."""
    max_batch_prompts: int = 64
    """Prompts per CLIP text forward pass."""
    trust_remote_code: bool = False
    """Allow the CLIP models' own code from the hub (only for models you trust)."""

    def __post_init__(self):
        require([(any(e.strip() for e in self.image.split(",")), "image",
                  "a file name or path (several separated by commas)"),
                 (self.clip_dtype in ("float32", "bfloat16"), "clip_dtype", "float32 or bfloat16"),
                 (self.max_batch_prompts >= 1, "max_batch_prompts", ">= 1")], self)


def image_paths(image: str, data_dir: str | Path | None) -> list[Path]:
    """The files ``task.image`` names (see ``InversionConfig.image``); a DataError names the first
    one that is missing and where it was looked for. Without ``data_dir`` a relative name is looked
    for in the working directory, then in the Lexica images found by pinbench's data rule
    (``pinbench.data_locations``)."""
    paths = []
    for entry in (e.strip() for e in image.split(",") if e.strip()):
        given = Path(entry).expanduser()
        names = [entry] + ([f"{entry}{s}" for s in (*IMAGE_SUFFIXES, *(x.upper() for x in IMAGE_SUFFIXES))]
                           if not given.suffix else [])
        if given.is_absolute():
            candidates = [given]
        elif data_dir is None:
            lexica = [found[1] for found in (find("inversion", n) for n in names) if found is not None]
            candidates = [given] + [lexica[0] / n for n in names] if lexica else [given]
        else:
            root = explicit_folder("inversion", data_dir, entry)
            candidates = [root / n for n in names]
        existing = [c for c in candidates if c.is_file()]
        found = existing[0] if existing else None
        same_place = list({(st.st_dev, st.st_ino): c for c in existing if found is not None and c.parent == found.parent
                           for st in [c.stat()]}.values())  # one file under two spellings (.JPG, .jpg) is one
        if not given.suffix and len(same_place) > 1:  # 'two' with two.jpg and two.png beside each other
            raise DataError(f"target image '{entry}' matches {len(same_place)} files "
                            f"({', '.join(c.name for c in same_place)}) in {found.parent}; name it with its suffix")
        if found is None and "," in image and any((Path(d or ".") / image.strip()).is_file()
                                                  for d in (data_dir, None)):
            raise DataError(f"target image '{image.strip()}' is one file, but a comma separates images in "
                            "task.image: rename the file without the comma")
        if found is None:
            folder = next((c for c in candidates if c.is_dir()), None)
            if folder is not None:
                raise DataError(f"target image '{folder}' is a directory; name an image file in it "
                                "(or set task.data_dir to it and name the image)")
            if given.is_absolute():
                raise DataError(f"target image '{entry}' does not exist")
            if data_dir is None:
                raise not_found("inversion", entry, "lexica",
                                f"target image '{entry}' (not in the working directory)")
            raise DataError(f"target image '{entry}' not found in {data_dir}")
        same = next((p for p in paths if os.path.samefile(p, found)), None)  # 'red' and 'red.png', a path, a link
        if same is not None:  # one target counted twice, weighed twice in the reward
            raise DataError(f"target image '{found}' is named twice in task.image ('{image}'"
                            + (f": also as '{same}'" if same != found else "") + "); name each image once")
        paths.append(found)
    if not paths:  # "," or "$A,$B" with both unset: a mean over no image is NaN
        raise DataError(f"task.image '{image}' names no image; give one or more names, separated by commas")
    return paths


@TASKS.register("inversion")
class Inversion(Task):
    """Textual inversion: a prompt whose CLIP text features match target images'.

    Args:
        config: the task's fields.
        clip: the reward's ``ClipScorer``.
        eval_clip: the second judge (``eval_clip_model``), loaded on first use when None.
        device: where a second judge is loaded.
    """

    config_class = InversionConfig
    metrics = (
        Metric("reward", True, "cosine of the CLIP text features of the prompt and the target image's "
                               "(mean over targets) under clip_model; the unshaped training reward"),
        Metric("eval_clip_score", True, "the same cosine under eval_clip_model (test only)"),
        Metric("clip_tokens", False, "CLIP tokens of the prompt text (start and end tokens left out)"),
    )
    splits = ("train", "test")
    selection_split, selection_metric, report_split = "train", "reward", "test"
    reward_kind = "similarity"  # PIN's ClipReward returns the raw cosine

    def __init__(self, config: InversionConfig, clip: ClipScorer, eval_clip: ClipScorer | None = None,
                 device: str = "cpu"):
        self.config, self.clip, self.device = config, clip, device
        self._eval_clip = eval_clip
        self.paths = image_paths(config.image, config.data_dir)
        self.images = clip.image_features(self.paths)  # once per run: PIN's ClipReward.__init__
        self._eval_images: torch.Tensor | None = None

    @classmethod
    def check_data(cls, config: InversionConfig, run, splits=None) -> None:
        for path in image_paths(config.image, config.data_dir):
            read_image(path)

    @classmethod
    def local_path_values(cls, values: dict) -> dict:
        """``task.image`` entries that are files relative to the working directory (read there
        first when ``data_dir`` is unset), made absolute: elsewhere (a trial's directory, a report
        run from another folder) the same name would find another file or a Lexica image."""
        image = values.get("task.image")
        if not isinstance(image, str) or values.get("task.data_dir") is not None:
            return {}
        entries = [e.strip() for e in image.split(",")]
        absolute = [os.path.abspath(os.path.expanduser(e)) if e and Path(e).expanduser().is_file()
                    and not Path(e).is_absolute() else e for e in entries]
        return {} if absolute == entries else {"task.image": ",".join(absolute)}

    @classmethod
    def build(cls, config: InversionConfig, run) -> "Inversion":
        return cls(config, _scorer(config.clip_model, config, run.device), device=run.device)

    # -- pinbench eval and datasets --------------------------------------------------------------

    eval_dtype_field = "clip_dtype"
    title = "inversion"

    def eval_table(self, prompts, outputs, split: str, progress=None) -> EvalTable:
        """Each prompt's CLIP score against the target images (test: also under the second CLIP,
        ``eval_clip_model``) and its CLIP token count."""
        table = super().eval_table(prompts, outputs, split, progress)
        table.title = (f"inversion: {', '.join(p.name for p in self.paths)} ({split}) "
                       f"with CLIP {self.config.clip_model}")
        return table

    @classmethod
    def list_datasets(cls, dataset_files=()) -> list[DatasetInfo]:
        from ...data_download import SOURCES

        return [DatasetInfo(name, "target images") for name, s in SOURCES.items() if s.kind == cls.name]

    @classmethod
    def dataset_name(cls, config: InversionConfig) -> str:
        """The image set: the name of ``data_dir``, else of the first image's directory."""
        if config.data_dir:
            return explicit_folder("inversion", config.data_dir).expanduser().resolve().name
        try:  # the folder the data rule found the image in (lexica), else the path's own
            return image_paths(config.image, None)[0].resolve().parent.name
        except DataError:
            return Path(config.image.split(",")[0].strip()).expanduser().resolve().parent.name

    # -- pinbench report: the inversion table and figure (report.py) ----------------------------

    report_runs = "images × seeds"  # a run inverts one image (or a list) with one seed

    report_module = ".report"  # report_sections(context), imported when a report runs

    @classmethod
    def report_prompt_where(cls, row) -> str:
        """The target image (the dataset names only the image set)."""
        v = row.get("task.image")
        return f", image {v}" if isinstance(v, str) else ""

    def split_size(self, name: str) -> int:
        return len(self.paths)  # a prompt is scored against every target image

    def eval_clip(self) -> ClipScorer | None:
        if self._eval_clip is None and self.config.eval_clip_model:
            self._eval_clip = _scorer(self.config.eval_clip_model, self.config, self.device)
        if self._eval_clip is not None and self._eval_images is None:
            self._eval_images = self._eval_clip.image_features(self.paths)
        return self._eval_clip

    def score(self, prompts: Sequence[str], split: str = "train") -> dict:
        """``reward`` (the cosine) and ``clip_tokens`` per prompt; on test also
        ``eval_clip_score`` under the second CLIP (NaN without one)."""
        if split not in self.splits:
            raise ConfigError(f"task 'inversion' has no split '{split}'; it has {list(self.splits)}")
        import torch

        prompts = list(prompts)
        out = {"reward": self.clip.cosine(prompts, self.images),
               "clip_tokens": torch.tensor(self.clip.token_counts(prompts), dtype=torch.float32)}
        if split == "test":
            judge = self.eval_clip()
            out["eval_clip_score"] = judge.cosine(prompts, self._eval_images) if judge is not None \
                else torch.full((len(prompts),), float("nan"))
        return out

    def differentiable(self) -> "ClipWhiteBox":
        return ClipWhiteBox(self.clip, self.images)


def _scorer(name: str, config: InversionConfig, device: str) -> ClipScorer:
    from ...models import load_model
    from .clip import ClipScorer

    clip = load_model(name, "clip", dtype=config.clip_dtype, device=device,
                      trust_remote_code=config.trust_remote_code)
    return ClipScorer(clip, config.max_batch_prompts)


class ClipWhiteBox(WhiteBox):
    """1 - cosine(image, text) as a function of the prompt's CLIP token embeddings (PEZ's loss)."""

    def __init__(self, clip: ClipScorer, images: torch.Tensor):
        self.clip, self.images = clip, images
        self.model_name = clip.name

    @property
    def vocabulary(self) -> torch.Tensor:
        return self.clip.token_embeddings

    def special_ids(self) -> list[int]:
        return list(self.clip.tokenizer.all_special_ids)

    def decode(self, ids: Sequence[int]) -> str:
        return self.clip.tokenizer.decode(list(ids), clean_up_tokenization_spaces=False).strip()

    def encode(self, text: str) -> list[int]:
        return self.clip.tokenizer(text, add_special_tokens=False).input_ids

    @property
    def num_items(self) -> int:
        """The target images (PEZ's ``batch_size`` draws from them)."""
        return self.images.shape[0]

    def loss(self, prompt: torch.Tensor, batch: Sequence[int]) -> torch.Tensor:
        """1 - mean cosine with the batch's images (PEZ: ``loss_weight`` x (1 - cos), weight 1)."""
        text = self.clip.embedding_features(prompt)
        return 1 - (self.images[list(batch)].to(text.device) @ text).mean()


def _smoke_settings(cls, config: InversionConfig, run, workdir: Path) -> tuple[dict, list[str]]:
    """``pinbench sweep --smoke`` (pinbench/smoke.py): one target image, the trial's first; a made-up
    224 x 224 image in ``workdir`` when it cannot be found."""
    try:
        paths = image_paths(config.image, config.data_dir)
    except DataError:
        import torch
        from PIL import Image

        path = workdir / "made-up.png"
        generator = torch.Generator().manual_seed(0)
        pixels = torch.randint(0, 256, (224, 224, 3), generator=generator, dtype=torch.uint8).numpy()
        Image.fromarray(pixels, "RGB").save(path)
        return {"task.image": str(path), "task.data_dir": None}, [f"made-up target image ({config.image!r} not found)"]
    if len(paths) == 1:
        return {}, []
    return {"task.image": str(paths[0]), "task.data_dir": None}, [f"one target image of {len(paths)}: {paths[0].name}"]


Inversion.smoke_settings = classmethod(_smoke_settings)

"""The target image files of textual inversion: which suffixes name an image, and reading one
within a size limit. No torch here: a suite's data check (`pinbench sweep --dry-run`) reads the
images without loading CLIP."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


MAX_IMAGE_PIXELS = 40_000_000  # a 40-megapixel target is read; larger ones are refused before decoding


def read_image(path: str | Path):
    """An image file as RGB (PIL), or a DataError naming the file. The size is checked from the
    header before any pixel is decoded (a small file can declare billions of pixels); palette,
    grey, CMYK and alpha images become RGB as PIL converts them (PIN's code does the same); 16-bit and
    float grey images, which PIL's conversion would clip to white, are scaled to 8 bits first."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            if getattr(image, "n_frames", 1) > 1:  # which frame would be the target is a guess
                raise DataError(f"target image '{path}' has {image.n_frames} frames (an animation); give a "
                                "still image (one frame saved as PNG or JPEG)")
            if width * height > MAX_IMAGE_PIXELS:
                raise DataError(f"target image '{path}' is {width} x {height} pixels, over the limit of "
                                f"{MAX_IMAGE_PIXELS:,}; downscale it (CLIP sees 224 x 224)")
            if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16/32-bit grey: scale to 8 bits
                array = np.asarray(image, dtype=np.float64)
                if not np.isfinite(array).all():  # a NaN made min and max NaN: the image came out black
                    bad = int((~np.isfinite(array)).sum())
                    raise DataError(f"target image '{path}' has {bad:,} pixel(s) that are not finite numbers "
                                    "(NaN or infinity)")
                low, high = float(array.min()), float(array.max())
                scaled = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
                return Image.fromarray(scaled.round().astype(np.uint8), "L").convert("RGB")
            return image.convert("RGB")  # alpha dropped, as PIN's code (PIL's convert) does
    except FileNotFoundError:
        raise DataError(f"target image '{path}' does not exist") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"target image '{path}' is too large to decode ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"target image '{path}' cannot be read as an image ({exc})") from None

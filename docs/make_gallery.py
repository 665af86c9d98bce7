"""Write the README gallery: every figure PNG of a results folder as a small thumbnail.

Usage: ``python docs/make_gallery.py [FIGURES_DIR] [GALLERY_DIR]`` (defaults:
``results/smoke/figures``, the smoke config's figures, and ``docs/gallery``). Each ``NAME.png``
becomes ``GALLERY_DIR/NAME.png``, ``THUMBNAIL_WIDTH`` pixels wide (aspect kept) in a 256-colour
palette, written atomically.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from lossatlas.io import atomic_path

THUMBNAIL_WIDTH = 720


def make_gallery(figures: Path, gallery: Path) -> list[Path]:
    """Thumbnails of every ``figures/*.png`` in ``gallery``; an empty ``figures`` is an error
    naming it."""
    sources = sorted(figures.glob("*.png"))
    if not sources:
        raise SystemExit(f"no PNG figure in {figures}: build the figures first (make reproduce)")
    gallery.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        with Image.open(source) as image:
            height = round(image.height * THUMBNAIL_WIDTH / image.width)
            thumbnail = image.convert("RGB").resize((THUMBNAIL_WIDTH, height), Image.LANCZOS)
        target = gallery / source.name
        with atomic_path(target) as tmp:
            thumbnail.quantize(256).save(tmp, format="PNG", optimize=True)
        written.append(target)
    return written


if __name__ == "__main__":
    figures_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("results/smoke/figures")
    gallery_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("docs/gallery")
    for path in make_gallery(figures_dir, gallery_dir):
        print(path)

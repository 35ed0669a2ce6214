"""Shared fixtures: small real images made with Pillow in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest


def make_png(path: Path, width: int, height: int) -> Path:
    from PIL import Image

    Image.new("RGB", (width, height), (40, 90, 160)).save(path, format="PNG")
    return path


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    """A 800 x 500 PNG: 2 x 1 tiles of 560 px."""
    return make_png(tmp_path / "chart.png", 800, 500)


@pytest.fixture
def not_an_image(tmp_path: Path) -> Path:
    path = tmp_path / "notes.png"
    path.write_text("these are notes, not pixels\n")
    return path

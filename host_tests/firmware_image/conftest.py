"""The MKR GSM 1400 image, built once per cache (tools/ztp/firmware/_image.py): the board's
default build and the too-small 184K one. Each is ~30 s on 2 cores the first time, then a
cache hit; a missing ARM toolchain skips these tests, or fails them under ./run test."""

from __future__ import annotations

import pytest
from ztp.firmware._image import Image, ImageError, build_image

from ..peers import missing


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "image: builds the MKR GSM 1400 firmware image (ARM toolchain; ~30 s per "
        "uncached build, cached under the ztp cache)")


def _build(codesize: str | None = None) -> Image:
    try:
        return build_image(codesize=codesize)
    except ImageError as e:
        if "apt-get install" in str(e):
            missing(str(e))
        raise


@pytest.fixture(scope="session")
def image() -> Image:
    return _build()


@pytest.fixture(scope="session")
def overflow() -> ImageError:
    # the stock SAMD21 code region: the frozen lib/ does not fit in it
    with pytest.raises(ImageError) as e:
        _build("184K")
    return e.value

"""The colour dSprites variants of disentanglement_lib (Locatello et al. 2019): color, noisy and
scream dSprites. Each is dSprites' binary sprite mask ``m`` (1 on the sprite), with the same
five factors in the same order, turned into 3 channels with values in [0, 1]:

* color:  ``x = m * c`` with ``c ~ U(0.5, 1)^3`` per image (coloured sprite on black);
* noisy:  ``x = min(m + n, 1)`` with ``n ~ U(0, 1)`` per pixel and channel (white on noise);
* scream: ``b = (crop + s) / 2`` with a random 64x64 crop of the painting (its top-left row
  uniform in ``[0, H - 64)``, column in ``[0, W - 64)``) and ``s ~ U(0, 1)^3``; ``x = b`` off
  the sprite and ``x = 1 - b`` on it.

Images are uint8 ``round(255 x)`` (scream: ``v = floor(255 b + 1/2)`` off the sprite and
``255 - v`` on it). The random parts are nuisance, not factors, and a pure function of (source
``seed``, image index ``i``), so an image is the same in every batch and every run. They come
from a counter-based generator: with SplitMix64's finaliser ``mix`` (Stafford's variant 13),
``γ = 0x9E3779B97F4A7C15`` and arithmetic mod 2^64,

    key = mix(seed),   z_i = mix(key + (i + 1) γ),   w_ij = mix(z_i + (j + 1) γ),

i.e. image ``i`` reads the SplitMix64 stream seeded with ``z_i``. Uniform floats are
``u_ij = (w_ij >> 11) / 2^53``: color's ``c = 0.5 + u_i(0..2) / 2``; scream's crop corner is
``(floor(u_i0 (H - 64)), floor(u_i1 (W - 64)))`` and ``s = u_i(2..4)``. Noisy's noise element
``e = 4096 channel + 64 row + col`` is ``n = (k + 1/2) / 2^16``, with ``k`` the 16-bit word
``e mod 4`` (from the low end) of ``w_i(e // 4)``.
"""

from __future__ import annotations

import shutil
import urllib.request
from abc import abstractmethod
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from vaelab.data.base import DataError, GroundTruthSource
from vaelab.data.dsprites import IMAGE_SIZE, ProceduralDSprites
from vaelab.data.files import corrupt_error, missing_error, staged_download

GAMMA = 0x9E3779B97F4A7C15
MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
SCREAM_FILE = "scream.jpg"
SCREAM_URL = "https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg"
THUMBNAIL = (350, 274)  # disentanglement_lib's scream.thumbnail((350, 274, 3))
COLOUR_BLOCK = 64  # images coloured at a time: their arrays stay in the CPU cache
USER_AGENT = "vaelab (VAE / disentanglement research; python urllib)"  # Wikimedia needs one


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, in place on a uint64 array (wrapping arithmetic)."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(MIX[0])
    x ^= x >> np.uint64(27)
    x *= np.uint64(MIX[1])
    x ^= x >> np.uint64(31)
    return x


def hash_words(seed: int, indices: np.ndarray, n_words: int) -> np.ndarray:
    """uint64 ``w_ij`` ``[len(indices), n_words]`` of the module docstring."""
    key = mix64(np.array([seed % 2**64], dtype=np.uint64))
    i = np.asarray(indices, dtype=np.int64).astype(np.uint64) + np.uint64(1)
    z = mix64(key + i * np.uint64(GAMMA))
    steps = (np.arange(1, n_words + 1, dtype=np.uint64) * np.uint64(GAMMA))[None, :]
    return mix64(z[:, None] + steps)


def uniform(words: np.ndarray) -> np.ndarray:
    """Floats ``(w >> 11) / 2^53`` in [0, 1) from uint64 words."""
    return (words >> np.uint64(11)).astype(np.float64) * 2.0**-53


class DSpritesVariant(GroundTruthSource):
    """dSprites' factors and masks (from a ``ProceduralDSprites(cache_dir, use_file)``) with
    3-channel nuisance drawn from ``seed`` (a property of the data set, not the run's seed)."""

    base_class: type[ProceduralDSprites] = ProceduralDSprites

    binary = False
    streamed = True  # 737,280 x 3 x 64 x 64 = 9 GiB: read batch by batch
    factor_names = ProceduralDSprites.factor_names
    factor_sizes = ProceduralDSprites.factor_sizes
    factor_values = ProceduralDSprites.factor_values
    n_words: int  # hash words per image
    lazy = ("_masks",)  # large or open state, rebuilt on first use after unpickling

    def __init__(
        self, cache_dir: str | Path | None = None, use_file: bool = True, seed: int = 0
    ) -> None:
        self.base = self.base_class(cache_dir, use_file)
        self.seed = int(seed)
        self._masks: GroundTruthSource | None = None  # the base, or DeepMind's file it found

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, IMAGE_SIZE, IMAGE_SIZE)

    def __getstate__(self) -> dict:
        """Pickled (e.g. into loader workers) without ``lazy`` state: DeepMind's decompressed
        masks (2.8 GiB) and the painting's crops (a 400 MB copy) are read again when used."""
        return {k: None if k in self.lazy else v for k, v in self.__dict__.items()}

    def check_available(self) -> None:
        """Check the base's file once and keep it: ``base.images`` would look it up (and
        read DeepMind's ``.npz`` whole) again on every call."""
        if self._masks is None:
            found = self.base.real_file()
            if found is not None:
                found.check_available()
            self._masks = found or self.base

    def prepare_streaming(self) -> None:
        """Batches read one by one take their masks from the base's cache (written now when
        missing) rather than rendering them (~5,000 images/s) every step."""
        self.check_available()
        cache = self.base.cache_path
        if self._masks is self.base and cache is not None and not cache.exists():
            self.base.write_cache()

    def images(self, indices: np.ndarray | None = None, chunk: int = 4096) -> torch.Tensor:
        """uint8 ``[N, 3, 64, 64]``: the base masks of ``indices`` (all when None, 9 GiB), read
        ``chunk`` at a time and coloured in cache-sized blocks of ``COLOUR_BLOCK``."""
        rows = np.arange(len(self)) if indices is None else np.asarray(indices, np.int64)
        rows = rows.reshape(-1)
        if ((rows < 0) | (rows >= len(self))).any():
            raise IndexError(f"image indices out of range for {len(self)} images")
        self.check_available()
        out = np.empty((len(rows), *self.image_shape), dtype=np.uint8)
        for start in range(0, len(rows), chunk):
            stop = min(start + chunk, len(rows))
            masks = self._masks.images(rows[start:stop])[:, 0].numpy()  # 0 / 255
            for a in range(start, stop, COLOUR_BLOCK):
                b = min(a + COLOUR_BLOCK, stop)
                words = hash_words(self.seed, rows[a:b], self.n_words)
                out[a:b] = self.colour(masks[a - start : b - start], words)
        return torch.from_numpy(out)

    @abstractmethod
    def colour(self, masks: np.ndarray, words: np.ndarray) -> np.ndarray:
        """uint8 ``[n, 3, 64, 64]`` from masks ``[n, 64, 64]`` (0 / 255) and hash words."""


class ColorDSprites(DSpritesVariant):
    """``x = m * c``, ``c ~ U(0.5, 1)^3`` per image: sprite pixels ``round(255 c)``, rest 0."""

    name = "color_dsprites"
    n_words = 3

    def colour(self, masks: np.ndarray, words: np.ndarray) -> np.ndarray:
        c = np.rint(255 * (0.5 + 0.5 * uniform(words))).astype(np.uint8)  # [n, 3]
        return masks[:, None] & c[:, :, None, None]  # 255 & c = c, 0 & c = 0


class NoisyDSprites(DSpritesVariant):
    """``x = min(m + n, 1)``, ``n ~ U(0, 1)`` per pixel and channel: white sprite on noise."""

    name = "noisy_dsprites"
    n_words = 3 * IMAGE_SIZE * IMAGE_SIZE // 4  # four 16-bit noise words per hash word

    def colour(self, masks: np.ndarray, words: np.ndarray) -> np.ndarray:
        k = words.astype("<u8", copy=False).view("<u2").astype(np.uint32)
        k *= 510  # round(255 (k + 1/2) / 2^16) = floor((510 k + 255 + 2^16) / 2^17)
        k += 255 + 2**16
        k >>= 17
        x = k.astype(np.uint8).reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE)
        return x | masks[:, None]  # the sprite (255) saturates: min(m + n, 1)


class ScreamDSprites(DSpritesVariant):
    """Sprite as the inverse of a shifted crop of Munch's The Scream: ``b = (crop + s) / 2``
    off the sprite, ``1 - b`` on it. The painting is ``<data_dir>/<file_name>`` (default: the
    ``cache_dir``), shrunk with PIL's ``thumbnail((350, 274))`` as in disentanglement_lib;
    ``download`` fetches it from Wikimedia Commons when missing."""

    name = "scream_dsprites"
    n_words = 5
    lazy = ("_masks", "_windows")

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        use_file: bool = True,
        seed: int = 0,
        data_dir: str | Path | None = None,
        file_name: str = SCREAM_FILE,
        download: bool = True,
    ) -> None:
        super().__init__(cache_dir, use_file, seed)
        if data_dir is None and cache_dir is None:
            raise ValueError("ScreamDSprites needs data_dir: the folder that holds scream.jpg")
        self.path = Path(data_dir if data_dir is not None else cache_dir) / file_name
        self.download = download
        self._windows: np.ndarray | None = None  # every 64x64 crop, [H-63, W-63, 3, 64, 64]

    def check_available(self) -> None:
        super().check_available()
        if self._windows is not None:
            return
        if not self.path.is_file() and self.download:
            try:
                staged_download(
                    self.path.parent,
                    self._fetch,
                    keep=[self.path.name],
                    needed=lambda: not self.path.is_file(),
                )
            except Exception as error:  # any failure of the network or the file
                reason = f"the download failed: {type(error).__name__}: {error}"
                raise self._missing(reason.replace("\n", " ")) from error
        if not self.path.is_file():
            raise self._missing("" if self.download else "download is off")
        painting = np.ascontiguousarray(read_painting(self.path).transpose(2, 0, 1))  # [3, H, W]
        windows = np.lib.stride_tricks.sliding_window_view(painting, (64, 64), axis=(1, 2))
        self._windows = np.moveaxis(windows, 0, 2)

    def _missing(self, reason: str) -> DataError:
        where = f"{SCREAM_URL} (Edvard Munch, The Scream, 1893; public domain)"
        return missing_error(self.name, self.path.parent, [self.path.name], where, reason)

    def _fetch(self, staging: Path) -> None:
        request = urllib.request.Request(SCREAM_URL, headers={"User-Agent": USER_AGENT})
        target = staging / self.path.name
        with urllib.request.urlopen(request) as response, target.open("wb") as f:
            shutil.copyfileobj(response, f)
        read_painting(target)  # only a readable image is moved into place

    def colour(self, masks: np.ndarray, words: np.ndarray) -> np.ndarray:
        n_rows, n_cols = self._windows.shape[:2]  # H - 63, W - 63 crop corners
        u = uniform(words)
        rows = (u[:, 0] * (n_rows - 1)).astype(np.int64)  # uniform in [0, H - 64)
        cols = (u[:, 1] * (n_cols - 1)).astype(np.int64)
        shift = (255 * u[:, 2:5]).astype(np.float32)[:, :, None, None]  # 255 s
        b = self._windows[rows, cols].astype(np.float32)  # [n, 3, 64, 64], 0..255
        b += shift + 1
        b *= 0.5  # 255 (crop + s) / 2 + 1/2
        return b.astype(np.uint8) ^ masks[:, None]  # floor; v ^ 255 = 255 - v on the sprite


def read_painting(path: Path) -> np.ndarray:
    """The painting as uint8 RGB ``[H, W, 3]`` after ``thumbnail((350, 274))``; a
    ``DataError`` naming the file when it is not a readable image larger than 64x64."""
    try:
        with PIL.Image.open(path) as image:
            rgb = image.convert("RGB")
        rgb.thumbnail(THUMBNAIL)
        array = np.asarray(rgb, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as error:
        raise corrupt_error(
            path, f"it is not a readable image ({type(error).__name__}: {error})"
        ) from None
    if min(array.shape[:2]) <= 64:
        size = f"{array.shape[1]}x{array.shape[0]}"
        raise corrupt_error(path, f"it is {size} pixels after thumbnail{THUMBNAIL}, need > 64")
    return array

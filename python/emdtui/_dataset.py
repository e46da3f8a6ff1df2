"""The dataset object of :func:`emdtui.open`: numpy-style frame access and the analyses of the
``emdtui`` command line, each run by the same Rust engine (the CLI's parameters and defaults)."""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np

from . import _emdtui
from ._progress import run_with_progress

ProgressArg = Union[None, bool, Callable[[int, int], Any]]


def _value(v: Any) -> str:
    """One CLI flag value: pairs as ``A,B``, ranges as ``R0:R1,C0:C1``, paths as text."""
    if isinstance(v, (tuple, list)):
        if len(v) == 2 and all(isinstance(x, (tuple, list, range, slice)) for x in v):
            parts = []
            for x in v:
                if isinstance(x, slice):
                    x = (x.start, x.stop)
                elif isinstance(x, range):
                    x = (x.start, x.stop)
                parts.append(f"{x[0]}:{x[1]}")
            return ",".join(parts)
        return ",".join(str(x) for x in v)
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    return str(v)


def flags(**kw: Any) -> list:
    """CLI flags of keyword arguments: ``inner=5`` -> ``--inner=5``, ``no_cache=True`` ->
    ``--no-cache``; None and False are left out (the CLI's default applies)."""
    out = []
    for k, v in kw.items():
        if v is None or v is False:
            continue
        name = "--" + k.replace("_", "-")
        out.append(name if v is True else f"{name}={_value(v)}")
    return out


def _axis(key: Any, n: int, name: str) -> Tuple[int, int, Any]:
    """Rows (or columns) to read for one index and the index into what was read."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        i = int(key)
        if i < -n or i >= n:
            raise IndexError(f"scan {name} {i} is outside 0..{n - 1}")
        i %= n
        return i, i + 1, 0
    if isinstance(key, slice):
        r = range(*key.indices(n))
        if len(r) == 0:
            return 0, 0, slice(None)
        lo, hi = min(r), max(r) + 1
        stop = r[-1] - lo + (1 if r.step > 0 else -1)
        return lo, hi, slice(r[0] - lo, stop if stop >= 0 else None, r.step)
    raise TypeError(f"scan {name}: use an integer or a slice (got {type(key).__name__})")


class Dataset:
    """A ``.mib`` acquisition (single file or a numbered set) or an EMD datacube.

    ``ds[row, col]`` is one frame, ``ds[0:8, :]`` a block of frames (scan rows, scan cols,
    detector rows, detector cols), read by the Rust reader with the GIL released. The methods
    run the ``emdtui`` subcommands of the same name (same parameters, defaults and messages) and
    return numpy arrays and dicts instead of writing files.
    """

    def __init__(self, path: Union[str, os.PathLike], globals_: list, open_kwargs: Dict[str, Any]):
        self._open_kwargs = dict(open_kwargs)
        self._ds = _emdtui.Dataset(os.fspath(path), list(globals_))
        self._metadata: Optional[dict] = None

    # --- pickling: path and options only (no open file handles) ---
    def __reduce__(self):
        from . import open as _open

        return (_reopen, (_open, os.fspath(self.path), self._open_kwargs))

    # --- description ---
    @property
    def path(self) -> str:
        """The file opened."""
        return os.fspath(self._ds.path)

    @property
    def shape(self) -> Tuple[int, int, int, int]:
        """(scan rows, scan cols, detector rows, detector cols)."""
        return tuple(self._ds.shape)

    @property
    def ndim(self) -> int:
        return 4

    @property
    def dtype(self) -> np.dtype:
        """The stored pixel type (uint8, uint16 or uint32)."""
        return np.dtype(self._ds.dtype)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def positions_present(self) -> int:
        """Scan positions with frames (fewer than rows x cols for an interrupted acquisition)."""
        return self._ds.positions_present

    @property
    def fingerprint(self) -> str:
        """Identity of the data, as the caches key it."""
        return self._ds.fingerprint

    @property
    def metadata(self) -> dict:
        """What ``emdtui info --json FILE`` prints (headers, scan, bad pixels, caches...)."""
        if self._metadata is None:
            self._metadata = json.loads(self._ds.info_json())
        return self._metadata

    @property
    def calibration(self) -> dict:
        """The calibration in effect: ``r`` (scan step, unit), ``q`` (detector step, unit),
        ``alpha_mrad``; from ``open(..., scan_step=, alpha=, q_pixel=)``, else stored in the EMD
        or remembered for the ``.mib``. Missing values are None."""
        return json.loads(self._ds.calibration_json())

    def __repr__(self) -> str:
        return f"<emdtui.Dataset {self.path!r} shape={self.shape} dtype={self.dtype}>"

    def __len__(self) -> int:
        return self.shape[0]

    # --- frames ---
    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (4 - len(key) + 1) + key[i + 1 :]
        if len(key) > 4:
            raise IndexError(f"too many indices: the dataset is 4-D, {len(key)} given")
        key = key + (slice(None),) * (4 - len(key))
        rows, cols = self.shape[:2]
        r0, r1, ri = _axis(key[0], rows, "row")
        c0, c1, ci = _axis(key[1], cols, "column")
        block = self._ds.read_rect(r0, r1, c0, c1)
        return block[(ri, ci) + tuple(key[2:])]

    def __array__(self, dtype=None, copy=None):
        a = self[:, :]
        return a if dtype is None else a.astype(dtype)

    def frame(self, row: int, col: int) -> np.ndarray:
        """The frame at scan position (row, col)."""
        return self[row, col]

    # --- analyses (the CLI's subcommands) ---
    def overview(
        self,
        detector: Optional[str] = None,
        *,
        inner: Optional[float] = None,
        outer: Optional[float] = None,
        center: Optional[Tuple[float, float]] = None,
        response: Optional[str] = None,
        roi: Any = None,
        no_cache: bool = False,
        progress: ProgressArg = None,
        full: bool = False,
    ):
        """A virtual-detector image, as ``emdtui overview FILE --detector DETECTOR``.

        ``detector``: sum (default), bf, adf, comx, comy, dpc, dpc-angle, com, mask:PATH, mean,
        max, point:R,C[,RAD], rect:R0:R1,C0:C1, pattern:R,C[,FRAC]. ``inner``/``outer``: radii in
        detector pixels (BF radius for bf); ``center``: (cy, cx), found from the mean pattern by
        default; ``response``: sum or max; ``roi``: scan region ((r0, r1), (c0, c1)) for mean.
        Returns a float32 array (scan rows x cols; detector rows x cols for mean and max), for
        ``com`` a pair (comx, comy). ``full=True`` returns ``(result, report)`` with the geometry.
        Results are cached as the CLI caches them unless ``no_cache``.
        """
        args = flags(detector=detector, inner=inner, outer=outer, center=center, response=response, roi=roi,
                     no_cache=no_cache)
        out = run_with_progress(self._ds.overview, args, progress, "overview")
        im = out["images"]
        res = (im["comx"], im["comy"]) if "comx" in im else im["image"]
        return (res, json.loads(out["report"])) if full else res

    def convert(
        self,
        out: Union[None, str, os.PathLike] = None,
        *,
        compress: Union[None, bool, str] = None,
        bin_detector: Optional[int] = None,
        bin_mode: Optional[str] = None,
        bin_scan: Optional[int] = None,
        crop: Any = None,
        sum_short_axis: bool = False,
        reverse_energy: bool = False,
        dispersion: Optional[float] = None,
        offset: Optional[float] = None,
        force: bool = False,
        progress: ProgressArg = None,
    ) -> dict:
        """Convert to EMD (HDF5) with the overviews cached inside, as ``emdtui convert``.

        ``out``: default next to the input with ``.emd``; ``compress``: True (gzip:1),
        ``"gzip:1".."gzip:9"``, ``"lz4"`` or ``"none"``; ``bin_detector`` 2..16, ``bin_mode``
        sum or mean, ``bin_scan`` N, ``crop`` ((r0, r1), (c0, c1)); ``sum_short_axis`` writes a
        3-D spectrum image (automatic for EELS data). Returns the report (output, bytes, seconds).
        """
        args = flags(output=out, compress=compress, bin_detector=bin_detector, bin_mode=bin_mode, bin_scan=bin_scan,
                     crop=crop, sum_short_axis=sum_short_axis, reverse_energy=reverse_energy,
                     dispersion=dispersion, offset=offset, force=force)
        if compress is True:
            args = [a if a != "--compress" else "--compress=gzip" for a in args]
        return json.loads(run_with_progress(self._ds.convert, args, progress, "convert"))

    def fft(
        self,
        *,
        crop: Optional[str] = None,
        axes: Optional[str] = None,
        bin: Optional[int] = None,
        center: Optional[Tuple[float, float]] = None,
        radius: Optional[float] = None,
        out: Union[None, str, os.PathLike] = None,
        progress: ProgressArg = None,
    ) -> dict:
        """The 4-D FFT into the EMD cache, as ``emdtui fft`` (a ``.mib`` is converted first).

        ``crop``: bf (default: the bright-field disk plus margin) or full; ``axes``: scan
        (default) or all; ``bin``: detector binning; ``out``: the EMD for a ``.mib`` (default:
        next to it). Returns ``{"emd": path, "report": {...}}`` (report None when the cache was
        already complete).
        """
        args = flags(crop=crop, axes=axes, bin=bin, center=center, radius=radius, output=out)
        return json.loads(run_with_progress(self._ds.fft, args, progress, "fft"))

    def fft_estimate(
        self,
        *,
        crop: Optional[str] = None,
        axes: Optional[str] = None,
        bin: Optional[int] = None,
        center: Optional[Tuple[float, float]] = None,
        radius: Optional[float] = None,
        out: Union[None, str, os.PathLike] = None,
        sample_frames: Optional[int] = None,
    ) -> dict:
        """What :meth:`fft` with the same arguments would need, computing nothing, as
        ``emdtui fft --estimate --json``: output and scratch bytes, free space where they go,
        memory at the budget, and a time from ``sample_frames`` (default 256) measured frames.
        """
        args = flags(crop=crop, axes=axes, bin=bin, center=center, radius=radius, output=out, sample_frames=sample_frames)
        return json.loads(self._ds.fft_estimate(args))

    def dpc(
        self,
        *,
        rotation: Union[None, str, float] = None,
        flip: Union[None, str, bool] = None,
        descan: Optional[str] = None,
        mask: Optional[str] = None,
        no_cache: bool = False,
        progress: ProgressArg = None,
    ) -> dict:
        """Differential phase contrast, as ``emdtui dpc``: ``{"phase", "comx", "comy"}`` float32
        arrays (scan rows x cols) and the report of ``--json`` (rotation_deg, flip, curl...).

        ``rotation``: auto (default, minimum curl) or degrees; ``flip``: auto, yes, no (or a
        bool); ``descan``: plane (default) or none; ``mask``: bf (default), annulus:R1,R2 or PATH.
        """
        if isinstance(flip, bool):
            flip = "yes" if flip else "no"
        args = flags(rotation=rotation, flip=flip, descan=descan, mask=mask, no_cache=no_cache)
        out = run_with_progress(self._ds.dpc, args, progress, "dpc")
        res = dict(out["images"])
        res["report"] = json.loads(out["report"])
        return res

    def tcbf(
        self,
        *,
        upsample: Optional[int] = None,
        manual: bool = False,
        max_shift: Optional[float] = None,
        theta: Optional[float] = None,
        transpose: bool = False,
        energy: Optional[str] = None,
        ctf_correct: bool = False,
        emd: Union[None, str, os.PathLike] = None,
        progress: ProgressArg = None,
    ) -> dict:
        """Tilt-corrected bright field, as ``emdtui tcbf`` (from the EMD's scan-axes FFT, made
        first when needed): ``{"image", "shifts", "quality", "report"}``. ``image``: float32,
        scan rows*N x cols*N for ``upsample`` N (1..8); ``shifts``: (det rows, det cols, 2) =
        (dy, dx) in scan pixels, NaN where unused. ``energy`` ("200kV") decides the defocus
        sign; ``ctf_correct`` phase-flips the image by the fitted CTF (needs ``energy`` here and
        ``scan_step`` and ``alpha`` or ``q_pixel`` from ``open``).
        """
        args = flags(upsample=upsample, manual=manual, max_shift=max_shift, theta=theta, transpose=transpose,
                     energy=energy, ctf_correct=ctf_correct, emd=emd)
        out = run_with_progress(self._ds.tcbf, args, progress, "tcbf")
        res = dict(out["images"])
        res["report"] = json.loads(out["report"])
        return res

    def ptycho(
        self,
        *,
        energy: Optional[str] = None,
        defocus: Optional[str] = None,
        center: Optional[Tuple[float, float]] = None,
        radius: Optional[float] = None,
        rotation: Optional[str] = None,
        flip: Optional[str] = None,
        emd: Union[None, str, os.PathLike] = None,
        no_cache: bool = False,
        progress: ProgressArg = None,
    ) -> dict:
        """Single-side-band (SSB) ptychography, as ``emdtui ptycho`` (from the EMD's scan-axes
        FFT, converted and made first when needed; the result cached in the EMD):
        ``{"phase", "amplitude", "icom", "bf", "report"}``, float32 scan rows x cols (phase in
        rad). Needs ``energy`` ("200kV") here and ``alpha`` (or ``q_pixel``) and ``scan_step``
        from ``open``; ``defocus`` to correct ("12nm", "-80A"; positive = underfocus).
        """
        c = None if center is None else f"{center[0]},{center[1]}"
        args = flags(energy=energy, defocus=defocus, center=c, radius=radius, rotation=rotation, flip=flip, emd=emd,
                     no_cache=no_cache)
        out = run_with_progress(self._ds.ptycho, args, progress, "ptycho")
        res = dict(out["images"])
        res["report"] = json.loads(out["report"])
        return res

    def eels(
        self,
        window: Any = None,
        *,
        spectrum: bool = False,
        roi: Any = None,
        at: Optional[Tuple[int, int]] = None,
        reverse_energy: bool = False,
        dispersion: Optional[float] = None,
        offset: Optional[float] = None,
        no_cache: bool = False,
        progress: ProgressArg = None,
        full: bool = False,
    ):
        """EELS of spectrum data, as ``emdtui eels``: with ``window`` (``"E0:E1"`` channels,
        ``"E0:E1eV"`` calibrated, or a pair of channels) the energy-window map (float32, scan
        rows x cols); with ``spectrum=True`` the mean spectrum over ``roi`` or ``at`` (default
        the whole scan) as ``(energy, spectrum)``. ``full=True`` adds the report.
        """
        if isinstance(window, (tuple, list)):
            window = f"{window[0]}:{window[1]}"
        args = flags(window=window, spectrum=spectrum, roi=roi, at=at, reverse_energy=reverse_energy,
                     dispersion=dispersion, offset=offset, no_cache=no_cache)
        out = run_with_progress(self._ds.eels, args, progress, "eels")
        im = out["images"]
        res = im["map"] if "map" in im else (im["energy"], im["spectrum"])
        return (res, json.loads(out["report"])) if full else res

    # --- Dask ---
    def to_dask(self, chunks: Any = "auto"):
        """A dask array of the frames whose blocks the Rust reader fills, picklable (it holds
        the path and the layout, no open file): ``dask.distributed`` workers on other machines
        read their blocks from a shared file system.

        ``chunks``: "auto" (whole scan rows, about 128 MiB a block, the detector whole), a
        number of scan rows per block, or dask's chunk spec for the 4 axes.
        """
        from ._dask import to_dask

        return to_dask(self, chunks)


def _reopen(open_fn, path, kwargs):
    return open_fn(path, **kwargs)

#!/usr/bin/env python3
"""Physics-grade 4D-STEM test data: abTEM multislice scans written as real Merlin `.mib` + `.hdr`.

Run with the simulation environment (abTEM + ase, see scripts/requirements-sim.txt):

    python scripts/simulate.py --out DIR [--cases mos2_focus,mos2_df,carbon_au_df,vacuum_df]

Per case it writes `DIR/CASE/` (first into `DIR/CASE.tmp`, renamed when complete, so a directory
with `truth.json` is always whole):

* `CASE.mib` / `CASE.hdr`: one 12-bit (`U16`) single-chip frame per scan position, 128x128
  detector, frames in scan order (row-major: frame k = row i * cols + column j), Poisson counts.
* `truth.json`: every simulation parameter, the conventions, and the scan-to-specimen geometry.
* `potential_1x.npy`, `potential_2x.npy`, `potential_4x.npy` (float32): abTEM's projected
  potential (V*A, summed over slices) sampled at the scan positions of the scan grid and of grids
  2x and 4x finer over the same field, in scan-grid orientation: element (u, v) of the Nx grid is
  the specimen point of scan coordinate (row u / N, column v / N).
* `abtem_icom.npy` (cases with a specimen): abTEM's own integrated centre of mass of the noisy
  frames written to the `.mib`, with the true scan geometry.
* `tcbf_ideal_4x.npy` (defocused cases): the weak-phase tcBF image on the 4x grid (see
  `tcbf_ideal` in truth.json).

Geometry (all in array-axis coordinates (axis 0, axis 1); the detector frame as written has
row = axis 0, column = axis 1, and the specimen axes are the detector axes, i.e. abTEM's
(x, y) = (detector row, detector column)): the specimen position of scan position (i, j) is

    p(i, j) = centre + scan_step_A * G @ (i - (rows - 1) / 2, j - (cols - 1) / 2)

with G = S R(-theta) S, S = [[0, 1], [1, 0]], R(a) = [[cos a, -sin a], [sin a, cos a]] and, when
`transpose`, G = S R(-theta) S S (the scan's row and column axes swapped). theta is
`scan_rotation_deg` in emdtui's DPC convention (x = column, y = row, rows down: the detector CoM d
becomes the scan-frame field v = R(theta) d, positive turns +x towards +y, clockwise as displayed).
`dpc_expected` gives the rotation and flip emdtui's DPC should find (its flip mirrors detector x).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

DET = 128
HEADER_BYTES = 384
DACS = "3RX,068,511,000,000,000,000,000,000,100,255,100,125,100,100,080,100,090,030,128,004,255,126,128,174,172,511,511"

CASES = {
    "mos2_focus": dict(
        what="MoS2 monolayer with vacancies, in focus (DPC)",
        specimen="mos2",
        energy_V=200e3,
        alpha_mrad=22.0,
        scan_step_A=0.3,
        scan_shape=[60, 64],
        defocus_A=0.0,
        astigmatism_A=0.0,
        astigmatism_angle_deg=0.0,
        scan_rotation_deg=23.0,
        transpose=True,
        dose_e_per_A2=1.0e5,
        seed=11,
    ),
    "mos2_df": dict(
        what="MoS2 monolayer with vacancies, 150 A underfocus (tcBF on a crystal, ptychography)",
        specimen="mos2",
        energy_V=200e3,
        alpha_mrad=22.0,
        scan_step_A=0.4,
        scan_shape=[60, 64],
        defocus_A=150.0,
        astigmatism_A=0.0,
        astigmatism_angle_deg=0.0,
        scan_rotation_deg=11.0,
        transpose=False,
        dose_e_per_A2=5.0e4,
        seed=12,
    ),
    "carbon_au_df": dict(
        what="amorphous carbon film (20 A) with Au atoms, 250 A underfocus, two-fold astigmatism",
        specimen="carbon_au",
        energy_V=200e3,
        alpha_mrad=20.0,
        scan_step_A=0.9,
        scan_shape=[60, 64],
        defocus_A=250.0,
        astigmatism_A=30.0,
        astigmatism_angle_deg=35.0,
        scan_rotation_deg=17.0,
        transpose=False,
        dose_e_per_A2=4.0e4,
        seed=13,
    ),
    "vacuum_df": dict(
        what="no specimen, 200 A underfocus: no parallax to find",
        specimen="vacuum",
        energy_V=200e3,
        alpha_mrad=20.0,
        scan_step_A=0.9,
        scan_shape=[48, 48],
        defocus_A=200.0,
        astigmatism_A=0.0,
        astigmatism_angle_deg=0.0,
        scan_rotation_deg=0.0,
        transpose=False,
        dose_e_per_A2=1.0e4,
        seed=14,
    ),
}

# Simulation grids per specimen: cell side (A), grid points, detector binning, slice thickness.
# The detector pixel is lambda / cell side (x binning): 1.12 mrad for MoS2, 1.04 mrad for carbon.
GRIDS = {
    "mos2": dict(gpts=224, binning=1, slice_A=2.0),
    "carbon_au": dict(cell_A=48.0, gpts=256, binning=2, slice_A=5.0),
    "vacuum": dict(cell_A=48.0, gpts=256, binning=2, slice_A=5.0),
}
CHUNK = 512


def log(msg: str) -> None:
    print(f"[simulate {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wavelength_A(volts: float) -> float:
    """Relativistic electron wavelength (A)."""
    h, m, e, c = 6.62607015e-34, 9.1093837015e-31, 1.602176634e-19, 299792458.0
    return h / math.sqrt(2 * m * e * volts * (1 + e * volts / (2 * m * c * c))) * 1e10


# ---------------------------------------------------------------- specimens


def mos2_atoms():
    import abtem
    from ase.build import mx2

    atoms = abtem.orthogonalize_cell(mx2("MoS2", a=3.19, thickness=3.19, vacuum=2.0)) * (7, 4, 1)
    lx, ly, lz = atoms.cell.lengths()
    # 7 x 3.19 = 22.33 A and 4 x 5.525 = 22.10 A: strained by 1 % to a square cell so the
    # detector pixels are square
    atoms.set_cell([lx, lx, lz], scale_atoms=True)
    pos = atoms.get_positions()
    c = np.array([lx / 2, lx / 2])
    d = np.linalg.norm(pos[:, :2] - c, axis=1)
    sym = np.array(atoms.get_chemical_symbols())
    remove = []
    mo = np.where(sym == "Mo")[0]
    s = np.where(sym == "S")[0]
    # one Mo vacancy near the centre, a single S vacancy, a double S vacancy (both S of a column)
    remove.append(mo[np.argsort(d[mo])[0]])
    s_sorted = s[np.argsort(np.abs(d[s] - 6.0))]
    remove.append(s_sorted[0])
    far = s[np.argsort(np.abs(d[s] - 9.0))]
    col = far[0]
    same = s[np.linalg.norm(pos[s, :2] - pos[col, :2], axis=1) < 0.1]
    remove.extend(same.tolist())
    keep = np.setdiff1d(np.arange(len(atoms)), np.array(remove))
    return atoms[keep], dict(vacancies={"Mo": 1, "S_single": 1, "S_double": len(same) == 2}, strain_y=lx / ly - 1)


def carbon_au_atoms(cell: float, rng: np.random.Generator):
    from ase import Atoms
    from scipy.spatial import cKDTree

    z0, thick = 2.0, 20.0
    target = int(round(0.1003 * cell * cell * thick))  # 2.0 g/cm3
    pts = rng.random((int(target * 1.6), 3)) * [cell, cell, thick]
    tree = cKDTree(pts, boxsize=[cell, cell, 1e6])
    dropped = np.zeros(len(pts), bool)
    for a, b in sorted(tree.query_pairs(1.25)):
        if not dropped[a]:
            dropped[b] = True
    pts = pts[~dropped][:target]
    pts[:, 2] += z0
    au = []
    while len(au) < 12:
        p = rng.random(2) * cell
        if all(np.linalg.norm(((p - q) + cell / 2) % cell - cell / 2) > 4.0 for q in au):
            au.append(p)
    au = np.column_stack([np.array(au), np.full(len(au), z0 + thick + 1.5)])
    atoms = Atoms(
        symbols=["C"] * len(pts) + ["Au"] * len(au),
        positions=np.vstack([pts, au]),
        cell=[cell, cell, z0 + thick + 4.0],
        pbc=True,
    )
    return atoms, dict(carbon_atoms=len(pts), au_atoms=len(au), film_thickness_A=thick, density_g_cm3=2.0)


def build_potential(case: dict, rng: np.random.Generator):
    """(potential array or None, cell side, info) for the case's specimen."""
    import abtem

    grid = GRIDS[case["specimen"]]
    if case["specimen"] == "vacuum":
        return None, grid["cell_A"], dict(specimen="none")
    if case["specimen"] == "mos2":
        atoms, info = mos2_atoms()
    else:
        atoms, info = carbon_au_atoms(grid["cell_A"], rng)
    cell = float(atoms.cell.lengths()[0])
    pot = abtem.Potential(
        atoms, gpts=grid["gpts"], slice_thickness=grid["slice_A"], projection="infinite", parametrization="lobato"
    )
    pot = pot.build().compute(progress_bar=False)
    info.update(atoms=len(atoms), slices=int(pot.array.shape[0]))
    return pot, cell, info


# ---------------------------------------------------------------- geometry


def rot(a_deg: float) -> np.ndarray:
    a = math.radians(a_deg)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


S = np.array([[0.0, 1.0], [1.0, 0.0]])


def scan_matrix(case: dict) -> np.ndarray:
    g = S @ rot(-case["scan_rotation_deg"]) @ S
    return g @ S if case["transpose"] else g


def dpc_expected(g: np.ndarray) -> dict:
    """Rotation and flip emdtui's DPC should find: v_xy = R(theta) F d_xy = (S G^T S) d_xy."""
    a = S @ g.T @ S
    flip = bool(np.linalg.det(a) < 0)
    if flip:
        a = a @ np.diag([-1.0, 1.0])
    return dict(rotation_deg=math.degrees(math.atan2(a[1, 0], a[0, 0])) % 360.0, flip=flip)


def scan_positions(case: dict, cell: float, factor: int = 1) -> np.ndarray:
    """Specimen positions (A, array axes) of the factor-x finer scan grid, shape (R, C, 2)."""
    rows, cols = case["scan_shape"]
    g = scan_matrix(case)
    u = np.arange(rows * factor) / factor - (rows - 1) / 2
    v = np.arange(cols * factor) / factor - (cols - 1) / 2
    uu, vv = np.meshgrid(u, v, indexing="ij")
    ij = np.stack([uu, vv], -1)
    return cell / 2 + case["scan_step_A"] * ij @ g.T


def sample_periodic(img: np.ndarray, cell: float, pos: np.ndarray) -> np.ndarray:
    """Band-limited interpolation of a periodic image (cell x cell A) at positions (..., 2) A."""
    from scipy.ndimage import map_coordinates

    n = img.shape[0]
    up = 2
    f = np.fft.fftshift(np.fft.fft2(img))
    pad = (n * up - n) // 2
    big = np.fft.ifft2(np.fft.ifftshift(np.pad(f, pad))).real * up * up
    coords = (pos / cell * n * up).reshape(-1, 2).T
    out = map_coordinates(big, coords, order=3, mode="grid-wrap")
    return out.reshape(pos.shape[:-1]).astype(np.float32)


# ---------------------------------------------------------------- simulation


def bf_disk(radius_px: float) -> np.ndarray:
    """Flat mask (DET * DET) of the detector pixels within 0.9 of the BF radius."""
    r = np.arange(DET) - DET // 2
    return ((r[:, None] ** 2 + r[None, :] ** 2) < (0.9 * radius_px) ** 2).ravel()


def crop_bin(patterns: np.ndarray, binning: int) -> np.ndarray:
    """fftshifted full patterns (N, n, n) -> binned, centred DET x DET crop (zero beam at DET/2)."""
    n = patterns.shape[-1]
    if binning > 1:
        patterns = patterns.reshape(-1, n // binning, binning, n // binning, binning).sum((2, 4))
        n //= binning
    c = n // 2
    return patterns[:, c - DET // 2 : c + DET // 2, c - DET // 2 : c + DET // 2]


def simulate_patterns(case: dict, pot, cell: float) -> tuple[np.ndarray, dict]:
    """Noise-free patterns (rows*cols, DET, DET), each normalised to the probe's total intensity."""
    import abtem

    grid = GRIDS[case["specimen"]]
    probe = abtem.Probe(
        energy=case["energy_V"],
        semiangle_cutoff=case["alpha_mrad"],
        defocus=case["defocus_A"],
        astigmatism=case["astigmatism_A"],
        astigmatism_angle=math.radians(case["astigmatism_angle_deg"]),
        extent=cell,
        gpts=grid["gpts"],
    )
    pos = scan_positions(case, cell).reshape(-1, 2)
    out = np.empty((len(pos), DET, DET), np.float32)
    if pot is None:
        p = probe.build().diffraction_patterns(max_angle="full").compute(progress_bar=False)
        one = crop_bin(np.asarray(p.array)[None], grid["binning"])[0]
        out[:] = one
        kept = float(one.sum())
    else:
        kept = 0.0
        for s in range(0, len(pos), CHUNK):
            dp = probe.multislice(pot, scan=abtem.CustomScan(pos[s : s + CHUNK]))
            dp = dp.diffraction_patterns(max_angle="full").compute(progress_bar=False)
            a = crop_bin(np.asarray(dp.array), grid["binning"])
            out[s : s + len(a)] = a
            kept += float(a.sum())
            log(f"{case['name']}: {s + len(a)}/{len(pos)} positions")
        kept /= len(pos)
    dk = 1.0 / cell * grid["binning"]  # 1/A per detector pixel
    return out, dict(q_pixel_inv_A=dk, fraction_on_detector=kept)


# ---------------------------------------------------------------- Merlin files


def frame_headers(n: int, shutter_s: float, cols: int) -> np.ndarray:
    th = ",".join(["2.000000E+1", "5.110000E+2"] + ["0.000000E+0"] * 6)
    dt_ns = int(shutter_s * 1e9) + 1000
    t0 = 1_700_000_000_000_000_000
    heads = np.zeros(n, dtype=f"S{HEADER_BYTES}")
    for i in range(n):
        t = t0 + i * dt_ns + (i // cols) * 50_000
        secs, frac = divmod(t, 1_000_000_000)
        st = time.gmtime(secs)
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", st) + f".{frac:09d}Z"
        ts = time.strftime("%Y-%m-%d %H:%M:%S", st) + f".{frac // 1000:06d}"
        h = (
            f"MQ1,{i + 1:06d},{HEADER_BYTES:05d},01,{DET:04d},{DET:04d},U16,   1x1,01,{ts},{shutter_s:.6f},"
            f"0,0,0,{th},{DACS},MQ1A,{iso},{int(shutter_s * 1e9)}ns,12,"
        )
        assert len(h) <= HEADER_BYTES
        heads[i] = h.encode()
    return heads


def hdr_text(rows: int, cols: int) -> bytes:
    lines = [
        "HDR,\t",
        "Time and Date Stamp (day, mnth, yr, hr, min, s):\t14/11/2023 22:13:20",
        "Chip ID:\tW559_G11, - , - , - ",
        "Chip Type (Medipix 3.0, Medipix 3.1, Medipix 3RX):\tMedipix 3RX",
        "Assembly Size (NX1, 2X2):\t   1x1",
        "Chip Mode  (SPM, CSM, CM, CSCM):\tSPM",
        "Counter Depth (number):\t12",
        "Gain:\tSLGM",
        "Active Counters:\tCounter 0",
        "Thresholds (keV):\t2.000000E+1,5.110000E+2,0.000000E+0,0.000000E+0,0.000000E+0,0.000000E+0,0.000000E+0,0.000000E+0",
        "Gap Fill Mode:\tNone",
        "Acquisition Type (Normal, Th_scan, Config):\tNormal",
        f"Frames in Acquisition (Number):\t{rows * cols}",
        f"Frames per Trigger (Number):\t{cols}",
        "Trigger Start (Positive, Negative, Internal):\tRising Edge",
        "Trigger Stop (Positive, Negative, Internal):\tInternal",
        "Sensor Bias (V):\t120 V",
        "Sensor Polarity (Positive, Negative):\tPositive",
        "Readout System:\tMerlin Quad",
        "Software Version:\t1.6.1.217 (abTEM simulation, emdtui scripts/simulate.py)",
        f"ScanX:\t{cols}",
        f"ScanY:\t{rows}",
        "End\t",
    ]
    b = "\r\n".join(lines).encode("latin-1")
    return b + b" " * max(0, 2048 - len(b))


def write_mib(path: Path, counts: np.ndarray, rows: int, cols: int) -> None:
    n = counts.shape[0]
    rec = np.empty(n, dtype=[("h", f"S{HEADER_BYTES}"), ("d", ">u2", (DET, DET))])
    rec["h"] = frame_headers(n, 0.001, cols)
    rec["d"] = counts
    rec.tofile(path)
    path.with_suffix(".hdr").write_bytes(hdr_text(rows, cols))


# ---------------------------------------------------------------- references


def abtem_icom(counts: np.ndarray, case: dict, dk: float) -> np.ndarray:
    """abTEM's centre of mass of the noisy frames, turned into the scan frame with the true
    geometry (chain rule: grad_scan = G^T grad_specimen), integrated by abTEM."""
    import abtem
    from abtem.core.axes import ScanAxis

    rows, cols = case["scan_shape"]
    step = case["scan_step_A"]
    dp = abtem.DiffractionPatterns(
        counts.reshape(rows, cols, DET, DET).astype(np.float32),
        sampling=(dk, dk),
        fftshift=True,
        ensemble_axes_metadata=[
            ScanAxis(label="x", sampling=step, units="Å"),
            ScanAxis(label="y", sampling=step, units="Å"),
        ],
        metadata={"energy": case["energy_V"]},
    )
    com = np.asarray(dp.center_of_mass().array)
    d = np.stack([com.real, com.imag], -1)
    v = d @ scan_matrix(case)  # (G^T d) for each position, as row vectors
    img = abtem.Images((v[..., 0] + 1j * v[..., 1]).astype(np.complex64), sampling=(step, step))
    return np.asarray(img.integrate_gradient().array, dtype=np.float32)


def chi(case: dict, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """abTEM's aberration phase chi(k) (the wave is multiplied by exp(-i chi)), k in 1/A along
    the array axes."""
    lam = wavelength_A(case["energy_V"])
    alpha = lam * np.hypot(kx, ky)
    phi = np.arctan2(ky, kx)
    c10, c12 = -case["defocus_A"], case["astigmatism_A"]
    phi12 = math.radians(case["astigmatism_angle_deg"])
    return 2 * np.pi / lam * 0.5 * alpha**2 * (c10 + c12 * np.cos(2 * (phi - phi12)))


def tcbf_ideal(case: dict, vproj: np.ndarray, cell: float) -> np.ndarray:
    """Weak-phase tcBF image on the specimen grid: FFT(V) sin(chi) O, O = overlap of the two
    aperture disks a distance lambda |q| apart (a fraction of the disk area)."""
    n = vproj.shape[0]
    k = np.fft.fftfreq(n, cell / n)
    kx, ky = np.meshgrid(k, k, indexing="ij")
    lam = wavelength_A(case["energy_V"])
    s = np.clip(lam * np.hypot(kx, ky) / (2 * case["alpha_mrad"] * 1e-3), 0, 1)
    overlap = 2 / np.pi * (np.arccos(s) - s * np.sqrt(1 - s * s))
    return np.fft.ifft2(np.fft.fft2(vproj) * np.sin(chi(case, kx, ky)) * overlap).real


def parallax_scan_px(case: dict, dk: float) -> tuple[np.ndarray, np.ndarray]:
    """Parallax of every detector pixel in scan pixels (d_i, d_j), each (DET, DET):
    I_K(p) = I_0(p + grad_k chi(k_K) / 2 pi) in specimen A, turned into scan pixels by G^-1."""
    k = (np.arange(DET) - DET // 2) * dk
    kx, ky = np.meshgrid(k, k, indexing="ij")
    lam = wavelength_A(case["energy_V"])
    c10, c12 = -case["defocus_A"], case["astigmatism_A"]
    p12 = math.radians(case["astigmatism_angle_deg"])
    a, b, c = c10 + c12 * math.cos(2 * p12), c12 * math.sin(2 * p12), c10 - c12 * math.cos(2 * p12)
    sx, sy = lam * (a * kx + b * ky), lam * (b * kx + c * ky)  # grad_k chi / 2 pi, A
    ginv = np.linalg.inv(scan_matrix(case)) / case["scan_step_A"]
    return ginv[0, 0] * sx + ginv[0, 1] * sy, ginv[1, 0] * sx + ginv[1, 1] * sy


def tcbf_true_geometry(counts: np.ndarray, case: dict, dk: float, radius_px: float) -> np.ndarray:
    """tcBF on the scan grid with the simulated geometry: every BF pixel's image (divided by its
    mean) shifted back by its parallax (Fourier shift) and summed."""
    rows, cols = case["scan_shape"]
    di, dj = parallax_scan_px(case, dk)
    r = np.arange(DET) - DET // 2
    inside = np.argwhere(r[:, None] ** 2 + r[None, :] ** 2 < (0.9 * radius_px) ** 2)
    qi, qj = np.fft.fftfreq(rows)[:, None], np.fft.fftfreq(cols)[None, :]
    acc = np.zeros((rows, cols), complex)
    stack = counts.reshape(rows, cols, DET, DET)
    for y, x in inside:
        img = stack[:, :, y, x].astype(np.float64)
        img = img / max(img.mean(), 1e-9) - 1
        acc += np.fft.fft2(img) * np.exp(-2j * np.pi * (qi * di[y, x] + qj * dj[y, x]))
    return np.fft.ifft2(acc).real


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a @ b) / math.sqrt((a @ a) * (b @ b) + 1e-300))


# ---------------------------------------------------------------- one case


def run_case(name: str, out: Path) -> dict:
    case = dict(CASES[name], name=name)
    rng = np.random.default_rng(case["seed"])
    t0 = time.time()
    pot, cell, spec_info = build_potential(case, rng)
    log(f"{name}: potential {time.time() - t0:.1f} s")
    patterns, det_info = simulate_patterns(case, pot, cell)
    t_sim = time.time() - t0
    rows, cols = case["scan_shape"]
    per_pattern = case["dose_e_per_A2"] * case["scan_step_A"] ** 2
    counts = rng.poisson(patterns * per_pattern)
    assert counts.max() < 4096, f"{name}: {counts.max()} counts overflow 12 bits"
    counts = counts.astype(np.uint16)

    tmp = out / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_mib(tmp / f"{name}.mib", counts, rows, cols)

    lam = wavelength_A(case["energy_V"])
    dk = det_info["q_pixel_inv_A"]
    truth = {k: case[k] for k in CASES[name] if k not in ("seed",)}
    g = scan_matrix(case)
    n_frames = rows * cols
    truth.update(
        case=name,
        generator="scripts/simulate.py (abTEM multislice)",
        abtem_version=__import__("abtem").__version__,
        wavelength_A=lam,
        detector_shape=[DET, DET],
        zero_beam_px=[DET // 2, DET // 2],
        q_pixel_inv_A=dk,
        q_pixel_mrad=dk * lam * 1e3,
        bf_radius_px=case["alpha_mrad"] * 1e-3 / lam / dk,
        cell_A=cell,
        sim_gpts=GRIDS[case["specimen"]]["gpts"],
        sim_sampling_A=cell / GRIDS[case["specimen"]]["gpts"],
        detector_binning=GRIDS[case["specimen"]]["binning"],
        slice_thickness_A=GRIDS[case["specimen"]]["slice_A"],
        specimen_info=spec_info,
        dose_e_per_pattern=per_pattern,
        mean_counts_per_pattern=float(counts.reshape(n_frames, -1).sum(1).mean()),
        fraction_of_beam_on_detector=det_info["fraction_on_detector"],
        max_count=int(counts.max()),
        pixel_depth="U16 (12-bit counter)",
        frames=n_frames,
        frame_order="row-major: frame k = scan row i * cols + scan column j",
        bad_pixels=[],
        defocus_convention=(
            "defocus_A > 0 is underfocus: abTEM's defocus = -C10; chi(alpha, phi) = 2 pi / lambda * "
            "alpha^2 / 2 * (C10 + astigmatism_A * cos(2 (phi - astigmatism_angle))); the wave is "
            "multiplied by exp(-i chi)"
        ),
        astigmatism_convention=(
            "abTEM's C12 (astigmatism_A) and phi12 (astigmatism_angle_deg); phi is measured from the "
            "detector's row axis (array axis 0, down) towards its column axis (axis 1, right); "
            "astigmatism_angle_xy_deg is the same direction measured from +x (column) towards +y (row)"
        ),
        astigmatism_angle_xy_deg=(90.0 - case["astigmatism_angle_deg"]) % 180.0,
        parallax_convention=(
            "the bright-field image seen through detector pixel K (k_K = (K - zero_beam_px) * "
            "q_pixel_inv_A along the detector axes) is I_K(p) = I_0(p + grad_k chi(k_K) / 2 pi) in "
            "specimen coordinates (A); for pure defocus I_K(p) = I_0(p - defocus_A * lambda * k_K); in "
            "scan pixels the shift is G^-1 (grad_k chi / 2 pi) / scan_step_A"
        ),
        scan_rotation_convention=(
            "emdtui DPC convention (x = column, y = row, rows down): the detector CoM d becomes the "
            "scan-frame field v = R(theta) d for transpose false; positive turns +x towards +y"
        ),
        transpose_convention="true: the scan's row and column axes are swapped (G = S R(-theta) S S)",
        scan_to_specimen_G=g.tolist(),
        geometry=(
            "specimen position (A, array axes = detector row, column) of scan position (i, j): "
            "cell_A / 2 + scan_step_A * G @ (i - (rows - 1) / 2, j - (cols - 1) / 2)"
        ),
        detector_to_scan_xy=(S @ g.T @ S).tolist(),
        dpc_expected=dpc_expected(g),
        potential_files={
            "potential_1x.npy": [rows, cols],
            "potential_2x.npy": [2 * rows, 2 * cols],
            "potential_4x.npy": [4 * rows, 4 * cols],
        },
        potential_grid="element (u, v) of the Nx grid is the specimen point of scan coordinate (u / N, v / N)",
        potential_units="V A (abTEM projected potential, summed over slices)",
    )
    if pot is None:
        vproj = np.zeros((GRIDS["vacuum"]["gpts"],) * 2)
    else:
        vproj = np.asarray(pot.project().array, dtype=np.float64)
    for f in (1, 2, 4):
        np.save(tmp / f"potential_{f}x.npy", sample_periodic(vproj, cell, scan_positions(case, cell, f)))
    if pot is not None:
        t_icom = time.time()
        icom = abtem_icom(counts, case, dk)
        t_icom = time.time() - t_icom
        np.save(tmp / "abtem_icom.npy", icom)
        truth["abtem_icom"] = dict(
            file="abtem_icom.npy",
            how="abTEM DiffractionPatterns.center_of_mass of the noisy frames, turned into the scan "
            "frame with the true G, integrated by abTEM Images.integrate_gradient",
            corr_potential_1x=pearson(icom, np.load(tmp / "potential_1x.npy")),
            time_s=t_icom,
        )
    if case["defocus_A"] != 0 and pot is not None:
        ideal = sample_periodic(tcbf_ideal(case, vproj, cell), cell, scan_positions(case, cell, 4))
        np.save(tmp / "tcbf_ideal_4x.npy", ideal)
        # the central detector pixels see the axial bright-field image (reciprocity): its sign
        # and likeness to the ideal image check the formula
        c = DET // 2
        centre = counts[:, c - 1 : c + 2, c - 1 : c + 2].sum((1, 2)).reshape(rows, cols).astype(float)
        truth["tcbf_ideal"] = dict(
            file="tcbf_ideal_4x.npy",
            how="IFFT[FFT(V) * sin(chi(q)) * O(q)] on the simulation grid (weak phase object; "
            "O(q) = overlap area of two aperture disks lambda |q| apart / disk area), sampled at the "
            "4x grid like potential_4x; bright where the BF intensity is high (an atom at "
            "underfocus is dark in it as in the BF image)",
            corr_central_pixels_image=pearson(centre, ideal[::4, ::4]),
            corr_true_geometry_tcbf_1x=pearson(
                tcbf_true_geometry(counts, case, dk, truth["bf_radius_px"]), ideal[::4, ::4]
            ),
            corr_bf_sum_1x=pearson(
                counts.reshape(rows, cols, -1)[:, :, bf_disk(truth["bf_radius_px"])].sum(-1), ideal[::4, ::4]
            ),
        )
    truth["timing_s"] = dict(simulation=t_sim, total=time.time() - t0)
    (tmp / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    dst = out / name
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    log(f"{name}: done in {time.time() - t0:.1f} s")
    return truth


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="directory the case directories go into")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    args = ap.parse_args()
    names = [c for c in args.cases.split(",") if c]
    for c in names:
        if c not in CASES:
            ap.error(f"unknown case {c!r} (known: {', '.join(CASES)})")
    args.out.mkdir(parents=True, exist_ok=True)
    script_hash = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    for c in names:
        run_case(c, args.out)
    (args.out / "SCRIPT_HASH").write_text(script_hash + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""py4DSTEM 0.14's direct ptychography (`py4DSTEM.process.phase.SSB`) on a simulated case
(scripts/simulate.py: CASE.mib + truth.json + potential_1x.npy), as a microscopist would run it:
the frames read with numpy, the calibration from truth.json, the rotation and transpose found by
py4DSTEM itself from the centre of mass, the known defocus compensated.

    python scripts/peer_ptycho.py CASE_DIR [--defocus A] [--truth-rotation] [--phase-out PHASE.npy] [--json OUT.json]
        [--record tests/data/ptycho_py4dstem.json]

Prints (and writes with --json) the Pearson correlation of the SSB phase with the projected
potential on the scan grid, the rotation/transpose py4DSTEM found and the time of preprocess +
reconstruct. Needs numpy < 2 (py4DSTEM 0.14).
"""
import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_mib import map_mib  # noqa: E402


def pearson(a, b):
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a @ b) / np.sqrt((a @ a) * (b @ b) + 1e-300))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("case_dir")
    ap.add_argument("--defocus", type=float, default=None, help="A, positive = underfocus (default: truth.json)")
    ap.add_argument("--phase-out", default=None)
    ap.add_argument(
        "--truth-rotation",
        action="store_true",
        help="force the true rotation and transpose instead of letting py4DSTEM find them (py4DSTEM's angle "
        "is truth.json's scan_rotation_deg with transpose and its negative without: on mos2_df the negative "
        "gives the best correlation of +-11 deg)",
    )
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--record",
        default=None,
        help="merge the figures into this JSON file under CASE / (found | truth_rotation) "
        "(tests/data/ptycho_py4dstem.json, read by tests/ptycho_sim.rs)",
    )
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    import py4DSTEM

    name = os.path.basename(os.path.normpath(a.case_dir))
    truth = json.load(open(os.path.join(a.case_dir, "truth.json")))
    rows, cols = truth["scan_shape"]
    t0 = time.time()
    frames, dr, dc, _ = map_mib(os.path.join(a.case_dir, f"{name}.mib"), rows, cols)
    data = np.asarray(frames, dtype=np.float32).reshape(rows, cols, dr, dc)
    t_read = time.time() - t0
    dcube = py4DSTEM.DataCube(data=data)
    dcube.calibration.set_R_pixel_size(truth["scan_step_A"])
    dcube.calibration.set_R_pixel_units("A")
    dcube.calibration.set_Q_pixel_size(truth["q_pixel_mrad"])
    dcube.calibration.set_Q_pixel_units("mrad")
    defocus = truth["defocus_A"] if a.defocus is None else a.defocus
    t1 = time.time()
    ssb = py4DSTEM.process.phase.SSB(
        energy=truth["energy_V"],
        datacube=dcube,
        semiangle_cutoff=truth["alpha_mrad"],
        defocus=defocus,
        verbose=False,
        device="cpu",
    )
    force = {}
    if a.truth_rotation:
        rot = truth["scan_rotation_deg"] if truth["transpose"] else -truth["scan_rotation_deg"]
        force = dict(force_com_rotation=rot, force_com_transpose=truth["transpose"])
    ssb.preprocess(plot_center_of_mass=False, plot_rotation=False, plot_overlap_trotters=False, **force)
    t_pre = time.time() - t1
    ssb.reconstruct(progress_bar=False)
    t_all = time.time() - t1
    obj = np.asarray(ssb.object)
    phase = np.angle(obj)
    pot = np.load(os.path.join(a.case_dir, "potential_1x.npy"))
    if phase.shape != pot.shape:
        print(f"py4DSTEM's object is {phase.shape}, the potential {pot.shape}", file=sys.stderr)
        return 1
    out = dict(
        case=name,
        tool=f"py4DSTEM {py4DSTEM.__version__} SSB",
        numpy=np.__version__,
        defocus_A=defocus,
        corr_potential_1x=pearson(phase, pot),
        rotation_deg=float(np.degrees(ssb._rotation_best_rad)),
        transpose=bool(ssb._rotation_best_transpose),
        rotation_from="truth.json" if a.truth_rotation else "found by py4DSTEM",
        seconds_read=t_read,
        seconds_preprocess=t_pre,
        seconds_ssb=t_all,
        threads=os.cpu_count(),
    )
    if a.phase_out:
        np.save(a.phase_out, phase.astype(np.float32))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    if a.record:
        rec = json.load(open(a.record)) if os.path.exists(a.record) else {}
        rec.setdefault(name, {})["truth_rotation" if a.truth_rotation else "found"] = out
        with open(a.record, "w") as f:
            json.dump(rec, f, indent=1, sort_keys=True)
            f.write("\n")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A virtual bright-field image of a .mib or .emd on a Dask cluster: the same code on a laptop
(LocalCluster) and on a Slurm machine (dask-jobqueue's SLURMCluster). The tests run it with a
2-worker LocalCluster.

    python cluster_bf.py FILE [--slurm] [--radius R] -o bf.npy
"""

import argparse

import numpy as np

import emdtui


def disk(shape, center, radius):
    """Detector pixels within `radius` of `center` (float32 radii, as emdtui's BF detector)."""
    y, x = np.indices(shape, dtype=np.float32)
    r = np.sqrt((y - np.float32(center[0])) ** 2 + (x - np.float32(center[1])) ** 2)
    return r <= np.float32(radius)


def bf_image(path, client, center=None, radius=None, **open_kwargs):
    """BF image (float64, scan rows x cols) computed by the cluster behind `client`."""
    x = emdtui.open(path, **open_kwargs).to_dask()
    det = x.shape[2:]
    center = center or ((det[0] - 1) / 2, (det[1] - 1) / 2)
    radius = radius or min(det) / 8
    return client.compute((x * disk(det, center, radius)).sum(axis=(2, 3), dtype=np.float64), sync=True)


def make_cluster(slurm):
    if slurm:
        from dask_jobqueue import SLURMCluster

        cluster = SLURMCluster(cores=8, processes=2, memory="32GB", walltime="01:00:00")
        cluster.scale(jobs=4)  # 4 nodes x 2 worker processes
        return cluster
    from dask.distributed import LocalCluster

    return LocalCluster(n_workers=2, threads_per_worker=1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file")
    p.add_argument("--slurm", action="store_true")
    p.add_argument("--radius", type=float)
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args()
    from dask.distributed import Client

    with make_cluster(a.slurm) as cluster, Client(cluster) as client:
        np.save(a.output, bf_image(a.file, client, radius=a.radius))


if __name__ == "__main__":
    main()

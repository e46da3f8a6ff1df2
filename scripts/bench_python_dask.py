"""BF image of a .mib on a 2-worker dask LocalCluster (1 thread each): emdtui's to_dask() against
rosettasciio's lazy reader + dask and LiberTEM (ApplyMasksUDF on its own 2-worker dask
executor). Prints compute time (cluster started beforehand), peak RSS of the workers and the
client, and checks that the three images agree. Used by scripts/bench-python.

    python scripts/bench_python_dask.py FILE.mib ROWSxCOLS
"""

import resource
import sys
import time

import numpy as np


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bf_mask(shape, center, radius):
    y, x = np.indices(shape, dtype=np.float32)
    r = np.sqrt((y - np.float32(center[0])) ** 2 + (x - np.float32(center[1])) ** 2)
    return (r <= np.float32(radius)).astype(np.float32)


def on_cluster(name, make_array, mask):
    """Time `sum(frames * mask)` over the detector on a fresh 2-process cluster."""
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  memory_limit="8GiB") as cluster, distributed.Client(cluster) as client:
        t0 = time.perf_counter()
        x = make_array()
        img = client.compute((x * mask).sum(axis=(-2, -1), dtype=np.float64), sync=True)
        t = time.perf_counter() - t0
        rss = client.run(peak_rss_mib)
    return name, t, max(rss.values()), sum(rss.values()), np.asarray(img).reshape(-1)


def main():
    path, scan = sys.argv[1], sys.argv[2]
    rows, cols = map(int, scan.split("x"))
    import emdtui

    ds = emdtui.open(path)
    mask = bf_mask(ds.shape[2:], (127.5, 127.5), 40)
    results = []

    results.append(on_cluster("emdtui ds.to_dask() (blocks: Rust reader)", lambda: emdtui.open(path).to_dask(), mask))

    def rsciio_array():
        from rsciio.quantumdetector import file_reader

        d = file_reader(path, lazy=True, navigation_shape=(cols, rows))[0]["data"]
        # rosettasciio returns frames flipped vertically (stored order: np.flip axis -2)
        return d[..., ::-1, :].reshape(rows, cols, *d.shape[-2:])

    try:
        results.append(on_cluster("rosettasciio lazy reader + dask", rsciio_array, mask))
    except Exception as e:  # a peer that fails is reported, not fatal
        print(f"rosettasciio: failed: {type(e).__name__}: {e}")

    try:
        results.append(libertem_run(path, rows, cols, mask))
    except Exception as e:
        print(f"LiberTEM: failed: {type(e).__name__}: {e}")

    ref = results[0][4]
    print(f"{'BF image, 2-worker LocalCluster':46} {'time s':>7} {'GB/s':>6} {'worker peak RSS':>16} {'all workers':>12}")
    size = ds.nbytes
    for name, t, rss_max, rss_sum, img in results:
        same = "equal" if np.allclose(img, ref, rtol=1e-6) else "DIFFERS"
        print(f"{name:46} {t:7.2f} {size / 1e9 / t:6.2f} {rss_max:12.0f} MiB {rss_sum:8.0f} MiB  ({same})")
    print(f"client process peak RSS: {peak_rss_mib():.0f} MiB")


def libertem_run(path, rows, cols, mask):
    from libertem.api import Context
    from libertem.executor.dask import DaskJobExecutor, cluster_spec
    from libertem.udf.masks import ApplyMasksUDF

    spec = cluster_spec(cpus=[0, 1], cudas=[], has_cupy=False)
    ex = DaskJobExecutor.make_local(spec=spec)
    ctx = Context(executor=ex)
    try:
        t0 = time.perf_counter()
        lds = ctx.load("mib", path=path, nav_shape=(rows, cols))
        res = ctx.run_udf(dataset=lds, udf=ApplyMasksUDF(mask_factories=[lambda: mask]))
        t = time.perf_counter() - t0
        img = np.asarray(res["intensity"].data)[..., 0].reshape(-1)
        rss = ex.client.run(peak_rss_mib)
    finally:
        ctx.close()
    return "LiberTEM ApplyMasksUDF (2 dask workers)", t, max(rss.values()), sum(rss.values()), img


if __name__ == "__main__":
    main()

"""Dask arrays read by the Rust reader (also under a 2-worker LocalCluster), and the EMD that
emdtui writes read by LiberTEM and HyperSpy."""

import pickle
from pathlib import Path

import numpy as np
import pytest

import emdtui

da = pytest.importorskip("dask.array")


def disk_masks(shape, center, r_bf, r_in, r_out):
    """BF disk and ADF annulus exactly as emdtui's overview selects pixels (float32 radii)."""
    y, x = np.indices(shape, dtype=np.float32)
    r = np.sqrt((y - np.float32(center[0])) ** 2 + (x - np.float32(center[1])) ** 2)
    return (r <= np.float32(r_bf)), (r >= np.float32(r_in)) & (r <= np.float32(r_out))


def test_to_dask_blocks_and_pickle(synth_mib):
    ds = emdtui.open(synth_mib)
    x = ds.to_dask(chunks=3)
    assert x.shape == ds.shape and x.dtype == ds.dtype
    assert x.chunks[0] == (3, 3, 3, 1) and x.chunks[2] == (256,)
    np.testing.assert_array_equal(x[2:7, 3:9].compute(), ds[2:7, 3:9])
    y = pickle.loads(pickle.dumps(x))
    np.testing.assert_array_equal(y.sum(axis=(2, 3)).compute(scheduler="threads"), ds[:, :].sum(axis=(2, 3)))
    z = ds.to_dask(chunks=(4, 5, 128, 256))
    np.testing.assert_array_equal(z.compute(), ds[:, :])
    assert ds.to_dask().chunks[0] == (10,)


def test_local_cluster_bf_adf_equal_overview(synth_mib):
    distributed = pytest.importorskip("distributed")
    ds = emdtui.open(synth_mib, keep_bad_pixels=True)
    center, r_bf, r_in, r_out = (127.5, 128.0), 30.0, 40.0, 100.0
    bf_mask, adf_mask = disk_masks(ds.shape[2:], center, r_bf, r_in, r_out)
    x = ds.to_dask(chunks=4)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
            distributed.Client(c) as client:
        bf = (x * bf_mask).sum(axis=(2, 3), dtype=np.float64)
        adf = (x * adf_mask).sum(axis=(2, 3), dtype=np.float64)
        bf, adf = client.compute([bf, adf], sync=True)
        # both workers read blocks
        assert len(client.scheduler_info()["workers"]) == 2
    want_bf = ds.overview("bf", inner=r_bf, center=center)
    want_adf = ds.overview("adf", inner=r_in, outer=r_out, center=center)
    np.testing.assert_allclose(bf, want_bf, rtol=1e-6)
    np.testing.assert_allclose(adf, want_adf, rtol=1e-6)
    assert bf.sum() > 0 and adf.sum() > 0


def test_cluster_recipe_of_the_readme(synth_mib):
    """python/examples/cluster_bf.py (the README's recipe; Slurm swaps the cluster object)."""
    import importlib.util

    distributed = pytest.importorskip("distributed")
    spec = importlib.util.spec_from_file_location("cluster_bf", Path(__file__).parents[1] / "examples" / "cluster_bf.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    with recipe.make_cluster(slurm=False) as cluster, distributed.Client(cluster) as client:
        bf = recipe.bf_image(str(synth_mib), client, radius=32, keep_bad_pixels=True)
    want = emdtui.open(synth_mib, keep_bad_pixels=True).overview("bf", inner=32, center=(127.5, 127.5))
    np.testing.assert_allclose(bf, want, rtol=1e-6)


@pytest.fixture(scope="module")
def converted(synth_mib, tmp_path_factory):
    out = tmp_path_factory.mktemp("emd") / "scan.emd"
    emdtui.open(synth_mib).convert(out, progress=False)
    return out


def test_libertem_ring_mask_udf_agrees(converted, tmp_path):
    pytest.importorskip("libertem")
    from libertem.api import Context
    from libertem.masks import ring
    from libertem.udf.masks import ApplyMasksUDF

    ds = emdtui.open(converted, keep_bad_pixels=True)
    meta = ds.metadata
    sr, sc, dr, dc = ds.shape
    m = ring(centerX=128, centerY=127, imageSizeX=dc, imageSizeY=dr, radius=90, radius_inner=35).astype(np.float32)
    np.save(tmp_path / "ring.npy", m)
    ctx = Context.make_with("inline")
    lds = ctx.load("hdf5", path=str(converted), ds_path=meta["datacube"])
    res = ctx.run_udf(dataset=lds, udf=ApplyMasksUDF(mask_factories=[lambda: m]))
    lt = np.asarray(res["intensity"].data)[..., 0].reshape(sr, sc)
    ours = ds.overview(f"mask:{tmp_path / 'ring.npy'}")
    np.testing.assert_allclose(ours, lt, rtol=1e-6)
    assert ours.sum() > 0


def test_hyperspy_opens_it_lazily(converted):
    hs = pytest.importorskip("hyperspy.api")
    ds = emdtui.open(converted)
    s = hs.load(str(converted), lazy=True)
    sigs = s if isinstance(s, list) else [s]
    cube = [x for x in sigs if x.data.ndim == 4]
    assert len(cube) == 1, [x.data.shape for x in sigs]
    cube = cube[0]
    assert cube._lazy and isinstance(cube.data, da.Array)
    assert tuple(cube.data.shape) == ds.shape
    np.testing.assert_array_equal(np.asarray(cube.data[3, 4].compute()), ds[3, 4])

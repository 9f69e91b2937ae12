"""Tiles for large photos: they cover the image, blend back without seams, and an interrupted photo resumes at its
first unfinished tile."""

from __future__ import annotations

import numpy as np
import pytest

from visionzoo.dip.tiles import TileBlender, TileCache, blend_window, tile_grid


def test_tiles_cover_the_image_flush_with_its_edges():
    tiles = tile_grid(1000, 700, size=256, overlap=32)
    assert sorted({t.top for t in tiles}) == [0, 224, 448, 672, 744]  # every 224 px, the last flush with the edge
    assert sorted({t.left for t in tiles}) == [0, 224, 444]
    assert len(tiles) == 15 and {(t.height, t.width) for t in tiles} == {(256, 256)}
    covered = np.zeros((1000, 700), int)
    for t in tiles:
        covered[t.rows, t.columns] += 1
    assert covered.min() >= 1
    assert tile_grid(100, 80, size=256, overlap=32) == tile_grid(100, 80, size=100, overlap=0)  # one tile
    with pytest.raises(ValueError, match="overlap < size"):
        tile_grid(100, 100, size=32, overlap=32)


def test_blending_returns_what_the_tiles_agree_on():
    rng = np.random.default_rng(0)
    image = rng.random((90, 70, 3), dtype=np.float32)
    for source in (np.full((90, 70, 3), 0.25, np.float32), image):  # a constant image, then any image
        blender = TileBlender(90, 70, 3, overlap=8)
        for t in tile_grid(90, 70, size=32, overlap=8):
            blender.add(t, source[t.rows, t.columns])
        assert np.abs(blender.result() - source).max() < 1e-6


def test_tiles_that_disagree_blend_without_a_seam():
    """Each tile returns a different constant (offsets 0 and 1 between neighbours): across each overlap the result
    changes gradually, by at most about 1/overlap per pixel, where pasted tiles would jump by 1."""
    overlap = 16
    blender = TileBlender(64, 112, 1, overlap=overlap)
    for t in tile_grid(64, 112, size=64, overlap=overlap):
        blender.add(t, np.full((t.height, t.width, 1), float(t.left // 48 % 2), np.float32))
    result = blender.result()[..., 0]
    steps = np.abs(np.diff(result, axis=1))
    assert result.min() == pytest.approx(0.0) and result.max() == pytest.approx(1.0)
    assert steps.max() < 2.5 / overlap


def test_window_weights_fall_towards_the_edges_but_never_to_zero():
    window = blend_window(16, 16, overlap=4)
    assert window[8, 8] == 1.0 and window[0, 8] == pytest.approx(0.125) and window[3, 8] == pytest.approx(0.875)
    assert window.min() == pytest.approx(0.125**2) and window.min() > 0


def test_tile_cache_round_trip(tmp_path):
    cache = TileCache(tmp_path / ".photo_dip.tiles")
    tile = tile_grid(40, 40, size=24, overlap=8)[1]
    assert cache.load(tile) is None
    pixels = np.random.default_rng(1).random((tile.height, tile.width, 3)).astype(np.float32)
    cache.save(tile, pixels)
    assert np.array_equal(cache.load(tile), pixels)
    assert sorted(p.name for p in cache.folder.iterdir()) == [f"{tile.key}.npy", "fingerprint.json"]  # no temporary
    cache.clear()
    assert not cache.folder.exists()


def test_tile_cache_keeps_its_tiles_only_for_the_same_fingerprint(tmp_path, caplog):
    folder = tmp_path / ".photo_dip.tiles"
    tile = tile_grid(40, 40, size=24, overlap=8)[0]
    pixels = np.full((tile.height, tile.width, 3), 0.25, np.float32)
    made = {"fit.iterations": 3, "fit.precision": "bf16", "tile": {"size": 24, "overlap": 8}}
    TileCache(folder, made).save(tile, pixels)
    assert sorted(p.name for p in folder.iterdir()) == ["0_0.npy", "fingerprint.json"]
    same = TileCache(folder, dict(made))
    same.open()
    assert np.array_equal(same.load(tile), pixels)  # the same settings resume
    from omegaconf import OmegaConf  # a config's nested node reads as the dict it holds

    assert TileCache(folder, {"fit.early_stop": OmegaConf.create({"rule": "auto"})}).fingerprint == {
        "fit.early_stop": {"rule": "auto"}}
    other = TileCache(folder, made | {"fit.iterations": 4, "fit.precision": "fp32"})
    with caplog.at_level("WARNING"):
        other.open()
    assert "(fit.iterations, fit.precision); starting the image over" in caplog.text
    assert not folder.exists() and other.load(tile) is None
    TileCache(folder, made).save(tile, pixels)
    (folder / "fingerprint.json").unlink()  # a cache from before fingerprints: its settings are unknown
    unknown = TileCache(folder, made)
    unknown.open()
    assert not folder.exists()


def _photo(folder, height: int = 40, width: int = 56):
    import cv2
    from skimage import data

    folder.mkdir()
    cv2.imwrite(str(folder / "photo.png"), cv2.resize(data.astronaut(), (width, height))[..., ::-1])
    return folder / "photo.png"


def test_predictor_denoises_a_large_photo_in_tiles_and_resumes(tmp_path, monkeypatch):
    """A 40x56 photo in 24-px tiles (6 tiles): killed after the second tile, the next run (two tiles per batch)
    fits only the other four, writes the photo and removes its tile cache."""
    from functools import partial

    import cv2

    import visionzoo
    import visionzoo.predict.denoise as denoise

    _photo(tmp_path / "in")
    fitted_tiles: list[tuple[int, int]] = []
    real_fit = denoise.fit_images

    def fit_and_count(net, architecture, noisy, settings, **kwargs):
        if len(fitted_tiles) == 2 and interrupt:
            raise KeyboardInterrupt
        fitted_tiles.extend(tuple(image.shape[-2:]) for image in noisy)
        return real_fit(net, architecture, noisy, settings, **kwargs)

    monkeypatch.setattr(denoise, "fit_images", fit_and_count)
    predictor = denoise.DenoisePredictor(partial(visionzoo.create_model, name="dip_scaled"), str(tmp_path / "in"),
                                         str(tmp_path / "out"), fit={"iterations": 3},
                                         tile={"size": 24, "overlap": 8, "batch": 1})
    assert len(predictor.tiles(40, 56)) == 6
    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        predictor.run()
    cache = tmp_path / "out" / ".photo_dip.tiles"
    assert sorted(p.name for p in cache.iterdir()) == ["0_0.npy", "0_16.npy", "fingerprint.json"]
    assert not (tmp_path / "out" / "photo_dip.png").exists()
    interrupt, fitted_tiles[:] = False, []
    predictor.tile["batch"] = 2  # grouping is not part of the fingerprint: the resume keeps the two tiles
    report = predictor.run()
    assert len(fitted_tiles) == 4 and set(fitted_tiles) == {(24, 24)}
    assert [p.name for p in report.written] == ["photo.png"] and not cache.exists()
    assert cv2.imread(str(tmp_path / "out" / "photo_dip.png")).shape == (40, 56, 3)


def test_a_resumed_photo_starts_over_when_the_settings_or_the_photo_changed(tmp_path, monkeypatch):
    """Tiles of a 3-iteration run are not blended into a 4-iteration run's photo, nor tiles of another photo saved
    under the same name: the cache is discarded and all six tiles are fitted again."""
    from functools import partial

    import cv2

    import visionzoo
    import visionzoo.predict.denoise as denoise

    photo = _photo(tmp_path / "in")
    fitted: list[int] = []
    real_fit = denoise.fit_images

    def fit_and_count(net, architecture, noisy, settings, **kwargs):
        if len(fitted) == 2 and interrupt:
            raise KeyboardInterrupt
        fitted.extend(settings.iterations for _ in noisy)
        return real_fit(net, architecture, noisy, settings, **kwargs)

    monkeypatch.setattr(denoise, "fit_images", fit_and_count)

    def predictor(iterations: int) -> denoise.DenoisePredictor:
        return denoise.DenoisePredictor(partial(visionzoo.create_model, name="dip_scaled"), str(tmp_path / "in"),
                                        str(tmp_path / "out"), fit={"iterations": iterations},
                                        tile={"size": 24, "overlap": 8, "batch": 1})

    cache = tmp_path / "out" / ".photo_dip.tiles"
    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        predictor(3).run()
    interrupt, fitted[:] = False, []
    assert predictor(4).run().written == [photo] and fitted == [4] * 6 and not cache.exists()

    (tmp_path / "out" / "photo_dip.png").unlink()
    interrupt, fitted[:] = True, []
    with pytest.raises(KeyboardInterrupt):
        predictor(3).run()
    cv2.imwrite(str(photo), cv2.flip(cv2.imread(str(photo)), 1))  # another photo under the same name
    interrupt, fitted[:] = False, []
    assert predictor(3).run().written == [photo] and fitted == [3] * 6 and not cache.exists()


def test_progress_counts_each_tiles_budget_times_the_ensemble(tmp_path):
    from functools import partial

    import visionzoo
    from visionzoo.predict.denoise import DenoisePredictor

    make = partial(DenoisePredictor, partial(visionzoo.create_model, name="dip_scaled"), "x", str(tmp_path))
    auto = make(fit={"experimental": {"ensemble": 2}}, tile={"size": 256, "overlap": 32})
    tiles = auto.tiles(140, 300)  # two 140 x 256 tiles: shorter side 140 >= 128, 1400 iterations each
    assert [(t.height, t.width) for t in tiles] == [(140, 256)] * 2
    assert list(auto.tile_iterations(tiles).values()) == [2 * 1400] * 2
    assert list(auto.tile_iterations(auto.tiles(100, 120)).values()) == [2 * 800]  # one whole 100 x 120 image
    fixed = make(fit={"iterations": 5}, tile={"size": 256, "overlap": 32})
    assert list(fixed.tile_iterations(tiles).values()) == [5, 5]


def test_tiles_are_off_for_photos_within_one_tile(tmp_path):
    from functools import partial

    import visionzoo
    from visionzoo.predict.denoise import DenoisePredictor

    predictor = DenoisePredictor(partial(visionzoo.create_model, name="dip_scaled"), "x", str(tmp_path),
                                 tile={"size": 64, "overlap": 8})
    assert [(t.height, t.width) for t in predictor.tiles(40, 64)] == [(40, 64)]
    with pytest.raises(Exception, match="predictor.tile must be"):
        DenoisePredictor(partial(visionzoo.create_model, name="dip_scaled"), "x", str(tmp_path),
                         tile={"size": 64, "overlap": 64})

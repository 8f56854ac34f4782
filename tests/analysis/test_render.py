"""Frames and GIFs (curio_jax.analysis.render) without the reference extra."""

from __future__ import annotations

import numpy as np
import pytest

from curio_jax.analysis import render
from curio_jax.envs import DoorKeyLayout, frames, make_doorkey


def test_agent_points_in_its_direction_and_door_states_differ():
    env = make_doorkey(5)
    centres = {}
    for d in range(4):
        lay = DoorKeyLayout(
            size=5, wall_x=2, door_y=2, agent_x=1, agent_y=2, agent_dir=d, key_x=1, key_y=3
        )
        img = render.render_frame(env.reset_to(lay), tile_size=32, highlight=False)
        cell = img[64:96, 32:64].astype(int)
        red = (cell[..., 0] > 200) & (cell[..., 1] < 80) & (cell[..., 2] < 80)
        ys, xs = np.nonzero(red)
        assert red.sum() > 100
        centres[d] = (xs.mean() - 15.5, ys.mean() - 15.5)  # centroid offset from the centre
    # the triangle's mass sits towards its base: its tip points the other way
    tips = {d: (-cx, -cy) for d, (cx, cy) in centres.items()}
    assert tips[0][0] > 2 and abs(tips[0][1]) < 1  # east: +x
    assert tips[1][1] > 2 and abs(tips[1][0]) < 1  # south: +y (image rows grow downwards)
    assert tips[2][0] < -2 and abs(tips[2][1]) < 1  # west
    assert tips[3][1] < -2 and abs(tips[3][0]) < 1  # north
    tiles = [frames._tile(f"door_{s}", 32, False, -1, False) for s in ("open", "closed", "locked")]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(tiles[i].astype(int) - tiles[j]).mean() > 10


def test_save_gif_roundtrip_and_bad_input(tmp_path, pil_image):
    frames = [np.full((16, 24, 3), v, np.uint8) for v in (0, 80, 160, 240)]
    frames[2][4:8, 4:8] = (255, 0, 0)
    path = tmp_path / "a.gif"
    render.save_gif(frames, path, fps=5)
    with pil_image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 4 and im.info["duration"] == 200
        for i, f in enumerate(frames):
            im.seek(i)
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), f)
    with pytest.raises(ValueError, match="no frames"):
        render.save_gif([], path)
    with pytest.raises(ValueError, match="differs"):
        render.save_gif([frames[0], np.zeros((8, 8, 3), np.uint8)], path)
    with pytest.raises(ValueError, match="fps"):
        render.save_gif(frames, path, fps=0)
    with pytest.raises(ValueError, match="uint8"):
        render.save_gif([np.zeros((8, 8), np.float32)], path)


def test_grid_frames_layout_hold_and_borders():
    a = [np.full((10, 12, 3), v, np.uint8) for v in (10, 20, 30)]
    b = [np.full((10, 12, 3), 200, np.uint8)]
    c = [np.full((10, 12, 3), v, np.uint8) for v in (50, 60)]
    out = render.grid_frames([a, b, c], cols=2, gap=4, borders=[None, (0, 255, 0), (255, 0, 0)])
    assert len(out) == 3
    assert out[0].shape == (2 * 14 + 4, 2 * 16 + 4, 3)
    last = out[-1]
    assert np.all(last[4:14, 4:16] == 30)  # episode a at its last frame
    assert np.all(last[4:14, 20:32] == 200)  # episode b held
    assert np.all(last[18:28, 4:16] == 60)  # episode c held (second row)
    assert tuple(last[3, 25]) == (0, 255, 0)  # b's border (ended from the start)
    assert tuple(out[0][17, 10]) == (255, 255, 255)  # c has not ended at t=0: no border
    assert tuple(out[1][17, 10]) == (255, 0, 0)  # ... and has at t=1
    with pytest.raises(ValueError, match="borders"):
        render.grid_frames([a, b], cols=2, borders=[None])


def test_run_gif_draws_the_best_seed(run_dir, tmp_path, pil_image):
    d, _ = run_dir
    (d / "summary.json").write_text(
        '{"seeds": [{"final_avg_return_last100": 0.1}, {"final_avg_return_last100": 0.5}]}'
    )
    try:
        what = render.run_gif(d, tmp_path / "a.gif", episodes=2, max_frames=300)
    finally:
        (d / "summary.json").unlink()
    assert what.startswith("seed 1,")
    with pil_image.open(tmp_path / "a.gif") as im:
        assert im.n_frames >= 2
    with pytest.raises(ValueError, match="longer than"):
        render.run_gif(d, tmp_path / "b.gif", seed_index=0, episodes=1, max_frames=1)

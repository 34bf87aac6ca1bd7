"""Figure 7 quantities: known properties, computed independently where possible, and the command."""

from __future__ import annotations

import itertools
import json

import numpy as np
from typer.testing import CliRunner

from model_export.cli import app
from model_export.inspection import figures


def test_principal_components_are_orthonormal_and_ordered():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(40, 3, 4, 4)) * np.linspace(3, 0.1, 48).reshape(3, 4, 4)
    components, explained = figures.patch_embedding_components(weight, count=10)
    assert components.shape == (10, 3, 4, 4)
    flat = components.reshape(10, -1)
    np.testing.assert_allclose(flat @ flat.T, np.eye(10), atol=1e-10)
    assert np.all(np.diff(explained) <= 1e-12) and 0 < explained.sum() <= 1


def test_first_component_is_the_direction_of_largest_filter_variance():
    rng = np.random.default_rng(1)
    direction = rng.normal(size=3 * 2 * 2)
    direction /= np.linalg.norm(direction)
    weight = (rng.normal(size=(200, 1)) * 10 * direction + rng.normal(size=(200, 12)) * 0.01).reshape(
        200, 3, 2, 2
    )
    components, explained = figures.patch_embedding_components(weight, count=3)
    assert abs(components[0].ravel() @ direction) > 0.999
    assert explained[0] > 0.99


def test_position_similarity_has_unit_diagonal_and_is_symmetric():
    rng = np.random.default_rng(2)
    grid = (3, 4)
    pos = rng.normal(size=(2 + 12, 8))
    similarity = figures.position_similarity(pos, num_prefix_tokens=2, grid=grid)
    assert similarity.shape == (3, 4, 3, 4)
    for r, c in itertools.product(range(3), range(4)):
        assert abs(similarity[r, c, r, c] - 1) < 1e-12
    flat = similarity.reshape(12, 12)
    np.testing.assert_allclose(flat, flat.T)
    a, b = pos[2 + 5], pos[2 + 7]
    assert abs(flat[5, 7] - a @ b / np.linalg.norm(a) / np.linalg.norm(b)) < 1e-12


def test_uniform_attention_gives_the_mean_pixel_distance_over_the_grid():
    grid, patch, prefix = (3, 5), 16, 1
    tokens = prefix + 15
    uniform = np.full((2, 4, tokens, tokens), 1.0 / tokens)
    distance = figures.mean_attention_distance([uniform, uniform], prefix, grid, patch)
    centres = [(r * patch, c * patch) for r in range(3) for c in range(5)]
    expected = np.mean([np.hypot(y1 - y2, x1 - x2) for (y1, x1) in centres for (y2, x2) in centres])
    assert distance.shape == (2, 4)
    np.testing.assert_allclose(distance, expected)


def test_attention_to_self_has_zero_distance_and_to_a_neighbour_one_patch():
    grid, patch = (2, 2), 8
    eye = np.eye(5)[None, None]  # every token attends only to itself
    neighbour = np.zeros((1, 1, 5, 5))
    neighbour[0, 0, 0, 0] = 1.0
    for query, key in zip([1, 2, 3, 4], [2, 1, 4, 3], strict=True):  # horizontal neighbours
        neighbour[0, 0, query, key] = 1.0
    distance = figures.mean_attention_distance([eye, neighbour], 1, grid, patch)
    np.testing.assert_allclose(distance[:, 0], [0.0, 8.0])


def test_inspect_command_writes_figures_and_json(bundle, tmp_path):
    result = CliRunner().invoke(app, ["inspect", str(bundle), "--out", str(tmp_path), "--images", "2"])
    assert result.exit_code == 0, result.output
    for name in ("embedding_filters.png", "position_similarity.png", "attention_distance.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "inspection.json").read_text())
    assert np.array(data["attention_distance"]["mean_distance"]).shape == (2, 2)  # layers × heads
    assert np.array(data["position_similarity"]["similarity"]).shape == (4, 4, 4, 4)
    assert "sample photos" in data["attention_distance"]["images"]
    assert len(data["embedding_filters"]["explained_variance_ratio"]) == 28

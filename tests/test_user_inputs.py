"""A user's own model factory, dataset file or image folders, and checkpoint file names: what the
workflow checks at parse time (tests/test_workflow_external.py) and what it stores."""

import numpy as np
import pytest

from lossatlas.data import dataset_info, load_dataset, prepare_dataset
from lossatlas.models import build_factory_model, check_logits, import_factory
from lossatlas.runs import external_checkpoint_files

MODULE = '''
from torch import nn

NOT_CALLABLE = 3


def make(width=4):
    return nn.Sequential(nn.Flatten(), nn.Linear(6, width), nn.ReLU(), nn.Linear(width, 3))


def broken():
    return "not a module"
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_nets_for_test.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_nets_for_test"


def test_a_factory_is_imported_from_the_working_directory_and_called_with_its_kwargs(user_module):
    model = build_factory_model(f"{user_module}:make", {"width": 7})
    assert model[1].out_features == 7
    check_logits(model, (2, 3), 3, "the model")


@pytest.mark.parametrize("spec, kwargs, message", [
    ("user_nets_for_test.make", {}, "is not of the form 'module.path:callable'"),
    ("no_such_module_here:make", {}, "cannot import module 'no_such_module_here'"),
    ("user_nets_for_test:missing", {}, "has no attribute 'missing'"),
    ("user_nets_for_test:NOT_CALLABLE", {}, "is not callable"),
    ("user_nets_for_test:make", {"depth": 2}, "unexpected keyword argument 'depth'"),
    ("user_nets_for_test:broken", {}, "returned str, not an nn.Module"),
])
def test_a_bad_factory_is_an_error_naming_it(user_module, spec, kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        build_factory_model(spec, kwargs)
    assert repr(spec) in str(error.value)


def test_logits_of_the_wrong_width_or_inputs_of_the_wrong_shape_are_errors(user_module):
    model = import_factory(f"{user_module}:make")()
    with pytest.raises(ValueError, match=r"the dataset has 5 classes, so logits must be \(2, 5\)"):
        check_logits(model, (6,), 5, "net")
    with pytest.raises(ValueError, match=r"net cannot take inputs of shape \(N, 2, 4\)"):
        check_logits(model, (2, 4), 3, "net")


def arrays(n_train=12, n_test=5, shape=(2, 3)):
    generator = np.random.default_rng(0)
    return {"x_train": generator.normal(size=(n_train, *shape)).astype(np.float32),
            "y_train": np.arange(n_train) % 3, "x_test": generator.normal(size=(n_test, *shape)),
            "y_test": np.arange(n_test) % 3}


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_arrays_of_a_user_dataset_are_stored_and_loaded_as_given(tmp_path, suffix):
    data, source = arrays(), tmp_path / f"user{suffix}"
    if suffix == ".npz":
        np.savez(source, **data, classes=np.array(["a", "b", "c", "d"]))
    else:
        import h5py

        with h5py.File(source, "w") as f:
            for key, value in data.items():
                f[key] = value
    info = dataset_info("mine", source)
    assert (info.input_shape, info.n_train) == ((2, 3), 12)
    assert info.num_classes == (4 if suffix == ".npz" else 3)
    prepare_dataset("mine", tmp_path / "prepared.h5", download_dir=tmp_path, source=source)
    loaded = load_dataset(tmp_path / "prepared.h5")
    np.testing.assert_array_equal(loaded.x_train.numpy(), data["x_train"])
    np.testing.assert_array_equal(loaded.x_test.numpy(), data["x_test"].astype(np.float32))
    np.testing.assert_array_equal(loaded.y_test.numpy(), data["y_test"])
    assert loaded.num_classes == info.num_classes


@pytest.mark.parametrize("change, message", [
    ({"y_train": np.zeros(11, dtype=int)}, r"y_train must hold one integer label per sample"),
    ({"y_test": np.full(5, 0.5)}, r"y_test must hold one integer label per sample"),
    ({"x_test": np.zeros((5, 3, 2))}, r"x_train \(12, 2, 3\) and x_test \(5, 3, 2\)"),
    ({"y_train": np.full(12, -1)}, r"y_train has labels outside \[0, 3\)"),
])
def test_a_user_dataset_of_the_wrong_shape_is_an_error_naming_it(tmp_path, change, message):
    source = tmp_path / "bad.npz"
    np.savez(source, **{**arrays(), **change})
    with pytest.raises(ValueError, match=f"dataset {source}: {message}"):
        dataset_info("mine", source)


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_an_object_array_of_the_right_shape_is_an_error_naming_it(tmp_path, suffix):
    import h5py

    data, source = arrays(), tmp_path / f"objects{suffix}"
    data["x_train"] = data["x_train"].astype(object)
    if suffix == ".npz":
        np.savez(source, **data)
    else:
        with h5py.File(source, "w") as f:
            for key, value in data.items():
                if value.dtype == object:
                    f.create_dataset(key, data=value.astype(str).astype(object),
                                     dtype=h5py.string_dtype())
                else:
                    f[key] = value
    with pytest.raises(ValueError, match=f"dataset {source}: x_train has dtype object; it must "
                                         "hold numbers"):
        dataset_info("mine", source)


def test_a_dataset_of_one_class_is_an_error_naming_it(tmp_path):
    from PIL import Image

    source = tmp_path / "one.npz"
    np.savez(source, **{**arrays(), "y_train": np.zeros(12, dtype=int),
                        "y_test": np.zeros(5, dtype=int)})
    with pytest.raises(ValueError, match=f"dataset {source}: 1 class .0.; a classifier needs at "
                                         "least 2"):
        dataset_info("mine", source)
    for split in ("train", "test"):
        (tmp_path / "images" / split / "cat").mkdir(parents=True)
        Image.fromarray(np.zeros((4, 5, 3), dtype=np.uint8)).save(
            tmp_path / "images" / split / "cat" / "0.png")
    with pytest.raises(ValueError, match=r"images: 1 class \(cat\); a classifier needs"):
        dataset_info("mine", tmp_path / "images")


def test_a_missing_array_or_file_is_an_error_naming_it(tmp_path):
    source = tmp_path / "partial.npz"
    np.savez(source, x_train=np.zeros((3, 2)), y_train=np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="missing array.s. x_test, y_test"):
        dataset_info("mine", source)
    with pytest.raises(ValueError, match="nothere.h5: file not found"):
        dataset_info("mine", tmp_path / "nothere.h5")


def test_image_folders_are_read_as_rgb_pixels_standardized_per_channel(tmp_path):
    from PIL import Image

    generator = np.random.default_rng(1)
    pixels = {}
    for split, count in (("train", 3), ("test", 2)):
        for label in ("cat", "dog"):
            (tmp_path / "images" / split / label).mkdir(parents=True)
            for index in range(count):
                image = generator.integers(0, 256, (4, 5, 3), dtype=np.uint8)
                Image.fromarray(image).save(tmp_path / "images" / split / label / f"{index}.png")
                pixels[split, label, index] = image
    info = dataset_info("pets", tmp_path / "images")
    assert (info.input_shape, info.num_classes, info.n_train) == ((3, 4, 5), 2, 6)
    prepare_dataset("pets", tmp_path / "pets.h5", download_dir=tmp_path,
                    source=tmp_path / "images")
    loaded = load_dataset(tmp_path / "pets.h5")
    train = np.stack([pixels["train", label, i] for label in ("cat", "dog") for i in range(3)])
    train = train.transpose(0, 3, 1, 2).astype(np.float64)
    mean, std = train.mean((0, 2, 3), keepdims=True), train.std((0, 2, 3), keepdims=True)
    np.testing.assert_allclose(loaded.x_train.numpy(), (train - mean) / std, rtol=1e-5, atol=1e-5)
    assert loaded.classes == ["cat", "dog"] and loaded.y_test.tolist() == [0, 0, 1, 1]
    Image.fromarray(np.zeros((6, 5, 3), dtype=np.uint8)).save(tmp_path / "images/test/dog/9.png")
    with pytest.raises(ValueError, match=r"9.png is 5x6 pixels, the first image 5x4"):
        prepare_dataset("pets", tmp_path / "pets.h5", download_dir=tmp_path,
                        source=tmp_path / "images")


def test_checkpoint_files_of_a_seed_its_epochs_and_steps():
    templates = {"final": "c/s{seed}/final.pt", "init": "c/init.pt",
                 "epoch": "c/s{seed}/e{epoch}.pt", "step": "c/s{seed}/t{step}.pt"}
    assert external_checkpoint_files(templates, 2, [3, 1], [5, 7]) == {
        "final": "c/s2/final.pt", "init": "c/init.pt", "epoch-1": "c/s2/e1.pt",
        "epoch-3": "c/s2/e3.pt", "step-5": "c/s2/t5.pt", "step-6": "c/s2/t6.pt"}
    assert external_checkpoint_files({"final": "f.pt"}, 0, [1], [5, 7]) == {"final": "f.pt"}


@pytest.mark.parametrize("template, message", [
    ("c/{nope}.pt", r"final='c/\{nope\}.pt': not a file name template \(KeyError: 'nope'\); "
                    r"it may hold \{seed\}"),
    ("c/{0}.pt", r"final='c/\{0\}.pt': not a file name template \(IndexError"),
    ("c/{seed.pt", r"final='c/\{seed.pt': not a file name template \(ValueError"),
])
def test_an_unknown_placeholder_in_a_checkpoint_template_names_it(template, message):
    with pytest.raises(ValueError, match=message):
        external_checkpoint_files({"final": template}, 0, [], None)

"""Dataset loaders on real data: FER2013 folders, a FER2013 CSV, CK+48 and a CK+-shaped tree built
from real images, face cropping with the runtime's detectors, class sets, the module layout."""

from __future__ import annotations

import csv
import importlib.util
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_fer.classifier import preprocess_crops
from edge_fer.errors import InputError, OptionsError
from edge_fer.metadata import FER2013_LABELS, ModelMeta
from edge_fer.train.ckplus import frame_id, frame_ids, load_ckplus
from edge_fer.train.cropping import FaceCropper, open_cropper
from edge_fer.train.datasets import (CLASS_SETS, class_counts, dedup_against, fit_size, limit_classes,
                                     load_fer2013_csv, load_folder, oversample, resolve_classes,
                                     save_folder, select_classes)
from edge_fer.train.loaders import LoadOptions, dataset_kind, load_dataset
from edge_fer.detectors import DetectorOptions


def copy_fer(src_root: Path, dst_root: Path, per_class: dict[str, int]) -> dict[str, list[Path]]:
    """Copy the first ``n`` real FER images of each class into ``dst_root/<class>/``."""
    out = {}
    for name, n in per_class.items():
        (dst_root / name).mkdir(parents=True, exist_ok=True)
        files = sorted((src_root / name).iterdir())[:n]
        out[name] = [Path(shutil.copy(f, dst_root / name / f.name)) for f in files]
    return out


def test_oversample_repeats_a_class_in_order_up_to_its_count(fer_val):
    data = load_folder(fer_val, limit_per_class=5, seed=1)
    disgust = data.classes.index("disgust")
    more = oversample(data, class_counts("disgust=12"))
    assert more.counts() == {**data.counts(), "disgust": 12}
    own = [p for p, y in zip(data.paths, data.labels) if y == disgust]
    assert [p for p, y in zip(more.paths, more.labels) if y == disgust] == own + own + own[:2]
    assert more.paths[:len(data)] == data.paths and np.array_equal(more.images[:len(data)], data.images)
    assert oversample(data, ()).paths == data.paths  # nothing asked: the same data
    assert class_counts((("fear", 7),)) == (("fear", 7),)


# folder-per-class --------------------------------------------------------------------------------
def test_fer_folder_loads_in_fer2013_order(fer_val):
    data = load_folder(fer_val, limit_per_class=5, seed=1)
    assert data.classes == FER2013_LABELS
    assert data.counts() == {c: 5 for c in FER2013_LABELS}
    assert data.images.shape == (35, 48, 48) and data.images.dtype == np.uint8
    first = cv2.imread(data.paths[0], cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(data.images[0], first)
    assert Path(data.paths[0]).parent.name == data.classes[data.labels[0]]
    assert data.skipped == 0 and data.no_face == 0


def test_folder_skips_and_counts_corrupt_images(fer_val, tmp_path):
    copy_fer(fer_val, tmp_path, {"happy": 3, "sad": 3})
    (tmp_path / "happy" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "sad" / "empty.png").write_bytes(b"")
    (tmp_path / "sad" / "notes.txt").write_text("not an image, not counted")
    data = load_folder(tmp_path)
    assert data.classes == ("happy", "sad")
    assert len(data) == 6 and data.skipped == 2


@pytest.mark.parametrize("layout, message", [
    ("missing", "not found"),
    ("empty", "no class subfolders"),
    ("unlabelled", "no class subfolders"),
    ("only_corrupt", r"no usable images \(1 unreadable"),
])
def test_folder_errors(tmp_path, fer_val, layout, message):
    root = tmp_path / "data"
    if layout != "missing":
        root.mkdir()
    if layout == "unlabelled":
        copy_fer(fer_val, tmp_path / "src", {"happy": 2})
        for f in (tmp_path / "src" / "happy").iterdir():
            shutil.copy(f, root / f.name)
    if layout == "only_corrupt":
        (root / "happy").mkdir()
        (root / "happy" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(InputError, match=message):
        load_folder(root)


def test_folder_explicit_classes_pick_and_order(fer_val):
    data = load_folder(fer_val, classes=("surprise", "angry"), limit_per_class=3)
    assert data.classes == ("surprise", "angry")
    assert data.counts() == {"surprise": 3, "angry": 3}
    assert all(Path(p).parent.name == data.classes[k] for p, k in zip(data.paths, data.labels))
    with pytest.raises(InputError, match=r"lacks class folders \['contempt'\]"):
        load_folder(fer_val, classes=CLASS_SETS["ckplus"])


@pytest.mark.parametrize("size_hw", [(64, 64), (32, 40), (48, 48)])
def test_fit_size_is_the_runtime_resize(fer_val, media_dir, size_hw):
    """Training data is resized exactly as the runtime's preprocessing resizes crops."""
    meta = ModelMeta(labels=("a", "b"), input_size_hw=size_hw, scale=1.0, offset=0.0)

    face = cv2.imread(str(next((fer_val / "happy").iterdir())), cv2.IMREAD_GRAYSCALE)
    photo = cv2.imread(str(media_dir / "justin.jpg"), cv2.IMREAD_GRAYSCALE)
    for image in (face, photo):
        expected = preprocess_crops(meta, [image])[0, :, :, 0]
        np.testing.assert_array_equal(fit_size(image, size_hw).astype(np.float32), expected)


def test_dedup_against_finds_fer_twins(fer_val, fer_train):
    val = load_folder(fer_val, classes=("disgust",))
    train = load_folder(fer_train, classes=("disgust",))
    keep = dedup_against(val, train)
    removed = sorted(set(range(len(val))) - set(keep.tolist()))
    train_hashes = {im.tobytes() for im in train.images}
    assert removed and all(val.images[i].tobytes() in train_hashes for i in removed)
    assert all(val.images[i].tobytes() not in train_hashes for i in keep)


def test_save_folder_round_trip(fer_val, tmp_path):
    data = load_folder(fer_val, classes=("fear", "happy"), limit_per_class=4)
    save_folder(data, tmp_path / "copy")
    again = load_folder(tmp_path / "copy")
    assert again.classes == data.classes
    np.testing.assert_array_equal(again.images, data.images)  # PNG is lossless


# class sets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("fer2013", FER2013_LABELS),
    ("pyfer", ("angry", "disgust", "fear", "happy", "sad", "surprise")),
    ("ckplus", ("neutral", "angry", "contempt", "disgust", "fear", "happy", "sad", "surprise")),
    ("happy, sad ,neutral", ("happy", "sad", "neutral")),
    (None, None),
    ("happy", OptionsError),
    ("happy,happy", OptionsError),
    ("", OptionsError),
])
def test_resolve_classes(text, expected):
    if expected is OptionsError:
        with pytest.raises(OptionsError, match="classes=.*: expected a preset"):
            resolve_classes(text)
    else:
        assert resolve_classes(text) == expected


def test_class_set_sizes():
    assert [len(CLASS_SETS[k]) for k in ("fer2013", "pyfer", "ckplus")] == [7, 6, 8]
    assert CLASS_SETS["fer2013"] == FER2013_LABELS


def test_select_and_limit_classes(fer_val):
    data = load_folder(fer_val, limit_per_class=6)
    pyfer = select_classes(data, CLASS_SETS["pyfer"])
    assert pyfer.classes == CLASS_SETS["pyfer"] and len(pyfer) == 36
    np.testing.assert_array_equal(pyfer.images[pyfer.labels == 3], data.images[data.labels == 3])  # happy
    small = limit_classes(pyfer, 2, seed=0)
    assert small.counts() == {c: 2 for c in pyfer.classes}
    with pytest.raises(InputError, match=r"no images of classes \['contempt'\]"):
        select_classes(data, ("happy", "contempt"))


# FER2013 CSV -------------------------------------------------------------------------------------
def write_fer_csv(path: Path, fer_root: Path, per_class: int, usages=("Training", "PublicTest")):
    """A FER2013-format CSV made of real FER images; returns the rows written."""
    rows = []
    for code, name in enumerate(FER2013_LABELS):
        for i, f in enumerate(sorted((fer_root / name).iterdir())[:per_class]):
            image = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            rows.append((code, image, usages[i % len(usages)]))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for code, image, usage in rows:
            writer.writerow([code, " ".join(map(str, image.ravel())), usage])
    return rows


def test_fer2013_csv_loads_real_images(fer_val, tmp_path):
    path = tmp_path / "fer2013.csv"
    rows = write_fer_csv(path, fer_val, per_class=4)
    with path.open("a", newline="") as handle:  # two malformed rows: too few pixels, bad code
        csv.writer(handle).writerows([[3, "1 2 3", "Training"], [9, " ".join(["0"] * 2304), "Training"]])
    train = load_fer2013_csv(path, "Training")
    expected = [(c, im) for c, im, u in rows if u == "Training"]
    assert train.classes == FER2013_LABELS and len(train) == len(expected) == 14
    assert train.skipped == 2
    for (code, image), label, got in zip(expected, train.labels, train.images):
        assert label == code
        np.testing.assert_array_equal(got, image)
    assert len(load_fer2013_csv(path, "PublicTest")) == 14
    assert len(load_fer2013_csv(path, None)) == 28


def test_fer2013_csv_through_load_dataset(fer_val, tmp_path):
    path = tmp_path / "fer2013.csv"
    write_fer_csv(path, fer_val, per_class=3, usages=("Training",))
    assert dataset_kind(path) == "csv"
    data = load_dataset(path, LoadOptions(size_hw=(64, 64), classes="pyfer"))
    assert data.classes == CLASS_SETS["pyfer"] and data.images.shape == (18, 64, 64)


@pytest.mark.parametrize("header, rows, message", [
    (["label", "image", "Usage"], [[0, "0 " * 2304, "Training"]], "expected columns emotion,pixels"),
    ([], [], "expected columns emotion,pixels"),
    (["emotion", "pixels", "Usage"], [[0, "1 2", "Training"]], "no usable rows"),
    (["emotion", "pixels", "Usage"], [[0, "0 " * 2304, "PublicTest"]], "no usable rows"),
])
def test_fer2013_csv_errors(tmp_path, header, rows, message):
    path = tmp_path / "bad.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    with pytest.raises(InputError, match=message):
        load_fer2013_csv(path, "Training")


# face cropping -----------------------------------------------------------------------------------
def detector_available(name: str) -> bool:
    return name == "haar" or importlib.util.find_spec(f"edge_fer.detectors.{name}") is not None


@pytest.mark.parametrize("detector", ["haar", "ssd", "yunet"])
def test_cropper_cuts_the_face_like_the_runtime(media_dir, detector_dir, detector):
    if not detector_available(detector):
        pytest.skip(f"edge_fer.detectors.{detector} not in this checkout yet")
    frame = cv2.imread(str(media_dir / "justin.jpg"))
    options = DetectorOptions(name=detector, model_path=None if detector == "haar" else str(detector_dir))
    with FaceCropper(options, (48, 48)) as cropper:
        face = cropper.crop(frame)
        assert cropper.crop(cv2.imread(str(media_dir / "no-faces.jpg"))) is None
        assert (cropper.frames, cropper.no_face) == (2, 1)
        # Independently: the detector's largest box, cut and shrunk with plain OpenCV.
        from edge_fer.detectors import create_detector
        with create_detector(options) as det:
            boxes = [f.box_xywh for f in det.detect(frame)]
    x, y, w, h = max(boxes, key=lambda b: b[2] * b[3])
    gray = cv2.cvtColor(frame[y:y + h, x:x + w], cv2.COLOR_BGR2GRAY)
    expected = cv2.resize(gray, (48, 48), interpolation=cv2.INTER_AREA)
    assert face.shape == (48, 48) and face.dtype == np.uint8
    np.testing.assert_array_equal(face, expected)


def test_cropper_margin_widens_the_crop(media_dir):
    frame = cv2.imread(str(media_dir / "justin.jpg"))
    with open_cropper("haar", (48, 48)) as tight, open_cropper("haar", (48, 48), margin=0.3) as wide:
        assert not np.array_equal(tight.crop(frame), wide.crop(frame))


# CK+ ---------------------------------------------------------------------------------------------
@pytest.fixture()
def ckplus_root(tmp_path, fer_val, media_dir) -> Path:
    """A CK+-shaped tree of real images: FER faces as the early frames, justin.jpg (a full photo
    with one face) as the peak frames, no-faces.jpg as a faceless peak frame."""
    root = tmp_path / "CK+"
    fer = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((fer_val / "neutral").iterdir())[:8]]
    justin = cv2.imread(str(media_dir / "justin.jpg"))
    empty = cv2.imread(str(media_dir / "no-faces.jpg"))
    sequences = {  # name: (frames, label file text or None)
        "S005/001": ([fer[0], fer[1], justin], "   3.0000000e+00\n"),           # disgust
        "S010/002": ([fer[2], empty, justin[:, ::-1]], "   2.0000000e+00\n"),   # contempt
        "S011/001": ([fer[3], justin], "   5.0000000e+00\n"),                  # happy
        "S012/003": ([fer[4], fer[5]], None),                                  # unlabelled: ignored
        "S014/001": ([fer[6], justin], "not a number\n"),                      # bad label: counted
        "S016/001": ([fer[7], empty], "   7.0000000e+00\n"),                   # surprise, no face
    }
    for name, (frames, label) in sequences.items():
        subject, seq = name.split("/")
        folder = root / "cohn-kanade-images" / subject / seq
        folder.mkdir(parents=True)
        for i, frame in enumerate(frames, 1):
            cv2.imwrite(str(folder / f"{subject}_{seq}_{i:08d}.png"), frame)
        emotion = root / "Emotion" / subject / seq
        emotion.mkdir(parents=True)
        if label is not None:
            (emotion / f"{subject}_{seq}_{len(frames):08d}_emotion.txt").write_text(label)
    return root


def test_ckplus_last_frame_of_each_labelled_sequence(ckplus_root):
    assert dataset_kind(ckplus_root) == "ckplus"
    data = load_ckplus(ckplus_root, size_hw=(48, 48))
    assert data.classes == CLASS_SETS["ckplus"]
    assert [data.classes[k] for k in data.labels] == ["disgust", "contempt", "happy", "surprise"]
    assert [Path(p).name for p in data.paths] == ["S005_001_00000003.png", "S010_002_00000003.png",
                                                  "S011_001_00000002.png", "S016_001_00000002.png"]
    assert data.skipped == 1 and data.images.shape == (4, 48, 48)


def test_ckplus_last_k_and_first_as_neutral(ckplus_root):
    data = load_ckplus(ckplus_root, size_hw=(48, 48), last_k=2)
    assert [data.classes[k] for k in data.labels] == ["disgust"] * 2 + ["contempt"] * 2 + ["happy"] * 2 + ["surprise"] * 2
    data = load_ckplus(ckplus_root, size_hw=(48, 48), first_as_neutral=True)
    assert [data.classes[k] for k in data.labels] == ["neutral", "disgust", "neutral", "contempt",
                                                      "neutral", "happy", "neutral", "surprise"]
    assert data.paths[0].endswith("S005_001_00000001.png")


def test_ckplus_cropped_with_runtime_detector(ckplus_root, media_dir):
    options = LoadOptions(size_hw=(48, 48), crop_faces="haar", first_as_neutral=True)
    data = load_dataset(ckplus_root, options)
    # neutral first frames are 48x48 FER crops (too small for a 40 px face) and S016's peak
    # has no face: all counted, none fatal.
    assert data.no_face == 5
    assert [data.classes[k] for k in data.labels] == ["disgust", "contempt", "happy"]
    with open_cropper("haar", (48, 48)) as cropper:
        expected = cropper.crop(cv2.imread(str(media_dir / "justin.jpg")))
    np.testing.assert_array_equal(data.images[0], expected)
    np.testing.assert_array_equal(data.images[2], expected)


def test_ckplus_class_sets(ckplus_root):
    seven = load_dataset(ckplus_root, LoadOptions(size_hw=(48, 48), classes=("disgust", "happy", "surprise")))
    assert seven.classes == ("disgust", "happy", "surprise") and len(seven) == 3
    with pytest.raises(InputError, match=r"no images of classes \['neutral'"):
        load_dataset(ckplus_root, LoadOptions(size_hw=(48, 48), classes="ckplus"))
    eight = load_dataset(ckplus_root, LoadOptions(size_hw=(48, 48), first_as_neutral=True))
    assert eight.classes == ("neutral", "contempt", "disgust", "happy", "surprise")


def test_ckplus_errors(tmp_path):
    (tmp_path / "cohn-kanade-images").mkdir()
    (tmp_path / "Emotion").mkdir()
    with pytest.raises(InputError, match="no labelled sequence"):
        load_ckplus(tmp_path)
    with pytest.raises(InputError, match="not a CK\\+ folder"):
        load_ckplus(tmp_path / "Emotion")
    with pytest.raises(OptionsError, match="LoadOptions.last_k=0: expected >= 1"):
        LoadOptions(last_k=0)


# CK+48 (folder-per-class of CK+ frame names) ----------------------------------------------------
def sequences_on_disk(root: Path) -> dict[str, tuple[str, list[int]]]:
    """sequence -> (class folder, its frame numbers), straight from the file names."""
    out: dict[str, tuple[str, list[int]]] = {}
    for path in sorted(root.glob("*/*.png")):
        subject, sequence, frame = frame_id(path)
        out.setdefault(sequence, (path.parent.name, []))[1].append(frame)
    return out


def test_ckplus48_loads_the_last_frames_of_each_sequence(ckplus48):
    assert dataset_kind(ckplus48) == "ckplus-crops"
    on_disk = sequences_on_disk(ckplus48)
    last = load_dataset(ckplus48, LoadOptions(size_hw=(48, 48)))
    # anger/ and sadness/ load as FER2013's angry and sad; CK+ code order, no neutral
    assert last.classes == ("angry", "contempt", "disgust", "fear", "happy", "sad", "surprise")
    assert len(last) == len(on_disk)
    for path, label in zip(last.paths, last.labels):
        _, sequence, frame = frame_id(path)
        folder, frames = on_disk[sequence]
        assert frame == max(frames)
        assert {"anger": "angry", "sadness": "sad"}.get(folder, folder) == last.classes[label]
    every = load_dataset(ckplus48, LoadOptions(size_hw=(48, 48), last_k=3))
    assert len(every) == sum(len(frames) for _, frames in on_disk.values())
    np.testing.assert_array_equal(every.images[0], cv2.imread(every.paths[0], cv2.IMREAD_GRAYSCALE))


def test_ckplus48_class_sets_and_aliases(ckplus48):
    six = load_dataset(ckplus48, LoadOptions(size_hw=(64, 64), classes="pyfer"))
    assert six.classes == CLASS_SETS["pyfer"] and six.images.shape[1:] == (64, 64)
    assert "contempt" not in {Path(p).parent.name for p in six.paths}
    spelled = load_dataset(ckplus48, LoadOptions(size_hw=(48, 48), classes="anger,sadness"))
    assert spelled.classes == ("angry", "sad")
    assert {Path(p).parent.name for p in spelled.paths} == {"anger", "sadness"}
    assert len(six) == sum(folder != "contempt" for folder, _ in sequences_on_disk(ckplus48).values())


def test_ckplus48_has_no_neutral_first_frame(ckplus48):
    with pytest.raises(OptionsError, match="leave LoadOptions.first_as_neutral off"):
        load_dataset(ckplus48, LoadOptions(size_hw=(48, 48), first_as_neutral=True))


def test_fer_folder_is_not_ckplus48(fer_val, tmp_path):
    assert dataset_kind(fer_val) == "folder"
    copy_fer(fer_val, tmp_path, {"happy": 2})
    shutil.copy(sorted((tmp_path / "happy").iterdir())[0], tmp_path / "happy" / "S005_001_00000001.png")
    assert dataset_kind(tmp_path) == "folder"  # one CK+ name among others is not CK+48
    with pytest.raises(InputError, match="not a CK\\+ frame name"):
        frame_ids(load_folder(tmp_path))


def test_alias_and_its_class_in_one_folder_is_an_error(fer_val, tmp_path):
    copy_fer(fer_val, tmp_path, {"angry": 2, "happy": 2})
    shutil.copytree(tmp_path / "angry", tmp_path / "anger")
    with pytest.raises(InputError, match=r"both anger/ and angry/ for class 'angry'"):
        load_folder(tmp_path)


def test_dataset_modules_import_no_cycle():
    """datasets.py (readers) and ckplus.py import nothing that imports them back: the dispatcher
    lives in loaders.py, above both."""
    import ast

    import edge_fer.train as package

    def imports(name: str) -> set[str]:
        tree = ast.parse((Path(package.__file__).parent / f"{name}.py").read_text())
        return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}

    assert imports("datasets").isdisjoint({"ckplus", "loaders", "cropping"})
    assert "loaders" not in imports("ckplus")
    assert {"ckplus", "datasets"} <= imports("loaders")

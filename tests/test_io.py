import numpy as np
import pandas as pd
import pytest
import tifffile

from snakescope import io
from snakescope.errors import InputError


def test_imagej_hyperstack_roundtrip_keeps_axes_and_calibration(tmp_path):
    data = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5)
    path = tmp_path / "a.tif"
    io.write_stack(path, data, axes="TCYX", pixel_size_um=0.5, frame_interval_s=30)
    img = io.read_image(path, channels=["a", "b", "c"])
    assert img.data.shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(img.data, data)
    assert img.pixel_size_um == pytest.approx(0.5)
    assert img.frame_interval_s == pytest.approx(30)
    np.testing.assert_array_equal(img.channel("b"), data[:, 1])


def test_plain_2d_tiff_is_one_frame_one_channel(tmp_path):
    path = tmp_path / "p.tif"
    tifffile.imwrite(path, np.ones((6, 7), np.uint8))
    img = io.read_image(path)
    assert img.data.shape == (1, 1, 6, 7)
    assert img.channels == ["ch0"]
    assert img.pixel_size_um is None


def test_axes_override_reorders_to_tcyx(tmp_path):
    data = np.zeros((4, 5, 2), np.uint16)  # Y X C
    data[..., 1] = 7
    path = tmp_path / "yxc.tif"
    tifffile.imwrite(path, data, photometric="minisblack", planarconfig="contig")
    img = io.read_image(path, axes="YXC")
    assert img.data.shape == (1, 2, 4, 5)
    assert (img.data[0, 1] == 7).all()


def test_plain_3d_without_axes_asks_for_axes(tmp_path):
    path = tmp_path / "q.tif"
    tifffile.imwrite(path, np.zeros((3, 8, 8), np.uint16), photometric="minisblack")
    with pytest.raises(InputError, match="set the dataset's 'axes'"):
        io.read_image(path)


@pytest.mark.parametrize("axes", ["TYX", "CYX", "TCYX"])
def test_axes_not_matching_shape(tmp_path, axes):
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16))
    with pytest.raises(InputError, match="letters but the image has 2 dimensions"):
        io.read_image(path, axes=axes)


def test_channel_count_mismatch_names_config_key(tmp_path):
    path = tmp_path / "c.tif"
    io.write_stack(path, np.zeros((2, 8, 8), np.uint16), axes="CYX")
    with pytest.raises(InputError, match="'channels'"):
        io.read_image(path, channels=["only_one"])


def test_unknown_channel_name(tmp_path):
    path = tmp_path / "c.tif"
    io.write_stack(path, np.zeros((2, 8, 8), np.uint16), axes="CYX")
    img = io.read_image(path, channels=["dna", "erk"])
    with pytest.raises(InputError, match="channel 'akt' is not one of"):
        img.channel("akt")


@pytest.mark.parametrize("content", [b"", b"this is not a tiff", b"II*\x00\x08\x00\x00\x00\x10\x00"])
def test_corrupt_files_give_input_error(tmp_path, content):
    path = tmp_path / "bad.tif"
    path.write_bytes(content)
    with pytest.raises(InputError, match="bad.tif"):
        io.read_image(path)


def test_truncated_tiff(tmp_path):
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 999, (4, 64, 64), dtype=np.uint16),
                     imagej=True, metadata={"axes": "TYX"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="t.tif"):
        io.read_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        io.read_image(tmp_path / "nope.tif")


def test_nan_float_image_rejected(tmp_path):
    path = tmp_path / "f.tif"
    a = np.ones((5, 5), np.float32)
    a[2, 2] = np.nan
    tifffile.imwrite(path, a)
    with pytest.raises(InputError, match="NaN"):
        io.read_image(path)


def test_rgb_image_rejected_with_hint(tmp_path):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros((16, 16, 3), np.uint8), photometric="rgb")
    with pytest.raises(InputError, match="RGB"):
        io.read_image(path)


def test_uint32_labels_roundtrip(tmp_path):
    labels = np.zeros((1, 4, 4), np.uint32)
    labels[0, 0, 0] = 70000
    path = tmp_path / "l.tif"
    io.write_stack(path, labels, axes="TYX", pixel_size_um=0.3)
    back, md = io.read_stack(path)
    assert back.dtype == np.uint32 and back.shape == (1, 4, 4)
    assert back[0, 0, 0] == 70000
    assert md.pixel_size_um == pytest.approx(0.3)


def test_write_is_atomic_on_failure(tmp_path):
    target = tmp_path / "x.csv"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            open(tmp, "w").write("partial")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_writes_are_byte_identical(tmp_path):
    data = np.arange(64, dtype=np.uint16).reshape(1, 8, 8)
    io.write_stack(tmp_path / "a.tif", data, axes="TYX", pixel_size_um=0.65, frame_interval_s=270)
    io.write_stack(tmp_path / "b.tif", data, axes="TYX", pixel_size_um=0.65, frame_interval_s=270)
    assert (tmp_path / "a.tif").read_bytes() == (tmp_path / "b.tif").read_bytes()
    df = pd.DataFrame({"a": [1.0 / 3, 2.0], "b": ["x", "y"]})
    io.write_table(df, tmp_path / "a.csv")
    assert (tmp_path / "a.csv").read_text() == "a,b\n0.333333,x\n2,y\n"


def test_label_dtype():
    assert io.label_dtype(65535) == np.uint16
    assert io.label_dtype(65536) == np.uint32


def test_image_name():
    assert io.image_name("a/b/field 01.ome.tif") == "field 01"
    assert io.image_name("x.TIFF") == "x"


def test_atomic_writes_get_usual_permissions(tmp_path):
    import os
    import stat

    io.write_table(pd.DataFrame({"a": [1]}), tmp_path / "p.csv")
    mode = stat.S_IMODE(os.stat(tmp_path / "p.csv").st_mode)
    assert mode == 0o666 & ~io._umask()


def test_stale_temporaries_of_the_same_output_are_removed(tmp_path):
    (tmp_path / ".tmp-a.csv-x1y2.csv").write_text("left by a killed job")
    (tmp_path / ".tmp-b.csv-zzzz.csv").write_text("another job's live temporary")
    io.write_table(pd.DataFrame({"a": [1]}), tmp_path / "a.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-b.csv-zzzz.csv", "a.csv"]


def test_round_sig6_equals_printf_and_parse():
    rng = np.random.default_rng(7)
    n = 20000
    values = np.concatenate([
        rng.normal(0, 1, n) * 10.0 ** rng.integers(-12, 12, n),
        (rng.integers(1, 10**6, n) + 0.5) * 10.0 ** rng.integers(-8, 8, n),  # decimal half-way cases
        [0.0, -0.0, 0.5, 2.5, 1234565.0, 123456.5, 999999.5, 9999995.0, 1e5, 1e6, 99999.95, 1e-300, 1e300,
         5e-324, np.nan, np.inf, -np.inf],
    ])
    expected = np.array([float("%.6g" % v) for v in values])
    got = io.round_sig6(values)
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    assert same.all(), values[~same][:5]


def test_csv_round_trip_in_memory_equals_writing_and_reading(tmp_path):
    rng = np.random.default_rng(3)
    table = pd.DataFrame({
        "image": ["a", "b", "001", "c"], "frame": np.array([0, 1, 2, 3], np.int32),
        "label": np.array([1, 2, 3, 4], np.uint16), "x": rng.normal(100, 30, 4),
        "area": [12.0, 13.0, 14.0, 15.0],            # integral floats: read back as int64
        "big": [1234567.0, 2.0, 3.0, 4.0],           # printed as 1.23457e+06: stays float
        "cn": [1.5, np.nan, 0.25, 1 / 3], "reason": ["", "no ring", "", ""],
        "flag": [True, False, True, True], "tiny": [1e-7, 2e-7, 3.3e-9, 0.0],
    })
    io.write_table(table, tmp_path / "t.csv")
    expected = io.read_table(tmp_path / "t.csv")
    pd.testing.assert_frame_equal(io.csv_round_trip(table), expected, check_exact=True)
    empty = table.iloc[:0]
    io.write_table(empty, tmp_path / "e.csv")
    pd.testing.assert_frame_equal(io.csv_round_trip(empty), io.read_table(tmp_path / "e.csv"))


def _random_column(rng, rows):
    kind = int(rng.integers(0, 8))
    if kind == 0:
        return rng.normal(size=rows) * 10.0 ** int(rng.integers(-8, 9))
    if kind == 1:
        return rng.integers(-5, 5, size=rows)
    if kind == 2:
        return rng.random(rows) > 0.5
    if kind == 3:  # text that needs quoting, empty fields, missing values
        return np.array(rng.choice(["a", "", "x y", 'q"t', "c,d", "e\nf", None, np.nan], size=rows), dtype=object)
    if kind == 4:
        values = np.where(rng.random(rows) > 0.5, np.nan, rng.normal(size=rows))
        values[:1] = np.inf
        return values
    if kind == 5:
        return rng.normal(size=rows).astype(np.float32)
    if kind == 6:
        if rng.random() < 0.3:
            return pd.array(rng.integers(0, 3, size=rows), dtype="Int64")
        return pd.array(rng.choice(["a", "b c", None, "x,y"], size=rows), dtype="str")
    edge = [-0.0, 0.0, 1e-5, 123456.5, 1e6, 0.000123456789, 99999.95, 1e-300]
    return np.array((edge * 2)[:rows])


def test_csv_text_equals_pandas_to_csv():
    """The fast writer gives pandas' characters for every kind of column it
    handles and falls back to pandas for the rest (random tables)."""
    rng = np.random.default_rng(0)
    for _ in range(400):
        rows = int(rng.integers(0, 7))
        table = pd.DataFrame({(f"c{j}" if rng.random() > 0.1 else "a,b"): _random_column(rng, rows)
                              for j in range(int(rng.integers(1, 6)))})
        for header in (True, False):
            expected = table.to_csv(index=False, header=header, float_format="%.6g", lineterminator="\n")
            assert io.csv_text(table, header=header) == expected, table


def test_csv_round_trip_of_text_columns_equals_writing_and_reading(tmp_path):
    """Text that stays text, text read back as numbers, booleans or missing values, empty columns."""
    rng = np.random.default_rng(5)
    pool = ["f00008", "well A1", "", None, np.nan, "no ring", "001", "1e5", "inf", "NA", "null", "True", "false",
            " padded", "a,b", 'say "x"', "x\ny", "1_000", "-", "e", "nan", "None", "1.5.2"]
    for _ in range(300):
        rows = int(rng.integers(1, 6))
        table = pd.DataFrame({"n": np.arange(rows), "x": rng.normal(size=rows)})
        for j in range(int(rng.integers(1, 4))):
            picks = rng.integers(0, len(pool) if rng.random() < 0.5 else 6, size=rows)
            table[f"t{j}"] = pd.Series([pool[i] for i in picks], dtype=object)
        io.write_table(table, tmp_path / "t.csv")
        pd.testing.assert_frame_equal(io.csv_round_trip(table), io.read_table(tmp_path / "t.csv"), check_exact=True)


@pytest.mark.parametrize("kind", ["imagej", "grid", "plain"])
def test_read_image_frames_gives_the_frames_of_the_whole(tmp_path, kind):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4000, (5, 2, 8, 9), dtype=np.uint16)
    if kind == "imagej":
        path = str(tmp_path / "m.tif")
        tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TCYX"})
        kwargs = {}
    elif kind == "plain":  # axes given by the config: read whole and cut
        path = str(tmp_path / "m.tif")
        tifffile.imwrite(path, data.transpose(1, 0, 2, 3))
        kwargs = {"axes": "CTYX"}
    else:
        path = []
        for t in range(5):
            for c in range(2):
                path.append(str(tmp_path / f"t{t}c{c}.tif"))
                tifffile.imwrite(path[-1], data[t, c])
        kwargs = {"grid": (5, 2)}
    whole = io.read_image(path, **kwargs)
    np.testing.assert_array_equal(whole.data, data)
    for first, stop in [(0, 2), (2, 5), (4, 5), (1, 9)]:
        part = io.read_image(path, frames=(first, stop), **kwargs)
        np.testing.assert_array_equal(part.data, data[first:stop])
        assert part.channels == whole.channels and part.pixel_size_um == whole.pixel_size_um

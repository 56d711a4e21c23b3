"""Formats, scenes, metadata, grids, Z projection and robust writes of snakescope.io.

Every test writes real files in tmp_path with the writers the formats' own
libraries provide (tifffile for TIFF/OME-TIFF, pylibCZIrw for CZI, zarr for
OME-Zarr) and reads them back through snakescope.io.
"""

import errno
import os

import numpy as np
import pandas as pd
import pytest
import tifffile

from snakescope import io
from snakescope.errors import InputError

CHANNELS = ["H2B", "ERK-KTR"]


def _movie(scene: int, t: int = 3, c: int = 2, y: int = 16, x: int = 20) -> np.ndarray:
    """TCYX uint16 whose pixels encode scene, frame and channel."""
    data = np.zeros((t, c, y, x), np.uint16)
    for ti in range(t):
        for ci in range(c):
            data[ti, ci] = 100 * scene + 10 * ti + ci
    return data


def _ome_two_scenes(path, **extra):
    with tifffile.TiffWriter(path, ome=True) as tif:
        for s, name in enumerate(["pos A", "pos/B"]):
            tif.write(_movie(s), metadata={
                "axes": "TCYX", "Name": name, "Channel": {"Name": CHANNELS},
                "PhysicalSizeX": 0.325, "PhysicalSizeXUnit": "µm",
                "PhysicalSizeY": 0.325, "PhysicalSizeYUnit": "µm",
                "TimeIncrement": 60, "TimeIncrementUnit": "s", **extra})


# ---------------------------------------------------------------- OME-TIFF

def test_multi_scene_ome_tiff_gives_one_image_per_scene(tmp_path):
    path = tmp_path / "plate 1.ome.tif"
    _ome_two_scenes(path)
    assert io.scenes(path) == ["pos A", "pos/B"]
    assert io.image_names(path) == [("plate 1_pos_A", 0), ("plate 1_pos_B", 1)]
    for s, (name, scene) in enumerate(io.image_names(path)):
        img = io.read_image(path, scene=scene)
        np.testing.assert_array_equal(img.data, _movie(s))
        assert img.channels == CHANNELS
        assert img.pixel_size_um == pytest.approx(0.325)
        assert img.frame_interval_s == pytest.approx(60)
        assert img.scene == ["pos A", "pos/B"][s]
        assert img.notes == []
    by_name = io.read_image(path, scene="pos/B")
    np.testing.assert_array_equal(by_name.data, _movie(1))
    md = io.read_metadata(path, scene=1)
    assert md.shape == (3, 2, 16, 20) and md.channel_names == CHANNELS and md.scene == "pos/B"
    assert io.frame_count(path, scene="pos A") == 3


def test_multi_scene_file_without_scene_names_the_scenes(tmp_path):
    path = tmp_path / "two.ome.tif"
    _ome_two_scenes(path)
    with pytest.raises(InputError, match=r"two.ome.tif: file has 2 scenes \['pos A', 'pos/B'\]; choose one with scene="):
        io.read_image(path)
    with pytest.raises(InputError, match="scene 'pos C' is not one of"):
        io.read_image(path, scene="pos C")
    with pytest.raises(InputError, match="scene 2 is not one of"):
        io.read_image(path, scene=2)


def test_scenes_with_the_same_name_are_named_by_index(tmp_path):
    path = tmp_path / "dup.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for s in range(3):
            tif.write(_movie(s, t=1, c=1), metadata={"axes": "TCYX", "Name": "field"})
    assert io.scenes(path) == ["field"] * 3
    assert io.image_names(path) == [("dup_0", 0), ("dup_1", 1), ("dup_2", 2)]
    np.testing.assert_array_equal(io.read_image(path, scene=2).data, _movie(2, t=1, c=1))
    with pytest.raises(InputError, match="3 scenes are named 'field'; pass scene as an index 0-2"):
        io.read_image(path, scene="field")


def test_single_scene_file_keeps_its_plain_name(tmp_path):
    path = tmp_path / "field 01.ome.tif"
    tifffile.imwrite(path, _movie(0), ome=True, metadata={"axes": "TCYX"})
    assert len(io.scenes(path)) == 1
    assert io.image_names(path) == [("field 01", None)]
    img = io.read_image(path)
    assert img.scene is None and img.channels == ["ch0", "ch1"]  # no names in the file


def test_ome_units_and_plane_delta_t(tmp_path):
    path = tmp_path / "dt.ome.tif"
    tifffile.imwrite(path, np.zeros((3, 2, 8, 8), np.uint16), ome=True, metadata={
        "axes": "TCYX", "PhysicalSizeX": 650, "PhysicalSizeXUnit": "nm",
        "PhysicalSizeY": 650, "PhysicalSizeYUnit": "nm",
        "Plane": {"DeltaT": [0, 0.1, 0.5, 0.6, 1.0, 1.1], "DeltaTUnit": ["min"] * 6}})
    img = io.read_image(path)
    assert img.pixel_size_um == pytest.approx(0.65)
    assert img.frame_interval_s == pytest.approx(30)  # channel 0: 0, 0.5, 1.0 min


def test_ome_time_increment_unit(tmp_path):
    path = tmp_path / "ti.ome.tif"
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint16), ome=True, metadata={
        "axes": "TYX", "TimeIncrement": 1.5, "TimeIncrementUnit": "min"})
    assert io.read_image(path).frame_interval_s == pytest.approx(90)


def test_config_values_override_file_with_notes(tmp_path):
    path = tmp_path / "o.ome.tif"
    _ome_two_scenes(path)
    img = io.read_image(path, scene=0, pixel_size_um=0.65, frame_interval_s=30, channels=["dna", "erk"])
    assert img.pixel_size_um == 0.65 and img.frame_interval_s == 30 and img.channels == ["dna", "erk"]
    assert img.notes == [
        "channels ['dna', 'erk'] override ['H2B', 'ERK-KTR'] in the file",
        "pixel_size_um 0.65 overrides 0.325 µm in the file",
        "frame_interval_s 30 overrides 60 s in the file",
    ]
    same = io.read_image(path, scene=0, pixel_size_um=0.325, frame_interval_s=60, channels=CHANNELS)
    assert same.notes == []


# ---------------------------------------------------------------- ImageJ

@pytest.mark.parametrize("tunit, seconds", [(None, 2.0), ("sec", 2.0), ("s", 2.0), ("min", 120.0),
                                             ("ms", 0.002), ("h", 7200.0), ("\\u00B5s", 2e-6)])
def test_imagej_frame_interval_uses_its_unit(tmp_path, tunit, seconds):
    path = tmp_path / "ij.tif"
    metadata = {"axes": "TYX", "finterval": 2.0}
    if tunit is not None:
        metadata["tunit"] = tunit
    tifffile.imwrite(path, np.zeros((3, 8, 8), np.uint16), imagej=True, metadata=metadata)
    assert io.read_image(path).frame_interval_s == pytest.approx(seconds)
    assert io.read_metadata(path).frame_interval_s == pytest.approx(seconds)


def test_imagej_interval_in_frames_is_not_a_time(tmp_path):
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, np.zeros((3, 8, 8), np.uint16), imagej=True,
                     metadata={"axes": "TYX", "finterval": 1.0, "tunit": "frame"})
    img = io.read_image(path)
    assert img.frame_interval_s is None
    assert img.notes == ["frame interval 1.0 frame in the file is not a time; ignored"]


# ---------------------------------------------------------------- non-square pixels

def test_anisotropic_imagej_pixels_are_refused(tmp_path):
    path = tmp_path / "aniso.tif"
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint16), imagej=True, resolution=(1 / 0.5, 1 / 1.0),
                     metadata={"axes": "TYX", "unit": "um"})
    with pytest.raises(InputError, match=r"aniso.tif: pixels are not square \(X 0.5 µm, Y 1 µm\); "
                                         r"resample .* or pass pixel_size_um"):
        io.read_image(path)
    md = io.read_metadata(path)  # headers still readable
    assert (md.pixel_size_um, md.pixel_size_y_um) == (0.5, 1.0)
    img = io.read_image(path, pixel_size_um=0.5)
    assert img.pixel_size_um == 0.5
    assert img.notes == ["pixel_size_um 0.5 overrides the file's non-square pixels (X 0.5 µm, Y 1 µm)"]


def test_anisotropic_ome_pixels_are_refused(tmp_path):
    path = tmp_path / "aniso.ome.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16), ome=True,
                     metadata={"axes": "YX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.6})
    with pytest.raises(InputError, match=r"X 0.2 µm, Y 0.6 µm"):
        io.read_image(path)


def test_square_pixels_written_by_write_stack_pass(tmp_path):
    path = tmp_path / "sq.tif"
    io.write_stack(path, np.zeros((1, 8, 8), np.uint16), axes="TYX", pixel_size_um=0.65)
    assert io.read_image(path).pixel_size_um == pytest.approx(0.65)


# ---------------------------------------------------------------- grids of files

def _grid_files(tmp_path, n_frames=3, n_channels=2, shape=(6, 7), dtype=np.uint16):
    paths = []
    for t in range(n_frames):
        for c in range(n_channels):
            p = tmp_path / f"t{t}_c{c}.tif"
            tifffile.imwrite(p, np.full(shape, 10 * t + c, dtype))
            paths.append(str(p))
    return paths


def test_grid_of_per_frame_per_channel_files(tmp_path):
    paths = _grid_files(tmp_path)
    img = io.read_image(paths, grid=(3, 2))
    assert img.data.shape == (3, 2, 6, 7) and img.data.dtype == np.uint16
    expected = (10 * np.arange(3)[:, None] + np.arange(2)[None, :]).astype(np.uint16)
    np.testing.assert_array_equal(img.data[:, :, 0, 0], expected)
    assert img.channels == ["ch0", "ch1"] and img.path == paths[0]
    assert io.read_image(paths, grid=(3, 2), channels=["a", "b"]).channels == ["a", "b"]
    assert io.frame_count(paths, grid=(3, 2)) == 3
    assert io.read_metadata(paths).shape == (6, 7)


def test_grid_with_z_stacks_and_projection(tmp_path):
    paths = []
    for t in range(2):
        p = tmp_path / f"z{t}.tif"
        stack = np.stack([np.full((4, 5), z + t, np.uint16) for z in range(3)])
        tifffile.imwrite(p, stack, imagej=True, metadata={"axes": "ZYX"})
        paths.append(p)
    img = io.read_image(paths, grid=(2, 1), z_projection="max")
    np.testing.assert_array_equal(img.data[:, 0, 0, 0], [2, 3])
    with pytest.raises(InputError, match="Z stack of size 3"):
        io.read_image(paths, grid=(2, 1))


def test_grid_file_with_other_shape_or_dtype_names_both_files(tmp_path):
    paths = _grid_files(tmp_path, 2, 1)
    tifffile.imwrite(paths[1], np.zeros((6, 8), np.uint16))
    with pytest.raises(InputError, match=r"t1_c0.tif: shape \(6, 8\) and dtype uint16 differ from the "
                                         r"first file .*t0_c0.tif \(shape \(6, 7\), dtype uint16\)"):
        io.read_image(paths, grid=(2, 1))
    tifffile.imwrite(paths[1], np.zeros((6, 7), np.uint8))
    with pytest.raises(InputError, match=r"t1_c0.tif: .*dtype uint8 differ from the first file"):
        io.read_image(paths, grid=(2, 1))


def test_grid_errors(tmp_path):
    paths = _grid_files(tmp_path, 2, 2)
    with pytest.raises(InputError, match=r"grid \(3, 2\) needs 6 files .* but paths has 4"):
        io.read_image(paths, grid=(3, 2))
    with pytest.raises(InputError, match="without grid"):
        io.read_image(paths)
    with pytest.raises(InputError, match="must be \\(n_frames, n_channels\\)"):
        io.read_image(paths, grid=(4, 0))
    movie = tmp_path / "movie.tif"
    io.write_stack(movie, np.zeros((2, 6, 7), np.uint16), axes="TYX")
    with pytest.raises(InputError, match="must hold one plane"):
        io.read_image([movie, movie], grid=(2, 1))


# ---------------------------------------------------------------- Z projection

def _zstack(tmp_path, dtype=np.uint16):
    data = np.zeros((2, 3, 4, 5), dtype)  # T Z Y X
    for z in range(3):
        data[:, z] = np.iinfo(dtype).max if z == 0 else z
    path = tmp_path / f"z_{np.dtype(dtype).name}.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZYX"})
    return path, data


def test_z_projection_values_and_dtypes(tmp_path):
    path, data = _zstack(tmp_path)
    with pytest.raises(InputError, match=r"Z stack of size 3 .*z_projection"):
        io.read_image(path)
    top = io.read_image(path, z_projection="max")
    assert top.data.shape == (2, 1, 4, 5) and top.data.dtype == np.uint16
    assert (top.data == 65535).all()
    mean = io.read_image(path, z_projection="mean")
    assert mean.data.dtype == np.float32 and mean.data[0, 0, 0, 0] == pytest.approx((65535 + 1 + 2) / 3)
    total = io.read_image(path, z_projection="sum")
    assert total.data.dtype == np.uint32 and total.data[0, 0, 0, 0] == 65535 + 3  # no overflow
    assert io.frame_count(path, z_projection="max") == 2
    with pytest.raises(InputError, match="Z stack"):
        io.frame_count(path)
    with pytest.raises(InputError, match="z_projection 'median' is not one of"):
        io.read_image(path, z_projection="median")


def test_z_projection_sum_of_signed_and_float():
    assert io.project_z(np.full((3, 2), -100, np.int16), 0, method="sum").dtype == np.int32
    assert io.project_z(np.ones((2, 2, 2), np.float64), 1, method="sum").dtype == np.float32
    assert io.project_z(np.full((70000, 1), 65535, np.uint16), 0, method="sum").dtype == np.uint64


# ---------------------------------------------------------------- OME-Zarr

def _multiscale(name, t_unit="second", t_step=60.0):
    return {"version": "0.4", "name": name,
            "axes": [{"name": "t", "type": "time", "unit": t_unit}, {"name": "c", "type": "channel"},
                     {"name": "y", "type": "space", "unit": "micrometer"},
                     {"name": "x", "type": "space", "unit": "micrometer"}],
            "datasets": [{"path": "0", "coordinateTransformations": [
                {"type": "scale", "scale": [t_step, 1.0, 0.325, 0.325]}]},
                {"path": "1", "coordinateTransformations": [
                    {"type": "scale", "scale": [t_step, 1.0, 0.65, 0.65]}]}]}


def test_ome_zarr_with_two_series(tmp_path):
    zarr = pytest.importorskip("zarr")
    path = tmp_path / "wells.ome.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    for s in range(2):
        group = root.create_group(str(s))
        group.attrs.update({"multiscales": [_multiscale(f"well {s}")],
                            "omero": {"channels": [{"label": n} for n in CHANNELS]}})
        full = group.create_array("0", shape=(3, 2, 16, 20), dtype="uint16", chunks=(1, 1, 16, 20))
        full[...] = _movie(s)
        group.create_array("1", shape=(3, 2, 8, 10), dtype="uint16", chunks=(1, 1, 8, 10))
    root.create_group("OME").attrs["series"] = ["0", "1"]
    assert io.scenes(path) == ["well 0", "well 1"]
    assert io.image_names(path) == [("wells_well_0", 0), ("wells_well_1", 1)]
    for s in range(2):
        img = io.read_image(path, scene=s)
        np.testing.assert_array_equal(img.data, _movie(s))  # full resolution level
        assert img.channels == CHANNELS
        assert img.pixel_size_um == pytest.approx(0.325)
        assert img.frame_interval_s == pytest.approx(60)
    with pytest.raises(InputError, match="file has 2 scenes"):
        io.read_image(path)


def test_ome_zarr_05_single_image(tmp_path):
    zarr = pytest.importorskip("zarr")
    path = tmp_path / "one.ome.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    multiscale = _multiscale("one", t_unit="minute", t_step=2.0)
    multiscale.pop("version")
    group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    group.create_array("0", shape=(3, 2, 16, 20), dtype="uint16", chunks=(1, 1, 16, 20))[...] = _movie(0)
    group.create_array("1", shape=(3, 2, 8, 10), dtype="uint16", chunks=(1, 1, 8, 10))
    assert io.image_names(path) == [("one", None)]
    img = io.read_image(path)
    np.testing.assert_array_equal(img.data, _movie(0))
    assert img.channels == ["ch0", "ch1"]
    assert img.frame_interval_s == pytest.approx(120) and img.pixel_size_um == pytest.approx(0.325)
    assert io.frame_count(path) == 3


# ---------------------------------------------------------------- CZI (bioio-czi)

def _czi(path, scene_names):
    pyczi = pytest.importorskip("pylibCZIrw.czi")
    pytest.importorskip("bioio_czi")
    with pyczi.create_czi(str(path), exist_ok=True) as writer:
        for s in range(2):
            movie = _movie(s, t=2)
            for t in range(2):
                for c in range(2):
                    writer.write(movie[t, c], plane={"T": t, "C": c}, scene=s, location=(s * 100, 0))
        writer.write_metadata(document_name="two", channel_names=dict(enumerate(CHANNELS)),
                              scale_x=0.325e-6, scale_y=0.325e-6)
    if scene_names:  # the scene list ZEN writes into the metadata
        import xml.etree.ElementTree as ET

        with pyczi.edit_czi(str(path)) as editor, editor.edit_session() as builder:
            root = ET.fromstring(builder.get_xml())
            dims = root.find("./Metadata/Information/Image/Dimensions")
            scenes = ET.SubElement(ET.SubElement(dims, "S"), "Scenes")
            for i, name in enumerate(scene_names):
                ET.SubElement(scenes, "Scene", Index=str(i), Name=name)
            builder.set_xml(ET.tostring(root, encoding="unicode"))


def test_czi_with_two_scenes(tmp_path):
    path = tmp_path / "exp.czi"
    _czi(path, ["pos A", "pos B"])
    assert io.scenes(path) == ["pos A", "pos B"]
    assert io.image_names(path) == [("exp_pos_A", 0), ("exp_pos_B", 1)]
    for s in range(2):
        img = io.read_image(path, scene=s)
        np.testing.assert_array_equal(img.data, _movie(s, t=2))
        assert img.channels == CHANNELS
        assert img.pixel_size_um == pytest.approx(0.325)
        assert img.scene == ["pos A", "pos B"][s]
    assert io.frame_count(path, scene="pos B") == 2


def test_czi_scenes_missing_from_metadata_are_not_dropped(tmp_path):
    path = tmp_path / "bare.czi"
    _czi(path, None)
    with pytest.raises(InputError, match="bare.czi: the CZI holds 2 scenes but its metadata names 1"):
        io.read_image(path)


# ---------------------------------------------------------------- LIF (bioio-lif)

def _write_lif(path, images):
    """A minimal Leica LIF (version 2): binary header, UTF-16 XML, one memory block
    per image. ``images``: (name, TCYX uint16, pixel µm, frame interval s, channel LUT names).
    No LIF writer exists on PyPI and no package ships a sample, so the test builds one
    as liffile parses it (LAS X files carry much more metadata)."""
    import struct

    children, blocks = [], []
    for i, (name, data, px_um, dt_s, luts) in enumerate(images):
        nt, nc, ny, nx = data.shape
        channels = "".join(
            f'<ChannelDescription DataType="0" ChannelTag="0" Resolution="16" NameOfMeasuredQuantity="" '
            f'Min="0" Max="65535" Unit="" LUTName="{lut}" IsLUTInverted="0" BytesInc="{k * 2 * nx * ny}" '
            'BitInc="0"/>' for k, lut in enumerate(luts))

        def dim(dim_id, n, length, unit, inc):
            return (f'<DimensionDescription DimID="{dim_id}" NumberOfElements="{n}" Origin="0" '
                    f'Length="{length}" Unit="{unit}" BytesInc="{inc}" BitInc="0"/>')

        dims = (dim(1, nx, px_um * 1e-6 * (nx - 1), "m", 2) + dim(2, ny, px_um * 1e-6 * (ny - 1), "m", 2 * nx)
                + dim(4, nt, dt_s * (nt - 1), "s", 2 * nx * ny * nc))
        raw = np.ascontiguousarray(data, dtype="<u2").tobytes()
        block = f"MemBlock_{i + 1}"
        children.append(
            f'<Element Name="{name}" UniqueID="u{i}"><Data><Image><ImageDescription><Channels>{channels}'
            f'</Channels><Dimensions>{dims}</Dimensions></ImageDescription></Image></Data>'
            f'<Memory Size="{len(raw)}" MemoryBlockID="{block}"/><Children/></Element>')
        blocks.append((block, raw))
    xml = ('<LMSDataContainerHeader Version="2"><Element Name="experiment" UniqueID="root"><Data>'
           '<Experiment/></Data><Memory Size="0" MemoryBlockID="MemBlock_0"/><Children>'
           + "".join(children) + "</Children></Element></LMSDataContainerHeader>")
    with open(path, "wb") as fh:
        text = xml.encode("utf-16-le")
        fh.write(struct.pack("<IIBI", 0x70, len(text) + 5, 0x2A, len(xml)) + text)
        for block, raw in [("MemBlock_0", b"")] + blocks:
            fh.write(struct.pack("<IIBQBI", 0x70, 0, 0x2A, len(raw), 0x2A, len(block))
                     + block.encode("utf-16-le") + raw)


def test_lif_with_two_images(tmp_path):
    pytest.importorskip("bioio_lif")
    path = tmp_path / "exp.lif"
    _write_lif(path, [(name, _movie(s), 0.325, 60.0, CHANNELS) for s, name in enumerate(["pos A", "pos B"])])
    assert io.scenes(path) == ["pos A", "pos B"]
    assert io.image_names(path) == [("exp_pos_A", 0), ("exp_pos_B", 1)]
    for s in range(2):
        img = io.read_image(path, scene=s)
        np.testing.assert_array_equal(img.data, _movie(s))
        assert img.channels == CHANNELS
        assert img.pixel_size_um == pytest.approx(0.325)
        assert img.frame_interval_s == pytest.approx(60)


def test_tiff_based_files_with_other_suffixes_are_read_as_tiff(tmp_path):
    path = tmp_path / "metamorph.stk"
    io.write_stack(path, _movie(0)[:, 0], axes="TYX", frame_interval_s=5)
    img = io.read_image(path)
    np.testing.assert_array_equal(img.data[:, 0], _movie(0)[:, 0])
    assert img.frame_interval_s == 5 and io.image_names(path) == [("metamorph", None)]


def test_unknown_format_is_an_input_error(tmp_path):
    pytest.importorskip("bioio")
    path = tmp_path / "notes.xyz"
    path.write_text("not an image")
    with pytest.raises(InputError, match="notes.xyz: not an image format snakescope reads"):
        io.read_image(path)


# ---------------------------------------------------------------- long names, disk full

def test_long_output_names_fit_the_file_system(tmp_path):
    name = "x" * 236 + ".labels.tif"  # 247 characters: the old temporary was 263
    target = tmp_path / name
    io.write_stack(target, np.zeros((1, 4, 4), np.uint16), axes="TYX")
    assert os.listdir(tmp_path) == [name]
    assert io.read_stack(target)[0].shape == (1, 4, 4)
    longest = tmp_path / ("é" * 123 + ".csv")  # 250 bytes in UTF-8
    io.write_table(pd.DataFrame({"a": [1]}), longest)
    assert longest.exists()
    # a temporary a killed job left for the same long output is removed by the next write
    prefix = io.remove_stale_temporaries(target)
    assert len((prefix + "abcdefgh.tif").encode()) <= 255
    (tmp_path / (prefix + "abcdefgh.tif")).write_text("left by a killed job")
    io.write_stack(target, np.ones((1, 4, 4), np.uint16), axes="TYX")
    assert sorted(os.listdir(tmp_path)) == sorted([name, longest.name])
    with pytest.raises(RuntimeError), io.atomic_dir(tmp_path / ("d" * 250)):
        raise RuntimeError("boom")


def test_disk_full_during_tiff_write(tmp_path, monkeypatch):
    target = tmp_path / "labels.tif"

    def full_disk(path, data, **kwargs):  # what numpy reports when the disk fills mid-write
        with open(path, "wb") as fh:
            fh.write(b"II*\x00" + b"\x00" * 1852)
        raise OSError("294912 requested and 1856 written")

    monkeypatch.setattr(io.tifffile, "imwrite", full_disk)
    with pytest.raises(InputError) as info:
        io.write_stack(target, np.zeros((1, 384, 384), np.uint16), axes="TYX")
    assert str(info.value).startswith(f"{target}: no space left on device while writing it;")
    assert "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_disk_full_during_table_write(tmp_path, monkeypatch):
    def full_disk(table, **kwargs):  # the temporary file is open (and empty) when the text is made
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io, "csv_text", full_disk)
    with pytest.raises(InputError, match="t.csv: no space left on device"):
        io.write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_real_enospc_from_the_kernel(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(InputError, match="out.bin: no space left on device"):
        with io.atomic_path(target):
            with open("/dev/full", "wb", buffering=0) as fh:
                fh.write(b"x" * 10)
    assert os.listdir(tmp_path) == []


def test_other_write_errors_are_not_called_disk_full(tmp_path):
    with pytest.raises(PermissionError):
        with io.atomic_path(tmp_path / "p.csv"):
            raise PermissionError(errno.EACCES, "Permission denied")
    assert os.listdir(tmp_path) == []

import pytest
import yaml

from snakescope.config import check_config
from snakescope.errors import InputError

from conftest import SCHEMA, ROOT, with_defaults

schema = yaml.safe_load(SCHEMA.read_text())


def base():
    return {"datasets": {"d": {"images": "x/{image}.tif", "segment": {"diameter": 12}}}}


def test_shipped_configs_are_valid():
    for path in [ROOT / "config" / "config.yaml", *sorted((ROOT / "config" / "examples").glob("*.yaml"))]:
        check_config(yaml.safe_load(path.read_text()), schema)


def test_defaults_filled():
    cfg = with_defaults(base())
    seg = cfg["datasets"]["d"]["segment"]
    assert seg["threshold"]["method"] == "auto" and seg["split"]["method"] == "distance"
    assert cfg["datasets"]["d"]["ground_truth"] is None


@pytest.mark.parametrize(
    "patch, message",
    [
        (lambda c: c["datasets"]["d"]["segment"].update(foo=1), "datasets.d.segment.foo: unknown key"),
        (lambda c: c.update(extra=1), "config key extra: unknown key"),
        (lambda c: c["datasets"]["d"]["segment"].update(threshold={"method": "magic"}), "segment.threshold.method"),
        (lambda c: c["datasets"]["d"]["segment"].update(diameter=-1), "segment.diameter"),
        (lambda c: c["datasets"]["d"]["segment"].update(diameter="12 parsecs"), "segment.diameter"),
        (lambda c: c["datasets"]["d"].update(images="no_wildcard.tif"), "datasets.d.images"),
        (lambda c: c["datasets"]["d"].update(pixel_size_um="big"), "datasets.d.pixel_size_um"),
        (lambda c: c["datasets"]["d"].update(channels=["a", "a"]), "datasets.d.channels"),
        (lambda c: c["datasets"].update({"bad name": c["datasets"]["d"]}), "config key datasets"),
        (lambda c: c["datasets"]["d"]["segment"].pop("diameter"), "diameter"),
    ],
)
def test_bad_config_one_line_naming_key(patch, message):
    cfg = base()
    patch(cfg)
    with pytest.raises(InputError) as info:
        check_config(cfg, schema)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def _schema_keys(node, path=()):
    """Every property path of the schema (dotted)."""
    if isinstance(node, dict):
        for key, sub in (node.get("properties") or {}).items():
            yield path + (key,)
            yield from _schema_keys(sub, path + (key,))
        for sub in (node.get("patternProperties") or {}).values():
            yield from _schema_keys(sub, path + ("<name>",))
        ref = node.get("$ref")
        if ref:
            yield from _schema_keys(schema["$defs"][ref.split("/")[-1]], path)


def test_every_config_key_is_documented():
    readme = (ROOT / "config" / "README.md").read_text()
    missing = sorted({p[-1] for p in _schema_keys(schema)} - {k for k in set(readme.replace("`", " `").split("`"))})
    missing = [k for k in missing if f"`{k}`" not in readme and f".{k}`" not in readme and f"`{k}." not in readme]
    assert missing == []


# ---- image discovery (snakescope.config.discover_images) -------------------

from snakescope.config import discover_images, pattern_fields  # noqa: E402


def _touch(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def test_image_field_one_file_per_image(tmp_path):
    _touch(tmp_path, "a.tif", "b.tif", "sub/c.tif", "._a.tif")
    found = discover_images("d", str(tmp_path / "{image}.tif"))
    assert list(found) == ["a", "b"]  # not sub-folders, not macOS ._ companions
    assert found["a"].files == [str(tmp_path / "a.tif")] and found["a"].grid is None


def test_frame_field_makes_one_image_in_numeric_order(tmp_path):
    _touch(tmp_path, *[f"mov/t{t}.tif" for t in (0, 1, 2, 10)])
    found = discover_images("movie", str(tmp_path / "mov/t{frame}.tif"))
    assert list(found) == ["movie"]
    src = found["movie"]
    assert src.grid == (4, 1) and [f.rsplit("/", 1)[1] for f in src.files] == ["t0.tif", "t1.tif", "t2.tif", "t10.tif"]


def test_image_in_folder_with_frames(tmp_path):
    _touch(tmp_path, "01/t000.tif", "01/t001.tif", "02/t000.tif", "02/t001.tif")
    found = discover_images("ctc", str(tmp_path / "{image}/t{frame}.tif"))
    assert list(found) == ["01", "02"] and found["02"].grid == (2, 1)


def test_channel_files_and_metadata_fields(tmp_path):
    _touch(tmp_path, *[f"p/{w}_s{s}_{c}.tif" for w in ("A01", "B02") for s in (1, 2) for c in ("w1", "w2")])
    found = discover_images("plate", str(tmp_path / "p/{well}_s{site}_{channel}.tif"),
                            channels={"w1": "nucleus", "w2": "erk"})
    assert list(found) == ["A01_s1", "A01_s2", "B02_s1", "B02_s2"]
    src = found["B02_s2"]
    assert src.grid == (1, 2) and src.channels == ["nucleus", "erk"]
    assert src.fields == {"well": "B02", "site": "2"}
    assert src.files[0].endswith("B02_s2_w1.tif") and src.files[1].endswith("B02_s2_w2.tif")


def test_missing_channel_file_is_named(tmp_path):
    _touch(tmp_path, "p/A01_w1.tif", "p/A01_w2.tif", "p/B02_w1.tif")
    with pytest.raises(InputError, match=r"image 'B02' has no file .*B02_w2.tif"):
        discover_images("plate", str(tmp_path / "p/{well}_{channel}.tif"), channels={"w1": "nucleus", "w2": "erk"})


def test_no_match_and_no_field(tmp_path):
    with pytest.raises(InputError, match="config key datasets.d.images: pattern .* matches no file"):
        discover_images("d", str(tmp_path / "{image}.tif"))
    with pytest.raises(InputError, match="has no field"):
        discover_images("d", str(tmp_path / "a.tif"))


def test_list_form_names_and_duplicates(tmp_path):
    found = discover_images("d", ["x/a.tif", "y/b.ome.tif"])
    assert list(found) == ["a", "b"]
    with pytest.raises(InputError, match="two files named 'a'"):
        discover_images("d", ["x/a.tif", "y/a.tif"])


def test_pattern_fields_in_order():
    assert pattern_fields("{plate}/{well}_s{site}_{channel}_{well}.tif") == ["plate", "well", "site", "channel"]


# ---- sample sheets (snakescope.config.image_metadata) -----------------------

from snakescope.config import image_metadata  # noqa: E402


def _plate(tmp_path):
    _touch(tmp_path, *[f"p/{w}_s{s}_{c}.tif" for w in ("A01", "B02") for s in (1, 2) for c in ("w1", "w2")])
    return discover_images("plate", str(tmp_path / "p/{well}_s{site}_{channel}.tif"),
                           channels={"w1": "nucleus", "w2": "erk"})


def test_sample_sheet_by_pattern_field(tmp_path):
    sources = _plate(tmp_path)
    (tmp_path / "samples.tsv").write_text("well\tcondition\tdose\nA01\tcontrol\t0\nB02\tdrug\t10\n")
    meta = image_metadata(sources, str(tmp_path / "samples.tsv"), key="datasets.plate.samples")
    assert meta["B02_s2"] == {"well": "B02", "site": "2", "condition": "drug", "dose": "10"}
    assert meta["A01_s1"]["condition"] == "control"


def test_sample_sheet_by_image_name_csv(tmp_path):
    _touch(tmp_path, "a.tif", "b.tif")
    sources = discover_images("d", str(tmp_path / "{image}.tif"))
    (tmp_path / "s.csv").write_text("image,condition\na,x\nb,y\n")
    assert image_metadata(sources, str(tmp_path / "s.csv"), key="k")["b"] == {"condition": "y"}


@pytest.mark.parametrize("text, message", [
    ("well\tcondition\nA01\tcontrol\n", r"image 'B02_s1' has no row in .*samples.tsv"),
    ("well\tcondition\nA01\tc\nB02\td\nC03\te\n", r"names \{'well': 'C03'\}, which is not an image"),
    ("well\tcondition\nA01\tc\nA01\td\nB02\te\n", "two rows for"),
    ("plate\tcondition\nP1\tc\n", "has no column 'image' and no column named after a pattern field"),
    ("well\tcon dition\nA01\tc\nB02\td\n", "column name 'con dition'"),
])
def test_bad_sample_sheets_are_named(tmp_path, text, message):
    sources = _plate(tmp_path)
    (tmp_path / "samples.tsv").write_text(text)
    with pytest.raises(InputError, match=r"config key datasets.plate.samples: .*" + message):
        image_metadata(sources, str(tmp_path / "samples.tsv"), key="datasets.plate.samples")

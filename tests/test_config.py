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
    assert seg["threshold"]["method"] == "otsu" and seg["split"]["method"] == "distance"
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

import pytest

from snakescope import params
from snakescope.errors import InputError


@pytest.mark.parametrize(
    "value, pixel, expected",
    [(10, None, 10.0), (6.5, 0.65, 10.0), ("7px", 0.65, 7.0), ("1.3um", 0.65, 2.0), ("2 µm", 0.5, 4.0), (None, 1, None)],
)
def test_to_px(value, pixel, expected):
    assert params.to_px(value, pixel_size_um=pixel, key="k") == pytest.approx(expected) if expected else \
        params.to_px(value, pixel_size_um=pixel, key="k") is None


def test_um_without_calibration_names_key():
    with pytest.raises(InputError, match="config key segment.diameter: '3um' is in µm"):
        params.to_px("3um", pixel_size_um=None, key="segment.diameter")


def test_garbage_length_names_key():
    with pytest.raises(InputError, match="config key a.b"):
        params.to_px("three", pixel_size_um=None, key="a.b")


def test_defaults_follow_diameter(segment_defaults):
    seg = segment_defaults(diameter=24)
    sm = params.smooth_params(seg["smooth"], diameter=24, pixel_size_um=None)
    assert sm == {"method": "gaussian", "size_px": pytest.approx(2.0)}
    th = params.threshold_params(seg["threshold"], diameter=24, pixel_size_um=None)
    assert th["block_size_px"] == pytest.approx(72) and th["method"] == "auto" and th["diameter_px"] == 24
    sp = params.split_params(seg["split"], seg["refine"], diameter=24, pixel_size_um=None)
    assert sp["min_distance_px"] == pytest.approx(6.0) and sp["sigma_px"] == pytest.approx(1.2)
    assert sp["min_diameter_px"] == pytest.approx(9.6) and sp["max_diameter_px"] == pytest.approx(72)


def test_calibrated_diameter_in_um(segment_defaults):
    seg = segment_defaults(diameter=13)
    sm = params.smooth_params(seg["smooth"], diameter=13, pixel_size_um=0.65)
    assert sm["size_px"] == pytest.approx(20 / 12)


def test_explicit_values_win(segment_defaults):
    seg = segment_defaults(diameter=20, refine={"min_diameter": "5px", "max_diameter": 30}, split={"min_distance": 3})
    sp = params.split_params(seg["split"], seg["refine"], diameter=20, pixel_size_um=None)
    assert (sp["min_diameter_px"], sp["max_diameter_px"], sp["min_distance_px"]) == (5, 30, 3)


def test_min_above_max_rejected(segment_defaults):
    seg = segment_defaults(diameter=20, refine={"min_diameter": 50, "max_diameter": 30})
    with pytest.raises(InputError, match="min_diameter/max_diameter"):
        params.refine_params(seg["refine"], diameter=20, pixel_size_um=None)


def test_zero_diameter_rejected(segment_defaults):
    seg = segment_defaults()
    with pytest.raises(InputError, match="segment.diameter: must be > 0"):
        params.smooth_params(seg["smooth"], diameter=0, pixel_size_um=None)


@pytest.mark.parametrize("diameter, pixel, unit", [(0.0001, None, "in px"), ("1px", 0.5, "in µm"), (0.5, 0.5, "in µm")])
def test_absurdly_small_diameter_rejected(segment_defaults, diameter, pixel, unit):
    seg = segment_defaults()
    with pytest.raises(InputError, match=rf"segment.diameter: .* below 2 px: .*{unit}"):
        params.smooth_params(seg["smooth"], diameter=diameter, pixel_size_um=pixel)


def test_manual_threshold_needs_a_finite_value(segment_defaults):
    for value, message in ((None, "needs a value"), (float("nan"), "not a finite number"), (float("inf"), "not a finite")):
        seg = segment_defaults(threshold={"method": "manual", "value": value})
        with pytest.raises(InputError, match=f"config key segment.threshold.value: .*{message}"):
            params.threshold_params(seg["threshold"], diameter=20, pixel_size_um=None)


def test_label_settings_only_for_the_active_method(segment_defaults):
    seg = segment_defaults()
    reading = {"axes": None, "channels": None, "pixel_size_um": None, "frame_interval_s": None}
    assert set(params.label_settings(seg, reading)) == {"method", "diameter", "split", "refine"}
    seg["method"] = "log_edges"
    assert set(params.label_settings(seg, reading)) == {"method", "diameter", "log_edges", "channel", "reading"}


def test_ring_and_background_params(segment_defaults):
    from conftest import with_defaults

    cfg = with_defaults({"datasets": {"d": {"images": "x/{image}.tif", "segment": {"diameter": 10},
                                            "rings": {"width": 1.3}}}})
    rings = cfg["datasets"]["d"]["rings"]
    kw = params.ring_params(rings, diameter=10, pixel_size_um=0.65)
    assert kw == {"inner_px": 2.0, "width_px": pytest.approx(2.0), "buffer_px": 2.0}
    bg = params.background_params(rings["background"], diameter=10, pixel_size_um=0.5)
    assert bg["method"] == "none" and bg["radius_px"] == 60 and bg["exclude_distance_px"] == 20
    rings["width"] = 0
    with pytest.raises(InputError, match="rings.width"):
        params.ring_params(rings, diameter=10, pixel_size_um=None)

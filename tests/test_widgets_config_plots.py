"""sgdlab.widgets, sgdlab.config and sgdlab.plots."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import sgdlab  # noqa: E402
from sgdlab import config, plots, widgets  # noqa: E402


def test_scale_reads_the_environment(monkeypatch):
    monkeypatch.delenv("SGDLAB_SCALE", raising=False)
    assert sgdlab.scale() == "book"
    monkeypatch.setenv("SGDLAB_SCALE", "smoke")
    assert sgdlab.by_scale(smoke=1, book=2, full=3) == 1
    monkeypatch.setenv("SGDLAB_SCALE", "huge")
    with pytest.raises(ValueError, match="SGDLAB_SCALE"):
        sgdlab.scale()


def test_static_flag_and_progress(monkeypatch):
    monkeypatch.setenv("SGDLAB_STATIC", "1")
    assert config.static() and config.progress_enabled(None) is False and config.progress_enabled(True)
    monkeypatch.setenv("SGDLAB_STATIC", "0")
    assert not config.static() and config.progress_enabled(None) is None


def test_static_explorer_draws_one_panel_per_value():
    calls = []

    def draw(ax, a, b):
        calls.append((a, b))
        ax.plot([0, 1], [a, b])

    fig = widgets.explorer(draw, {"a": [1, 2, 3, 4, 5, 6, 7, 8], "b": [10, 20]}, static=True, defaults={"b": 10}).figure
    assert len(fig.axes) == 6 and calls == [(1, 10), (2, 10), (4, 10), (5, 10), (7, 10), (8, 10)]
    plt.close(fig)
    fig = widgets.explorer(draw, {"a": [1, 2], "b": [10, 20]}, vary="b", static_values=[20], static=True).figure
    assert calls[-1] == (2, 20) and len(fig.axes) == 1
    plt.close(fig)


def test_live_explorer_builds_sliders_headless():
    pytest.importorskip("ipywidgets")
    shown = widgets.explorer(lambda ax, k: ax.plot([0, k]), {"k": [1, 2, 3]}, static=False)
    assert shown.figure is None
    panel = shown.widget
    slider = panel.children[0].children[0]
    slider.value = 3  # redraws without a front end
    assert slider.value == 3
    plt.close("all")


@pytest.mark.parametrize("kwargs, name", [
    (dict(controls={}), "controls"), (dict(controls={"a": []}), "controls"),
    (dict(controls={"a": [1]}, vary="b"), "vary"), (dict(controls={"a": [1]}, defaults={"a": 2}), "defaults"),
])
def test_explorer_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        widgets.explorer(lambda ax, **k: None, static=True, **kwargs)


def test_loglog_slope_and_nan_guard():
    x = np.array([1, 2, 4, 8.0])
    assert plots.loglog_slope(x, 3 / x) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="y"):
        plots.loglog_slope(x, np.array([1, np.nan, 1, 1]))
    with pytest.raises(ValueError, match="diverge"):
        plots.finite_or_raise("loss", [1.0, np.inf])

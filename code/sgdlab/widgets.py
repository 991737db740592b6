"""Interactive explorers that become static small multiples in the HTML build.

An explorer is a drawing function ``draw(ax, **values)`` plus the values each knob may take.
Live (in Jupyter or Colab) it is an ``ipywidgets`` slider panel that redraws on every change.
With ``SGDLAB_STATIC=1`` (the book build) it is one figure with a panel per value of the
``vary`` knob, the others held at their defaults: a page without a kernel cannot move a
slider, so it shows the range at once. Keep the computation in a pure, tested function and
make ``draw`` only plot its result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt

from . import config


@dataclass
class Explorer:
    """What :func:`explorer` returns: the static ``figure`` or the live ``widget`` (the other is None).

    It displays itself when it is the last expression of a notebook cell, exactly once.
    """

    figure: Any = None
    widget: Any = None

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget if self.widget is not None else self.figure)


def _check_controls(controls: dict[str, Sequence[Any]], defaults: dict[str, Any] | None) -> dict[str, Any]:
    if not controls:
        raise ValueError("controls must name at least one knob")
    chosen = {}
    for name, values in controls.items():
        values = list(values)
        if not values:
            raise ValueError(f"controls[{name!r}] has no values")
        chosen[name] = values[len(values) // 2]
    for name, value in (defaults or {}).items():
        if name not in controls:
            raise ValueError(f"defaults names {name!r}, which is not in controls")
        if value not in list(controls[name]):
            raise ValueError(f"defaults[{name!r}]={value!r} is not one of controls[{name!r}]")
        chosen[name] = value
    return chosen


def explorer(
    draw: Callable[..., None],
    controls: dict[str, Sequence[Any]],
    *,
    vary: str | None = None,
    static_values: Sequence[Any] | None = None,
    defaults: dict[str, Any] | None = None,
    panel_size: tuple[float, float] = (3.2, 2.8),
    static: bool | None = None,
):
    """Show ``draw`` with a slider per entry of ``controls``, or as small multiples when static.

    ``controls`` maps each keyword of ``draw`` to the values its slider steps through.
    ``vary`` (default: the first control) is the knob spread across panels in static mode,
    at ``static_values`` (default: up to six of its values, evenly spaced). Returns an
    :class:`Explorer`, which shows the sliders (live) or the figure (static) when it ends a cell.
    """
    if not callable(draw):
        raise ValueError("draw must be a callable draw(ax, **values)")
    chosen = _check_controls(controls, defaults)
    vary = vary or next(iter(controls))
    if vary not in controls:
        raise ValueError(f"vary={vary!r} is not one of the controls {list(controls)}")
    if static is None:
        static = config.static()
    if static:
        values = list(static_values) if static_values is not None else _spread(list(controls[vary]), 6)
        if not values:
            raise ValueError("static_values is empty")
        fig, axes = plt.subplots(1, len(values), figsize=(panel_size[0] * len(values), panel_size[1]),
                                 squeeze=False, sharex=True, sharey=True, layout="constrained")
        for ax, value in zip(axes[0], values):
            draw(ax, **{**chosen, vary: value})
            ax.set_title(f"{vary} = {value}", fontsize="medium")
        plt.close(fig)  # shown once, by Explorer, not again by the inline backend
        return Explorer(figure=fig)
    return Explorer(widget=_live(draw, controls, chosen, panel_size))


def _spread(values: list[Any], k: int) -> list[Any]:
    if len(values) <= k:
        return values
    step = (len(values) - 1) / (k - 1)
    return [values[round(i * step)] for i in range(k)]


def _live(draw, controls, chosen, panel_size):
    import ipywidgets as widgets
    from IPython.display import display

    out = widgets.Output()
    sliders = {
        name: widgets.SelectionSlider(options=list(values), value=chosen[name], description=name,
                                      continuous_update=False, style={"description_width": "initial"})
        for name, values in controls.items()
    }

    def redraw(_change=None):
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(panel_size[0] * 1.6, panel_size[1] * 1.6), layout="constrained")
            draw(ax, **{name: s.value for name, s in sliders.items()})
            display(fig)
            plt.close(fig)

    for s in sliders.values():
        s.observe(redraw, names="value")
    panel = widgets.VBox([widgets.HBox(list(sliders.values())), out])
    redraw()
    return panel

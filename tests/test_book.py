"""sgdlab.book: glue prints outside myst-nb, claims pass or fail the build."""

import numpy as np
import pytest

from sgdlab import book


def test_glue_converts_numpy_scalars_and_prints_without_myst(capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_myst(name, *args, **kwargs):
        if name.startswith("myst_nb"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_myst)
    value = book.glue("slope", np.float64(-1.02))
    assert type(value) is float and value == -1.02
    assert capsys.readouterr().out.strip() == "slope = -1.02"
    with pytest.raises(ValueError, match="name"):
        book.glue("not a name", 1.0)


def test_claim_prints_or_raises(capsys):
    book.claim(np.bool_(True), "the bound holds", gap=np.float32(0.5))
    assert capsys.readouterr().out.strip() == "checked: the bound holds (gap=0.5)"
    with pytest.raises(book.ClaimError, match="the slope is -1"):
        book.claim(False, "the slope is -1")
    with pytest.raises(ValueError, match="condition"):
        book.claim(np.array([True, True]), "two at once")


def test_claim_close_uses_the_standard_error_or_a_stated_tolerance():
    book.claim_close("agree", 1.0 + 3.9e-3, 1.0, se=1e-3)
    with pytest.raises(book.ClaimError):
        book.claim_close("disagree", 1.0 + 4.1e-3, 1.0, se=1e-3)
    book.claim_close("within 3 %", [1.02, 0.98], [1.0, 1.0], rtol=0.03)
    with pytest.raises(book.ClaimError):
        book.claim_close("within 3 %", [1.02, 0.96], [1.0, 1.0], rtol=0.03)
    with pytest.raises(book.ClaimError, match="not finite"):
        book.claim_close("nan never agrees", np.nan, 1.0, rtol=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        book.claim_close("both", 1.0, 1.0, se=0.1, rtol=0.1)


def test_claim_separated_and_mean_se():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.0, 1.0, (2, 400)) + np.array([[0.0], [1.0]])
    book.claim_separated("a below b", book.mean_se(a), book.mean_se(b))
    with pytest.raises(book.ClaimError):
        book.claim_separated("b below a", book.mean_se(b), book.mean_se(a))
    with pytest.raises(book.ClaimError):  # overlapping intervals: no verdict
        book.claim_separated("too close", (0.0, 0.1), (0.3, 0.1))
    mean, se = book.mean_se([[1.0, 3.0]], axis=-1)
    assert mean[0] == 2.0 and se[0] == pytest.approx(np.sqrt(2) / np.sqrt(2))
    with pytest.raises(ValueError, match="two"):
        book.mean_se([1.0])


def test_show_source_highlights_the_real_code():
    code = book.show_source(book.mean_se)
    assert "def mean_se" in code.data and "highlight" in code._repr_html_()
    with pytest.raises(ValueError, match="obj"):
        book.show_source(3)


def test_compile_report_counts_compilations(capsys):
    import jax
    import jax.numpy as jnp

    before = book.compile_report()["xla"]
    jax.jit(lambda x: jnp.sin(x) * 3.0 + 0.123456)(jnp.arange(7.0))  # a program never compiled before
    after = book.compile_report()
    assert after["xla"] >= before + 1 and after["engine"] >= 0
    assert "XLA programs" in capsys.readouterr().out

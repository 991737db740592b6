"""The checks of Chapter 12's exercises accept correct answers and catch plausible wrong ones."""

import math

import numpy as np

from sgdlab.coursework import ch12


def test_stability_check_accepts_the_theorem_and_rejects_near_misses():
    assert ch12.check_stability_limit(lambda tau: 2 * math.sin(math.pi / (2 * (2 * tau + 1))))
    assert not ch12.check_stability_limit(lambda tau: math.pi / (2 * tau + 1))  # the large-tau asymptote
    assert not ch12.check_stability_limit(lambda tau: 2 * math.sin(math.pi / (4 * tau + 4)))  # off by one


def _radius_by_companion_matrix(x, tau):
    """The largest eigenvalue modulus of the companion matrix of w_{t+1} = w_t - x w_{t-tau}."""
    m = np.zeros((tau + 1, tau + 1))
    m[0, 0] += 1.0
    m[0, tau] -= x
    m[1:, :-1] += np.eye(tau)
    return float(np.abs(np.linalg.eigvals(m)).max())


def test_factor_check_accepts_the_companion_matrix_and_rejects_the_undelayed_rate():
    assert ch12.check_measured_factor(_radius_by_companion_matrix)
    assert not ch12.check_measured_factor(lambda x, tau: abs(1 - x))  # ignores the delay


def test_refuses_the_package_function():
    from sgdlab.optim.delayed import stability_limit

    assert not ch12.check_stability_limit(stability_limit)
    assert not ch12.check_stability_limit(lambda tau: stability_limit(tau))

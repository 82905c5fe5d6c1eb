"""Exact learning coefficients (slt.estimators.exact): public check values of science.md (exact answers
2, 3, 5, 6, 7), Aoyagi 2024 against reduced-rank regression and against brute force over
rank profiles. Pure Python: no jax, no sampling."""
import itertools
import random
from fractions import Fraction

import pytest

from slt.estimators.exact import (DLNCoefficient, dln_lambda, dln_lambda_bruteforce, normal_crossing_lambda,
                       regular_lambda, rrr_lambda, rrr_multiplicity, tanh_lambda)

# science.md, exact answer 5: (widths, r, lambda, multiplicity or None when not published)
DLN_PUBLIC = [
    ([2, 2, 2], 0, Fraction(3, 2), 1),
    ([2, 1, 2], 0, Fraction(1), 2),
    ([2, 2, 2, 2], 0, Fraction(3, 2), 3),
    ([3, 3, 3, 3], 0, Fraction(3), 1),
    ([1, 4, 4, 1], 0, Fraction(1, 2), None),
    ([3, 4, 2, 5], 1, Fraction(9, 2), None),
    ([5, 4, 3, 4, 5], 2, Fraction(9), 2),
    ([4, 6, 6, 6, 4], 2, Fraction(8), None),
]


def _valid_r(widths):
    return range(min(widths) + 1)


@pytest.mark.parametrize("widths,r,lam,m", DLN_PUBLIC)
def test_dln_public_values(widths, r, lam, m):
    res = dln_lambda(widths, r)
    assert isinstance(res, DLNCoefficient)
    assert res.exact == lam and res.lam == float(lam)
    if m is not None:
        assert res.multiplicity == m
    assert res.l == len(res.subset) - 1 >= 1 and 1 <= res.a <= res.l
    assert dln_lambda_bruteforce(widths, r) == lam


def test_rrr_public_values():
    assert rrr_lambda(5, 3, 5, 1) == 8
    assert rrr_lambda(3, 3, 3, 1) == 4
    assert rrr_lambda(4, 3, 8, 1) == 8.5
    assert rrr_lambda(3, 8, 4, 2) == 6
    # first branch: m = 2 exactly when M+H+N+r is odd; other branches m = 1
    assert rrr_multiplicity(5, 3, 5, 1) == 1 and rrr_multiplicity(2, 1, 2, 0) == 2
    assert rrr_multiplicity(4, 3, 8, 1) == 1 and rrr_multiplicity(3, 8, 4, 2) == 1


def test_old_import_path_still_works():
    from slt.estimators.learning_coefficient import rrr_lambda as old
    assert old is rrr_lambda


def test_dln_one_hidden_layer_is_rrr():
    n = 0
    for M, H, N in itertools.product(range(1, 8), repeat=3):
        for r in range(min(M, H, N) + 1):
            res = dln_lambda([M, H, N], r)
            assert res.lam == rrr_lambda(M, H, N, r), (M, H, N, r, res)
            assert res.multiplicity == rrr_multiplicity(M, H, N, r), (M, H, N, r, res)
            n += 1
    assert n > 1000


def test_single_matrix_is_regular():
    for h1, h2 in itertools.product(range(1, 7), repeat=2):
        for r in range(min(h1, h2) + 1):
            res = dln_lambda([h1, h2], r)
            assert res.exact == Fraction(h1 * h2, 2) and res.multiplicity == 1
            assert dln_lambda_bruteforce([h1, h2], r) == Fraction(h1 * h2, 2)
            assert res.lam == regular_lambda(h1 * h2)


def _check_against_bruteforce(widths):
    d = sum(a * b for a, b in zip(widths, widths[1:]))
    for r in _valid_r(widths):
        res = dln_lambda(widths, r)
        bf = dln_lambda_bruteforce(widths, r)
        assert res.exact == bf, (widths, r, res, bf)
        assert 0 <= res.exact <= Fraction(d, 2), (widths, r, res)
        assert res.multiplicity >= 1


def test_dln_matches_bruteforce_exhaustive_depth_2_3():
    for L in (2, 3):
        for widths in itertools.product(range(1, 6), repeat=L + 1):
            _check_against_bruteforce(list(widths))


def test_dln_matches_bruteforce_random_depth_4_5():
    rng = random.Random(20240172)
    for L in (4, 5):
        for _ in range(300):
            _check_against_bruteforce([rng.randint(1, 5) for _ in range(L + 1)])


def test_dln_lambda_positive():
    # positive widths: the true set is a proper subset, so lambda > 0 (and <= d/2, checked above)
    for widths in itertools.product(range(1, 5), repeat=4):
        for r in _valid_r(widths):
            assert dln_lambda(list(widths), r).lam > 0


def test_tanh_values():
    expect = {1: (Fraction(1, 2), 2), 2: (Fraction(2, 3), 1), 3: (Fraction(5, 6), 1), 4: (Fraction(1), 2)}
    for H, (lam, m) in expect.items():
        assert tanh_lambda(H) == (float(lam), m)
    assert tanh_lambda(9)[1] == 2 and tanh_lambda(10)[1] == 1


def test_normal_crossing_values():
    assert normal_crossing_lambda([1, 1]) == (0.5, 2)
    assert normal_crossing_lambda([1, 2]) == (0.25, 1)
    assert normal_crossing_lambda([2, 3]) == (1 / 6, 1)
    assert normal_crossing_lambda([1, 2]) == (0.25, 1)       # x^2 y^4 -> 1/4
    assert normal_crossing_lambda([0, 2, 1, 2]) == (0.25, 2)  # zero powers ignored
    assert regular_lambda(9) == 4.5


@pytest.mark.parametrize("call,match", [
    (lambda: dln_lambda([3], 0), "at least 2"),
    (lambda: dln_lambda([], 0), "at least 2"),
    (lambda: dln_lambda([3, 0, 2], 0), "positive integers"),
    (lambda: dln_lambda([3, 2.5, 2], 0), "positive integers"),
    (lambda: dln_lambda("32", 0), "list"),
    (lambda: dln_lambda([3, 2, 4], 3), r"r must be .*\[0, 2\]"),
    (lambda: dln_lambda([3, 2, 4], -1), "r must be"),
    (lambda: dln_lambda_bruteforce([3, 2, 4], 5), "r must be"),
    (lambda: rrr_lambda(0, 2, 2, 0), "M must be"),
    (lambda: rrr_lambda(3, 2, 2, 3), "r must be"),
    (lambda: rrr_multiplicity(3, 2, 2, -1), "r must be"),
    (lambda: tanh_lambda(0), "H must be"),
    (lambda: normal_crossing_lambda([0, 0]), "no positive power"),
    (lambda: normal_crossing_lambda([1, -1]), "non-negative"),
    (lambda: regular_lambda(-1), "non-negative"),
])
def test_invalid_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()

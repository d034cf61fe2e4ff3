"""Whether repetitions separate two samples, and which candidates they leave tied.

Two samples (repetitions of one measurement each) are called different only
when a test separates them *and* their medians differ by more than a factor,
as asv's ``compare`` does (Mann-Whitney U, exact for small samples; the 99%
confidence intervals of the medians where the U test cannot reach the
threshold) and as pyperf's ``compare_to`` prints "Not significant". Anything
else is a tie: a difference the repetitions cannot resolve.

Samples are costs or rates: finite positive numbers. Pure Python, no scipy.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import combinations

P_THRESHOLD = 0.01  # two-sided; 5 repetitions per side can reach it (min p = 2/252 = 0.0079)
MIN_FACTOR = 1.10  # asv compare's default --factor: a difference must also exceed 10%
CONFIDENCE = 0.99
EXACT_MAX_N = 20  # the exact U distribution up to this size per side, the normal one above


@dataclass(frozen=True)
class Summary:
    """One sample (the repetitions of one cell) for display: its median and the median's CI."""

    n: int
    median: float
    ci_low: float  # distribution-free CI of the median from order statistics (binomial)
    ci_high: float
    confidence: float  # the CI's actual coverage: below CONFIDENCE when n is too small


@dataclass(frozen=True)
class Verdict:
    """What ``compare`` concluded about two samples."""

    different: bool
    method: str  # "mann-whitney", "ci", or "too few" (n < 2 on a side: never different)
    p: float  # two-sided p of the U test; NaN when not computed
    ratio: float  # median(a) / median(b)


def _checked(samples: Sequence[float]) -> list[float]:
    values = [float(x) for x in samples]
    if not all(math.isfinite(x) for x in values):
        raise ValueError(f"samples must be finite numbers, got {samples!r}")
    return values


def _median_ci_rank(n: int, confidence: float) -> tuple[int, float]:
    """The 1-based rank k of the CI [x(k), x(n+1-k)] and its coverage.

    The coverage of [x(k), x(n+1-k)] is 1 - 2 P(Binomial(n, 1/2) <= k - 1): the
    largest k reaching ``confidence`` is chosen, else k = 1 ([min, max]).
    """
    k, coverage = 1, 1 - 2 * 0.5**n
    tail = 1  # count of outcomes with at most k successes, over 2^n
    for rank in range(2, (n + 1) // 2 + 1):
        tail += math.comb(n, rank - 1)
        wider = 1 - 2 * tail / 2**n
        if wider < confidence:
            break
        k, coverage = rank, wider
    return k, max(coverage, 0.0)


def summarize(samples: Sequence[float]) -> Summary:
    """Median and its distribution-free CI (``CONFIDENCE`` where n allows, else [min, max]).

    Raises ``ValueError`` for an empty sample or a value that is not finite.
    """
    values = sorted(_checked(samples))
    if not values:
        raise ValueError("summarize needs at least one sample, got none")
    k, coverage = _median_ci_rank(len(values), CONFIDENCE)
    return Summary(len(values), statistics.median(values), values[k - 1], values[-k], coverage)


@cache
def _u_counts(m: int, n: int) -> tuple[int, ...]:
    """How many of the C(m+n, m) orderings of two samples give U = 0 .. m*n.

    The largest value overall is either one of the m (it beats all n others)
    or one of the n (it beats none): counts(m, n)[u] = counts(m-1, n)[u-n] +
    counts(m, n-1)[u].
    """
    if m == 0 or n == 0:
        return (1,)
    with_a_top, with_b_top = _u_counts(m - 1, n), _u_counts(m, n - 1)
    return tuple((with_a_top[u - n] if 0 <= u - n < len(with_a_top) else 0)
                 + (with_b_top[u] if u < len(with_b_top) else 0) for u in range(m * n + 1))


def _most_central(low: int, high: int, mn: int) -> int:
    """Over U in [low, high], the largest min(U, mn - U): the least significant tie breaking."""
    half = mn // 2
    if high < half:
        return high
    if low > mn - half:
        return mn - low
    return half


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """The Mann-Whitney U of ``a`` against ``b`` and its two-sided p.

    U counts the pairs with the value from ``a`` greater, ties counting one
    half. p is exact while neither sample exceeds ``EXACT_MAX_N``, else from the
    normal approximation with continuity correction. Ties are broken in the
    way that gives the largest p (conservative; no variance correction).
    Raises ``ValueError`` for an empty sample or a value that is not finite.
    """
    xs, ys = _checked(a), _checked(b)
    m, n = len(xs), len(ys)
    if m == 0 or n == 0:
        raise ValueError(f"mann_whitney_u needs two non-empty samples, got {m} and {n} values")
    greater = sum(x > y for x in xs for y in ys)
    ties = sum(x == y for x in xs for y in ys)
    mn = m * n
    u_tail = _most_central(greater, greater + ties, mn)
    if max(m, n) <= EXACT_MAX_N:
        counts = _u_counts(m, n)
        p = 2 * sum(counts[: u_tail + 1]) / math.comb(m + n, m)
    else:
        sigma = math.sqrt(mn * (m + n + 1) / 12)
        z = (u_tail + 0.5 - mn / 2) / sigma
        p = math.erfc(-z / math.sqrt(2))  # 2 * Phi(z)
    return greater + ties / 2, min(p, 1.0)


def min_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p the exact U test can give (complete separation).

    That is 2 / C(n_a + n_b, n_a); 1 when a side is empty.
    """
    if n_a <= 0 or n_b <= 0:
        return 1.0
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


def _fold(median_a: float, median_b: float) -> float:
    """max(r, 1/r) for r = median_a / median_b, computed alike whichever comes first."""
    low, high = sorted((abs(median_a), abs(median_b)))
    if low == 0:
        return 1.0 if high == 0 else math.inf
    return high / low


def _ratio(median_a: float, median_b: float) -> float:
    if median_b == 0:
        return 1.0 if median_a == 0 else math.inf
    return median_a / median_b


def _cis_apart(a: Summary, b: Summary) -> bool:
    """The CONFIDENCE intervals do not overlap; one that cannot reach CONFIDENCE never separates."""
    if min(a.confidence, b.confidence) < CONFIDENCE:
        return False
    return a.ci_high < b.ci_low or b.ci_high < a.ci_low


def compare(a: Sequence[float], b: Sequence[float], p_threshold: float = P_THRESHOLD,
            factor: float = MIN_FACTOR) -> Verdict:
    """Whether ``a`` and ``b`` differ: statistically, and by a ratio of medians beyond ``factor``.

    The U test decides where the sample sizes let it reach ``p_threshold``
    (``min_p``); otherwise only disjoint ``CONFIDENCE`` intervals of the medians
    do. Fewer than 2 values on a side are never different. Raises
    ``ValueError`` for a value that is not finite.
    """
    xs, ys = _checked(a), _checked(b)
    if min(len(xs), len(ys)) < 2:
        ratio = _ratio(statistics.median(xs), statistics.median(ys)) if xs and ys else math.nan
        return Verdict(False, "too few", math.nan, ratio)
    sa, sb = summarize(xs), summarize(ys)
    beyond = _fold(sa.median, sb.median) >= factor
    ratio = _ratio(sa.median, sb.median)
    if min_p(len(xs), len(ys)) < p_threshold:
        _, p = mann_whitney_u(xs, ys)
        return Verdict(p < p_threshold and beyond, "mann-whitney", p, ratio)
    return Verdict(_cis_apart(sa, sb) and beyond, "ci", math.nan, ratio)


def tie_groups(samples: Mapping[str, Sequence[float]], higher_is_better: bool = True,
               p_threshold: float = P_THRESHOLD, factor: float = MIN_FACTOR
               ) -> list[list[str]]:
    """Candidates in groups the data cannot separate, best group first.

    Names are ordered by median, best first (equal medians keep the mapping's order).
    The first group is the leader plus every other candidate ``compare`` cannot tell from it.
    The rest are grouped the same way, the best remaining candidate leading the next group.
    So a candidate joins a group by comparison with its leader alone, never its other members.
    """
    medians = {name: statistics.median(_checked(values)) for name, values in samples.items()}
    remaining = sorted(medians, key=lambda name: -medians[name] if higher_is_better
                       else medians[name])
    groups = []
    while remaining:
        leader, rest = remaining[0], remaining[1:]
        tied = [name for name in rest
                if not compare(samples[name], samples[leader], p_threshold, factor).different]
        groups.append([leader, *tied])
        remaining = [name for name in rest if name not in tied]
    return groups


def _resolvable(n_a: int, n_b: int, p_threshold: float) -> bool:
    """Whether ``compare`` could call samples of these sizes different at all."""
    if min(n_a, n_b) < 2:
        return False
    if min_p(n_a, n_b) < p_threshold:
        return True
    return min(_median_ci_rank(n_a, CONFIDENCE)[1], _median_ci_rank(n_b, CONFIDENCE)[1]) \
        >= CONFIDENCE


def resolution(samples: Mapping[str, Sequence[float]], p_threshold: float = P_THRESHOLD,
               factor: float = MIN_FACTOR) -> float:
    """The smallest ratio of medians (>= 1) this data could call different; inf if none.

    With h the median over candidates of the CI half-width relative to the
    median (``summarize``), two samples that spread alike have disjoint
    intervals once their medians are (1 + h) / (1 - h) apart, and ``compare``
    never separates less than ``factor``: the larger of the two. It is inf
    when no two candidates are large enough for the test to separate them.
    """
    sizes = {name: len(values) for name, values in samples.items()}
    if not any(_resolvable(sizes[x], sizes[y], p_threshold) for x, y in combinations(sizes, 2)):
        return math.inf
    half_widths = []
    for values in samples.values():
        if len(values) >= 2:
            s = summarize(values)
            half_widths.append((s.ci_high - s.ci_low) / (2 * abs(s.median)) if s.median
                               else math.inf)
    h = statistics.median(half_widths)
    return max(factor, (1 + h) / (1 - h)) if h < 1 else math.inf


def quantile_ci(values: Sequence[float], q: float,
                confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval of the ``q``-th percentile (0-100) of ``values``.

    Order statistics whose ranks bracket n·q/100 by the normal approximation of
    Binomial(n, q/100), as for the median above but at any quantile: with too few
    values beyond the percentile the upper end is ``inf`` (the data cannot bound
    it) and the lower end ``-inf`` likewise. ``(nan, nan)`` for no values.
    """
    data = sorted(x for x in _checked(values))
    n = len(data)
    if n == 0:
        return math.nan, math.nan
    p = q / 100
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    spread = z * math.sqrt(n * p * (1 - p))
    low = math.floor(n * p - spread)  # 1-based ranks
    high = math.ceil(n * p + spread) + 1
    return (data[low - 1] if low >= 1 else -math.inf,
            data[high - 1] if high <= n else math.inf)

"""Latency histograms (HdrHistogram, microseconds) and percentiles of plain samples.

Histograms travel between processes encoded (``encode()``, a compressed
base64 blob of ~100 bytes to a few KB) and are merged with ``add()``, which is
exact: the merged percentiles are those of one histogram fed every sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

# 1 us to 60 s at 3 significant digits: a delivery slower than a minute is as
# good as lost, and 0.1 % resolution is far finer than the noise of a run.
LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9))


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


class BucketCounts:
    """Latencies counted in an HdrHistogram's own buckets with a few integer operations.

    ``HdrHistogram.record_value`` costs about 1.5 us in pure Python, a tenth of
    the load generator's whole budget per delivery. This computes the same
    bucket index inline (for our histogram's parameters: unit 1 us, 3
    significant digits) and :meth:`take` turns the counts into a real histogram
    once a second, exactly: each bucket's count is recorded at a value of that
    bucket.
    """

    __slots__ = ("_half_count", "_half_magnitude", "_mask", "_shift", "counts")

    def __init__(self) -> None:
        layout = new_histogram()
        # The inline index below assumes a unit magnitude of 0 (the lowest value is 1).
        assert layout.unit_magnitude == 0
        self._mask: int = layout.sub_bucket_mask
        self._half_magnitude: int = layout.sub_bucket_half_count_magnitude
        self._half_count: int = layout.sub_bucket_half_count
        self._shift = self._half_magnitude + 1
        self.counts = [0] * layout.counts_len

    def record(self, micros: int) -> None:
        if micros < LOWEST_US:
            micros = LOWEST_US
        elif micros > HIGHEST_US:
            micros = HIGHEST_US  # a delivery slower than the range still counts, at the top
        bucket = (micros | self._mask).bit_length() - self._shift
        self.counts[((bucket + 1) << self._half_magnitude) + (micros >> bucket) - self._half_count] += 1

    def take(self) -> HdrHistogram:
        """The counts since the last take, as a histogram; the counts start again from zero."""
        histogram = new_histogram()
        for index, count in enumerate(self.counts):
            if count:
                histogram.record_value(histogram.get_value_from_index(index), count)
        self.counts = [0] * len(self.counts)
        return histogram


def encode(histogram: HdrHistogram) -> bytes:
    blob: bytes = histogram.encode()
    return blob


def merge(blobs: Iterable[bytes]) -> HdrHistogram:
    """One histogram holding every sample of the encoded ``blobs``."""
    merged = new_histogram()
    for blob in blobs:
        merged.add(HdrHistogram.decode(blob))
    return merged


def latency_ms(histogram: HdrHistogram) -> dict[str, float | int | None]:
    """``p50``, ``p90``, ``p99``, ``p99_9``, ``max`` in ms (None when empty) and ``count``."""
    count: int = histogram.get_total_count()
    if count == 0:
        return {**{key: None for key, _ in PERCENTILES}, "max": None, "count": 0}
    values = histogram.get_percentile_to_value_dict([q for _, q in PERCENTILES])
    figures: dict[str, float | int | None] = {key: values[q] / 1000.0 for key, q in PERCENTILES}
    figures["max"] = histogram.get_max_value() / 1000.0
    figures["count"] = count
    return figures


def quick_percentiles_ms(histogram: HdrHistogram) -> tuple[float | None, float | None]:
    """``(p50, p99)`` in ms, for the progress line and the timeline."""
    if histogram.get_total_count() == 0:
        return None, None
    values = histogram.get_percentile_to_value_dict([50.0, 99.0])
    return values[50.0] / 1000.0, values[99.0] / 1000.0


def sample_percentiles(samples: Sequence[float], quantiles: Iterable[tuple[str, float]]) -> dict[str, float | None]:
    """Nearest-rank percentiles of a small list of plain samples (connect times, resync times)."""
    ordered = sorted(samples)
    result: dict[str, float | None] = {}
    for key, q in quantiles:
        if not ordered:
            result[key] = None
        else:
            rank = max(math.ceil(q / 100.0 * len(ordered)), 1)
            result[key] = round(ordered[rank - 1], 3)
    return result

"""The doctor's thresholds, each with the reasoning behind it (numbered by check, as in
:mod:`bn_inspect.doctor`)."""

from __future__ import annotations

import math

# 1. Initializer still dominant. The moving statistics are ``m**t * initializer + (1 - m**t) *
# (batches)``: above 5% the initializer (mean 0, variance 1) visibly pulls inference away from
# the data for any input not already standardised; above 50% it outweighs all batches together.
RESIDUAL_WARNING = 0.05
RESIDUAL_ERROR = 0.5

# 2, 6. Layer gaps, in the units of stats.layer_gaps: a channel mean shifted by 0.2 inference-time
# standard deviations, or a variance off by 22% (|log ratio| 0.2), is the smallest mismatch worth
# a fix; a whole standard deviation, or a factor 4 in variance (2 in scale), breaks inference.
MEAN_GAP_WARNING = 0.2
VAR_LOG_RATIO_WARNING = 0.2
MEAN_GAP_ERROR = 1.0
VAR_LOG_RATIO_ERROR = math.log(4.0)
# 2. A probe of n samples shows gaps of stats.sampling_gap_floor(n) by chance alone (0.10 sd and
# 0.14 for n = 64); a layer counts as diverging only beyond 3 times that.
PROBE_NOISE_FACTOR = 3.0
# 2. Output gap on the probe, mean |training - inference| / mean |inference|: 10% changes
# predictions noticeably, 50% means inference outputs are not the model that was trained.
OUTPUT_GAP_WARNING = 0.1
OUTPUT_GAP_ERROR = 0.5

# 3. Samples behind each batch statistic. The batch variance's relative standard error is
# about sqrt(2 / (n - 1)): 37% at 16 samples, 82% at 4, 141% at 2 (at 1 the variance is 0 and
# every output equals beta). Conv layers average over H*W positions too, but positions of one
# image are strongly correlated, so the sample count is what bounds the noise.
BATCH_WARNING = 16
BATCH_ERROR = 4
# 3. Probe: below 16 samples its gaps are noise (sampling_gap_floor(16) = 0.20 sd, 0.29).
PROBE_MIN_SAMPLES = 16

# 5. Moving variance below epsilon: epsilon then makes up at least half of the denominator
# sqrt(var + eps), so the channel is no longer normalised (dead units have variance 0).
TINY_VARIANCE_FACTOR = 1.0

# 7. Replicas' batch means apart by 0.2 batch standard deviations (stats.replica_mean_spread_gap)
# normalise the same channel visibly differently; a whole standard deviation breaks it.
REPLICA_SPREAD_WARNING = 0.2
REPLICA_SPREAD_ERROR = 1.0
MAX_LISTED = 8  # channel indices / layer paths listed in the evidence

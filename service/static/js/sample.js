/* A binary version's stored validation sample (GET .../validation), prepared for counting at a threshold.
 *
 * Only cheap counting happens here, so the slider can move without a request: the confusion counts at a
 * threshold (the server's rule: positive when P(classes[1]) >= threshold, the numbers POST /metrics gives
 * on these rows), the score histogram, and the next lower score (to round a threshold without changing
 * a prediction). Curves, AUC and the F1-optimal threshold come from the server (see explorer.js). */

export const HIST_BINS = 20;

export function prepareSample(data) {
  const classes = data.classes || [];
  const labels = data.labels || [];
  const probabilities = data.probabilities || [];
  const positive = classes[1];
  const scores = probabilities.map((row) => Number(row[1]));
  const isPos = labels.map((l) => l === positive);
  const n = labels.length;
  const nPos = isPos.filter(Boolean).length;

  // Score histogram by true class.
  const pos = new Array(HIST_BINS).fill(0);
  const neg = new Array(HIST_BINS).fill(0);
  scores.forEach((s, i) => {
    const bin = Math.min(HIST_BINS - 1, Math.max(0, Math.floor(s * HIST_BINS)));
    if (isPos[i]) pos[bin] += 1;
    else neg[bin] += 1;
  });
  return { raw: data, classes, positive, scores, isPos, n, nPos, nNeg: n - nPos, hist: { pos, neg } };
}

/** Confusion counts at threshold t (positive when score >= t), the server's rule. */
export function binaryCounts(sample, t) {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let tn = 0;
  for (let i = 0; i < sample.n; i += 1) {
    const predictedPositive = sample.scores[i] >= t;
    if (sample.isPos[i]) {
      if (predictedPositive) tp += 1;
      else fn += 1;
    } else if (predictedPositive) fp += 1;
    else tn += 1;
  }
  return { tp, fp, fn, tn };
}

/** The largest score below t (-Infinity if none): every threshold in (it, t] predicts as t does. */
export function scoreBelow(sample, t) {
  let below = -Infinity;
  for (const s of sample.scores) if (s < t && s > below) below = s;
  return below;
}

/** The roundest number in (low, high]: every threshold there gives the same predictions as high. */
export function roundestBetween(low, high) {
  for (let digits = 1; digits <= 6; digits += 1) {
    const p = 10 ** digits;
    const candidate = Math.floor(high * p) / p;
    if (candidate <= high && candidate > low) return candidate;
  }
  return high;
}

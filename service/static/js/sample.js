/* A version's stored validation sample (GET .../validation), prepared for the threshold explorer:
 * curves, areas, the F1-optimal cut, a score histogram and a sweep, computed in the page with the
 * server's rule (binary models predict classes[1] when P(classes[1]) >= threshold). */

import { safeDiv } from "./format.js";

export const HIST_BINS = 20;

export function prepareValidation(data) {
  const classes = data.classes || [];
  const labels = data.labels || [];
  const probabilities = data.probabilities || [];
  const n = labels.length;
  const prepared = { raw: data, classes, labels, probabilities, n, binary: classes.length === 2 };
  if (!prepared.binary) {
    prepared.predicted = probabilities.map((row) => {
      let best = 0;
      for (let k = 1; k < row.length; k += 1) if (row[k] > row[best]) best = k;
      return best;
    });
    prepared.trueIndex = labels.map((l) => classes.indexOf(l));
    return prepared;
  }
  const positive = classes[1];
  const scores = probabilities.map((row) => Number(row[1]));
  const isPos = labels.map((l) => l === positive);
  const nPos = isPos.filter(Boolean).length;
  const nNeg = n - nPos;
  Object.assign(prepared, { positive, scores, isPos, nPos, nNeg });

  // Counts at each distinct score, from the highest (the ROC and PR curves' vertices).
  const order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a]);
  const vertices = [];
  let tp = 0;
  let fp = 0;
  for (let k = 0; k < n; k += 1) {
    const i = order[k];
    if (isPos[i]) tp += 1;
    else fp += 1;
    if (k === n - 1 || scores[order[k + 1]] !== scores[i]) vertices.push({ t: scores[i], tp, fp });
  }
  prepared.vertices = vertices;
  prepared.roc = [{ x: 0, y: 0 }, ...vertices.map((v) => ({ x: safeDiv(v.fp, nNeg), y: safeDiv(v.tp, nPos) }))];
  let auc = 0;
  for (let k = 1; k < prepared.roc.length; k += 1) {
    const a = prepared.roc[k - 1];
    const b = prepared.roc[k];
    auc += ((b.x - a.x) * (a.y + b.y)) / 2;
  }
  prepared.auc = nPos > 0 && nNeg > 0 ? auc : null;
  prepared.pr = [{ x: 0, y: 1 }, ...vertices.map((v) => ({ x: safeDiv(v.tp, nPos), y: safeDiv(v.tp, v.tp + v.fp) }))];
  let ap = 0;
  let previousRecall = 0;
  for (const v of vertices) {
    const recall = safeDiv(v.tp, nPos);
    ap += (recall - previousRecall) * safeDiv(v.tp, v.tp + v.fp);
    previousRecall = recall;
  }
  prepared.ap = nPos > 0 ? ap : null;

  // F1-optimal cut: exact over the distinct scores; among equal F1 the largest threshold (as the server).
  let best = 0;
  let bestF1 = -1;
  vertices.forEach((v, k) => {
    const f1 = safeDiv(2 * v.tp, nPos + v.tp + v.fp);
    if (f1 > bestF1) {
      bestF1 = f1;
      best = k;
    }
  });
  if (vertices.length) {
    const exact = vertices[best].t;
    const below = best + 1 < vertices.length ? vertices[best + 1].t : -Infinity;
    prepared.best = { exact, below, threshold: roundestBetween(below, exact), f1: bestF1, vertex: vertices[best] };
  } else {
    prepared.best = null;
  }

  // Score histogram by true class.
  const histPos = new Array(HIST_BINS).fill(0);
  const histNeg = new Array(HIST_BINS).fill(0);
  scores.forEach((s, i) => {
    const bin = Math.min(HIST_BINS - 1, Math.max(0, Math.floor(s * HIST_BINS)));
    if (isPos[i]) histPos[bin] += 1;
    else histNeg[bin] += 1;
  });
  prepared.hist = { pos: histPos, neg: histNeg };

  // Precision, recall, F1 and accuracy on a grid of thresholds.
  const posSorted = scores.filter((_, i) => isPos[i]).sort((a, b) => a - b);
  const negSorted = scores.filter((_, i) => !isPos[i]).sort((a, b) => a - b);
  const sweep = { precision: [], recall: [], f1: [], accuracy: [] };
  for (let k = 0; k <= 100; k += 1) {
    const t = k / 100;
    const tpT = posSorted.length - lowerBound(posSorted, t);
    const fpT = negSorted.length - lowerBound(negSorted, t);
    const tnT = nNeg - fpT;
    sweep.precision.push({ x: t, y: safeDiv(tpT, tpT + fpT) });
    sweep.recall.push({ x: t, y: safeDiv(tpT, nPos) });
    sweep.f1.push({ x: t, y: safeDiv(2 * tpT, nPos + tpT + fpT) });
    sweep.accuracy.push({ x: t, y: safeDiv(tpT + tnT, n) });
  }
  prepared.sweep = sweep;
  return prepared;
}

function lowerBound(sorted, value) {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The roundest number in (low, high]: every threshold there gives the same predictions as high. */
function roundestBetween(low, high) {
  for (let digits = 1; digits <= 6; digits += 1) {
    const p = 10 ** digits;
    const candidate = Math.floor(high * p) / p;
    if (candidate <= high && candidate > low) return candidate;
  }
  return high;
}

/** Confusion counts at threshold t (positive when score >= t), the server's rule. */
export function binaryCounts(v, t) {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let tn = 0;
  for (let i = 0; i < v.n; i += 1) {
    const predictedPositive = v.scores[i] >= t;
    if (v.isPos[i]) {
      if (predictedPositive) tp += 1;
      else fn += 1;
    } else if (predictedPositive) fp += 1;
    else tn += 1;
  }
  return { tp, fp, fn, tn };
}

export function multiclassMatrix(v) {
  const k = v.classes.length;
  const matrix = Array.from({ length: k }, () => new Array(k).fill(0));
  v.trueIndex.forEach((t, i) => {
    if (t >= 0) matrix[t][v.predicted[i]] += 1;
  });
  return matrix;
}

/**
 * Latency of one safety check on a full-size output (2496×1664 RGB, raw pixels as an engine
 * returns them), including the downscale, after warm-up. Checks run one after another, so the
 * figure is the latency a task pays, not throughput.
 *
 *   node --import tsx src/imaging/safety/bench.ts [runs]
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { createSafetyClassifier } from './safety-classifier.ts';
import { syntheticLandscape } from './synthetic-landscape.ts';

export interface SafetyBenchResult {
  readonly runs: number;
  readonly width: number;
  readonly height: number;
  /** Model load plus warm-up inferences, ms (paid once per process). */
  readonly warmUpMs: number;
  /** Median wall time of `classify()` per image, ms: the latency a checked image adds. */
  readonly medianMs: number;
  readonly p90Ms: number;
  readonly minMs: number;
  readonly maxMs: number;
  /** Medians of the two parts. */
  readonly medianDownscaleMs: number;
  readonly medianInferenceMs: number;
  /** Worst event-loop delay seen during the timed checks, ms: the main thread stays free. */
  readonly maxEventLoopDelayMs: number;
}

export async function benchSafety(runs = 15, width = 2496, height = 1664): Promise<SafetyBenchResult> {
  const image = syntheticLandscape(width, height, 7);
  const classifier = createSafetyClassifier();
  try {
    const warmStarted = performance.now();
    await classifier.warmUp();
    await classifier.classify(image); // the first downscale of this size pays sharp's set-up
    const warmUpMs = performance.now() - warmStarted;
    const total: number[] = [];
    const downscale: number[] = [];
    const inference: number[] = [];
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    for (let run = 0; run < runs; run += 1) {
      const verdict = await classifier.classify(image);
      total.push(verdict.ms);
      downscale.push(verdict.downscaleMs);
      inference.push(verdict.inferenceMs);
    }
    loopDelay.disable();
    const sorted = [...total].sort((a, b) => a - b);
    return {
      runs,
      width,
      height,
      warmUpMs: round(warmUpMs),
      medianMs: round(median(total)),
      p90Ms: round(sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.9) - 1)] ?? Number.NaN),
      minMs: round(sorted[0] ?? Number.NaN),
      maxMs: round(sorted[sorted.length - 1] ?? Number.NaN),
      medianDownscaleMs: round(median(downscale)),
      medianInferenceMs: round(median(inference)),
      maxEventLoopDelayMs: round(loopDelay.max / 1e6),
    };
  } finally {
    await classifier.close();
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const runs = Number(process.argv[2] ?? 15);
  console.log(JSON.stringify(await benchSafety(Number.isInteger(runs) && runs > 0 ? runs : 15)));
}

import type { Metrics } from '../../metrics/metrics.ts';
import type { Logger } from '../../shared/logger.ts';
import type { SafetyImage } from './model-input.ts';
import type { SafetyClassifier } from './safety-classifier.ts';

/** What `tasks/` calls: the classifier plus the operator's policy, with logs and metrics around it. */
export interface SafetyChecker {
  readonly policy: 'flag' | 'block';
  /** Whether uploads and reference images are classified too (off by default). */
  readonly checkInputs: boolean;
  classify(image: SafetyImage, context: { taskUUID: string; what: string }): Promise<{ nsfw: boolean; score: number }>;
}

export function createSafetyChecker(
  classifier: SafetyClassifier,
  options: { policy: 'flag' | 'block'; checkInputs: boolean; metrics: Metrics; logger: Logger },
): SafetyChecker {
  return {
    policy: options.policy,
    checkInputs: options.checkInputs,
    async classify(image, context) {
      const verdict = await classifier.classify(image);
      options.metrics.safetyChecks.inc({ verdict: verdict.nsfw ? 'flagged' : 'clean' });
      options.metrics.safetySeconds.observe(verdict.ms / 1000);
      // Scores only: never the image content.
      options.logger.info(
        {
          taskUUID: context.taskUUID,
          what: context.what,
          nsfw: verdict.nsfw,
          score: Number(verdict.score.toFixed(4)),
          probabilities: Object.fromEntries(Object.entries(verdict.probabilities).map(([k, v]) => [k, Number(v.toFixed(4))])),
          ms: Math.round(verdict.ms),
        },
        'safety check',
      );
      return { nsfw: verdict.nsfw, score: verdict.score };
    },
  };
}

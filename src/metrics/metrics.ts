import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Kiln's Prometheus metrics, on one registry served at `/metrics`. */
export interface Metrics {
  readonly registry: Registry;
  readonly tasks: Counter<'model' | 'delivery'>;
  readonly images: Counter<'model' | 'outcome'>;
  /** Engine time per call, rendering only (handing images to the encode stage is left out). */
  readonly renderSeconds: Histogram<'engine'>;
  /** Time per image in the stages after rendering: `encode` (with the safety check beside it), `store` (object + rows), `deliver` (events). */
  readonly stageSeconds: Histogram<'stage'>;
  readonly safetyChecks: Counter<'verdict'>;
  readonly safetySeconds: Histogram;
  readonly webhookAttempts: Counter<'outcome'>;
  readonly uploadAttempts: Counter<'outcome'>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    tasks: new Counter({ name: 'kiln_tasks_total', help: 'Inference tasks accepted', labelNames: ['model', 'delivery'], registers }),
    images: new Counter({ name: 'kiln_images_total', help: 'Images finished, by outcome', labelNames: ['model', 'outcome'], registers }),
    renderSeconds: new Histogram({
      name: 'kiln_render_seconds',
      help: 'Engine time per call, rendering only (encode, store and delivery are in kiln_stage_seconds)',
      labelNames: ['engine'],
      buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    stageSeconds: new Histogram({
      name: 'kiln_stage_seconds',
      help: 'Time per image in the stages after rendering (encode, store, deliver)',
      labelNames: ['stage'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers,
    }),
    safetyChecks: new Counter({ name: 'kiln_safety_checks_total', help: 'Safety checks, by verdict', labelNames: ['verdict'], registers }),
    safetySeconds: new Histogram({
      name: 'kiln_safety_check_seconds',
      help: 'Time per safety check (downscale + inference)',
      buckets: [0.02, 0.04, 0.06, 0.08, 0.1, 0.2, 0.5, 1, 2],
      registers,
    }),
    webhookAttempts: new Counter({ name: 'kiln_webhook_attempts_total', help: 'Webhook POST attempts', labelNames: ['outcome'], registers }),
    uploadAttempts: new Counter({ name: 'kiln_upload_attempts_total', help: 'uploadEndpoint PUT attempts', labelNames: ['outcome'], registers }),
  };
}

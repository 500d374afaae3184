import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Kiln's Prometheus metrics, on one registry served at `/metrics`. */
export interface Metrics {
  readonly registry: Registry;
  readonly tasks: Counter<'model' | 'delivery'>;
  readonly images: Counter<'model' | 'outcome'>;
  readonly renderSeconds: Histogram<'engine'>;
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
      help: 'Engine time per image call',
      labelNames: ['engine'],
      buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
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

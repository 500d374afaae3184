/**
 * Worker-thread entry: renders one job at a time. A whole image's buffer is transferred back (no
 * copy); a strip is written straight into the image's shared buffer.
 */
import { parentPort } from 'node:worker_threads';
import { renderScene } from './renderer.ts';
import type { RenderRequest, RenderResponse } from './render-job.ts';
import { planScene } from './scene-plan.ts';
import type { ScenePlan } from './scene-types.ts';

const port = parentPort;
if (!port) throw new Error('render-worker must run in a worker thread');

/** The plan of the last image this worker drew a strip of (planning is deterministic, so reusing it changes nothing). */
let lastPlan: { image: number; plan: ScenePlan } | undefined;

port.on('message', (request: RenderRequest) => {
  port.postMessage({ id: request.id, type: 'started' } satisfies RenderResponse);
  try {
    const started = performance.now();
    const { job, strip } = request;
    if (strip) {
      const plan = lastPlan?.image === strip.image ? lastPlan.plan : planScene(job);
      lastPlan = { image: strip.image, plan };
      renderScene(plan, { out: new Uint8Array(strip.buffer), x0: strip.x0, x1: strip.x1 });
      port.postMessage({ id: request.id, type: 'done', width: job.width, height: job.height, millis: performance.now() - started } satisfies RenderResponse);
      return;
    }
    lastPlan = undefined;
    const pixels = renderScene(planScene(job));
    const buffer = pixels.buffer as ArrayBuffer;
    const response: RenderResponse = { id: request.id, type: 'done', buffer, width: job.width, height: job.height, millis: performance.now() - started };
    port.postMessage(response, [buffer]);
  } catch (error) {
    port.postMessage({ id: request.id, type: 'error', message: error instanceof Error ? error.message : String(error) } satisfies RenderResponse);
  }
});

/** Worker-thread entry: renders one job at a time and transfers the pixel buffer back (no copy). */
import { parentPort } from 'node:worker_threads';
import { renderScene } from './renderer.ts';
import type { RenderRequest, RenderResponse } from './render-job.ts';
import { planScene } from './scene-plan.ts';

const port = parentPort;
if (!port) throw new Error('render-worker must run in a worker thread');

port.on('message', (request: RenderRequest) => {
  port.postMessage({ id: request.id, type: 'started' } satisfies RenderResponse);
  try {
    const started = performance.now();
    const pixels = renderScene(planScene(request.job));
    const buffer = pixels.buffer as ArrayBuffer;
    const response: RenderResponse = { id: request.id, type: 'done', buffer, width: request.job.width, height: request.job.height, millis: performance.now() - started };
    port.postMessage(response, [buffer]);
  } catch (error) {
    port.postMessage({ id: request.id, type: 'error', message: error instanceof Error ? error.message : String(error) } satisfies RenderResponse);
  }
});

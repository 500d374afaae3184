/**
 * Worker-thread entry of the safety classifier: loads nsfwjs's bundled MobileNetV2 on
 * TensorFlow.js's WASM backend once, then classifies 224×224 RGB images one message at a time.
 * Everything here is CPU-bound and synchronous inside WASM, which is why it lives off the
 * event loop. Started by `worker-client.ts`; never imported by anything else.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import * as wasmBackend from '@tensorflow/tfjs-backend-wasm';
import { load, type NSFWJS } from 'nsfwjs/core';
import { MobileNetV2Model } from 'nsfwjs/models/mobilenet_v2';
import {
  MODEL_INPUT_SIZE,
  NSFW_CLASSES,
  type ClassifyRequest,
  type NsfwClass,
  type NsfwProbabilities,
  type WorkerMessage,
  type WorkerOptions,
} from './safety-protocol.ts';

const port = parentPort;
if (port === null) throw new Error('safety-worker.ts must run in a worker thread');
const options = (workerData as { options: WorkerOptions }).options;

const startedAt = performance.now();
const model = await loadModel(options);
const neutral = new Uint8Array(MODEL_INPUT_SIZE * MODEL_INPUT_SIZE * 3).fill(128);
for (let run = 0; run < options.warmUpRuns; run += 1) await classify(model, neutral);
post({ type: 'ready', backend: tf.getBackend(), loadMs: Math.round(performance.now() - startedAt) });

port.on('message', (request: ClassifyRequest) => {
  void handle(request);
});

async function handle(request: ClassifyRequest): Promise<void> {
  const started = performance.now();
  try {
    const probabilities = await classify(model, request.pixels);
    post({ type: 'result', id: request.id, probabilities, inferenceMs: performance.now() - started });
  } catch (error) {
    post({ type: 'failed', id: request.id, message: error instanceof Error ? error.message : String(error) });
  }
}

async function loadModel({ wasmDirectory }: WorkerOptions): Promise<NSFWJS> {
  // Node has no fetch-free path for the .wasm files unless given a directory: Emscripten then
  // reads them with fs. Node's WASM has no shared-memory threads here, so XNNPACK runs on this
  // one thread (the SIMD build), which is what "one thread per check" asks for.
  wasmBackend.setWasmPaths(wasmDirectory);
  wasmBackend.setThreadsCount(1);
  if (!(await tf.setBackend('wasm'))) throw new Error('TensorFlow.js WASM backend failed to initialise');
  await tf.ready();
  tf.enableProdMode();
  // nsfwjs announces the model it loads on console.info; that line would reach the server log.
  const info = console.info;
  console.info = () => {};
  try {
    // The weights come from the JS bundles inside the nsfwjs package: no network access.
    return await load('MobileNetV2', { modelDefinitions: [MobileNetV2Model] });
  } finally {
    console.info = info;
  }
}

async function classify(nsfw: NSFWJS, pixels: Uint8Array): Promise<NsfwProbabilities> {
  if (pixels.length !== MODEL_INPUT_SIZE * MODEL_INPUT_SIZE * 3) {
    throw new Error(`expected ${MODEL_INPUT_SIZE}×${MODEL_INPUT_SIZE} RGB pixels, got ${pixels.length} bytes`);
  }
  const image = tf.tensor3d(pixels, [MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3], 'int32');
  try {
    const predictions = await nsfw.classify(image, NSFW_CLASSES.length);
    const probabilities = Object.fromEntries(NSFW_CLASSES.map((name) => [name, 0])) as Record<NsfwClass, number>;
    // nsfwjs's typings lose `className` under NodeNext resolution (it is `any`); check it.
    for (const { className, probability } of predictions) {
      if (!NSFW_CLASSES.includes(className as NsfwClass)) throw new Error(`unexpected model class ${String(className)}`);
      probabilities[className as NsfwClass] = probability;
    }
    return probabilities;
  } finally {
    image.dispose();
  }
}

function post(message: WorkerMessage): void {
  port?.postMessage(message);
}

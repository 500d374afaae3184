import type { EncodedImage, GenerateCall, ImageFormat } from '../spec/image-engine.ts';
import type { UpstreamTask } from './upstream-transport.ts';

const FORMAT_NAME: Readonly<Record<ImageFormat, string>> = { jpg: 'JPG', png: 'PNG', webp: 'WEBP' };
const MIME: Readonly<Record<ImageFormat, string>> = { jpg: 'image/jpeg', png: 'image/png', webp: 'image/webp' };

/** An image as a data URI, the inline input form every Runware client accepts. */
export function toDataUri(image: EncodedImage): string {
  return `data:${MIME[image.format]};base64,${Buffer.from(image.bytes).toString('base64')}`;
}

export interface InferencePlan {
  readonly task: UpstreamTask;
  /** Images the upstream task makes (a series makes `seriesAmount`, whatever the call's slots). */
  readonly expected: number;
  /** Kiln extensions passed through that the hosted API may not accept (to log). */
  readonly extensions: readonly string[];
}

/**
 * The upstream `imageInference` task for one call: async delivery (polled, so long jobs survive
 * socket drops), base64 output (or URLs) in the call's format, cost included, references inline.
 */
export function buildInferenceTask(
  call: GenerateCall,
  taskUUID: string,
  options: { readonly sendSeed: boolean; readonly outputType?: 'base64Data' | 'URL' },
): InferencePlan {
  const series = call.seriesAmount !== undefined;
  const extensions: string[] = [];
  const inputs: Record<string, unknown> = {};
  if (call.referenceImages.length > 0) inputs.referenceImages = call.referenceImages.map((image) => toDataUri(image.encoded));
  if (call.elements.length > 0) {
    inputs.elements = call.elements.map((element) => ({
      frontalImage: toDataUri(element.frontal.encoded),
      ...(element.views.length > 0 ? { referenceImages: element.views.map((view) => toDataUri(view.encoded)) } : {}),
    }));
    extensions.push('inputs.elements');
  }
  const task: Record<string, unknown> = {
    taskType: 'imageInference',
    taskUUID,
    model: call.model,
    positivePrompt: call.prompt,
    width: call.width,
    height: call.height,
    // A series is one request that makes `seriesAmount` images (numberResults must be 1).
    numberResults: series ? 1 : call.images.length,
    deliveryMethod: 'async',
    outputType: options.outputType ?? 'base64Data',
    outputFormat: FORMAT_NAME[call.output.format],
    outputQuality: Math.min(99, Math.max(20, Math.round(call.output.quality))),
    includeCost: true,
  };
  const first = call.images[0];
  // Kiln's seed rule (result k uses seed + k) matches the call's slots when they are consecutive.
  if (options.sendSeed && first) task.seed = first.seed;
  if (Object.keys(inputs).length > 0) task.inputs = inputs;
  if (series) {
    task.providerSettings = { klingai: { resultType: 'series', seriesAmount: call.seriesAmount } };
    extensions.push('providerSettings.klingai (series)');
  }
  return { task: task as UpstreamTask, expected: series ? (call.seriesAmount ?? 1) : call.images.length, extensions };
}

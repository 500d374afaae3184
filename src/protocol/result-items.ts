import type { OutputFormat, OutputType } from './task-types.ts';

const MIME_OF: Readonly<Record<OutputFormat, string>> = { JPG: 'image/jpeg', PNG: 'image/png', WEBP: 'image/webp' };

/** What one finished image needs to become a result item (runware-protocol.md §4.3.3). */
export interface ResultItemInput {
  readonly taskUUID: string;
  readonly imageUUID: string;
  readonly seed: number;
  readonly outputType: OutputType;
  readonly outputFormat: OutputFormat;
  /** Required for `URL` outputs. */
  readonly imageURL?: string;
  /** Required for `dataURI` and `base64Data` outputs. */
  readonly bytes?: Uint8Array;
  /** Present only when the task asked for `includeCost`. */
  readonly cost?: number;
  /** Present only when a safety check ran. */
  readonly nsfw?: boolean;
  readonly seriesIndex?: number;
  /** `"success"` in `getResponse` answers; absent in sync replies. */
  readonly status?: 'success';
}

export function buildResultItem(input: ResultItemInput): Record<string, unknown> {
  const item: Record<string, unknown> = {
    taskType: 'imageInference',
    taskUUID: input.taskUUID,
    imageUUID: input.imageUUID,
  };
  if (input.status) item.status = input.status;
  switch (input.outputType) {
    case 'URL':
      item.imageURL = input.imageURL;
      break;
    case 'base64Data':
      item.imageBase64Data = Buffer.from(input.bytes ?? []).toString('base64');
      break;
    case 'dataURI':
      item.imageDataURI = `data:${MIME_OF[input.outputFormat]};base64,${Buffer.from(input.bytes ?? []).toString('base64')}`;
      break;
  }
  item.seed = input.seed;
  if (input.seriesIndex !== undefined) item.seriesIndex = input.seriesIndex;
  if (input.cost !== undefined) item.cost = input.cost;
  if (input.nsfw !== undefined) item.NSFWContent = input.nsfw;
  return item;
}

/** The immediate answer to an async (or webhook) task: one item per task, whatever `numberResults` is. */
export function ackItem(taskUUID: string): Record<string, unknown> {
  return { taskType: 'imageInference', taskUUID };
}

/** A `getResponse` placeholder for an image still being made. */
export function processingItem(taskUUID: string): Record<string, unknown> {
  return { taskType: 'imageInference', taskUUID, status: 'processing' };
}

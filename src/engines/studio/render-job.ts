/** What the main thread sends a render worker: plain, structured-cloneable data. */
import type { Thumbnail } from './references.ts';

export interface RenderJob {
  readonly prompt: string;
  readonly width: number;
  readonly height: number;
  /** The image's own seed: layout of a single image, the moment within a series. */
  readonly seed: number;
  /** The task's seed: the world shared by a series. */
  readonly taskSeed: number;
  readonly seriesIndex?: number;
  readonly seriesAmount?: number;
  /** Reference images, downsampled to at most 64 px on the long side. */
  readonly references: readonly Thumbnail[];
  /** Element frontal images (decoded RGB, at most 1024 px on the long side). */
  readonly elements: readonly Thumbnail[];
}

export interface RenderRequest {
  readonly id: number;
  readonly job: RenderJob;
}

export type RenderResponse =
  | { readonly id: number; readonly type: 'started' }
  | { readonly id: number; readonly type: 'done'; readonly buffer: ArrayBuffer; readonly width: number; readonly height: number; readonly millis: number }
  | { readonly id: number; readonly type: 'error'; readonly message: string };

/**
 * What `tasks/` needs from the layers beside it, as small interfaces that `compose.ts` fills.
 */
import type { EncodedImage, ImageEngine, InputElement, InputImage } from '../engines/spec/image-engine.ts';
import type { ElementRequest } from '../protocol/task-types.ts';
import type { DeliveryRecord } from '../store/task-store.ts';

/** Maps a model id to the engine that serves it (configured in `compose.ts`). */
export interface EngineRegistry {
  forModel(model: string): ImageEngine;
  /** Every engine, for shutdown. */
  all(): readonly ImageEngine[];
}

/** Resolves image references (UUID, URL, data URI, base64) into images (`inputs/`). */
export interface ImageInputs {
  /** Resolves a task's references and elements concurrently; errors name the offending item. */
  resolveTaskInputs(
    referenceImages: readonly string[],
    elements: readonly ElementRequest[],
    referencePrefix: string,
    signal: AbortSignal,
  ): Promise<{ referenceImages: InputImage[]; elements: InputElement[] }>;
  /**
   * Checks at submission what can be checked without I/O or decoding: every reference parses,
   * and image UUIDs exist and belong to the key. Throws the item's error.
   */
  precheck(referenceImages: readonly string[], elements: readonly ElementRequest[], apiKeyId: string): Promise<void>;
  /** Decodes, checks and normalises the `image` of an `imageUpload` (long side ≤ 2048). */
  normaliseUpload(image: string, signal: AbortSignal): Promise<EncodedImage>;
}

/** Classifies images for `safety.mode: "fast"` (`imaging/safety`). */
export type { SafetyChecker } from '../imaging/safety/safety-checker.ts';

/** Runs stored webhook and upload deliveries (`delivery/`). */
export interface ResultDelivery {
  /** Starts the deliveries; resolves, once the uploads among them have settled, with the uploads that failed for good. */
  dispatch(records: readonly DeliveryRecord[]): Promise<DeliveryRecord[]>;
}

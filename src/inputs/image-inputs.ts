/**
 * The `ImageInputs` port of `tasks/`, filled from the reference resolver and the stores:
 * stored-image lookup by UUID (uploads and earlier generations, unless expired), a task's
 * reference images and elements resolved together (shared dedupe, errors naming each item),
 * and `imageUpload` normalisation.
 */
import type { EncodedImage, InputElement, InputImage } from '../engines/spec/image-engine.ts';
import type { Clock } from '../shared/clock.ts';
import type { ObjectStore } from '../store/object-store.ts';
import type { TaskStore } from '../store/task-store.ts';
import type { SafeFetch } from '../net/safe-fetch.ts';
import { createReferenceResolver, type ReferenceItem, type ReferenceResolver } from './resolve-image-reference.ts';

/** An `inputs.elements[i]` item as validated by `protocol/`. */
export interface ElementReferences {
  readonly frontalImage: string;
  readonly referenceImages: readonly string[];
}

/** Settings read from the frozen `Config`. */
export interface ImageInputsConfig {
  /** `KILN_ALLOW_PRIVATE_URLS`. */
  readonly allowPrivateUrls: boolean;
  /** How long an upload lives after its last use, in ms (each use as a reference extends it). */
  readonly uploadRetentionMs: number;
  /** Largest image, decoded or downloaded. Default 10 MB. */
  readonly maxReferenceBytes?: number;
  /** Download connect timeout in ms. Default 5 000. */
  readonly fetchConnectTimeoutMs?: number;
  /** Download total timeout in ms. Default 20 000. */
  readonly fetchTotalTimeoutMs?: number;
}

export interface ImageInputsDeps {
  readonly store: Pick<TaskStore, 'getImage' | 'touchImage'>;
  readonly objects: Pick<ObjectStore, 'get'>;
  readonly clock: Clock;
  readonly config: ImageInputsConfig;
  /** A shared HTTP client; without one the inputs own theirs (closed by `close()`). */
  readonly http?: SafeFetch;
}

export interface ImageInputs {
  resolveTaskInputs(
    referenceImages: readonly string[],
    elements: readonly ElementReferences[],
    referencePrefix: string,
    signal: AbortSignal,
  ): Promise<{ referenceImages: InputImage[]; elements: InputElement[] }>;
  normaliseUpload(image: string, signal: AbortSignal): Promise<EncodedImage>;
  close(): Promise<void>;
}

export function createImageInputs(deps: ImageInputsDeps): ImageInputs {
  const { store, objects, clock, config } = deps;

  async function loadStoredImage(imageUUID: string): Promise<Uint8Array | undefined> {
    const record = await store.getImage(imageUUID);
    const now = clock.now();
    if (!record || (record.expiresAt !== null && record.expiresAt <= now)) return undefined;
    const bytes = await objects.get(record.objectKey);
    if (bytes === undefined) return undefined;
    // Uploads live a fixed time after their last use, not after their upload.
    if (record.kind === 'upload') await store.touchImage(imageUUID, now + config.uploadRetentionMs);
    return bytes;
  }

  const resolver: ReferenceResolver = createReferenceResolver({
    loadStoredImage,
    allowPrivateUrls: config.allowPrivateUrls,
    ...(deps.http === undefined ? {} : { http: deps.http }),
    ...(config.maxReferenceBytes === undefined ? {} : { maxBytes: config.maxReferenceBytes }),
    ...(config.fetchConnectTimeoutMs === undefined ? {} : { connectTimeoutMs: config.fetchConnectTimeoutMs }),
    ...(config.fetchTotalTimeoutMs === undefined ? {} : { totalTimeoutMs: config.fetchTotalTimeoutMs }),
  });

  return {
    async resolveTaskInputs(referenceImages, elements, referencePrefix, signal) {
      const items: ReferenceItem[] = referenceImages.map((reference, i) => ({
        reference,
        parameter: `${referencePrefix}[${i}]`,
      }));
      // Element images go in the same batch so they share its dedupe and fail-fast.
      const layout = elements.map((element, e) => {
        const start = items.length;
        items.push({ reference: element.frontalImage, parameter: `inputs.elements[${e}].frontalImage` });
        element.referenceImages.forEach((reference, v) =>
          items.push({ reference, parameter: `inputs.elements[${e}].referenceImages[${v}]` }),
        );
        return { start, views: element.referenceImages.length };
      });
      const resolved = await resolver.resolveAll(items, signal);
      return {
        referenceImages: resolved.slice(0, referenceImages.length),
        elements: layout.map(({ start, views }) => ({
          frontal: resolved[start] as InputImage,
          views: resolved.slice(start + 1, start + 1 + views),
        })),
      };
    },
    normaliseUpload: (image, signal) => resolver.resolveUpload(image, 'image', signal),
    close: () => resolver.close(),
  };
}

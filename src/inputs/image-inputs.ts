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
import type { ImageRecord } from '../store/task-store.ts';
import { parseImageReference } from './parse-image-reference.ts';
import { ReferenceProblem, toItemError } from './reference-problem.ts';
import {
  createReferenceResolver,
  DEFAULT_MAX_REFERENCE_BYTES,
  type ReferenceItem,
  type ReferenceResolver,
} from './resolve-image-reference.ts';

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
  precheck(referenceImages: readonly string[], elements: readonly ElementReferences[], apiKeyId: string): Promise<void>;
  normaliseUpload(image: string, signal: AbortSignal): Promise<EncodedImage>;
  close(): Promise<void>;
}

/** Every reference of a task with the parameter path its errors name. */
function referenceItems(referenceImages: readonly string[], elements: readonly ElementReferences[], prefix: string): ReferenceItem[] {
  const items: ReferenceItem[] = referenceImages.map((reference, i) => ({ reference, parameter: `${prefix}[${i}]` }));
  elements.forEach((element, e) => {
    items.push({ reference: element.frontalImage, parameter: `inputs.elements[${e}].frontalImage` });
    element.referenceImages.forEach((reference, v) => items.push({ reference, parameter: `inputs.elements[${e}].referenceImages[${v}]` }));
  });
  return items;
}

export function createImageInputs(deps: ImageInputsDeps): ImageInputs {
  const { store, objects, clock, config } = deps;

  const maxBytes = config.maxReferenceBytes ?? DEFAULT_MAX_REFERENCE_BYTES;

  async function findStoredImage(imageUUID: string): Promise<ImageRecord | undefined> {
    const record = await store.getImage(imageUUID);
    return record && (record.expiresAt === null || record.expiresAt > clock.now()) ? record : undefined;
  }

  async function loadStoredImage(imageUUID: string): Promise<Uint8Array | undefined> {
    const record = await findStoredImage(imageUUID);
    const now = clock.now();
    if (!record) return undefined;
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
    async precheck(referenceImages, elements, apiKeyId) {
      for (const { reference, parameter } of referenceItems(referenceImages, elements, 'inputs.referenceImages')) {
        let parsed;
        try {
          parsed = parseImageReference(reference, maxBytes);
        } catch (error) {
          if (error instanceof ReferenceProblem) throw toItemError(error, parameter, 'reference');
          throw error;
        }
        if (parsed.kind !== 'uuid') continue;
        const record = await findStoredImage(parsed.imageUUID);
        // An image no key owns (none should exist) is nobody's to reuse either.
        if (!record || record.apiKeyId !== apiKeyId) {
          throw toItemError(
            new ReferenceProblem('invalid', `No image with imageUUID '${parsed.imageUUID}' exists: upload it with imageUpload first, or it has expired.`),
            parameter,
            'reference',
          );
        }
      }
    },
    async resolveTaskInputs(referenceImages, elements, referencePrefix, signal) {
      // Element images go in the same batch so they share its dedupe and fail-fast.
      const items = referenceItems(referenceImages, elements, referencePrefix);
      let next = referenceImages.length;
      const layout = elements.map((element) => {
        const start = next;
        next += 1 + element.referenceImages.length;
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

/**
 * Resolves image references (UUID of a stored image, http(s) URL, data URI, bare base64) to
 * images the engines can use, with the limits of `kiln-extensions.md`: at most `maxBytes`
 * (10 MB) decoded or downloaded, JPG / PNG / WEBP (GIF and BMP for `imageUpload`), each side
 * ≥ 300 px and aspect within 1:2.5 … 2.5:1 for references, safe outbound fetches.
 */
import type { EncodedImage, InputImage } from '../engines/spec/image-engine.ts';
import { decodeInputImage, normalizeUploadImage, type DecodeInputOptions } from '../imaging/decode-input.ts';
import { createSafeFetch, type SafeFetch } from '../net/safe-fetch.ts';
import { parseImageReference } from './parse-image-reference.ts';
import { ReferenceProblem, toItemError, toReferenceProblem, type ReferencePurpose } from './reference-problem.ts';

/** What the resolver needs from the rest of the server. */
export interface ReferenceResolverDeps {
  /** Bytes of a stored image (an upload or an earlier generation), `undefined` when unknown or expired. UUIDs arrive lower-cased. */
  loadStoredImage(imageUUID: string): Promise<Uint8Array | undefined>;
  /** Allow URLs on loopback / private / link-local addresses (`KILN_ALLOW_PRIVATE_URLS`). */
  readonly allowPrivateUrls: boolean;
  /** Largest image accepted, decoded from base64 or downloaded. Default 10 MB (10 × 1024 × 1024). */
  readonly maxBytes?: number;
  /** Resolve-and-connect timeout of a download, in ms. Default 5 000. */
  readonly connectTimeoutMs?: number;
  /** Total time of one download, redirects and body included, in ms. Default 20 000. */
  readonly totalTimeoutMs?: number;
  /** A shared HTTP client; when absent the resolver makes one and closes it in `close()`. */
  readonly http?: SafeFetch;
  /** Overrides of the reference-image rules (min side, aspect, pixel limits). */
  readonly decode?: DecodeInputOptions;
}

/** One reference with the parameter path its errors name, e.g. `inputs.referenceImages[2]`. */
export interface ReferenceItem {
  readonly reference: string;
  readonly parameter: string;
}

/**
 * Every method fails with `ApiError` only (internal faults aside): `invalidReferenceImage`
 * (`invalidImage` for uploads), `imageFetchFailed` or `taskCancelled`, with `parameter` set.
 */
export interface ReferenceResolver {
  /** Resolves one reference image. */
  resolve(reference: string, parameter: string, signal?: AbortSignal): Promise<InputImage>;
  /**
   * Resolves several references at once, in order. The same UUID, URL or inline string is
   * resolved once. The first failure aborts the rest and is thrown.
   */
  resolveAll(items: readonly ReferenceItem[], signal?: AbortSignal): Promise<InputImage[]>;
  /** `resolveAll` for a plain list: item *i* is named `<parameterPrefix>[i]`. */
  resolveList(references: readonly string[], parameterPrefix: string, signal?: AbortSignal): Promise<InputImage[]>;
  /** The `image` of `imageUpload`: loaded like a reference, normalised for storage (long side ≤ 2048). */
  resolveUpload(reference: string, parameter: string, signal?: AbortSignal): Promise<EncodedImage>;
  close(): Promise<void>;
}

export const DEFAULT_MAX_REFERENCE_BYTES = 10 * 1024 * 1024;

/** Media types that may carry an image; anything else (text/html, JSON) is refused before sniffing. */
const IMAGE_CONTENT_TYPE = /^(image\/|application\/octet-stream|binary\/octet-stream)/i;

export function createReferenceResolver(deps: ReferenceResolverDeps): ReferenceResolver {
  const maxBytes = deps.maxBytes ?? DEFAULT_MAX_REFERENCE_BYTES;
  const ownsHttp = deps.http === undefined;
  const http =
    deps.http ??
    createSafeFetch({
      allowPrivate: deps.allowPrivateUrls,
      maxBytes,
      ...(deps.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: deps.connectTimeoutMs }),
      ...(deps.totalTimeoutMs === undefined ? {} : { totalTimeoutMs: deps.totalTimeoutMs }),
    });

  /** Loads the bytes of any form. Fails with `ReferenceProblem`. */
  async function loadBytes(reference: string, signal: AbortSignal | undefined): Promise<Uint8Array> {
    const parsed = parseImageReference(reference, maxBytes);
    switch (parsed.kind) {
      case 'inline':
        return parsed.bytes;
      case 'uuid': {
        const bytes = await deps.loadStoredImage(parsed.imageUUID);
        if (bytes === undefined) {
          throw new ReferenceProblem(
            'invalid',
            `No image with imageUUID '${parsed.imageUUID}' exists: upload it with imageUpload first, or it has expired.`,
          );
        }
        return bytes;
      }
      case 'url':
        return download(parsed.url, signal);
    }
  }

  async function download(url: string, signal: AbortSignal | undefined): Promise<Uint8Array> {
    const response = await http.request(url, {
      allowPrivate: deps.allowPrivateUrls,
      maxBytes,
      headers: { accept: 'image/jpeg, image/png, image/webp, image/*;q=0.8' },
      ...(signal === undefined ? {} : { signal }),
      ...(deps.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: deps.connectTimeoutMs }),
      ...(deps.totalTimeoutMs === undefined ? {} : { totalTimeoutMs: deps.totalTimeoutMs }),
    });
    const type = response.headers['content-type']?.split(';')[0]?.trim() ?? '';
    if (type !== '' && !IMAGE_CONTENT_TYPE.test(type)) {
      throw new ReferenceProblem('invalid', `The URL returned ${type.slice(0, 60)}, not an image.`);
    }
    return response.body;
  }

  /** Resolves one reference to a decoded image; fails with `ReferenceProblem`. */
  async function resolveShared(reference: string, signal: AbortSignal | undefined): Promise<InputImage> {
    try {
      const bytes = await loadBytes(reference, signal);
      if (signal?.aborted) throw new ReferenceProblem('cancelled', 'The task was cancelled.');
      return await decodeInputImage(bytes, deps.decode ?? {});
    } catch (error) {
      throw toReferenceProblem(error, maxBytes);
    }
  }

  function asItemError(parameter: string, purpose: ReferencePurpose) {
    return (error: unknown): never => {
      if (error instanceof ReferenceProblem) throw toItemError(error, parameter, purpose);
      throw error;
    };
  }

  async function resolveAll(items: readonly ReferenceItem[], signal?: AbortSignal): Promise<InputImage[]> {
    // One failure is enough to fail the task: stop the other downloads instead of waiting.
    const controller = new AbortController();
    const combined = signal ? AbortSignal.any([signal, controller.signal]) : controller.signal;
    const shared = new Map<string, Promise<InputImage>>();
    const pending = items.map(({ reference, parameter }) => {
      const key = dedupeKey(reference);
      let work = shared.get(key);
      if (!work) {
        work = resolveShared(reference, combined);
        shared.set(key, work);
      }
      return work.catch(asItemError(parameter, 'reference'));
    });
    try {
      return await Promise.all(pending);
    } catch (error) {
      controller.abort();
      throw error;
    }
  }

  return {
    resolve: (reference, parameter, signal) =>
      resolveShared(reference, signal).catch(asItemError(parameter, 'reference')),
    resolveAll,
    resolveList: (references, prefix, signal) =>
      resolveAll(
        references.map((reference, index) => ({ reference, parameter: `${prefix}[${index}]` })),
        signal,
      ),
    async resolveUpload(reference, parameter, signal) {
      try {
        return await normalizeUploadImage(await loadBytes(reference, signal));
      } catch (error) {
        return asItemError(parameter, 'upload')(toReferenceProblem(error, maxBytes));
      }
    },
    async close() {
      if (ownsHttp) await http.close();
    },
  };
}

/** Identical UUIDs (any case) and identical URLs or inline strings resolve once per task. */
function dedupeKey(reference: string): string {
  const text = reference.trim();
  return /^[0-9a-f-]{36}$/i.test(text) ? text.toLowerCase() : text;
}

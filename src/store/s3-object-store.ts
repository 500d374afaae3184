import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { maskUrl } from '../shared/service-url.ts';
import { assertSafeKey, type ObjectStore } from './object-store.ts';

/** Where an {@link S3ObjectStore} keeps its objects and how long it waits for S3. */
export interface S3ObjectStoreOptions {
  /** The bucket; it must exist already ({@link S3ObjectStore.check} says so at start-up). */
  bucket: string;
  /** An S3-compatible endpoint such as `http://127.0.0.1:9000`. Default: AWS S3 for `region`. */
  endpoint?: string;
  /** Default `us-east-1`, which S3-compatible servers accept whatever their location. */
  region?: string;
  /** `bucket` in the path instead of the host name, as most S3-compatible servers need. Default `false`. */
  forcePathStyle?: boolean;
  /** Put in front of every key as given, e.g. `kiln/` to share a bucket. Default: none. */
  prefix?: string;
  /** Per attempt: how long to wait for the TCP (or TLS) connection. Default 3 000 ms. */
  connectTimeoutMs?: number;
  /** Per attempt: how long a socket may stay silent, also while an opened stream is read. Default 15 000 ms. */
  idleTimeoutMs?: number;
  /**
   * The whole call, retries included: `put`, `get`, `delete` and `check` until done, `open` until
   * the response starts (the stream itself is bounded by `idleTimeoutMs`). Default 60 000 ms.
   */
  operationTimeoutMs?: number;
}

const CONTENT_TYPE: Readonly<Record<string, string>> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
};

function contentTypeOf(key: string): string {
  const dot = key.lastIndexOf('.');
  return (dot > 0 && CONTENT_TYPE[key.slice(dot + 1).toLowerCase()]) || 'application/octet-stream';
}

/**
 * True for the answers S3 and its look-alikes give for a missing key or, to HeadBucket, a
 * missing bucket (a HEAD answer has no body, so only its 404 tells). A missing bucket under a
 * GET is a fault, not an absent object.
 */
function isMissing(error: unknown): boolean {
  if (!(error instanceof S3ServiceException) || error.name === 'NoSuchBucket') return false;
  return error.name === 'NoSuchKey' || error.$metadata.httpStatusCode === 404;
}

/** One short phrase for an SDK or socket error; an `AggregateError` (IPv4 and IPv6 both refused) has an empty message. */
function describe(error: unknown): string {
  if (error instanceof S3ServiceException) {
    const status = error.$metadata.httpStatusCode;
    return `${error.name}${status ? ` (HTTP ${status})` : ''}${error.message && error.message !== error.name ? `: ${error.message}` : ''}`;
  }
  if (error instanceof AggregateError && error.errors.length > 0) return describe(error.errors[0]);
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return [code ?? error.name, error.message].filter(Boolean).join(': ');
  }
  return String(error);
}

/**
 * The `ObjectStore` port on S3 or an S3-compatible server. Credentials come from the AWS SDK's
 * default chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profiles, …), never from options.
 * Every call is bounded in time (see the `*TimeoutMs` options) and rejects with an `Error`
 * naming the bucket and endpoint; a missing key is `undefined`, not an error.
 */
export class S3ObjectStore implements ObjectStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly where: string;
  private readonly operationTimeoutMs: number;
  private closed = false;

  constructor(options: S3ObjectStoreOptions) {
    const region = options.region ?? 'us-east-1';
    this.bucket = options.bucket;
    this.prefix = options.prefix ?? '';
    // Shown in errors as given, unless it carries credentials.
    this.where = options.endpoint
      ? /\/\/[^/]*@/.test(options.endpoint)
        ? maskUrl(options.endpoint)
        : options.endpoint
      : `AWS S3 (${region})`;
    this.operationTimeoutMs = options.operationTimeoutMs ?? 60_000;
    this.client = new S3Client({
      region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.forcePathStyle ?? false,
      // The SDK's default (WHEN_SUPPORTED) sends bodies aws-chunked with trailing checksums;
      // servers that do not speak that framing (s3rver, older MinIO) store the framing as data.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // From 2 MB (a large JPG or PNG) the SDK asks for "100-continue" and sends such a request on
      // a connection of its own: a round trip and a TCP handshake more per image (3 MB objects
      // 1.5 ms slower on loopback). Kiln writes to a bucket it has checked, with credentials that
      // work, so the early refusal the header could save is not worth paying for on every image.
      expectContinueHeader: false,
      // Options rather than a NodeHttpHandler instance: the SDK builds its own handler from them,
      // so Kiln need not import @smithy/node-http-handler, which it does not depend on directly.
      requestHandler: {
        connectionTimeout: options.connectTimeoutMs ?? 3_000,
        socketTimeout: options.idleTimeoutMs ?? 15_000,
        // A per-attempt bound up to the response headers; without throwOnRequestTimeout the
        // handler would only log a warning and keep waiting.
        requestTimeout: this.operationTimeoutMs,
        throwOnRequestTimeout: true,
      },
    });
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    const Key = this.objectKey(key);
    // A Buffer view of the same memory: no copy, and the SDK sends it in one piece with its length.
    const Body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    await this.call(
      (abortSignal) =>
        this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key,
            Body,
            ContentLength: Body.byteLength,
            ContentType: contentTypeOf(key),
          }),
          { abortSignal },
        ),
      this.failed('put', key),
    );
  }

  async get(key: string): Promise<Buffer | undefined> {
    const Key = this.objectKey(key);
    return this.call(async (abortSignal) => {
      try {
        const output = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }), { abortSignal });
        if (!output.Body) throw new Error('GetObject answered without a body');
        const bytes = await output.Body.transformToByteArray();
        return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      } catch (error) {
        if (isMissing(error)) return undefined;
        throw error;
      }
    }, this.failed('get', key));
  }

  async open(key: string): Promise<{ stream: Readable; bytes: number } | undefined> {
    const Key = this.objectKey(key);
    return this.call(async (abortSignal) => {
      try {
        const output = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }), { abortSignal });
        const body = output.Body;
        if (!(body instanceof Readable)) throw new Error('GetObject answered without a Node stream body');
        if (output.ContentLength === undefined) {
          body.destroy();
          throw new Error('GetObject answered without a Content-Length');
        }
        return { stream: body, bytes: output.ContentLength };
      } catch (error) {
        if (isMissing(error)) return undefined;
        throw error;
      }
    }, this.failed('open', key));
  }

  async delete(key: string): Promise<void> {
    const Key = this.objectKey(key);
    await this.call(async (abortSignal) => {
      try {
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }), { abortSignal });
      } catch (error) {
        // S3 answers 204 for a missing key; some look-alikes answer 404.
        if (!isMissing(error)) throw error;
      }
    }, this.failed('delete', key));
  }

  /**
   * Resolves when the bucket exists and the credentials may reach it; otherwise rejects with a
   * one-line Error naming the bucket and endpoint. Kiln calls it at start-up to fail fast.
   */
  async check(): Promise<void> {
    await this.call(
      (abortSignal) => this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal }),
      (detail, error) => {
        const reason = isMissing(error)
          ? 'the bucket does not exist'
          : error instanceof S3ServiceException && error.$metadata.httpStatusCode === 403
            ? 'access denied (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)'
            : detail;
        return `S3 bucket "${this.bucket}" at ${this.where} is not usable: ${reason}`;
      },
    );
  }

  /** Destroys the client and its sockets; later calls reject. */
  async close(): Promise<void> {
    this.closed = true;
    this.client.destroy();
  }

  private objectKey(key: string): string {
    assertSafeKey(key);
    return this.prefix + key;
  }

  /**
   * Runs one SDK call under the operation deadline and turns its failure into an Error with the
   * message `explain` makes (by default naming the operation, key, bucket and endpoint). The
   * deadline ends when `run` settles, so an opened stream outlives it.
   */
  private async call<T>(
    run: (signal: AbortSignal) => Promise<T>,
    explain: (detail: string, error: unknown) => string,
  ): Promise<T> {
    if (this.closed) throw new Error(explain('the store is closed', undefined));
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new Error(`no answer within ${this.operationTimeoutMs} ms`)),
      this.operationTimeoutMs,
    );
    try {
      return await run(controller.signal);
    } catch (error) {
      const detail = controller.signal.aborted ? describe(controller.signal.reason) : describe(error);
      throw new Error(explain(detail, error), { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  private failed(operation: string, key: string): (detail: string) => string {
    return (detail) => `S3 ${operation} "${key}" failed (bucket "${this.bucket}" at ${this.where}): ${detail}`;
  }
}

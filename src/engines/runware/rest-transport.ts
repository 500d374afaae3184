import type { Agent } from 'undici';
import {
  abortError,
  UpstreamAuthError,
  UpstreamUnavailableError,
  type SendOptions,
  type UpstreamObject,
  type UpstreamReply,
  type UpstreamTask,
  type UpstreamTransport,
} from './upstream-transport.ts';

export interface RestTransportOptions {
  /** `http://` or `https://` URL of the upstream, e.g. `https://api.runware.ai/v1`. */
  readonly url: string;
  readonly apiKey: string;
  /** TCP + TLS connect timeout; default 10 s. */
  readonly connectTimeoutMs?: number;
  /** Largest answer read (base64 images of a 20-image 4K poll are large); default 512 MiB. */
  readonly maxResponseBytes?: number;
}

/**
 * The REST transport (runware-protocol.md §2): one `POST <url>` per task with
 * `Authorization: Bearer`, over a keep-alive pool this transport owns.
 */
export class RestTransport implements UpstreamTransport {
  readonly kind = 'rest';
  /** Made with the first task: undici loads then, not when the engine is configured (see net/safe-fetch.ts). */
  private agent: Agent | undefined;
  private closed = false;

  constructor(private readonly options: RestTransportOptions) {}

  async send(task: UpstreamTask, { timeoutMs, signal }: SendOptions): Promise<UpstreamReply> {
    if (this.closed) throw new UpstreamUnavailableError('the upstream connection is closed');
    if (signal.aborted) throw abortError();
    const { Agent, request } = await import('undici');
    if (this.closed) throw new UpstreamUnavailableError('the upstream connection is closed');
    this.agent ??= new Agent({
      connectTimeout: this.options.connectTimeoutMs ?? 10_000,
      maxResponseSize: this.options.maxResponseBytes ?? 512 * 1024 * 1024,
      keepAliveTimeout: 30_000,
    });
    const timeout = AbortSignal.timeout(timeoutMs);
    let status: number;
    let text: string;
    try {
      const response = await request(this.options.url, {
        method: 'POST',
        dispatcher: this.agent,
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${this.options.apiKey}`,
          'user-agent': 'Kiln (runware engine)',
        },
        body: JSON.stringify([task]),
        signal: AbortSignal.any([signal, timeout]),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      status = response.statusCode;
      text = await response.body.text();
    } catch (error) {
      if (signal.aborted) throw abortError();
      const reason = timeout.aborted ? `no answer within ${timeoutMs} ms` : error instanceof Error ? error.message : String(error);
      throw new UpstreamUnavailableError(`cannot reach the upstream: ${reason}`);
    }
    const reply = parseEnvelope(text, task.taskUUID);
    if (!reply) {
      // Not a Runware envelope (a proxy's error page, an empty 502…): a transport failure.
      throw new UpstreamUnavailableError(`the upstream answered HTTP ${status} without a Runware body`);
    }
    const refused = reply.errors.find((e) => e.code === 'invalidApiKey');
    if (refused) throw new UpstreamAuthError(refused);
    if (reply.data.length === 0 && reply.errors.length === 0 && (status >= 500 || status === 429)) {
      throw new UpstreamUnavailableError(`the upstream answered HTTP ${status}`);
    }
    return reply;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.agent?.close();
  }
}

/** Reads `{data?, errors?}`; keeps the items of `taskUUID` (and those with no taskUUID, e.g. auth errors). */
function parseEnvelope(text: string, taskUUID: string): UpstreamReply | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) return undefined;
  const { data, errors } = body as { data?: unknown; errors?: unknown };
  if (data === undefined && errors === undefined) return undefined;
  const mine = (item: unknown): item is UpstreamObject =>
    !!item && typeof item === 'object' && ((item as UpstreamObject).taskUUID === undefined || (item as UpstreamObject).taskUUID === taskUUID);
  const list = (value: unknown): unknown[] => (Array.isArray(value) ? value : value && typeof value === 'object' ? [value] : []);
  return { data: list(data).filter(mine), errors: list(errors).filter(mine) };
}

/**
 * Outbound HTTP that is safe to point at a URL a client chose (reference images, webhooks,
 * upload endpoints).
 *
 * - Only absolute http(s) URLs without credentials.
 * - Every address is checked where the socket resolves it (see `guarded-lookup.ts`), IP
 *   literals before the request; each redirect hop is checked again the same way.
 * - Redirects are followed by hand, at most `maxRedirects` times.
 * - Connect timeout (DNS included) and a total timeout over the whole exchange, redirects and
 *   body included.
 * - The body is capped while it streams; every body that is not returned is dumped or destroyed
 *   so no socket is left hanging.
 */
import { linkSignals } from '../shared/linked-signal.ts';
import type { Agent, Dispatcher } from 'undici';
import { checkAddress, isIpLiteral } from './address-guard.ts';
import { FetchError } from './fetch-error.ts';
import { portProblem } from './port-rule.ts';
import { blockedAddress, createGuardedLookup } from './guarded-lookup.ts';
import { toFetchError, type FailureContext } from './to-fetch-error.ts';

/** Settings shared by all requests of one `SafeFetch`; each request may override them. */
export interface SafeFetchDefaults {
  /** Allow loopback, private, link-local, CGNAT and unique-local targets. Default `false`. */
  readonly allowPrivate?: boolean;
  /** Time to resolve and connect (TLS included), in ms. Default 5 000. */
  readonly connectTimeoutMs?: number;
  /** Time for the whole request, redirects and body included, in ms. Default 20 000. */
  readonly totalTimeoutMs?: number;
  /** Largest body accepted, in bytes. Default 10 MB (10 × 1024 × 1024). */
  readonly maxBytes?: number;
  /** Redirects followed before giving up. Default 3; 0 follows none. */
  readonly maxRedirects?: number;
  /** `User-Agent` sent unless the request sets one. Default `Kiln`. */
  readonly userAgent?: string;
  /**
   * Ports a URL (and every redirect hop) may name. Default 80 and 443, so a URL cannot aim
   * Kiln at a mail server or a database on a public host. Lifted by `allowPrivate`.
   */
  readonly allowedPorts?: readonly number[];
}

/** One outbound request. Unset fields fall back to the `SafeFetchDefaults`. */
export interface SafeRequest extends SafeFetchDefaults {
  /** Default `GET`. */
  readonly method?: 'GET' | 'POST' | 'PUT';
  readonly headers?: Readonly<Record<string, string>>;
  /** Request body; kept as bytes so a 307/308 redirect can send it again. */
  readonly body?: Uint8Array | string;
  /** Cancels the request (reason `aborted`). */
  readonly signal?: AbortSignal;
  /** Statuses that count as success. Default: 200–299. Others fail with reason `httpStatus`. */
  readonly acceptStatus?: (status: number) => boolean;
  /**
   * Do not read the answer's body (webhooks, uploads): it is dropped, and the response has an
   * empty `body`, so a slow or huge body cannot hold the caller.
   */
  readonly discardBody?: boolean;
}

/** A complete response: the body has been read (within the cap) and the socket released. */
export interface SafeResponse {
  /** The URL that answered, after redirects. */
  readonly url: string;
  readonly status: number;
  /** Lower-case header names; repeated headers joined with `, `. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
  readonly redirects: number;
}

/** A client for outbound requests. Owns its connection pools; call `close()` when done. */
export interface SafeFetch {
  /** Fails with `FetchError` only. */
  request(url: string, init?: SafeRequest): Promise<SafeResponse>;
  close(): Promise<void>;
}

export const SAFE_FETCH_DEFAULTS = {
  allowPrivate: false,
  connectTimeoutMs: 5_000,
  totalTimeoutMs: 20_000,
  maxBytes: 10 * 1024 * 1024,
  maxRedirects: 3,
  userAgent: 'Kiln',
  allowedPorts: [80, 443] as readonly number[],
} as const satisfies Required<SafeFetchDefaults>;

const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
/** Headers that must not follow a redirect to another origin. */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];

type Undici = typeof import('undici');

export function createSafeFetch(defaults: SafeFetchDefaults = {}): SafeFetch {
  const base = { ...SAFE_FETCH_DEFAULTS, ...defaults };
  // One pool per (allowPrivate, connect timeout): both are baked into the connector.
  const agents = new Map<string, Agent>();
  let closed = false;

  function agentFor(Agent: Undici['Agent'], allowPrivate: boolean, connectTimeoutMs: number): Agent {
    const key = `${allowPrivate}:${connectTimeoutMs}`;
    let agent = agents.get(key);
    if (!agent) {
      agent = new Agent({
        connect: { timeout: connectTimeoutMs, lookup: createGuardedLookup(allowPrivate) },
        keepAliveTimeout: 4_000,
      });
      agents.set(key, agent);
    }
    return agent;
  }

  async function run(url: string, init: SafeRequest = {}): Promise<SafeResponse> {
    if (closed) throw new FetchError('aborted', 'The HTTP client is closed.', { url });
    // undici loads with the first request (the loader keeps it): its ~110 modules cost a process
    // about 0.1 s of CPU at start, and many never fetch (a worker without webhooks, most CLI commands).
    const { Agent, request } = await import('undici');
    // Closed while undici loaded: no pool may be made after close() has closed the others.
    if (closed) throw new FetchError('aborted', 'The HTTP client is closed.', { url });
    const options = { ...base, ...definedOnly(init) };
    const timeout = AbortSignal.timeout(options.totalTimeoutMs);
    // Not AbortSignal.any: a caller's signal may live as long as its service (see linkSignals).
    const linked = linkSignals(init.signal, timeout);
    const signal = linked.signal;
    const dispatcher = agentFor(Agent, options.allowPrivate, options.connectTimeoutMs);
    // Backstops only: the total-timeout signal normally fires first.
    const socketTimeouts = { headersTimeout: options.totalTimeoutMs, bodyTimeout: options.totalTimeoutMs };
    const acceptStatus = init.acceptStatus ?? ((status: number) => status >= 200 && status < 300);

    let current = parseTarget(url, options.allowPrivate);
    let method: 'GET' | 'POST' | 'PUT' = init.method ?? 'GET';
    let body = init.body;
    let headers: Record<string, string> = {
      'user-agent': options.userAgent,
      ...lowerCaseKeys(init.headers),
    };

    try {
      for (let redirects = 0; ; redirects++) {
        await checkPort(current, options.allowPrivate, options.allowedPorts);
        const context: FailureContext = {
          url: current.href,
          timeout,
          callerSignal: init.signal,
          totalTimeoutMs: options.totalTimeoutMs,
        };
        let response: Dispatcher.ResponseData;
        try {
          response = await request(current, { method, headers, body: body ?? null, signal, dispatcher, ...socketTimeouts });
        } catch (error) {
          throw toFetchError(error, context);
        }
        const { statusCode } = response;
        const location = response.headers.location;
        if (REDIRECT_STATUSES.has(statusCode) && typeof location === 'string' && options.maxRedirects > 0) {
          const keepsMethod = statusCode === 307 || statusCode === 308;
          if (keepsMethod || method === 'GET') {
            await discard(response.body);
            if (redirects >= options.maxRedirects) {
              throw new FetchError('tooManyRedirects', `More than ${options.maxRedirects} redirects.`, {
                url: current.href,
                status: statusCode,
              });
            }
            const next = parseTarget(resolveLocation(location, current), options.allowPrivate);
            if (next.origin !== current.origin) headers = withoutCredentials(headers);
            if (!keepsMethod) body = undefined;
            method = keepsMethod ? method : 'GET';
            current = next;
            continue;
          }
        }
        if (!acceptStatus(statusCode)) {
          await discard(response.body);
          throw new FetchError('httpStatus', `The server answered HTTP ${statusCode}.`, {
            url: current.href,
            status: statusCode,
          });
        }
        if (init.discardBody) {
          // Not even drained: a receiver that dribbles or floods its answer cannot hold the caller.
          // Destroying emits an abort error on the stream; nobody reads it, so it is swallowed here.
          response.body.on('error', () => {});
          response.body.destroy();
          return { url: current.href, status: statusCode, headers: flattenHeaders(response.headers), body: new Uint8Array(0), redirects };
        }
        const bytes = await readCapped(response, options.maxBytes, context);
        const flat = flattenHeaders(response.headers);
        return { url: current.href, status: statusCode, headers: flat, body: bytes, redirects };
      }
    } finally {
      linked.dispose();
    }
  }

  return {
    request: run,
    async close() {
      closed = true;
      await Promise.all([...agents.values()].map((agent) => agent.close()));
      agents.clear();
    },
  };
}

/** Parses and checks a URL: scheme, credentials, and IP literals (host names are checked at connect). */
function parseTarget(text: string, allowPrivate: boolean): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new FetchError('badUrl', 'The URL is not a valid absolute URL.');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FetchError('badUrl', `Only http and https URLs are allowed, not ${url.protocol.slice(0, -1)}.`, {
      url: url.href,
    });
  }
  if (url.username !== '' || url.password !== '') {
    throw new FetchError('badUrl', 'URLs with credentials are not allowed.', { url: url.origin });
  }
  if (isIpLiteral(url.hostname)) {
    const verdict = checkAddress(url.hostname, allowPrivate);
    if (!verdict.allowed) {
      const error = blockedAddress(url.hostname, url.hostname, verdict.range);
      throw new FetchError('blockedAddress', error.message, { url: url.href, address: url.hostname });
    }
  }
  return url;
}

/**
 * The port rule (`allowedPorts`), checked after the address rule so that a loopback or private
 * target is reported as such whatever its port: a host name on a refused port is resolved
 * (through the same guarded lookup) before the port error is raised.
 */
async function checkPort(url: URL, allowPrivate: boolean, allowedPorts: readonly number[]): Promise<void> {
  const refused = portProblem(url.href, allowPrivate, allowedPorts);
  if (!refused) return;
  if (!isIpLiteral(url.hostname)) {
    const lookup = createGuardedLookup(allowPrivate);
    await new Promise<void>((resolve, reject) =>
      lookup(url.hostname, { all: true }, (error) => {
        if (error instanceof FetchError) reject(new FetchError(error.reason, error.message, { url: url.href, ...(error.address === undefined ? {} : { address: error.address }) }));
        else resolve();
      }),
    );
  }
  throw new FetchError('badUrl', refused, { url: url.href });
}

function resolveLocation(location: string, base: URL): string {
  try {
    return new URL(location, base).href;
  } catch {
    throw new FetchError('tooManyRedirects', 'A redirect pointed at an invalid URL.', { url: base.href });
  }
}

async function readCapped(
  response: Dispatcher.ResponseData,
  maxBytes: number,
  context: FailureContext,
): Promise<Uint8Array> {
  const tooLarge = () =>
    new FetchError('tooLarge', `The response is larger than ${maxBytes} bytes.`, { url: context.url });
  const declared = Number(response.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    response.body.destroy();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of response.body) {
      const buffer = chunk as Buffer;
      total += buffer.length;
      // Leaving the loop early destroys the stream, which closes the connection.
      if (total > maxBytes) throw tooLarge();
      chunks.push(buffer);
    }
  } catch (error) {
    response.body.destroy();
    throw toFetchError(error, context);
  }
  return new Uint8Array(Buffer.concat(chunks, total));
}

/** Reads and drops a small body so the connection can be reused; destroys a large one. */
async function discard(body: Dispatcher.ResponseData['body']): Promise<void> {
  try {
    await body.dump({ limit: 64 * 1024 });
  } catch {
    body.destroy();
  }
}

function flattenHeaders(headers: Dispatcher.ResponseData['headers']): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    flat[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return flat;
}

function lowerCaseKeys(headers: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) out[name.toLowerCase()] = value;
  return out;
}

function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  const copy = { ...headers };
  for (const name of CREDENTIAL_HEADERS) delete copy[name];
  return copy;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

import { availableParallelism } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { Role } from './roles.ts';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const list = z.string().transform((v) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0),
);

/** A comma-separated list of durations: `250ms`, `5s`, `2m`, `1h` (a bare number is milliseconds). */
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;
const durations = list
  .pipe(z.array(z.string().regex(DURATION, 'must be durations like 5s, 2m, 1h, 250ms')).min(1, 'must list at least one duration'))
  .transform((items) =>
    items.map((item) => {
      const [, amount, unit] = DURATION.exec(item)!;
      return Math.round(Number(amount) * UNIT_MS[(unit ?? 'ms') as keyof typeof UNIT_MS]);
    }),
  );

/** Shortest key KILN_API_KEYS may list: a short key is guessable despite the auth-failure throttle. */
export const MIN_API_KEY_LENGTH = 32;

/**
 * Every environment variable Kiln reads, with its default. `docs/configuration.md` documents
 * the same list; keep them in step.
 */
const envSchema = z.object({
  KILN_PORT: int(0, 65535).default(8080),
  KILN_HOST: z.string().min(1).default('0.0.0.0'),
  KILN_DATA_DIR: z.string().min(1).default('./data'),
  KILN_PUBLIC_URL: z.url().optional(),
  KILN_API_KEYS: list
    .refine((keys) => keys.every((key) => key.length >= MIN_API_KEY_LENGTH), {
      message: `every key must be at least ${MIN_API_KEY_LENGTH} characters (make one with \`kiln keys create\`)`,
    })
    .optional(),
  KILN_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  KILN_MAX_BODY_MB: int(1, 1024).default(64),
  // Tasks in progress at once; rendering and encoding have their own per-core slots inside
  // (tasks/stage-slots.ts), so more tasks than cores keep every stage fed.
  KILN_QUEUE_CONCURRENCY: int(1, 64).default(Math.min(64, 4 * Math.max(1, availableParallelism()))),
  KILN_QUEUE_MAX: int(1, 10_000_000).default(1000),
  KILN_QUEUE_LOCK_SECONDS: int(2, 3600).default(30),
  // Per-key defaults for keys without their own limits (docs/tenancy.md); unset: unlimited.
  KILN_KEY_MAX_CONCURRENT_IMAGES: int(1, 10_000_000).optional(),
  KILN_KEY_MAX_QUEUED_IMAGES: int(0, 10_000_000).optional(),
  KILN_KEY_RATE: z.coerce.number().positive().max(1_000_000).optional(),
  KILN_WARMUP: bool.default(true),
  KILN_JPEG_OPTIMIZE_CODING: bool.default(true),
  KILN_IMAGE_THREADS: int(1, 64).default(1),
  KILN_IDEMPOTENT_RESUBMIT: bool.default(true),
  KILN_TRUST_PROXY: bool.default(false),
  KILN_CORS_ORIGINS: list.optional(),
  KILN_DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\/./, 'must be a postgres:// URL').optional(),
  KILN_DATABASE_POOL: int(1, 200).default(10),
  KILN_DATABASE_PREPARED: bool.default(true),
  KILN_REDIS_URL: z.string().regex(/^rediss?:\/\/./, 'must be a redis:// or rediss:// URL').optional(),
  KILN_REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9_-]{1,40}$/, 'letters, digits, _ and - only').default('kiln'),
  KILN_S3_BUCKET: z.string().min(3).max(63).optional(),
  KILN_S3_ENDPOINT: z.url().optional(),
  KILN_S3_REGION: z.string().min(1).default('us-east-1'),
  KILN_S3_FORCE_PATH_STYLE: bool.default(false),
  KILN_S3_PREFIX: z.string().regex(/^[A-Za-z0-9._-]*$/, 'letters, digits, . _ and - only').default(''),
  KILN_STUDIO_THREADS: int(1, 64).default(Math.max(1, availableParallelism())),
  KILN_WS_IDLE_SECONDS: int(1, 86_400).default(120),
  KILN_WS_HEARTBEAT_SECONDS: int(0, 3600).default(30),
  KILN_WS_RESUME_SECONDS: int(1, 86_400).default(120),
  KILN_SYNC_TIMEOUT_SECONDS: int(1, 86_400).default(600),
  KILN_RETENTION_HOURS: int(1, 24 * 365).default(24),
  KILN_UPLOAD_RETENTION_DAYS: int(1, 3650).default(30),
  KILN_ALLOW_PRIVATE_URLS: bool.default(false),
  KILN_SWEEP_SECONDS: int(1, 86_400).default(60),
  KILN_SHUTDOWN_DRAIN_SECONDS: int(0, 3600).default(20),
  KILN_FETCH_CONNECT_TIMEOUT_MS: int(100, 60_000).default(5_000),
  KILN_FETCH_TOTAL_TIMEOUT_MS: int(100, 600_000).default(20_000),
  KILN_MAX_REFERENCE_MB: int(1, 100).default(10),
  KILN_WEBHOOK_SECRET: z.string().regex(/^whsec_[A-Za-z0-9+/=]{32,}$/, 'must be whsec_ followed by base64 of at least 24 bytes').optional(),
  KILN_WEBHOOK_MAX_ATTEMPTS: int(1, 100).default(14),
  KILN_WEBHOOK_TIMEOUT_MS: int(100, 120_000).default(5_000),
  KILN_UPLOAD_MAX_ATTEMPTS: int(1, 100).default(14),
  KILN_UPLOAD_TIMEOUT_MS: int(100, 600_000).default(60_000),
  // 5 s, 30 s, 2 min, 10 min, 30 min, then hourly.
  KILN_RETRY_SCHEDULE: durations.default([5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000]),
  KILN_RETRY_BASE_MS: int(1, 60_000).optional(),
  KILN_RETRY_MAX_MS: int(1, 600_000).default(8_000),
  KILN_SAFETY_POLICY: z.enum(['flag', 'block']).default('flag'),
  KILN_SAFETY_THRESHOLD: z.coerce.number().min(0).max(1).default(0.5),
  KILN_SAFETY_CHECK_INPUTS: bool.default(false),
  // Limits for untrusted clients (docs/security.md).
  KILN_REQUEST_TIMEOUT_SECONDS: int(1, 3600).default(30),
  KILN_HEADERS_TIMEOUT_SECONDS: int(1, 600).default(10),
  KILN_KEEPALIVE_TIMEOUT_SECONDS: int(1, 600).default(5),
  KILN_MAX_CONNECTIONS: int(1, 1_000_000).default(10_000),
  KILN_MAX_CONNECTIONS_PER_ADDRESS: int(1, 1_000_000).default(256),
  KILN_PREAUTH_MAX_KB: int(1, 1024).default(64),
  KILN_WS_AUTH_TIMEOUT_SECONDS: int(1, 3600).default(10),
  KILN_MAX_JSON_DEPTH: int(2, 10_000).default(64),
  KILN_AUTH_FAILURES_PER_MINUTE: int(1, 1_000_000).default(20),
  KILN_MAX_REPLY_MB: z.coerce.number().min(0.001).max(4096).default(64),
  KILN_MAX_REQUEST_MEGAPIXELS: int(1, 1_000_000).default(400),
  KILN_WS_RESUME_BUFFER_MB: int(0, 4096).default(8),
  KILN_WS_MAX_BUFFERED_MB: int(1, 4096).default(16),
  KILN_METRICS_TOKEN: z.string().min(16, 'at least 16 characters').optional(),
  KILN_READY_MAX_QUEUED_IMAGES: int(1, 100_000_000).optional(),
  KILN_KEY_HASH_SECRET: z.string().min(32, 'at least 32 characters').optional(),
  KILN_OUTBOUND_PORTS: z
    .string()
    .regex(/^\s*\d{1,5}\s*(,\s*\d{1,5}\s*)*$/, 'must be a comma-separated list of ports')
    .transform((v) => v.split(',').map((p) => Number(p.trim())))
    .refine((ports) => ports.every((p) => p >= 1 && p <= 65535), 'ports are 1-65535')
    .default([80, 443]),
  RUNWARE_API_KEY: z.string().min(1).optional(),
  KILN_RUNWARE_URL: z
    .string()
    .regex(/^(wss?|https?):\/\/./, 'must be a ws://, wss://, http:// or https:// URL')
    .default('wss://ws-api.runware.ai/v1'),
  KILN_RUNWARE_OUTPUT_TYPE: z.enum(['base64Data', 'URL']).default('base64Data'),
  KILN_ROUTES: z
    .string()
    .regex(/^\s*[^=,\s]+\s*=\s*[a-z]+\s*(,\s*[^=,\s]+\s*=\s*[a-z]+\s*)*$/, 'must look like model=engine,model=engine')
    .optional(),
});

export { ROLES, type Role } from './roles.ts';

export interface Config {
  readonly role: Role;
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  /** Base of image URLs; defaults to `http://localhost:<port>` (the bound port when 0). */
  readonly publicUrl: string | undefined;
  readonly apiKeys: readonly string[];
  readonly logLevel: string;
  readonly maxBodyBytes: number;
  readonly queueConcurrency: number;
  /** Images waiting or running, cluster-wide, past which new tasks get `429 queueFull`. */
  readonly queueMax: number;
  /** Limits of API keys that have none of their own (docs/tenancy.md); `null`: unlimited. */
  readonly keyDefaults: { readonly maxConcurrentImages: number | null; readonly maxQueuedImages: number | null; readonly rate: number | null };
  /** Warm the studio workers and sharp at start (≤ 4 s), so the first requests are not cold. */
  readonly warmUp: boolean;
  /** JPEG Huffman tables optimised per image (smaller files) or the standard ones (about 3× faster encodes). */
  readonly jpegOptimizeCoding: boolean;
  /** libvips threads per image operation (sharp's concurrency); images run side by side in the encode slots. */
  readonly imageThreads: number;
  /** BullMQ job lock: a worker that dies loses its tasks to another worker after this long. */
  readonly queueLockMs: number;
  /** PostgreSQL task store; absent → SQLite in the data dir. */
  readonly databaseUrl: string | undefined;
  readonly databasePool: number;
  /** PostgreSQL: run the store's statements as named prepared statements (off for poolers that cannot keep them). */
  readonly databasePrepared: boolean;
  /** Redis for the BullMQ queue, events, admission and sessions; absent → in-process. */
  readonly redisUrl: string | undefined;
  /** Prefix of every Redis key and queue name (several Kiln clusters may share one Redis). */
  readonly redisPrefix: string;
  /** S3 object store; absent → local files in the data dir. Credentials come from the AWS SDK's default chain. */
  readonly s3:
    | { readonly bucket: string; readonly endpoint: string | undefined; readonly region: string; readonly forcePathStyle: boolean; readonly prefix: string }
    | undefined;
  readonly studioThreads: number;
  readonly wsIdleMs: number;
  /** Ping interval of WebSocket connections; a peer that misses a pong is cut off (0: never). */
  readonly wsHeartbeatMs: number;
  readonly wsResumeMs: number;
  readonly syncTimeoutMs: number;
  readonly retentionMs: number;
  readonly uploadRetentionMs: number;
  /** A task resent by its key with the same taskUUID and body attaches to the first one (no conflictTaskUUID). */
  readonly idempotentResubmit: boolean;
  /** Believe X-Forwarded-For/-Proto/-Host from the proxy in front (client address, image URLs). */
  readonly trustProxy: boolean;
  /** Origins browsers may call the API from (`['*']`: any); empty: CORS off. */
  readonly corsOrigins: readonly string[];
  readonly allowPrivateUrls: boolean;
  readonly sweepIntervalMs: number;
  /** How long a shutdown waits for running tasks before handing them back. */
  readonly shutdownDrainMs: number;
  /** Reference-image downloads: connect (DNS included) and whole-request timeouts, size cap. */
  readonly fetchConnectTimeoutMs: number;
  readonly fetchTotalTimeoutMs: number;
  readonly maxReferenceBytes: number;
  /** Standard Webhooks secret given to the keys of KILN_API_KEYS. */
  readonly webhookSecret: string | undefined;
  readonly webhookRetry: RetrySettings;
  readonly uploadRetry: RetrySettings;
  readonly safety: {
    /** `flag`: deliver with `NSFWContent: true`; `block`: replace the image by an `nsfwContentDetected` error. */
    readonly policy: 'flag' | 'block';
    /** Adult-content score (Porn + Hentai probability) at or above which an image is flagged. */
    readonly threshold: number;
    /** Classify uploads and reference images too. */
    readonly checkInputs: boolean;
  };
  /** Limits that keep untrusted clients from holding or exhausting the server (docs/security.md). */
  readonly limits: Limits;
  /** Bearer token `/metrics` requires; without one `/metrics` answers loopback clients only. */
  readonly metricsToken: string | undefined;
  /** Queued images (cluster-wide) at or past which `/ready` answers 503; `undefined`: no limit. */
  readonly readyMaxQueuedImages: number | undefined;
  /** Secret of the HMAC-SHA256 key hashes; absent → `<data dir>/key-hash-secret` (SQLite). */
  readonly keyHashSecret: string | undefined;
  /** Ports outbound fetches, webhooks and uploads may use (lifted by `allowPrivateUrls`). */
  readonly outboundPorts: readonly number[];
  /** The upstream Runware engine; set when RUNWARE_API_KEY is (it then serves klingai:kling-image@o3). */
  readonly runware: { readonly apiKey: string; readonly url: string; readonly upstreamOutputType: 'base64Data' | 'URL' } | undefined;
  /** Explicit model → engine routes (KILN_ROUTES), applied over the defaults. */
  readonly routes: Readonly<Record<string, string>>;
}

/** Limits for untrusted clients; every one is documented in `docs/security.md`. */
export interface Limits {
  /** Time for a whole request (headers and body) to arrive. */
  readonly requestTimeoutMs: number;
  /** Time for the request headers to arrive. */
  readonly headersTimeoutMs: number;
  /** How long an idle keep-alive connection stays open between requests. */
  readonly keepAliveTimeoutMs: number;
  /** Open connections per process (HTTP and WebSocket). */
  readonly maxConnections: number;
  /** Open connections per client address per process. */
  readonly maxConnectionsPerAddress: number;
  /** Largest body or WebSocket frame accepted before the caller authenticated. */
  readonly preAuthMaxBytes: number;
  /** A WebSocket that has not authenticated within this time is closed. */
  readonly wsAuthTimeoutMs: number;
  /** Deepest JSON nesting accepted (checked before parsing). */
  readonly maxJsonDepth: number;
  /** Failed authentications per client address per minute before it gets 429. */
  readonly authFailuresPerMinute: number;
  /** Bytes one REST reply may carry. */
  readonly maxReplyBytes: number;
  /** Images × megapixels one request (or WebSocket frame) may ask for. */
  readonly maxRequestMegapixels: number;
  /** Bytes a detached WebSocket session keeps for its resume (oldest dropped first). */
  readonly wsResumeBufferBytes: number;
  /** Bytes queued on a WebSocket the client does not read, past which the socket is closed. */
  readonly wsMaxBufferedBytes: number;
}

/** Delivery retry settings (see `delivery/retry-policy.ts`). */
export interface RetrySettings {
  readonly maxAttempts: number;
  readonly timeoutMs: number;
  /** Delay before retry k is `scheduleMs[k-1]`, the last one repeating (KILN_RETRY_SCHEDULE)… */
  readonly scheduleMs: readonly number[];
  /** …unless KILN_RETRY_BASE_MS is set: then doubling from it up to `maxDelayMs`. */
  readonly baseDelayMs: number | undefined;
  readonly maxDelayMs: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Combinations that would lose work or split state between processes are refused at start.
 * With Redis, other processes may join the cluster, so the store and the objects must be
 * shared too; `api` and `worker` are cluster roles, so they need all three.
 */
function topologyProblems(
  role: Role,
  e: { KILN_DATABASE_URL?: string | undefined; KILN_REDIS_URL?: string | undefined; KILN_S3_BUCKET?: string | undefined; KILN_PUBLIC_URL?: string | undefined },
): string[] {
  const problems: string[] = [];
  if (role !== 'serve' && e.KILN_PUBLIC_URL === undefined) {
    problems.push(`kiln ${role} needs KILN_PUBLIC_URL (the load balancer's address): image URLs must not name one process`);
  }
  if (role !== 'serve' && e.KILN_REDIS_URL === undefined) {
    problems.push(`kiln ${role} needs KILN_REDIS_URL: the queue and task events are shared through Redis (or run everything in one process with kiln serve)`);
  }
  if (role !== 'serve' || e.KILN_REDIS_URL !== undefined) {
    const who = role === 'serve' ? 'with KILN_REDIS_URL set (other processes may join)' : `kiln ${role}`;
    if (e.KILN_DATABASE_URL === undefined) problems.push(`${who} needs KILN_DATABASE_URL: a SQLite file cannot be shared by separate processes`);
    if (e.KILN_S3_BUCKET === undefined) problems.push(`${who} needs KILN_S3_BUCKET: local image files cannot be shared by separate processes`);
  }
  return problems;
}

/** Parses the environment once; throws `ConfigError` listing every bad variable. */
export function loadConfig(env: Readonly<Record<string, string | undefined>>, role: Role = 'serve'): Config {
  const known = Object.fromEntries(
    Object.keys(envSchema.shape).flatMap((key) => {
      const value = env[key];
      return value === undefined || value === '' ? [] : [[key, value]];
    }),
  );
  const parsed = envSchema.safeParse(known);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const e = parsed.data;
  const topology = topologyProblems(role, e);
  if (topology.length > 0) throw new ConfigError(topology);
  return Object.freeze({
    role,
    port: e.KILN_PORT,
    host: e.KILN_HOST,
    dataDir: path.resolve(e.KILN_DATA_DIR),
    publicUrl: e.KILN_PUBLIC_URL?.replace(/\/+$/, ''),
    apiKeys: Object.freeze(e.KILN_API_KEYS ?? []),
    logLevel: e.KILN_LOG_LEVEL,
    maxBodyBytes: e.KILN_MAX_BODY_MB * 1024 * 1024,
    queueConcurrency: e.KILN_QUEUE_CONCURRENCY,
    queueMax: e.KILN_QUEUE_MAX,
    keyDefaults: Object.freeze({
      maxConcurrentImages: e.KILN_KEY_MAX_CONCURRENT_IMAGES ?? null,
      maxQueuedImages: e.KILN_KEY_MAX_QUEUED_IMAGES ?? null,
      rate: e.KILN_KEY_RATE ?? null,
    }),
    queueLockMs: e.KILN_QUEUE_LOCK_SECONDS * 1000,
    warmUp: e.KILN_WARMUP,
    jpegOptimizeCoding: e.KILN_JPEG_OPTIMIZE_CODING,
    imageThreads: e.KILN_IMAGE_THREADS,
    databaseUrl: e.KILN_DATABASE_URL,
    databasePool: e.KILN_DATABASE_POOL,
    databasePrepared: e.KILN_DATABASE_PREPARED,
    redisUrl: e.KILN_REDIS_URL,
    redisPrefix: e.KILN_REDIS_PREFIX,
    s3:
      e.KILN_S3_BUCKET === undefined
        ? undefined
        : Object.freeze({
            bucket: e.KILN_S3_BUCKET,
            endpoint: e.KILN_S3_ENDPOINT,
            region: e.KILN_S3_REGION,
            forcePathStyle: e.KILN_S3_FORCE_PATH_STYLE,
            prefix: e.KILN_S3_PREFIX,
          }),
    studioThreads: e.KILN_STUDIO_THREADS,
    wsIdleMs: e.KILN_WS_IDLE_SECONDS * 1000,
    wsHeartbeatMs: e.KILN_WS_HEARTBEAT_SECONDS * 1000,
    wsResumeMs: e.KILN_WS_RESUME_SECONDS * 1000,
    syncTimeoutMs: e.KILN_SYNC_TIMEOUT_SECONDS * 1000,
    retentionMs: e.KILN_RETENTION_HOURS * 3_600_000,
    uploadRetentionMs: e.KILN_UPLOAD_RETENTION_DAYS * 86_400_000,
    idempotentResubmit: e.KILN_IDEMPOTENT_RESUBMIT,
    trustProxy: e.KILN_TRUST_PROXY,
    corsOrigins: Object.freeze([...(e.KILN_CORS_ORIGINS ?? [])]),
    allowPrivateUrls: e.KILN_ALLOW_PRIVATE_URLS,
    sweepIntervalMs: e.KILN_SWEEP_SECONDS * 1000,
    shutdownDrainMs: e.KILN_SHUTDOWN_DRAIN_SECONDS * 1000,
    fetchConnectTimeoutMs: e.KILN_FETCH_CONNECT_TIMEOUT_MS,
    fetchTotalTimeoutMs: e.KILN_FETCH_TOTAL_TIMEOUT_MS,
    maxReferenceBytes: e.KILN_MAX_REFERENCE_MB * 1024 * 1024,
    webhookSecret: e.KILN_WEBHOOK_SECRET,
    webhookRetry: Object.freeze({
      maxAttempts: e.KILN_WEBHOOK_MAX_ATTEMPTS,
      timeoutMs: e.KILN_WEBHOOK_TIMEOUT_MS,
      scheduleMs: Object.freeze([...e.KILN_RETRY_SCHEDULE]),
      baseDelayMs: e.KILN_RETRY_BASE_MS,
      maxDelayMs: e.KILN_RETRY_MAX_MS,
    }),
    uploadRetry: Object.freeze({
      maxAttempts: e.KILN_UPLOAD_MAX_ATTEMPTS,
      timeoutMs: e.KILN_UPLOAD_TIMEOUT_MS,
      scheduleMs: Object.freeze([...e.KILN_RETRY_SCHEDULE]),
      baseDelayMs: e.KILN_RETRY_BASE_MS,
      maxDelayMs: e.KILN_RETRY_MAX_MS,
    }),
    safety: Object.freeze({ policy: e.KILN_SAFETY_POLICY, threshold: e.KILN_SAFETY_THRESHOLD, checkInputs: e.KILN_SAFETY_CHECK_INPUTS }),
    limits: Object.freeze({
      requestTimeoutMs: e.KILN_REQUEST_TIMEOUT_SECONDS * 1000,
      headersTimeoutMs: e.KILN_HEADERS_TIMEOUT_SECONDS * 1000,
      keepAliveTimeoutMs: e.KILN_KEEPALIVE_TIMEOUT_SECONDS * 1000,
      maxConnections: e.KILN_MAX_CONNECTIONS,
      maxConnectionsPerAddress: e.KILN_MAX_CONNECTIONS_PER_ADDRESS,
      preAuthMaxBytes: e.KILN_PREAUTH_MAX_KB * 1024,
      wsAuthTimeoutMs: e.KILN_WS_AUTH_TIMEOUT_SECONDS * 1000,
      maxJsonDepth: e.KILN_MAX_JSON_DEPTH,
      authFailuresPerMinute: e.KILN_AUTH_FAILURES_PER_MINUTE,
      maxReplyBytes: Math.floor(e.KILN_MAX_REPLY_MB * 1024 * 1024),
      maxRequestMegapixels: e.KILN_MAX_REQUEST_MEGAPIXELS,
      wsResumeBufferBytes: e.KILN_WS_RESUME_BUFFER_MB * 1024 * 1024,
      wsMaxBufferedBytes: e.KILN_WS_MAX_BUFFERED_MB * 1024 * 1024,
    }),
    metricsToken: e.KILN_METRICS_TOKEN,
    readyMaxQueuedImages: e.KILN_READY_MAX_QUEUED_IMAGES,
    keyHashSecret: e.KILN_KEY_HASH_SECRET,
    outboundPorts: Object.freeze([...e.KILN_OUTBOUND_PORTS]),
    runware:
      e.RUNWARE_API_KEY === undefined
        ? undefined
        : Object.freeze({ apiKey: e.RUNWARE_API_KEY, url: e.KILN_RUNWARE_URL, upstreamOutputType: e.KILN_RUNWARE_OUTPUT_TYPE }),
    routes: Object.freeze(
      Object.fromEntries(
        (e.KILN_ROUTES ?? '')
          .split(',')
          .filter((pair) => pair.includes('='))
          .map((pair) => pair.split('=').map((part) => part.trim()) as [string, string]),
      ),
    ),
  });
}

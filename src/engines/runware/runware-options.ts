import { z } from 'zod';

const ms = (min: number, max: number, fallback: number) => z.number().int().min(min).max(max).default(fallback);

/** The protocols of `url`: a WebSocket URL picks the WebSocket transport, an HTTP(S) one REST. */
export const RUNWARE_URL_PROTOCOLS = ['ws:', 'wss:', 'http:', 'https:'] as const;

/** The hosted WebSocket endpoint (`KILN_RUNWARE_URL`'s default). */
export const DEFAULT_RUNWARE_URL = 'wss://ws-api.runware.ai/v1';

/**
 * Options of the `runware` engine, validated once when the engine is made. Every duration is
 * in milliseconds.
 */
export const runwareOptionsSchema = z.object({
  /** The operator's Runware API key (`RUNWARE_API_KEY`). */
  apiKey: z.string().min(1),
  /** Upstream endpoint (`KILN_RUNWARE_URL`); `ws://`/`wss://` → WebSocket, `http://`/`https://` → REST. Default the hosted WebSocket. */
  url: z
    .string()
    .default(DEFAULT_RUNWARE_URL)
    .refine((value) => {
      try {
        return (RUNWARE_URL_PROTOCOLS as readonly string[]).includes(new URL(value).protocol);
      } catch {
        return false;
      }
    }, 'must be a ws://, wss://, http:// or https:// URL'),
  /** First delay between two `getResponse` polls; grows ×1.25 while nothing new arrives. Default 1 s. */
  pollIntervalMs: ms(10, 60_000, 1_000),
  /** Longest delay between two polls. Default 5 s. */
  maxPollIntervalMs: ms(10, 600_000, 5_000),
  /** Wait for one upstream answer (submit or poll), connecting included. Default 30 s. */
  requestTimeoutMs: ms(100, 600_000, 30_000),
  /** Consecutive failed requests (unreachable, silent, 429/503) before the call fails with `timeoutProvider`. Default 8. */
  maxAttempts: z.number().int().min(1).max(1_000).default(8),
  /** First retry delay; doubles with jitter up to `retryMaxMs`. Default 250 ms. */
  retryBaseMs: ms(1, 60_000, 250),
  /** Default 8 s. */
  retryMaxMs: ms(1, 600_000, 8_000),
  /** Longest a call waits for its upstream task in all, before `timeoutProvider`. Default 30 min. */
  taskTimeoutMs: ms(1_000, 24 * 3_600_000, 30 * 60_000),
  /** WebSocket ping period. Default 30 s. */
  heartbeatMs: ms(10, 600_000, 30_000),
  /** A ping unanswered this long drops the link. Default 10 s. */
  pongTimeoutMs: ms(10, 600_000, 10_000),
  /** Calls in flight at once. Default 4. */
  concurrency: z.number().int().min(1).max(64).default(4),
  /**
   * How the upstream returns images: `base64Data` (default; every poll repeats the finished
   * images) or `URL` (polls stay small; each image is downloaded once).
   */
  upstreamOutputType: z.enum(['base64Data', 'URL']).default('base64Data'),
  /** Send the first slot's `seed` (turned off by itself if the upstream answers `unsupportedParameter` for it). Default true. */
  sendSeed: z.boolean().default(true),
});

export type RunwareEngineOptions = z.input<typeof runwareOptionsSchema>;
export type RunwareSettings = z.output<typeof runwareOptionsSchema>;

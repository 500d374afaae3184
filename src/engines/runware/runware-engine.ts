/**
 * The `runware` engine: the real Kling IMAGE O3, made by the hosted Runware API (or any server
 * speaking its protocol, such as another Kiln). Each call becomes one async upstream task that
 * is polled until its images exist; images stream back through `onImage` as they appear.
 */
import type { Logger } from '../../shared/logger.ts';
import type { GenerateCall, GenerateResult, ImageEngine } from '../spec/image-engine.ts';
import { RestTransport } from './rest-transport.ts';
import { runwareOptionsSchema, type RunwareEngineOptions, type RunwareSettings } from './runware-options.ts';
import { runUpstreamCall, type EngineContext, type UpstreamImageDownload } from './upstream-call.ts';
import type { UpstreamTransport } from './upstream-transport.ts';
import { WsTransport } from './ws-transport.ts';

export type { RunwareEngineOptions } from './runware-options.ts';
export { DEFAULT_RUNWARE_URL } from './runware-options.ts';
export type { UpstreamImageDownload } from './upstream-call.ts';

/** Runware's `numberResults` range is 1–20: one upstream task per call of up to 20 images. */
export const RUNWARE_MAX_IMAGES_PER_CALL = 20;

export interface RunwareEngineDeps {
  readonly logger: Logger;
  /** A transport to use instead of the one `url` picks (tests). */
  readonly transport?: UpstreamTransport;
  /**
   * Downloads images the upstream returns as URLs (`upstreamOutputType: 'URL'`, or an upstream
   * that ignores outputType). Kiln passes its guarded outbound client; engines never use the
   * global `fetch`. Without it, an image URL fails the call with `providerError`.
   */
  readonly download?: UpstreamImageDownload;
}

/** Picks the transport from the URL's protocol: `ws:`/`wss:` → WebSocket, `http:`/`https:` → REST. */
export function createTransport(settings: RunwareSettings, logger: Logger): UpstreamTransport {
  const protocol = new URL(settings.url).protocol;
  if (protocol === 'ws:' || protocol === 'wss:') {
    return new WsTransport({
      url: settings.url,
      apiKey: settings.apiKey,
      logger,
      heartbeatMs: settings.heartbeatMs,
      pongTimeoutMs: settings.pongTimeoutMs,
      reconnectBaseMs: settings.retryBaseMs,
      reconnectMaxMs: settings.retryMaxMs,
    });
  }
  return new RestTransport({ url: settings.url, apiKey: settings.apiKey });
}

/**
 * Creates the engine. Throws (a zod error) when the options are invalid. Nothing connects
 * until the first call.
 */
export function createRunwareEngine(options: RunwareEngineOptions & RunwareEngineDeps): ImageEngine {
  const { logger: baseLogger, transport: injected, download, ...rest } = options;
  const settings = runwareOptionsSchema.parse(rest);
  const logger = baseLogger.child({ engine: 'runware' });
  let closed = false;
  const transport = injected ?? createTransport(settings, logger);
  const context: EngineContext = { transport, settings, logger, sendSeed: settings.sendSeed, isClosed: () => closed, download };
  return {
    name: 'runware',
    maxImagesPerCall: RUNWARE_MAX_IMAGES_PER_CALL,
    concurrency: settings.concurrency,
    generate(call: GenerateCall): Promise<GenerateResult> {
      return runUpstreamCall(context, call);
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await transport.close();
    },
  };
}

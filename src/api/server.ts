import websocket from '@fastify/websocket';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger as PinoLogger } from 'pino';
import { ApiError } from '../errors/index.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { SessionDirectory } from '../events/session-directory.ts';
import type { Logger } from '../shared/logger.ts';
import type { ApiKeys } from '../tasks/api-keys.ts';
import type { TaskService } from '../tasks/task-service.ts';
import { registerRestRoutes, sendErrors } from './rest-routes.ts';
import { TaskDispatcher } from './task-dispatcher.ts';
import { registerWsRoutes } from './ws-routes.ts';
import { WsSessions } from './ws-sessions.ts';

export interface ServerOptions {
  readonly service: TaskService;
  readonly apiKeys: ApiKeys;
  readonly logger: PinoLogger;
  readonly metrics: Metrics;
  readonly maxBodyBytes: number;
  readonly wsIdleMs: number;
  readonly wsResumeMs: number;
  readonly syncTimeoutMs: number;
  readonly defaultEngine: string;
  readonly shutdown: AbortSignal;
  /** Where WebSocket sessions are shared with other API processes (a no-op in one process). */
  readonly sessionDirectory: SessionDirectory;
  /** What `/health` reports beyond `status: ok` (e.g. the role). */
  health(): Promise<Record<string, unknown>>;
}

const IMAGE_FILE = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(jpg|png|webp)$/i;
const CONTENT_TYPE = { jpg: 'image/jpeg', png: 'image/png', webp: 'image/webp' } as Record<string, string>;

/** `/health` and `/metrics`, served by every role (a worker serves nothing else). */
export function registerOpsRoutes(app: FastifyInstance, options: Pick<ServerOptions, 'metrics' | 'health'>): void {
  app.get('/health', async () => ({ status: 'ok', ...(await options.health()) }));
  app.get('/metrics', async (_request, reply) =>
    reply.header('Content-Type', options.metrics.registry.contentType).send(await options.metrics.registry.metrics()),
  );
}

/** The HTTP server of a worker process: health and metrics only, on `KILN_PORT`. */
export async function buildOpsServer(options: Pick<ServerOptions, 'metrics' | 'health' | 'logger'>): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.logger,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  }) as unknown as FastifyInstance;
  registerOpsRoutes(app, options);
  app.setNotFoundHandler((request, reply) =>
    sendErrors(reply, [new ApiError('notFound', `A worker serves only /health and /metrics, not ${request.method} ${request.url.split('?')[0]}.`)]),
  );
  return app;
}

/** Builds the fastify app: REST and WebSocket on `/v1`, images, health. Transport only. */
export async function buildServer(
  options: ServerOptions,
): Promise<{ app: FastifyInstance; sessions: WsSessions; closeSockets(): void }> {
  const app: FastifyInstance = Fastify({
    loggerInstance: options.logger,
    bodyLimit: options.maxBodyBytes,
    // Tasks log their own lines with taskUUID; per-request lines would only repeat them.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  }) as unknown as FastifyInstance;
  const logger = options.logger as unknown as Logger;
  const dispatcher = new TaskDispatcher(options.service, logger);
  const sessions = new WsSessions({ resumeMs: options.wsResumeMs, directory: options.sessionDirectory, logger });

  // Bodies are parsed by the protocol layer, so every malformed body gets a Runware error.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: options.maxBodyBytes }, (_request, body, done) => done(null, body));

  // Every REST answer names the engine, errors raised before a route runs included.
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('X-Kiln-Engine', options.defaultEngine);
  });
  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, _request, reply) => {
    if (error instanceof ApiError) return sendErrors(reply, [error]);
    const status = error.statusCode ?? 500;
    if (status === 413 || error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return sendErrors(reply, [new ApiError('requestTooLarge', `The request body is larger than ${options.maxBodyBytes} bytes.`)]);
    }
    if (status < 500) {
      return sendErrors(reply, [new ApiError('invalidRequestBody', 'The request could not be read.', { retryable: false })]);
    }
    logger.error({ err: error }, 'request failed');
    return sendErrors(reply, [new ApiError('internalServerError', 'An internal error occurred.')]);
  });
  app.setNotFoundHandler((request, reply) =>
    sendErrors(reply, [new ApiError('notFound', `Nothing is served at ${request.method} ${request.url.split('?')[0]}.`)]),
  );

  await app.register(websocket, {
    options: { maxPayload: options.maxBodyBytes, perMessageDeflate: false },
    // Open sockets stay up while a shutdown drains, so their waiting clients hear why their task
    // stopped; `closeSockets` ends them afterwards.
    preClose: async () => {},
  });
  registerRestRoutes(app, {
    dispatcher,
    apiKeys: options.apiKeys,
    syncTimeoutMs: options.syncTimeoutMs,
    engineOf: (model) => {
      try {
        return typeof model === 'string' ? options.service.engineFor(model) : undefined;
      } catch {
        return undefined;
      }
    },
    defaultEngine: options.defaultEngine,
    shutdown: options.shutdown,
  });
  registerWsRoutes(app, {
    dispatcher,
    apiKeys: options.apiKeys,
    sessions,
    idleMs: options.wsIdleMs,
    syncTimeoutMs: options.syncTimeoutMs,
    logger,
    shutdown: options.shutdown,
  });

  app.get<{ Params: { file: string } }>('/image/:file', async (request, reply) => {
    const match = IMAGE_FILE.exec(request.params.file);
    const image = match ? await options.service.openServableImage(match[1]!.toLowerCase(), match[2]!.toLowerCase()) : undefined;
    if (!image) {
      return sendErrors(reply, [new ApiError('imageNotFound', 'The image does not exist or its URL has expired.')]);
    }
    // Streamed from the object store (S3 or a file), never held whole in memory.
    return reply
      .header('Content-Type', CONTENT_TYPE[image.format])
      .header('Content-Length', image.bytes)
      .header('Cache-Control', 'public, max-age=60')
      .send(image.stream);
  });
  registerOpsRoutes(app, options);
  const closeSockets = (): void => {
    for (const client of app.websocketServer.clients) {
      client.close(1001, 'server shutting down');
      // A peer that never answers the closing handshake is cut off.
      setTimeout(() => client.terminate(), 1_000).unref();
    }
  };
  return { app, sessions, closeSockets };
}

import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import cors from '@fastify/cors';
import websocket from '@fastify/websocket';
import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger as PinoLogger } from 'pino';
import type { Limits } from '../config/config.ts';
import { ApiError, forbidden, requestTooLarge } from '../errors/index.ts';
import type { AuthThrottle } from '../events/auth-throttle.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Readiness } from '../metrics/readiness.ts';
import type { SessionDirectory } from '../events/session-directory.ts';
import type { Logger } from '../shared/logger.ts';
import type { ApiKeys } from '../tasks/api-keys.ts';
import type { TaskService } from '../tasks/task-service.ts';
import { registerFrontDoors } from './front-doors.ts';
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
  readonly wsHeartbeatMs: number;
  readonly wsResumeMs: number;
  readonly syncTimeoutMs: number;
  readonly defaultEngine: string;
  readonly shutdown: AbortSignal;
  /** Where WebSocket sessions are shared with other API processes (a no-op in one process). */
  readonly sessionDirectory: SessionDirectory;
  /** What `/health` reports beyond `status: ok` (e.g. the role). */
  health(): Promise<Record<string, unknown>>;
  /** What `/ready` reports: the store, the queue, the event bus and the queue depth, each under a short deadline. */
  readiness(): Promise<Readiness>;
  /** Limits for untrusted clients (docs/security.md). */
  readonly limits: Limits;
  /** Failed authentications per client address (shared by the API processes of a cluster). */
  readonly authThrottle: AuthThrottle;
  /** Bearer token `/metrics` requires; without one, `/metrics` answers loopback clients only. */
  readonly metricsToken: string | undefined;
  /** Believe the proxy's X-Forwarded-* headers (client address, scheme and host of image URLs). */
  readonly trustProxy: boolean;
  /** Origins browsers may call from (`*`: any); empty: no CORS headers. */
  readonly corsOrigins: readonly string[];
}

/** How often open WebSocket sessions are checked for revoked keys (plus the 5 s key cache). */
const REVOCATION_CHECK_MS = 2_000;

const IMAGE_FILE = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(jpg|png|webp)$/i;
const CONTENT_TYPE = { jpg: 'image/jpeg', png: 'image/png', webp: 'image/webp' } as Record<string, string>;

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3})$/;

/** Whether a caller may read `/metrics`: with the token when one is set, else from loopback only. */
function metricsAllowed(request: FastifyRequest, token: string | undefined): boolean {
  if (token === undefined) return LOOPBACK.test(request.socket.remoteAddress ?? '');
  const match = /^Bearer\s+(.+)$/i.exec((request.headers.authorization ?? '').trim());
  const given = Buffer.from(match?.[1]?.trim() ?? '');
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * `/health` (alive), `/ready` (able to work now) and `/metrics`, served by every role (a worker
 * serves nothing else). `/ready` is open like `/health` (load balancers call it without a
 * token); the error text of a failing check is shown only to callers allowed to read `/metrics`.
 */
export function registerOpsRoutes(app: FastifyInstance, options: Pick<ServerOptions, 'metrics' | 'health' | 'readiness' | 'metricsToken'>): void {
  app.get('/health', async () => ({ status: 'ok', ...(await options.health()) }));
  app.get('/ready', async (request, reply) => {
    const readiness = await options.readiness();
    const detailed = metricsAllowed(request, options.metricsToken);
    const checks = Object.fromEntries(
      Object.entries(readiness.checks).map(([name, check]) => [name, detailed ? check : { ok: check.ok, latencyMs: check.latencyMs }]),
    );
    return reply
      .code(readiness.ready ? 200 : 503)
      .header('Cache-Control', 'no-store')
      .send({ status: readiness.ready ? 'ready' : 'unavailable', ...(readiness.ready ? {} : { failing: readiness.failing }), checks, ...(await options.health()) });
  });
  app.get('/metrics', async (request, reply) => {
    // Metrics name tasks, keys' traffic and internals: not for everyone on the network.
    if (!metricsAllowed(request, options.metricsToken)) return sendErrors(reply, [forbidden('/metrics')]);
    return reply.header('Content-Type', options.metrics.registry.contentType).send(await options.metrics.registry.metrics());
  });
}

/**
 * The HTTP server under fastify, with the timeouts and connection caps of `limits`: a client
 * that trickles its headers or body is cut off, and neither all clients together nor one
 * client address can hold more than their share of sockets (WebSockets included).
 */
function serverFactory(limits: Limits) {
  return (handler: http.RequestListener): http.Server => {
    const server = http.createServer(
      {
        requestTimeout: limits.requestTimeoutMs,
        headersTimeout: Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs),
        keepAliveTimeout: limits.keepAliveTimeoutMs,
        // How often Node checks the two timeouts above (its default of 30 s would let a slow
        // client hold a socket that long past its deadline).
        connectionsCheckingInterval: Math.max(100, Math.min(1_000, limits.headersTimeoutMs / 2)),
      },
      handler,
    );
    server.maxConnections = limits.maxConnections;
    const perAddress = new Map<string, number>();
    server.on('connection', (socket) => {
      const address = socket.remoteAddress ?? '';
      const open = (perAddress.get(address) ?? 0) + 1;
      if (open > limits.maxConnectionsPerAddress) {
        socket.destroy();
        return;
      }
      perAddress.set(address, open);
      socket.once('close', () => {
        const left = (perAddress.get(address) ?? 1) - 1;
        if (left <= 0) perAddress.delete(address);
        else perAddress.set(address, left);
      });
    });
    return server;
  };
}

/** Headers every answer carries, errors raised before a route included. */
function addCommonHeaders(app: FastifyInstance, engine?: string): void {
  app.addHook('onRequest', async (_request, reply) => {
    // Bodies are JSON or images of a declared type: browsers must not guess otherwise.
    reply.header('X-Content-Type-Options', 'nosniff');
    if (engine !== undefined) reply.header('X-Kiln-Engine', engine);
  });
}

/** The HTTP server of a worker process: health, readiness and metrics only, on `KILN_PORT`. */
export async function buildOpsServer(options: Pick<ServerOptions, 'metrics' | 'health' | 'readiness' | 'logger' | 'metricsToken' | 'limits'>): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.logger,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    serverFactory: serverFactory(options.limits),
  }) as unknown as FastifyInstance;
  addCommonHeaders(app);
  registerOpsRoutes(app, options);
  app.setNotFoundHandler((request, reply) =>
    sendErrors(reply, [new ApiError('notFound', `A worker serves only /health, /ready and /metrics, not ${request.method} ${request.url.split('?')[0]}.`)]),
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
    serverFactory: serverFactory(options.limits),
    trustProxy: options.trustProxy,
  }) as unknown as FastifyInstance;
  const logger = options.logger as unknown as Logger;
  // Browser clients (KILN_CORS_ORIGINS): preflights answered for the API and the images.
  if (options.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: options.corsOrigins.includes('*') ? '*' : [...options.corsOrigins],
      methods: ['GET', 'HEAD', 'POST', 'OPTIONS'],
      allowedHeaders: ['Authorization', 'Content-Type'],
      exposedHeaders: ['X-Kiln-Engine', 'Retry-After'],
      maxAge: 600,
    });
  }
  const dispatcher = new TaskDispatcher(options.service, logger);
  const sessions = new WsSessions({
    resumeMs: options.wsResumeMs,
    directory: options.sessionDirectory,
    logger,
    maxBufferedBytes: options.limits.wsResumeBufferBytes,
    maxSocketBufferedBytes: options.limits.wsMaxBufferedBytes,
  });

  // Bodies are parsed by the protocol layer, so every malformed body gets a Runware error.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: options.maxBodyBytes }, (_request, body, done) => done(null, body));

  // Every REST answer names the engine, errors raised before a route runs included.
  addCommonHeaders(app, options.defaultEngine);
  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, _request, reply) => {
    if (error instanceof ApiError) return sendErrors(reply, [error]);
    const status = error.statusCode ?? 500;
    if (status === 413 || error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return sendErrors(reply, [requestTooLarge(options.maxBodyBytes)]);
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
    limits: options.limits,
    authThrottle: options.authThrottle,
    logger,
  });
  registerWsRoutes(app, {
    dispatcher,
    apiKeys: options.apiKeys,
    sessions,
    limits: options.limits,
    authThrottle: options.authThrottle,
    maxFrameBytes: options.maxBodyBytes,
    idleMs: options.wsIdleMs,
    heartbeatMs: options.wsHeartbeatMs,
    syncTimeoutMs: options.syncTimeoutMs,
    logger,
    shutdown: options.shutdown,
  });

  // The OpenAI Images API, /openapi.json, /docs and the playground's assets (api/front-doors.ts).
  registerFrontDoors(app, { dispatcher, apiKeys: options.apiKeys, syncTimeoutMs: options.syncTimeoutMs, maxBodyBytes: options.maxBodyBytes, shutdown: options.shutdown, logger, limits: options.limits, authThrottle: options.authThrottle });

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
  // A revoked key loses its open WebSockets too, not only its next request.
  const revocations = setInterval(() => {
    void sessions.closeRevoked((apiKeyId) => options.apiKeys.isActive(apiKeyId)).catch(() => undefined);
  }, REVOCATION_CHECK_MS);
  revocations.unref();
  app.addHook('onClose', async () => clearInterval(revocations));
  const closeSockets = (): void => {
    for (const client of app.websocketServer.clients) {
      client.close(1001, 'server shutting down');
      // A peer that never answers the closing handshake is cut off.
      setTimeout(() => client.terminate(), 1_000).unref();
    }
  };
  return { app, sessions, closeSockets };
}

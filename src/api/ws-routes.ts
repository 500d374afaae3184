import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import type { Limits } from '../config/config.ts';
import { ApiError, invalidApiKey, jsonTooDeep, tooManyAuthFailures, tooManyImages } from '../errors/index.ts';
import type { AuthThrottle } from '../events/auth-throttle.ts';
import { parseEnvelope } from '../protocol/validate-task.ts';
import type { Logger } from '../shared/logger.ts';
import type { ApiKeys } from '../tasks/api-keys.ts';
import { nestsDeeperThan } from './json-depth.ts';
import { dedupeGetResponse, requestedMegapixels } from './request-limits.ts';
import { sendPlayground, wantsPage } from './playground-page.ts';
import { publicBaseOf } from './public-base.ts';
import type { ReplySink, TaskDispatcher } from './task-dispatcher.ts';
import type { FrameTag, WsSession, WsSessions } from './ws-sessions.ts';

export interface WsOptions {
  readonly dispatcher: TaskDispatcher;
  readonly apiKeys: ApiKeys;
  readonly sessions: WsSessions;
  readonly limits: Limits;
  readonly authThrottle: AuthThrottle;
  /** Largest frame once the socket authenticated (`KILN_MAX_BODY_MB`). */
  readonly maxFrameBytes: number;
  readonly idleMs: number;
  /** Ping interval; a socket that has not answered the previous ping is cut off (0: no pings). */
  readonly heartbeatMs: number;
  readonly syncTimeoutMs: number;
  readonly logger: Logger;
  /** Aborted at shutdown. */
  readonly shutdown: AbortSignal;
}

const frame = (body: Record<string, unknown>): string => JSON.stringify(body);

/**
 * Sets the largest frame this socket accepts from now on. `ws` has one `maxPayload` per server;
 * its receiver keeps the value per socket, so an unauthenticated socket gets a small one and
 * an authenticated one the full size. (The server-wide `maxPayload` stays the outer bound
 * should `ws` ever rename this field.)
 */
function setMaxFrame(socket: WebSocket, bytes: number): void {
  const receiver = (socket as unknown as { _receiver?: { _maxPayload?: number } })._receiver;
  if (receiver && typeof receiver._maxPayload === 'number') receiver._maxPayload = bytes;
}

/** The WebSocket transport on `/v1` and `/`: same dispatcher as REST, one frame per answer. */
export function registerWsRoutes(app: FastifyInstance, options: WsOptions): void {
  const handler = (socket: WebSocket, request: FastifyRequest): void => {
    // Where this client reached us: the base of the image URLs it is sent.
    const publicBase = publicBaseOf(request);
    const dryRun = /(?:^|[?&])dryRun=(?:1|true)(?:&|$)/.test(request.url.split('?')[1] ?? '');
    const address = request.ip;
    const { limits, authThrottle } = options;
    // Until it authenticates a socket may send only small frames, and only for a short while.
    setMaxFrame(socket, limits.preAuthMaxBytes);
    let authDeadline: NodeJS.Timeout | undefined = setTimeout(() => {
      if (!session) socket.close(1008, 'authentication timeout');
    }, limits.wsAuthTimeoutMs);
    authDeadline.unref();
    let session: WsSession | undefined;
    let idle: NodeJS.Timeout | undefined;
    // Sync tasks this socket is waiting on: a socket waiting for results is not idle, however
    // long the render takes (a quiet stretch after the ack or the last ping is normal then).
    let waiting = 0;
    // A peer gone without a close (a dropped link, a relay that stopped forwarding) would keep the
    // socket "open" and swallow its results; the ping finds it out, and the cut detaches the
    // session, so what follows is kept for the resume.
    // A ping waits behind what is already queued for the peer: one still reading a large frame
    // (its backlog shrinking) is slow, not gone, and is given more time.
    let answered = true;
    let backlog = 0;
    socket.on('pong', () => (answered = true));
    const heartbeat =
      options.heartbeatMs > 0
        ? setInterval(() => {
            if (!answered) {
              const queued = socket.bufferedAmount;
              if (queued < backlog) {
                backlog = queued;
                return;
              }
              options.logger.info({ session: session?.id }, 'websocket peer stopped answering pings; connection cut');
              socket.terminate();
              return;
            }
            answered = false;
            backlog = socket.bufferedAmount;
            socket.ping();
          }, options.heartbeatMs)
        : undefined;
    heartbeat?.unref();
    const touch = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => (waiting > 0 ? touch() : socket.close(1000, 'idle timeout')), options.idleMs);
      // A socket's idle timer never keeps the process alive on its own.
      idle.unref();
    };
    // Before authentication frames go straight to the socket; after it, through the session so
    // they can be replayed on resume.
    const send = (body: Record<string, unknown>, tag?: FrameTag): void => {
      const text = frame(body);
      if (session) session.send(text, tag);
      else if (socket.readyState === socket.OPEN) {
        // A client that does not read its answers is cut off instead of buffered without bound
        // (by its unread backlog, not by the size of one frame).
        if (socket.bufferedAmount > limits.wsMaxBufferedBytes) socket.terminate();
        else socket.send(text);
      }
      touch();
    };
    // Sessions opened on another API process that died: their sync waits continue here.
    let adopted: { taskUUID: string; sent: ReadonlySet<string> }[] = [];
    const sink: ReplySink = {
      data: (item) => {
        if (item.taskType !== 'authentication' || !session) {
          const tag =
            session && item.taskType === 'imageInference' && typeof item.taskUUID === 'string' && typeof item.imageUUID === 'string'
              ? session.resultTag(item.taskUUID, item.imageUUID)
              : undefined;
          return send({ data: [item] }, tag);
        }
        // The authentication answer goes out first, then what a resumed session kept.
        if (socket.readyState === socket.OPEN) socket.send(frame({ data: [item] }));
        touch();
        session.flush();
        for (const { taskUUID, sent } of adopted.splice(0)) {
          void options.dispatcher.resume(taskUUID, session.principal, sent, context, sink);
        }
      },
      error: (error) => {
        const taskUUID = error.details.taskUUID;
        send({ errors: [error.toJSON()] }, session && taskUUID !== undefined ? session.errorTag(taskUUID) : undefined);
      },
      opened: (taskUUID) => {
        waiting++;
        if (session) options.sessions.opened(session, taskUUID);
      },
      closed: (taskUUID) => {
        waiting = Math.max(0, waiting - 1);
        if (session) options.sessions.closed(session, taskUUID);
      },
      // sdk-js rejects a request on any error frame with its taskUUID, even one that follows
      // every result, so notices are not pushed live over WebSocket: getResponse and the
      // webhook carry them.
      notice: (error) => options.logger.debug({ code: error.code, taskUUID: error.details.taskUUID }, 'notice not sent over WebSocket'),
      // Progress items travel like results (kept for a resumed session), without a tag: they
      // are not results the client could be missing.
      progress: (items) => send({ data: items }),
      batch: (items, errors) =>
        send({ data: items, ...(errors.length > 0 ? { errors: errors.map((e) => e.toJSON()) } : {}) }),
    };
    // Frames run concurrently, so a task sent right behind its authentication waits for the
    // key check instead of being refused.
    let authenticating: Promise<unknown> = Promise.resolve();
    const context = {
      principal: async () => {
        await authenticating;
        return session && { ...session.principal, publicBase };
      },
      authenticate: (task: { apiKey: string; connectionSessionUUID?: string }) => {
        const check = (async () => {
          const blocked = await authThrottle.blockedFor(address);
          if (blocked > 0) throw tooManyAuthFailures(Math.max(1, Math.ceil(blocked / 1000)));
          const principal = await options.apiKeys.verify(task.apiKey);
          if (!principal) {
            await authThrottle.fail(address);
            throw invalidApiKey();
          }
          // The same key authenticating again on this socket, into the session it holds: nothing changes.
          if (session && session.principal.apiKeyId === principal.apiKeyId && (task.connectionSessionUUID === undefined || task.connectionSessionUUID === session.id)) {
            clearTimeout(authDeadline);
            authDeadline = undefined;
            return { taskType: 'authentication', connectionSessionUUID: session.id };
          }
          if (session) options.sessions.detach(session, socket, true);
          const attached = await options.sessions.attach(socket, principal, task.connectionSessionUUID);
          session = attached.session;
          clearTimeout(authDeadline);
          authDeadline = undefined;
          setMaxFrame(socket, options.maxFrameBytes);
          adopted = [...(attached.adopted?.tasks ?? new Map<string, ReadonlySet<string>>())].map(([taskUUID, sent]) => ({ taskUUID, sent }));
          // Frames a detached session had to drop (its buffer is bounded) are named, not hidden.
          const dropped = session.takeDropped();
          return { taskType: 'authentication', connectionSessionUUID: session.id, ...(dropped > 0 ? { droppedFrames: dropped } : {}) };
        })();
        authenticating = check.catch(() => undefined);
        return check;
      },
      dryRun,
      syncTimeoutMs: options.syncTimeoutMs,
      signal: options.shutdown,
    };
    touch();
    socket.on('message', (data: RawData, isBinary: boolean) => {
      touch();
      const text = isBinary ? '' : Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8');
      if (nestsDeeperThan(text, limits.maxJsonDepth)) {
        sink.error(jsonTooDeep(limits.maxJsonDepth));
        return;
      }
      const envelope = parseEnvelope(text);
      if (!envelope.ok) {
        sink.error(envelope.error);
        return;
      }
      const tasks = dedupeGetResponse(envelope.tasks);
      const megapixels = requestedMegapixels(tasks);
      if (megapixels > limits.maxRequestMegapixels) {
        sink.error(tooManyImages(megapixels, limits.maxRequestMegapixels));
        return;
      }
      // Not awaited: a sync task must not hold up pings or other tasks on the same socket.
      options.dispatcher.dispatch(tasks, context, sink).catch((error: unknown) => {
        options.logger.error({ err: error }, 'websocket dispatch failed');
        sink.error(new ApiError('internalServerError', 'An internal error occurred while processing the task.'));
      });
    });
    socket.on('close', () => {
      clearInterval(heartbeat);
      clearTimeout(idle);
      clearTimeout(authDeadline);
      if (session) options.sessions.detach(session, socket);
    });
    socket.on('error', (error) => options.logger.debug({ err: error }, 'websocket error'));
  };
  // A plain GET (a browser, a health probe) gets a short description instead of a bare 404.
  // A browser opening `/` gets the playground (api/playground-page.ts).
  const about = async (request: FastifyRequest, reply: FastifyReply) =>
    request.url.split('?')[0] === '/' && wantsPage(request) ? sendPlayground(request, reply) : {
    name: 'Kiln',
    description: 'Runware-compatible image inference for klingai:kling-image@o3',
    rest: 'POST /v1 with a JSON array of tasks (Authorization: Bearer <key>)',
    websocket: 'connect to /v1, then send [{"taskType":"authentication","apiKey":"<key>"}]',
    playground: 'open / in a browser', openapi: '/openapi.json', docs: '/docs',
  };
  for (const url of ['/v1', '/v1/', '/']) app.route({ method: 'GET', url, handler: about, wsHandler: handler });
}

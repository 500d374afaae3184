import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import { ApiError, invalidApiKey } from '../errors/index.ts';
import { parseEnvelope } from '../protocol/validate-task.ts';
import type { Logger } from '../shared/logger.ts';
import type { ApiKeys } from '../tasks/api-keys.ts';
import type { ReplySink, TaskDispatcher } from './task-dispatcher.ts';
import type { FrameTag, WsSession, WsSessions } from './ws-sessions.ts';

export interface WsOptions {
  readonly dispatcher: TaskDispatcher;
  readonly apiKeys: ApiKeys;
  readonly sessions: WsSessions;
  readonly idleMs: number;
  readonly syncTimeoutMs: number;
  readonly logger: Logger;
  /** Aborted at shutdown. */
  readonly shutdown: AbortSignal;
}

const frame = (body: Record<string, unknown>): string => JSON.stringify(body);

/** The WebSocket transport on `/v1` and `/`: same dispatcher as REST, one frame per answer. */
export function registerWsRoutes(app: FastifyInstance, options: WsOptions): void {
  const handler = (socket: WebSocket, request: FastifyRequest): void => {
    const dryRun = /(?:^|[?&])dryRun=(?:1|true)(?:&|$)/.test(request.url.split('?')[1] ?? '');
    let session: WsSession | undefined;
    let idle: NodeJS.Timeout | undefined;
    const touch = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => socket.close(1000, 'idle timeout'), options.idleMs);
      // A socket's idle timer never keeps the process alive on its own.
      idle.unref();
    };
    // Before authentication frames go straight to the socket; after it, through the session so
    // they can be replayed on resume.
    const send = (body: Record<string, unknown>, tag?: FrameTag): void => {
      const text = frame(body);
      if (session) session.send(text, tag);
      else if (socket.readyState === socket.OPEN) socket.send(text);
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
        if (session) options.sessions.opened(session, taskUUID);
      },
      closed: (taskUUID) => {
        if (session) options.sessions.closed(session, taskUUID);
      },
      // sdk-js rejects a request on any error frame with its taskUUID, even one that follows
      // every result, so notices are not pushed live over WebSocket: getResponse and the
      // webhook carry them.
      notice: (error) => options.logger.debug({ code: error.code, taskUUID: error.details.taskUUID }, 'notice not sent over WebSocket'),
      batch: (items, errors) =>
        send({ data: items, ...(errors.length > 0 ? { errors: errors.map((e) => e.toJSON()) } : {}) }),
    };
    // Frames run concurrently, so a task sent right behind its authentication waits for the
    // key check instead of being refused.
    let authenticating: Promise<unknown> = Promise.resolve();
    const context = {
      principal: async () => {
        await authenticating;
        return session?.principal;
      },
      authenticate: (task: { apiKey: string; connectionSessionUUID?: string }) => {
        const check = (async () => {
          const principal = await options.apiKeys.verify(task.apiKey);
          if (!principal) throw invalidApiKey();
          if (session) options.sessions.detach(session, socket);
          const attached = await options.sessions.attach(socket, principal, task.connectionSessionUUID);
          session = attached.session;
          adopted = [...(attached.adopted?.tasks ?? new Map<string, ReadonlySet<string>>())].map(([taskUUID, sent]) => ({ taskUUID, sent }));
          return { taskType: 'authentication', connectionSessionUUID: session.id };
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
      const envelope = parseEnvelope(text);
      if (!envelope.ok) {
        sink.error(envelope.error);
        return;
      }
      // Not awaited: a sync task must not hold up pings or other tasks on the same socket.
      options.dispatcher.dispatch(envelope.tasks, context, sink).catch((error: unknown) => {
        options.logger.error({ err: error }, 'websocket dispatch failed');
        sink.error(new ApiError('internalServerError', 'An internal error occurred while processing the task.'));
      });
    });
    socket.on('close', () => {
      clearTimeout(idle);
      if (session) options.sessions.detach(session, socket);
    });
    socket.on('error', (error) => options.logger.debug({ err: error }, 'websocket error'));
  };
  // A plain GET (a browser, a health probe) gets a short description instead of a bare 404.
  const about = async () => ({
    name: 'Kiln',
    description: 'Runware-compatible image inference for klingai:kling-image@o3',
    rest: 'POST /v1 with a JSON array of tasks (Authorization: Bearer <key>)',
    websocket: 'connect to /v1, then send [{"taskType":"authentication","apiKey":"<key>"}]',
  });
  for (const url of ['/v1', '/v1/', '/']) app.route({ method: 'GET', url, handler: about, wsHandler: handler });
}

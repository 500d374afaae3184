// The WebSocket API as the playground uses it: one authenticated socket, frames routed by taskUUID.

/** One authenticated socket per key; frames are routed to their task by taskUUID. */
export class Connection {
  /** `onClose` runs once the socket is gone (the caller forgets it). */
  constructor(url, key, onClose) {
    this.key = key;
    this.handlers = new Map();
    this.ready = new Promise((resolve, reject) => {
      const socket = new WebSocket(url);
      this.socket = socket;
      socket.addEventListener('open', () => socket.send(JSON.stringify([{ taskType: 'authentication', apiKey: key }])));
      socket.addEventListener('message', (event) => {
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch {
          return;
        }
        for (const item of frame.data ?? []) {
          if (item.taskType === 'authentication') resolve(this);
          else this.handlers.get(item.taskUUID)?.data(item);
        }
        for (const error of frame.errors ?? []) {
          if (error.taskType === 'authentication' || (!error.taskUUID && error.code === 'invalidApiKey')) {
            reject(error);
            socket.close();
          } else if (error.taskUUID && this.handlers.has(error.taskUUID)) this.handlers.get(error.taskUUID).error(error);
          else for (const handler of this.handlers.values()) handler.error(error);
        }
      });
      socket.addEventListener('close', () => {
        reject({ code: 'connectionClosed', message: 'The connection to Kiln closed.' });
        for (const handler of this.handlers.values()) handler.error({ code: 'connectionClosed', message: 'The connection to Kiln closed before the task finished.' });
        onClose(this);
      });
    });
  }

  /** Sends one task and calls `data`/`error` for every answer to it, until `done()` is called. */
  send(task, handlers) {
    this.handlers.set(task.taskUUID, handlers);
    this.socket.send(JSON.stringify([task]));
    return () => this.handlers.delete(task.taskUUID);
  }

  /** One task, one answer. */
  request(task) {
    return new Promise((resolve, reject) => {
      const done = this.send(task, {
        data: (item) => (done(), resolve(item)),
        error: (error) => (done(), reject(error)),
      });
    });
  }
}

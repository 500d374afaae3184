import { createReadStream, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { newUuid } from '../shared/ids.ts';

/**
 * The `ObjectStore` port: opaque bytes by key (local disk by default, S3 when scaled out).
 * Keys are `[A-Za-z0-9._-]+` and never start with a dot.
 */
export interface ObjectStore {
  /** Stores the bytes under the key, replacing what was there; readers never see a partial object. */
  put(key: string, bytes: Uint8Array): Promise<void>;
  /** The bytes, or `undefined` when the key does not exist. */
  get(key: string): Promise<Buffer | undefined>;
  /**
   * A stream of the bytes and their length, or `undefined` when the key does not exist; for
   * serving large objects without holding them in memory. The caller consumes or destroys it.
   */
  open(key: string): Promise<{ stream: Readable; bytes: number } | undefined>;
  /** Deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
  close(): Promise<void>;
}

const SAFE_KEY = /^[A-Za-z0-9._-]+$/;

/**
 * Throws unless `key` is a valid object key: `[A-Za-z0-9._-]+`, not starting with a dot. Every
 * adapter checks with this one function, so a key accepted by one store is accepted by all.
 */
export function assertSafeKey(key: string): void {
  if (!SAFE_KEY.test(key) || key.startsWith('.')) throw new Error(`unsafe object key ${JSON.stringify(key)}`);
}

/**
 * Objects up to this size are written with synchronous calls: a small write lands in the page
 * cache in microseconds, while its asynchronous form costs three hand-offs to libuv's threads
 * (open, write and close, then the rename), each waking a thread and coming back through the
 * event loop. Larger objects (a 4K PNG is tens of megabytes) keep the event loop free.
 */
const SYNC_PUT_BYTES = 256 * 1024;

function putSync(target: string, temp: string, bytes: Uint8Array): void {
  try {
    writeFileSync(temp, bytes);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(temp, bytes);
  }
  renameSync(temp, target);
}

/** Files under one directory, sharded by the key's first two characters; writes are atomic (temp + rename). */
export class LocalObjectStore implements ObjectStore {
  constructor(private readonly root: string) {}

  private pathOf(key: string): string {
    assertSafeKey(key);
    return path.join(this.root, key.slice(0, 2), key);
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    const target = this.pathOf(key);
    const temp = `${target}.${newUuid()}.tmp`;
    if (bytes.byteLength <= SYNC_PUT_BYTES) {
      putSync(target, temp, bytes);
      return;
    }
    try {
      await writeFile(temp, bytes);
    } catch (error) {
      // The shard's directory is made on its first write only (one file-system call less per image).
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(temp, bytes);
    }
    await rename(temp, target);
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.pathOf(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async open(key: string): Promise<{ stream: Readable; bytes: number } | undefined> {
    try {
      const handle = await open(this.pathOf(key), 'r');
      const { size } = await handle.stat();
      // The stream owns the handle and closes it when it ends or is destroyed.
      return { stream: createReadStream('', { fd: handle }), bytes: size };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  async close(): Promise<void> {}
}

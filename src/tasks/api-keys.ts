import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../shared/clock.ts';
import { newUuid } from '../shared/ids.ts';
import type { TaskStore } from '../store/task-store.ts';
import type { Principal } from './task-service.ts';

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** A new key: `kiln_` + 32 random bytes in base64url. */
export function generateApiKey(): string {
  return `kiln_${randomBytes(32).toString('base64url')}`;
}

/** A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

type Verified = Principal & { webhookSecret: string | null };

/** How long a key lookup is trusted: a key revoked or changed in the store takes effect on every process within this time. */
const CACHE_MS = 5_000;
/** Bound on cached lookups (misses included), so random keys cannot grow the cache without limit. */
const CACHE_MAX = 10_000;

/**
 * API keys, stored hashed. Lookups (hits and misses) are cached per process for a few seconds,
 * so the store sees at most one query per key and interval, and a change made by another
 * process is seen within `CACHE_MS`.
 */
export class ApiKeys {
  private readonly cache = new Map<string, { verified: Verified | undefined; at: number }>();

  constructor(
    private readonly store: TaskStore,
    private readonly clock: Clock,
  ) {}

  async verify(key: string): Promise<Verified | undefined> {
    if (typeof key !== 'string' || key.length === 0 || key.length > 512) return undefined;
    const hash = hashApiKey(key);
    const now = performance.now();
    const cached = this.cache.get(hash);
    if (cached && now - cached.at < CACHE_MS) return cached.verified;
    const record = await this.store.findApiKeyByHash(hash);
    // The hash comparison in SQL is by equality; compare again in constant time as a belt.
    const verified =
      record && timingSafeEqual(Buffer.from(record.hash), Buffer.from(hash)) ? { apiKeyId: record.id, webhookSecret: record.webhookSecret } : undefined;
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(hash, { verified, at: now });
    return verified;
  }

  /** Adds a key (idempotent by hash). */
  async add(key: string, label: string, webhookSecret: string | null = null): Promise<void> {
    await this.store.insertApiKey({
      id: newUuid(),
      hash: hashApiKey(key),
      label,
      webhookSecret,
      createdAt: this.clock.now(),
    });
  }

  async count(): Promise<number> {
    return this.store.countApiKeys();
  }
}

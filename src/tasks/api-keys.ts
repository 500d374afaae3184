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

/** API keys, stored hashed. Lookups are cached in memory by hash (keys are never deleted while running). */
export class ApiKeys {
  private readonly cache = new Map<string, Principal & { webhookSecret: string | null }>();

  constructor(
    private readonly store: TaskStore,
    private readonly clock: Clock,
  ) {}

  async verify(key: string): Promise<(Principal & { webhookSecret: string | null }) | undefined> {
    if (typeof key !== 'string' || key.length === 0 || key.length > 512) return undefined;
    const hash = hashApiKey(key);
    const cached = this.cache.get(hash);
    if (cached) return cached;
    const record = await this.store.findApiKeyByHash(hash);
    // The hash comparison in SQL is by equality; compare again in constant time as a belt.
    if (!record || !timingSafeEqual(Buffer.from(record.hash), Buffer.from(hash))) return undefined;
    const principal = { apiKeyId: record.id, webhookSecret: record.webhookSecret };
    this.cache.set(hash, principal);
    return principal;
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

/** What a process does: everything (`serve`), transports only (`api`), or tasks and deliveries (`worker`). */
export type Role = 'serve' | 'api' | 'worker';
export const ROLES: readonly Role[] = ['serve', 'api', 'worker'];

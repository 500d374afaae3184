export * from './api-error.ts';
export * from './factories.ts';

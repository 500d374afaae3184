// Errors shown next to the field their `parameter` names (Runware's error objects).
import { $ } from './dom.js';

/** Which field shows an error, by the error's `parameter` (or code). */
export function fieldFor(error) {
  const parameter = Array.isArray(error.parameter) ? error.parameter[0] : error.parameter;
  if (error.code === 'invalidApiKey' || parameter === 'apiKey') return 'apiKey';
  if (typeof parameter !== 'string') return error.code === 'unsupportedDimensions' ? 'size' : 'general';
  if (parameter === 'width' || parameter === 'height') return 'size';
  if (/^inputs\.elements/.test(parameter)) return 'elements';
  if (/^(inputs\.)?referenceImages|^inputs(\.|$)|^image$/.test(parameter)) return 'references';
  if (parameter.startsWith('providerSettings')) return 'series';
  if (parameter.startsWith('safety') || parameter === 'checkNSFW') return 'safety';
  return $(`${parameter}-error`) ? parameter : 'general';
}

const INPUT_OF = { apiKey: 'apiKey', positivePrompt: 'prompt', size: 'size', references: 'refFile', series: 'seriesAmount', safety: 'safety', elements: 'addElement' };

export function showError(error) {
  const field = fieldFor(error);
  const slot = $(`${field}-error`) ?? $('general-error');
  slot.textContent = error.message ?? String(error);
  slot.closest('.field')?.classList.add('invalid');
  const input = $(INPUT_OF[field] ?? field);
  if (input && field !== 'general') input.setAttribute('aria-invalid', 'true');
  if (field === 'size' && !$('sizeFree').hidden) for (const id of ['width', 'height']) $(id).setAttribute('aria-invalid', 'true');
  return input ?? slot;
}

export function clearErrors() {
  for (const el of document.querySelectorAll('.error')) el.textContent = '';
  for (const el of document.querySelectorAll('.invalid')) el.classList.remove('invalid');
  for (const el of document.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

// The history of this browser's generations, in localStorage (newest first, bounded).

const HISTORY_STORE = 'kiln.history';
const HISTORY_MAX = 30;

export const loadHistory = () => {
  try {
    return JSON.parse(localStorage.getItem(HISTORY_STORE) ?? '[]');
  } catch {
    return [];
  }
};

export function saveHistory(entries) {
  let list = entries.slice(0, HISTORY_MAX);
  // Full storage: drop the oldest until it fits.
  while (list.length > 0) {
    try {
      localStorage.setItem(HISTORY_STORE, JSON.stringify(list));
      return;
    } catch {
      list = list.slice(0, -1);
    }
  }
}

export const clearHistory = () => localStorage.removeItem(HISTORY_STORE);

// Configs are immutable snapshots (the hot path reads them without copying): frozen all the
// way down, URLs left as they are.

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !(value instanceof URL) && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

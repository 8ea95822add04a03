// A buffered writer of whole lines for the access log. Several worker processes may share
// one stdout pipe or one log file: a write(2) of at most PIPE_BUF (4096) bytes to a pipe,
// or any write to a file opened O_APPEND, lands whole. So lines are batched into writes of
// whole lines up to CHUNK_BYTES, never split. The buffer is bounded: when the destination
// cannot keep up, lines are dropped and counted rather than held in memory or waited on.

import { close, closeSync, openSync, write, writeSync } from 'node:fs';

/** PIPE_BUF on Linux: the largest write to a pipe that is never interleaved with another. */
const CHUNK_BYTES = 4096;
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

export type LineWriterOptions = {
  onError?: (err: NodeJS.ErrnoException) => void;
  /** Lines dropped because the destination fell behind by more than the buffer holds. */
  onDrop?: (dropped: number) => void;
  maxBufferedBytes?: number;
};

export class LineWriter {
  readonly #path: string | null;
  readonly #options: LineWriterOptions;
  readonly #max: number;
  #fd: number;
  #lines: string[] = [];
  #bytes = 0;
  #writing = false;
  #dropped = 0;
  #closed = false;
  #idle: (() => void)[] = [];

  /** `path` null writes to stdout. Lines must be ASCII and end with "\n". */
  constructor(path: string | null, options: LineWriterOptions = {}) {
    this.#path = path;
    this.#options = options;
    this.#max = options.maxBufferedBytes ?? MAX_BUFFERED_BYTES;
    this.#fd = path === null ? 1 : openSync(path, 'a');
  }

  write(line: string): void {
    if (this.#closed) return;
    if (this.#bytes + line.length > this.#max) {
      this.#dropped++;
      return;
    }
    this.#lines.push(line);
    this.#bytes += line.length;
    if (this.#bytes >= CHUNK_BYTES) this.#drain();
  }

  /** Starts writing whatever is buffered (the periodic flush calls this). */
  flush(): void {
    if (this.#lines.length > 0) this.#drain();
  }

  /**
   * Opens the file again at its path (after logrotate moved it); stdout stays. Synchronous
   * (it happens on a signal, rarely) so every line written after it goes to the new file.
   */
  reopen(): void {
    if (this.#path === null || this.#closed) return;
    let fd: number;
    try {
      fd = openSync(this.#path, 'a');
    } catch (err) {
      this.#options.onError?.(err as NodeJS.ErrnoException);
      return;
    }
    const old = this.#fd;
    this.#fd = fd;
    // A write in flight finishes on the old descriptor before it is closed.
    this.#whenIdle(() => close(old, () => {}));
  }

  /** Writes everything left, synchronously, and closes a file destination. */
  async close(): Promise<void> {
    if (this.#closed) return;
    // Closed first: the write in flight then starts no other, and the rest goes out here.
    this.#closed = true;
    await new Promise<void>((resolve) => this.#whenIdle(resolve));
    while (this.#lines.length > 0) {
      try {
        writeSync(this.#fd, this.#take());
      } catch (err) {
        this.#options.onError?.(err as NodeJS.ErrnoException);
        break;
      }
    }
    this.#reportDrops();
    if (this.#path !== null) closeSync(this.#fd);
  }

  /** Whole lines from the front of the buffer, up to CHUNK_BYTES (a longer line alone). */
  #take(): string {
    let count = 0;
    let bytes = 0;
    while (count < this.#lines.length && (count === 0 || bytes + this.#lines[count]!.length <= CHUNK_BYTES)) {
      bytes += this.#lines[count]!.length;
      count++;
    }
    const chunk = count === 1 ? this.#lines[0]! : this.#lines.slice(0, count).join('');
    this.#lines.splice(0, count);
    this.#bytes -= bytes;
    return chunk;
  }

  #drain(): void {
    if (this.#writing || this.#lines.length === 0) return;
    this.#writing = true;
    const chunk = this.#take();
    write(this.#fd, chunk, null, 'latin1', (err) => {
      this.#writing = false;
      if (err && err.code !== 'EAGAIN') this.#options.onError?.(err);
      this.#reportDrops();
      const waiting = this.#idle;
      this.#idle = [];
      for (const fn of waiting) fn();
      if (this.#lines.length > 0 && !this.#closed) this.#drain();
    });
  }

  /** Runs `fn` once no write is in flight (at once, or when the current one completes). */
  #whenIdle(fn: () => void): void {
    if (!this.#writing) fn();
    else this.#idle.push(fn);
  }

  #reportDrops(): void {
    if (this.#dropped === 0) return;
    const dropped = this.#dropped;
    this.#dropped = 0;
    this.#options.onDrop?.(dropped);
  }
}

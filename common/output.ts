/**
 * How both programs talk to the operator. Human text goes to stdout (results)
 * and stderr (notes, warnings, progress); with `--json` every line on stdout
 * is one JSON object: `{"event": …}` lines while working and one final
 * `{"ok": true, …}` or `{"ok": false, "error": {code, message, details}}`.
 * `ok` matches the exit status: a command whose answer is "no" without an
 * error (status: not ready; verify: corrupt blobs) passes `ok: false` itself.
 * Progress bars only appear on a TTY and never in JSON mode.
 */
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { AirlockError } from '../manifests/errors.js';

export interface Output {
  readonly json: boolean;
  /** a note for the operator (stderr in human mode, an event line in JSON mode) */
  note(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  /** a machine event in JSON mode; silent in human mode */
  event(name: string, fields: Record<string, unknown>): void;
  /** the final result: `text` for humans, `data` for JSON */
  result(data: Record<string, unknown>, text: string): void;
  failure(err: AirlockError): void;
  /** a byte progress bar (TTY, human mode only); a no-op bar otherwise */
  progress(label: string, total: number): Progress;
}

export interface Progress {
  update(done: number, extra?: { current?: string }): void;
  increment(delta: number): void;
  stop(): void;
}

let programName = 'airlock';

/** The name error lines start with (`airlock-node` for the node client). */
export function setProgramName(name: string): void {
  programName = name;
}

const NO_PROGRESS: Progress = { update() {}, increment() {}, stop() {} };

export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

export interface OutputStreams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

export function createOutput(json: boolean, streams: OutputStreams = process): Output {
  const line = (obj: Record<string, unknown>): void => {
    streams.stdout.write(`${JSON.stringify(obj)}\n`);
  };
  let bars: MultiBar | null = null;
  const say = (text: string): void => {
    if (bars) bars.log(`${text}\n`);
    else streams.stderr.write(`${text}\n`);
  };
  return {
    json,
    note(message, fields = {}) {
      if (json) line({ event: 'note', message, ...fields });
      else say(message);
    },
    warn(message, fields = {}) {
      if (json) line({ event: 'warning', message, ...fields });
      else say(`warning: ${message}`);
    },
    event(name, fields) {
      if (json) line({ event: name, ...fields });
    },
    result(data, text) {
      if (json) line({ ok: true, ...data });
      else if (text) streams.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    },
    failure(err) {
      if (json) line({ ok: false, error: err.toJSON() });
      else streams.stderr.write(`${programName}: ${err.code}: ${err.message}\n`);
    },
    progress(label, total) {
      if (json || !streams.stderr.isTTY) return NO_PROGRESS;
      bars ??= new MultiBar(
        {
          format: ' {label} |{bar}| {percentage}% {done}/{all} {rate} ETA {eta_formatted} {current}',
          hideCursor: true,
          clearOnComplete: false,
          stream: streams.stderr as NodeJS.WritableStream as never,
          etaBuffer: 50,
        },
        Presets.shades_classic,
      );
      const started = Date.now();
      const payload = (done: number, current = ''): Record<string, string> => {
        const secs = Math.max((Date.now() - started) / 1000, 0.001);
        return { label, done: humanBytes(done), all: humanBytes(total), rate: `${humanBytes(done / secs)}/s`, current };
      };
      const bar: SingleBar = bars.create(Math.max(total, 1), 0, payload(0));
      let value = 0;
      let current = '';
      return {
        update(done, extra) {
          value = done;
          if (extra?.current !== undefined) current = extra.current;
          bar.update(Math.min(done, Math.max(total, 1)), payload(done, current));
        },
        increment(delta) {
          value += delta;
          bar.update(Math.min(value, Math.max(total, 1)), payload(value, current));
        },
        stop() {
          bar.stop();
          bars?.remove(bar);
          if (bars && (bars as unknown as { bars: unknown[] }).bars.length === 0) {
            bars.stop();
            bars = null;
          }
        },
      };
    },
  };
}

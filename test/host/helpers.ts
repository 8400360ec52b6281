/**
 * Shared helpers for the host-layer tests. Worker threads and child processes run the compiled
 * dist/ tree (test/global-setup.js builds it), loaded by absolute path from eval'd code.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

import { HostError } from '../../lib/host';

/** Absolute path of the compiled lib/host, for require() inside workers and children. */
export const DIST_HOST = path.resolve(__dirname, '../../dist/lib/host/index.js');

/** A worker running `body` (CommonJS) with `host` = dist/lib/host and `workerData` in scope. */
export function hostWorker(body: string, workerData: unknown): Worker {
  const code =
    `const host = require(${JSON.stringify(DIST_HOST)});\n` +
    `const { parentPort, workerData } = require('node:worker_threads');\n` +
    body;
  return new Worker(code, { eval: true, workerData });
}

/** The next message from a worker (rejects on its error or exit). */
export function nextMessage<T = any>(w: Worker): Promise<T> {
  return new Promise((resolve, reject) => {
    const off = () => {
      w.off('message', onMsg);
      w.off('error', onErr);
      w.off('exit', onExit);
    };
    const onMsg = (m: T) => (off(), resolve(m));
    const onErr = (e: Error) => (off(), reject(e));
    const onExit = (c: number) => (off(), reject(new Error(`worker exited (${c}) before replying`)));
    w.on('message', onMsg);
    w.on('error', onErr);
    w.on('exit', onExit);
  });
}

/** Resolves with `p`, or runs `rescue` after `ms` (e.g. unregister a range so a worker blocked
 * on a fault wakes up and the test fails instead of hanging) and then waits for `p`. */
export async function withRescue<T>(p: Promise<T>, ms: number, rescue: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const rescued = new Promise<void>((resolve) => {
    timer = setTimeout(() => (rescue(), resolve()), ms);
  });
  try {
    await Promise.race([p, rescued]);
    return await p;
  } finally {
    clearTimeout(timer);
  }
}

/** Runs fn and returns the HostError it throws (fails the test if it returns or throws
 * anything else). */
export function hostErrorOf(fn: () => unknown): HostError {
  try {
    fn();
  } catch (e) {
    if (e instanceof HostError) return e;
    throw new Error(`expected a HostError, got ${String(e)}`);
  }
  throw new Error('expected a HostError, but the call returned');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

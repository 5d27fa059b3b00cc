// A datapath worker thread (run by piscina, one long-lived task per thread).
// It only calls the native hot loop in slices and forwards the source MACs the
// loop reports; no JavaScript runs per packet.
import type { MessagePort } from 'node:worker_threads';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { loadNative } from './native.js';

export interface WorkerTask {
  workerId: number;
  /** Int32 at index 0: non-zero asks every worker to stop. */
  stop: SharedArrayBuffer;
  /** Learn events and punted frames go to the control plane through this port. */
  events: MessagePort;
  /** How long one native slice may run before returning to JavaScript. */
  sliceMs: number;
}

export default async function runWorker(task: WorkerTask): Promise<string> {
  const native = loadNative();
  const stop = new Int32Array(task.stop);
  // An empty result first: the supervisor learns that the loop runs (Supervisor.whenRunning).
  task.events.postMessage({ learned: [], punted: [] });
  try {
    while (Atomics.load(stop, 0) === 0) {
      const result = native.workerRun(task.workerId, stop, task.sliceMs);
      if (result.learned.length > 0 || result.punted.length > 0) task.events.postMessage(result);
      await yieldToEventLoop();
    }
  } finally {
    task.events.close();
  }
  return `worker ${task.workerId} stopped`;
}

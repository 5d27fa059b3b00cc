// Runs the datapath workers as piscina tasks and restarts one that fails.
// Stopping goes through a shared stop word: terminate() cannot interrupt a
// native loop (a worker inside C code runs on until the code returns), so the loop itself reads the word between bursts.
import { MessageChannel } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import type { RunResult } from './native.js';
import type { LearnEvent } from '../types.js';
import type { WorkerTask } from './worker.js';

export interface SupervisorOptions {
  workers: number;
  log: Logger;
  onLearn: (events: LearnEvent[]) => void;
  /** Control frames (LACPDUs) the hot loop took off a port. */
  onPunt: (port: number, frame: Buffer) => void;
  sliceMs?: number;
  /** Delay before restarting a failed worker. */
  restartDelayMs?: number;
}

export class Supervisor {
  private readonly pool: Piscina;
  private readonly stopWord = new SharedArrayBuffer(4);
  private readonly running = new Set<Promise<unknown>>();
  private stopping = false;
  readonly restarts: number[];

  constructor(private readonly opts: SupervisorOptions) {
    this.restarts = new Array<number>(opts.workers).fill(0);
    this.pool = new Piscina({
      filename: path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker.js'),
      minThreads: opts.workers,
      maxThreads: opts.workers,
      idleTimeout: Infinity,
      atomics: 'disabled',
      concurrentTasksPerWorker: 1,
    });
  }

  private readonly reported = new Set<number>();
  private allRunning?: () => void;
  private readonly runningAll = new Promise<void>((resolve) => (this.allRunning = resolve));

  start(): void {
    for (let id = 0; id < this.opts.workers; id++) this.launch(id);
  }

  /** Resolves once every worker's hot loop has started (each reports once as it begins). */
  whenRunning(): Promise<void> {
    return this.runningAll;
  }

  private launch(workerId: number): void {
    const channel = new MessageChannel();
    channel.port1.on('message', (result: RunResult) => {
      if (!this.reported.has(workerId) && this.reported.add(workerId).size === this.opts.workers) this.allRunning?.();
      if (result.learned.length > 0) this.opts.onLearn(result.learned);
      for (const p of result.punted) this.opts.onPunt(p.port, Buffer.from(p.frame.buffer, p.frame.byteOffset, p.frame.byteLength));
    });
    const task: WorkerTask = { workerId, stop: this.stopWord, events: channel.port2, sliceMs: this.opts.sliceMs ?? 250 };
    const run = this.pool.run(task, { transferList: [channel.port2] }).then(
      () => undefined,
      (err: unknown) => {
        this.opts.log.error({ worker: workerId, err }, 'datapath worker died');
        if (this.stopping) return;
        this.restarts[workerId] = (this.restarts[workerId] ?? 0) + 1;
        setTimeout(() => {
          if (!this.stopping) {
            this.opts.log.warn({ worker: workerId }, 'restarting datapath worker');
            this.launch(workerId);
          }
        }, this.opts.restartDelayMs ?? 500);
      },
    );
    const tracked = run.finally(() => {
      channel.port1.close();
      this.running.delete(tracked);
    });
    this.running.add(tracked);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    Atomics.store(new Int32Array(this.stopWord), 0, 1);
    await Promise.all([...this.running]);
    await this.pool.destroy();
  }
}

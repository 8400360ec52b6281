/**
 * The run-state changes a migration causes (QEMU's runstate_set calls in migration.c and
 * savevm.c), in one place. The migration manager owns one per machine and hands it to the
 * outgoing and incoming engines; nothing else in the migration layer writes the run state.
 *
 *   source       running|paused ──switchover──▶ finish-migrate ──completed──▶ postmigrate
 *                                  failure or cancel before completion ──▶ running again if it
 *                                  ran, else paused (migration_iteration_finish)
 *   destination  prelaunch ──incoming starts──▶ inmigrate ──loaded──▶ running, or paused when
 *                                  started with -S or the source was paused
 *                                  failure ──▶ paused
 */
import type { VirtMachine } from '../machine/virt';

export class MigrationRunState {
  constructor(private readonly machine: VirtMachine) {}

  get running(): boolean {
    return this.machine.running;
  }

  get current(): string {
    return this.machine.runState;
  }

  /** Source: stop the guest for the switchover (vm_stop_force_state(FINISH_MIGRATE)). */
  async stopForSwitchover(): Promise<void> {
    await this.machine.stop('finish-migrate');
  }

  /** Source: the destination has the guest now. */
  outgoingCompleted(): void {
    this.machine.runState = 'postmigrate';
  }

  /** Source: a migration that did not complete leaves the guest as it was. */
  outgoingFailed(wasRunning: boolean): void {
    const m = this.machine;
    if (m.runState === 'shutdown') return;
    if (wasRunning && !m.running) m.cont();
    else if (!wasRunning && m.runState === 'finish-migrate') m.runState = 'paused';
  }

  /** Destination: waiting for, then loading, a stream. */
  incomingStarted(): void {
    this.machine.runState = 'inmigrate';
  }

  /** Destination: loaded; run the guest when the source ran it and -S was not given. */
  incomingCompleted(run: boolean): void {
    if (run) this.machine.cont();
    else this.machine.runState = 'paused';
  }

  incomingFailed(): void {
    this.machine.runState = 'paused';
  }
}

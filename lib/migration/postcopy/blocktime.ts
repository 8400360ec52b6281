/**
 * Postcopy blocktime and remote-fault latency (QEMU postcopy-ram.c blocktime context,
 * docs/devel/migration/postcopy.rst "Postcopy blocktime"): fed with faults as the fault thread
 * reads them and with placements of the pages they wait for.
 *
 *   per vCPU     time it spent blocked: from its fault to the placement of that page
 *   total        time during which every vCPU was blocked at once
 *   latency      per remote fault, fault → placement; the average over all faults, per vCPU,
 *                for non-vCPU threads, and a histogram of 24 log2 buckets in µs: bucket N
 *                counts [2^N, 2^(N+1)) µs, the last bucket everything longer
 *
 * A page may have faults from several threads waiting for it. A thread faults on one address
 * at a time, but the tracker may still see a vCPU waiting for two pages: the placement of the
 * first reaches the worker through the placement ring, and the vCPU's next fault can be read
 * from userfaultfd before it. So, as QEMU does (vcpu_faults_current), a vCPU counts as blocked
 * until its last outstanding fault is resolved; its blocktime is the sum of its waits, each
 * from its fault to the time its page was placed. Times are milliseconds (floats).
 */

export const LATENCY_BUCKETS = 24;

interface Waiter {
  /** vCPU index, or -1 for a thread that is not a vCPU */
  vcpu: number;
  since: number;
}

export interface BlocktimeStats {
  /** ms per vCPU */
  vcpuBlocktime: number[];
  /** ms during which all vCPUs were blocked */
  totalBlocktime: number;
  faults: number;
  /** ms, summed over all faults resolved */
  latencySum: number;
  vcpuLatencySum: number[];
  vcpuFaults: number[];
  nonVcpuLatencySum: number;
  nonVcpuFaults: number;
  latencyHistogram: number[];
}

export class BlocktimeTracker {
  private readonly waiting = new Map<number, Waiter[]>();
  /** per vCPU: the faults it waits on, as far as the tracker knows */
  private readonly outstanding: number[];
  private blockedCount = 0;
  private allBlockedSince = -1;
  readonly stats: BlocktimeStats;

  constructor(readonly vcpus: number) {
    this.outstanding = new Array<number>(vcpus).fill(0);
    this.stats = {
      vcpuBlocktime: new Array<number>(vcpus).fill(0),
      totalBlocktime: 0,
      faults: 0,
      latencySum: 0,
      vcpuLatencySum: new Array<number>(vcpus).fill(0),
      vcpuFaults: new Array<number>(vcpus).fill(0),
      nonVcpuLatencySum: 0,
      nonVcpuFaults: 0,
      latencyHistogram: new Array<number>(LATENCY_BUCKETS).fill(0),
    };
  }

  /** Pages with a fault waiting. */
  get pending(): number {
    return this.waiting.size;
  }

  /** A fault on `page` (a key unique over all blocks) by `vcpu` (-1: not a vCPU) at `now`. */
  fault(page: number, vcpu: number, now: number): void {
    const list = this.waiting.get(page);
    if (list) {
      // The same thread faulting again on the same page (a spurious wakeup) is one wait.
      if (list.some((w) => w.vcpu === vcpu && vcpu >= 0)) return;
      list.push({ vcpu, since: now });
    } else {
      this.waiting.set(page, [{ vcpu, since: now }]);
    }
    if (vcpu < 0 || vcpu >= this.vcpus) return;
    if (this.outstanding[vcpu]++ === 0 && ++this.blockedCount === this.vcpus) this.allBlockedSince = now;
  }

  /** `page` was placed at `now`: every thread waiting for it runs again. */
  placed(page: number, now: number): void {
    const list = this.waiting.get(page);
    if (!list) return;
    this.waiting.delete(page);
    const s = this.stats;
    for (const w of list) {
      const latency = Math.max(0, now - w.since);
      s.faults++;
      s.latencySum += latency;
      s.latencyHistogram[bucket(latency)]++;
      if (w.vcpu < 0 || w.vcpu >= this.vcpus) {
        s.nonVcpuFaults++;
        s.nonVcpuLatencySum += latency;
        continue;
      }
      s.vcpuFaults[w.vcpu]++;
      s.vcpuLatencySum[w.vcpu] += latency;
      s.vcpuBlocktime[w.vcpu] += latency;
      if (--this.outstanding[w.vcpu] > 0) continue;
      if (this.blockedCount === this.vcpus && this.allBlockedSince >= 0) {
        s.totalBlocktime += now - this.allBlockedSince;
        this.allBlockedSince = -1;
      }
      this.blockedCount--;
    }
  }

  /** Pages some thread is waiting for (to ask again after a recovery). */
  waitingPages(): number[] {
    return [...this.waiting.keys()];
  }
}

/** Histogram bucket of a latency in ms: floor(log2(µs)), clamped to the 24 buckets. */
export function bucket(ms: number): number {
  const us = ms * 1000;
  if (us < 2) return 0;
  return Math.min(LATENCY_BUCKETS - 1, Math.floor(Math.log2(us)));
}

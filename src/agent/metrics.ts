/**
 * Prometheus metrics, read from the ledger's events (not recomputed) plus gauges read from the
 * ledger and the cgroups at scrape time. prom-client stays inside this file.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Enforcer } from '../enforce/enforcer.js';
import type { LedgerClient } from '../ledger/ledger-client.js';
import type { StoredEvent } from '../ledger/ledger.js';
import { priorityClassOf } from '../model/priority.js';
import type { Reservation } from '../model/reservation.js';
import { dimensionsOf, sum } from '../model/vector.js';
import { heldBy } from '../admission/holdings.js';
import { kindOf, type QuantityKind } from '../model/quantity.js';

/** A quantity kind's Prometheus base unit, and what rrm's integer divides by to reach it. */
const BASE_UNIT: Readonly<Record<QuantityKind, readonly [string, number]>> = {
  cpu: ['core', 1000],
  bytes: ['byte', 1],
  rate: ['byte_per_second', 1],
  count: ['count', 1],
};

const OUTCOMES = new Set([
  'granted',
  'rejected',
  'released',
  'expired',
  'preempted',
  'timed-out',
  'cancelled',
  'queued',
]);

export class AgentMetrics {
  readonly registry = new Registry();
  private lastSeq = 0;
  private readonly reservations = new Counter({
    name: 'rrm_reservations_total',
    help: 'Reservation transitions by outcome, mode and priority class.',
    labelNames: ['outcome', 'mode', 'priority_class'] as const,
    registers: [this.registry],
  });
  private readonly waitSeconds = new Histogram({
    name: 'rrm_wait_seconds',
    help: 'Time from request to grant.',
    buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 1800],
    registers: [this.registry],
  });
  readonly admissionSeconds = new Histogram({
    name: 'rrm_admission_latency_seconds',
    help: 'Time the agent takes to decide on a reservation request.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
    registers: [this.registry],
  });
  private readonly preemptions = new Counter({
    name: 'rrm_preemptions_total',
    help: 'Preemptions by action (pause or evict).',
    labelNames: ['action'] as const,
    registers: [this.registry],
  });
  private readonly leaseExpiries = new Counter({
    name: 'rrm_lease_expiries_total',
    help: 'Reservations ended because their holder died or stopped renewing.',
    registers: [this.registry],
  });
  private readonly profileRatio = new Histogram({
    name: 'rrm_profile_memory_ratio',
    help: 'Requested memory over measured peak memory of finished installs.',
    buckets: [0.25, 0.5, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 4, 8],
    registers: [this.registry],
  });

  constructor(ledger: LedgerClient, enforcer: Enforcer) {
    new Gauge({
      name: 'rrm_agent_start_time_seconds',
      help: 'When the agent started (Unix time).',
      registers: [this.registry],
    }).set(Date.now() / 1000);
    // One gauge per quantity with resource and unit labels, in base units, as kube-state-metrics
    // exports kube_node_status_allocatable{resource, unit}.
    const allocatable = new Gauge({
      name: 'rrm_allocatable',
      help: 'Allocatable per instance and resource, in base units (unit: core, byte, byte_per_second, count).',
      labelNames: ['instance', 'resource', 'unit'] as const,
      registers: [this.registry],
    });
    const reserved = new Gauge({
      name: 'rrm_reserved',
      help: 'Held by grants per instance and resource, in base units (unit: core, byte, byte_per_second, count).',
      labelNames: ['instance', 'resource', 'unit'] as const,
      registers: [this.registry],
    });
    const queueDepth = new Gauge({
      name: 'rrm_queue_depth',
      help: 'Waiting requests per instance.',
      labelNames: ['instance'] as const,
      registers: [this.registry],
    });
    const measuredMemory = new Gauge({
      name: 'rrm_running_peak_memory_bytes',
      help: 'Sum of the peak memory of the installs running now, measured from their cgroups.',
      registers: [this.registry],
    });
    const measuredCpu = new Gauge({
      name: 'rrm_running_cpu_seconds',
      help: 'CPU time used so far by the installs running now, measured from their cgroups.',
      registers: [this.registry],
    });
    const collectors = async (): Promise<void> => {
      const active = await ledger.list({ states: ['granted', 'queued'], limit: 100_000 });
      for (const inst of await ledger.instances()) {
        const mine = active.filter((r) => r.instance === inst.id);
        const held = sum(mine.map(heldBy));
        for (const d of dimensionsOf(inst.allocatable, held)) {
          const [unit, scale] = BASE_UNIT[kindOf(d)];
          const labels = { instance: inst.id, resource: d, unit };
          allocatable.set(labels, (inst.allocatable[d] ?? 0) / scale);
          reserved.set(labels, (held[d] ?? 0) / scale);
        }
        queueDepth.set({ instance: inst.id }, mine.filter((r) => r.state === 'queued').length);
      }
      let peak = 0;
      let cpu = 0;
      for (const r of active) {
        const u = r.state === 'granted' ? enforcer.open(r.id)?.measure() : undefined;
        peak += u?.peakMemoryBytes ?? 0;
        cpu += (u?.cpuUsageUsec ?? 0) / 1e6;
      }
      measuredMemory.set(peak);
      measuredCpu.set(cpu);
    };
    this.collect = collectors;
  }

  /** Refreshes the scrape-time gauges. */
  readonly collect: () => Promise<void>;

  /** Starts counting from now: counters describe what happened since the agent started. */
  async start(ledger: LedgerClient): Promise<void> {
    const [last] = (await ledger.events({ limit: 1 })).slice(-1);
    this.lastSeq = last?.seq ?? 0;
  }

  /** Counts the events committed since the last call (called on every ledger change). */
  async observe(ledger: LedgerClient): Promise<void> {
    const events = await ledger.events({ afterSeq: this.lastSeq, limit: 10_000 });
    if (events.length === 0) return;
    const cache = new Map<string, Reservation | undefined>();
    for (const e of events) await this.count(e, ledger, cache);
    this.lastSeq = events[events.length - 1]!.seq;
  }

  private async count(
    e: StoredEvent,
    ledger: LedgerClient,
    cache: Map<string, Reservation | undefined>,
  ): Promise<void> {
    if (!e.reservation) return;
    if (!cache.has(e.reservation)) cache.set(e.reservation, await ledger.get(e.reservation));
    const r = cache.get(e.reservation);
    if (OUTCOMES.has(e.type)) {
      this.reservations.inc({
        outcome: e.type,
        mode: r?.mode ?? 'unknown',
        priority_class: r ? priorityClassOf(r.priority) : 'unknown',
      });
    }
    if (e.type === 'granted' && r) this.waitSeconds.observe(Math.max(0, (e.at - r.createdAt) / 1000));
    if (e.type === 'preempt-requested') this.preemptions.inc({ action: String(e.data?.action ?? 'evict') });
    if (e.type === 'expired') this.leaseExpiries.inc();
    const usage = e.data?.usage as Record<string, number> | undefined;
    if (e.type === 'released' && usage?.peakMemoryBytes && r?.requests.memory) {
      this.profileRatio.observe(r.requests.memory / usage.peakMemoryBytes);
    }
  }
}

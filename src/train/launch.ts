/**
 * Where this process sits in a distributed job, read from the environment `torchrun` (or any launcher that
 * follows its conventions) sets: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`,
 * `MASTER_PORT`, and, under torchrun's elastic agent, `TORCHELASTIC_USE_AGENT_STORE` (the agent already serves
 * the TCP store: every worker connects as a client) and `TORCHELASTIC_RESTART_COUNT` (the attempt, which
 * prefixes the store's keys). Without `WORLD_SIZE` the job is one process. Pure: no tensors.
 * @module
 */
import { ConfigError } from "../errors.ts";

/** A process's place in a distributed job. */
export interface LaunchEnv {
  /** Global rank, 0 ≤ rank < worldSize. */
  rank: number;
  /** Number of processes in the job. */
  worldSize: number;
  /** Rank on this host (picks the GPU). */
  localRank: number;
  /** Processes on this host. */
  localWorldSize: number;
  /** Host of the rendezvous store. */
  masterAddr: string;
  /** Port of the rendezvous store. */
  masterPort: number;
  /** Whether torchrun's agent serves the store (then rank 0 does not). */
  agentStore: boolean;
  /** The launcher's restart count (a fresh key space per attempt). */
  restartCount: number;
}

/** Reads an environment variable (default: the process environment). */
export type EnvReader = (name: string) => string | undefined;

const processEnv: EnvReader = (name) => Deno.env.get(name);

function int(read: EnvReader, name: string, fallback?: number): number {
  const v = read(name);
  if (v === undefined || v === "") {
    if (fallback !== undefined) return fallback;
    throw new ConfigError(name, `${name} must be set in a distributed launch (WORLD_SIZE is set)`);
  }
  if (!/^\d+$/.test(v.trim())) {
    throw new ConfigError(name, `${name} must be a non-negative integer, got '${v}'`);
  }
  return Number(v.trim());
}

/**
 * The launch environment, or null when `WORLD_SIZE` is not set (a single process). A set but inconsistent
 * environment (a rank outside the world, a missing `MASTER_ADDR` with more than one process) is a ConfigError
 * naming the variable.
 */
export function launchEnv(read: EnvReader = processEnv): LaunchEnv | null {
  if (read("WORLD_SIZE") === undefined) return null;
  const worldSize = int(read, "WORLD_SIZE");
  if (worldSize < 1) throw new ConfigError("WORLD_SIZE", "WORLD_SIZE must be at least 1");
  const rank = int(read, "RANK", worldSize === 1 ? 0 : undefined);
  if (rank >= worldSize) throw new ConfigError("RANK", `RANK ${rank} is not below WORLD_SIZE ${worldSize}`);
  const localWorldSize = int(read, "LOCAL_WORLD_SIZE", worldSize);
  const localRank = int(read, "LOCAL_RANK", rank % localWorldSize);
  if (localRank >= localWorldSize) {
    throw new ConfigError(
      "LOCAL_RANK",
      `LOCAL_RANK ${localRank} is not below LOCAL_WORLD_SIZE ${localWorldSize}`,
    );
  }
  const masterAddr = read("MASTER_ADDR") ?? (worldSize === 1 ? "127.0.0.1" : undefined);
  if (!masterAddr) throw new ConfigError("MASTER_ADDR", "MASTER_ADDR must be set when WORLD_SIZE > 1");
  const masterPort = int(read, "MASTER_PORT", worldSize === 1 ? 29500 : undefined);
  if (masterPort < 1 || masterPort > 65535) {
    throw new ConfigError("MASTER_PORT", `MASTER_PORT must be in 1..65535, got ${masterPort}`);
  }
  const agent = (read("TORCHELASTIC_USE_AGENT_STORE") ?? "").toLowerCase();
  return {
    rank,
    worldSize,
    localRank,
    localWorldSize,
    masterAddr,
    masterPort,
    agentStore: agent === "true" || agent === "1",
    restartCount: int(read, "TORCHELASTIC_RESTART_COUNT", 0),
  };
}

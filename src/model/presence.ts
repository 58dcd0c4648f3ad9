/** What an agent says about itself when it registers its instance (informational). */
export interface AgentPresence {
  readonly host: string;
  readonly pid: number;
  readonly since: number;
  /** The enforcement driver in use there (cgroup2, cgroup1, hybrid, none). */
  readonly driver: string;
  /** Where its API listens, if anywhere but a local socket. */
  readonly endpoint?: string;
  readonly version?: string;
}

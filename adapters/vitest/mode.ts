/** Turning test mode on: the core records who acquires what, and reports are charged to runs. */
import { chargeReports } from './charges.js';
import { installProbe } from './runs.js';

/** Idempotent. Called by the setup file and by the first expectNoLeaks(). */
export function enableTestMode(): void {
  installProbe();
  chargeReports();
}

// The console's entry: the runs list at `/`, a run's page at `/runs/{id}`; the token dialog.

import { askToken, token } from "./api";
import { say } from "./dom";
import { showRun } from "./run";
import { showRuns } from "./runs";

async function main(): Promise<void> {
  const root = document.getElementById("app")!;
  const controller = new AbortController();
  document.getElementById("token-button")!.addEventListener("click", () => {
    void askToken(token() ? "Replace the API token." : "The API token (API_TOKEN or a line of API_TOKENS_FILE).").then(() => location.reload());
  });
  const match = location.pathname.match(/^\/runs\/([^/]+)$/);
  try {
    if (match) await showRun(root, decodeURIComponent(match[1]), controller.signal);
    else await showRuns(root, controller.signal);
  } catch (e) {
    say(e instanceof Error ? e.message : String(e), true);
  }
}

void main();

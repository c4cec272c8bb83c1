#!/usr/bin/env bash
# Browser end-to-end test of the web client: headless Chromium (driven by
# playwright-core) signs up two users through the UI, logs them in, and has
# them chat in a room (typing indicator, live messages, acks, read receipts).
# Needs the local services (make services); builds and starts its own
# `chatflow dev` node on a free port and stops it on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
	if [ "$(id -u)" = 0 ]; then
		env DEBIAN_FRONTEND=noninteractive "$@"
	else
		sudo env DEBIAN_FRONTEND=noninteractive "$@"
	fi
}

# 1. Chromium from Debian (browsers cannot download their own builds here).
if [ ! -x /usr/bin/chromium ]; then
	echo "e2e: installing Debian chromium"
	as_root apt-get install -y -q chromium || {
		as_root apt-get update -q
		as_root apt-get install -y -q chromium
	}
fi

# Reactions and room buttons are emoji: without a colour emoji font the
# screenshots show empty boxes.
if ! fc-list 2>/dev/null | grep -qi 'color emoji'; then
	echo "e2e: installing fonts-noto-color-emoji"
	as_root apt-get install -y -q fonts-noto-color-emoji || true
fi

# 2. playwright-core, pinned by e2e/package-lock.json.
want=$(node -p "require('./e2e/package-lock.json').packages['node_modules/playwright-core'].version")
have=$(node -p "try { require('./e2e/node_modules/playwright-core/package.json').version } catch { '' }")
if [ "$want" != "$have" ]; then
	echo "e2e: installing playwright-core $want"
	(cd e2e && npm ci --no-audit --no-fund --loglevel=error)
fi

# 3. A chatflow node (api + workers) on a free port.
go build -o bin/chatflow ./cmd/chatflow
port=${E2E_PORT:-$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")}
base="http://127.0.0.1:$port"
mkdir -p e2e/screenshots
log=e2e/screenshots/server.log
# Default abuse limits, counted under a key prefix of this run's own (every
# run signs up from 127.0.0.1: earlier runs must not use up its budget).
HTTP_ADDR="127.0.0.1:$port" METRICS_ADDR=127.0.0.1:0 NODE_ID=e2e BCRYPT_COST=4 RATE_KEY_PREFIX="rl:e2e-$$-$RANDOM:" bin/chatflow dev >"$log" 2>&1 &
pid=$!
stop_server() {
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM

echo "e2e: waiting for $base/readyz"
ready=
for _ in $(seq 1 120); do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "e2e: chatflow dev exited early; its log:" >&2
		tail -n 50 "$log" >&2
		exit 1
	fi
	if curl -fsS -m 2 "$base/readyz" >/dev/null 2>&1; then
		ready=1
		break
	fi
	sleep 0.5
done
if [ -z "$ready" ]; then
	echo "e2e: $base/readyz never answered 200; server log:" >&2
	tail -n 50 "$log" >&2
	exit 1
fi

# 4. The browser tests: the chat basics, then the issue-12 features at a
# desktop and a phone size (E2E_SCRIPTS picks some of them).
for script in ${E2E_SCRIPTS:-chat features}; do
	if ! E2E_BASE_URL="$base" node "e2e/$script.e2e.mjs"; then
		echo "e2e: $script FAILED; last lines of the server log ($log):" >&2
		tail -n 30 "$log" >&2
		exit 1
	fi
done

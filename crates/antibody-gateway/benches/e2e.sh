#!/usr/bin/env bash
# End-to-end latency of the LLM gateway (and its MCP proxy: `tools/call`) beside a direct
# call and a bare TCP relay (socat),
# all in the same run, load generator on the same machine. Needs the release build:
#   cargo build --release -p antibody -p antibody-gateway --bins --examples
# and socat (apt-get install -y socat). Policies (a gateway section with limits), verdict
# lookups and prompt scanning (detect) are on. Prints the loadgen output per case.
# MCP_ONLY=1 runs the MCP rounds alone.
set -euo pipefail
cd "$(dirname "$0")/../../.."
bin=target/release/antibody
gen=target/release/examples/gw_loadgen
key=ab_test_bootstrap_admin_key_0123456789
n=${N:-20000}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
"$gen" upstream 127.0.0.1:19100 2>/dev/null &
GW_CHUNK_GAP_MS=10 "$gen" upstream 127.0.0.1:19104 2>/dev/null &
"$gen" mcp-upstream 127.0.0.1:19105 2>/dev/null &
socat TCP-LISTEN:19101,fork,reuseaddr,nodelay TCP:127.0.0.1:19100,nodelay &
socat TCP-LISTEN:19106,fork,reuseaddr,nodelay TCP:127.0.0.1:19105,nodelay &
cat > "$tmp/antibody.toml" <<TOML
[gateway]
listen = "127.0.0.1:19102"
scan = "detect"
[[gateway.providers]]
name = "fake"
url = "http://127.0.0.1:19100"
default = true
[[gateway.providers]]
name = "drip"
url = "http://127.0.0.1:19104"
agents = ["agent:drip-*"]
[gateway.prices."fake-model"]
input_per_mtok = 0.15
output_per_mtok = 0.60
[[gateway.mcp_servers]]
name = "bench"
url = "http://127.0.0.1:19105/mcp"
TOML
ANTIBODY_ADMIN_KEY=$key "$bin" serve --listen 127.0.0.1:19103 --data-dir "$tmp/data" \
  --config "$tmp/antibody.toml" 2>"$tmp/log" &
for _ in $(seq 100); do grep -q "listening on" "$tmp/log" && break; sleep 0.1; done
curl -sf -X PUT http://127.0.0.1:19103/v1/policy -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/toml' --data-binary @- >/dev/null <<TOML
[gateway.tenant]
requests_per_minute = 100000000
tokens_per_minute = 100000000000
usd_per_day = 1000000.0
[gateway.teams.bench]
agents = ["agent:bench-*"]
[gateway.teams.bench.limits]
requests_per_minute = 100000000
[gateway.models."fake-model"]
usd_per_day = 1000000.0
TOML
one() { echo "== $1"; shift; "$gen" measure "$@"; }
if [ -n "${MCP_ONLY:-}" ]; then
  for round in 1 2 3; do
    echo "#### round $round"
    one "direct, mcp tools/call, c=1" 127.0.0.1:19105 "$n" 1 mcp
    one "socat, mcp tools/call, c=1" 127.0.0.1:19106 "$n" 1 mcp
    one "gateway, mcp tools/call, c=1" 127.0.0.1:19102 "$n" 1 mcp
  done
  exit 0
fi
for round in 1 2 3; do
  echo "#### round $round"
  one "direct, buffered, c=1" 127.0.0.1:19100 "$n" 1
  one "socat, buffered, c=1" 127.0.0.1:19101 "$n" 1
  one "gateway, buffered, c=1" 127.0.0.1:19102 "$n" 1
  one "direct, stream, c=1" 127.0.0.1:19100 "$((n / 4))" 1 stream
  one "socat, stream, c=1" 127.0.0.1:19101 "$((n / 4))" 1 stream
  one "gateway, stream, c=1" 127.0.0.1:19102 "$((n / 4))" 1 stream
  one "direct, mcp tools/call, c=1" 127.0.0.1:19105 "$n" 1 mcp
  one "socat, mcp tools/call, c=1" 127.0.0.1:19106 "$n" 1 mcp
  one "gateway, mcp tools/call, c=1" 127.0.0.1:19102 "$n" 1 mcp
done
one "direct, buffered, c=64 (throughput)" 127.0.0.1:19100 $((n * 10)) 64
one "gateway, buffered, c=64 (throughput)" 127.0.0.1:19102 $((n * 10)) 64
echo "== 512 concurrent streams, 10 chunks 10 ms apart, through the gateway"
GW_AGENT=drip "$gen" measure 127.0.0.1:19102 512 512 stream
echo "== the same, direct"
"$gen" measure 127.0.0.1:19104 512 512 stream
curl -sf "http://127.0.0.1:19103/metrics" | grep -E '^antibody_events_(accepted|processed)' || true

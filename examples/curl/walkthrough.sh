#!/usr/bin/env bash
# A walk through the gateway with curl. Start one first, e.g. `lifeline serve --dev`, and export what it prints:
#   LIFELINE_URL, LIFELINE_KEY (client key), LIFELINE_ADMIN_URL, LIFELINE_ADMIN_KEY.
set -euo pipefail
: "${LIFELINE_URL:?}" "${LIFELINE_KEY:?}" "${LIFELINE_ADMIN_URL:?}" "${LIFELINE_ADMIN_KEY:?}"
MODEL=${LIFELINE_MODEL:-gpt-4o}
say() { printf '\n== %s\n' "$*"; }

say "The names the gateway serves"
curl -sS "$LIFELINE_URL/openai/v1/models" -H "api-key: $LIFELINE_KEY"; echo

say "A chat completion on the Azure deployment path (the region that answered is in x-lifeline-region)"
curl -sS -D - -o /tmp/lifeline-chat.json "$LIFELINE_URL/openai/deployments/$MODEL/chat/completions?api-version=2024-10-21" \
  -H "api-key: $LIFELINE_KEY" -H "Content-Type: application/json" \
  -d '{"messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}' | grep -i '^x-lifeline'
cat /tmp/lifeline-chat.json; echo

say "The same on the v1 path, with the key as a Bearer token"
curl -sS "$LIFELINE_URL/openai/v1/chat/completions" -H "Authorization: Bearer $LIFELINE_KEY" \
  -H "Content-Type: application/json" -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":8}"; echo

say "Streaming: server-sent events, passed through as they arrive"
curl -sS -N "$LIFELINE_URL/v1/chat/completions" -H "Authorization: Bearer $LIFELINE_KEY" \
  -H "Content-Type: application/json" \
  -d "{\"model\":\"$MODEL\",\"stream\":true,\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

say "Region states (admin API)"
curl -sS "$LIFELINE_ADMIN_URL/admin/regions" -H "Authorization: Bearer $LIFELINE_ADMIN_KEY"; echo

FIRST=$(curl -sS -o /dev/null -D - "$LIFELINE_URL/openai/v1/chat/completions" -H "api-key: $LIFELINE_KEY" \
  -H "Content-Type: application/json" -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" \
  | tr -d '\r' | awk -F': ' 'tolower($1)=="x-lifeline-region"{print $2}')
say "Manual failover: disable $FIRST, and the next request is answered elsewhere"
curl -sS -X POST "$LIFELINE_ADMIN_URL/admin/regions/$FIRST/disable" -H "Authorization: Bearer $LIFELINE_ADMIN_KEY"; echo
curl -sS -o /dev/null -D - "$LIFELINE_URL/openai/v1/chat/completions" -H "api-key: $LIFELINE_KEY" \
  -H "Content-Type: application/json" -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" | grep -i '^x-lifeline'
curl -sS -X POST "$LIFELINE_ADMIN_URL/admin/regions/$FIRST/enable" -H "Authorization: Bearer $LIFELINE_ADMIN_KEY"; echo
say "Done"

#!/bin/sh
# Start a gateway, make a key with a budget, and call it with curl.
#   export LLAMAROUTE_MASTER_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')
#   llamaroute serve --config examples/gateway/gateway.toml --port 4000 &
set -eu
KEY=$(llamaroute keys create --name team-a --budget 50 --rpm 600 \
      --models llama-3.2-3b,llama-3.2-11b-vision --db examples/gateway/gateway.sqlite3 | tail -n 1)

curl -sS http://127.0.0.1:4000/v1/chat/completions \
  -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \
  -H "x-llamaroute-tags: onboarding" \
  -d '{"model": "llama-3.2-3b", "user": "alice", "max_tokens": 100,
       "messages": [{"role": "user", "content": "Say hello in French."}]}'

# What team-a has spent, by tag (the master key):
curl -sS "http://127.0.0.1:4000/v1/spend?by=tag" -H "Authorization: Bearer $LLAMAROUTE_MASTER_KEY"

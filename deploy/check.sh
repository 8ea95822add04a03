#!/usr/bin/env bash
# Validates deploy/ without a Docker engine and without the target hosts:
#   - ansible-playbook --syntax-check on ansible/playbook.yml (Debian's `ansible`, which also
#     ships the community.docker collection the playbook uses: unknown modules fail here);
#   - stack.yml and compose.yml against the Compose schema, with the first of:
#     `docker stack config` (the loader `docker stack deploy` itself uses) for stack.yml,
#     `docker compose config` (the compose plugin), `docker-compose config` (Debian's
#     docker-compose). None of them talks to an engine.
# test/deploy.test.ts checks the content (example configs against the real schema, the
# stack's shape). Missing tools are installed when running as root, as .ci/run does;
# otherwise this skips loudly, or fails when CI is set.
set -euo pipefail
cd "$(dirname "$0")"
say() { printf 'deploy/check: %s\n' "$*"; }

need=()
command -v ansible-playbook >/dev/null || need+=(ansible)
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then need+=(docker-compose); fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  elif [ -n "${CI:-}" ]; then
    say "FAIL: missing ${need[*]} (Debian packages) and not root to install them"
    exit 1
  else
    say "SKIPPED: missing ${need[*]} (Debian packages); install them to check deploy/"
    exit 0
  fi
fi

say "ansible-playbook --syntax-check ansible/playbook.yml"
ansible-playbook --syntax-check -i ansible/inventory ansible/playbook.yml >/dev/null

compose_config() {
  if docker compose version >/dev/null 2>&1; then
    docker compose -f "$1" config -q
  else
    docker-compose -f "$1" config -q
  fi
}

for stack in stack.yml rollback/nginx-stack.yml; do
  if command -v docker >/dev/null && docker stack config --help >/dev/null 2>&1; then
    say "docker stack config -c $stack"
    docker stack config -c "$stack" >/dev/null
  fi
  say "compose config $stack"
  compose_config "$stack"
done
say "compose config compose.yml"
compose_config compose.yml

say "ok"

#!/usr/bin/env bash
# chittyctl's bash completion (packaging/bash-completion/chittyctl) under the
# real bash-completion framework: subcommands, options, audit's own
# subcommands, catalog types from the configuration, files, and the command
# after `run --`.
set -euo pipefail
src=${CHITTY_SOURCE_ROOT:?set by meson}
framework=/usr/share/bash-completion/bash_completion
[[ -r $framework ]] || { echo "FAIL: $framework missing (bash-completion; run scripts/install-deps.sh)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/chitty-completion.XXXXXX")
trap 'rm -rf "$work"' EXIT
cat >"$work/agent.toml" <<'TOML'
[[credential]]
type = "openai_api_key"
ref = "op://ChittyOS Integrations/OpenAI API/api_key"
[[credential]]
type = "chittyid_service_token"
ref = "op://ChittyOS Services/ChittyID Service Token/service_token"
TOML
touch "$work/template.tmpl"

# complete LINE: the words bash would offer at the end of LINE.
cat >"$work/run.sh" <<'SH'
source "$1"
source "$2"
compopt() { :; }  # (only meaningful inside a real completion)
shift 2
line=$1
read -ra COMP_WORDS <<<"$line"
[[ $line == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE=$line
COMP_POINT=${#line}
_chittyctl chittyctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}" | sort
SH
complete_line() {
  (cd "$work" && CHITTY_AGENT_CONFIG="$work/agent.toml" bash "$work/run.sh" "$framework" \
    "$src/packaging/bash-completion/chittyctl" "$1")
}
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() {  # expect LINE WORD...: each WORD is offered
  local line=$1 got; shift
  got=$(complete_line "$line")
  for w in "$@"; do grep -qx -- "$w" <<<"$got" || fail "'$line' does not offer '$w' (offers: $(tr '\n' ' ' <<<"$got"))"; done
}
expect_not() {
  local line=$1 got; shift
  got=$(complete_line "$line")
  for w in "$@"; do ! grep -qx -- "$w" <<<"$got" || fail "'$line' offers '$w'"; done
}

expect "chittyctl " get run inject health insights revoke audit mcp --socket
expect "chittyctl au" audit
expect_not "chittyctl au" get
expect "chittyctl audit " tail query verify
expect "chittyctl audit tail -" -f --follow -n --service
expect "chittyctl --socket /tmp/x.sock get --" --type --json --no-newline
expect "chittyctl get --type " openai_api_key chittyid_service_token
expect "chittyctl get --type open" openai_api_key
expect_not "chittyctl get --type open" chittyid_service_token
expect "chittyctl inject -i tem" template.tmpl
expect "chittyctl revoke --" --token-file --token-credential --clear --all
expect "chittyctl run --" --env-file --no-masking
expect "chittyctl run -- ech" echo
expect "chittyctl mcp --" --emergency-token-file
echo PASS

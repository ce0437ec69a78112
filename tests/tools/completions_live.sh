#!/bin/bash
# The completions offer the method names of a live server in the method slot (rpc-call --raw --list, with a short
# time limit), in bash, zsh and fish, each run for real with the completion file as installed. A shell that is not
# installed is a loud skip (CI installs all three through .ci/deps).
. "$(dirname "$0")/lib.sh"
src=${DUCTRPC_SOURCE:?}
export PATH="$(dirname "$RPC_CALL"):$PATH"
start_server
want=$'add\ncount\necho\nfail\nsleep'
skipped=""

# bash: the completion function with the words as bash hands them over (COMP_LINE, COMP_POINT; COMP_WORDS split at
# the endpoint's colons, as bash's COMP_WORDBREAKS does).
got=$(bash -c '
  source "$1"
  COMP_LINE="rpc-call --timeout 3 $2 "
  COMP_POINT=${#COMP_LINE}
  COMP_WORDS=(rpc-call --timeout 3 tcp : //127.0.0.1 : "${2##*:}" "")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  _rpc_call
  printf "%s\n" "${COMPREPLY[@]}" | sort' _ "$src/completions/bash/rpc-call" "$EP")
[ "$got" = "$want" ] || fail "bash completes the method slot with '$got'"
got=$(bash -c '
  source "$1"
  COMP_LINE="rpc-call $2 co"
  COMP_POINT=${#COMP_LINE}
  COMP_WORDS=(rpc-call tcp : //127.0.0.1 : "${2##*:}" co)
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  _rpc_call
  printf "%s\n" "${COMPREPLY[@]}"' _ "$src/completions/bash/rpc-call" "$EP")
[ "$got" = "count" ] || fail "bash completes 'co' in the method slot with '$got'"
# A server that is not there costs a bounded wait and offers nothing.
got=$(timeout 10 bash -c '
  source "$1"
  COMP_LINE="rpc-call ipc://$2/nobody "
  COMP_POINT=${#COMP_LINE}
  COMP_WORDS=(rpc-call ipc : "//$2/nobody" "")
  COMP_CWORD=3
  _rpc_call
  printf "%s" "${COMPREPLY[@]}"' _ "$src/completions/bash/rpc-call" "$T")
[ -z "$got" ] || fail "bash completes methods of a server that is not there: '$got'"

# fish: complete -C, as fish itself asks.
if command -v fish >/dev/null; then
  got=$(fish -c "source '$src/completions/fish/rpc-call.fish'; complete -C 'rpc-call -r $EP '" | cut -f1 | sort)
  [ "$got" = "$want" ] || fail "fish completes the method slot with '$got'"
else
  skipped="$skipped fish"
fi

# zsh: _rpc_call_methods with the words zsh would hand it, compadd recording what it is given.
if command -v zsh >/dev/null; then
  got=$(zsh -fc '
    _arguments() { : }
    compadd() { [[ $1 == -a ]] && print -rl -- ${(P)2} }
    source "$1"
    words=(rpc-call --timeout 3 "$2" "")
    CURRENT=5  # zsh counts words from 1: the cursor is on the fifth
    _rpc_call_methods' _ "$src/completions/zsh/_rpc-call" "$EP" | sort)
  [ "$got" = "$want" ] || fail "zsh completes the method slot with '$got'"
else
  skipped="$skipped zsh"
fi

if [ -n "$skipped" ]; then
  finish >/dev/null
  echo "SKIP: not installed:$skipped (bash was checked)" >&2
  exit 77
fi
finish

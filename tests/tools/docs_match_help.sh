#!/bin/bash
# Every option a tool's --help lists is in its man page and in its bash, zsh and fish completions, and the
# completions offer no option --help does not list: the docs cannot drift from the code.
. "$(dirname "$0")/lib.sh"
src=${DUCTRPC_SOURCE:?}

# The long and short options in a --help text (the first column of its option lines), one per line.
options_in_help() {
  "$1" --help | grep -E '^  -' | awk '{print $1}' | tr ',' '\n' | sort -u
}

check_tool() {
  tool=$1 binary=$2
  man="$src/man/$tool.1" bash_c="$src/completions/bash/$tool" zsh_c="$src/completions/zsh/_$tool"
  fish_c="$src/completions/fish/$tool.fish"
  for f in "$man" "$bash_c" "$zsh_c" "$fish_c"; do [ -f "$f" ] || fail "$tool: $f is missing"; done
  # The man page names the version --version prints (project()'s, the packages' too).
  version=$("$binary" --version | awk '{print $NF}')
  grep -q "^\.TH .* \"ductrpc $version\" " "$man" || fail "$tool: $man is not marked ductrpc $version: $(head -n 1 "$man")"
  options_in_help "$binary" >"$T/$tool.help"
  [ -s "$T/$tool.help" ] || fail "$tool: no options found in --help"
  # The bash completion's option list: the compgen -W word list that holds --help.
  perl -0ne 'print "$1\n" while /compgen -W "([^"]*--help[^"]*)"/g' "$bash_c" | tr -s ' \n' '\n\n' | grep . |
    sort -u >"$T/$tool.bash"
  while read -r opt; do
    roff=$(printf '%s' "$opt" | sed 's/-/\\\\-/g')  # the man page writes - as \-
    grep -qE "(^|[^a-z-])$roff([^a-z-]|$)" "$man" || fail "$tool: $opt is not in $man"
    grep -qx -- "$opt" "$T/$tool.bash" || fail "$tool: $opt is not in the bash completion"
    grep -qE "(^|[{,'(*)])$opt([],}'[]|$)" "$zsh_c" || fail "$tool: $opt is not in the zsh completion"
    case $opt in
      --*) grep -qE -- "-l ${opt#--}( |$)" "$fish_c" || fail "$tool: $opt is not in the fish completion" ;;
      -?) grep -qE -- "-s ${opt#-}( |$)" "$fish_c" || fail "$tool: $opt is not in the fish completion" ;;
    esac
  done <"$T/$tool.help"
  # And the other way: nothing completed that --help does not know.
  grep -oE -- "-l [a-z][a-z0-9-]*" "$fish_c" | sed 's/^-l /--/' | sort -u >"$T/$tool.fish"
  for list in "$T/$tool.fish" "$T/$tool.bash"; do
    while read -r opt; do
      grep -qx -- "$opt" "$T/$tool.help" || fail "$tool: $(basename "$list") completes $opt, which --help does not list"
    done <"$list"
  done
}

check_tool rpc-call "$RPC_CALL"
check_tool rpc-serve "$RPC_SERVE"
check_tool duct-cat "${DUCT_CAT:?}"
check_tool rpc-broker "${RPC_BROKER:?}"
finish

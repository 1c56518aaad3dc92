# Source this to use Lunet from a checkout: `. scripts/env.sh` then `lua5.4` or `lunet`.
# bash (BASH_SOURCE) and zsh ($0) tell a sourced file its path; dash and other sh do not, so there
# it must be sourced from the checkout's root.
case "${BASH_SOURCE:-$0}" in
  *env.sh) LUNET_ROOT="$(cd "$(dirname "${BASH_SOURCE:-$0}")/.." && pwd)" ;;
  *) LUNET_ROOT="$(pwd)" ;;
esac
if [ ! -f "$LUNET_ROOT/lua/lunet/init.lua" ]; then
  echo "scripts/env.sh: $LUNET_ROOT is not a Lunet checkout: source this from the checkout's root" >&2
  return 1 2>/dev/null || exit 1
fi
export LUA_PATH="$LUNET_ROOT/lua/?.lua;$LUNET_ROOT/lua/?/init.lua;;"
export LUA_CPATH="$LUNET_ROOT/build/?.so;;"
export PATH="$LUNET_ROOT/scripts:$PATH"

# Source this to use Lunet from a checkout: `. scripts/env.sh` then `lua5.4` or `lunet`.
LUNET_ROOT="$(cd "$(dirname "${BASH_SOURCE:-$0}")/.." && pwd)"
export LUA_PATH="$LUNET_ROOT/lua/?.lua;$LUNET_ROOT/lua/?/init.lua;;"
export LUA_CPATH="$LUNET_ROOT/build/?.so;;"
export PATH="$LUNET_ROOT/scripts:$PATH"
